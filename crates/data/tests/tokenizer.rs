//! Tokenization with a real `tokenizer.json` matches transformers' fast tokenizer: the ids,
//! attention mask and segment ids of `crates/model/tests/fixtures/bert-reference-{minilm,mpnet}.json`
//! (written by `scripts/reference/bert_reference.py`): WordPiece with `[CLS] A [SEP] B [SEP]`, and
//! MPNet's `<s> A </s></s> B </s>`. Needs `scripts/fetch-data.sh`.

use std::path::PathBuf;

use loraplus_data::{Inputs, TOKENIZER_FILE, TextEncoder};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    inputs: Vec<Input>,
    max_length: usize,
    input_ids: Vec<Vec<i64>>,
    #[serde(default)]
    token_type_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<i64>>,
}

#[derive(Deserialize)]
struct Input {
    text: String,
    text_pair: Option<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn encoder(max_seq_len: usize) -> TextEncoder {
    encoder_of("all-MiniLM-L6-v2", max_seq_len)
}

fn encoder_of(checkpoint: &str, max_seq_len: usize) -> TextEncoder {
    let path = root().join("data").join(checkpoint).join(TOKENIZER_FILE);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-data.sh first",
        path.display()
    );
    TextEncoder::from_file(&path, max_seq_len).expect("tokenizer.json loads")
}

#[test]
fn minilm_tokenizer_matches_transformers() {
    tokenizer_matches_transformers("all-MiniLM-L6-v2", "minilm");
}

#[test]
fn mpnet_tokenizer_matches_transformers() {
    tokenizer_matches_transformers("all-mpnet-base-v2", "mpnet");
}

#[test]
fn a_byte_level_bpe_tokenizer_matches_transformers() {
    // The tiny RoBERTa's own tokenizer (scripts/reference/tiny_roberta.py), committed.
    let dir = root().join("crates/model/tests/fixtures/tiny-roberta");
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let texts: Vec<(&str, Option<&str>)> = reference
        .inputs
        .iter()
        .map(|i| (i.text.as_str(), i.text_pair.as_deref()))
        .collect();
    let encoder = TextEncoder::from_file(&dir.join(TOKENIZER_FILE), reference.max_length).unwrap();
    let Inputs::Tokens { ids, mask, .. } = encoder.encode(&texts).unwrap() else {
        panic!("text becomes tokens")
    };
    assert_eq!(
        ids,
        reference.input_ids.concat(),
        "<s> A </s></s> B </s>, padded with <pad>"
    );
    assert_eq!(mask, reference.attention_mask.concat());
}

fn tokenizer_matches_transformers(checkpoint: &str, fixture: &str) {
    let fixture = root().join(format!("crates/model/tests/fixtures/bert-reference-{fixture}.json"));
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let texts: Vec<(&str, Option<&str>)> = reference
        .inputs
        .iter()
        .map(|i| (i.text.as_str(), i.text_pair.as_deref()))
        .collect();
    let Inputs::Tokens {
        ids,
        mask,
        type_ids,
        seq_len,
    } = encoder_of(checkpoint, reference.max_length).encode(&texts).unwrap()
    else {
        panic!("text becomes tokens")
    };
    assert_eq!(seq_len, reference.input_ids[0].len());
    assert_eq!(ids, reference.input_ids.concat());
    assert_eq!(mask, reference.attention_mask.concat());
    assert_eq!(type_ids, reference.token_type_ids.concat());
}

#[test]
fn long_inputs_are_truncated_to_max_seq_len_with_special_tokens_kept() {
    let long = "word ".repeat(100);
    let Inputs::Tokens { ids, mask, seq_len, .. } = encoder(16).encode(&[(&long, None), ("short", None)]).unwrap()
    else {
        panic!("tokens")
    };
    assert_eq!(seq_len, 16);
    // [CLS] ... [SEP] for the long one (101 and 102 in BERT's vocabulary), then padding.
    assert_eq!((ids[0], ids[15]), (101, 102));
    assert_eq!(&mask[16..], &[1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(ids[19..32].iter().all(|id| *id == 0), "[PAD] is id 0");
}

mod text_tasks {
    use super::*;
    use loraplus_data::TextTask;

    fn task(train: &str, test: Option<&str>) -> TextTask {
        let fixture = |name: &str| root().join("crates/data/tests/fixtures").join(name);
        TextTask {
            train: fixture(train),
            test: test.map(fixture),
            format: None,
            text: "text".into(),
            text_pair: None,
            label: "label".into(),
            labels: None,
            skip_labels: Vec::new(),
            max_seq_len: 32,
            n_train: None,
            n_val: 2,
            n_test: Some(3),
            split_seed: 0,
        }
    }

    fn texts_of(split: &loraplus_data::Split) -> Vec<i64> {
        match &split.inputs {
            Inputs::Tokens { ids, .. } => ids.clone(),
            Inputs::Vectors { .. } => panic!("tokens"),
        }
    }

    #[test]
    fn held_out_splits_are_seeded_and_disjoint() {
        let encoder = encoder(32);
        let data = task("sentences.csv", None).load(&encoder).unwrap();
        assert_eq!(
            (data.train.len(), data.val.len(), data.test.len(), data.n_classes()),
            (7, 2, 3, 2)
        );
        let again = task("sentences.csv", None).load(&encoder).unwrap();
        assert_eq!(texts_of(&data.test), texts_of(&again.test), "same seed, same split");
        let other = TextTask {
            split_seed: 1,
            ..task("sentences.csv", None)
        }
        .load(&encoder)
        .unwrap();
        assert_ne!(
            texts_of(&data.test),
            texts_of(&other.test),
            "another seed, another split"
        );
        let subsample = TextTask {
            n_train: Some(4),
            ..task("sentences.csv", None)
        }
        .load(&encoder)
        .unwrap();
        assert_eq!(subsample.train.len(), 4);
    }

    #[test]
    fn a_text_pair_gets_segment_ids() {
        let data = TextTask {
            text: "premise".into(),
            text_pair: Some("hypothesis".into()),
            n_val: 1,
            n_test: None,
            ..task("pair.jsonl", Some("pair.jsonl"))
        }
        .load(&encoder(32))
        .unwrap();
        let Inputs::Tokens { type_ids, mask, .. } = &data.test.inputs else {
            panic!("tokens")
        };
        assert!(type_ids.contains(&1), "the second text is segment 1");
        assert!(type_ids.iter().zip(mask).all(|(t, m)| *t == 0 || *m == 1));
    }

    #[test]
    fn split_errors_name_the_file() {
        let error = TextTask {
            n_test: Some(10),
            ..task("sentences.csv", None)
        }
        .load(&encoder(32))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("sentences.csv") && error.contains("n_val + n_test = 12"),
            "{error}"
        );
        let error = TextTask {
            n_test: None,
            ..task("sentences.csv", None)
        }
        .load(&encoder(32))
        .unwrap_err()
        .to_string();
        assert!(error.contains("give n_test"), "{error}");
        let error = task("labels-train.csv", Some("labels-test.csv"))
            .load(&encoder(32))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("labels-test.csv:3") && error.contains("neutral"),
            "{error}"
        );
    }
}

#[test]
fn a_test_subsample_larger_than_the_test_file_names_the_test_file() {
    let fixtures = root().join("crates/data/tests/fixtures");
    let task = loraplus_data::TextTask {
        train: fixtures.join("sentences.csv"),
        test: Some(fixtures.join("good.csv")),
        format: None,
        text: "text".into(),
        text_pair: None,
        label: "label".into(),
        labels: Some(vec!["negative".into(), "positive".into(), "neg".into(), "pos".into()]),
        skip_labels: Vec::new(),
        max_seq_len: 32,
        n_train: None,
        n_val: 2,
        n_test: Some(50),
        split_seed: 0,
    };
    let error = task.load(&encoder(32)).unwrap_err().to_string();
    assert!(
        error.contains("good.csv") && error.contains("n_test = 50 but the file has 3"),
        "{error}"
    );
}
