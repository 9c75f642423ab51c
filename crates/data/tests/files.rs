//! Reading examples from files: the fixtures under `tests/fixtures/` pin what each format parses to
//! and what each broken file's error says; the last test reads the real corpora under `data/` when
//! they have been fetched.

#[path = "../../../tests/common/require.rs"]
mod require;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use loraplus_data::{
    Columns, DataError, LabelColumn, Labels, TableFormat, TextRow, idx_from_bytes, read_idx, read_pixel_csv, read_rows,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The error's message, after checking that it names the file.
fn message(error: DataError, file: &str) -> String {
    let message = error.to_string();
    assert!(message.contains(file), "`{message}` does not name {file}");
    message
}

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "`{message}` does not contain `{part}`");
    }
}

fn summary(rows: &[TextRow]) -> Vec<(&str, &str, usize)> {
    rows.iter()
        .map(|row| (row.text.as_str(), row.label.as_str(), row.line))
        .collect()
}

#[test]
fn csv_keeps_quoted_commas_newlines_and_quotes() {
    let rows = read_rows(&fixture("good.csv"), None, &Columns::new("text", "label")).unwrap();
    assert_eq!(
        summary(&rows),
        [
            ("A fine film.", "positive", 2),
            ("Too long, and\ntoo loud.", "negative", 3),
            ("She said \"wow\".", "positive", 5),
        ]
    );
    assert!(rows.iter().all(|row| row.text_pair.is_none()));
}

#[test]
fn tsv_takes_quotes_literally_and_skips_blank_lines() {
    let rows = read_rows(&fixture("good.tsv"), None, &Columns::new("sentence", "label")).unwrap();
    assert_eq!(
        summary(&rows),
        [("it works", "yes", 2), ("\"unbalanced quote", "no", 3)]
    );
}

#[test]
fn orange_tab_skips_types_and_flags() {
    let rows = read_rows(&fixture("good.tab"), None, &Columns::new("Text", "Category")).unwrap();
    assert_eq!(
        summary(&rows),
        [
            ("profit rose 5 pct", "earn", 5),
            ("company buys rival", "acq", 6),
            ("net loss of 2 mln", "earn", 7)
        ]
    );
}

#[test]
fn jsonl_stringifies_numeric_labels_and_skips_blank_lines() {
    let rows = read_rows(&fixture("good.jsonl"), None, &Columns::new("text", "label")).unwrap();
    assert_eq!(
        summary(&rows),
        [
            ("first example", "0", 1),
            ("second example", "1", 3),
            ("third example", "0", 4)
        ]
    );
}

#[test]
fn jsonl_reads_sentence_pairs() {
    let columns = Columns {
        text_pair: Some("hypothesis".into()),
        ..Columns::new("premise", "label")
    };
    let rows = read_rows(&fixture("pair.jsonl"), Some(TableFormat::Jsonl), &columns).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].text, "A dog sleeps.");
    assert_eq!(rows[1].text_pair.as_deref(), Some("The dog is running."));
    assert_eq!(rows[1].label, "contradiction");
    assert_eq!(rows[1].line, 2);
}

#[test]
fn format_follows_extension_and_config_names() {
    for (name, format) in [
        ("a.csv", TableFormat::Csv),
        ("a.TSV", TableFormat::Tsv),
        ("a.jsonl", TableFormat::Jsonl),
        ("a.ndjson", TableFormat::Jsonl),
        ("a.tab", TableFormat::OrangeTab),
    ] {
        assert_eq!(TableFormat::from_path(Path::new(name)).unwrap(), format);
    }
    let error = TableFormat::from_path(Path::new("reviews.txt")).unwrap_err();
    assert_contains(&message(error, "reviews.txt"), &["`.csv`", "`.tab`", "`orange_tab`"]);
    assert_eq!(
        serde_json::to_string(&TableFormat::OrangeTab).unwrap(),
        "\"orange_tab\""
    );
    assert_eq!(
        serde_json::from_str::<TableFormat>("\"jsonl\"").unwrap(),
        TableFormat::Jsonl
    );
}

#[test]
fn missing_column_lists_the_header() {
    let error = read_rows(&fixture("missing-column.csv"), None, &Columns::new("text", "label")).unwrap_err();
    let message = message(error, "missing-column.csv");
    assert_contains(&message, &[":1:", "`text`", "[`label`, `body`]"]);
}

#[test]
fn empty_value_names_line_and_column() {
    let error = read_rows(&fixture("missing-value.csv"), None, &Columns::new("text", "label")).unwrap_err();
    assert_contains(&message(error, "missing-value.csv"), &[":2:", "column `text`", "empty"]);
}

#[test]
fn header_only_file_is_empty() {
    let error = read_rows(&fixture("empty.csv"), None, &Columns::new("text", "label")).unwrap_err();
    assert_contains(&message(error, "empty.csv"), &["no examples"]);
}

#[test]
fn ragged_row_names_its_line() {
    let error = read_rows(&fixture("ragged.csv"), None, &Columns::new("text", "label")).unwrap_err();
    assert_contains(&message(error, "ragged.csv"), &[":3:", "3 fields", "has 2"]);
}

#[test]
fn invalid_utf8_names_its_line_and_the_fix() {
    let error = read_rows(&fixture("latin1.csv"), None, &Columns::new("text", "label")).unwrap_err();
    assert!(matches!(error, DataError::Encoding { line: 3, .. }), "{error}");
    assert_contains(&message(error, "latin1.csv"), &[":3:", "UTF-8", "convert"]);
}

#[test]
fn bad_json_line_names_its_line() {
    let error = read_rows(&fixture("bad-line.jsonl"), None, &Columns::new("text", "label")).unwrap_err();
    assert_contains(
        &message(error, "bad-line.jsonl"),
        &[":2:", "not valid JSON at column 29"],
    );
}

#[test]
fn jsonl_missing_key_lists_the_keys() {
    let error = read_rows(&fixture("pair.jsonl"), None, &Columns::new("sentence", "label")).unwrap_err();
    assert_contains(&message(error, "pair.jsonl"), &[":1:", "`sentence`", "`premise`"]);
}

#[test]
fn labels_are_sorted_and_unknown_test_labels_are_errors() {
    let columns = Columns::new("text", "label");
    let train_path = fixture("labels-train.csv");
    let test_path = fixture("labels-test.csv");
    let train = read_rows(&train_path, None, &columns).unwrap();
    let labels = Labels::from_rows(&train);
    assert_eq!(labels.names(), ["negative", "positive"]);
    assert_eq!(labels.len(), 2);
    assert_eq!(labels.encode(&train, &train_path, "label").unwrap(), [1, 0]);

    let test = read_rows(&test_path, None, &columns).unwrap();
    let error = labels.encode(&test, &test_path, "label").unwrap_err();
    let message = message(error, "labels-test.csv");
    assert_contains(
        &message,
        &[":3:", "`neutral`", "column `label`", "[`negative`, `positive`]"],
    );
}

#[test]
fn skipped_labels_are_dropped_before_their_text_is_checked() {
    let columns = Columns {
        skip_labels: vec!["plot".into()],
        ..Columns::new("text", "category")
    };
    let rows = read_rows(&fixture("skip.csv"), None, &columns).unwrap();
    assert_eq!(
        summary(&rows),
        [("Sharp and funny.", "fresh", 3), ("Dull.", "rotten", 5)]
    );

    let error = read_rows(&fixture("skip.csv"), None, &Columns::new("text", "category")).unwrap_err();
    assert_contains(&message(error, "skip.csv"), &[":2:", "column `text`"]);
}

#[test]
fn pixel_csv_scales_pixels_and_reads_the_label_column() {
    let last = read_pixel_csv(&fixture("pixels.csv"), LabelColumn::Last).unwrap();
    assert_eq!((last.len(), last.dim), (2, 3));
    assert_eq!(last.labels, [3, 7]);
    assert_eq!(last.pixels, [0.0, 1.0, 128.0 / 255.0, 10.0 / 255.0, 20.0 / 255.0, 0.2]);

    let first = read_pixel_csv(&fixture("pixels.csv"), LabelColumn::First).unwrap();
    assert_eq!(first.labels, [0, 10]);
    assert_eq!(&first.pixels[..3], [1.0, 128.0 / 255.0, 3.0 / 255.0]);
}

#[test]
fn bad_pixel_names_line_and_column() {
    let error = read_pixel_csv(&fixture("bad-pixel.csv"), LabelColumn::Last).unwrap_err();
    assert_contains(
        &message(error, "bad-pixel.csv"),
        &[":2:", "column 3", "`x`", "0 to 255"],
    );
}

/// An IDX file: big-endian magic, dimension sizes, then the bytes.
fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for dim in dims {
        bytes.extend(dim.to_be_bytes());
    }
    bytes.extend(data);
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn idx_reads_raw_and_gzipped_files() {
    let dir = tempfile::tempdir().unwrap();
    let images = idx(0x803, &[2, 2, 3], &[0, 51, 102, 153, 204, 255, 255, 0, 0, 0, 0, 0]);
    let labels = idx(0x801, &[2], &[7, 1]);
    let raw = read_idx(
        &write(dir.path(), "images", &images),
        &write(dir.path(), "labels", &labels),
    )
    .unwrap();
    assert_eq!((raw.len(), raw.dim), (2, 6));
    assert_eq!(raw.labels, [7, 1]);
    assert_eq!(&raw.pixels[..6], [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);

    let gzipped = read_idx(
        &write(dir.path(), "images.gz", &gzip(&images)),
        &write(dir.path(), "labels.gz", &gzip(&labels)),
    )
    .unwrap();
    assert_eq!(gzipped, raw);
}

#[test]
fn idx_errors_name_the_file_and_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let images = write(dir.path(), "images", &idx(0x803, &[2, 1, 2], &[1, 2, 3, 4]));
    let labels = write(dir.path(), "labels", &idx(0x801, &[2], &[0, 1]));

    // Arguments swapped: the labels file is not 3-dimensional.
    let error = read_idx(&labels, &images).unwrap_err();
    assert_contains(&message(error, "labels"), &["0x00000801", "expected 0x00000803"]);

    let short = write(dir.path(), "short", &idx(0x803, &[2, 1, 2], &[1, 2, 3]));
    let error = read_idx(&short, &labels).unwrap_err();
    assert_contains(&message(error, "short"), &["[2, 1, 2]", "4 bytes", "3 follow"]);

    let three = write(dir.path(), "three-labels", &idx(0x801, &[3], &[0, 1, 2]));
    let error = read_idx(&images, &three).unwrap_err();
    assert_contains(&message(error, "three-labels"), &["3 labels", "2 images"]);

    let error = read_idx(&dir.path().join("absent"), &labels).unwrap_err();
    assert_contains(&message(error, "absent"), &["cannot read"]);
}

#[test]
fn idx_dimensions_whose_product_overflows_are_an_error() {
    // Found by `scripts/fuzz.sh` (target `images`): the byte count the header implies overflowed
    // (a panic with overflow checks, a wrong size without).
    let images = idx(
        0x803,
        &[0x6c00_0002, 0x400, 0x0200_4080],
        &[0xff, 0x10, 0x20, 0x30, 0, 0, 0, 2],
    );
    let labels = idx(0x801, &[2], &[7, 3]);
    let error = idx_from_bytes(Path::new("images"), &images, Path::new("labels"), &labels).unwrap_err();
    assert_contains(
        &message(error, "images"),
        &[
            "[1811939330, 1024, 33570944]",
            "more than 18446744073709551615 bytes",
            "8 follow",
        ],
    );
}

#[test]
fn idx_images_without_pixels_are_an_error() {
    // Found by the `images` fuzz target's check that every image has a pixel: 2 images of 0 rows
    // and 5 columns read as 2 empty vectors.
    let images = idx(0x803, &[2, 0, 5], &[]);
    let labels = idx(0x801, &[2], &[7, 3]);
    let error = idx_from_bytes(Path::new("images"), &images, Path::new("labels"), &labels).unwrap_err();
    assert_contains(
        &message(error, "images"),
        &["0 rows and 5 columns", "at least one of each"],
    );
}

/// Counts per label, for printing.
fn counts(labels: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for label in labels {
        *counts.entry(label).or_default() += 1;
    }
    counts
}

#[test]
fn real_corpora_parse_when_fetched() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    if !data.is_dir() {
        let why = format!("{} is missing (scripts/fetch-data.sh fetches it)", data.display());
        require::skip_unless_required("data", &why);
        return;
    }
    let start = Instant::now();

    let rotten = data.join("rotten-tomatoes/rotten_tomatoes_corpus_full.csv");
    let columns = Columns {
        skip_labels: vec!["plot".into()],
        ..Columns::new("text", "category")
    };
    let reviews = read_rows(&rotten, None, &columns).unwrap();
    let by_label = counts(reviews.iter().map(|row| row.label.clone()));
    eprintln!("rotten tomatoes without plot: {} rows {by_label:?}", reviews.len());
    assert_eq!(by_label.keys().collect::<Vec<_>>(), ["fresh", "rotten"]);
    assert!((10_000..14_000).contains(&reviews.len()));

    let reuters = data.join("reuters-r8/reuters-r8-train.tab");
    let rows = read_rows(&reuters, None, &Columns::new("Text", "Category")).unwrap();
    let labels = Labels::from_rows(&rows);
    eprintln!(
        "reuters-r8 train: {} rows {:?}",
        rows.len(),
        counts(rows.iter().map(|row| row.label.clone()))
    );
    assert_eq!(labels.len(), 8);
    labels.encode(&rows, &reuters, "Category").unwrap();

    let mnist = read_pixel_csv(&data.join("mnist/mnist_5k.csv"), LabelColumn::Last).unwrap();
    assert_eq!((mnist.len(), mnist.dim), (5000, 784));
    assert_eq!(counts(mnist.labels.iter().map(i64::to_string)).len(), 10);
    assert!(mnist.labels.iter().all(|label| (0..10).contains(label)));

    let fashion = read_idx(
        &data.join("fashion-mnist/train-images-idx3-ubyte.gz"),
        &data.join("fashion-mnist/train-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    assert_eq!((fashion.len(), fashion.dim), (60_000, 784));
    assert!(fashion.labels.iter().all(|label| (0..10).contains(label)));
    assert!(fashion.pixels.iter().all(|pixel| (0.0..=1.0).contains(pixel)));

    eprintln!("real corpora read in {:.2?}", start.elapsed());
}

#[test]
fn an_optional_label_column_may_be_absent() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("unlabeled.csv");
    std::fs::write(&csv, "text\nA warm film.\nDull.\n").unwrap();
    let jsonl = dir.path().join("unlabeled.jsonl");
    std::fs::write(&jsonl, "{\"text\": \"A warm film.\"}\n{\"text\": \"Dull.\"}\n").unwrap();
    let optional = Columns {
        label_optional: true,
        ..Columns::new("text", "label")
    };
    for path in [&csv, &jsonl] {
        let rows = read_rows(path, None, &optional).unwrap();
        let read: Vec<(&str, &str)> = rows.iter().map(|r| (r.text.as_str(), r.label.as_str())).collect();
        assert_eq!(read, [("A warm film.", ""), ("Dull.", "")], "{}", path.display());
        let error = read_rows(path, None, &Columns::new("text", "label")).unwrap_err();
        assert!(error.to_string().contains("no column `label`"), "{error}");
    }
    // Present, it is read as ever.
    let rows = read_rows(&fixture("sentences.csv"), None, &optional).unwrap();
    assert!(rows.iter().all(|r| r.label == "pos" || r.label == "neg"));
}

#[test]
fn each_row_hands_over_examples_before_reading_the_rest_of_the_file() {
    // The third record is ragged: the first two reach `each` before the reader gets to it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.csv");
    std::fs::write(&path, "text,label\nA gem.,pos\nDull.,neg\nbroken\n").unwrap();
    let mut seen = Vec::new();
    let error = loraplus_data::each_row(
        &path,
        None,
        &Columns::new("text", "label"),
        |row| -> Result<(), DataError> {
            seen.push(row.text);
            Ok(())
        },
    )
    .unwrap_err();
    assert_eq!(seen, ["A gem.", "Dull."]);
    assert!(error.to_string().contains("stream.csv:4: row has 1 fields"), "{error}");
}
