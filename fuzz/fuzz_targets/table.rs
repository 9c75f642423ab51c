//! Fuzzes the table readers: the input is a file's contents, read as each format with each
//! column layout of the fixtures. Every read must give rows or a `DataError`, never a panic.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use loraplus_data::{Columns, TableFormat, rows_from_bytes};

const FORMATS: [TableFormat; 4] = [
    TableFormat::Csv,
    TableFormat::Tsv,
    TableFormat::Jsonl,
    TableFormat::OrangeTab,
];

/// The column layouts of `crates/data/tests/fixtures/`.
fn layouts() -> Vec<Columns> {
    vec![
        Columns::new("text", "label"),
        Columns::new("sentence", "label"),
        Columns::new("Text", "Category"),
        Columns {
            text_pair: Some("hypothesis".into()),
            ..Columns::new("premise", "label")
        },
        Columns {
            skip_labels: vec!["plot".into()],
            ..Columns::new("text", "category")
        },
        Columns {
            label_optional: true,
            ..Columns::new("text", "label")
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    for format in FORMATS {
        for columns in layouts() {
            let Ok(rows) = rows_from_bytes(Path::new("fuzz.table"), data, format, &columns) else {
                continue;
            };
            assert!(!rows.is_empty(), "an empty file is an error");
            for row in &rows {
                assert!(row.line >= 1, "lines are 1-based");
                assert!(
                    !row.text.trim().is_empty() && !row.label.is_empty(),
                    "empty values are errors"
                );
                assert!(!columns.skip_labels.contains(&row.label), "skipped labels are dropped");
            }
        }
    }
});
