//! LoRA adapters: the shared settings, the low-rank pair, and the layers that carry it.

mod config;
mod embedding;
mod linear;
mod low_rank;

pub use config::{LoraConfig, LoraInit, LoraScaling};
pub use embedding::{LoraEmbedding, LoraEmbeddingConfig};
pub use linear::{LoraLinear, LoraLinearConfig};
pub use low_rank::LowRank;
