//! RoBERTa against transformers, on the tiny random RoBERTa of `fixtures/tiny-roberta/`
//! (written, with what transformers computes from it, by `scripts/reference/tiny_roberta.py`):
//! position ids counting from the padding id, one token type, the `roberta.` prefix, and
//! `RobertaForSequenceClassification`'s head (`Pooling::ClsHead`).

use std::path::PathBuf;

use burn::module::Param;
use burn::tensor::{Device, Int, Tensor, TensorData};
use loraplus_model::models::{BertClassifierConfig, ModelType, Pooling, read_bert_config};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    input_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<i64>>,
    last_hidden_state: Vec<Vec<Vec<f32>>>,
    logits: Vec<Vec<f32>>,
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-roberta")
}

fn int_tensor(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(rows.concat(), [rows.len(), rows[0].len()]), device)
}

fn max_gap(ours: Vec<f32>, reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len());
    ours.iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_tiny_roberta_gives_transformers_hidden_states_and_logits() {
    let device = Device::flex();
    let dir = fixture();
    let reference: Reference = serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    let config = read_bert_config(&dir).unwrap();
    assert_eq!(config.model_type, ModelType::Roberta);
    assert_eq!((config.type_vocab_size, config.pad_token_id), (1, 1));
    let mut model = BertClassifierConfig::new(config, 3)
        .with_pooling(Pooling::ClsHead)
        .init_pretrained(&dir, &mut loraplus_model::init::rng(0), &device)
        .unwrap();
    // A checkpoint's classifier is a previous task's, which loading leaves out: the test takes
    // it from the file to compare the logits.
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensor = |name: &str| {
        let view = file.tensor(name).unwrap();
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        TensorData::new(values, view.shape().to_vec())
    };
    let linear = |name: &str| {
        let weight: Tensor<2> = Tensor::from_data(tensor(&format!("{name}.weight")), &device);
        burn::nn::Linear {
            weight: Param::from_tensor(weight.transpose()),
            bias: Some(Param::from_tensor(Tensor::from_data(
                tensor(&format!("{name}.bias")),
                &device,
            ))),
        }
    };
    model.bert.pooler.as_mut().unwrap().dense = linear("classifier.dense");
    model.classifier = linear("classifier.out_proj");

    let (ids, mask) = (
        int_tensor(&reference.input_ids, &device),
        int_tensor(&reference.attention_mask, &device),
    );
    let hidden = model.bert.forward(ids.clone(), mask.clone(), None);
    let hidden_gap = max_gap(
        hidden.into_data().try_to_vec().unwrap(),
        &reference.last_hidden_state.concat().concat(),
    );
    let logits_gap = max_gap(
        model.forward(ids, mask, None).into_data().try_to_vec().unwrap(),
        &reference.logits.concat(),
    );
    eprintln!("tiny RoBERTa: max abs difference: hidden {hidden_gap:.2e}, logits {logits_gap:.2e}");
    assert!(
        hidden_gap <= 1e-4 && logits_gap <= 1e-4,
        "hidden {hidden_gap}, logits {logits_gap}"
    );
}

#[test]
fn a_roberta_config_with_more_than_one_token_type_is_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        text.replace("\"type_vocab_size\": 1", "\"type_vocab_size\": 2"),
    )
    .unwrap();
    let error = read_bert_config(dir.path()).unwrap_err().to_string();
    assert!(
        error.contains("config.json")
            && error.contains("type_vocab_size is 2; a roberta checkpoint has one token type"),
        "{error}"
    );
}
