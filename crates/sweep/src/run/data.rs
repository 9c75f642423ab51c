//! The data trials read: each task's splits generated or read from its files once, and
//! tokenized once per tokenizer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use loraplus_data::{Inputs, TaskData, TextEncoder};

use crate::config::{Features, InputShape, ModelConfig, TaskConfig, TaskKind};
use crate::plan::TrialSpec;

/// The data of every task a set of trials reads, made once. A text task is tokenized once per
/// tokenizer, so the key is the task's name and the model's tokenizer.
#[derive(Default)]
pub struct DataCache(BTreeMap<(String, Option<PathBuf>), TaskData>);

impl DataCache {
    /// Adds the downstream and pretraining tasks of `trials` not read yet.
    pub fn add(&mut self, trials: &[TrialSpec], log: &dyn Fn(String)) -> Result<()> {
        let cache = &mut self.0;
        for spec in trials {
            for task in std::iter::once(&spec.task).chain(&spec.pretrain_task) {
                let key = (task.name.clone(), spec.model.kind.tokenizer());
                if cache.contains_key(&key) {
                    continue;
                }
                let started = Instant::now();
                let data = load(&task.kind, key.1.as_deref()).with_context(|| format!("task `{}`", task.name))?;
                log(format!(
                    "task `{}`: {} train / {} val / {} test examples, {} classes ({:.1}s)",
                    task.name,
                    data.train.len(),
                    data.val.len(),
                    data.test.len(),
                    data.n_classes(),
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

/// A task's splits: generated, or read from its files (text tokenized by `tokenizer`, the
/// model's `tokenizer.json`). The same config always gives the same data.
fn load(task: &TaskKind, tokenizer: Option<&Path>) -> Result<TaskData> {
    Ok(match task {
        TaskKind::Teacher(t) => t.generate(),
        TaskKind::BagOfTokens(t) => t.generate(),
        TaskKind::Text(t) => {
            let tokenizer = tokenizer.context("a text task needs a model with a tokenizer")?;
            t.load(&TextEncoder::from_file(tokenizer, t.max_seq_len)?)?
        }
        TaskKind::Images(t) => t.load()?,
    })
}

/// The shape of `data`'s inputs, as `task` describes them (or, for images, as their files do).
pub fn input_shape(task: &TaskKind, data: &TaskData) -> InputShape {
    let features = match (task.shape(), &data.train.inputs) {
        (Some(shape), _) => shape.features,
        (None, Inputs::Vectors { dim, .. }) => Features::Vectors(*dim),
        (None, Inputs::Tokens { .. }) => Features::Text,
    };
    InputShape {
        features,
        n_classes: data.n_classes(),
    }
}
