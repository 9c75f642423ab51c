//! Running a sweep: plan its trials stage by stage from the records so far, skip the finished
//! ones, prepare what they read, and run the rest in parallel stacked groups, writing each
//! record as soon as it exists.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

use super::adapters;
use super::device::device;
use super::memory;
use super::progress::Progress;
use super::run_log::RunLog;
use super::setup::Setup;
use super::trial::{StartPoints, run_group, run_guarded};
use crate::adaptive;
use crate::config::{ConfigFile, DeviceChoice, GroupSize, ReportSettings, SweepConfig};
use crate::plan::{self, PairName, TrialSpec, shard::Shard};
use crate::store::{Claim, RecordState, Status, Store};

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

/// What a sweep ran.
#[derive(Debug, Clone, Copy)]
pub struct Swept {
    /// Trials this process owned (its shard's, or all), every stage planned so far included.
    pub owned: usize,
    /// Trials it ran and recorded.
    pub ran: usize,
}

/// Whether `state` is a record the sweep keeps.
fn is_done(state: &RecordState, retry_failed: bool) -> bool {
    matches!(state, RecordState::Finished(record) if !(retry_failed && record.status == Status::Failed))
}

/// Runs every unfinished trial of `file`'s config (of `options.shard`, if given) into the
/// store at `out`.
///
/// Several processes may sweep into one directory at once (overlapping shards, a resubmitted
/// array job): each trial is claimed while it runs (see [`Store::claim`]), so none runs twice
/// at the same time and none is recorded twice.
pub fn sweep(file: &ConfigFile, out: &std::path::Path, options: SweepOptions) -> Result<Swept> {
    let config = &file.config;
    let store = Store::at(out);
    let plan = || owned_and_pending(config, &store, options);
    let (owned, mut pending) = plan();

    // Everything the trials read is read and checked before anything is written, so a bad
    // data file, checkpoint or tokenizer leaves `out` as it was.
    let log = |line: String| eprintln!("{line}");
    let mut setup = Setup::new(file, device(config.device)?);
    setup.add(&pending, &log)?;
    check_same_sweep(&store, file)?;

    store.create()?;
    store.save_config(&file.text)?;
    store.save_report_settings(&ReportSettings::from(config))?;
    let run_log = RunLog::start(
        &store,
        config,
        setup.device(),
        (options.jobs, options.shard),
        owned.len(),
    )?;
    let progress = Progress::new(owned.len(), owned.len() - pending.len());
    progress.log(format!(
        "{}{}: {} trials, {} already finished, {} to run on {} job(s) -> {}",
        config.name,
        options.shard.map(|s| format!(" shard {s}")).unwrap_or_default(),
        owned.len(),
        owned.len() - pending.len(),
        pending.len(),
        options.jobs,
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
        setup.pretrain(&pending, &store, &|line| progress.log(line))?;
        let run = run_trials(
            config,
            &store,
            &pending,
            (&setup, &start_points),
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
        setup.add(&next, &|line| progress.log(line))?;
        pending = next;
    }
    progress.done();
    run_log.finish()?;
    Ok(Swept {
        owned: owned_count,
        ran: run_log.trials_run(),
    })
}

/// The trials this process owns, stage by stage (see [`adaptive::stages`]), and those of them
/// still to run, pair by pair.
fn owned_and_pending(config: &SweepConfig, store: &Store, options: SweepOptions) -> (Vec<TrialSpec>, Vec<TrialSpec>) {
    let stages = adaptive::stages_in(config, Some(store));
    let owned: Vec<TrialSpec> = stages
        .iter()
        .flat_map(|stage| match options.shard {
            Some(shard) => shard.select(&stage.trials).into_iter().cloned().collect(),
            None => stage.trials.clone(),
        })
        .collect();
    let mut pending: Vec<TrialSpec> = owned
        .iter()
        .filter(|t| !is_done(&store.state(&t.id()), options.retry_failed))
        .cloned()
        .collect();
    in_pair_order(&owned, &mut pending);
    (owned, pending)
}

/// Refuses to sweep into a directory that holds records this config does not plan, which would
/// mix two experiments in one report. So a config may replace the directory's `config.toml` as
/// long as every record there is one of its trials: it adds grid values, seeds, pairs or values
/// of a listed setting, or changes what does not make a trial (comments, `device`, report
/// settings).
fn check_same_sweep(store: &Store, file: &ConfigFile) -> Result<()> {
    let path = store.config_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    if text == file.text {
        return Ok(());
    }
    let stages = adaptive::stages_in(&file.config, Some(store));
    let planned: std::collections::HashSet<String> =
        stages.iter().flat_map(|s| s.trials.iter().map(TrialSpec::id)).collect();
    let records = store.records()?;
    let foreign = records.iter().filter(|r| !planned.contains(&r.trial_id)).count();
    if foreign == 0 {
        return Ok(());
    }
    let mut differences = Vec::new();
    let parse = |text: &str| text.parse::<toml::Table>().map(toml::Value::Table);
    if let (Ok(old), Ok(new)) = (parse(&text), parse(&file.text)) {
        differing_keys(&old, &new, "", &mut differences);
    }
    if differences.is_empty() {
        differences.push("no key (its records came from elsewhere)".into());
    }
    anyhow::bail!(
        "{} holds {foreign} of its {} records from trials this config does not plan; it differs from \
         {} in {}. Sweeping into it would mix two experiments in one report: give another --out, or \
         change the config only by adding values (grid, seeds, pairs, list-valued settings)",
        store.dir().display(),
        records.len(),
        path.display(),
        differences.join(", ")
    )
}

/// The dotted keys whose values differ between two TOML documents, with both values.
fn differing_keys(old: &toml::Value, new: &toml::Value, key: &str, out: &mut Vec<String>) {
    let at = |part: &str| {
        if key.is_empty() {
            part.to_string()
        } else {
            format!("{key}.{part}")
        }
    };
    match (old, new) {
        (toml::Value::Table(a), toml::Value::Table(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => differing_keys(x, y, &at(k), out),
                    (Some(x), None) => out.push(format!("`{}` ({x} -> unset)", at(k))),
                    (None, Some(y)) => out.push(format!("`{}` (unset -> {y})", at(k))),
                    (None, None) => {}
                }
            }
        }
        (toml::Value::Array(a), toml::Value::Array(b)) if a.len() == b.len() && a.iter().all(toml::Value::is_table) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differing_keys(x, y, &format!("{key}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(format!("`{key}` ({a} -> {b})")),
        _ => {}
    }
}

/// Orders `pending` pair by pair, pairs as they first appear in `owned` (grid order), each
/// pair's trials in stage order: when a sweep resumes, a pair whose grid is done runs its planned
/// extension before the next pair's grid rather than after every pair's, so the records of a
/// long study interrupted now and then hold whole pairs.
fn in_pair_order(owned: &[TrialSpec], pending: &mut [TrialSpec]) {
    let mut pair_rank: BTreeMap<PairName, usize> = BTreeMap::new();
    for trial in owned {
        let next = pair_rank.len();
        pair_rank.entry(trial.pair_name()).or_insert(next);
    }
    // A stable sort: within a pair, stages stay in order.
    pending.sort_by_key(|t| pair_rank[&t.pair_name()]);
}

/// `pending` in stacked groups of the size `config.group_size` asks for.
fn stacked_groups<'a>(
    config: &SweepConfig,
    setup: &Setup,
    pending: &'a [TrialSpec],
    jobs: usize,
) -> Vec<Vec<&'a TrialSpec>> {
    let budget = match config.device {
        DeviceChoice::Cpu | DeviceChoice::Ndarray => memory::memory_budget(jobs),
        // wgpu reports no device memory; 16 GiB fits every GPU this project was run on.
        DeviceChoice::Wgpu => 16 << 30,
    };
    let pending: Vec<&TrialSpec> = pending.iter().collect();
    plan::groups(&pending, |spec| match config.group_size {
        GroupSize::Trials(n) => n,
        GroupSize::Auto => {
            let shape = super::data::input_shape(&spec.task.kind, setup.data(spec));
            let bytes = memory::member_bytes(spec, &shape).unwrap_or(usize::MAX);
            memory::auto_group_size(bytes, budget, usize::MAX)
        }
    })
}

/// Runs `pending` in stacked groups, `options.jobs` groups at a time, saving each record as it
/// comes; returns how many trials ran (those another process holds are skipped).
fn run_trials(
    config: &SweepConfig,
    store: &Store,
    pending: &[TrialSpec],
    (setup, start_points): (&Setup, &StartPoints),
    options: SweepOptions,
    (progress, run_log): (&Progress, &RunLog),
) -> Result<usize> {
    let groups = stacked_groups(config, setup, pending, options.jobs);
    progress.log(format!(
        "{} trials in {} stacked group(s) of up to {} (group_size {})",
        pending.len(),
        groups.len(),
        groups.iter().map(Vec::len).max().unwrap_or(0),
        config.group_size
    ));
    // `jobs` groups run at once, each on its own thread; their tensor operations share
    // rayon's global pool, so even one job uses every core. (Running them inside a
    // `jobs`-thread rayon pool would confine their tensor work to that pool.)
    let next = AtomicUsize::new(0);
    let run_count = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let fail = |message: String| failures.lock().unwrap().push(message);
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.min(groups.len()) {
            scope.spawn(|| {
                while let Some(group) = groups.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let (claims, group) = match claim_unfinished(store, group, options.retry_failed) {
                        Ok(claimed) => claimed,
                        Err(error) => {
                            fail(format!("{error:#}"));
                            continue;
                        }
                    };
                    let Some(spec) = group.first() else { continue };
                    // Looked up outside the guard: a missing base or data is this code's bug, not
                    // a trial's failure to record.
                    let (base, data) = (setup.base(spec), setup.data(spec));
                    let run = || run_group(&group, base, data, setup.device(), start_points);
                    let trained = run_guarded(&group, setup.device(), run);
                    for (k, mut record) in trained.records.iter().cloned().enumerate() {
                        // The adapter first: a record is saved only after its adapter, whole.
                        if adapters::keeps(config.save_adapters, &record)
                            && let Some(model) = trained.member(k)
                            && let Err(error) = adapters::save(store, &mut record, &model, &data.labels)
                        {
                            fail(format!("{error:#}"));
                        }
                        if let Err(error) = store.save(&record) {
                            fail(format!("trial {}: {error:#}", record.trial_id));
                        }
                        run_count.fetch_add(1, Ordering::Relaxed);
                        if let Err(error) = run_log.trial_saved() {
                            fail(format!("manifest.json: {error:#}"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pairs_later_stage_runs_before_the_next_pairs_grid() {
        let first = plan::expand(&crate::config::tiny_config(1));
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
    fn changed_keys_are_named_with_both_values() {
        let parse = |text: &str| toml::Value::Table(text.parse::<toml::Table>().unwrap());
        let old = parse("name = \"a\"\n[train]\nsteps = 4\n[[task]]\nname = \"t\"\nn_val = 5\n");
        let new = parse("name = \"a\"\n[train]\nsteps = 6\nbatch_size = 8\n[[task]]\nname = \"t\"\nn_val = 7\n");
        let mut out = Vec::new();
        differing_keys(&old, &new, "", &mut out);
        assert_eq!(
            out,
            [
                "`task[0].n_val` (5 -> 7)",
                "`train.batch_size` (unset -> 8)",
                "`train.steps` (4 -> 6)"
            ]
        );
    }
}
