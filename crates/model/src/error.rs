//! Errors a user can cause: bad LoRA settings, unknown targets, unreadable adapter files.

use std::path::PathBuf;

/// Everything in this crate that can fail because of its input.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("LoRA rank must be at least 1, got {0}")]
    ZeroRank(usize),
    #[error(
        "LoRA rank {rank} is too large for layer `{layer}` ({d_input} -> {d_output}): \
         the rank must be at most min(d_in, d_out) = {max}",
        max = d_input.min(d_output)
    )]
    RankTooLarge {
        layer: String,
        rank: usize,
        d_input: usize,
        d_output: usize,
    },
    #[error("LoRA alpha must be a finite number > 0, got {0}")]
    InvalidAlpha(f64),
    #[error("LoRA dropout must be in [0, 1), got {0}")]
    InvalidDropout(f64),
    #[error("unknown LoRA target `{target}` for {model}; allowed: {}", allowed.join(", "))]
    UnknownTarget {
        target: String,
        model: String,
        allowed: Vec<String>,
    },
    #[error("no LoRA targets given for {model}; allowed: {}", allowed.join(", "))]
    NoTargets { model: String, allowed: Vec<String> },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: missing tensor `{key}` (expected shape {expected:?})")]
    MissingTensor {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
    },
    #[error("{path}: tensor `{key}` has shape {found:?}, expected {expected:?}")]
    WrongShape {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error(
        "parameter `{path}` trains but lies outside the adapters and heads: stacked trials \
         cannot share a trainable parameter"
    )]
    SharedTrainable { path: String },
    #[error("{path}: unexpected tensor `{key}`: the model has no place for it")]
    UnexpectedTensor { path: PathBuf, key: String },
}
