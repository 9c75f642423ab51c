//! `loraplus predict MODEL_DIR FILE`: a trained adapter (an export folder, or a trial's folder in
//! a sweep) classifies the texts of a CSV / TSV / JSON-lines / Orange `.tab` file, read with the
//! trial's own loader options unless told otherwise.

use std::fs;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use burn::tensor::activation::softmax;
use indicatif::{ProgressBar, ProgressStyle};
use loraplus_data::{Columns, Split, TableFormat, TextEncoder, TextRow, read_rows};

use super::TRIAL_FILE;
use crate::config::TaskKind;
use crate::run::adapters;
use crate::run::zoo::Classifier;
use crate::store::TrialRecord;

/// How `predict` reads and writes. Unset loader options are the trial's task's.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// The predictions CSV.
    pub out: PathBuf,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// The text column.
    pub text: Option<String>,
    /// The second text of a pair.
    pub text_pair: Option<String>,
    /// The label column (used, when the file has it, for the accuracy).
    pub label: Option<String>,
    /// The file's format. Default: from its extension.
    pub format: Option<TableFormat>,
    /// Tokens per example at most.
    pub max_seq_len: Option<usize>,
}

/// What `predict` did.
#[derive(Debug)]
pub struct Predicted {
    /// Examples classified.
    pub examples: usize,
    /// Correct predictions and labelled examples, when the file has labels.
    pub accuracy: Option<(usize, usize)>,
    /// Where the predictions are.
    pub out: PathBuf,
}

/// The trial record of `model_dir`: `trial.json` in an export folder, or `trials/<id>.json`
/// beside the trial folder `trials/<id>/`.
pub fn record_of(model_dir: &Path) -> Result<TrialRecord> {
    let exported = model_dir.join(TRIAL_FILE);
    let beside = model_dir.with_extension("json");
    let path = [&exported, &beside]
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{} is neither an exported adapter (no {}) nor a trial's folder in a sweep (no {})",
                model_dir.display(),
                exported.display(),
                beside.display()
            )
        })?;
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a trial record", path.display()))
}

/// Classifies every example of `file` with the adapter in `model_dir`, writing the predictions
/// as they come (to a temporary file, renamed to `options.out` at the end).
pub fn predict(model_dir: &Path, file: &Path, options: &PredictOptions) -> Result<Predicted> {
    anyhow::ensure!(options.batch_size >= 1, "--batch-size must be at least 1");
    let record = record_of(model_dir)?;
    let TaskKind::Text(task) = &record.spec.task.kind else {
        anyhow::bail!(
            "trial {} trained on task `{}`, which is not text",
            record.trial_id,
            record.spec.task.name
        )
    };
    let device = Device::flex();
    let (model, labels) = adapters::load(&record, model_dir, &device)?;
    let checkpoint = adapters::checkpoint(&record)?;
    let encoder = TextEncoder::from_file(
        &checkpoint.path.join(loraplus_data::TOKENIZER_FILE),
        options.max_seq_len.unwrap_or(task.max_seq_len),
    )?;
    let columns = Columns {
        text: options.text.clone().unwrap_or_else(|| task.text.clone()),
        text_pair: options.text_pair.clone().or_else(|| task.text_pair.clone()),
        label: options.label.clone().unwrap_or_else(|| task.label.clone()),
        skip_labels: task.skip_labels.clone(),
        label_optional: true,
    };
    let rows = read_rows(file, options.format.or(task.format), &columns)?;
    let labelled = rows.iter().all(|r| !r.label.is_empty());
    if labelled && let Some(unknown) = rows.iter().find(|r| !labels.contains(&r.label)) {
        anyhow::bail!(
            "{}:{}: label `{}` in column `{}` is not one of the trial's classes {labels:?}",
            file.display(),
            unknown.line,
            unknown.label,
            columns.label
        );
    }

    let tmp = options.out.with_extension("csv.tmp");
    let mut out = csv::Writer::from_writer(BufWriter::new(
        fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?,
    ));
    let mut header = vec!["line".to_string(), "predicted".into()];
    if labelled {
        header.push(columns.label.clone());
    }
    header.extend(labels.iter().map(|l| format!("p_{l}")));
    out.write_record(&header)?;
    let bar = std::io::stderr().is_terminal().then(|| progress_bar(rows.len()));
    let mut correct = 0;
    for chunk in rows.chunks(options.batch_size) {
        let probabilities = classify(&model, &encoder, chunk, &device)?;
        for (row, p) in chunk.iter().zip(probabilities.chunks(labels.len())) {
            let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).expect("classes");
            correct += usize::from(labelled && labels[best] == row.label);
            let mut fields = vec![row.line.to_string(), labels[best].clone()];
            if labelled {
                fields.push(row.label.clone());
            }
            fields.extend(p.iter().map(|v| format!("{v:.6}")));
            out.write_record(&fields)?;
        }
        if let Some(bar) = &bar {
            bar.inc(chunk.len() as u64);
        }
    }
    out.into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?
        .flush()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    fs::rename(&tmp, &options.out)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), options.out.display()))?;
    Ok(Predicted {
        examples: rows.len(),
        accuracy: labelled.then_some((correct, rows.len())),
        out: options.out.clone(),
    })
}

/// The class probabilities of `rows`, row-major.
fn classify(model: &Classifier, encoder: &TextEncoder, rows: &[TextRow], device: &Device) -> Result<Vec<f32>> {
    let texts: Vec<(&str, Option<&str>)> = rows.iter().map(|r| (r.text.as_str(), r.text_pair.as_deref())).collect();
    // The split's labels are not read: predictions are compared with the rows' label names.
    let split = Split {
        inputs: encoder.encode(&texts)?,
        labels: vec![0; rows.len()],
    };
    let all: Vec<usize> = (0..rows.len()).collect();
    let logits = model.forward(&split.batch(&all, device).input);
    Ok(softmax(logits, 1)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 probabilities"))
}

fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} examples  {elapsed_precise} elapsed, ETA {eta}")
            .expect("valid template"),
    );
    bar
}
