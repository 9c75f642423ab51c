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
use loraplus_data::{Columns, Split, TableFormat, TextEncoder, TextRow, each_row};

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
    let tmp = options.out.with_extension("csv.tmp");
    let written = write_predictions(
        &model,
        &encoder,
        (file, options.format.or(task.format), &columns),
        &labels,
        options,
        &tmp,
    );
    let predicted = match written {
        Ok(predicted) => predicted,
        Err(error) => {
            let _ = fs::remove_file(&tmp);
            return Err(error);
        }
    };
    fs::rename(&tmp, &options.out)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), options.out.display()))?;
    Ok(predicted)
}

/// Streams `file` through the model `batch_size` examples at a time, writing each batch's
/// predictions to `tmp` as it goes.
fn write_predictions(
    model: &Classifier,
    encoder: &TextEncoder,
    (file, format, columns): (&Path, Option<TableFormat>, &Columns),
    labels: &[String],
    options: &PredictOptions,
    tmp: &Path,
) -> Result<Predicted> {
    let device = Device::flex();
    let mut out = csv::Writer::from_writer(BufWriter::new(
        fs::File::create(tmp).with_context(|| format!("cannot write {}", tmp.display()))?,
    ));
    let bar = std::io::stderr().is_terminal().then(progress_bar);
    // Whether the file has labels is told by its first example.
    let mut labelled = None;
    let (mut examples, mut correct) = (0, 0);
    let mut batch: Vec<TextRow> = Vec::with_capacity(options.batch_size);
    let mut flush = |batch: &mut Vec<TextRow>| -> Result<()> {
        let has_labels = match labelled {
            Some(has) => has,
            None => {
                let has = !batch[0].label.is_empty();
                let mut header = vec!["line".to_string(), "predicted".into()];
                if has {
                    header.push(columns.label.clone());
                }
                header.extend(labels.iter().map(|l| format!("p_{l}")));
                out.write_record(&header)?;
                labelled = Some(has);
                has
            }
        };
        let probabilities = classify(model, encoder, batch, &device)?;
        for (row, p) in batch.iter().zip(probabilities.chunks(labels.len())) {
            if has_labels && !labels.contains(&row.label) {
                anyhow::bail!(
                    "{}:{}: label `{}` in column `{}` is not one of the trial's classes {labels:?}",
                    file.display(),
                    row.line,
                    row.label,
                    columns.label
                );
            }
            let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).expect("classes");
            correct += usize::from(has_labels && labels[best] == row.label);
            let mut fields = vec![row.line.to_string(), labels[best].clone()];
            if has_labels {
                fields.push(row.label.clone());
            }
            fields.extend(p.iter().map(|v| format!("{v:.6}")));
            out.write_record(&fields)?;
        }
        examples += batch.len();
        if let Some(bar) = &bar {
            bar.inc(batch.len() as u64);
        }
        batch.clear();
        Ok(())
    };
    each_row(file, format, columns, |row| -> Result<()> {
        batch.push(row);
        if batch.len() == options.batch_size {
            flush(&mut batch)?;
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        flush(&mut batch)?;
    }
    out.into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?
        .flush()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(Predicted {
        examples,
        accuracy: (labelled == Some(true)).then_some((correct, examples)),
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

/// A spinner with the examples classified so far: a streamed file's length is not known ahead.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} examples classified  {elapsed_precise} elapsed, {per_sec}")
            .expect("valid template"),
    );
    bar
}
