//! Records on disk: one JSON record per finished trial, written atomically, so a killed sweep
//! loses at most the trials that were running and never leaves a half-written record; claims
//! that keep two processes off one trial; the report settings and manifest beside them.
//!
//! Layout of an output directory:
//!
//! ```text
//! DIR/config.toml          the sweep's config, as given
//! DIR/sweep.json           the report settings
//! DIR/manifest.json        every run that wrote into it
//! DIR/trials/<id>.json     one record per finished trial
//! DIR/trials/<id>/         its trained adapter, in PEFT's layout (adapter_model.safetensors,
//!                          adapter_config.json) with its class names (labels.json)
//! DIR/bases/<key>.bpk      pretrained bases (and <key>.json: how they were made)
//! DIR/*.csv, DIR/*.png     reports, rebuilt from the records by `loraplus report DIR`
//! ```

mod manifest;
mod record;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

pub use manifest::{Manifest, Run};
pub use record::{Accuracies, CurvePoint, Outcome, Provenance, Status, TrialRecord, learned};

use crate::config::ReportSettings;

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

/// The weights file of a trial's adapter folder (PEFT's name).
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// What a store holds of a trial's adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterState {
    /// The record names no adapter (none saved, or a record from before adapters were saved).
    None,
    /// The weights are there and match the record's digest.
    Whole,
    /// The record names an adapter, but its folder or weights are missing.
    Missing,
    /// The weights are there but do not match the record's digest.
    Corrupt,
}

impl Store {
    /// `DIR/trials/<id>/`: what trial `trial_id` trained.
    pub fn trial_dir(&self, trial_id: &str) -> PathBuf {
        self.dir.join("trials").join(trial_id)
    }

    /// Writes trial `trial_id`'s folder whole or not at all ([`make_dir_atomic`]). A record is
    /// saved after its folder, so a record's adapter is never half-written; a killed run leaves at
    /// most a temporary folder.
    pub fn save_trial_dir(&self, trial_id: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        make_dir_atomic(&self.trial_dir(trial_id), write)
    }

    /// Whether `record`'s adapter is there, whole.
    pub fn adapter_state(&self, record: &TrialRecord) -> AdapterState {
        let Some(expected) = &record.adapter_sha256 else {
            return AdapterState::None;
        };
        match fs::read(self.trial_dir(&record.trial_id).join(ADAPTER_WEIGHTS)) {
            Err(_) => AdapterState::Missing,
            Ok(bytes) if sha256(&bytes) == *expected => AdapterState::Whole,
            Ok(_) => AdapterState::Corrupt,
        }
    }
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
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

/// Makes the folder `target` whole or not at all: `write` fills a fresh temporary folder beside it
/// (unique to this process), whose files are flushed to disk before it replaces any older
/// `target`. On an error the temporary folder is removed and `target` is left as it was.
pub fn make_dir_atomic(target: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("folder");
    let tmp = target.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = write(&tmp).and_then(|()| sync_files(&tmp));
    if let Err(error) = written {
        let _ = fs::remove_dir_all(&tmp);
        return Err(error);
    }
    if target.exists() {
        let old = target.with_file_name(format!(".{name}.{}.old", std::process::id()));
        fs::rename(target, &old).with_context(|| format!("cannot replace {}", target.display()))?;
        fs::remove_dir_all(&old)?;
    }
    fs::rename(&tmp, target).with_context(|| format!("cannot move {} to {}", tmp.display(), target.display()))
}

/// Flushes every file under `dir` to disk.
fn sync_files(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            sync_files(&path)?;
        } else {
            fs::File::open(&path)?.sync_all()?;
        }
    }
    Ok(())
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

impl Store {
    /// `DIR/config.toml`: the config the records were planned from.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// Writes `text` as the directory's `config.toml`.
    pub fn save_config(&self, text: &str) -> Result<()> {
        write_atomic(&self.config_path(), text.as_bytes())
    }

    /// The report settings stored in `DIR/sweep.json`; a directory without the file gets
    /// [`ReportSettings::defaults`], named after it.
    pub fn report_settings(&self) -> Result<ReportSettings> {
        let path = self.dir.join("sweep.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("{} is corrupt", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(ReportSettings::defaults(self.dir.display().to_string()))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes `settings` as `DIR/sweep.json`.
    pub fn save_report_settings(&self, settings: &ReportSettings) -> Result<()> {
        write_atomic(&self.dir.join("sweep.json"), &serde_json::to_vec_pretty(settings)?)
    }

    /// `DIR/manifest.json`, if there is a readable one.
    pub fn manifest(&self) -> Option<Manifest> {
        let bytes = fs::read(self.dir.join("manifest.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Changes the manifest (`new` makes it where there is none) under a lock, so processes
    /// sharing the directory each change it in turn.
    pub fn update_manifest(&self, new: impl FnOnce() -> Manifest, change: impl FnOnce(&mut Manifest)) -> Result<()> {
        with_lock(&self.dir.join("manifest.lock"), || {
            let mut manifest = self.manifest().unwrap_or_else(new);
            change(&mut manifest);
            write_atomic(&self.dir.join("manifest.json"), &serde_json::to_vec_pretty(&manifest)?)
        })
    }
}
