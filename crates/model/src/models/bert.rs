//! A BERT-family encoder with a sequence-classification head, shaped like Hugging Face's
//! `BertForSequenceClassification` (transformers `models/bert/modeling_bert.py`), and the two
//! relatives that share its layers:
//!
//! - RoBERTa (`models/roberta/modeling_roberta.py`; XLM-R and CamemBERT too): position ids count
//!   from `pad_token_id + 1`, one token type;
//! - MPNet (`models/mpnet/modeling_mpnet.py`): RoBERTa's position ids, no token types, and a learned
//!   relative position bias, one per head and distance bucket, shared by every layer and added to
//!   the attention scores.
//!
//! Field names follow BERT's module names, so `bert.encoder.layer.3.attention.self.query` is
//! `bert.encoder.layer[3].attention.self_attention.query` here; the two spellings Rust cannot use
//! are `self` (here `self_attention`) and `LayerNorm` (here `layer_norm`). Each family's own module
//! names (MPNet's `attention.attn.q`, ...) are [`ModelType::layer_names`]'. Linear weights are held
//! in Burn's `[d_in, d_out]` layout, the transpose of PyTorch's.

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
    /// The checkpoint family: its module names, position ids and extras. Default: `bert`.
    #[config(default = "ModelType::Bert")]
    pub model_type: ModelType,
    /// The padding token's id; RoBERTa-style position ids start after it. Default: 0.
    #[config(default = 0)]
    pub pad_token_id: usize,
    /// Distance buckets of MPNet's relative position bias; 0 for none. Default: 0.
    #[config(default = 0)]
    pub relative_attention_num_buckets: usize,
}

/// A checkpoint family of BERT-shaped encoders, as `config.json`'s `model_type` names it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModelType {
    /// BERT and its sentence-transformers descendants (MiniLM).
    Bert,
    /// RoBERTa, XLM-RoBERTa and CamemBERT.
    Roberta,
    /// MPNet.
    Mpnet,
}

/// One layer's module names in a family's checkpoints, under `encoder.layer.<i>.`.
#[derive(Debug, Clone, Copy)]
pub struct LayerNames {
    /// Attention's query projection.
    pub query: &'static str,
    /// Its key projection.
    pub key: &'static str,
    /// Its value projection.
    pub value: &'static str,
    /// Its output projection.
    pub output: &'static str,
    /// The LayerNorm after attention.
    pub attention_norm: &'static str,
    /// The feed-forward input projection.
    pub intermediate: &'static str,
    /// The feed-forward output projection.
    pub ffn_out: &'static str,
    /// The LayerNorm after the feed-forward block.
    pub output_norm: &'static str,
}

/// The largest distance MPNet's relative position buckets tell apart (transformers' default).
pub const RELATIVE_MAX_DISTANCE: usize = 128;

impl ModelType {
    /// The encoder's prefix in the family's `*ForSequenceClassification` checkpoints.
    pub fn prefix(self) -> &'static str {
        match self {
            ModelType::Bert => "bert",
            ModelType::Roberta => "roberta",
            ModelType::Mpnet => "mpnet",
        }
    }

    /// The family's classification model class, for a checkpoint's `architectures`.
    pub fn classifier_class(self) -> &'static str {
        match self {
            ModelType::Bert => "BertForSequenceClassification",
            ModelType::Roberta => "RobertaForSequenceClassification",
            ModelType::Mpnet => "MPNetForSequenceClassification",
        }
    }

    /// The module names of one layer.
    pub fn layer_names(self) -> LayerNames {
        let bert = LayerNames {
            query: "attention.self.query",
            key: "attention.self.key",
            value: "attention.self.value",
            output: "attention.output.dense",
            attention_norm: "attention.output.LayerNorm",
            intermediate: "intermediate.dense",
            ffn_out: "output.dense",
            output_norm: "output.LayerNorm",
        };
        match self {
            ModelType::Bert | ModelType::Roberta => bert,
            ModelType::Mpnet => LayerNames {
                query: "attention.attn.q",
                key: "attention.attn.k",
                value: "attention.attn.v",
                output: "attention.attn.o",
                attention_norm: "attention.LayerNorm",
                ..bert
            },
        }
    }

    /// Whether position ids count from `pad_token_id + 1` (fairseq's), not from 0.
    pub fn offset_positions(self) -> bool {
        self != ModelType::Bert
    }
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
    /// BERT's pooler: `tanh(dense(h[CLS]))`, the pooler the checkpoint trained.
    Cls,
    /// The mean of the unmasked tokens' hidden states (sentence-transformers' pooling).
    Mean,
    /// RoBERTa's and MPNet's classification head on the first token: `out_proj(dropout(tanh(
    /// dense(dropout(h[<s>])))))`, `dense` new and trained with `out_proj` (`classifier.dense`,
    /// `classifier.out_proj`); the checkpoint's pooler is not used.
    ClsHead,
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
    /// `tanh(dense(h[CLS]))`, present with CLS pooling (and, as the head's `dense`, with
    /// [`Pooling::ClsHead`]).
    pub pooler: Option<BertPooler>,
    /// The checkpoint family, whose module names the model's sites carry.
    #[module(skip)]
    pub model_type: ModelType,
}

/// Token + position + segment embeddings, then LayerNorm and dropout.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `[vocab_size, hidden_size]`.
    pub word_embeddings: LoraEmbedding,
    /// `[max_position_embeddings, hidden_size]`.
    pub position_embeddings: Embedding,
    /// `[type_vocab_size, hidden_size]`; none when there are no token types (MPNet).
    pub token_type_embeddings: Option<Embedding>,
    /// LayerNorm over the sum.
    pub layer_norm: LayerNorm,
    /// Dropout after it.
    pub dropout: Dropout,
    /// With RoBERTa-style positions, the padding id they count from (`pad_token_id`).
    #[module(skip)]
    pub position_padding: Option<usize>,
}

/// The stack of transformer layers.
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// `num_hidden_layers` layers, run in order.
    pub layer: Vec<BertLayer>,
    /// MPNet's relative position bias, `[buckets, heads]`, shared by every layer; frozen.
    pub relative_attention_bias: Option<Embedding>,
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
            token_type_embeddings: (self.type_vocab_size > 0).then(|| table(self.type_vocab_size, rng)),
            layer_norm: layer_norm(),
            dropout: hidden_dropout(),
            position_padding: self.model_type.offset_positions().then_some(self.pad_token_id),
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
        let relative_attention_bias = (self.relative_attention_num_buckets > 0).then(|| Embedding {
            weight: Param::from_tensor(init::normal(
                [self.relative_attention_num_buckets, self.num_attention_heads],
                std,
                rng,
                device,
            ))
            .set_require_grad(false),
        });
        BertModel {
            embeddings,
            encoder: BertEncoder {
                layer,
                relative_attention_bias,
            },
            pooler,
            model_type: self.model_type,
        }
    }
}

impl BertClassifierConfig {
    /// A randomly initialised classifier (pooler included with CLS pooling).
    pub fn init(&self, rng: &mut impl Rng, device: &Device) -> BertClassifier {
        let bert = self.bert.init(self.pooling == Pooling::Cls, rng, device);
        self.with_encoder(bert, rng, device)
    }

    /// A classifier on `bert`, with a freshly initialised head (with [`Pooling::ClsHead`], its
    /// `dense` too).
    pub fn with_encoder(&self, mut bert: BertModel, rng: &mut impl Rng, device: &Device) -> BertClassifier {
        let linear = |d_out, rng: &mut _| {
            LoraLinearConfig::new(self.bert.hidden_size, d_out)
                .with_init_std(Some(self.bert.initializer_range))
                .init(rng, device)
                .base
        };
        if self.pooling == Pooling::ClsHead {
            bert.pooler = Some(BertPooler {
                dense: linear(self.bert.hidden_size, rng),
            });
        }
        let classifier = linear(self.n_classes, rng);
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
            (Pooling::ClsHead, Some(head)) => {
                let [batch, _, d] = hidden.dims();
                let first = hidden.slice([0..batch, 0..1, 0..d]).reshape([batch, d]);
                let dense = &head.dense;
                tanh(members::linear(
                    self.dropout.forward(first),
                    dense.weight.val(),
                    dense.bias.as_ref().map(|b| b.val()),
                ))
            }
            (Pooling::Cls | Pooling::ClsHead, None) => panic!("CLS pooling needs a model built with a pooler"),
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
        let key_bias = (attention_mask.clone().float().neg() + 1.0).mul_scalar(-1e9);
        let seq = input_ids.dims()[1];
        let mut hidden = self.embeddings.forward(input_ids, attention_mask, token_type_ids);
        let position_bias = self.encoder.relative_attention_bias.as_ref().map(|table| {
            let heads = table.weight.dims()[1];
            let buckets = relative_position_buckets(seq, table.weight.dims()[0], &hidden.device());
            // [seq, seq, heads] -> [1, heads, seq, seq], broadcast over the batch.
            table
                .forward(buckets.unsqueeze_dim::<2>(0))
                .reshape([seq, seq, heads])
                .permute([2, 0, 1])
                .unsqueeze_dim::<4>(0)
        });
        for layer in &self.encoder.layer {
            hidden = layer.forward(hidden, key_bias.clone(), position_bias.clone());
        }
        hidden
    }
}

/// MPNet's relative position bucket of every (query, key) pair of a `seq`-token sequence, as
/// transformers' `MPNetEncoder.relative_position_bucket` computes it (T5's bidirectional
/// buckets: half for keys before the query, half after; exact up to a quarter of the buckets,
/// then logarithmic up to [`RELATIVE_MAX_DISTANCE`]), flattened row-major.
///
/// # Shapes
/// output: `[seq * seq]`
pub fn relative_position_buckets(seq: usize, num_buckets: usize, device: &Device) -> Tensor<1, Int> {
    let half = (num_buckets / 2) as i64;
    let max_exact = half / 2;
    let bucket = |query: i64, key: i64| {
        // transformers' `n = -(key - query)`: positive when the key comes first.
        let n = query - key;
        let side = if n < 0 { half } else { 0 };
        let n = n.abs();
        if n < max_exact {
            return side + n;
        }
        let log = (n as f32 / max_exact as f32).ln() / (RELATIVE_MAX_DISTANCE as f32 / max_exact as f32).ln();
        // `.to(torch.long)` truncates toward zero.
        side + (max_exact + (log * (half - max_exact) as f32) as i64).min(half - 1)
    };
    let buckets: Vec<i64> = (0..seq as i64)
        .flat_map(|query| (0..seq as i64).map(move |key| bucket(query, key)))
        .collect();
    Tensor::from_data(burn::tensor::TensorData::new(buckets, [seq * seq]), device)
}

impl BertEmbeddings {
    fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = match self.position_padding {
            // fairseq's `make_positions`: tokens count 1, 2, ... after the padding id, which
            // padding keeps.
            Some(padding) => (attention_mask.clone().cumsum(1) * attention_mask).add_scalar(padding as i64),
            None => Tensor::<1, Int>::arange(0..seq as i64, &device)
                .unsqueeze_dim::<2>(0)
                .repeat_dim(0, batch),
        };
        let mut sum = self.word_embeddings.forward(input_ids) + self.position_embeddings.forward(positions);
        if let Some(table) = &self.token_type_embeddings {
            let token_types = token_type_ids.unwrap_or_else(|| Tensor::zeros([batch, seq], &device));
            sum = sum + table.forward(token_types);
        }
        self.dropout.forward(self.layer_norm.forward(sum))
    }
}

impl BertLayer {
    fn forward(&self, x: Tensor<3>, key_bias: Tensor<2>, position_bias: Option<Tensor<4>>) -> Tensor<3> {
        let attended = self
            .attention
            .self_attention
            .forward(x.clone(), key_bias, position_bias);
        let x = self.attention.output.forward(attended, x);
        let inner = self.intermediate.forward(x.clone());
        self.output.forward(inner, x)
    }
}

impl BertSelfAttention {
    /// # Shapes
    /// `[batch, seq, d]`, key bias `[batch, seq]`, position bias `[1, heads, seq, seq]` ->
    /// `[batch, seq, d]`
    fn forward(&self, x: Tensor<3>, key_bias: Tensor<2>, position_bias: Option<Tensor<4>>) -> Tensor<3> {
        let [batch, seq, d_model] = x.dims();
        let d_head = d_model / self.n_heads;
        let split_heads = |t: Tensor<3>| t.reshape([batch, seq, self.n_heads, d_head]).swap_dims(1, 2);
        let q = split_heads(self.query.forward(x.clone()));
        let k = split_heads(self.key.forward(x.clone()));
        let v = split_heads(self.value.forward(x));
        let scale = 1.0 / (d_head as f64).sqrt();
        let scores = q.matmul(k.transpose());
        // MPNet adds its bias to the scaled scores; the softmax below scales what it is given.
        let scores = match position_bias {
            Some(bias) => scores + bias.div_scalar(scale),
            None => scores,
        };
        let dropout = self.dropout.mask(&scores);
        let probs = fused::attention_softmax(scores, key_bias, scale, dropout);
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
        let model_type = self.bert.model_type;
        let names = model_type.layer_names();
        let mut sites = Vec::new();
        for (i, layer) in self.bert.encoder.layer.iter_mut().enumerate() {
            let at = |name: &str| format!("{}.encoder.layer.{i}.{name}", model_type.prefix());
            let attention = &mut layer.attention.self_attention;
            sites.extend([
                Site {
                    target: "query",
                    path: at(names.query),
                    layer: &mut attention.query,
                },
                Site {
                    target: "key",
                    path: at(names.key),
                    layer: &mut attention.key,
                },
                Site {
                    target: "value",
                    path: at(names.value),
                    layer: &mut attention.value,
                },
                Site {
                    target: "output",
                    path: at(names.output),
                    layer: &mut layer.attention.output.dense,
                },
                Site {
                    target: "ffn_in",
                    path: at(names.intermediate),
                    layer: &mut layer.intermediate.dense,
                },
                Site {
                    target: "ffn_out",
                    path: at(names.ffn_out),
                    layer: &mut layer.output.dense,
                },
            ]);
        }
        sites
    }

    fn embedding_sites(&mut self) -> Vec<Site<'_, LoraEmbedding>> {
        vec![Site {
            target: "word_embeddings",
            path: format!("{}.embeddings.word_embeddings", self.bert.model_type.prefix()),
            layer: &mut self.bert.embeddings.word_embeddings,
        }]
    }

    fn head_sites(&mut self) -> Vec<Site<'_, Linear>> {
        match (self.pooling, &mut self.bert.pooler) {
            // The head of RoBERTa's and MPNet's `*ForSequenceClassification`.
            (Pooling::ClsHead, Some(pooler)) => vec![
                Site {
                    target: "classifier",
                    path: "classifier.dense".into(),
                    layer: &mut pooler.dense,
                },
                Site {
                    target: "classifier",
                    path: "classifier.out_proj".into(),
                    layer: &mut self.classifier,
                },
            ],
            _ => vec![Site {
                target: "classifier",
                path: "classifier".into(),
                layer: &mut self.classifier,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;
    use crate::test_util::{assert_close, central_difference_at, values};
    use crate::{AttachConfig, LoraConfig, attach};

    #[test]
    fn relative_position_buckets_are_transformers() {
        // transformers' `MPNetEncoder.relative_position_bucket(r, 32, 128)` for these
        // r = key - query (printed by transformers 5.24.0).
        let distances = [
            -300, -129, -128, -127, -64, -33, -17, -16, -9, -8, -7, -1, 0, 1, 7, 8, 9, 16, 17, 33, 64, 127, 128, 129,
            300,
        ];
        let expected = [
            15, 15, 15, 15, 14, 12, 10, 10, 8, 8, 7, 1, 0, 17, 23, 24, 24, 26, 26, 28, 30, 31, 31, 31, 31,
        ];
        let seq = 601;
        let buckets: Vec<i64> = relative_position_buckets(seq, 32, &Device::flex())
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .unwrap();
        let query = 300;
        let got: Vec<i64> = distances
            .iter()
            .map(|r: &i64| buckets[query * seq + (query as i64 + r) as usize])
            .collect();
        assert_eq!(got, expected);
    }

    /// A two-layer MPNet with rank-2 adapters (non-zero B) on query and key.
    fn tiny_mpnet(device: &Device) -> BertClassifier {
        let config = BertConfig::new(20, 8, 2, 2, 16)
            .with_model_type(ModelType::Mpnet)
            .with_type_vocab_size(0)
            .with_pad_token_id(1)
            .with_relative_attention_num_buckets(8)
            .with_max_position_embeddings(16)
            // Weights large enough that attention, and so the bias, moves the output.
            .with_initializer_range(0.5)
            .with_hidden_dropout_prob(0.0)
            .with_attention_probs_dropout_prob(0.0);
        let model = BertClassifierConfig::new(config, 3).init(&mut init::rng(0), device);
        let targets = vec!["query".into(), "key".into()];
        let mut model = attach(
            model,
            &AttachConfig::new(LoraConfig::new(2), targets),
            &mut init::rng(1),
        )
        .unwrap();
        let mut rng = init::rng(2);
        // A bias large enough to move the attention (its init is N(0, 0.02^2)).
        let table = model.bert.encoder.relative_attention_bias.as_mut().unwrap();
        table.weight =
            Param::from_tensor(init::normal(table.weight.dims(), 1.0, &mut rng, device)).set_require_grad(false);
        for site in model.linear_sites() {
            if let Some(adapter) = site.layer.adapter.as_mut() {
                adapter.lora_b = Param::from_tensor(init::normal(adapter.lora_b.dims(), 0.5, &mut rng, device));
            }
        }
        model
    }

    fn batch(device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let ids = TensorData::new(vec![0i64, 5, 9, 3, 2, 1, 0, 7, 4, 6, 12, 2], [2, 6]);
        let mask = TensorData::new(vec![1i64, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1], [2, 6]);
        (Tensor::from_data(ids, device), Tensor::from_data(mask, device))
    }

    #[test]
    fn adapter_gradients_through_the_relative_position_bias_match_central_differences() {
        let device = Device::flex().autodiff();
        let model = tiny_mpnet(&device);
        let (ids, mask) = batch(&device);
        let loss = |m: &BertClassifier| values(m.forward(ids.clone(), mask.clone(), None).tanh().sum());
        // The bias is in the path: zeroing it changes the output.
        let mut unbiased = model.clone();
        let table = unbiased.bert.encoder.relative_attention_bias.as_mut().unwrap();
        table.weight = Param::from_tensor(table.weight.val().zeros_like()).set_require_grad(false);
        assert!((loss(&unbiased)[0] - loss(&model)[0]).abs() > 1e-4);

        let grads = model.forward(ids.clone(), mask.clone(), None).tanh().sum().backward();
        fn query_a(m: &mut BertClassifier) -> &mut Param<Tensor<2>> {
            &mut m.bert.encoder.layer[1]
                .attention
                .self_attention
                .query
                .adapter
                .as_mut()
                .unwrap()
                .lora_a
        }
        fn key_b(m: &mut BertClassifier) -> &mut Param<Tensor<2>> {
            &mut m.bert.encoder.layer[0]
                .attention
                .self_attention
                .key
                .adapter
                .as_mut()
                .unwrap()
                .lora_b
        }
        let params: [(&str, fn(&mut BertClassifier) -> &mut Param<Tensor<2>>); 2] =
            [("layer 1 query A", query_a), ("layer 0 key B", key_b)];
        for (name, param) in params {
            let mut probe = model.clone();
            let analytic = values(param(&mut probe).grad(&grads).expect("the adapter trains"));
            // A small step: through softmax, LayerNorm and tanh the loss is far from quadratic.
            let numeric = central_difference_at(1e-3, &model, param, loss);
            assert_close(&analytic, &numeric, 2e-2);
            assert!(analytic.iter().any(|g| g.abs() > 1e-4), "{name}: a gradient to check");
        }
        let bias = model.bert.encoder.relative_attention_bias.as_ref().unwrap();
        assert!(bias.weight.grad(&grads).is_none(), "the bias is frozen");
    }
}
