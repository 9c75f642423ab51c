//! This project's adapters against the original implementations, without PyTorch: the fixture
//! `crates/sweep/tests/fixtures/peft/` holds what transformers + peft computed
//! (`scripts/reference/peft-parity.sh`), and MiniLM here must reproduce it to 1e-4:
//!
//! 1. an adapter this project trained and exported, which PEFT loaded;
//! 2. an adapter PEFT made (rank 4 on query, key, value and the dense layers), loaded here;
//! 3. the merged checkpoint `export --merged` writes, which plain transformers loaded.
//!
//! It also checks that the README's PEFT snippet is the code the script ran.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use loraplus_data::{BatchInput, Split, TOKENIZER_FILE, TextEncoder};
use loraplus_model::models::{BertClassifier, BertClassifierConfig, Pooling, read_bert_config, save_pretrained};
use loraplus_model::{init, peft};

use common::*;

const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    repo_root().join("crates/sweep/tests/fixtures/peft")
}

fn parity() -> serde_json::Value {
    serde_json::from_slice(&fs::read(fixtures().join("parity.json")).unwrap()).unwrap()
}

/// The MiniLM checkpoint, or `None` (the test skips) where it has not been fetched.
fn minilm() -> Option<PathBuf> {
    let dir = repo_root().join("data/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    require::skip_unless_required("data", &format!("{} is missing (scripts/fetch-data.sh)", dir.display()));
    None
}

/// MiniLM, mean-pooled, with a fresh head for `n_classes` classes.
fn minilm_classifier(checkpoint: &Path, n_classes: usize, device: &Device) -> BertClassifier {
    BertClassifierConfig::new(read_bert_config(checkpoint).unwrap(), n_classes)
        .with_pooling(Pooling::Mean)
        .init_pretrained(checkpoint, &mut init::rng(0), device)
        .unwrap()
}

/// The class names beside an adapter.
fn labels(dir: &Path) -> Vec<String> {
    serde_json::from_slice(&fs::read(dir.join("labels.json")).unwrap()).unwrap()
}

/// `model`'s logits on the fixture's sentences, tokenized by MiniLM's tokenizer as transformers
/// did (padded to the longest, truncated to the fixture's `max_length`).
fn logits(model: &BertClassifier, checkpoint: &Path, device: &Device) -> Vec<Vec<f32>> {
    let parity = parity();
    let max_length = parity["max_length"].as_u64().unwrap() as usize;
    let sentences: Vec<(&str, Option<&str>)> = parity["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s.as_str().unwrap(), None))
        .collect();
    let encoder = TextEncoder::from_file(&checkpoint.join(TOKENIZER_FILE), max_length).unwrap();
    let split = Split {
        inputs: encoder.encode(&sentences).unwrap(),
        labels: vec![0; sentences.len()],
    };
    let all: Vec<usize> = (0..sentences.len()).collect();
    let BatchInput::Tokens { ids, mask, type_ids } = split.batch(&all, device).input else {
        panic!("text gives tokens")
    };
    let logits = model.forward(ids, mask, Some(type_ids));
    let [rows, classes] = logits.dims();
    let values: Vec<f32> = logits.into_data().try_to_vec().unwrap();
    assert_eq!(values.len(), rows * classes);
    values.chunks(classes).map(<[f32]>::to_vec).collect()
}

fn assert_matches(ours: &[Vec<f32>], reference: &serde_json::Value, what: &str) {
    let reference: Vec<Vec<f32>> = serde_json::from_value(reference.clone()).unwrap();
    assert_eq!(ours.len(), reference.len(), "{what}");
    let mut gap = 0.0f32;
    for (a, b) in ours.iter().zip(&reference) {
        for (x, y) in a.iter().zip(b) {
            gap = gap.max((x - y).abs());
        }
    }
    eprintln!("{what}: max |difference| {gap:.2e}");
    assert!(gap <= TOLERANCE, "{what}: {ours:?} vs {reference:?} (gap {gap})");
}

#[test]
fn an_adapter_trained_here_gives_in_this_project_what_peft_computed_from_it() {
    let Some(checkpoint) = minilm() else { return };
    let device = Device::flex();
    let dir = fixtures().join("ours");
    let base = minilm_classifier(&checkpoint, labels(&dir).len(), &device);
    let (model, config) = peft::load(base, &dir).unwrap();
    assert_eq!(config.lora.rank, 4);
    assert_eq!(config.targets, ["query", "value"]);
    assert!(config.train_head, "the head is saved with the adapter");
    assert_matches(
        &logits(&model, &checkpoint, &device),
        &parity()["ours_in_peft"],
        "ours in PEFT",
    );
}

#[test]
fn an_adapter_peft_made_gives_here_what_it_gives_in_peft() {
    let Some(checkpoint) = minilm() else { return };
    let device = Device::flex();
    let dir = fixtures().join("peft-made");
    let base = minilm_classifier(&checkpoint, labels(&dir).len(), &device);
    let (model, config) = peft::load(base, &dir).unwrap();
    assert_eq!(config.lora.rank, 4);
    assert_eq!(config.targets, ["query", "key", "value", "output", "ffn_in", "ffn_out"]);
    assert_matches(
        &logits(&model, &checkpoint, &device),
        &parity()["peft_made_in_peft"],
        "PEFT's own adapter",
    );
}

#[test]
fn the_merged_checkpoint_gives_what_transformers_computed_from_it() {
    let Some(checkpoint) = minilm() else { return };
    let device = Device::flex();
    let dir = fixtures().join("ours");
    let labels = labels(&dir);
    let (adapted, _) = peft::load(minilm_classifier(&checkpoint, labels.len(), &device), &dir).unwrap();
    let merged = tempfile::tempdir().unwrap();
    let base_config: serde_json::Value =
        serde_json::from_slice(&fs::read(checkpoint.join("config.json")).unwrap()).unwrap();
    save_pretrained(&adapted, &base_config, &labels, merged.path()).unwrap();

    // Read back as a plain checkpoint: the encoder by this project's loader, the head by its
    // tensors (the loader leaves a checkpoint's classifier out).
    let mut model = minilm_classifier(merged.path(), labels.len(), &device);
    let bytes = fs::read(merged.path().join("model.safetensors")).unwrap();
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
    let weight: Tensor<2> = Tensor::from_data(tensor("classifier.weight"), &device);
    model.classifier.weight = Param::from_tensor(weight.transpose());
    model.classifier.bias = Some(Param::from_tensor(Tensor::from_data(
        tensor("classifier.bias"),
        &device,
    )));
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(merged.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(json["id2label"]["1"], labels[1].as_str());
    assert_matches(
        &logits(&model, &checkpoint, &device),
        &parity()["merged_in_transformers"],
        "the merged checkpoint in transformers",
    );
}

#[test]
fn the_readmes_peft_snippet_is_the_code_the_parity_script_runs() {
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("## Use the best adapter")
        .nth(1)
        .expect("the README's section");
    let snippet = section
        .split("```python")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a python block");
    let script = fs::read_to_string(repo_root().join("scripts/reference/peft_parity.py")).unwrap();
    let body = script
        .split("def peft_logits(base, adapter, texts):")
        .nth(1)
        .expect("peft_logits");
    let lines: Vec<&str> = snippet
        .lines()
        .map(str::trim)
        // Imports and the inputs' assignment are the snippet's own; the rest is the script's.
        .filter(|l| {
            !l.is_empty() && !l.starts_with("import") && !l.starts_with("from") && !l.starts_with("base, adapter")
        })
        .collect();
    assert!(lines.len() >= 5, "{snippet}");
    for line in lines {
        assert!(
            body.lines().any(|l| l.trim() == line),
            "README line not in the script's peft_logits: {line}"
        );
    }
}
