//! `loraplus bench`: trials per hour, run one by one vs stacked, side by side in one process.
//!
//! The bench takes the first group of stackable adapter trials of a sweep config (same model,
//! task and seed, different rates), shortens them to `steps` updates, and times, round by round,
//! the group's trials one after another and the same trials as one stacked pass. Each round runs
//! both, so drifts in machine load hit both alike; the figures are medians over rounds.

use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;

use super::device::backend_name;
use super::setup::Setup;
use super::trial::StartPoints;
use crate::config::{ConfigFile, Values};
use crate::plan::{self, Method, TrialSpec};
use crate::store::Store;

/// What to measure.
pub struct BenchOptions {
    /// Trials in the stacked group (the first this many of the config's first group).
    pub members: usize,
    /// Only trials of this model (by its name in the config).
    pub model: Option<String>,
    /// Updates per trial.
    pub steps: usize,
    /// Rounds of (one by one, stacked).
    pub rounds: usize,
}

/// Runs the bench and returns its printed report. Pretrained bases are cached in `work_dir`.
pub fn bench(file: &ConfigFile, options: &BenchOptions, device: Device, work_dir: &Path) -> Result<String> {
    let config = &file.config;
    let trials: Vec<TrialSpec> = plan::expand(config)
        .into_iter()
        .filter(|t| t.method == Method::Lora)
        .filter(|t| options.model.as_ref().is_none_or(|name| *name == t.model.name))
        .map(|mut t| {
            t.train.steps = Some(Values::One(options.steps));
            t.train.epochs = None;
            t.train.eval_interval = Values::One(options.steps);
            t
        })
        .collect();
    let refs: Vec<&TrialSpec> = trials.iter().collect();
    let group = plan::groups(&refs, |_| options.members)
        .into_iter()
        .next()
        .context("the config has no adapter trials (of that model)")?;
    let owned: Vec<TrialSpec> = group.iter().map(|t| (*t).clone()).collect();
    let log = |line: String| eprintln!("{line}");
    let mut setup = Setup::new(file, device);
    setup.add(&owned, &log)?;
    setup.pretrain(&owned, &Store::open(work_dir)?, &log)?;
    let spec = group[0];

    let k = group.len();
    let mut one_by_one = Vec::new();
    let mut stacked = Vec::new();
    for round in 0..options.rounds {
        let started = Instant::now();
        // As in a sweep: the trials one by one share their family's step-0 evaluation.
        let start_points = StartPoints::default();
        for trial in &group {
            setup.run(std::slice::from_ref(trial), &start_points)?;
        }
        one_by_one.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        setup.run(&group, &StartPoints::default())?;
        stacked.push(started.elapsed().as_secs_f64());
        eprintln!(
            "round {}/{}: one by one {:.2}s, stacked {:.2}s",
            round + 1,
            options.rounds,
            one_by_one[round],
            stacked[round]
        );
    }
    let per_hour = |seconds: f64| k as f64 * 3600.0 / seconds;
    let (alone, together) = (median(&mut one_by_one), median(&mut stacked));
    let mut out = String::new();
    writeln!(
        out,
        "{}: model `{}`, task `{}`, {k} trials x {} steps of batch {}, backend {}",
        config.name,
        spec.model.name,
        spec.task.name,
        options.steps,
        spec.train.batch_size.get(),
        backend_name(setup.device())
    )?;
    writeln!(
        out,
        "one by one: {:>10.0} trials/hour  ({alone:.2}s per group, median of {})",
        per_hour(alone),
        options.rounds
    )?;
    writeln!(
        out,
        "stacked:    {:>10.0} trials/hour  ({together:.2}s per group)",
        per_hour(together)
    )?;
    writeln!(out, "speed-up:   {:>10.2}x", alone / together)?;
    Ok(out)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
