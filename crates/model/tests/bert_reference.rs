//! The encoder loaded from a real Hugging Face checkpoint matches the original implementation.
//!
//! `fixtures/bert-reference-{minilm,mpnet}.json` hold what transformers' `AutoModel` computes for a
//! fixed batch (three sentences and a sentence pair, padded to the longest), written by
//! `scripts/reference/bert_reference.py` (its docstring says how to regenerate them). The
//! checkpoints are all-MiniLM-L6-v2 (BERT) and all-mpnet-base-v2 (MPNet: RoBERTa-style positions,
//! no token types, the relative position bias), which `scripts/fetch-data.sh` puts in `data/`.

use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};
use loraplus_model::models::{BertClassifierConfig, Pooling, load_bert, mean_pool, read_bert_config};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    input_ids: Vec<Vec<i64>>,
    token_type_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<i64>>,
    last_hidden_state: Vec<Vec<Vec<f32>>>,
    mean_pooled: Vec<Vec<f32>>,
}

fn checkpoint() -> PathBuf {
    checkpoint_of("all-MiniLM-L6-v2")
}

fn checkpoint_of(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data").join(name);
    assert!(
        dir.join("model.safetensors").exists(),
        "{} is missing: run scripts/fetch-data.sh first",
        dir.display()
    );
    dir
}

fn reference(name: &str) -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/bert-reference-{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture parses")
}

fn int_tensor(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let shape = [rows.len(), rows[0].len()];
    Tensor::from_data(TensorData::new(rows.concat(), shape), device)
}

#[test]
fn minilm_hidden_states_match_transformers() {
    hidden_states_match_transformers("all-MiniLM-L6-v2", "minilm", (384, 6));
}

#[test]
fn mpnet_hidden_states_match_transformers() {
    hidden_states_match_transformers("all-mpnet-base-v2", "mpnet", (768, 12));
}

fn hidden_states_match_transformers(checkpoint: &str, fixture: &str, (width, layers): (usize, usize)) {
    let device = Device::flex();
    let dir = checkpoint_of(checkpoint);
    let config = read_bert_config(&dir).expect("config.json");
    assert_eq!((config.hidden_size, config.num_hidden_layers), (width, layers));
    let bert = load_bert(&dir, &config, false, &device).expect("model.safetensors");
    let reference = reference(fixture);
    let mask = int_tensor(&reference.attention_mask, &device);
    let hidden = bert.forward(
        int_tensor(&reference.input_ids, &device),
        mask.clone(),
        Some(int_tensor(&reference.token_type_ids, &device)),
    );
    let [batch, seq, d] = hidden.dims();
    let values = hidden.clone().into_data().try_to_vec::<f32>().unwrap();

    // Padding positions are compared too: both sides mask padded keys, so their outputs agree.
    let mut max_diff = 0f32;
    for b in 0..batch {
        for t in 0..seq {
            for k in 0..d {
                let diff = (values[(b * seq + t) * d + k] - reference.last_hidden_state[b][t][k]).abs();
                max_diff = max_diff.max(diff);
            }
        }
    }
    assert!(max_diff <= 1e-4, "last_hidden_state differs by up to {max_diff}");

    let pooled = mean_pool(hidden, mask).into_data().try_to_vec::<f32>().unwrap();
    let pooled_diff = pooled
        .iter()
        .zip(reference.mean_pooled.concat())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        pooled_diff <= 1e-4,
        "mean-pooled embeddings differ by up to {pooled_diff}"
    );
    eprintln!("{checkpoint}: max abs difference: hidden {max_diff:.2e}, mean-pooled {pooled_diff:.2e}");
}

#[test]
fn a_classifier_on_the_checkpoint_keeps_its_encoder_and_pooler() {
    let device = Device::flex();
    let dir = checkpoint();
    let config = read_bert_config(&dir).expect("config.json");
    let classifier = BertClassifierConfig::new(config.clone(), 3)
        .with_pooling(Pooling::Cls)
        .init_pretrained(&dir, &mut loraplus_model::init::rng(0), &device)
        .expect("loads with a pooler");
    let encoder = load_bert(&dir, &config, false, &device).unwrap();
    let query = |m: &loraplus_model::models::BertModel| {
        m.encoder.layer[5]
            .attention
            .self_attention
            .query
            .base
            .weight
            .val()
            .into_data()
    };
    assert_eq!(query(&classifier.bert), query(&encoder));
    assert!(classifier.bert.pooler.is_some());
    assert_eq!(classifier.classifier.weight.dims(), [384, 3]);
}
