//! What can go wrong turning files into examples. Every message names the file, the 1-based line
//! where there is one, the column, and what would have been accepted, so a user can fix the file
//! without reading this crate.

use std::path::PathBuf;

/// An error reading a data file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// A record is not valid UTF-8.
    #[error(
        "{}:{line}: not valid UTF-8; convert the file to UTF-8 (for example `iconv -f latin1 -t utf-8`)",
        .path.display()
    )]
    Encoding {
        /// The file.
        path: PathBuf,
        /// 1-based line where the record starts.
        line: usize,
    },

    /// The file's format cannot be told from its extension.
    #[error(
        "{}: cannot tell the table format from the extension; allowed: `.csv`, `.tsv`, `.jsonl`, `.ndjson`, `.tab` \
         (or name the format: `csv`, `tsv`, `jsonl`, `orange_tab`)",
        .path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },

    /// The file holds no examples.
    #[error("{}: no examples; the file needs at least one data row", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },

    /// A column asked for is not in the header (or a key is not in a JSON lines object).
    #[error("{}:{line}: no column `{column}`; the columns are [{}]", .path.display(), backticked(.available))]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// 1-based line of the header, or of the JSON object lacking the key.
        line: usize,
        /// The column asked for.
        column: String,
        /// The columns the file has.
        available: Vec<String>,
    },

    /// A record has no value (or only whitespace) in a column that needs one.
    #[error("{}:{line}: column `{column}` is empty; every example needs a value there", .path.display())]
    MissingValue {
        /// The file.
        path: PathBuf,
        /// 1-based line where the record starts.
        line: usize,
        /// The column.
        column: String,
    },

    /// A record does not have the shape the format requires (ragged row, bad JSON, bad pixel).
    #[error("{}:{line}: {message}", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line where the record starts.
        line: usize,
        /// What is wrong and what is allowed.
        message: String,
    },

    /// A binary IDX file has the wrong magic number, dimensions or size. It has no lines, so the
    /// message says which header field or byte count is off instead.
    #[error("{}: not a valid IDX file: {message}", .path.display())]
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong and what is allowed.
        message: String,
    },

    /// A label that the training split never showed, so it has no class index.
    #[error(
        "{}:{line}: label `{label}` in column `{column}` is not one of the training labels [{}]",
        .path.display(),
        backticked(.known)
    )]
    UnknownLabel {
        /// The file.
        path: PathBuf,
        /// 1-based line where the record starts.
        line: usize,
        /// The label column.
        column: String,
        /// The label found.
        label: String,
        /// The labels the training split has, in class-index order.
        known: Vec<String>,
    },
    /// A tokenizer that cannot be read or cannot encode.
    #[error("{}: {message}", .path.display())]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Split sizes the file cannot satisfy.
    #[error("{}: {message}", .path.display())]
    Split {
        /// The training (or test) file.
        path: PathBuf,
        /// What does not fit and what is there.
        message: String,
    },

    /// Every training example has the same label: there is nothing to tell apart, and every
    /// trial would reach the majority class's accuracy of 1.
    #[error(
        "{}: every training example has label `{label}` in column `{column}`; a classifier needs at least \
         two labels (check the file, `label` and `skip_labels`)",
        .path.display()
    )]
    SingleLabel {
        /// The training file.
        path: PathBuf,
        /// The label column.
        column: String,
        /// The one label.
        label: String,
    },
}

/// Convenience alias for results of this crate's file readers.
pub type Result<T> = std::result::Result<T, DataError>;

/// `a`, `b`, `c`: names quoted so that empty or space-padded ones stay visible.
fn backticked(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
