//! The tasks a sweep can name: each kind of task, how its data is made, and the shape of
//! inputs a model must be built for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use loraplus_data::{BagOfTokensTask, ImageTask, Inputs, TaskData, TeacherTask, TextEncoder, TextTask};
use serde::{Deserialize, Serialize};

use crate::config::{ModelConfig, TaskConfig};
use crate::grid::TrialSpec;

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

/// The data of every task a set of trials reads, made once. A text task is tokenized once per
/// tokenizer, so the key is the task's name and the model's tokenizer.
pub struct DataCache(BTreeMap<(String, Option<PathBuf>), TaskData>);

impl DataCache {
    /// Reads or generates the downstream and pretraining tasks of `trials`.
    pub fn load(trials: &[TrialSpec], log: &dyn Fn(String)) -> Result<Self> {
        let mut cache = Self(BTreeMap::new());
        cache.add(trials, log)?;
        Ok(cache)
    }

    /// Adds the tasks of `trials` not read yet.
    pub fn add(&mut self, trials: &[TrialSpec], log: &dyn Fn(String)) -> Result<()> {
        let cache = &mut self.0;
        for spec in trials {
            for task in std::iter::once(&spec.task).chain(&spec.pretrain_task) {
                let key = (task.name.clone(), spec.model.kind.tokenizer());
                if cache.contains_key(&key) {
                    continue;
                }
                let started = Instant::now();
                let data = task
                    .kind
                    .load(key.1.as_deref())
                    .with_context(|| format!("task `{}`", task.name))?;
                log(format!(
                    "task `{}`: {} train / {} val / {} test examples, {} classes ({:.1}s)",
                    task.name,
                    data.train.len(),
                    data.val.len(),
                    data.test.len(),
                    data.n_classes,
                    started.elapsed().as_secs_f64()
                ));
                cache.insert(key, data);
            }
        }
        Ok(())
    }

    /// The data of `task` as `model` reads it.
    pub fn get(&self, task: &TaskConfig, model: &ModelConfig) -> &TaskData {
        &self.0[&(task.name.clone(), model.kind.tokenizer())]
    }
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
    /// Checks sizes and scales; on failure returns the key and what is allowed.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            TaskKind::Teacher(t) => {
                let sizes = [("d_input", t.d_input), ("teacher_width", t.teacher_width)];
                synthetic_sizes(&sizes, t.n_classes, (t.n_train, t.n_val, t.n_test), t.shift_scale)
            }
            TaskKind::BagOfTokens(t) => {
                if t.vocab < 2 {
                    return Err((
                        "vocab".into(),
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
                    return Err((
                        "max_seq_len".into(),
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

    /// The task's splits: generated, or read from its files (text tokenized by `tokenizer`,
    /// the model's `tokenizer.json`). The same config always gives the same data.
    pub fn load(&self, tokenizer: Option<&Path>) -> Result<TaskData> {
        Ok(match self {
            TaskKind::Teacher(t) => t.generate(),
            TaskKind::BagOfTokens(t) => t.generate(),
            TaskKind::Text(t) => {
                let tokenizer = tokenizer.context("a text task needs a model with a tokenizer")?;
                t.load(&TextEncoder::from_file(tokenizer, t.max_seq_len)?)?
            }
            TaskKind::Images(t) => t.load()?,
        })
    }
}

impl InputShape {
    /// The shape of `data`'s inputs, as `task` describes them.
    pub fn of(task: &TaskKind, data: &TaskData) -> Self {
        let features = match (task.shape(), &data.train.inputs) {
            (Some(shape), _) => shape.features,
            (None, Inputs::Vectors { dim, .. }) => Features::Vectors(*dim),
            (None, Inputs::Tokens { .. }) => Features::Text,
        };
        Self {
            features,
            n_classes: data.n_classes,
        }
    }
}

/// Checks the sizes and shift of a synthetic task.
fn synthetic_sizes(
    sizes: &[(&str, usize)],
    n_classes: usize,
    (n_train, n_val, n_test): (usize, usize, usize),
    shift_scale: f64,
) -> Result<(), (String, String)> {
    for (key, value) in sizes.iter().chain(&[("n_train", n_train)]) {
        if *value == 0 {
            return Err((key.to_string(), "must be at least 1".into()));
        }
    }
    if n_classes < 2 {
        return Err(("n_classes".into(), format!("{n_classes} is too few; need at least 2")));
    }
    if n_val == 0 || n_test == 0 {
        return Err((
            "n_val".into(),
            "validation and test splits need at least 1 example each".into(),
        ));
    }
    if !(shift_scale.is_finite() && shift_scale >= 0.0) {
        return Err((
            "shift_scale".into(),
            format!("{shift_scale} is not allowed; must be >= 0"),
        ));
    }
    Ok(())
}

/// An IDX image file needs its label file; a CSV holds its labels itself.
fn label_file_given(images: &Path, labels: &Option<PathBuf>, key: &str) -> Result<(), (String, String)> {
    let csv = images.extension().is_some_and(|e| e == "csv");
    match (csv, labels) {
        (true, Some(_)) => Err((
            key.into(),
            format!(
                "{} is a CSV, which holds its own labels; remove {key}",
                images.display()
            ),
        )),
        (false, None) => Err((
            key.into(),
            format!("{} is an IDX file; give its label file as {key}", images.display()),
        )),
        _ => Ok(()),
    }
}

/// Checks the split sizes of a task read from files.
fn file_split_sizes(n_train: Option<usize>, n_val: usize, n_test: Option<usize>) -> Result<(), (String, String)> {
    for (key, value) in [("n_train", n_train), ("n_val", Some(n_val)), ("n_test", n_test)] {
        if value == Some(0) {
            return Err((key.into(), "must be at least 1".into()));
        }
    }
    Ok(())
}
