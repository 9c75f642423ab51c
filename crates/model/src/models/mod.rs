//! The models the experiments fine-tune, each a `Config` + `Module` pair sized by its config.

mod bert;
mod bert_hf;
mod mlp;

pub use bert::{
    BertAttention, BertClassifier, BertClassifierConfig, BertConfig, BertEmbeddings, BertEncoder, BertIntermediate,
    BertLayer, BertModel, BertOutput, BertPooler, BertSelfAttention, HiddenAct, LayerNames, ModelType, Pooling,
    RELATIVE_MAX_DISTANCE, mean_pool, relative_position_buckets,
};
pub use bert_hf::{CONFIG_FILE, WEIGHTS_FILE, load_bert, read_bert_config, save_pretrained};
pub use mlp::{Mlp, MlpConfig, ToyWidthConfig};
