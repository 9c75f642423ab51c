//! The record schema: what a finished trial leaves behind, independent of the code that trained
//! it (the training loop writes these; reports, merges and status read them).

use serde::{Deserialize, Serialize};

use crate::plan::TrialSpec;

/// Everything a finished trial leaves behind.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// [`TrialSpec::id`] of `spec`.
    pub trial_id: String,
    /// How it ended.
    pub status: Status,
    /// Why it stopped early or failed, if it did.
    pub message: Option<String>,
    /// The resolved config that produced it, seed included.
    pub spec: TrialSpec,
    /// Optimizer updates taken.
    pub steps_run: usize,
    /// Updates planned.
    pub steps_planned: usize,
    /// Final and best accuracies, read off `curve`.
    pub accuracy: Accuracies,
    /// Evaluation points; the last is the final evaluation.
    pub curve: Vec<CurvePoint>,
    /// Accuracy of always predicting the test split's majority class (none if the trial failed
    /// before its data was read).
    pub majority_test_accuracy: Option<f64>,
    /// Trainable / total parameters.
    pub trainable_params: usize,
    /// Total parameters.
    pub total_params: usize,
    /// Seconds from start to record.
    pub wall_seconds: f64,
    /// Where and with what it ran.
    pub provenance: Provenance,
    /// The SHA-256 of its saved adapter's weights (`trials/<id>/adapter_model.safetensors`), if
    /// it saved one; a copy that does not match is corrupt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_sha256: Option<String>,
}

/// A trial's headline numbers (none where the trial never evaluated).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Accuracies {
    /// Validation accuracy at the last evaluation (of a diverged trial: its last before diverging).
    pub final_val: Option<f64>,
    /// Test accuracy at the last evaluation.
    pub final_test: Option<f64>,
    /// Highest validation accuracy over the curve.
    pub best_val: Option<f64>,
    /// Highest test accuracy over the curve.
    pub best_test: Option<f64>,
    /// Mean training loss over the last evaluation window.
    pub final_train_loss: Option<f64>,
}

impl Accuracies {
    /// The headline numbers of `curve`.
    pub fn of(curve: &[CurvePoint]) -> Self {
        let best = |f: fn(&CurvePoint) -> f64| curve.iter().map(f).max_by(f64::total_cmp);
        Self {
            final_val: curve.last().map(|p| p.val_accuracy),
            final_test: curve.last().map(|p| p.test_accuracy),
            best_val: best(|p| p.val_accuracy),
            best_test: best(|p| p.test_accuracy),
            final_train_loss: curve.last().and_then(|p| p.train_loss),
        }
    }
}

/// The code and machine that produced a record.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Provenance {
    /// `git describe --always --dirty` of the build, or the crate version.
    pub code_version: String,
    /// The tensor backend, e.g. `flex`.
    pub backend: String,
    /// How many trials trained together in one stacked pass (1: alone). Their results are
    /// each trial's own; only the wall time is shared.
    #[serde(default = "one")]
    pub group_size: usize,
    /// The host name, where known.
    pub host: String,
    /// The CPU: its model name, the widest vector instructions the tensor kernels may use and
    /// its cache sizes (see `crate::run::trial::cpu_name`). A trial repeats bit for bit only on
    /// CPUs alike in these. Empty in records from before it was recorded.
    #[serde(default)]
    pub cpu: String,
    /// Seconds since the Unix epoch when the record was written.
    pub finished_at: u64,
}

fn one() -> usize {
    1
}

/// How a trial's result reads: its [`Status`], with `ok` split by whether it learned.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Trained to the end and beat the majority class on its test split.
    Ok,
    /// Trained to the end, but its final test accuracy is at or below the majority class's:
    /// nothing was learned (too small a rate, or a collapse to one class). Not an optimum.
    NoLearning,
    /// The loss became NaN/inf or exploded.
    Diverged,
    /// An error or a panic.
    Failed,
}

impl Outcome {
    /// Its name in tables and plots: `ok`, `no_learning`, `diverged` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NoLearning => "no_learning",
            Outcome::Diverged => "diverged",
            Outcome::Failed => "failed",
        }
    }
}

/// Whether a final test accuracy shows learning: strictly above always predicting the majority
/// class of the test split (which is at least chance, 1 / classes).
pub fn learned(final_test_accuracy: f64, majority_test_accuracy: f64) -> bool {
    final_test_accuracy > majority_test_accuracy + 1e-12
}

impl TrialRecord {
    /// How the trial's result reads.
    pub fn outcome(&self) -> Outcome {
        match (self.status, self.accuracy.final_test, self.majority_test_accuracy) {
            (Status::Diverged, ..) => Outcome::Diverged,
            (Status::Failed, ..) => Outcome::Failed,
            (Status::Ok, Some(test), Some(majority)) if !learned(test, majority) => Outcome::NoLearning,
            (Status::Ok, ..) => Outcome::Ok,
        }
    }

    /// The last evaluation point, if any.
    pub fn last(&self) -> Option<&CurvePoint> {
        self.curve.last()
    }

    /// Final test accuracy.
    pub fn final_test_accuracy(&self) -> Option<f64> {
        self.accuracy.final_test
    }
}

/// One evaluation point of a training curve.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// Updates taken before this evaluation.
    pub step: usize,
    /// Mean training loss over the updates since the previous point (none at step 0).
    pub train_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
}

/// How a run ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trained for every step.
    Ok,
    /// Stopped early: the loss became NaN/inf or exploded.
    Diverged,
    /// Stopped by an error or a panic; the record's message says which.
    Failed,
}

impl Status {
    /// Its name in records: `ok`, `diverged` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
    }
}
