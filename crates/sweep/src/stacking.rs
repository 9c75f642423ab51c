//! Which trials train together as one stacked computation, and how many at a time.
//!
//! Trials that differ only in `eta_A` and `lambda` share everything that shapes their
//! computation: base, task, seed (so initial adapters, head, batches and dropout masks), method
//! and every other setting. They run as members of one stacked model
//! (`loraplus_model::members`): one forward and backward pass for all of them, each with its own
//! rates. How many go into one pass is `group_size`: a number, or `auto`, which fits the members'
//! activations into a memory budget.

use std::collections::BTreeMap;

use anyhow::Result;
use loraplus_model::models::read_bert_config;
use serde::{Deserialize, Serialize};

use crate::data::{Features, InputShape, TaskKind};
use crate::grid::TrialSpec;
use crate::zoo::ModelKind;

/// How many trials train together.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(untagged, expecting = "\"auto\" or a number of trials >= 1")]
pub enum GroupSize {
    /// As many as fit the memory budget (see [`auto_group_size`]).
    #[default]
    #[serde(with = "auto_keyword")]
    Auto,
    /// At most this many (1: every trial alone).
    Trials(usize),
}

mod auto_keyword {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("auto")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        match String::deserialize(d)?.as_str() {
            "auto" => Ok(()),
            other => Err(D::Error::custom(format!("unknown group size `{other}`"))),
        }
    }
}

impl std::str::FromStr for GroupSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(GroupSize::Auto),
            n => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(GroupSize::Trials(n)),
                _ => Err(format!("`{s}` is neither `auto` nor a number of trials >= 1")),
            },
        }
    }
}

/// Splits `trials` into groups that can run stacked, each at most `size(first trial)` long.
/// Groups keep the trials' order within them; trials that cannot share a pass are never grouped.
pub fn groups<'a>(trials: &[&'a TrialSpec], size: impl Fn(&TrialSpec) -> usize) -> Vec<Vec<&'a TrialSpec>> {
    let mut by_key: BTreeMap<String, Vec<&'a TrialSpec>> = BTreeMap::new();
    let mut first_seen = Vec::new();
    for trial in trials {
        let key = family_key(trial);
        if !by_key.contains_key(&key) {
            first_seen.push(key.clone());
        }
        by_key.entry(key).or_default().push(trial);
    }
    let mut out = Vec::new();
    for key in first_seen {
        let members = &by_key[&key];
        let size = size(members[0]).max(1);
        out.extend(members.chunks(size).map(<[_]>::to_vec));
    }
    out
}

/// A trial's family: everything about it but its two rates.
pub fn family_key(trial: &TrialSpec) -> String {
    let shared = TrialSpec {
        eta_a: 0.0,
        ratio: 0.0,
        ..trial.clone()
    };
    serde_json::to_string(&shared).expect("a spec serialises")
}

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
    let seq = sequence_length(&trial.task.kind);
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

fn sequence_length(task: &TaskKind) -> usize {
    match task {
        TaskKind::BagOfTokens(t) => t.seq_len,
        TaskKind::Text(t) => t.max_seq_len,
        TaskKind::Teacher(_) | TaskKind::Images(_) => 1,
    }
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
