//! This invocation's entry in `DIR/manifest.json`: what ran, with which code, where, how long.
//! With `config.toml` beside it, that is everything needed to reproduce the directory.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;

use super::device::backend_name;
use super::trial::{CODE_VERSION, cpu_name, host_name, unix_now};
use crate::config::SweepConfig;
use crate::plan::shard::Shard;
use crate::store::{Manifest, Run, Store};

/// This invocation's entry in `manifest.json`. It is written when the run starts and rewritten
/// after every record, so a run that is killed (a session's time limit, a preempted node) still
/// accounts for the trials it ran and their time. Shards of one sweep update their own entries in
/// turn, under a lock.
pub struct RunLog<'a> {
    store: &'a Store,
    config: &'a SweepConfig,
    run: Mutex<Run>,
    started: Instant,
}

impl<'a> RunLog<'a> {
    /// Adds this run's entry: `jobs` at a time, of `shard` (or every trial), `total` planned.
    pub fn start(
        store: &'a Store,
        config: &'a SweepConfig,
        device: &Device,
        (jobs, shard): (usize, Option<Shard>),
        total: usize,
    ) -> Result<Self> {
        let started_at = unix_now();
        let run = Run {
            id: format!("{}:{}:{started_at}", host_name(), std::process::id()),
            command: std::env::args().collect(),
            code_version: CODE_VERSION.into(),
            backend: backend_name(device),
            host: host_name(),
            device: format!("{device:?} on {}", cpu_name()),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            jobs,
            shard,
            trials_total: total,
            trials_run: 0,
            wall_seconds: 0.0,
            started_at,
            finished_at: None,
        };
        let log = Self {
            store,
            config,
            run: Mutex::new(run),
            started: Instant::now(),
        };
        log.update(|_| ())?;
        Ok(log)
    }

    /// More trials planned (an adaptive sweep's next stage).
    pub fn set_total(&self, total: usize) -> Result<()> {
        self.update(|run| run.trials_total = total)
    }

    /// One more trial recorded.
    pub fn trial_saved(&self) -> Result<()> {
        self.update(|run| run.trials_run += 1)
    }

    /// Trials this run has recorded.
    pub fn trials_run(&self) -> usize {
        self.run.lock().unwrap().trials_run
    }

    /// The run ended.
    pub fn finish(&self) -> Result<()> {
        self.update(|run| run.finished_at = Some(unix_now()))
    }

    /// Changes the entry and writes it into the manifest (in place of its former self).
    fn update(&self, change: impl FnOnce(&mut Run)) -> Result<()> {
        let mut run = self.run.lock().unwrap();
        change(&mut run);
        run.wall_seconds = self.started.elapsed().as_secs_f64();
        self.store.update_manifest(
            || Manifest::new(self.config.name.clone(), self.config.seeds.clone()),
            |manifest| match manifest.runs.iter_mut().find(|r| r.id == run.id) {
                Some(entry) => *entry = run.clone(),
                None => manifest.runs.push(run.clone()),
            },
        )
    }
}
