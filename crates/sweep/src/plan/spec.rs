//! One trial, fully resolved, and its id.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{LoraSection, ModelConfig, Section, TaskConfig, TrainConfig};

/// What a trial trains.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Adapters (plus the head) with the LoRA+ optimizer; `ratio = 1` is plain LoRA.
    Lora,
    /// The frozen-base baseline: only the head trains.
    HeadOnly,
}

impl Method {
    /// Its name in records and tables: `lora` or `head_only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Lora => "lora",
            Method::HeadOnly => "head_only",
        }
    }
}

/// One trial, fully resolved: every list in the config has been replaced by one of its values.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TrialSpec {
    /// The model (with its pretraining recipe).
    pub model: ModelConfig,
    /// The downstream task.
    pub task: TaskConfig,
    /// The pretraining task of `model` (none for a pretrained checkpoint).
    pub pretrain_task: Option<TaskConfig>,
    /// Adapters or the head-only baseline.
    pub method: Method,
    /// Seed of the head init, adapter init and data order.
    pub seed: u64,
    /// Rate of group A.
    pub eta_a: f64,
    /// `eta_B / eta_A`.
    pub ratio: f64,
    /// Training settings, every key single-valued.
    pub train: TrainConfig,
    /// Adapter settings, every key single-valued.
    pub lora: LoraSection,
}

impl TrialSpec {
    /// A 16-hex-digit id: the SHA-256 of the spec's canonical JSON. Struct fields serialise in
    /// declaration order and floats in shortest round-trip form, so the id is the same on every
    /// machine and in every run.
    pub fn id(&self) -> String {
        digest(self, 8)
    }

    /// `eta_B = eta_A * ratio`.
    pub fn eta_b(&self) -> f64 {
        self.eta_a * self.ratio
    }

    /// Optimizer updates: `steps`, or `epochs` passes of `batch_size`.
    pub fn steps(&self) -> usize {
        match (&self.train.steps, &self.train.epochs) {
            (Some(steps), _) => steps.get(),
            (None, Some(epochs)) => {
                let n_train = self.task.kind.n_train().expect("validated: epochs need n_train");
                epochs.get() * n_train.div_ceil(self.train.batch_size.get())
            }
            (None, None) => unreachable!("validated: steps or epochs"),
        }
    }

    /// The numeric training settings, then the adapter settings, with their values (the tables'
    /// columns).
    pub fn numeric_keys(&self) -> Vec<(&'static str, f64)> {
        let settings = self.train.settings().into_iter().chain(self.lora.settings());
        settings.map(|(key, values)| (key, values.all()[0])).collect()
    }
}

/// The first `bytes` bytes of the SHA-256 of `value`'s canonical JSON, in hex. Struct fields
/// serialise in declaration order and floats in shortest round-trip form, so the digest is the
/// same on every machine.
pub fn digest(value: &impl Serialize, bytes: usize) -> String {
    let json = serde_json::to_string(value).expect("a spec serialises");
    Sha256::digest(json.as_bytes())
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}
