//! Tasks read from files: labelled text (or text pairs) and labelled images, split into
//! train / validation / test the same way for the packaged corpora and for a user's own files.
//!
//! With a test file, the validation split is held out of the training file. Without one, the
//! test split is held out too. Every hold-out and subsample is drawn with `split_seed`, so the
//! same config gives the same examples on every machine.

use std::path::{Path, PathBuf};

use loraplus_model::init;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::examples::{Inputs, Split, TaskData, numbered_labels};
use crate::images::{Images, LabelColumn, read_idx, read_pixel_csv};
use crate::table::{Columns, Labels, TableFormat, TextRow, read_rows};
use crate::text::TextEncoder;

/// Labelled text from a CSV / TSV / JSON-lines / Orange `.tab` file, tokenized by the model's
/// tokenizer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextTask {
    /// Training examples (paths are relative to the working directory).
    pub train: PathBuf,
    /// Test examples. Default: `n_test` examples held out of `train`.
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// `csv`, `tsv`, `jsonl` or `orange_tab`. Default: from the extension.
    #[serde(default)]
    pub format: Option<TableFormat>,
    /// The text column. Default: `text`.
    #[serde(default = "default_text")]
    pub text: String,
    /// The second text of a pair (MNLI, QNLI, QQP style tasks), if any.
    #[serde(default)]
    pub text_pair: Option<String>,
    /// The label column. Default: `label`.
    #[serde(default = "default_label")]
    pub label: String,
    /// The classes, in order. Default: the training file's labels, sorted.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Labels whose rows are dropped from every file, e.g. the `plot` rows of a review corpus.
    #[serde(default)]
    pub skip_labels: Vec<String>,
    /// Longest input in tokens, special tokens included; longer ones are truncated. Default: 128.
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// Training examples kept (a seeded subsample). Default: all that are not held out.
    #[serde(default)]
    pub n_train: Option<usize>,
    /// Validation examples, held out of the training file.
    pub n_val: usize,
    /// Test examples: held out of `train` without a test file, a subsample of it with one.
    /// Default with a test file: all of it.
    #[serde(default)]
    pub n_test: Option<usize>,
    /// Seed of the hold-outs and subsamples. Default: 0.
    #[serde(default)]
    pub split_seed: u64,
}

/// Labelled images, flattened to vectors of pixels in `[0, 1]`: IDX files (with their label
/// files) or CSV files of pixels and a label.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageTask {
    /// Training images: an IDX file (`.gz` or raw) or a `.csv` of pixels and labels.
    pub train: PathBuf,
    /// The IDX label file of `train` (IDX only).
    #[serde(default)]
    pub train_labels: Option<PathBuf>,
    /// Test images. Default: `n_test` images held out of `train`.
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// The IDX label file of `test` (IDX only).
    #[serde(default)]
    pub test_labels: Option<PathBuf>,
    /// Where a CSV row's label is: `first` or `last`. Default: `last`.
    #[serde(default = "default_label_column")]
    pub label_column: LabelColumn,
    /// Training images kept (a seeded subsample). Default: all that are not held out.
    #[serde(default)]
    pub n_train: Option<usize>,
    /// Validation images, held out of `train`.
    pub n_val: usize,
    /// Test images: held out of `train` without a test file, a subsample of it with one.
    #[serde(default)]
    pub n_test: Option<usize>,
    /// Seed of the hold-outs and subsamples. Default: 0.
    #[serde(default)]
    pub split_seed: u64,
}

fn default_text() -> String {
    "text".into()
}
fn default_label() -> String {
    "label".into()
}
fn default_max_seq_len() -> usize {
    128
}
fn default_label_column() -> LabelColumn {
    LabelColumn::Last
}

/// Which examples of each file go to which split.
struct SplitPlan {
    train: Vec<usize>,
    val: Vec<usize>,
    /// Indices into the test file when there is one, into the training file otherwise.
    test: Vec<usize>,
}

/// Draws the splits from the `n_file` examples of the training file at `path` (and the examples
/// of the test file, given as its path and size).
fn plan_split(
    path: &Path,
    n_file: usize,
    test_file: Option<(&Path, usize)>,
    sizes: (Option<usize>, usize, Option<usize>),
    seed: u64,
) -> Result<SplitPlan, DataError> {
    let (n_train, n_val, n_test) = sizes;
    let mut rng = init::rng(seed);
    let mut order: Vec<usize> = (0..n_file).collect();
    order.shuffle(&mut rng);
    let too_few = |message: String| DataError::Split {
        path: path.into(),
        message,
    };
    let (test, held_out) = match test_file {
        Some((test_path, n_in_test)) => {
            let keep = n_test.unwrap_or(n_in_test);
            if keep > n_in_test {
                return Err(DataError::Split {
                    path: test_path.into(),
                    message: format!("n_test = {keep} but the file has {n_in_test} examples"),
                });
            }
            let mut test_order: Vec<usize> = (0..n_in_test).collect();
            test_order.shuffle(&mut rng);
            test_order.truncate(keep);
            (test_order, n_val)
        }
        None => {
            let n_test = n_test.ok_or_else(|| too_few("without a test file, give n_test to hold out".into()))?;
            (
                order[n_val..n_val + n_test.min(n_file.saturating_sub(n_val))].to_vec(),
                n_val + n_test,
            )
        }
    };
    if held_out >= n_file {
        return Err(too_few(format!(
            "{n_file} examples cannot give n_val + n_test = {held_out} held out and still leave some for training"
        )));
    }
    let val = order[..n_val].to_vec();
    let mut train = order[held_out..].to_vec();
    if let Some(n_train) = n_train {
        if n_train > train.len() {
            return Err(too_few(format!(
                "n_train = {n_train} but only {} examples are left after holding out {held_out}",
                train.len()
            )));
        }
        train.truncate(n_train);
    }
    if test.is_empty() || val.is_empty() || train.is_empty() {
        return Err(too_few(
            "every split needs at least 1 example (check n_val, n_test, n_train)".into(),
        ));
    }
    Ok(SplitPlan { train, val, test })
}

impl TextTask {
    /// Reads, splits and tokenizes the examples.
    pub fn load(&self, encoder: &TextEncoder) -> Result<TaskData, DataError> {
        let columns = Columns {
            text: self.text.clone(),
            text_pair: self.text_pair.clone(),
            label: self.label.clone(),
            skip_labels: self.skip_labels.clone(),
            label_optional: false,
        };
        let read = |path: &Path| read_rows(path, self.format, &columns);
        let train_rows = read(&self.train)?;
        if let Some(first) = train_rows.first()
            && train_rows.iter().all(|row| row.label == first.label)
        {
            return Err(DataError::SingleLabel {
                path: self.train.clone(),
                column: self.label.clone(),
                label: first.label.clone(),
            });
        }
        let test_rows = self.test.as_deref().map(read).transpose()?;
        let labels = match &self.labels {
            Some(names) => Labels::new(names.clone()),
            None => Labels::from_rows(&train_rows),
        };
        let train_labels = labels.encode(&train_rows, &self.train, &self.label)?;
        let test_labels = match (&self.test, &test_rows) {
            (Some(path), Some(rows)) => Some(labels.encode(rows, path, &self.label)?),
            _ => None,
        };
        let plan = plan_split(
            &self.train,
            train_rows.len(),
            self.test.as_deref().zip(test_rows.as_ref().map(Vec::len)),
            (self.n_train, self.n_val, self.n_test),
            self.split_seed,
        )?;
        let split = |rows: &[TextRow], labels: &[i64], indices: &[usize]| -> Result<Split, DataError> {
            let texts: Vec<(&str, Option<&str>)> = indices
                .iter()
                .map(|i| (rows[*i].text.as_str(), rows[*i].text_pair.as_deref()))
                .collect();
            Ok(Split {
                inputs: encoder.encode(&texts)?,
                labels: indices.iter().map(|i| labels[*i]).collect(),
            })
        };
        let test = match (&test_rows, &test_labels) {
            (Some(rows), Some(labels)) => split(rows, labels, &plan.test)?,
            _ => split(&train_rows, &train_labels, &plan.test)?,
        };
        Ok(TaskData {
            train: split(&train_rows, &train_labels, &plan.train)?,
            val: split(&train_rows, &train_labels, &plan.val)?,
            test,
            labels: labels.names().to_vec(),
        })
    }
}

impl ImageTask {
    /// Reads and splits the images.
    pub fn load(&self) -> Result<TaskData, DataError> {
        let read = |images: &Path, labels: Option<&Path>| match labels {
            Some(labels) => read_idx(images, labels),
            None => read_pixel_csv(images, self.label_column),
        };
        let train = read(&self.train, self.train_labels.as_deref())?;
        let test = match &self.test {
            Some(path) => {
                let test = read(path, self.test_labels.as_deref())?;
                if test.dim != train.dim {
                    return Err(DataError::Split {
                        path: path.clone(),
                        message: format!("images have {} pixels but the training images {}", test.dim, train.dim),
                    });
                }
                Some(test)
            }
            None => None,
        };
        let plan = plan_split(
            &self.train,
            train.len(),
            self.test.as_deref().zip(test.as_ref().map(Images::len)),
            (self.n_train, self.n_val, self.n_test),
            self.split_seed,
        )?;
        let n_classes = train
            .labels
            .iter()
            .chain(test.iter().flat_map(|t| &t.labels))
            .max()
            .map_or(0, |m| *m + 1);
        Ok(TaskData {
            train: image_split(&train, &plan.train),
            val: image_split(&train, &plan.val),
            test: image_split(test.as_ref().unwrap_or(&train), &plan.test),
            labels: numbered_labels(n_classes as usize),
        })
    }
}

fn image_split(images: &Images, indices: &[usize]) -> Split {
    let dim = images.dim;
    Split {
        inputs: Inputs::Vectors {
            values: indices
                .iter()
                .flat_map(|i| &images.pixels[i * dim..(i + 1) * dim])
                .copied()
                .collect(),
            dim,
        },
        labels: indices.iter().map(|i| images.labels[*i]).collect(),
    }
}
