//! The models the experiments fine-tune, each a `Config` + `Module` pair sized by its config.

mod bert;
mod mlp;

pub use bert::{
    BertAttention, BertClassifier, BertClassifierConfig, BertConfig, BertEmbeddings, BertEncoder, BertIntermediate,
    BertLayer, BertModel, BertOutput, BertPooler, BertSelfAttention, HiddenAct, Pooling, mean_pool,
};
pub use mlp::{Mlp, MlpConfig, ToyWidthConfig};
