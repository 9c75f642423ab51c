//! The architectures a sweep can name, and `Classifier`, the one model type trials handle.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use loraplus_data::{BatchInput, Inputs, TOKENIZER_FILE, TaskData};
use loraplus_model::models::{
    BertClassifier, BertClassifierConfig, BertConfig, CONFIG_FILE, Mlp, MlpConfig, Pooling, read_bert_config,
};
use loraplus_model::{LoraEmbedding, LoraLinear, LoraModel, Site, init};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::data::{Features, InputShape, TaskKind};

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
    /// A pretrained BERT-architecture checkpoint (a Hugging Face folder with `config.json`,
    /// `model.safetensors` and `tokenizer.json`) with a new classification head. Same targets.
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
    /// `mean` (sentence-transformers) or `cls` (BERT's pooler). Default: `mean`.
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
}

fn default_pooling() -> PoolingKind {
    PoolingKind::Mean
}

/// The most parameters a model sized by the config (`mlp`, `toy`, `bert`) may have: 10^9, 4 GB of
/// f32 weights before adapters and optimizer state. Validation builds a throwaway copy of each
/// model, so a mistyped width would otherwise exhaust memory before any error was shown.
pub const MAX_PARAMETERS: usize = 1_000_000_000;

/// The most encoder layers of a `bert` model: thousands of layers of width 1 stay under
/// [`MAX_PARAMETERS`] but are millions of tensors.
pub const MAX_LAYERS: usize = 1000;

/// The model a trial trains: any of the architectures above.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // A handful per sweep; the variants' tensors live on the heap.
pub enum Classifier {
    /// An MLP or the toy network.
    Mlp(Mlp),
    /// A BERT classifier.
    Bert(BertClassifier),
}

impl ModelKind {
    /// Checks sizes; on failure returns the key and what is allowed.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            ModelKind::Mlp(m) if m.hidden.is_empty() || m.hidden.contains(&0) => {
                Err(("hidden".into(), "give at least one hidden width, each >= 1".into()))
            }
            ModelKind::Toy(t) if t.width == 0 => Err(("width".into(), "must be at least 1".into())),
            ModelKind::Bert(b) => {
                let sizes = [
                    b.hidden_size,
                    b.num_hidden_layers,
                    b.num_attention_heads,
                    b.intermediate_size,
                ];
                if sizes.contains(&0) {
                    return Err(("hidden_size".into(), "every size must be at least 1".into()));
                }
                if b.num_hidden_layers > MAX_LAYERS {
                    return Err((
                        "num_hidden_layers".into(),
                        format!("{} is too many; at most {MAX_LAYERS}", b.num_hidden_layers),
                    ));
                }
                if !b.hidden_size.is_multiple_of(b.num_attention_heads) {
                    return Err((
                        "num_attention_heads".into(),
                        format!(
                            "{} does not divide hidden_size {}",
                            b.num_attention_heads, b.hidden_size
                        ),
                    ));
                }
                if !(0.0..1.0).contains(&b.dropout) {
                    return Err(("dropout".into(), format!("{} is not in [0, 1)", b.dropout)));
                }
                Ok(())
            }
            ModelKind::BertCheckpoint(c) => match c.dropout {
                Some(p) if !(0.0..1.0).contains(&p) => Err(("dropout".into(), format!("{p} is not in [0, 1)"))),
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

    /// Checks that a checkpoint can read `data` as its tokenizer encoded it: every token id in
    /// its vocabulary, every segment id in its segment table, every sequence within its
    /// position table. (Out-of-range ids would otherwise index past an embedding table.)
    pub fn check_data(&self, data: &TaskData) -> Result<()> {
        let ModelKind::BertCheckpoint(c) = self else {
            return Ok(());
        };
        let bert = read_bert_config(&c.path)?;
        let config = c.path.join(CONFIG_FILE);
        let tokenizer = c.path.join(TOKENIZER_FILE);
        for split in [&data.train, &data.val, &data.test] {
            let Inputs::Tokens {
                ids, type_ids, seq_len, ..
            } = &split.inputs
            else {
                continue;
            };
            let max = |values: &[i64]| values.iter().copied().max().unwrap_or(0) as usize;
            anyhow::ensure!(
                max(ids) < bert.vocab_size,
                "{} gives token id {}, but {} has vocab_size = {}: the tokenizer does not belong to this model",
                tokenizer.display(),
                max(ids),
                config.display(),
                bert.vocab_size
            );
            anyhow::ensure!(
                max(type_ids) < bert.type_vocab_size,
                "the task has text pairs (segment id {}), but {} has type_vocab_size = {}",
                max(type_ids),
                config.display(),
                bert.type_vocab_size
            );
            anyhow::ensure!(
                *seq_len <= bert.max_position_embeddings,
                "sequences of {seq_len} tokens, but {} has max_position_embeddings = {}: lower the task's max_seq_len",
                config.display(),
                bert.max_position_embeddings
            );
        }
        Ok(())
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

    /// Parameters of the model [`init`](Self::init) builds for inputs of `shape`, head included,
    /// adapters not; an overflow counts as `usize::MAX`. None for a checkpoint, which its files
    /// size, and for inputs the architecture does not read.
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

    /// The model for inputs of `shape`: randomly initialised, or for a checkpoint its pretrained
    /// encoder (with `load_weights`; without, a random one of the same shape, enough to check
    /// that adapters fit). The head is random.
    pub fn init(
        &self,
        shape: &InputShape,
        load_weights: bool,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Classifier> {
        let n_classes = shape.n_classes;
        Ok(match (self, &shape.features) {
            (ModelKind::Mlp(m), Features::Vectors(dim)) => {
                Classifier::Mlp(MlpConfig::new(*dim, m.hidden.clone(), n_classes).init(rng, device))
            }
            (ModelKind::Toy(toy), Features::Vectors(dim)) => {
                Classifier::Mlp(MlpConfig::new(*dim, vec![toy.width, toy.width], n_classes).init(rng, device))
            }
            (ModelKind::Bert(b), Features::Tokens { vocab, seq_len }) => {
                let bert = BertConfig::new(
                    *vocab,
                    b.hidden_size,
                    b.num_hidden_layers,
                    b.num_attention_heads,
                    b.intermediate_size,
                )
                .with_max_position_embeddings(*seq_len)
                .with_hidden_dropout_prob(b.dropout)
                .with_attention_probs_dropout_prob(b.dropout);
                let config = BertClassifierConfig::new(bert, n_classes).with_pooling(Pooling::Mean);
                Classifier::Bert(config.init(rng, device))
            }
            (ModelKind::BertCheckpoint(c), Features::Text) => {
                let config = c.classifier_config(n_classes)?;
                Classifier::Bert(if load_weights {
                    config
                        .init_pretrained(&c.path, rng, device)
                        .with_context(|| format!("cannot load the checkpoint {}", c.path.display()))?
                } else {
                    config.init(rng, device)
                })
            }
            _ => panic!("model and task were checked to be compatible"),
        })
    }
}

impl CheckpointSpec {
    fn classifier_config(&self, n_classes: usize) -> Result<BertClassifierConfig> {
        let mut bert = read_bert_config(&self.path)?;
        if let Some(p) = self.dropout {
            bert = bert.with_hidden_dropout_prob(p).with_attention_probs_dropout_prob(p);
        }
        let pooling = match self.pooling {
            PoolingKind::Mean => Pooling::Mean,
            PoolingKind::Cls => Pooling::Cls,
        };
        Ok(BertClassifierConfig::new(bert, n_classes).with_pooling(pooling))
    }
}

impl Classifier {
    /// Class logits.
    ///
    /// # Shapes
    /// `[batch, ...]` inputs -> `[batch, n_classes]`
    pub fn forward(&self, input: &BatchInput) -> Tensor<2> {
        match (self, input) {
            (Classifier::Mlp(m), BatchInput::Vectors(x)) => m.forward(x.clone()),
            (Classifier::Bert(b), BatchInput::Tokens { ids, mask, type_ids }) => {
                b.forward(ids.clone(), mask.clone(), Some(type_ids.clone()))
            }
            _ => panic!("model and batch were checked to be compatible"),
        }
    }

    /// The same model with a fresh, trainable head for `n_classes` classes (PyTorch
    /// `nn.Linear` init), as when a pretrained encoder meets a new task.
    pub fn with_new_head(mut self, n_classes: usize, rng: &mut impl Rng) -> Self {
        let head = match &mut self {
            Classifier::Mlp(m) => &mut m.head,
            Classifier::Bert(b) => &mut b.classifier,
        };
        let [d_in, _] = head.weight.dims();
        let device = head.weight.device();
        *head = Linear {
            weight: Param::from_tensor(init::kaiming_uniform_a_sqrt5([d_in, n_classes], d_in, rng, &device)),
            bias: Some(Param::from_tensor(init::kaiming_uniform_a_sqrt5(
                [n_classes],
                d_in,
                rng,
                &device,
            ))),
        };
        self
    }
}

impl LoraModel for Classifier {
    fn linear_sites(&mut self) -> Vec<Site<'_, LoraLinear>> {
        match self {
            Classifier::Mlp(m) => m.linear_sites(),
            Classifier::Bert(b) => b.linear_sites(),
        }
    }

    fn embedding_sites(&mut self) -> Vec<Site<'_, LoraEmbedding>> {
        match self {
            Classifier::Mlp(m) => m.embedding_sites(),
            Classifier::Bert(b) => b.embedding_sites(),
        }
    }

    fn head_sites(&mut self) -> Vec<Site<'_, Linear>> {
        match self {
            Classifier::Mlp(m) => m.head_sites(),
            Classifier::Bert(b) => b.head_sites(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(kind: &ModelKind, features: Features) -> (Option<usize>, usize) {
        let shape = InputShape { features, n_classes: 3 };
        let model = kind.init(&shape, false, &mut init::rng(0), &Device::flex()).unwrap();
        (kind.parameters(&shape), model.num_params())
    }

    #[test]
    fn parameter_counts_match_the_built_models() {
        let mlp = ModelKind::Mlp(MlpSpec { hidden: vec![7, 5] });
        let (counted, built) = count(&mlp, Features::Vectors(4));
        assert_eq!(counted, Some(built));
        let toy = ModelKind::Toy(ToySpec { width: 6 });
        let (counted, built) = count(&toy, Features::Vectors(4));
        assert_eq!(counted, Some(built));
        let bert = ModelKind::Bert(BertSpec {
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 12,
            dropout: 0.0,
        });
        let (counted, built) = count(&bert, Features::Tokens { vocab: 11, seq_len: 5 });
        assert_eq!(counted, Some(built));
    }

    #[test]
    fn a_parameter_count_that_overflows_saturates() {
        let mlp = ModelKind::Mlp(MlpSpec {
            hidden: vec![usize::MAX / 2],
        });
        let shape = InputShape {
            features: Features::Vectors(4),
            n_classes: 3,
        };
        assert_eq!(mlp.parameters(&shape), Some(usize::MAX));
    }
}
