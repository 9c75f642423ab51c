//! Fuzzes the image readers. The whole input is read as a pixel CSV (label first, then label
//! last); split in two, it is read as an IDX image file and its IDX label file: the first two
//! bytes (little-endian) give the image file's length, the label file is the rest.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use loraplus_data::{Images, LabelColumn, idx_from_bytes, pixel_csv_from_bytes};

/// What every image set that reads without error must satisfy.
fn check(images: &Images) {
    assert!(!images.is_empty(), "an empty file is an error");
    assert!(images.dim >= 1, "an image has at least one pixel");
    assert_eq!(
        images.pixels.len(),
        images.len() * images.dim,
        "one row of pixels per label"
    );
    assert!(
        images.pixels.iter().all(|p| (0.0..=1.0).contains(p)),
        "pixels are scaled to [0, 1]"
    );
    assert!(images.labels.iter().all(|&l| l >= 0), "labels are non-negative");
}

fuzz_target!(|data: &[u8]| {
    for label in [LabelColumn::First, LabelColumn::Last] {
        if let Ok(images) = pixel_csv_from_bytes(Path::new("fuzz.csv"), data, label) {
            check(&images);
        }
    }
    if let [a, b, rest @ ..] = data {
        let split = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
        let (image_bytes, label_bytes) = rest.split_at(split);
        let images = idx_from_bytes(
            Path::new("fuzz-images.idx"),
            image_bytes,
            Path::new("fuzz-labels.idx"),
            label_bytes,
        );
        if let Ok(images) = images {
            check(&images);
        }
    }
});
