//! `[[model]]`: the architectures a sweep can name, their adapter targets and how their bases are
//! pretrained. Everything here is read off the config; building a model is the run stage's
//! (`crate::run::zoo`).

use std::path::PathBuf;

use loraplus_data::TOKENIZER_FILE;
use loraplus_model::models::Pooling;
use serde::{Deserialize, Serialize};

use super::error::Invalid;
use super::task::{Features, InputShape, TaskConfig, TaskKind};

/// A model: a name, its architecture, its targets and how its base is pretrained.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Name used in reports and `pairs`.
    pub name: String,
    /// The architecture.
    #[serde(flatten)]
    pub kind: ModelKind,
    /// Layers that get adapters. Default: the architecture's usual targets.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// How the base is pretrained before any trial; a checkpoint comes pretrained and has none.
    #[serde(default)]
    pub pretrain: Option<PretrainConfig>,
}

/// Pretraining of a model's base on a task that is not a downstream task.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// The pretraining task's name.
    pub task: String,
    /// Updates. Default: 1000.
    #[serde(default = "default_pretrain_steps")]
    pub steps: usize,
    /// AdamW rate. Default: 1e-3.
    #[serde(default = "default_pretrain_lr")]
    pub lr: f64,
    /// Examples per update. Default: 64.
    #[serde(default = "default_pretrain_batch")]
    pub batch_size: usize,
    /// Init and data-order seed. Default: 0.
    #[serde(default)]
    pub seed: u64,
}

fn default_pretrain_steps() -> usize {
    1000
}
fn default_pretrain_lr() -> f64 {
    1e-3
}
fn default_pretrain_batch() -> usize {
    64
}

/// An architecture, sized by its config; input sizes come from the pretraining task.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelKind {
    /// A ReLU MLP (`loraplus_model::models::Mlp`). Targets: `input` (the first layer) and
    /// `hidden` (the later ones); both by default.
    Mlp(MlpSpec),
    /// The toy width-n network: an MLP with hidden widths `[n, n]` whose `n x n` layer is adapted.
    Toy(ToySpec),
    /// A BERT encoder classifier with mean pooling. Targets: `query`, `key`, `value`, `output`,
    /// `ffn_in`, `ffn_out`, `word_embeddings`.
    Bert(BertSpec),
    /// A pretrained checkpoint of the BERT family (a Hugging Face folder with `config.json`,
    /// `model.safetensors` and `tokenizer.json`; `model_type` bert, roberta, xlm-roberta,
    /// camembert or mpnet) with a new classification head. Same targets, whatever the family
    /// calls the layers (MPNet's `q`, `k`, `v`, `o` are `query`, `key`, `value`, `output`).
    BertCheckpoint(CheckpointSpec),
}

/// Hidden widths of an MLP.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlpSpec {
    /// Widths, first to last.
    pub hidden: Vec<usize>,
}

/// Width of the toy network.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToySpec {
    /// The width `n`.
    pub width: usize,
}

/// Size of a BERT encoder (Hugging Face `config.json` names).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BertSpec {
    /// Model width.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Dropout in the encoder (masks follow the trial's seed). Default: 0.
    #[serde(default)]
    pub dropout: f64,
}

/// Where a pretrained checkpoint is and how its classifier reads it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// The checkpoint folder (relative to the working directory).
    pub path: PathBuf,
    /// `mean` (sentence-transformers), `cls` (BERT's pooler) or `cls_head` (RoBERTa's and
    /// MPNet's classification head). Default: `mean`.
    #[serde(default = "default_pooling")]
    pub pooling: PoolingKind,
    /// Dropout in the encoder and before the head. Default: the checkpoint's `config.json`.
    #[serde(default)]
    pub dropout: Option<f64>,
}

/// How a sequence is summarised for the head.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum PoolingKind {
    /// The mean of the tokens' hidden states.
    Mean,
    /// BERT's pooler on the `[CLS]` token.
    Cls,
    /// RoBERTa's and MPNet's classification head on the first token (`classifier.dense`, tanh,
    /// `classifier.out_proj`), trained with the adapters.
    ClsHead,
}

fn default_pooling() -> PoolingKind {
    PoolingKind::Mean
}

impl From<PoolingKind> for Pooling {
    fn from(kind: PoolingKind) -> Self {
        match kind {
            PoolingKind::Mean => Pooling::Mean,
            PoolingKind::Cls => Pooling::Cls,
            PoolingKind::ClsHead => Pooling::ClsHead,
        }
    }
}

/// The most parameters a model sized by the config (`mlp`, `toy`, `bert`) may have: 10^9, 4 GB of
/// f32 weights before adapters and optimizer state. The training commands build a throwaway copy
/// of each model to check its adapters, so a mistyped width would otherwise exhaust memory before
/// any error was shown.
pub const MAX_PARAMETERS: usize = 1_000_000_000;

/// The most encoder layers of a `bert` model: thousands of layers of width 1 stay under
/// [`MAX_PARAMETERS`] but are millions of tensors.
pub const MAX_LAYERS: usize = 1000;

impl ModelKind {
    /// Checks sizes; keys are the model's own (`hidden_size`).
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            ModelKind::Mlp(m) if m.hidden.is_empty() || m.hidden.contains(&0) => {
                Err(Invalid::new("hidden", "give at least one hidden width, each >= 1"))
            }
            ModelKind::Toy(t) if t.width == 0 => Err(Invalid::new("width", "must be at least 1")),
            ModelKind::Bert(b) => {
                let sizes = [
                    b.hidden_size,
                    b.num_hidden_layers,
                    b.num_attention_heads,
                    b.intermediate_size,
                ];
                if sizes.contains(&0) {
                    return Err(Invalid::new("hidden_size", "every size must be at least 1"));
                }
                if b.num_hidden_layers > MAX_LAYERS {
                    return Err(Invalid::new(
                        "num_hidden_layers",
                        format!("{} is too many; at most {MAX_LAYERS}", b.num_hidden_layers),
                    ));
                }
                if !b.hidden_size.is_multiple_of(b.num_attention_heads) {
                    return Err(Invalid::new(
                        "num_attention_heads",
                        format!(
                            "{} does not divide hidden_size {}",
                            b.num_attention_heads, b.hidden_size
                        ),
                    ));
                }
                if !(0.0..1.0).contains(&b.dropout) {
                    return Err(Invalid::new("dropout", format!("{} is not in [0, 1)", b.dropout)));
                }
                Ok(())
            }
            ModelKind::BertCheckpoint(c) => match c.dropout {
                Some(p) if !(0.0..1.0).contains(&p) => Err(Invalid::new("dropout", format!("{p} is not in [0, 1)"))),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Whether this architecture is a pretrained checkpoint (which needs no `pretrain`).
    pub fn is_checkpoint(&self) -> bool {
        matches!(self, ModelKind::BertCheckpoint(_))
    }

    /// The tokenizer a text task is encoded with for this model.
    pub fn tokenizer(&self) -> Option<PathBuf> {
        match self {
            ModelKind::BertCheckpoint(c) => Some(c.path.join(TOKENIZER_FILE)),
            _ => None,
        }
    }

    /// Whether this architecture can read `task`'s inputs.
    pub fn accepts(&self, task: &TaskKind) -> Result<(), String> {
        match (self, task) {
            (ModelKind::Mlp(_) | ModelKind::Toy(_), TaskKind::Teacher(_) | TaskKind::Images(_)) => Ok(()),
            (ModelKind::Bert(_), TaskKind::BagOfTokens(_)) => Ok(()),
            (ModelKind::BertCheckpoint(_), TaskKind::Text(_)) => Ok(()),
            (ModelKind::Bert(_), _) => Err("a bert model reads bag_of_tokens sequences".into()),
            (ModelKind::BertCheckpoint(_), _) => Err("a bert_checkpoint model reads text".into()),
            _ => Err("an mlp or toy model reads vectors (teacher or images tasks)".into()),
        }
    }

    /// The adapter targets used when the model names none.
    pub fn default_targets(&self) -> Vec<String> {
        let targets: &[&str] = match self {
            ModelKind::Mlp(m) if m.hidden.len() == 1 => &["input"],
            ModelKind::Mlp(_) => &["input", "hidden"],
            ModelKind::Toy(_) => &["hidden"],
            ModelKind::Bert(_) | ModelKind::BertCheckpoint(_) => &["query", "value"],
        };
        targets.iter().map(|t| t.to_string()).collect()
    }

    /// The config key that sizes this architecture, where the config does.
    fn size_key(&self) -> &'static str {
        match self {
            ModelKind::Toy(_) => "width",
            ModelKind::Bert(_) => "hidden_size",
            _ => "hidden",
        }
    }

    /// Parameters of the model built for inputs of `shape`, head included, adapters not; an
    /// overflow counts as `usize::MAX`. None for a checkpoint, which its files size, and for
    /// inputs the architecture does not read.
    pub fn parameters(&self, shape: &InputShape) -> Option<usize> {
        // Checked: every size comes straight from the config.
        let linear = |d_in: usize, d_out: usize| d_in.checked_mul(d_out)?.checked_add(d_out);
        let mlp = |widths: &[usize]| {
            widths
                .windows(2)
                .try_fold(0_usize, |n, w| n.checked_add(linear(w[0], w[1])?))
        };
        let bert = |b: &BertSpec, vocab: usize, seq_len: usize| {
            let (d, ffn) = (b.hidden_size, b.intermediate_size);
            // Word, position and token-type (2) embeddings, then a layer norm (2 d).
            let embeddings = vocab.checked_add(seq_len)?.checked_add(4)?.checked_mul(d)?;
            // Query, key, value and attention output; the feed-forward pair; two layer norms.
            let layer = linear(d, d)?
                .checked_mul(4)?
                .checked_add(linear(d, ffn)?)?
                .checked_add(linear(ffn, d)?)?
                .checked_add(d.checked_mul(4)?)?;
            layer
                .checked_mul(b.num_hidden_layers)?
                .checked_add(embeddings)?
                .checked_add(linear(d, shape.n_classes)?)
        };
        let count = match (self, &shape.features) {
            (ModelKind::Mlp(m), Features::Vectors(dim)) => mlp(&[&[*dim][..], &m.hidden, &[shape.n_classes]].concat()),
            (ModelKind::Toy(t), Features::Vectors(dim)) => mlp(&[*dim, t.width, t.width, shape.n_classes]),
            (ModelKind::Bert(b), Features::Tokens { vocab, seq_len }) => bert(b, *vocab, *seq_len),
            _ => return None,
        };
        Some(count.unwrap_or(usize::MAX))
    }
}

impl ModelConfig {
    /// The adapter targets: the model's own, or its architecture's usual ones.
    pub fn targets(&self) -> Vec<String> {
        self.targets.clone().unwrap_or_else(|| self.kind.default_targets())
    }

    /// Checks that the model built for the inputs of `task` stays within [`MAX_PARAMETERS`].
    pub fn check_size(&self, task: &TaskConfig) -> Result<(), Invalid> {
        let Some(parameters) = task.kind.shape().and_then(|shape| self.kind.parameters(&shape)) else {
            return Ok(());
        };
        if parameters <= MAX_PARAMETERS {
            return Ok(());
        }
        Err(Invalid::new(
            self.kind.size_key(),
            format!(
                "model `{}` has {parameters} parameters on the inputs of task `{}`; at most \
                 {MAX_PARAMETERS} are allowed: shrink the model or the task's inputs",
                self.name, task.name
            ),
        ))
    }
}
