//! `[[task]]`: the tasks a sweep can name, what each holds, and the shape of inputs a model must
//! be built for, as far as the config tells it.

use std::path::{Path, PathBuf};

use loraplus_data::{BagOfTokensTask, ImageTask, TeacherTask, TextTask};
use serde::{Deserialize, Serialize};

use super::error::Invalid;

/// A task: a name and how its data is made.
///
/// (Unknown keys are rejected by the `kind`'s own struct: serde cannot combine
/// `deny_unknown_fields` with `flatten` on this one.)
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TaskConfig {
    /// Name used in reports and `pairs`.
    pub name: String,
    /// The data.
    #[serde(flatten)]
    pub kind: TaskKind,
}

/// How a task's data is made.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskKind {
    /// Vectors `x ~ N(0, I)` labelled by a one-hidden-layer ReLU teacher.
    Teacher(TeacherTask),
    /// Token sequences labelled by the mean of per-token class scores.
    BagOfTokens(BagOfTokensTask),
    /// Labelled text or text pairs from a CSV / TSV / JSON-lines / Orange `.tab` file.
    Text(TextTask),
    /// Labelled images from IDX files or a CSV of pixels.
    Images(ImageTask),
}

/// What a model must know of a task's inputs to be built.
#[derive(Debug, Clone, PartialEq)]
pub struct InputShape {
    /// The features.
    pub features: Features,
    /// Number of classes.
    pub n_classes: usize,
}

/// The kind and size of a task's inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// Vectors of this many features.
    Vectors(usize),
    /// Token ids below `vocab`, at most `seq_len` per sequence.
    Tokens { vocab: usize, seq_len: usize },
    /// Text, tokenized by the model's own tokenizer.
    Text,
}

impl TaskKind {
    /// Checks sizes and scales; keys are the task's own (`n_val`).
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            TaskKind::Teacher(t) => {
                let sizes = [("d_input", t.d_input), ("teacher_width", t.teacher_width)];
                synthetic_sizes(&sizes, t.n_classes, (t.n_train, t.n_val, t.n_test), t.shift_scale)
            }
            TaskKind::BagOfTokens(t) => {
                if t.vocab < 2 {
                    return Err(Invalid::new(
                        "vocab",
                        format!("{} is too small; need at least 2 (id 0 is padding)", t.vocab),
                    ));
                }
                synthetic_sizes(
                    &[("seq_len", t.seq_len)],
                    t.n_classes,
                    (t.n_train, t.n_val, t.n_test),
                    t.shift_scale,
                )
            }
            TaskKind::Text(t) => {
                if t.max_seq_len < 3 {
                    return Err(Invalid::new(
                        "max_seq_len",
                        format!("{} is too short; need at least 3 ([CLS] text [SEP])", t.max_seq_len),
                    ));
                }
                file_split_sizes(t.n_train, t.n_val, t.n_test)
            }
            TaskKind::Images(t) => {
                label_file_given(&t.train, &t.train_labels, "train_labels")?;
                if let Some(test) = &t.test {
                    label_file_given(test, &t.test_labels, "test_labels")?;
                }
                file_split_sizes(t.n_train, t.n_val, t.n_test)
            }
        }
    }

    /// Training examples, where the config fixes them.
    pub fn n_train(&self) -> Option<usize> {
        match self {
            TaskKind::Teacher(t) => Some(t.n_train),
            TaskKind::BagOfTokens(t) => Some(t.n_train),
            TaskKind::Text(t) => t.n_train,
            TaskKind::Images(t) => t.n_train,
        }
    }

    /// The input shape, where the config alone tells it (images need their files read).
    pub fn shape(&self) -> Option<InputShape> {
        match self {
            TaskKind::Teacher(t) => Some(InputShape {
                features: Features::Vectors(t.d_input),
                n_classes: t.n_classes,
            }),
            TaskKind::BagOfTokens(t) => Some(InputShape {
                features: Features::Tokens {
                    vocab: t.vocab,
                    seq_len: t.seq_len,
                },
                n_classes: t.n_classes,
            }),
            TaskKind::Text(t) => Some(InputShape {
                features: Features::Text,
                n_classes: t.labels.as_ref().map_or(2, Vec::len),
            }),
            TaskKind::Images(_) => None,
        }
    }

    /// Tokens per sequence at most (1 for vector inputs).
    pub fn sequence_length(&self) -> usize {
        match self {
            TaskKind::BagOfTokens(t) => t.seq_len,
            TaskKind::Text(t) => t.max_seq_len,
            TaskKind::Teacher(_) | TaskKind::Images(_) => 1,
        }
    }
}

/// Checks the sizes and shift of a synthetic task.
fn synthetic_sizes(
    sizes: &[(&str, usize)],
    n_classes: usize,
    (n_train, n_val, n_test): (usize, usize, usize),
    shift_scale: f64,
) -> Result<(), Invalid> {
    for (key, value) in sizes.iter().chain(&[("n_train", n_train)]) {
        if *value == 0 {
            return Err(Invalid::new(key, "must be at least 1"));
        }
    }
    if n_classes < 2 {
        return Err(Invalid::new(
            "n_classes",
            format!("{n_classes} is too few; need at least 2"),
        ));
    }
    if n_val == 0 || n_test == 0 {
        return Err(Invalid::new(
            "n_val",
            "validation and test splits need at least 1 example each",
        ));
    }
    if !(shift_scale.is_finite() && shift_scale >= 0.0) {
        return Err(Invalid::new(
            "shift_scale",
            format!("{shift_scale} is not allowed; must be >= 0"),
        ));
    }
    Ok(())
}

/// An IDX image file needs its label file; a CSV holds its labels itself.
fn label_file_given(images: &Path, labels: &Option<PathBuf>, key: &str) -> Result<(), Invalid> {
    let csv = images.extension().is_some_and(|e| e == "csv");
    match (csv, labels) {
        (true, Some(_)) => Err(Invalid::new(
            key,
            format!(
                "{} is a CSV, which holds its own labels; remove {key}",
                images.display()
            ),
        )),
        (false, None) => Err(Invalid::new(
            key,
            format!("{} is an IDX file; give its label file as {key}", images.display()),
        )),
        _ => Ok(()),
    }
}

/// Checks the split sizes of a task read from files.
fn file_split_sizes(n_train: Option<usize>, n_val: usize, n_test: Option<usize>) -> Result<(), Invalid> {
    for (key, value) in [("n_train", n_train), ("n_val", Some(n_val)), ("n_test", n_test)] {
        if value == Some(0) {
            return Err(Invalid::new(key, "must be at least 1"));
        }
    }
    Ok(())
}
