//! Any BERT-architecture checkpoint in Hugging Face's format loads the same way: a tiny random
//! BERT, written here in PyTorch layout with transformers' names, comes back identical. Covers
//! the `bert.` prefix of `BertFor*` checkpoints, TF-converted `gamma` / `beta` LayerNorms, the
//! tensors a classifier skips, and the errors for a mismatched file.

use std::path::Path;

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};
use loraplus_model::models::{BertClassifierConfig, BertConfig, BertModel, Pooling, load_bert, read_bert_config};
use loraplus_model::{LoraError, init};
use safetensors::{Dtype, tensor::TensorView};

fn tiny() -> BertConfig {
    BertConfig::new(30, 8, 2, 2, 16)
        .with_max_position_embeddings(12)
        .with_hidden_dropout_prob(0.0)
        .with_attention_probs_dropout_prob(0.0)
}

/// `(name, shape, values)` in the file's layout.
type Entry = (String, Vec<usize>, Vec<f32>);

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

fn param<const D: usize>(name: String, p: &Param<Tensor<D>>) -> Entry {
    let tensor = p.val();
    (name, tensor.dims().to_vec(), values(tensor))
}

/// A linear layer as PyTorch stores it: `weight` `[out, in]`, `bias` `[out]`.
fn linear(name: &str, layer: &Linear) -> Vec<Entry> {
    let weight = layer.weight.val().transpose();
    vec![
        (format!("{name}.weight"), weight.dims().to_vec(), values(weight)),
        param(format!("{name}.bias"), layer.bias.as_ref().unwrap()),
    ]
}

fn layer_norm(name: &str, norm: &LayerNorm, (scale, shift): (&str, &str)) -> Vec<Entry> {
    vec![
        param(format!("{name}.{scale}"), &norm.gamma),
        param(format!("{name}.{shift}"), norm.beta.as_ref().unwrap()),
    ]
}

/// Every tensor of `model` under transformers' names, each prefixed by `prefix`.
fn checkpoint_entries(model: &BertModel, prefix: &str) -> Vec<Entry> {
    let e = &model.embeddings;
    let mut entries = vec![
        param(
            "embeddings.word_embeddings.weight".into(),
            &e.word_embeddings.base.weight,
        ),
        param(
            "embeddings.position_embeddings.weight".into(),
            &e.position_embeddings.weight,
        ),
        param(
            "embeddings.token_type_embeddings.weight".into(),
            &e.token_type_embeddings.as_ref().unwrap().weight,
        ),
    ];
    // Checkpoints converted from TensorFlow name LayerNorm parameters gamma / beta.
    entries.extend(layer_norm("embeddings.LayerNorm", &e.layer_norm, ("gamma", "beta")));
    for (i, layer) in model.encoder.layer.iter().enumerate() {
        let at = |name: &str| format!("encoder.layer.{i}.{name}");
        let attention = &layer.attention;
        entries.extend(linear(
            &at("attention.self.query"),
            &attention.self_attention.query.base,
        ));
        entries.extend(linear(&at("attention.self.key"), &attention.self_attention.key.base));
        entries.extend(linear(
            &at("attention.self.value"),
            &attention.self_attention.value.base,
        ));
        entries.extend(linear(&at("attention.output.dense"), &attention.output.dense.base));
        entries.extend(layer_norm(
            &at("attention.output.LayerNorm"),
            &attention.output.layer_norm,
            ("weight", "bias"),
        ));
        entries.extend(linear(&at("intermediate.dense"), &layer.intermediate.dense.base));
        entries.extend(linear(&at("output.dense"), &layer.output.dense.base));
        entries.extend(layer_norm(
            &at("output.LayerNorm"),
            &layer.output.layer_norm,
            ("weight", "bias"),
        ));
    }
    entries.extend(linear("pooler.dense", &model.pooler.as_ref().unwrap().dense));
    entries
        .into_iter()
        .map(|(name, shape, values)| (format!("{prefix}{name}"), shape, values))
        .collect()
}

/// Writes `config.json` and `model.safetensors` (with an int64 `position_ids` buffer and a
/// masked-LM head tensor, as `BertForPreTraining` checkpoints have) into `dir`.
fn write_checkpoint(dir: &Path, config: &BertConfig, entries: &[Entry], prefix: &str, model_type: &str) {
    let config_json = serde_json::json!({
        "architectures": ["BertForMaskedLM"],
        "model_type": model_type,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "torch_dtype": "float32",
        "transformers_version": "4.40.0"
    });
    std::fs::write(dir.join("config.json"), config_json.to_string()).unwrap();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>, Dtype)> = entries
        .iter()
        .map(|(name, shape, values)| {
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), shape.clone(), data, Dtype::F32)
        })
        .chain([
            (
                format!("{prefix}embeddings.position_ids"),
                vec![1, config.max_position_embeddings],
                (0..config.max_position_embeddings as i64)
                    .flat_map(|p| p.to_le_bytes())
                    .collect(),
                Dtype::I64,
            ),
            (
                "cls.predictions.bias".to_string(),
                vec![config.vocab_size],
                vec![0; 4 * config.vocab_size],
                Dtype::F32,
            ),
        ])
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(name, shape, data, dtype)| (name.clone(), TensorView::new(*dtype, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

fn encode(model: &BertModel, device: &Device) -> Vec<f32> {
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![2i64, 7, 29, 4, 1, 0], [2, 3]), device);
    let mask = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 1, 1, 0], [2, 3]), device);
    let types = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 0, 1, 0, 1, 0], [2, 3]), device);
    values(model.forward(ids, mask, Some(types)))
}

#[test]
fn a_bert_checkpoint_in_pytorch_layout_loads_back_identically() {
    let device = Device::flex();
    let original = tiny().init(true, &mut init::rng(7), &device);
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(
        dir.path(),
        &tiny(),
        &checkpoint_entries(&original, "bert."),
        "bert.",
        "bert",
    );

    let config = read_bert_config(dir.path()).unwrap();
    assert_eq!(config, tiny().with_initializer_range(0.02));
    let loaded = load_bert(dir.path(), &config, true, &device).unwrap();
    assert_eq!(encode(&loaded, &device), encode(&original, &device));

    let classifier = BertClassifierConfig::new(config, 3)
        .with_pooling(Pooling::Cls)
        .init_pretrained(dir.path(), &mut init::rng(0), &device)
        .unwrap();
    let pooler = |m: &BertModel| values(m.pooler.as_ref().unwrap().dense.weight.val());
    assert_eq!(pooler(&classifier.bert), pooler(&original));
}

#[test]
fn mismatched_checkpoints_are_named_errors() {
    let device = Device::flex();
    let original = tiny().init(true, &mut init::rng(7), &device);
    let entries = checkpoint_entries(&original, "");

    let dir = tempfile::tempdir().unwrap();
    let mut extra = entries.clone();
    extra.push((
        "encoder.layer.0.attention.self.rotary.weight".into(),
        vec![2],
        vec![0.0, 0.0],
    ));
    write_checkpoint(dir.path(), &tiny(), &extra, "", "bert");
    let error = load_bert(dir.path(), &tiny(), false, &device).unwrap_err();
    assert!(
        matches!(&error, LoraError::UnexpectedTensor { key, .. } if key.contains("rotary")),
        "{error}"
    );

    // A file of another size: the first tensor that does not fit is named with both shapes.
    let wider = BertConfig::new(30, 10, 2, 2, 16).with_max_position_embeddings(12);
    let error = load_bert(dir.path(), &wider, false, &device).unwrap_err().to_string();
    assert!(
        error.contains("embeddings.word_embeddings.weight") && error.contains("[30, 8]"),
        "{error}"
    );

    write_checkpoint(dir.path(), &tiny(), &entries, "", "roberta");
    let error = read_bert_config(dir.path()).unwrap_err().to_string();
    assert!(error.contains("config.json") && error.contains("roberta"), "{error}");
}

#[test]
fn an_mpnet_checkpoint_round_trips_and_one_without_its_relative_bias_is_a_named_error() {
    use loraplus_model::models::{BertClassifier, ModelType, save_pretrained};
    let device = Device::flex();
    let config = tiny()
        .with_model_type(ModelType::Mpnet)
        .with_type_vocab_size(0)
        .with_pad_token_id(1)
        .with_relative_attention_num_buckets(8)
        .with_initializer_range(0.3);
    let model: BertClassifier = BertClassifierConfig::new(config.clone(), 2).init(&mut init::rng(3), &device);
    let dir = tempfile::tempdir().unwrap();
    let base_config = serde_json::json!({
        "model_type": "mpnet", "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 12,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "layer_norm_eps": 1e-12,
        "relative_attention_num_buckets": 8, "pad_token_id": 1
    });
    save_pretrained(&model, &base_config, &["a".into(), "b".into()], dir.path()).unwrap();
    let read = read_bert_config(dir.path()).unwrap();
    assert_eq!(
        (
            read.model_type,
            read.type_vocab_size,
            read.relative_attention_num_buckets
        ),
        (ModelType::Mpnet, 0, 8)
    );
    let loaded = load_bert(dir.path(), &read, false, &device).unwrap();
    assert_eq!(
        encode(&loaded, &device),
        encode(&model.bert, &device),
        "MPNet's names, both ways"
    );

    // The same file without its relative position bias.
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, TensorView)> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.contains("relative_attention_bias"))
        .collect();
    safetensors::serialize_to_file(kept, None, &dir.path().join("model.safetensors")).unwrap();
    let error = load_bert(dir.path(), &read, false, &device).unwrap_err().to_string();
    assert!(
        error.contains("mpnet.encoder.relative_attention_bias.weight"),
        "{error}"
    );
}
