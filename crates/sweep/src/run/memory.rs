//! How many trials of a family fit in one stacked pass: `group_size = "auto"` fits the members'
//! activations, by a generous closed form per architecture, into a memory budget.

use anyhow::Result;
use loraplus_model::models::read_bert_config;

use crate::config::{Features, InputShape, ModelKind};
use crate::plan::TrialSpec;

/// Bytes one member needs during a training step: the activations its forward pass keeps for
/// backward, with room for the backward pass's temporaries.
///
/// A deliberately generous closed form: per example, every layer's input and output widths four
/// times over (saved input, output, its gradient, a temporary), and for a transformer the
/// attention scores, probabilities and dropout mask of every head.
pub fn member_bytes(trial: &TrialSpec, shape: &InputShape) -> Result<usize> {
    let input_width = match shape.features {
        Features::Vectors(d) => d,
        Features::Tokens { .. } | Features::Text => 0,
    };
    let mlp = |hidden: &[usize]| {
        let widths = [&[input_width][..], hidden, &[shape.n_classes]].concat();
        widths.windows(2).map(|w| 4 * (w[0] + w[1])).sum::<usize>()
    };
    let seq = trial.task.kind.sequence_length();
    let floats_per_example = match &trial.model.kind {
        ModelKind::Mlp(m) => mlp(&m.hidden),
        ModelKind::Toy(t) => mlp(&[t.width, t.width]),
        ModelKind::Bert(b) => transformer_floats(
            b.num_hidden_layers,
            b.hidden_size,
            b.intermediate_size,
            b.num_attention_heads,
            seq,
        ),
        ModelKind::BertCheckpoint(c) => {
            let b = read_bert_config(&c.path)?;
            transformer_floats(
                b.num_hidden_layers,
                b.hidden_size,
                b.intermediate_size,
                b.num_attention_heads,
                seq,
            )
        }
    };
    Ok(floats_per_example * trial.train.batch_size.get() * std::mem::size_of::<f32>())
}

/// Floats per example of a BERT encoder over `seq` tokens.
fn transformer_floats(layers: usize, hidden: usize, intermediate: usize, heads: usize, seq: usize) -> usize {
    layers * seq * (16 * hidden + 4 * intermediate + 3 * heads * seq)
}

/// The memory the trials of one job may use: half of what the system reports available, split
/// across `jobs`.
pub fn memory_budget(jobs: usize) -> usize {
    let available_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        // 8 GiB where the system does not say.
        .unwrap_or(8 << 20);
    available_kb * 1024 / 2 / jobs.max(1)
}

/// The most members whose activations fit `budget` bytes, at least 1 and at most `cap`.
pub fn auto_group_size(member_bytes: usize, budget: usize, cap: usize) -> usize {
    (budget / member_bytes.max(1)).clamp(1, cap.max(1))
}
