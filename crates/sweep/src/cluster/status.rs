//! `loraplus status DIR`: how far a sweep directory has got, and which shards to resubmit.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::adaptive;
use crate::config::ConfigFile;
use crate::plan::TrialSpec;
use crate::plan::shard::{self, range_list};
use crate::store::{AdapterState, RecordState, Status, Store};

/// The state of every trial of a sweep directory's config.
#[derive(Debug, Default, PartialEq)]
pub struct SweepStatus {
    /// The sweep's name.
    pub name: String,
    /// The directory.
    pub dir: PathBuf,
    /// Trials in the config, and in the stages an adaptive sweep added from its results.
    pub total: usize,
    /// Each stage's kind and trial count (the grid alone, unless the config is adaptive).
    pub stages: Vec<String>,
    /// Finished normally.
    pub done: usize,
    /// Finished as diverged (a result).
    pub diverged: usize,
    /// Recorded as failed (an error or a panic; `loraplus sweep --retry-failed` reruns them).
    pub failed: usize,
    /// Claimed by a live process now.
    pub running: usize,
    /// Neither finished nor running (a corrupt record counts here too).
    pub missing: usize,
    /// Of `missing`, records that are present but corrupt.
    pub corrupt: usize,
    /// Shard count, and the shards that own a missing trial.
    pub shards: Option<(usize, Vec<usize>)>,
    /// Records whose adapter is there and whole.
    pub adapters: usize,
    /// Records whose adapter is missing.
    pub adapters_missing: Vec<String>,
    /// Records whose adapter does not match the record's digest.
    pub adapters_corrupt: Vec<String>,
}

/// Reads `dir` (written by `loraplus sweep`) against its `config.toml`. The shard count is
/// `shards`, or the one its sharded runs used, as `manifest.json` lists them.
pub fn status(dir: &Path, shards: Option<usize>) -> Result<SweepStatus> {
    let store = Store::existing(dir)?;
    let config = ConfigFile::load(&store.config_path())?.config;
    let stages = adaptive::stages_in(&config, Some(&store));
    let trials: Vec<&TrialSpec> = stages.iter().flat_map(|s| &s.trials).collect();
    let count = shards.or_else(|| {
        store
            .manifest()?
            .runs
            .iter()
            .rev()
            .find_map(|run| run.shard.map(|s| s.count))
    });
    // Shards own a slice of every stage.
    let owners: Option<Vec<usize>> = count.map(|count| {
        stages
            .iter()
            .flat_map(|stage| shard::assignment(&stage.trials, count))
            .collect()
    });
    let mut status = SweepStatus {
        name: config.name.clone(),
        dir: dir.to_path_buf(),
        total: trials.len(),
        stages: stages.iter().map(ToString::to_string).collect(),
        ..Default::default()
    };
    let mut missing_shards = Vec::new();
    for (position, trial) in trials.iter().enumerate() {
        let id = trial.id();
        match store.state(&id) {
            RecordState::Finished(record) => {
                match record.status {
                    Status::Ok => status.done += 1,
                    Status::Diverged => status.diverged += 1,
                    Status::Failed => status.failed += 1,
                }
                match store.adapter_state(&record) {
                    AdapterState::None => {}
                    AdapterState::Whole => status.adapters += 1,
                    AdapterState::Missing => status.adapters_missing.push(id),
                    AdapterState::Corrupt => status.adapters_corrupt.push(id),
                }
            }
            _ if store.is_running(&id) => status.running += 1,
            state => {
                status.missing += 1;
                status.corrupt += matches!(state, RecordState::Corrupt(_)) as usize;
                missing_shards.extend(owners.as_ref().map(|o| o[position]));
            }
        }
    }
    missing_shards.sort_unstable();
    missing_shards.dedup();
    status.shards = count.map(|count| (count, missing_shards));
    Ok(status)
}

impl fmt::Display for SweepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} trials in {}", self.name, self.total, self.dir.display())?;
        if self.stages.len() > 1 {
            writeln!(f, "stages so far: {}", self.stages.join(", "))?;
        }
        let corrupt = if self.corrupt > 0 {
            format!(" ({} with a corrupt record)", self.corrupt)
        } else {
            String::new()
        };
        for (what, n, note) in [
            ("done", self.done, String::new()),
            ("diverged", self.diverged, String::new()),
            ("failed", self.failed, String::new()),
            ("running", self.running, String::new()),
            ("missing", self.missing, corrupt),
        ] {
            writeln!(f, "  {what:<9}{n:>6}{note}")?;
        }
        let broken = self.adapters_missing.len() + self.adapters_corrupt.len();
        if self.adapters + broken > 0 {
            writeln!(
                f,
                "adapters: {} whole, {} missing, {} corrupt",
                self.adapters,
                self.adapters_missing.len(),
                self.adapters_corrupt.len()
            )?;
            for (what, ids) in [("missing", &self.adapters_missing), ("corrupt", &self.adapters_corrupt)] {
                for id in ids {
                    writeln!(f, "  {what} adapter: trial {id} (trials/{id}/)")?;
                }
            }
        }
        match &self.shards {
            Some((count, missing)) if !missing.is_empty() => {
                let script = self.dir.join("slurm").join("sweep.sbatch");
                writeln!(f, "missing shards (of {count}): {}", range_list(missing))?;
                writeln!(
                    f,
                    "resubmit: sbatch --array={} {}",
                    range_list(missing),
                    script.display()
                )
            }
            Some((count, _)) => writeln!(f, "missing shards (of {count}): none"),
            None => Ok(()),
        }
    }
}
