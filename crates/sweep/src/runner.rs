//! Running a sweep: skip finished trials, pretrain the bases, run the rest in parallel, write
//! each record as soon as it exists, and report.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::adaptive;
use crate::config::{DeviceChoice, SweepConfig};
use crate::data::{DataCache, InputShape};
use crate::grid::TrialSpec;
use crate::report::{self, ReportSettings};
use crate::shard::Shard;
use crate::stacking::{self, GroupSize};
use crate::store::{Claim, RecordState, Store, TrialRecord, with_lock, write_atomic};
use crate::train::Status;
use crate::trial::{
    BaseInfo, CODE_VERSION, StartPoints, backend_name, cpu_name, failed_record, host_name, load_checkpoints,
    pretrain_bases, run_group, unix_now,
};
use crate::zoo::Classifier;

/// The autodiff device for a config's choice.
pub fn device(choice: DeviceChoice) -> Result<Device> {
    #[allow(deprecated)] // ndarray is deprecated upstream; kept selectable for comparison.
    let device = match choice {
        DeviceChoice::Cpu => Device::flex(),
        DeviceChoice::Ndarray => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        DeviceChoice::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(not(feature = "wgpu"))]
        DeviceChoice::Wgpu => anyhow::bail!(
            "device `wgpu` needs a build with the GPU backend: cargo build --release --features wgpu \
             (see the README's GPU section)"
        ),
    };
    Ok(device.autodiff())
}

/// How `loraplus sweep` runs a config.
#[derive(Debug, Clone, Copy)]
pub struct SweepOptions {
    /// Trials (or stacked groups of trials) run at a time.
    pub jobs: usize,
    /// Only this slice of the grid (one job of a Slurm array); `None`: every trial.
    pub shard: Option<Shard>,
    /// Run trials recorded as `failed` again (errors and panics may be transient, e.g. a node
    /// that ran out of memory); diverged trials are results and stay.
    pub retry_failed: bool,
}

/// Whether `state` is a record the sweep keeps.
fn is_done(state: &RecordState, retry_failed: bool) -> bool {
    matches!(state, RecordState::Finished(record) if !(retry_failed && record.status == Status::Failed))
}

/// Runs every unfinished trial of `config` (of `options.shard`, if given) into `out`, then
/// writes the reports (a shard leaves them to `loraplus report`, once every shard is done) and
/// returns the printed summary.
///
/// Several processes may sweep into one directory at once (overlapping shards, a resubmitted
/// array job): each trial is claimed while it runs (see [`Store::claim`]), so none runs twice
/// at the same time and none is recorded twice.
pub fn sweep(config: &SweepConfig, config_text: &str, out: &Path, options: SweepOptions) -> Result<String> {
    let SweepOptions {
        jobs,
        shard,
        retry_failed,
    } = options;
    let store = Store::at(out);
    // The trials this process owns, stage by stage (see `adaptive::stages`), and those of them
    // still to run.
    let plan = || -> (Vec<TrialSpec>, Vec<TrialSpec>) {
        let stages = adaptive::stages(config, |t| match store.state(&t.id()) {
            RecordState::Finished(record) => Some(*record),
            _ => None,
        });
        let owned: Vec<TrialSpec> = stages
            .iter()
            .flat_map(|stage| match shard {
                Some(shard) => shard.select(&stage.trials).into_iter().cloned().collect(),
                None => stage.trials.clone(),
            })
            .collect();
        let mut pending: Vec<TrialSpec> = owned
            .iter()
            .filter(|t| !is_done(&store.state(&t.id()), retry_failed))
            .cloned()
            .collect();
        in_pair_order(&owned, &mut pending);
        (owned, pending)
    };
    let (owned, mut pending) = plan();

    // Everything the trials read is read and checked before anything is written, so a bad
    // data file, checkpoint or tokenizer leaves `out` as it was.
    let log = |line: String| eprintln!("{line}");
    let mut data = DataCache::load(&pending, &log)?;
    check_adapters_fit(config, &pending, &data)?;
    let device = device(config.device)?;
    let mut bases = load_checkpoints(&pending, &data, &device, &log)?;

    store.create()?;
    write_atomic(&out.join("config.toml"), config_text.as_bytes())?;
    let settings = ReportSettings {
        name: config.name.clone(),
        metric: config.metric,
        top_k: config.top_k,
        protocol: config.protocol,
    };
    write_atomic(&out.join("sweep.json"), &serde_json::to_vec_pretty(&settings)?)?;

    let run_log = RunLog::start(out, config, &device, owned.len(), options)?;
    let progress = Progress::new(owned.len(), owned.len() - pending.len());
    progress.log(format!(
        "{}{}: {} trials, {} already finished, {} to run on {jobs} job(s) -> {}",
        config.name,
        shard.map(|s| format!(" shard {s}")).unwrap_or_default(),
        owned.len(),
        owned.len() - pending.len(),
        pending.len(),
        out.display()
    ));
    let mut owned_count = owned.len();
    let start_points = StartPoints::default();
    while !pending.is_empty() {
        for spec in &pending {
            if let RecordState::Corrupt(why) = store.state(&spec.id()) {
                progress.log(format!(
                    "warning: {why}; moved aside to .json.corrupt, the trial runs again"
                ));
                store.quarantine(&spec.id())?;
            }
        }
        pretrain_bases(&pending, &store, &data, &device, &|line| progress.log(line), &mut bases)?;
        let run = run_trials(
            config,
            &store,
            &pending,
            (&data, &bases, &device, &start_points),
            options,
            (&progress, &run_log),
        )?;
        // Results may extend the grid (`[adaptive]`); trials another process holds are left
        // to it.
        let (owned, next) = plan();
        if run == 0 || next.is_empty() {
            break;
        }
        progress.grow(owned.len() - owned_count);
        owned_count = owned.len();
        run_log.set_total(owned_count)?;
        progress.log(format!("{} more trials planned from the results so far", next.len()));
        data.add(&next, &|line| progress.log(line))?;
        check_adapters_fit(config, &next, &data)?;
        let missing: Vec<TrialSpec> = next
            .iter()
            .filter(|t| !bases.contains_key(&BaseInfo::of(t).key()))
            .cloned()
            .collect();
        bases.extend(load_checkpoints(&missing, &data, &device, &|line| progress.log(line))?);
        pending = next;
    }
    progress.done();
    run_log.finish()?;
    let ran = run_log.trials_run();
    match shard {
        Some(shard) => Ok(format!(
            "shard {shard}: {ran} of its {owned_count} trials finished here\n\
             once every shard is done: loraplus report {dir}   (progress: loraplus status {dir})\n",
            dir = out.display()
        )),
        None => report::write_reports(&store, &settings),
    }
}

/// Orders `pending` pair by pair, pairs as they first appear in `owned` (grid order), each
/// pair's trials in stage order: when a sweep resumes, a pair whose grid is done runs its planned
/// extension before the next pair's grid rather than after every pair's, so the records of a
/// long study interrupted now and then hold whole pairs.
fn in_pair_order(owned: &[TrialSpec], pending: &mut [TrialSpec]) {
    let mut pair_rank: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for trial in owned {
        let next = pair_rank.len();
        pair_rank.entry(pair_of(trial)).or_insert(next);
    }
    // A stable sort: within a pair, stages stay in order.
    pending.sort_by_key(|t| pair_rank[&pair_of(t)]);
}

/// The (model, task) pair a trial belongs to.
fn pair_of(trial: &TrialSpec) -> (&str, &str) {
    (&trial.model.name, &trial.task.name)
}

/// Runs `pending` in stacked groups, `options.jobs` groups at a time, saving each record as it
/// comes; returns how many trials ran (those another process holds are skipped).
fn run_trials(
    config: &SweepConfig,
    store: &Store,
    pending: &[TrialSpec],
    (data, bases, device, start_points): (&DataCache, &BTreeMap<String, Classifier>, &Device, &StartPoints),
    options: SweepOptions,
    (progress, run_log): (&Progress, &RunLog),
) -> Result<usize> {
    let budget = match config.device {
        DeviceChoice::Cpu | DeviceChoice::Ndarray => stacking::memory_budget(options.jobs),
        // wgpu reports no device memory; 16 GiB fits every GPU this project was run on.
        DeviceChoice::Wgpu => 16 << 30,
    };
    let pending: Vec<&TrialSpec> = pending.iter().collect();
    let groups = stacking::groups(&pending, |spec| match config.group_size {
        GroupSize::Trials(n) => n,
        GroupSize::Auto => {
            let shape = InputShape::of(&spec.task.kind, data.get(&spec.task, &spec.model));
            let bytes = stacking::member_bytes(spec, &shape).unwrap_or(usize::MAX);
            stacking::auto_group_size(bytes, budget, usize::MAX)
        }
    });
    progress.log(format!(
        "{} trials in {} stacked group(s) of up to {} (group_size {})",
        pending.len(),
        groups.len(),
        groups.iter().map(Vec::len).max().unwrap_or(0),
        match config.group_size {
            GroupSize::Auto => "auto".to_string(),
            GroupSize::Trials(n) => n.to_string(),
        }
    ));
    // `jobs` groups run at once, each on its own thread; their tensor operations share
    // rayon's global pool, so even one job uses every core. (Running them inside a
    // `jobs`-thread rayon pool would confine their tensor work to that pool.)
    let next = AtomicUsize::new(0);
    let run_count = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.min(groups.len()) {
            scope.spawn(|| {
                while let Some(group) = groups.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let (claims, group) = match claim_unfinished(store, group, options.retry_failed) {
                        Ok(claimed) => claimed,
                        Err(error) => {
                            failures.lock().unwrap().push(format!("{error:#}"));
                            continue;
                        }
                    };
                    let Some(spec) = group.first() else { continue };
                    let base = &bases[&BaseInfo::of(spec).key()];
                    let data = data.get(&spec.task, &spec.model);
                    let run = || run_group(&group, base, data, device, start_points);
                    for record in run_guarded(&group, device, run) {
                        if let Err(error) = store.save(&record) {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("trial {}: {error:#}", record.trial_id));
                        }
                        run_count.fetch_add(1, Ordering::Relaxed);
                        if let Err(error) = run_log.trial_saved() {
                            failures.lock().unwrap().push(format!("manifest.json: {error:#}"));
                        }
                        progress.finished(&record);
                    }
                    drop(claims);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    anyhow::ensure!(
        failures.is_empty(),
        "some records could not be written:\n{}",
        failures.join("\n")
    );
    Ok(run_count.into_inner())
}

/// Checks adapters against the input sizes of tasks that state them only in their files
/// (images); the config itself checked the others.
fn check_adapters_fit(config: &SweepConfig, trials: &[TrialSpec], data: &DataCache) -> Result<()> {
    // Once per (model, task): `adapters_fit` builds the model and tries every rank of the config.
    let mut checked = std::collections::BTreeSet::new();
    for spec in trials {
        let base_task = spec.pretrain_task.as_ref().unwrap_or(&spec.task);
        if base_task.kind.shape().is_some() || !checked.insert((&spec.model.name, &base_task.name)) {
            continue;
        }
        let shape = InputShape::of(&base_task.kind, data.get(base_task, &spec.model));
        if let Err((key, why)) = config.adapters_fit(&spec.model, &shape) {
            anyhow::bail!(
                "`{key}`: {why} (the input size of task `{}` comes from its data files)",
                base_task.name
            );
        }
    }
    Ok(())
}

/// Claims the trials of `group` that no other process is running and none has finished
/// meanwhile; returns the claims (held until the records are saved) and those trials.
fn claim_unfinished<'a>(
    store: &Store,
    group: &[&'a TrialSpec],
    retry_failed: bool,
) -> Result<(Vec<Claim>, Vec<&'a TrialSpec>)> {
    let mut claims = Vec::new();
    let mut claimed = Vec::new();
    for spec in group {
        let id = spec.id();
        let Some(claim) = store.claim(&id)? else {
            eprintln!("trial {id} is being run by another process; skipped here");
            continue;
        };
        // Checked after claiming: another process may have finished it since it was planned.
        if is_done(&store.state(&id), retry_failed) {
            continue;
        }
        claims.push(claim);
        claimed.push(*spec);
    }
    Ok((claims, claimed))
}

/// The records `run` returns, or, if it fails or panics, a `failed` record for every trial of
/// `group` with the reason: one bad group never stops a sweep.
pub fn run_guarded(
    group: &[&TrialSpec],
    device: &Device,
    run: impl FnOnce() -> Result<Vec<TrialRecord>>,
) -> Vec<TrialRecord> {
    let failed = |message: String| {
        group
            .iter()
            .map(|spec| failed_record(spec, message.clone(), device, group.len()))
            .collect()
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(records)) => records,
        Ok(Err(error)) => failed(format!("{error:#}")),
        Err(panic) => failed(format!("panicked: {}", panic_message(&panic))),
    }
}

/// `DIR/manifest.json`: how a sweep directory came to be.
#[derive(Serialize, Deserialize)]
pub struct Manifest {
    /// The sweep's name.
    pub name: String,
    /// The config, relative to the directory.
    pub config: String,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// Every `loraplus sweep` that wrote into it, in order.
    pub runs: Vec<Run>,
    /// Directories merged into it by `loraplus merge`, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

/// One invocation of `loraplus sweep` on a directory, as `manifest.json` lists it.
#[derive(Serialize, Deserialize, Clone)]
pub struct Run {
    /// Which invocation: host, process id and start time, so concurrent runs (shards) each
    /// update their own entry.
    #[serde(default)]
    pub id: String,
    /// The command line.
    pub command: Vec<String>,
    /// The code that ran.
    pub code_version: String,
    /// The tensor backend.
    pub backend: String,
    /// The machine.
    pub host: String,
    /// What computed: the device Burn was given and the host's CPU model.
    #[serde(default)]
    pub device: String,
    /// Its cores.
    pub cpus: usize,
    /// Trials (or groups) at a time.
    pub jobs: usize,
    /// The slice of the grid it ran, if one.
    #[serde(default)]
    pub shard: Option<Shard>,
    /// Trials it was given.
    pub trials_total: usize,
    /// Trials it ran (the rest were finished before, or run by another process).
    pub trials_run: usize,
    /// Seconds from its start to its last record (or to its end, once finished).
    pub wall_seconds: f64,
    /// Seconds since the Unix epoch at its start.
    #[serde(default)]
    pub started_at: u64,
    /// Seconds since the Unix epoch at its end; empty while it runs, and for good if it was
    /// killed: the entry then holds what it did up to its last record.
    pub finished_at: Option<u64>,
}

/// This invocation's entry in `DIR/manifest.json`: what ran, with which code, where, how long.
/// With `config.toml` beside it, that is everything needed to reproduce the directory.
///
/// The entry is written when the run starts and rewritten after every record, so a run that is
/// killed (a session's time limit, a preempted node) still accounts for the trials it ran and
/// their time. Shards of one sweep update their own entries in turn, under a lock.
struct RunLog<'a> {
    out: &'a Path,
    config: &'a SweepConfig,
    run: Mutex<Run>,
    started: Instant,
}

impl<'a> RunLog<'a> {
    fn start(
        out: &'a Path,
        config: &'a SweepConfig,
        device: &Device,
        total: usize,
        options: SweepOptions,
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
            jobs: options.jobs,
            shard: options.shard,
            trials_total: total,
            trials_run: 0,
            wall_seconds: 0.0,
            started_at,
            finished_at: None,
        };
        let log = Self {
            out,
            config,
            run: Mutex::new(run),
            started: Instant::now(),
        };
        log.update(|_| ())?;
        Ok(log)
    }

    /// More trials planned (an adaptive sweep's next stage).
    fn set_total(&self, total: usize) -> Result<()> {
        self.update(|run| run.trials_total = total)
    }

    fn trial_saved(&self) -> Result<()> {
        self.update(|run| run.trials_run += 1)
    }

    fn trials_run(&self) -> usize {
        self.run.lock().unwrap().trials_run
    }

    fn finish(&self) -> Result<()> {
        self.update(|run| run.finished_at = Some(unix_now()))
    }

    /// Changes the entry and writes it into the manifest (in place of its former self).
    fn update(&self, change: impl FnOnce(&mut Run)) -> Result<()> {
        let mut run = self.run.lock().unwrap();
        change(&mut run);
        run.wall_seconds = self.started.elapsed().as_secs_f64();
        with_lock(&self.out.join("manifest.lock"), || {
            let mut manifest = read_manifest(self.out).unwrap_or_else(|| Manifest {
                name: self.config.name.clone(),
                config: "config.toml".into(),
                seeds: self.config.seeds.clone(),
                runs: Vec::new(),
                merged_from: Vec::new(),
            });
            match manifest.runs.iter_mut().find(|r| r.id == run.id) {
                Some(entry) => *entry = run.clone(),
                None => manifest.runs.push(run.clone()),
            }
            write_atomic(&self.out.join("manifest.json"), &serde_json::to_vec_pretty(&manifest)?)
        })
    }
}

/// `DIR/manifest.json`, if there is a readable one.
pub fn read_manifest(dir: &Path) -> Option<Manifest> {
    let bytes = std::fs::read(dir.join("manifest.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A progress bar on a terminal; one log line per finished trial otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: AtomicUsize,
    done: Mutex<(usize, Option<(f64, String)>)>,
    started: Instant,
}

impl Progress {
    fn new(total: usize, already_done: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} trials  {elapsed_precise} elapsed, ETA {eta}  {msg}",
                )
                .expect("valid template"),
            );
            bar.set_position(already_done as u64);
            bar.reset_eta();
            bar
        });
        Self {
            bar,
            total: AtomicUsize::new(total),
            done: Mutex::new((already_done, None)),
            started: Instant::now(),
        }
    }

    /// More trials to run than planned (an adaptive sweep's next stage).
    fn grow(&self, more: usize) {
        let total = self.total.fetch_add(more, Ordering::Relaxed) + more;
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
        }
    }

    fn log(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finished(&self, record: &TrialRecord) {
        let spec = &record.spec;
        let test = record.final_test_accuracy();
        let mut done = self.done.lock().unwrap();
        done.0 += 1;
        if record.status == Status::Ok
            && let Some(acc) = test
            && done.1.as_ref().is_none_or(|(best, _)| acc > *best)
        {
            done.1 = Some((
                acc,
                format!(
                    "{}/{} ratio {} eta_A {:.1e}",
                    spec.model.name, spec.task.name, spec.ratio, spec.eta_a
                ),
            ));
        }
        let best = done
            .1
            .as_ref()
            .map(|(acc, what)| format!("best so far {acc:.4} ({what})"))
            .unwrap_or_default();
        let status = match record.status {
            Status::Ok => String::new(),
            Status::Diverged => " DIVERGED".into(),
            Status::Failed => format!(" FAILED: {}", record.message.as_deref().unwrap_or("")),
        };
        let method = serde_json::to_value(spec.method)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let line = format!(
            "[{}/{}] {} {}/{} {method} eta_A {:.2e} ratio {} seed {}: test {}{status} ({:.1}s)",
            done.0,
            self.total.load(Ordering::Relaxed),
            record.trial_id,
            spec.model.name,
            spec.task.name,
            spec.eta_a,
            spec.ratio,
            spec.seed,
            test.map(|t| format!("{t:.4}")).unwrap_or_else(|| "-".into()),
            record.wall_seconds,
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(done.0 as u64);
                bar.set_message(best);
            }
            None => eprintln!("{line}"),
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let done = self.done.lock().unwrap();
        eprintln!(
            "{} of {} trials finished in {:.1}s",
            done.0,
            self.total.load(Ordering::Relaxed),
            self.started.elapsed().as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pairs_later_stage_runs_before_the_next_pairs_grid() {
        let first = crate::grid::expand(&crate::config::tiny_config(1));
        let second: Vec<TrialSpec> = first
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.task.name = "down-2".into();
                t
            })
            .collect();
        let extension: Vec<TrialSpec> = first
            .iter()
            .map(|t| TrialSpec {
                eta_a: t.eta_a * 10.0,
                ..t.clone()
            })
            .collect();
        // Stage order: both pairs' grids, then the first pair's extension; the first pair's
        // grid is done.
        let owned: Vec<TrialSpec> = [&first, &second, &extension].into_iter().flatten().cloned().collect();
        let mut pending: Vec<TrialSpec> = [&second, &extension].into_iter().flatten().cloned().collect();
        in_pair_order(&owned, &mut pending);
        let ids = |trials: &[TrialSpec]| trials.iter().map(TrialSpec::id).collect::<Vec<_>>();
        let expected: Vec<TrialSpec> = [&extension, &second].into_iter().flatten().cloned().collect();
        assert_eq!(ids(&pending), ids(&expected));
    }

    #[test]
    fn a_panicking_or_failing_group_becomes_failed_records() {
        let config = crate::config::tiny_config(1);
        let trials = crate::grid::expand(&config);
        let group: Vec<&TrialSpec> = trials.iter().collect();
        let device = Device::flex();
        let panicked = run_guarded(&group, &device, || panic!("index out of bounds: 7 >= 3"));
        let errored = run_guarded(&group, &device, || Err(anyhow::anyhow!("no such file")));
        for (records, message) in [
            (panicked, "panicked: index out of bounds: 7 >= 3"),
            (errored, "no such file"),
        ] {
            assert_eq!(records.len(), 4, "every trial of the group gets a record");
            for (record, spec) in records.iter().zip(&group) {
                assert_eq!(record.trial_id, spec.id());
                assert_eq!(record.status, Status::Failed);
                assert_eq!(record.message.as_deref(), Some(message));
            }
        }
    }
}
