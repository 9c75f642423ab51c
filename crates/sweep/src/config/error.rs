//! What is wrong with a config, and where: a checked value names its key as a path into the TOML
//! document (`task[1].name`), which the file's own spans turn into a line.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

/// A path into a config document: table keys and, for `[[task]]` and `[[model]]`, array indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// A path of dotted keys, e.g. `train.steps`.
    pub fn new(dotted: &str) -> Self {
        Self(dotted.split('.').map(|key| Part::Key(key.to_string())).collect())
    }

    /// This path inside element `index` of the array of tables `array`, e.g. `task[2].n_val`.
    pub fn in_array(mut self, array: &str, index: usize) -> Self {
        self.0.splice(0..0, [Part::Key(array.to_string()), Part::Index(index)]);
        self
    }

    /// The 1-based line of the deepest part of the path that `text` holds (a missing key points
    /// at its table), if `text` parses.
    pub fn line_in(&self, text: &str) -> Option<usize> {
        let document = DeTable::parse(text).ok()?;
        let mut span = None;
        let mut value: Option<&DeValue> = None;
        for part in &self.0 {
            let found = match (part, value) {
                (Part::Key(key), None) => key_in(document.get_ref(), key),
                (Part::Key(key), Some(DeValue::Table(table))) => key_in(table, key),
                (Part::Index(index), Some(DeValue::Array(items))) => {
                    items.get(*index).map(|item| (item.span(), item.get_ref()))
                }
                _ => None,
            };
            let Some((found_span, found)) = found else { break };
            span = Some(found_span);
            value = Some(found);
        }
        span.map(|span| line_at(text, span.start))
    }
}

/// The 1-based line of byte `offset` of `text`.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// The span of `key` in `table` and its value.
fn key_in<'a>(table: &'a DeTable, key: &str) -> Option<(Range<usize>, &'a DeValue<'a>)> {
    let (name, value) = table.iter().find(|(name, _)| name.get_ref() == key)?;
    Some((name.span(), value.get_ref()))
}

impl fmt::Display for KeyPath {
    /// The keys, dotted, without indices: `task.name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self
            .0
            .iter()
            .filter_map(|part| match part {
                Part::Key(key) => Some(key.as_str()),
                Part::Index(_) => None,
            })
            .collect();
        f.write_str(&keys.join("."))
    }
}

/// One value a config may not have: its key and what is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// Where the value is.
    pub key: KeyPath,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl Invalid {
    /// The value of dotted `key` is wrong, as `message` says.
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: KeyPath::new(key),
            message: message.into(),
        }
    }

    /// The same error about a key inside element `index` of `array` (a `[[task]]` or `[[model]]`).
    pub fn in_array(self, array: &str, index: usize) -> Self {
        Self {
            key: self.key.in_array(array, index),
            ..self
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// Everything wrong with a config, named by file, key and (where known) line.
#[derive(Debug, thiserror::Error)]
#[error("{file}{line}: {message}", line = line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// The line of the offending key, where known.
    pub line: Option<usize>,
    /// What is wrong and what is allowed.
    pub message: String,
}
