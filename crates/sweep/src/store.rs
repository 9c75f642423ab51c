//! The result store: one JSON record per finished trial, written atomically, so a killed sweep
//! loses at most the trials that were running and never leaves a half-written record.
//!
//! Layout of an output directory:
//!
//! ```text
//! DIR/config.toml          the sweep's config, as given
//! DIR/trials/<id>.json     one record per finished trial
//! DIR/bases/<key>.bpk      pretrained bases (and <key>.json: how they were made)
//! DIR/*.csv, DIR/*.png     reports, rebuilt from the records by `loraplus report DIR`
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::grid::TrialSpec;
use crate::train::{CurvePoint, Status};

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
    /// its cache sizes (see [`crate::trial::cpu_name`]). A trial repeats bit for bit only on
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
    /// The word tables and plots use.
    pub fn word(self) -> &'static str {
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

/// An output directory.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let store = Self::at(dir);
        store.create()?;
        Ok(store)
    }

    /// The store at `dir`, which may not exist yet: reading it finds no records, and nothing
    /// is created until [`Store::create`].
    pub fn at(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    /// Creates the store's folders.
    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(self.dir.join("trials")).with_context(|| format!("cannot create {}", self.dir.display()))
    }

    /// Opens an existing store for reading.
    pub fn existing(dir: &Path) -> Result<Self> {
        anyhow::ensure!(
            dir.join("trials").is_dir(),
            "{} holds no trials/ folder: is it a sweep output?",
            dir.display()
        );
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where pretrained bases live.
    pub fn bases_dir(&self) -> PathBuf {
        self.dir.join("bases")
    }

    fn record_path(&self, trial_id: &str) -> PathBuf {
        self.dir.join("trials").join(format!("{trial_id}.json"))
    }

    /// The finished record of `trial_id`, if there is a valid one. A file that does not parse or
    /// belongs to another id is reported and treated as missing, so the trial runs again.
    pub fn finished(&self, trial_id: &str) -> Option<TrialRecord> {
        match self.state(trial_id) {
            RecordState::Finished(record) => Some(*record),
            RecordState::Missing => None,
            RecordState::Corrupt(why) => {
                eprintln!("warning: {why}; the trial will run again");
                None
            }
        }
    }

    /// What the store holds for `trial_id`.
    pub fn state(&self, trial_id: &str) -> RecordState {
        let path = self.record_path(trial_id);
        let Ok(bytes) = fs::read(&path) else {
            return RecordState::Missing;
        };
        match serde_json::from_slice::<TrialRecord>(&bytes) {
            Ok(record) if record.trial_id == trial_id => RecordState::Finished(Box::new(record)),
            Ok(record) => RecordState::Corrupt(format!(
                "{} holds trial {}, not {trial_id}",
                path.display(),
                record.trial_id
            )),
            Err(e) => RecordState::Corrupt(format!("{} is corrupt ({e})", path.display())),
        }
    }

    /// Moves a corrupt record aside (to `<id>.json.corrupt`, kept for inspection) so the trial
    /// runs again. Another process may have moved or replaced it first: that is not an error.
    pub fn quarantine(&self, trial_id: &str) -> Result<()> {
        let path = self.record_path(trial_id);
        // Re-read under no lock: if a valid record replaced the corrupt one meanwhile, keep it.
        if matches!(self.state(trial_id), RecordState::Corrupt(_)) {
            match fs::rename(&path, path.with_extension("json.corrupt")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("cannot move {} aside", path.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Claims `trial_id` for this process while it runs: `None` if another process (or thread)
    /// holds it. The claim is an exclusive lock on `trials/<id>.lock`; the kernel drops it when
    /// the process dies, however it dies, so a killed sweep leaves no stale claim behind.
    pub fn claim(&self, trial_id: &str) -> Result<Option<Claim>> {
        let path = self.dir.join("trials").join(format!("{trial_id}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Claim { path, _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }

    /// Whether some process holds the claim on `trial_id` now.
    pub fn is_running(&self, trial_id: &str) -> bool {
        let path = self.dir.join("trials").join(format!("{trial_id}.lock"));
        fs::File::open(&path).is_ok_and(|file| matches!(file.try_lock(), Err(fs::TryLockError::WouldBlock)))
    }

    /// Writes `record`: to a temporary file first, then renamed over the final name.
    pub fn save(&self, record: &TrialRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record)?;
        write_atomic(&self.record_path(&record.trial_id), &json)
    }

    /// Every valid record, sorted by trial id; corrupt files are reported and skipped.
    pub fn records(&self) -> Result<Vec<TrialRecord>> {
        let dir = self.dir.join("trials");
        let mut records = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                records.extend(self.finished(id));
            }
        }
        records.sort_by(|a, b| a.trial_id.cmp(&b.trial_id));
        Ok(records)
    }
}

/// What a store holds for one trial.
pub enum RecordState {
    /// A valid record.
    Finished(Box<TrialRecord>),
    /// No record.
    Missing,
    /// A file that is not a valid record of this trial, and why.
    Corrupt(String),
}

/// A trial this process is running; released (and its lock file removed) when dropped.
pub struct Claim {
    path: PathBuf,
    _file: fs::File,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Removed while still locked: a process that opened the old file before the removal
        // and locks it afterwards finds the trial's record already written and skips it.
        let _ = fs::remove_file(&self.path);
    }
}

/// Runs `f` holding an exclusive lock on `path` (created if missing), waiting for other
/// processes that hold it: for read-modify-write of shared files such as `manifest.json`, and
/// for work only one process should do, such as pretraining a shared base.
pub fn with_lock<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
    let result = f();
    drop(file);
    result
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder (unique to this
/// process), flushed to disk, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

/// Makes `path` atomically with `make`, which writes a temporary file beside it (unique to this
/// process, same extension, for writers that pick a format by it, such as PNG plots); the file
/// is then renamed over `path`. Readers never see a half-drawn file, and two processes drawing
/// the same report each replace it whole.
pub fn make_atomic(path: &Path, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let stem = path.file_stem().and_then(|n| n.to_str()).unwrap_or("file");
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("tmp");
    let tmp = path.with_file_name(format!(".{stem}.{}.tmp.{extension}", std::process::id()));
    if let Err(error) = make(&tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(error);
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}
