//! The architectures a sweep can name, and `Classifier`, the one model type trials handle.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::Tensor;
use loraplus_model::models::{BertClassifier, BertClassifierConfig, BertConfig, Mlp, MlpConfig, Pooling};
use loraplus_model::{LoraEmbedding, LoraLinear, LoraModel, Site, init};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::data::TaskKind;
use loraplus_data::BatchInput;

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
            _ => Ok(()),
        }
    }

    /// Whether this architecture can read `task`'s inputs.
    pub fn accepts(&self, task: &TaskKind) -> Result<(), String> {
        match (self, task) {
            (ModelKind::Mlp(_) | ModelKind::Toy(_), TaskKind::Teacher(_)) => Ok(()),
            (ModelKind::Bert(_), TaskKind::BagOfTokens(_)) => Ok(()),
            (ModelKind::Bert(_), _) => Err("a bert model reads token sequences".into()),
            _ => Err("an mlp or toy model reads vectors".into()),
        }
    }

    /// The adapter targets used when the model names none.
    pub fn default_targets(&self) -> Vec<String> {
        let targets: &[&str] = match self {
            ModelKind::Mlp(m) if m.hidden.len() == 1 => &["input"],
            ModelKind::Mlp(_) => &["input", "hidden"],
            ModelKind::Toy(_) => &["hidden"],
            ModelKind::Bert(_) => &["query", "value"],
        };
        targets.iter().map(|t| t.to_string()).collect()
    }

    /// A randomly initialised model sized for `task`'s inputs and classes.
    pub fn init(&self, task: &TaskKind, rng: &mut impl Rng, device: &burn::tensor::Device) -> Classifier {
        match (self, task) {
            (ModelKind::Mlp(m), TaskKind::Teacher(t)) => {
                Classifier::Mlp(MlpConfig::new(t.d_input, m.hidden.clone(), t.n_classes).init(rng, device))
            }
            (ModelKind::Toy(toy), TaskKind::Teacher(t)) => {
                Classifier::Mlp(MlpConfig::new(t.d_input, vec![toy.width, toy.width], t.n_classes).init(rng, device))
            }
            (ModelKind::Bert(b), TaskKind::BagOfTokens(t)) => {
                let bert = BertConfig::new(
                    t.vocab,
                    b.hidden_size,
                    b.num_hidden_layers,
                    b.num_attention_heads,
                    b.intermediate_size,
                )
                .with_max_position_embeddings(t.seq_len)
                .with_hidden_dropout_prob(b.dropout)
                .with_attention_probs_dropout_prob(b.dropout);
                let config = BertClassifierConfig::new(bert, t.n_classes).with_pooling(Pooling::Mean);
                Classifier::Bert(config.init(rng, device))
            }
            _ => panic!("model and task were checked to be compatible"),
        }
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
            (Classifier::Bert(b), BatchInput::Tokens { ids, mask }) => b.forward(ids.clone(), mask.clone(), None),
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
