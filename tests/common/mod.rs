//! What the end-to-end tests share: the binary, a tiny sweep, and ways to read its results.
#![allow(dead_code)] // Each test file uses its own part.

pub mod require;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_loraplus");

/// A small sweep: one MLP, pretrained on a teacher task, fine-tuned on two shifted tasks;
/// 2 eta_A x 3 ratios (1 added to [4, 16]) x 2 seeds, plus head-only baselines.
pub const TINY: &str = r#"
name = "tiny"
seeds = [0, 1]
top_k = 2

[grid]
eta_a = [1e-3, 1e-2]
ratio = [4, 16]

[train]
steps = 40
batch_size = 16
eval_interval = 10

[lora]
rank = 2
alpha = 4

[[task]]
name = "base"
kind = "teacher"
d_input = 8
n_classes = 3
teacher_width = 16
n_train = 400
n_val = 100
n_test = 100

[[task]]
name = "shift-a"
kind = "teacher"
d_input = 8
n_classes = 3
teacher_width = 16
shift_rank = 2
shift_scale = 2.0
n_train = 200
n_val = 100
n_test = 100

[[task]]
name = "shift-b"
kind = "teacher"
d_input = 8
n_classes = 3
teacher_width = 16
shift_rank = 1
shift_scale = 2.0
shift_seed = 5
n_train = 200
n_val = 100
n_test = 100

[[model]]
name = "mlp"
kind = "mlp"
hidden = [32, 32]
pretrain = { task = "base", steps = 150, lr = 3e-3, batch_size = 32 }
"#;

pub fn loraplus(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("the loraplus binary runs")
}

pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

pub fn sweep(config: &Path, out: &Path) -> Output {
    sweep_with_jobs(config, out, "2")
}

pub fn sweep_with_jobs(config: &Path, out: &Path, jobs: &str) -> Output {
    let output = loraplus(&[
        "sweep",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        jobs,
    ]);
    assert!(
        output.status.success(),
        "sweep failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A finished sweep of [`TINY`], as `(config, out)` in `dir`: the sweep runs once per test
/// binary, the first time a test asks, and every test gets its own copy of its directory.
pub fn tiny_sweep(dir: &Path) -> (PathBuf, PathBuf) {
    static SWEPT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let swept = SWEPT.get_or_init(|| {
        // Under the target folder's scratch space, which outlives the tests that copy it.
        let scratch = tempfile::Builder::new()
            .prefix("tiny-sweep-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let config = write_config(&scratch, "tiny.toml", TINY);
        sweep(&config, &scratch.join("out"));
        scratch.join("out")
    });
    let out = dir.join("out");
    copy_dir(swept, &out);
    (write_config(dir, "tiny.toml", TINY), out)
}

/// Copies the folder `from`, recursively, to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
}

pub fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect()
}

pub fn column(path: &Path, name: &str) -> usize {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("{name} column"))
}

/// `trial_id -> (status, val, test)` from a results.csv.
pub fn results(dir: &Path) -> std::collections::BTreeMap<String, (String, String, String)> {
    let path = dir.join("results.csv");
    let (status, val, test) = (
        column(&path, "status"),
        column(&path, "val_accuracy"),
        column(&path, "test_accuracy"),
    );
    csv_rows(&path)
        .iter()
        .map(|r| {
            (
                r[0].to_string(),
                (r[status].to_string(), r[val].to_string(), r[test].to_string()),
            )
        })
        .collect()
}

/// Whether a results.csv status is that of a trial that trained to the end (whether or not it
/// beat the majority class: a few steps of a tiny run often do not).
pub fn trained_to_the_end(status: &str) -> bool {
    status == "ok" || status == "no_learning"
}

/// The SHA-256 of `bytes`, in hex, as records name their adapters' weights.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn is_png(path: &Path) -> bool {
    fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000)
}

pub fn records(dir: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    fs::read_dir(dir.join("trials"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let record: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
            (record["trial_id"].as_str().unwrap().to_string(), record)
        })
        .collect()
}

/// Asserts that two records of trial `id` hold the same results: status, steps, and every
/// evaluation to one example in 10^4 (accuracies are counts) and mean losses to 1e-4 relative.
/// Runs that group trials differently (stacked, sharded, resumed) change only the order of
/// float sums.
pub fn assert_same_results(id: &str, a: &serde_json::Value, b: &serde_json::Value) {
    assert_eq!(a["status"], b["status"], "{id}");
    assert_eq!(a["steps_run"], b["steps_run"], "{id}");
    let (a_curve, b_curve) = (a["curve"].as_array().unwrap(), b["curve"].as_array().unwrap());
    assert_eq!(a_curve.len(), b_curve.len(), "{id}");
    for (p, q) in a_curve.iter().zip(b_curve) {
        for key in ["val_accuracy", "test_accuracy"] {
            let (x, y) = (p[key].as_f64().unwrap(), q[key].as_f64().unwrap());
            assert!((x - y).abs() < 1e-4, "{id} step {}: {key} {x} vs {y}", p["step"]);
        }
        if let (Some(x), Some(y)) = (p["train_loss"].as_f64(), q["train_loss"].as_f64()) {
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                "{id} step {}: loss {x} vs {y}",
                p["step"]
            );
        }
    }
}

/// Asserts that two sweep directories hold records of the same trials with the same results.
pub fn assert_same_sweep(a: &Path, b: &Path) {
    let (a, b) = (records(a), records(b));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same trials"
    );
    for (id, record) in &a {
        assert_same_results(id, record, &b[id]);
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A text sweep on a pretrained checkpoint: all-MiniLM-L6-v2 from `data/` (fetched by
/// `scripts/fetch-data.sh`) on a 12-sentence CSV, `{train}` being its path.
pub const TEXT: &str = r#"
name = "text"
[grid]
eta_a = [1e-3]
ratio = [4]
[train]
steps = 3
batch_size = 4
eval_interval = 3
[lora]
rank = 2
[[model]]
name = "minilm"
kind = "bert_checkpoint"
path = "{checkpoint}"
[[task]]
name = "sentences"
kind = "text"
train = "{train}"
label = "label"
max_seq_len = 16
n_val = 2
n_test = 3
"#;

pub fn text_config(train: &Path) -> String {
    let checkpoint = repo_root().join("data/all-MiniLM-L6-v2");
    assert!(
        checkpoint.join("model.safetensors").exists(),
        "{} is missing: run scripts/fetch-data.sh first",
        checkpoint.display()
    );
    TEXT.replace("{checkpoint}", checkpoint.to_str().unwrap())
        .replace("{train}", train.to_str().unwrap())
}
