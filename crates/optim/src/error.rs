//! Errors from optimizer settings.

/// A setting no run could use.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    #[error("invalid `{key}` = {value}: must be {allowed}")]
    InvalidValue {
        key: &'static str,
        value: f64,
        allowed: &'static str,
    },
    #[error("warmup_steps ({warmup_steps}) exceeds the run's total steps ({total_steps})")]
    WarmupTooLong { warmup_steps: usize, total_steps: usize },
    #[error("the model has no trainable parameters: attach adapters or unfreeze the head first")]
    NoTrainableParams,
    #[error("a stacked optimizer needs at least one member")]
    NoMembers,
    #[error("stacked members may differ in `lr` and `ratio` only")]
    MembersDiffer,
    #[error("trainable parameter `{path}` does not split into {members} stacked members")]
    NotStacked { path: String, members: usize },
}

impl OptimError {
    pub(crate) fn value(key: &'static str, value: f64, allowed: &'static str) -> Self {
        Self::InvalidValue { key, value, allowed }
    }
}
