//! `loraplus export` and `predict` end to end on all-MiniLM-L6-v2 (fetched by
//! `scripts/fetch-data.sh`): the best adapter exported and its test accuracy reproduced, and each
//! bad input a named error that writes nothing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// Eight held-out sentences, used whole as the test split.
const TEST: &str = "label,text
pos,Charming from the first scene.
neg,Nothing works here.
pos,A gem.
neg,Boring and slow.
pos,Funny and tender.
neg,An ugly film.
pos,Superb acting.
neg,I fell asleep.
";

/// A finished text sweep of MiniLM on `sentences.csv`, its test split the whole of [`TEST`]:
/// `(dir, test file)`.
fn text_sweep(dir: &Path) -> (PathBuf, PathBuf) {
    let test = write_config(dir, "test.csv", TEST);
    let train = repo_root().join("crates/data/tests/fixtures/sentences.csv");
    let text = text_config(&train).replace("n_test = 3\n", &format!("test = \"{}\"\n", test.display()));
    let config = write_config(dir, "text.toml", &text);
    let out = dir.join("out");
    sweep(&config, &out);
    (out, test)
}

/// The record of a trial that saved an adapter.
fn adapter_trial(out: &Path) -> (String, serde_json::Value) {
    records(out)
        .into_iter()
        .find(|(_, r)| r["adapter_sha256"].is_string())
        .expect("an adapter trial")
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_exported_adapter_predicts_its_trials_test_split_to_the_recorded_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let (out, test) = text_sweep(dir.path());
    let (id, record) = adapter_trial(&out);
    let export = dir.path().join("export");
    let output = loraplus(&[
        "export",
        out.to_str().unwrap(),
        "--out",
        export.to_str().unwrap(),
        "--trial",
        &id,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let folder = export.join(format!("trial-{id}"));
    for file in [
        "adapter_model.safetensors",
        "adapter_config.json",
        "labels.json",
        "trial.json",
        "README.md",
    ] {
        assert!(folder.join(file).is_file(), "{file}");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(folder.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["task_type"], "SEQ_CLS");
    assert_eq!(config["modules_to_save"], serde_json::json!(["classifier"]));
    let base = PathBuf::from(config["base_model_name_or_path"].as_str().unwrap());
    assert!(base.is_absolute() && base.join("config.json").is_file(), "{base:?}");
    let card = fs::read_to_string(folder.join("README.md")).unwrap();
    assert!(
        card.contains(&format!("Trial `{id}`")) && card.contains("[\"neg\", \"pos\"]"),
        "{card}"
    );

    let predictions = dir.path().join("predictions.csv");
    let output = loraplus(&[
        "predict",
        folder.to_str().unwrap(),
        test.to_str().unwrap(),
        "--out",
        predictions.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let recorded = record["accuracy"]["final_test"].as_f64().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        printed.contains(&format!("accuracy {recorded:.4} (")),
        "recorded {recorded}: {printed}"
    );
    let rows = csv_rows(&predictions);
    assert_eq!(rows.len(), 8, "one row per example");
    let correct = rows.iter().filter(|r| r[1] == r[2]).count();
    assert_eq!(correct as f64 / 8.0, recorded, "exactly the recorded test accuracy");
    for row in &rows {
        let p: f64 = row[3].parse::<f64>().unwrap() + row[4].parse::<f64>().unwrap();
        assert!((p - 1.0).abs() < 1e-5, "probabilities sum to 1: {row:?}");
    }

    // The trial's own folder in the sweep predicts the same.
    let again = dir.path().join("again.csv");
    let trial_dir = out.join("trials").join(&id);
    let output = loraplus(&[
        "predict",
        trial_dir.to_str().unwrap(),
        test.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fs::read(&again).unwrap(), fs::read(&predictions).unwrap());

    // Unlabelled text is classified too, without an accuracy.
    let unlabelled = write_config(dir.path(), "unlabelled.csv", "text\nA gem.\nBoring.\n");
    let output = loraplus(&["predict", folder.to_str().unwrap(), unlabelled.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("no accuracy"));
    assert_eq!(csv_rows(&dir.path().join("unlabelled.predictions.csv")).len(), 2);
}

#[test]
fn bad_exports_and_predictions_are_named_errors_that_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (out, test) = text_sweep(dir.path());
    let (id, _) = adapter_trial(&out);
    let export = dir.path().join("export");
    let fails = |args: &[&str], message: &str, nothing_at: &Path| {
        let output = loraplus(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(message),
            "{args:?}: `{message}` not in {}",
            stderr(&output)
        );
        assert!(!nothing_at.exists(), "{args:?} wrote {}", nothing_at.display());
    };
    let empty = dir.path().join("empty");
    fs::create_dir_all(empty.join("trials")).unwrap();
    fails(
        &["export", empty.to_str().unwrap(), "--out", export.to_str().unwrap()],
        "holds no finished trial records",
        &export,
    );
    fails(
        &[
            "export",
            out.to_str().unwrap(),
            "--out",
            export.to_str().unwrap(),
            "--trial",
            "0123456789abcdef",
        ],
        "no finished trial `0123456789abcdef`",
        &export,
    );
    let head_only = records(&out)
        .into_iter()
        .find(|(_, r)| r["spec"]["method"] == "head_only")
        .unwrap()
        .0;
    fails(
        &[
            "export",
            out.to_str().unwrap(),
            "--out",
            export.to_str().unwrap(),
            "--trial",
            &head_only,
        ],
        "saved no adapter",
        &export,
    );

    let good = loraplus(&[
        "export",
        out.to_str().unwrap(),
        "--out",
        export.to_str().unwrap(),
        "--trial",
        &id,
    ]);
    assert!(good.status.success(), "{}", stderr(&good));
    let folder = export.join(format!("trial-{id}"));
    let predictions = dir.path().join("predictions.csv");
    let no_text = write_config(dir.path(), "no-text.csv", "label,review\npos,A gem.\n");
    fails(
        &[
            "predict",
            folder.to_str().unwrap(),
            no_text.to_str().unwrap(),
            "--out",
            predictions.to_str().unwrap(),
        ],
        "no-text.csv:1: no column `text`",
        &predictions,
    );

    // The base checkpoint moved away, or replaced by one of another shape.
    let record_path = folder.join("trial.json");
    let record: serde_json::Value = serde_json::from_slice(&fs::read(&record_path).unwrap()).unwrap();
    let with_base = |path: &str| {
        let mut record = record.clone();
        record["spec"]["model"]["path"] = path.into();
        fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
    };
    with_base("/nonexistent/minilm");
    fails(
        &[
            "predict",
            folder.to_str().unwrap(),
            test.to_str().unwrap(),
            "--out",
            predictions.to_str().unwrap(),
        ],
        "the base checkpoint /nonexistent/minilm of trial",
        &predictions,
    );
    let other = tiny_checkpoint(dir.path());
    with_base(other.to_str().unwrap());
    fails(
        &[
            "predict",
            folder.to_str().unwrap(),
            test.to_str().unwrap(),
            "--out",
            predictions.to_str().unwrap(),
        ],
        "does not fit the base checkpoint",
        &predictions,
    );
}

/// A BERT checkpoint of another width than MiniLM's (hidden size 16), with MiniLM's tokenizer.
fn tiny_checkpoint(dir: &Path) -> PathBuf {
    use loraplus_model::models::{BertClassifierConfig, BertConfig, save_pretrained};
    let folder = dir.join("tiny-bert");
    let config = BertConfig::new(30522, 16, 1, 2, 32);
    let model =
        BertClassifierConfig::new(config, 2).init(&mut loraplus_model::init::rng(0), &burn::tensor::Device::flex());
    let base_config = serde_json::json!({
        "model_type": "bert", "vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 512
    });
    save_pretrained(&model, &base_config, &["neg".into(), "pos".into()], &folder).unwrap();
    let minilm = repo_root().join("data/all-MiniLM-L6-v2");
    fs::copy(minilm.join("tokenizer.json"), folder.join("tokenizer.json")).unwrap();
    folder
}
