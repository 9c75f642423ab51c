//! Taking the result home: a sweep's best adapters exported as folders PEFT loads as they are
//! (and, with `--merged`, as plain Hugging Face checkpoints), and `predict` with any of them.
//!
//! An export folder holds what the trial saved (`adapter_model.safetensors`, `labels.json`),
//! `adapter_config.json` naming the base checkpoint by its absolute path, the trial's record
//! (`trial.json`, which `predict` reads) and a model card (`README.md`).

pub mod predict;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use loraplus_model::models::{self, CONFIG_FILE};
use loraplus_model::peft::{self, PeftConfigFile};

use crate::analysis::{self, Cell, metric_of};
use crate::config::{Metric, ReportSettings};
use crate::run::adapters::{self, LABELS_FILE};
use crate::run::zoo::Classifier;
use crate::store::{ADAPTER_WEIGHTS, AdapterState, Store, TrialRecord, make_dir_atomic};

/// The record beside an exported adapter.
pub const TRIAL_FILE: &str = "trial.json";

/// The files of a base checkpoint that its tokenizer needs, copied beside a merged checkpoint.
const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
];

/// What `loraplus export` exports.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// This trial alone, instead of each pair's best cell.
    pub trial: Option<String>,
    /// The best cell's trial of this seed, instead of the one closest to the cell's mean.
    pub seed: Option<u64>,
    /// Also write the base with the adapter merged in, as a Hugging Face checkpoint.
    pub merged: bool,
}

/// One trial to export: its folder's name, its record, and why it was chosen.
struct Choice<'a> {
    name: String,
    record: &'a TrialRecord,
    why: String,
}

/// Exports from the sweep in `store` into `out` (one folder per choice) and returns what it
/// wrote. Every choice is checked (its adapter whole, its base there for `--merged`) before any
/// folder is written; each folder is written whole, replacing an older export of the same name.
pub fn export(store: &Store, out: &Path, options: &ExportOptions) -> Result<String> {
    let records = store.records()?;
    anyhow::ensure!(
        !records.is_empty(),
        "{} holds no finished trial records: nothing to export",
        store.dir().display()
    );
    let settings = store.report_settings()?;
    let choices = match &options.trial {
        Some(id) => vec![one_trial(store, &records, id)?],
        None => best_cells(&records, &settings, options.seed)?,
    };
    for choice in &choices {
        check(store, choice.record, options.merged)?;
    }
    let created = !out.exists();
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut summary = String::new();
    let mut written = Vec::new();
    for choice in &choices {
        let folder = out.join(&choice.name);
        let made = make_dir_atomic(&folder, |tmp| {
            write_export(store, choice, &settings, options.merged, tmp)
        });
        if let Err(error) = made {
            // All or nothing: what this export wrote goes too.
            for folder in written {
                let _ = fs::remove_dir_all(folder);
            }
            if created {
                let _ = fs::remove_dir_all(out);
            }
            return Err(error);
        }
        let _ = writeln!(
            summary,
            "{}: trial {} ({}) -> {}",
            choice.name,
            choice.record.trial_id,
            choice.why,
            folder.display()
        );
        written.push(folder);
    }
    Ok(summary)
}

/// `--trial ID`.
fn one_trial<'a>(store: &Store, records: &'a [TrialRecord], id: &str) -> Result<Choice<'a>> {
    let record = records.iter().find(|r| r.trial_id == id).with_context(|| {
        format!(
            "no finished trial `{id}` in {}: trial ids are the record names under {}",
            store.dir().display(),
            store.dir().join("trials").display()
        )
    })?;
    Ok(Choice {
        name: format!("trial-{id}"),
        record,
        why: "asked for".into(),
    })
}

/// Each pair's best cell as the report ranks it, and the trial of that cell to export: the one
/// of `seed`, or else the seed whose metric is closest to the cell's mean (the most typical of
/// its trials; ties go to the smaller seed).
fn best_cells<'a>(records: &'a [TrialRecord], settings: &ReportSettings, seed: Option<u64>) -> Result<Vec<Choice<'a>>> {
    let metric = settings.ranking_metric();
    let mut choices = Vec::new();
    for pair in analysis::pairs(records) {
        let Some(best) = pair.ranked(settings).into_iter().next() else {
            continue;
        };
        let chosen = match seed {
            Some(seed) => *best
                .cell
                .trials
                .iter()
                .find(|t| t.spec.seed == seed)
                .with_context(|| format!("the best cell of {} has no trial of seed {seed}", pair.key))?,
            None => typical(best.cell, best.mean, metric),
        };
        // The same record, borrowed from `records` rather than from the pair made of them.
        let record = records
            .iter()
            .find(|r| r.trial_id == chosen.trial_id)
            .expect("a pair's record");
        choices.push(Choice {
            name: pair.slug(),
            record,
            why: format!(
                "the best cell: eta_A {:e}, ratio {}, mean {metric} {:.4}; seed {}",
                best.cell.eta_a, best.cell.ratio, best.mean, record.spec.seed
            ),
        });
    }
    anyhow::ensure!(
        !choices.is_empty(),
        "no cell finished and learned on every seed: no best cell to export"
    );
    Ok(choices)
}

/// The trial of `cell` whose metric is closest to `mean`, the smaller seed on a tie.
fn typical<'c>(cell: &Cell<'c>, mean: f64, metric: Metric) -> &'c TrialRecord {
    let distance = |t: &TrialRecord| {
        t.last()
            .and_then(|p| metric_of(p, metric))
            .map_or(f64::INFINITY, |v| (v - mean).abs())
    };
    cell.trials
        .iter()
        .copied()
        .min_by(|a, b| distance(a).total_cmp(&distance(b)).then(a.spec.seed.cmp(&b.spec.seed)))
        .expect("a ranked cell has trials")
}

/// Fails, naming what is wrong, if `record`'s adapter cannot be exported.
fn check(store: &Store, record: &TrialRecord, merged: bool) -> Result<()> {
    let dir = store.trial_dir(&record.trial_id);
    match store.adapter_state(record) {
        AdapterState::Whole => {}
        AdapterState::None => anyhow::bail!(
            "trial {} saved no adapter (a head-only baseline, a diverged or failed trial, or a sweep with \
             save_adapters = \"none\")",
            record.trial_id
        ),
        AdapterState::Missing => anyhow::bail!(
            "the adapter of trial {} is missing: {} is gone",
            record.trial_id,
            dir.display()
        ),
        AdapterState::Corrupt => anyhow::bail!(
            "the adapter of trial {} is corrupt: {} does not match its record's SHA-256",
            record.trial_id,
            dir.join(ADAPTER_WEIGHTS).display()
        ),
    }
    if merged {
        adapters::checkpoint(record)?;
    }
    Ok(())
}

/// Fills the export folder `tmp` for `choice`.
fn write_export(store: &Store, choice: &Choice, settings: &ReportSettings, merged: bool, tmp: &Path) -> Result<()> {
    let record = choice.record;
    let saved = store.trial_dir(&record.trial_id);
    for file in [ADAPTER_WEIGHTS, LABELS_FILE] {
        fs::copy(saved.join(file), tmp.join(file))
            .with_context(|| format!("cannot copy {}", saved.join(file).display()))?;
    }
    // PEFT finds the base wherever it is loaded from.
    let config_path = saved.join(peft::CONFIG_FILE);
    let mut config: PeftConfigFile = serde_json::from_slice(&fs::read(&config_path)?)
        .with_context(|| format!("{} is not a PEFT adapter config", config_path.display()))?;
    if let Some(base) = &config.base_model_name_or_path {
        config.base_model_name_or_path = Some(absolute(Path::new(base)).display().to_string());
    }
    fs::write(tmp.join(peft::CONFIG_FILE), serde_json::to_vec_pretty(&config)?)?;
    fs::write(tmp.join(TRIAL_FILE), serde_json::to_vec_pretty(record)?)?;
    let labels = adapters::labels(&saved)?;
    fs::write(tmp.join("README.md"), model_card(choice, settings, &config, &labels))?;
    if merged {
        let device = Device::flex();
        let (model, labels) = adapters::load(record, &saved, &device)?;
        write_merged(record, &model, &labels, &tmp.join("merged"))?;
    }
    Ok(())
}

/// The base checkpoint with the adapter merged in: `config.json`, `model.safetensors` and the
/// base's tokenizer files.
fn write_merged(record: &TrialRecord, model: &Classifier, labels: &[String], dir: &Path) -> Result<()> {
    let checkpoint = adapters::checkpoint(record)?;
    let Classifier::Bert(bert) = model else {
        anyhow::bail!("trial {} trained no BERT classifier", record.trial_id)
    };
    let base_config: serde_json::Value = serde_json::from_slice(&fs::read(checkpoint.path.join(CONFIG_FILE))?)?;
    models::save_pretrained(bert, &base_config, labels, dir)?;
    for file in TOKENIZER_FILES {
        let from = checkpoint.path.join(file);
        if from.is_file() {
            fs::copy(&from, dir.join(file)).with_context(|| format!("cannot copy {}", from.display()))?;
        }
    }
    Ok(())
}

/// `README.md`: what the adapter is, how it was chosen, how well it did, how to load it.
fn model_card(choice: &Choice, settings: &ReportSettings, config: &PeftConfigFile, labels: &[String]) -> String {
    let record = choice.record;
    let spec = &record.spec;
    let accuracy = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
    let base = config
        .base_model_name_or_path
        .as_deref()
        .unwrap_or("this project's own pretrained base (bases/)");
    format!(
        "# {pair}: a LoRA adapter from the loraplus sweep `{sweep}`\n\n\
         Trial `{id}`: eta_A {eta_a:e}, ratio {ratio} (eta_B {eta_b:e}), rank {rank}, alpha {alpha}, \
         targets {targets:?}, {steps} steps of batch {batch}, seed {seed}.\n\n\
         Chosen: {why} (ranked by {metric}, protocol `{protocol}`).\n\n\
         | split | final accuracy | best over the run |\n|---|---:|---:|\n\
         | validation | {val} | {best_val} |\n| test | {test} | {best_test} |\n\n\
         Majority class on the test split: {majority}.\n\n\
         Base: `{base}`. Classes, in order: {labels:?} (also `labels.json`).\n\n\
         Code version `{code}`, backend `{backend}`. The whole record is `trial.json`.\n",
        pair = spec.pair_name(),
        sweep = settings.name,
        id = record.trial_id,
        eta_a = spec.eta_a,
        ratio = spec.ratio,
        eta_b = spec.eta_b(),
        rank = config.r,
        alpha = config.lora_alpha,
        targets = spec.model.targets(),
        steps = record.steps_planned,
        batch = spec.train.batch_size.get(),
        seed = spec.seed,
        why = choice.why,
        metric = settings.ranking_metric(),
        protocol = settings.protocol.as_str(),
        val = accuracy(record.accuracy.final_val),
        best_val = accuracy(record.accuracy.best_val),
        test = accuracy(record.accuracy.final_test),
        best_test = accuracy(record.accuracy.best_test),
        majority = accuracy(record.majority_test_accuracy),
        code = record.provenance.code_version,
        backend = record.provenance.backend,
    )
}

/// `path`, absolute (as it resolves from the working directory), where it exists.
fn absolute(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
