//! Labelled image vectors from IDX files (MNIST, Fashion-MNIST) and from pixel CSVs (one image
//! per row, no header).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// Images flattened to vectors, with one class label each.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    /// `[n, dim]` row-major pixel intensities, scaled from `0..=255` to `[0, 1]` by `/ 255`.
    pub pixels: Vec<f32>,
    /// Pixels per image.
    pub dim: usize,
    /// `[n]` class labels, as the file gives them.
    pub labels: Vec<i64>,
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Where a pixel CSV keeps each row's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelColumn {
    /// The first value, before the pixels (Kaggle's `mnist_train.csv`).
    First,
    /// The last value, after the pixels (OpenML's MNIST export, `mnist_5k.csv`).
    Last,
}

/// IDX magic number of unsigned-byte data in 3 dimensions: `[n, rows, cols]` images.
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// IDX magic number of unsigned-byte data in 1 dimension: `[n]` labels.
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads an IDX image file and its IDX label file (the MNIST layout; see
/// <http://yann.lecun.com/exdb/mnist/>). A file whose name ends in `.gz` is gunzipped first.
pub fn read_idx(images: &Path, labels: &Path) -> Result<Images> {
    let image_bytes = read_maybe_gzipped(images)?;
    let label_bytes = read_maybe_gzipped(labels)?;
    idx_from_bytes(images, &image_bytes, labels, &label_bytes)
}

/// [`read_idx`] on the (gunzipped) contents of both files already in memory; the paths only name
/// the files in errors.
pub fn idx_from_bytes(images: &Path, image_bytes: &[u8], labels: &Path, label_bytes: &[u8]) -> Result<Images> {
    let (image_dims, image_data) = parse_idx(images, image_bytes, IMAGES_MAGIC, "unsigned bytes in 3 dimensions")?;
    let (label_dims, label_data) = parse_idx(labels, label_bytes, LABELS_MAGIC, "unsigned bytes in 1 dimension")?;
    let [n, rows, cols] = image_dims[..] else {
        unreachable!("parse_idx checked the magic number, which fixes 3 dimensions")
    };
    if label_dims[0] != n {
        return Err(DataError::Idx {
            path: labels.to_owned(),
            message: format!(
                "it holds {} labels but {} holds {n} images",
                label_dims[0],
                images.display()
            ),
        });
    }
    if n == 0 {
        return Err(DataError::Empty {
            path: images.to_owned(),
        });
    }
    if rows == 0 || cols == 0 {
        return Err(DataError::Idx {
            path: images.to_owned(),
            message: format!(
                "images have {rows} rows and {cols} columns of pixels; an image needs at least one of each"
            ),
        });
    }
    Ok(Images {
        pixels: image_data.iter().map(|&pixel| f32::from(pixel) / 255.0).collect(),
        dim: rows * cols,
        labels: label_data.iter().map(|&label| i64::from(label)).collect(),
    })
}

/// The whole file, gunzipped if its name ends in `.gz`.
fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let io_error = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io_error)?;
    if path.extension().is_some_and(|extension| extension == "gz") {
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut unzipped)
            .map_err(io_error)?;
        return Ok(unzipped);
    }
    Ok(bytes)
}

/// Splits an IDX file into its dimensions and its data, checking the magic number against
/// `expected` (described to the user as `kind`) and the data size against the dimensions.
fn parse_idx<'a>(path: &Path, bytes: &'a [u8], expected: u32, kind: &str) -> Result<(Vec<usize>, &'a [u8])> {
    let invalid = |message: String| DataError::Idx {
        path: path.to_owned(),
        message,
    };
    let word = |index: usize| {
        bytes
            .get(4 * index..4 * index + 4)
            .map(|word| u32::from_be_bytes(word.try_into().expect("4 bytes")))
    };
    let magic = word(0).ok_or_else(|| invalid(format!("it is {} bytes, too short for a header", bytes.len())))?;
    if magic != expected {
        return Err(invalid(format!(
            "magic number is {magic:#010x}; expected {expected:#010x} ({kind})"
        )));
    }
    // The magic number's low byte is the number of dimensions, each a big-endian u32 after it.
    let n_dims = (expected & 0xff) as usize;
    let dims = (1..=n_dims)
        .map(|index| word(index).map(|dim| dim as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            invalid(format!(
                "it is {} bytes, too short for {n_dims} dimension sizes",
                bytes.len()
            ))
        })?;
    let data = &bytes[4 * (1 + n_dims)..];
    // Checked: three u32 sizes can multiply past usize::MAX.
    let expected_len = dims.iter().try_fold(1_usize, |len, &dim| len.checked_mul(dim));
    if expected_len != Some(data.len()) {
        let expected = expected_len.map_or_else(
            || format!("more than {} bytes", usize::MAX),
            |len| format!("{len} bytes"),
        );
        return Err(invalid(format!(
            "header gives dimensions {dims:?}, that is {expected} of data, but {} follow",
            data.len()
        )));
    }
    Ok((dims, data))
}

/// Reads a pixel CSV: no header, one image per row, every row the same width, pixel values
/// numbers from 0 to 255 and the label (first or last value, per `label`) a non-negative integer.
pub fn read_pixel_csv(path: &Path, label: LabelColumn) -> Result<Images> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    pixel_csv_from_bytes(path, &bytes, label)
}

/// [`read_pixel_csv`] on the contents of a file already in memory; `path` only names the file in
/// errors.
pub fn pixel_csv_from_bytes(path: &Path, bytes: &[u8], label: LabelColumn) -> Result<Images> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut images = Images {
        pixels: Vec::new(),
        dim: 0,
        labels: Vec::new(),
    };
    let mut width = None;
    let mut first_line = 0;
    loop {
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|error| DataError::Malformed {
                path: path.to_owned(),
                line: error.position().map_or(0, |position| position.line() as usize),
                message: error.to_string(),
            })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |position| position.line() as usize);
        let malformed = |message: String| DataError::Malformed {
            path: path.to_owned(),
            line,
            message,
        };
        match width {
            None if record.len() < 2 => {
                return Err(malformed(format!(
                    "row has {} value; a row needs pixels and a label",
                    record.len()
                )));
            }
            None => {
                width = Some(record.len());
                first_line = line;
            }
            Some(width) if record.len() != width => {
                return Err(malformed(format!(
                    "row has {} values but the first row (line {first_line}) has {width}",
                    record.len()
                )));
            }
            Some(_) => {}
        }
        let label_index = match label {
            LabelColumn::First => 0,
            LabelColumn::Last => record.len() - 1,
        };
        for (index, field) in record.iter().enumerate() {
            let column = index + 1;
            let text = String::from_utf8_lossy(field);
            let text = text.trim();
            if index == label_index {
                let class: u32 = text.parse().map_err(|_| {
                    malformed(format!(
                        "column {column}: label `{text}` is not allowed; a label is a non-negative integer"
                    ))
                })?;
                images.labels.push(i64::from(class));
            } else {
                let pixel = pixel_value(text).ok_or_else(|| {
                    let header_hint = if line == 1 {
                        " (the file must not have a header row)"
                    } else {
                        ""
                    };
                    malformed(format!(
                        "column {column}: `{text}` is not a pixel value; allowed: a number from 0 to 255{header_hint}"
                    ))
                })?;
                images.pixels.push(pixel / 255.0);
            }
        }
    }
    let Some(width) = width else {
        return Err(DataError::Empty { path: path.to_owned() });
    };
    images.dim = width - 1;
    Ok(images)
}

/// `text` as an intensity in `0..=255`, integer or decimal.
fn pixel_value(text: &str) -> Option<f32> {
    // Integers, by far the common case, skip the float parser.
    let value = match text.parse::<u8>() {
        Ok(value) => f32::from(value),
        Err(_) => text.parse::<f32>().ok()?,
    };
    (0.0..=255.0).contains(&value).then_some(value)
}
