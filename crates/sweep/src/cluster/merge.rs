//! `loraplus merge DIR... --out OUT`: one sweep's results gathered from several directories
//! (shards run on different machines or clusters, a rerun), each trial once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::adaptive;
use crate::config::ConfigFile;
use crate::plan;
use crate::report;
use crate::store::{AdapterState, Manifest, Status, Store, TrialRecord, write_atomic};

/// What a merge did.
#[derive(Debug)]
pub struct MergeSummary {
    /// Records written to the output (one per trial).
    pub records: usize,
    /// Trials of the config with no record anywhere.
    pub missing: usize,
    /// Records found more than once; the best kept (see [`merge`]).
    pub duplicates: usize,
    /// Of `duplicates`, those whose copies gave different results.
    pub conflicts: Vec<String>,
    /// Records that are not trials of the config, left out.
    pub foreign: usize,
    /// Records whose adapter was missing or corrupt where the record came from.
    pub broken_adapters: Vec<String>,
    /// The report's printed summary.
    pub report: String,
}

/// A source directory, read and checked.
struct Source {
    store: Store,
    config: ConfigFile,
    trial_ids: BTreeSet<String>,
    records: Vec<TrialRecord>,
}

impl Source {
    fn read(dir: &Path) -> Result<Self> {
        let store = Store::existing(dir)?;
        let config = ConfigFile::load(&store.config_path())
            .with_context(|| format!("{} is not a sweep directory with a valid config", dir.display()))?;
        Ok(Self {
            trial_ids: plan::expand(&config.config).iter().map(|t| t.id()).collect(),
            records: store.records()?,
            config,
            store,
        })
    }

    fn dir(&self) -> &Path {
        self.store.dir()
    }
}

/// Merges the records of `sources` into `out` and writes its reports.
///
/// Every source (and `out`, if it already holds results) must describe the same sweep: configs
/// whose grids expand to the same trials (comments, formatting and key order may differ). A
/// trial recorded in several places is kept once: a finished record (ok or diverged) over a
/// failed one, otherwise the first in the order given, with `out`'s own records first. Copies
/// that disagree are listed as conflicts. Nothing is written if any check fails.
pub fn merge(sources: &[PathBuf], out: &Path) -> Result<MergeSummary> {
    anyhow::ensure!(!sources.is_empty(), "give at least one directory to merge");
    let mut dirs: Vec<PathBuf> = Vec::new();
    if out.join("trials").is_dir() {
        dirs.push(out.to_path_buf());
    }
    for dir in sources {
        if !dirs.iter().any(|d| same_dir(d, dir)) {
            dirs.push(dir.clone());
        }
    }
    let read: Vec<Source> = dirs.iter().map(|d| Source::read(d)).collect::<Result<_>>()?;
    check_one_sweep(&read)?;
    let first = &read[0];
    let (mut kept, duplicates, conflicts) = keep_each_trial_once(&read);
    // The sweep's trials: its grid and, if it is adaptive, the stages the merged records plan.
    let stages = adaptive::stages(&first.config.config, |t| kept.get(&t.id()).map(|(r, _)| r.clone()));
    let trial_ids: BTreeSet<String> = stages.iter().flat_map(|s| s.trials.iter().map(|t| t.id())).collect();
    let before = kept.len();
    kept.retain(|id, _| trial_ids.contains(id));
    let foreign = before - kept.len();

    let settings = first.store.report_settings()?;
    let store = Store::open(out)?;
    store.save_config(&first.config.text)?;
    store.save_report_settings(&settings)?;
    let mut broken_adapters = Vec::new();
    for (record, source) in kept.values() {
        if store.finished(&record.trial_id).as_ref() == Some(record) {
            continue;
        }
        // The adapter first, then its record, as a sweep writes them.
        let from = &read[*source].store;
        match from.adapter_state(record) {
            AdapterState::None => {}
            AdapterState::Whole => {
                let dir = from.trial_dir(&record.trial_id);
                store.save_trial_dir(&record.trial_id, |tmp| copy_files(&dir, tmp))?;
            }
            AdapterState::Missing | AdapterState::Corrupt => broken_adapters.push(record.trial_id.clone()),
        }
        store.save(record)?;
    }
    let others: Vec<&Source> = read.iter().filter(|s| !same_dir(s.dir(), out)).collect();
    for source in &others {
        copy_bases(source.dir(), out)?;
    }
    store.update_manifest(
        || Manifest::new(settings.name.clone(), first.config.config.seeds.clone()),
        |manifest| {
            for source in &others {
                if let Some(theirs) = source.store.manifest() {
                    manifest.runs.extend(theirs.runs);
                }
                manifest.merged_from.push(source.dir().display().to_string());
            }
        },
    )?;
    Ok(MergeSummary {
        records: kept.len(),
        missing: trial_ids.len() - kept.len(),
        duplicates,
        conflicts,
        foreign,
        broken_adapters,
        report: report::write_reports(&store, &settings)?,
    })
}

/// Refuses sources whose configs plan different trials or extend their grids differently.
fn check_one_sweep(read: &[Source]) -> Result<()> {
    let first = &read[0];
    for other in &read[1..] {
        if other.config.config.adaptive != first.config.config.adaptive {
            bail!(
                "{} and {} extend their grids differently (their [adaptive] sections differ); merge only \
                 directories of one config",
                first.dir().display(),
                other.dir().display()
            );
        }
        if other.trial_ids != first.trial_ids {
            let only_first = first.trial_ids.difference(&other.trial_ids).count();
            let only_other = other.trial_ids.difference(&first.trial_ids).count();
            bail!(
                "{} and {} hold different sweeps: their configs ({}, {}) differ in {} trial(s) \
                 ({only_first} only in the first, {only_other} only in the second); merge only \
                 directories of one config",
                first.dir().display(),
                other.dir().display(),
                first.config.path.display(),
                other.config.path.display(),
                only_first + only_other
            );
        }
    }
    Ok(())
}

/// One record per trial over all sources, with the index of the source it came from; how many
/// were found more than once, and the duplicates whose copies disagree.
fn keep_each_trial_once(read: &[Source]) -> (BTreeMap<String, (TrialRecord, usize)>, usize, Vec<String>) {
    let mut kept: BTreeMap<String, (TrialRecord, usize)> = BTreeMap::new();
    let (mut duplicates, mut conflicts) = (0, Vec::new());
    for (index, source) in read.iter().enumerate() {
        for record in &source.records {
            let Some((existing, _)) = kept.get(&record.trial_id) else {
                kept.insert(record.trial_id.clone(), (record.clone(), index));
                continue;
            };
            duplicates += 1;
            if !same_result(existing, record) {
                conflicts.push(format!(
                    "{} ({} in one copy, {} in {})",
                    record.trial_id,
                    describe(existing),
                    describe(record),
                    source.dir().display()
                ));
            }
            if existing.status == Status::Failed && record.status != Status::Failed {
                kept.insert(record.trial_id.clone(), (record.clone(), index));
            }
        }
    }
    (kept, duplicates, conflicts)
}

/// Whether two records carry the same result (provenance and timing aside).
fn same_result(a: &TrialRecord, b: &TrialRecord) -> bool {
    a.status == b.status && a.steps_run == b.steps_run && a.curve == b.curve
}

fn describe(record: &TrialRecord) -> String {
    match record.final_test_accuracy() {
        Some(acc) => format!("{} test {acc:.4}", record.status.as_str()),
        None => record.status.as_str().to_string(),
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Copies the files of folder `from` into folder `to`.
fn copy_files(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let path = entry?.path();
        fs::copy(&path, to.join(path.file_name().expect("a file")))
            .with_context(|| format!("cannot copy {}", path.display()))?;
    }
    Ok(())
}

/// Copies `from`'s cached pretrained bases that `to` lacks, so a sweep resumed in `to` does not
/// pretrain them again.
fn copy_bases(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(from.join("bases")) else {
        return Ok(());
    };
    fs::create_dir_all(to.join("bases"))?;
    for entry in entries {
        let path = entry?.path();
        let keep = path.extension().is_some_and(|e| e == "bpk" || e == "json");
        let target = to.join("bases").join(path.file_name().expect("a file"));
        if keep && !target.exists() {
            let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            write_atomic(&target, &bytes)?;
        }
    }
    Ok(())
}

impl fmt::Display for MergeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "merged {} trial records ({} missing); {} duplicate(s) kept once, {} conflicting; {} record(s) of other configs left out",
            self.records,
            self.missing,
            self.duplicates,
            self.conflicts.len(),
            self.foreign
        )?;
        for conflict in &self.conflicts {
            writeln!(f, "  conflict: {conflict}")?;
        }
        for id in &self.broken_adapters {
            writeln!(
                f,
                "  trial {id}: its adapter is missing or corrupt where its record came from"
            )?;
        }
        write!(f, "{}", self.report)
    }
}
