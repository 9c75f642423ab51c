//! LoRA adapters and the models that carry them.
//!
//! - [`LoraLinear`] / [`LoraEmbedding`]: a frozen base plus a trainable [`LowRank`] update on the
//!   `x A B` path, with [`LoraConfig`] (rank, alpha, rsLoRA scaling, dropout, init).
//! - [`attach`] adapters to a [`LoraModel`] by target name, [`merge`] / [`unmerge`] them, and
//!   inspect the result with [`param_table`].
//! - [`peft`]: adapter-only save and load in Hugging Face PEFT's on-disk format.
//! - [`members`]: several trials stacked in one model, trained in one pass.
//! - [`fused`]: fused CPU kernels (linear, attention softmax, residual LayerNorm, GELU) with
//!   hand-written backward passes, used on Burn's flex backend.
//! - [`models`]: the toy width-n network, an MLP classifier and a BERT classifier.

mod adapt;
mod dropout;
mod error;
pub mod fused;
pub mod init;
mod lora;
mod malloc;
pub mod members;
pub mod models;
mod params;
pub mod peft;
#[cfg(test)]
mod test_util;
mod weights;

pub use adapt::{AttachConfig, LoraModel, Site, attach, merge, unmerge};
pub use dropout::{Dropout, DropoutConfig, with_dropout_seed, with_member_dropout};
pub use error::LoraError;
pub use lora::{
    LoraConfig, LoraEmbedding, LoraEmbeddingConfig, LoraInit, LoraLinear, LoraLinearConfig, LoraScaling, LowRank,
};
pub use malloc::keep_freed_buffers;
pub use params::{ParamInfo, format_param_table, param_counts, param_table};
