//! A BERT encoder with a sequence-classification head, shaped like Hugging Face's
//! `BertForSequenceClassification` (transformers `models/bert/modeling_bert.py`).
//!
//! Field names follow the checkpoint's module names, so `bert.encoder.layer.3.attention.self.query`
//! is `bert.encoder.layer[3].attention.self_attention.query` here; the two spellings Rust cannot
//! use are `self` (here `self_attention`) and `LayerNorm` (here `layer_norm`). Linear weights are
//! held in Burn's `[d_in, d_out]` layout, the transpose of PyTorch's.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::{gelu_approximate, relu, tanh};
use burn::tensor::{Device, Int, Tensor};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{
    Dropout, DropoutConfig, LoraEmbedding, LoraEmbeddingConfig, LoraLinear, LoraLinearConfig, LoraModel, Site, fused,
    init, members,
};

/// The encoder's settings, with the field names of a Hugging Face BERT `config.json`.
#[derive(Config, Debug, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Feed-forward activation. Default: `gelu` (exact, erf-based).
    #[config(default = "HiddenAct::Gelu")]
    pub hidden_act: HiddenAct,
    /// Dropout after embeddings, attention output and feed-forward. Default: 0.1.
    #[config(default = 0.1)]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities. Default: 0.1.
    #[config(default = 0.1)]
    pub attention_probs_dropout_prob: f64,
    /// Longest sequence. Default: 512.
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Number of token types (segments). Default: 2.
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon. Default: 1e-12.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Standard deviation of the random init. Default: 0.02.
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

/// Feed-forward activations, spelled as in `config.json`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// `x * Phi(x)`.
    Gelu,
    /// The tanh approximation of GELU.
    GeluNew,
    /// `max(x, 0)`.
    Relu,
}

/// How the sequence is summarised for the classifier.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum Pooling {
    /// BERT's pooler: `tanh(dense(h[CLS]))`.
    Cls,
    /// The mean of the unmasked tokens' hidden states (sentence-transformers' pooling).
    Mean,
}

/// Configuration of a [`BertClassifier`].
#[derive(Config, Debug)]
pub struct BertClassifierConfig {
    /// The encoder.
    pub bert: BertConfig,
    /// Number of classes.
    pub n_classes: usize,
    /// Sequence summary. Default: mean pooling.
    #[config(default = "Pooling::Mean")]
    pub pooling: Pooling,
}

/// `BertForSequenceClassification`: encoder, pooling, dropout, linear classifier.
///
/// Targets: `word_embeddings`, `query`, `key`, `value`, `output` (attention output projection),
/// `ffn_in`, `ffn_out`. The head is `classifier`.
#[derive(Module, Debug)]
pub struct BertClassifier {
    /// The encoder (and pooler, with CLS pooling).
    pub bert: BertModel,
    /// Dropout before the classifier.
    pub dropout: Dropout,
    /// `hidden_size -> n_classes`.
    pub classifier: Linear,
    /// How the sequence is summarised.
    #[module(skip)]
    pub pooling: Pooling,
}

/// `BertModel`: embeddings, encoder and (optional) pooler.
#[derive(Module, Debug)]
pub struct BertModel {
    /// Token, position and segment embeddings.
    pub embeddings: BertEmbeddings,
    /// The transformer layers.
    pub encoder: BertEncoder,
    /// `tanh(dense(h[CLS]))`, present with CLS pooling.
    pub pooler: Option<BertPooler>,
}

/// Token + position + segment embeddings, then LayerNorm and dropout.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `[vocab_size, hidden_size]`.
    pub word_embeddings: LoraEmbedding,
    /// `[max_position_embeddings, hidden_size]`.
    pub position_embeddings: Embedding,
    /// `[type_vocab_size, hidden_size]`.
    pub token_type_embeddings: Embedding,
    /// LayerNorm over the sum.
    pub layer_norm: LayerNorm,
    /// Dropout after it.
    pub dropout: Dropout,
}

/// The stack of transformer layers.
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// `num_hidden_layers` layers, run in order.
    pub layer: Vec<BertLayer>,
}

/// One post-LayerNorm transformer layer.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Self-attention and its output projection.
    pub attention: BertAttention,
    /// Feed-forward input projection (`ffn_in`).
    pub intermediate: BertIntermediate,
    /// Feed-forward output projection (`ffn_out`), residual and LayerNorm.
    pub output: BertOutput,
}

/// Self-attention followed by its output block.
#[derive(Module, Debug)]
pub struct BertAttention {
    /// Checkpoint name: `attention.self`.
    pub self_attention: BertSelfAttention,
    /// Output projection, residual, LayerNorm.
    pub output: BertOutput,
}

/// Multi-head scaled dot-product attention.
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// `hidden -> hidden`.
    pub query: LoraLinear,
    /// `hidden -> hidden`.
    pub key: LoraLinear,
    /// `hidden -> hidden`.
    pub value: LoraLinear,
    /// Dropout on attention probabilities.
    pub dropout: Dropout,
    /// Number of heads.
    pub n_heads: usize,
}

/// `dense`, then GELU.
#[derive(Module, Debug)]
pub struct BertIntermediate {
    /// `hidden -> intermediate`.
    pub dense: LoraLinear,
    /// `hidden_act`.
    #[module(skip)]
    pub activation: HiddenAct,
}

/// `LayerNorm(dropout(dense(x)) + residual)`: both `attention.output` and `output` have this shape.
#[derive(Module, Debug)]
pub struct BertOutput {
    /// The projection.
    pub dense: LoraLinear,
    /// LayerNorm after the residual.
    pub layer_norm: LayerNorm,
    /// Dropout before the residual.
    pub dropout: Dropout,
    /// The LayerNorm's epsilon (Burn's `LayerNorm` keeps its own private).
    #[module(skip)]
    pub layer_norm_eps: f64,
}

/// `tanh(dense(h[:, 0]))`.
#[derive(Module, Debug)]
pub struct BertPooler {
    /// `hidden -> hidden`.
    pub dense: Linear,
}

impl BertConfig {
    /// The width of one attention head.
    ///
    /// # Panics
    /// If `num_attention_heads` does not divide `hidden_size`.
    pub fn head_dim(&self) -> usize {
        assert!(
            self.num_attention_heads > 0 && self.hidden_size.is_multiple_of(self.num_attention_heads),
            "hidden_size {} is not a multiple of num_attention_heads {}",
            self.hidden_size,
            self.num_attention_heads
        );
        self.hidden_size / self.num_attention_heads
    }

    /// A randomly initialised encoder (Hugging Face's BERT init: `N(0, initializer_range^2)`
    /// weights, zero biases, unit LayerNorms).
    pub fn init(&self, with_pooler: bool, rng: &mut impl Rng, device: &Device) -> BertModel {
        self.head_dim();
        let d = self.hidden_size;
        let std = self.initializer_range;
        let linear = |d_in, d_out, rng: &mut _| {
            LoraLinearConfig::new(d_in, d_out)
                .with_init_std(Some(std))
                .init(rng, device)
        };
        let table = |rows, rng: &mut _| Embedding {
            weight: Param::from_tensor(init::normal([rows, d], std, rng, device)),
        };
        let layer_norm = || LayerNormConfig::new(d).with_epsilon(self.layer_norm_eps).init(device);
        let hidden_dropout = || DropoutConfig::new(self.hidden_dropout_prob).init();
        let output = |d_in, rng: &mut _| BertOutput {
            dense: linear(d_in, d, rng),
            layer_norm: layer_norm(),
            dropout: hidden_dropout(),
            layer_norm_eps: self.layer_norm_eps,
        };

        let embeddings = BertEmbeddings {
            word_embeddings: LoraEmbeddingConfig::new(self.vocab_size, d)
                .with_init_std(std)
                .init(rng, device),
            position_embeddings: table(self.max_position_embeddings, rng),
            token_type_embeddings: table(self.type_vocab_size, rng),
            layer_norm: layer_norm(),
            dropout: hidden_dropout(),
        };
        let layer = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attention: BertSelfAttention {
                        query: linear(d, d, rng),
                        key: linear(d, d, rng),
                        value: linear(d, d, rng),
                        dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                        n_heads: self.num_attention_heads,
                    },
                    output: output(d, rng),
                },
                intermediate: BertIntermediate {
                    dense: linear(d, self.intermediate_size, rng),
                    activation: self.hidden_act,
                },
                output: output(self.intermediate_size, rng),
            })
            .collect();
        let pooler = with_pooler.then(|| BertPooler {
            dense: linear(d, d, rng).base,
        });
        BertModel {
            embeddings,
            encoder: BertEncoder { layer },
            pooler,
        }
    }
}

impl BertClassifierConfig {
    /// A randomly initialised classifier (pooler included with CLS pooling).
    pub fn init(&self, rng: &mut impl Rng, device: &Device) -> BertClassifier {
        let bert = self.bert.init(self.pooling == Pooling::Cls, rng, device);
        self.with_encoder(bert, rng, device)
    }

    /// A classifier on `bert`, with a freshly initialised head.
    pub fn with_encoder(&self, bert: BertModel, rng: &mut impl Rng, device: &Device) -> BertClassifier {
        let classifier = LoraLinearConfig::new(self.bert.hidden_size, self.n_classes)
            .with_init_std(Some(self.bert.initializer_range))
            .init(rng, device)
            .base;
        BertClassifier {
            bert,
            dropout: DropoutConfig::new(self.bert.hidden_dropout_prob).init(),
            classifier,
            pooling: self.pooling,
        }
    }
}

impl BertClassifier {
    /// Class logits.
    ///
    /// # Shapes
    /// - `input_ids`, `attention_mask` (1 = token, 0 = padding), `token_type_ids`: `[batch, seq]`
    /// - output: `[batch, n_classes]`
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<2> {
        let hidden = self.bert.forward(input_ids, attention_mask.clone(), token_type_ids);
        let pooled = match (self.pooling, &self.bert.pooler) {
            (Pooling::Cls, Some(pooler)) => pooler.forward(hidden),
            (Pooling::Cls, None) => panic!("CLS pooling needs a model built with a pooler"),
            (Pooling::Mean, _) => mean_pool(hidden, attention_mask),
        };
        let classifier = &self.classifier;
        members::linear(
            self.dropout.forward(pooled),
            classifier.weight.val(),
            classifier.bias.as_ref().map(|b| b.val()),
        )
    }
}

/// The mean of the hidden states of unmasked tokens.
///
/// # Shapes
/// `[batch, seq, d]`, `[batch, seq]` -> `[batch, d]`
pub fn mean_pool(hidden: Tensor<3>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
    let mask = attention_mask.float().unsqueeze_dim::<3>(2);
    let summed = (hidden * mask.clone()).sum_dim(1).squeeze_dim::<2>(1);
    let counts = mask.sum_dim(1).squeeze_dim::<2>(1).clamp_min(1e-9);
    summed / counts
}

impl BertModel {
    /// The last layer's hidden states.
    ///
    /// # Shapes
    /// `[batch, seq]` ids and mask -> `[batch, seq, hidden_size]`
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        // Padding keys get a large negative score, so softmax gives them zero weight.
        let key_bias = (attention_mask.float().neg() + 1.0).mul_scalar(-1e9);
        let mut hidden = self.embeddings.forward(input_ids, token_type_ids);
        for layer in &self.encoder.layer {
            hidden = layer.forward(hidden, key_bias.clone());
        }
        hidden
    }
}

impl BertEmbeddings {
    fn forward(&self, input_ids: Tensor<2, Int>, token_type_ids: Option<Tensor<2, Int>>) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<1, Int>::arange(0..seq as i64, &device)
            .unsqueeze_dim::<2>(0)
            .repeat_dim(0, batch);
        let token_types = token_type_ids.unwrap_or_else(|| Tensor::zeros([batch, seq], &device));
        let sum = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(token_types);
        self.dropout.forward(self.layer_norm.forward(sum))
    }
}

impl BertLayer {
    fn forward(&self, x: Tensor<3>, key_bias: Tensor<2>) -> Tensor<3> {
        let attended = self.attention.self_attention.forward(x.clone(), key_bias);
        let x = self.attention.output.forward(attended, x);
        let inner = self.intermediate.forward(x.clone());
        self.output.forward(inner, x)
    }
}

impl BertSelfAttention {
    /// # Shapes
    /// `[batch, seq, d]`, key bias `[batch, seq]` -> `[batch, seq, d]`
    fn forward(&self, x: Tensor<3>, key_bias: Tensor<2>) -> Tensor<3> {
        let [batch, seq, d_model] = x.dims();
        let d_head = d_model / self.n_heads;
        let split_heads = |t: Tensor<3>| t.reshape([batch, seq, self.n_heads, d_head]).swap_dims(1, 2);
        let q = split_heads(self.query.forward(x.clone()));
        let k = split_heads(self.key.forward(x.clone()));
        let v = split_heads(self.value.forward(x));
        let scores = q.matmul(k.transpose());
        let dropout = self.dropout.mask(&scores);
        let probs = fused::attention_softmax(scores, key_bias, 1.0 / (d_head as f64).sqrt(), dropout);
        probs.matmul(v).swap_dims(1, 2).reshape([batch, seq, d_model])
    }
}

impl BertIntermediate {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.dense.forward(x);
        match self.activation {
            HiddenAct::Gelu => fused::gelu(h),
            HiddenAct::GeluNew => gelu_approximate(h),
            HiddenAct::Relu => relu(h),
        }
    }
}

impl BertOutput {
    fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        let projected = self.dense.forward(x);
        let dropout = self.dropout.mask(&projected);
        fused::residual_layer_norm(projected, residual, dropout, &self.layer_norm, self.layer_norm_eps)
    }
}

impl BertPooler {
    fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [batch, _, d] = hidden.dims();
        let cls = hidden.slice([0..batch, 0..1, 0..d]).reshape([batch, d]);
        tanh(self.dense.forward(cls))
    }
}

impl LoraModel for BertClassifier {
    fn linear_sites(&mut self) -> Vec<Site<'_, LoraLinear>> {
        let mut sites = Vec::new();
        for (i, layer) in self.bert.encoder.layer.iter_mut().enumerate() {
            let prefix = format!("bert.encoder.layer.{i}");
            let attention = &mut layer.attention.self_attention;
            sites.extend([
                Site {
                    target: "query",
                    path: format!("{prefix}.attention.self.query"),
                    layer: &mut attention.query,
                },
                Site {
                    target: "key",
                    path: format!("{prefix}.attention.self.key"),
                    layer: &mut attention.key,
                },
                Site {
                    target: "value",
                    path: format!("{prefix}.attention.self.value"),
                    layer: &mut attention.value,
                },
                Site {
                    target: "output",
                    path: format!("{prefix}.attention.output.dense"),
                    layer: &mut layer.attention.output.dense,
                },
                Site {
                    target: "ffn_in",
                    path: format!("{prefix}.intermediate.dense"),
                    layer: &mut layer.intermediate.dense,
                },
                Site {
                    target: "ffn_out",
                    path: format!("{prefix}.output.dense"),
                    layer: &mut layer.output.dense,
                },
            ]);
        }
        sites
    }

    fn embedding_sites(&mut self) -> Vec<Site<'_, LoraEmbedding>> {
        vec![Site {
            target: "word_embeddings",
            path: "bert.embeddings.word_embeddings".into(),
            layer: &mut self.bert.embeddings.word_embeddings,
        }]
    }

    fn head_sites(&mut self) -> Vec<Site<'_, Linear>> {
        vec![Site {
            target: "classifier",
            path: "classifier".into(),
            layer: &mut self.classifier,
        }]
    }
}
