//! Labelled text examples from table files (CSV, TSV, JSON lines, Orange `.tab`), and the label
//! vocabulary that turns their labels into class indices.
//!
//! Files are read a record at a time (a file of any size streams through [`each_row`]) and
//! checked for UTF-8 record by record, so an encoding error can name the line it is on instead of
//! failing the whole file.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DataError, Result};

/// The layout of a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    /// Comma-separated with a header row; fields may be quoted with `"` and then hold commas and
    /// newlines.
    Csv,
    /// Tab-separated with a header row and no quoting: GLUE's files hold unbalanced `"` inside
    /// fields, so a field can hold anything but a tab or a newline.
    Tsv,
    /// One JSON object per line; blank lines are skipped.
    Jsonl,
    /// Orange's `.tab`: tab-separated without quoting; line 1 names the columns, line 2 gives
    /// their types and line 3 their flags, and the data follows.
    OrangeTab,
}

impl TableFormat {
    /// The format named by `path`'s extension: `.csv`, `.tsv`, `.jsonl` or `.ndjson`, `.tab`
    /// (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Self> {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Ok(Self::Csv),
            Some("tsv") => Ok(Self::Tsv),
            Some("jsonl" | "ndjson") => Ok(Self::Jsonl),
            Some("tab") => Ok(Self::OrangeTab),
            _ => Err(DataError::UnknownFormat { path: path.to_owned() }),
        }
    }
}

/// Which columns (JSON keys, for JSON lines) hold an example's parts, and which labels mark rows
/// that are not examples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Columns {
    /// The text to classify.
    pub text: String,
    /// A second text for sentence-pair tasks (MNLI, QNLI, QQP); none for single-text tasks.
    #[serde(default)]
    pub text_pair: Option<String>,
    /// The label.
    pub label: String,
    /// Rows with one of these labels are dropped before their other values are checked, since
    /// they need not be examples at all: the Rotten Tomatoes corpus mixes reviews with `plot`
    /// summaries, 14 of which have no text. Empty by default.
    #[serde(default)]
    pub skip_labels: Vec<String>,
    /// Whether a file may lack the label column, its rows then labelled `""` (text to classify
    /// rather than to train on). Default: false.
    #[serde(default)]
    pub label_optional: bool,
}

impl Columns {
    /// A single-text task's columns, skipping no label.
    pub fn new(text: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            text_pair: None,
            label: label.into(),
            skip_labels: Vec::new(),
            label_optional: false,
        }
    }

    /// Whether rows labelled `label` are dropped.
    fn skips(&self, label: &str) -> bool {
        self.skip_labels.iter().any(|skipped| skipped == label)
    }
}

/// One labelled example as the file has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRow {
    /// The text, exactly as in the file.
    pub text: String,
    /// The second text of a sentence pair.
    pub text_pair: Option<String>,
    /// The label, trimmed of surrounding whitespace (numbers and booleans in JSON as written).
    pub label: String,
    /// 1-based line where the record starts, for error messages.
    pub line: usize,
}

/// Reads every example of `path`, leaving out rows whose label is in `columns.skip_labels`. The
/// format is `format`, or else told by the extension (see [`TableFormat::from_path`]). Header
/// names are matched after trimming whitespace.
///
/// A text or label that is empty or whitespace is an error rather than a skipped row, so that a
/// shifted column shows up instead of silently shrinking the data.
pub fn read_rows(path: &Path, format: Option<TableFormat>, columns: &Columns) -> Result<Vec<TextRow>> {
    let mut rows = Vec::new();
    each_row(path, format, columns, |row| -> Result<()> {
        rows.push(row);
        Ok(())
    })?;
    Ok(rows)
}

/// [`read_rows`], one example at a time: the file is read a record at a time and `each` gets
/// every example as soon as it is read, so a file of any size streams through. The first error
/// `each` returns stops the reading and is returned.
pub fn each_row<E: From<DataError>>(
    path: &Path,
    format: Option<TableFormat>,
    columns: &Columns,
    mut each: impl FnMut(TextRow) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let format = match format {
        Some(format) => format,
        None => TableFormat::from_path(path)?,
    };
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut stopped = None;
    let read = rows_from_reader(
        path,
        BufReader::new(file),
        format,
        columns,
        &mut |row| match each(row) {
            Ok(()) => true,
            Err(error) => {
                stopped = Some(error);
                false
            }
        },
    );
    match stopped {
        Some(error) => Err(error),
        None => Ok(read?),
    }
}

/// [`read_rows`] on the contents of a file already in memory; `path` only names the file in
/// errors.
pub fn rows_from_bytes(path: &Path, bytes: &[u8], format: TableFormat, columns: &Columns) -> Result<Vec<TextRow>> {
    let mut rows = Vec::new();
    rows_from_reader(path, bytes, format, columns, &mut |row| {
        rows.push(row);
        true
    })?;
    Ok(rows)
}

/// Every example `reader` holds, to `each` until it returns false; an error if there is none.
fn rows_from_reader(
    path: &Path,
    mut reader: impl BufRead,
    format: TableFormat,
    columns: &Columns,
    each: &mut dyn FnMut(TextRow) -> bool,
) -> Result<()> {
    // Editors on Windows prepend a byte-order mark; left in, it would become part of the first
    // column's name.
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    if reader.fill_buf().map_err(io)?.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    let mut count = 0;
    let mut counted = |row: TextRow| {
        count += 1;
        each(row)
    };
    match format {
        TableFormat::Csv => read_delimited(path, reader, (b',', true, 0), columns, &mut counted)?,
        TableFormat::Tsv => read_delimited(path, reader, (b'\t', false, 0), columns, &mut counted)?,
        TableFormat::OrangeTab => read_delimited(path, reader, (b'\t', false, 2), columns, &mut counted)?,
        TableFormat::Jsonl => read_jsonl(path, reader, columns, &mut counted)?,
    }
    if count == 0 {
        return Err(DataError::Empty { path: path.to_owned() });
    }
    Ok(())
}

/// Reads a delimited file: a header row of column names, then `skip_after_header` more header
/// lines (Orange's types and flags), then one example per record.
fn read_delimited(
    path: &Path,
    reader: impl Read,
    (delimiter, quoting, skip_after_header): (u8, bool, usize),
    columns: &Columns,
    each: &mut dyn FnMut(TextRow) -> bool,
) -> Result<()> {
    // Widths are checked here rather than by the csv crate (`flexible`), so the message can say
    // which header the row disagrees with.
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quoting(quoting)
        .has_headers(false)
        .flexible(true)
        .from_reader(Kept::new(reader));
    let mut record = csv::ByteRecord::new();
    if !next_record(path, &mut reader, &mut record)? {
        return Err(DataError::Empty { path: path.to_owned() });
    }
    let header_line = line_of(&reader, &record);
    let names = record
        .iter()
        .map(|name| Ok(utf8(path, header_line, name)?.trim().to_owned()))
        .collect::<Result<Vec<_>>>()?;
    let find = |column: &str| {
        names
            .iter()
            .position(|name| name == column)
            .ok_or_else(|| DataError::MissingColumn {
                path: path.to_owned(),
                line: header_line,
                column: column.to_owned(),
                available: names.clone(),
            })
    };
    let text_index = find(&columns.text)?;
    let pair_index = columns.text_pair.as_deref().map(find).transpose()?;
    let label_index = if columns.label_optional && !names.contains(&columns.label) {
        None
    } else {
        Some(find(&columns.label)?)
    };

    while next_record(path, &mut reader, &mut record)? {
        // Orange's type and flag lines may be blank, which the csv reader skips, so they are
        // told apart by line number rather than by counting records.
        let line = line_of(&reader, &record);
        if line <= header_line + skip_after_header {
            continue;
        }
        if record.len() != names.len() {
            let hint = if quoting {
                "put a field that holds a comma in double quotes"
            } else {
                "a field cannot hold a tab or a line break"
            };
            return Err(DataError::Malformed {
                path: path.to_owned(),
                line,
                message: format!(
                    "row has {} fields but the header (line {header_line}) has {}; {hint}",
                    record.len(),
                    names.len()
                ),
            });
        }
        let field = |index: usize, column: &str| -> Result<&str> {
            let value = utf8(path, line, &record[index])?;
            non_empty(path, line, column, value)
        };
        let label = match label_index {
            Some(index) => field(index, &columns.label)?.trim(),
            None => "",
        };
        if columns.skips(label) {
            continue;
        }
        let row = TextRow {
            text: field(text_index, &columns.text)?.to_owned(),
            text_pair: match (pair_index, &columns.text_pair) {
                (Some(index), Some(column)) => Some(field(index, column)?.to_owned()),
                _ => None,
            },
            label: label.to_owned(),
            line,
        };
        if !each(row) {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads the next record into `record`; false at the end of the file.
fn next_record<R: Read>(path: &Path, reader: &mut csv::Reader<Kept<R>>, record: &mut csv::ByteRecord) -> Result<bool> {
    reader.read_byte_record(record).map_err(|error| DataError::Malformed {
        path: path.to_owned(),
        line: error.position().map_or(0, |position| position.line() as usize),
        message: error.to_string(),
    })
}

/// A reader that keeps the bytes read since the last record's start, so [`line_of`] can look at
/// the bytes where a record starts without the whole file in memory.
struct Kept<R> {
    inner: R,
    /// The byte offset of `bytes[0]` in the stream, and the bytes kept.
    window: std::rc::Rc<std::cell::RefCell<(u64, Vec<u8>)>>,
}

impl<R> Kept<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            window: Default::default(),
        }
    }
}

impl<R: Read> Read for Kept<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.window.borrow_mut().1.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// 1-based line where `record` starts. Bytes before it are dropped from the reader's window:
/// no later record starts there.
fn line_of<R: Read>(reader: &csv::Reader<Kept<R>>, record: &csv::ByteRecord) -> usize {
    let Some(position) = record.position() else { return 0 };
    let mut window = reader.get_ref().window.borrow_mut();
    let (start, bytes) = &mut *window;
    let offset = (position.byte() - *start) as usize;
    // The csv reader skips blank lines but places the record where the skipped lines began.
    let skipped = bytes[offset..]
        .iter()
        .take_while(|&&byte| byte == b'\n' || byte == b'\r')
        .filter(|&&byte| byte == b'\n')
        .count();
    bytes.drain(..offset);
    *start = position.byte();
    position.line() as usize + skipped
}

/// Reads JSON lines: one object per line, each holding the columns as keys.
fn read_jsonl(
    path: &Path,
    reader: impl BufRead,
    columns: &Columns,
    each: &mut dyn FnMut(TextRow) -> bool,
) -> Result<()> {
    for (index, raw) in reader.split(b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = utf8(path, line, &raw)?;
        if text.trim().is_empty() {
            continue;
        }
        let malformed = |message: String| DataError::Malformed {
            path: path.to_owned(),
            line,
            message,
        };
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(other) => {
                return Err(malformed(format!(
                    "expected a JSON object like {{\"{}\": \"...\", \"{}\": \"...\"}}, found {}",
                    columns.text,
                    columns.label,
                    json_kind(&other)
                )));
            }
            Err(error) => {
                // serde_json counts lines within the one line it was given; only its column helps.
                let display = error.to_string();
                let reason = display.split(" at line ").next().unwrap_or(&display);
                return Err(malformed(format!(
                    "not valid JSON at column {}: {reason}",
                    error.column()
                )));
            }
        };
        let get = |column: &str| {
            object.get(column).ok_or_else(|| DataError::MissingColumn {
                path: path.to_owned(),
                line,
                column: column.to_owned(),
                available: object.keys().cloned().collect(),
            })
        };
        let string = |column: &str| -> Result<String> {
            match get(column)? {
                Value::String(value) => Ok(non_empty(path, line, column, value)?.to_owned()),
                Value::Null => Err(DataError::MissingValue {
                    path: path.to_owned(),
                    line,
                    column: column.to_owned(),
                }),
                other => Err(malformed(format!(
                    "`{column}` must be a string, found {}",
                    json_kind(other)
                ))),
            }
        };
        let label = match object.get(&columns.label) {
            None if columns.label_optional => String::new(),
            None => return Err(get(&columns.label).unwrap_err()),
            Some(value) => match value {
                Value::String(value) => non_empty(path, line, &columns.label, value)?.trim().to_owned(),
                Value::Number(value) => value.to_string(),
                Value::Bool(value) => value.to_string(),
                Value::Null => {
                    return Err(DataError::MissingValue {
                        path: path.to_owned(),
                        line,
                        column: columns.label.clone(),
                    });
                }
                other => {
                    return Err(malformed(format!(
                        "`{}` must be a string, number or boolean, found {}",
                        columns.label,
                        json_kind(other)
                    )));
                }
            },
        };
        if columns.skips(&label) {
            continue;
        }
        let row = TextRow {
            text: string(&columns.text)?,
            text_pair: columns.text_pair.as_deref().map(string).transpose()?,
            label,
            line,
        };
        if !each(row) {
            return Ok(());
        }
    }
    Ok(())
}

/// "an array", "a number", ...: what a JSON value is, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `bytes` as text, or an encoding error naming `line`.
fn utf8<'a>(path: &Path, line: usize, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| DataError::Encoding {
        path: path.to_owned(),
        line,
    })
}

/// `value` unless it is empty or whitespace.
fn non_empty<'a>(path: &Path, line: usize, column: &str, value: &'a str) -> Result<&'a str> {
    if value.trim().is_empty() {
        return Err(DataError::MissingValue {
            path: path.to_owned(),
            line,
            column: column.to_owned(),
        });
    }
    Ok(value)
}

/// The label vocabulary: a label's class index is its position in [`Labels::names`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    names: Vec<String>,
}

impl Labels {
    /// Labels in the given order (for example the order a dataset card documents).
    pub fn new(names: Vec<String>) -> Self {
        Self { names }
    }

    /// The distinct labels of `rows`, sorted, so the same training file always gives the same
    /// class indices.
    pub fn from_rows(rows: &[TextRow]) -> Self {
        let names: BTreeSet<&str> = rows.iter().map(|row| row.label.as_str()).collect();
        Self {
            names: names.into_iter().map(str::to_owned).collect(),
        }
    }

    /// The labels in class-index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The class index of each row's label. `path` and `column` are where the rows came from, for
    /// the error a label outside the vocabulary gets.
    pub fn encode(&self, rows: &[TextRow], path: &Path, column: &str) -> Result<Vec<i64>> {
        let index: HashMap<&str, i64> = self
            .names
            .iter()
            .enumerate()
            .map(|(class, name)| (name.as_str(), class as i64))
            .collect();
        rows.iter()
            .map(|row| {
                index
                    .get(row.label.as_str())
                    .copied()
                    .ok_or_else(|| DataError::UnknownLabel {
                        path: path.to_owned(),
                        line: row.line,
                        column: column.to_owned(),
                        label: row.label.clone(),
                        known: self.names.clone(),
                    })
            })
            .collect()
    }
}
