//! Hugging Face checkpoints of the BERT family (BERT, RoBERTa and its relatives, MPNet): a folder
//! with `config.json` and `model.safetensors`, as `save_pretrained` writes it for `BertModel`,
//! `*ForSequenceClassification`, sentence-transformers' encoders and the like.
//!
//! Nothing here is specific to one checkpoint. The names map one to one onto the fields of
//! [`BertModel`] through the family's [`ModelType::layer_names`] (a leading `bert.`, `roberta.`
//! or `mpnet.` is accepted), PyTorch's `[out, in]` linear weights are transposed to Burn's
//! `[in, out]`, and every tensor is checked for its shape. Tensors a classifier does not use
//! (`embeddings.position_ids`, masked-LM heads under `cls.` and `lm_head.`, a previous task's
//! `classifier.`) are skipped; any other tensor the model has no place for is an error, so a
//! checkpoint of another architecture cannot load half-way.

use std::path::Path;

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::Device;
use rand::Rng;
use serde::Deserialize;

use super::bert::{BertClassifier, BertClassifierConfig, BertConfig, BertModel, HiddenAct, ModelType, Pooling};
use crate::weights::{self, Entry, Weights, entry};
use crate::{LoraError, LoraLinear, init, merge};

/// The architecture file of a checkpoint folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a checkpoint folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Tensor-name prefixes a classifier has no use for.
const SKIPPED: [&str; 4] = ["embeddings.position_ids", "cls.", "lm_head.", "classifier."];

/// The fields of a Hugging Face `config.json` that shape a BERT encoder.
#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    #[serde(default = "default_dropout")]
    hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    attention_probs_dropout_prob: f64,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    #[serde(default)]
    type_vocab_size: Option<usize>,
    #[serde(default)]
    pad_token_id: Option<usize>,
    #[serde(default)]
    relative_attention_num_buckets: Option<usize>,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_initializer_range")]
    initializer_range: f64,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_max_positions() -> usize {
    512
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_initializer_range() -> f64 {
    0.02
}

/// Reads `dir/config.json` as the encoder's settings.
///
/// Fails, naming the file and field, on anything but a BERT-family encoder: a `model_type` other
/// than `bert`, `roberta` (`xlm-roberta`, `camembert`) or `mpnet`, relative position embeddings
/// other than MPNet's, more than one token type in a RoBERTa, or an activation this crate does not
/// have.
pub fn read_bert_config(dir: &Path) -> Result<BertConfig, LoraError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| LoraError::Io {
        path: path.clone(),
        source,
    })?;
    let format = |message: String| LoraError::Format {
        path: path.clone(),
        message,
    };
    let file: ConfigFile =
        serde_json::from_str(&text).map_err(|e| format(format!("not a Hugging Face BERT config.json: {e}")))?;
    let model_type = match file.model_type.as_deref().unwrap_or("bert") {
        "bert" => ModelType::Bert,
        "roberta" | "xlm-roberta" | "camembert" => ModelType::Roberta,
        "mpnet" => ModelType::Mpnet,
        other => {
            return Err(format(format!(
                "model_type is `{other}`; allowed: bert, roberta, xlm-roberta, camembert, mpnet"
            )));
        }
    };
    if let Some(kind) = file.position_embedding_type.as_deref().filter(|t| *t != "absolute") {
        return Err(format(format!(
            "position_embedding_type is `{kind}`; only `absolute` is supported"
        )));
    }
    // MPNet has no token types; RoBERTa one, all zeros, which its tokenizers give.
    let type_vocab_size = file.type_vocab_size.unwrap_or(match model_type {
        ModelType::Bert => 2,
        ModelType::Roberta => 1,
        ModelType::Mpnet => 0,
    });
    if model_type == ModelType::Roberta && type_vocab_size > 1 {
        return Err(format(format!(
            "type_vocab_size is {type_vocab_size}; a {} checkpoint has one token type (1): its tokenizer \
             gives no segment ids",
            file.model_type.as_deref().unwrap_or("roberta")
        )));
    }
    let hidden_act = match file.hidden_act.as_str() {
        "gelu" => HiddenAct::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" => HiddenAct::GeluNew,
        "relu" => HiddenAct::Relu,
        other => {
            return Err(format(format!(
                "hidden_act is `{other}`; allowed: gelu, gelu_new, gelu_pytorch_tanh, relu"
            )));
        }
    };
    if file.num_attention_heads == 0 || !file.hidden_size.is_multiple_of(file.num_attention_heads) {
        return Err(format(format!(
            "num_attention_heads {} does not divide hidden_size {}",
            file.num_attention_heads, file.hidden_size
        )));
    }
    let offset = model_type.offset_positions();
    Ok(BertConfig::new(
        file.vocab_size,
        file.hidden_size,
        file.num_hidden_layers,
        file.num_attention_heads,
        file.intermediate_size,
    )
    .with_hidden_act(hidden_act)
    .with_hidden_dropout_prob(file.hidden_dropout_prob)
    .with_attention_probs_dropout_prob(file.attention_probs_dropout_prob)
    .with_max_position_embeddings(file.max_position_embeddings)
    .with_type_vocab_size(type_vocab_size)
    .with_layer_norm_eps(file.layer_norm_eps)
    .with_initializer_range(file.initializer_range)
    .with_model_type(model_type)
    .with_pad_token_id(file.pad_token_id.unwrap_or(usize::from(offset)))
    .with_relative_attention_num_buckets(match model_type {
        ModelType::Mpnet => file.relative_attention_num_buckets.unwrap_or(32),
        _ => 0,
    }))
}

/// Loads the encoder of the checkpoint in `dir`, sized by `config` (usually
/// [`read_bert_config`]'s, with dropout changed at will). With `with_pooler`, the file must have
/// the pooler too.
pub fn load_bert(dir: &Path, config: &BertConfig, with_pooler: bool, device: &Device) -> Result<BertModel, LoraError> {
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|source| LoraError::Io {
        path: path.clone(),
        source,
    })?;
    let mut weights = Weights::parse(&bytes, &path)?;
    // The skeleton's random values are all overwritten below; its seed does not matter.
    let mut model = config.init(with_pooler, &mut init::rng(0), device);
    let family = config.model_type.prefix();
    let prefix = if weights.contains(&format!("{family}.embeddings.word_embeddings.weight")) {
        format!("{family}.")
    } else {
        String::new()
    };
    let mut reader = Reader {
        weights: &mut weights,
        prefix: &prefix,
        device,
    };
    let (d, d_ff) = (config.hidden_size, config.intermediate_size);

    let embeddings = &mut model.embeddings;
    embeddings.word_embeddings.base = reader.embedding("embeddings.word_embeddings", config.vocab_size, d)?;
    embeddings.position_embeddings =
        reader.embedding("embeddings.position_embeddings", config.max_position_embeddings, d)?;
    if let Some(table) = embeddings.token_type_embeddings.as_mut() {
        *table = reader.embedding("embeddings.token_type_embeddings", config.type_vocab_size, d)?;
    }
    reader.layer_norm("embeddings.LayerNorm", d, &mut embeddings.layer_norm)?;
    if let Some(bias) = model.encoder.relative_attention_bias.as_mut() {
        let table = reader.embedding_of(
            "encoder.relative_attention_bias",
            [config.relative_attention_num_buckets, config.num_attention_heads],
        )?;
        bias.weight = table.weight.set_require_grad(false);
    }

    let names = config.model_type.layer_names();
    for (i, layer) in model.encoder.layer.iter_mut().enumerate() {
        let at = |name: &str| format!("encoder.layer.{i}.{name}");
        let attention = &mut layer.attention;
        reader.linear(&at(names.query), d, d, &mut attention.self_attention.query)?;
        reader.linear(&at(names.key), d, d, &mut attention.self_attention.key)?;
        reader.linear(&at(names.value), d, d, &mut attention.self_attention.value)?;
        reader.linear(&at(names.output), d, d, &mut attention.output.dense)?;
        reader.layer_norm(&at(names.attention_norm), d, &mut attention.output.layer_norm)?;
        reader.linear(&at(names.intermediate), d, d_ff, &mut layer.intermediate.dense)?;
        reader.linear(&at(names.ffn_out), d_ff, d, &mut layer.output.dense)?;
        reader.layer_norm(&at(names.output_norm), d, &mut layer.output.layer_norm)?;
    }
    match &mut model.pooler {
        Some(pooler) => pooler.dense = reader.plain_linear("pooler.dense", d, d)?,
        None => reader.skip("pooler."),
    }

    let unexpected = weights
        .unused()
        .find(|key| {
            let key = key.strip_prefix(prefix.as_str()).unwrap_or(key);
            !SKIPPED.iter().any(|skipped| key.starts_with(skipped))
        })
        .map(String::from);
    match unexpected {
        Some(key) => Err(LoraError::UnexpectedTensor { path, key }),
        None => Ok(model),
    }
}

impl BertClassifierConfig {
    /// The classifier on the pretrained encoder in `dir`, with a freshly initialised head (and,
    /// with CLS pooling, the checkpoint's pooler). `self.bert` must match the checkpoint's sizes.
    pub fn init_pretrained(
        &self,
        dir: &Path,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<BertClassifier, LoraError> {
        let bert = load_bert(dir, &self.bert, self.pooling == Pooling::Cls, device)?;
        Ok(self.with_encoder(bert, rng, device))
    }
}

/// Writes `model`, its adapters merged into the weights, as a Hugging Face checkpoint folder that
/// transformers loads without PEFT: `model.safetensors` with the family's
/// `*ForSequenceClassification` names and PyTorch's layouts (a `bert.`, `roberta.` or
/// `mpnet.`-prefixed encoder, the pooler with CLS pooling, `classifier` or the RoBERTa-style
/// `classifier.dense` / `classifier.out_proj`), and `config.json`: `base_config` (the base
/// checkpoint's) with the architecture and the class names `labels` (in class-index order) set.
pub fn save_pretrained(
    model: &BertClassifier,
    base_config: &serde_json::Value,
    labels: &[String],
    dir: &Path,
) -> Result<(), LoraError> {
    let model = merge(model.clone());
    std::fs::create_dir_all(dir).map_err(|source| LoraError::Io {
        path: dir.into(),
        source,
    })?;
    weights::save(&checkpoint_entries(&model), &dir.join(WEIGHTS_FILE))?;
    let mut config = base_config.clone();
    config["architectures"] = serde_json::json!([model.bert.model_type.classifier_class()]);
    let id2label: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), l.as_str().into()))
        .collect();
    let label2id: serde_json::Map<String, serde_json::Value> =
        labels.iter().enumerate().map(|(i, l)| (l.clone(), i.into())).collect();
    config["id2label"] = id2label.into();
    config["label2id"] = label2id.into();
    let json = serde_json::to_vec_pretty(&config).expect("a config serialises");
    weights::write_atomic(&dir.join(CONFIG_FILE), &json)
}

/// `model`'s base weights (adapters left out: merge them first) under transformers' names.
fn checkpoint_entries(model: &BertClassifier) -> Vec<Entry> {
    let linear = |name: &str, layer: &Linear| {
        let mut entries = vec![entry(format!("{name}.weight"), layer.weight.val().transpose())];
        entries.extend(layer.bias.as_ref().map(|b| entry(format!("{name}.bias"), b.val())));
        entries
    };
    let layer_norm = |name: &str, norm: &LayerNorm| {
        let mut entries = vec![entry(format!("{name}.weight"), norm.gamma.val())];
        entries.extend(norm.beta.as_ref().map(|b| entry(format!("{name}.bias"), b.val())));
        entries
    };
    let bert = &model.bert;
    let at = |name: &str| format!("{}.{name}", bert.model_type.prefix());
    let e = &bert.embeddings;
    let mut entries = vec![
        entry(
            at("embeddings.word_embeddings.weight"),
            e.word_embeddings.base.weight.val(),
        ),
        entry(
            at("embeddings.position_embeddings.weight"),
            e.position_embeddings.weight.val(),
        ),
    ];
    if let Some(table) = &e.token_type_embeddings {
        entries.push(entry(at("embeddings.token_type_embeddings.weight"), table.weight.val()));
    }
    entries.extend(layer_norm(&at("embeddings.LayerNorm"), &e.layer_norm));
    if let Some(bias) = &bert.encoder.relative_attention_bias {
        entries.push(entry(at("encoder.relative_attention_bias.weight"), bias.weight.val()));
    }
    let names = bert.model_type.layer_names();
    for (i, layer) in bert.encoder.layer.iter().enumerate() {
        let at = |name: &str| at(&format!("encoder.layer.{i}.{name}"));
        let attention = &layer.attention;
        entries.extend(linear(&at(names.query), &attention.self_attention.query.base));
        entries.extend(linear(&at(names.key), &attention.self_attention.key.base));
        entries.extend(linear(&at(names.value), &attention.self_attention.value.base));
        entries.extend(linear(&at(names.output), &attention.output.dense.base));
        entries.extend(layer_norm(&at(names.attention_norm), &attention.output.layer_norm));
        entries.extend(linear(&at(names.intermediate), &layer.intermediate.dense.base));
        entries.extend(linear(&at(names.ffn_out), &layer.output.dense.base));
        entries.extend(layer_norm(&at(names.output_norm), &layer.output.layer_norm));
    }
    match (model.pooling, &bert.pooler) {
        (Pooling::ClsHead, Some(head)) => {
            entries.extend(linear("classifier.dense", &head.dense));
            entries.extend(linear("classifier.out_proj", &model.classifier));
        }
        (_, pooler) => {
            if let Some(pooler) = pooler {
                entries.extend(linear(&at("pooler.dense"), &pooler.dense));
            }
            entries.extend(linear("classifier", &model.classifier));
        }
    }
    entries
}

/// Takes a checkpoint's tensors by their module names into Burn modules.
struct Reader<'w, 'a> {
    weights: &'w mut Weights<'a>,
    prefix: &'w str,
    device: &'w Device,
}

impl Reader<'_, '_> {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn embedding(&mut self, name: &str, rows: usize, d: usize) -> Result<Embedding, LoraError> {
        self.embedding_of(name, [rows, d])
    }

    fn embedding_of(&mut self, name: &str, shape: [usize; 2]) -> Result<Embedding, LoraError> {
        let key = self.key(&format!("{name}.weight"));
        Ok(Embedding {
            weight: Param::from_tensor(self.weights.take(&key, shape, self.device)?),
        })
    }

    fn plain_linear(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Linear, LoraError> {
        let weight = self
            .weights
            .take_t(&self.key(&format!("{name}.weight")), [d_out, d_in], self.device)?;
        let bias = self
            .weights
            .take(&self.key(&format!("{name}.bias")), [d_out], self.device)?;
        Ok(Linear {
            weight,
            bias: Some(Param::from_tensor(bias)),
        })
    }

    fn linear(&mut self, name: &str, d_in: usize, d_out: usize, layer: &mut LoraLinear) -> Result<(), LoraError> {
        layer.base = self.plain_linear(name, d_in, d_out)?;
        Ok(())
    }

    /// `LayerNorm.weight` / `.bias`, or the `gamma` / `beta` of checkpoints converted from TF.
    fn layer_norm(&mut self, name: &str, d: usize, norm: &mut LayerNorm) -> Result<(), LoraError> {
        let (scale, shift) = if self.weights.contains(&self.key(&format!("{name}.gamma"))) {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        norm.gamma = Param::from_tensor(
            self.weights
                .take(&self.key(&format!("{name}.{scale}")), [d], self.device)?,
        );
        norm.beta = Some(Param::from_tensor(self.weights.take(
            &self.key(&format!("{name}.{shift}")),
            [d],
            self.device,
        )?));
        Ok(())
    }

    /// Marks every tensor under `name` as deliberately unused.
    fn skip(&mut self, name: &str) {
        let prefix = self.key(name);
        self.weights.drop_where(|key| key.starts_with(&prefix));
    }
}
