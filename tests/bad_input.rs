//! Bad input, table-driven: every bad config, data file and checkpoint gives a clear error that
//! names what is wrong, exits with 1, and leaves the results already in the output folder
//! exactly as they were (and creates no folder that did not exist).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// Every file under `dir`, by path, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.insert(path.clone(), fs::read(&path).unwrap());
        }
    }
    files
}

/// A checkpoint folder like all-MiniLM-L6-v2's, with `changed` files replaced and the rest
/// linked to the real ones.
fn checkpoint_with(dir: &Path, name: &str, changed: &[(&str, Vec<u8>)]) -> PathBuf {
    let real = repo_root().join("data/all-MiniLM-L6-v2");
    let folder = dir.join(name);
    fs::create_dir_all(&folder).unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        match changed.iter().find(|(f, _)| *f == file) {
            Some((_, bytes)) => fs::write(folder.join(file), bytes).unwrap(),
            None => std::os::unix::fs::symlink(real.join(file), folder.join(file)).unwrap(),
        }
    }
    folder
}

/// `n` rows of `width` pixels and a label, as a pixel CSV.
fn pixel_csv(dir: &Path, name: &str, width: usize) -> PathBuf {
    let rows: Vec<String> = (0..40)
        .map(|i| {
            let pixels: Vec<String> = (0..width).map(|p| ((i * 31 + p * 7) % 256).to_string()).collect();
            format!("{},{}", pixels.join(","), i % 2)
        })
        .collect();
    write_config(dir, name, &(rows.join("\n") + "\n"))
}

#[test]
fn bad_input_is_named_and_never_touches_existing_results() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = repo_root().join("crates/data/tests/fixtures");
    let sentences = fixtures.join("sentences.csv");
    let text = text_config(&sentences);
    let real = repo_root().join("data/all-MiniLM-L6-v2");
    let config_json = fs::read_to_string(real.join("config.json")).unwrap();
    let mut safetensors_head = vec![0u8; 4096];
    std::io::Read::read_exact(
        &mut fs::File::open(real.join("model.safetensors")).unwrap(),
        &mut safetensors_head,
    )
    .unwrap();
    let with_checkpoint = |folder: &Path| text.replace(real.to_str().unwrap(), folder.to_str().unwrap());
    let images = format!(
        r#"
name = "vision"
[grid]
eta_a = [1e-3]
ratio = [4]
[train]
steps = 2
batch_size = 8
[lora]
rank = 6
[[model]]
name = "mlp"
kind = "mlp"
hidden = [8]
pretrain = {{ task = "source", steps = 2, batch_size = 8 }}
[[task]]
name = "source"
kind = "images"
train = "{}"
n_val = 5
n_test = 5
[[task]]
name = "target"
kind = "images"
train = "{}"
n_val = 5
n_test = 5
"#,
        pixel_csv(dir.path(), "source.csv", 4).display(),
        pixel_csv(dir.path(), "target.csv", 4).display()
    );

    // (what, config text, what the error must say)
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("malformed TOML", TINY.replace("[grid]", "[grid"), vec!["bad.toml:"]),
        (
            "unknown key",
            TINY.replace("top_k = 2", "top_k = 2\nlearning_rate = 3"),
            vec!["bad.toml:", "unknown field `learning_rate`"],
        ),
        (
            "unknown nested key",
            TINY.replace("steps = 40", "steps = 40\nstep_size = 2"),
            vec!["bad.toml:", "unknown field `step_size`"],
        ),
        (
            "wrong type",
            TINY.replace("steps = 40", "steps = \"forty\""),
            vec!["bad.toml:", "steps = \"forty\""],
        ),
        (
            "negative rate",
            TINY.replace("eta_a = [1e-3, 1e-2]", "eta_a = [1e-3, -1e-2]"),
            vec!["bad.toml:", "-0.01 is not allowed"],
        ),
        (
            "zero rate",
            TINY.replace("eta_a = [1e-3, 1e-2]", "eta_a = [0, 1e-2]"),
            vec!["bad.toml:", "`grid.eta_a`: 0 is not allowed"],
        ),
        (
            "zero ratio",
            TINY.replace("ratio = [4, 16]", "ratio = [0, 16]"),
            vec!["bad.toml:", "`grid.ratio`: 0 is not allowed"],
        ),
        (
            "negative ratio",
            TINY.replace("ratio = [4, 16]", "ratio = [-4, 16]"),
            vec!["bad.toml:", "`grid.ratio`: -4 is not allowed"],
        ),
        (
            "empty grid",
            TINY.replace("ratio = [4, 16]", "ratio = []"),
            vec!["bad.toml:", "`grid.ratio`: the grid is empty"],
        ),
        (
            "empty seeds",
            TINY.replace("seeds = [0, 1]", "seeds = []"),
            vec!["bad.toml:", "`seeds`: the list is empty"],
        ),
        (
            "zero rank",
            TINY.replace("\nrank = 2", "\nrank = 0"),
            vec!["bad.toml:", "`lora.rank`: must be at least 1"],
        ),
        (
            "rank over the layer size",
            TINY.replace("\nrank = 2", "\nrank = 64"),
            vec!["bad.toml:", "rank 64 is too large"],
        ),
        (
            "rank over the size of a layer read from image files",
            images.clone(),
            vec![
                "`lora.rank`",
                "rank 6 is too large for layer `input` (4 -> 8)",
                "task `source`",
            ],
        ),
        (
            "zero group size",
            TINY.replace("top_k = 2", "top_k = 2\ngroup_size = 0"),
            vec!["bad.toml:", "`group_size`: must be `auto` or at least 1"],
        ),
        (
            "no steps",
            TINY.replace("steps = 40\n", ""),
            vec!["bad.toml:", "give either `steps` or `epochs`"],
        ),
        (
            "beta out of range",
            TINY.replace("steps = 40", "steps = 40\nbeta_2 = 1.5"),
            vec!["bad.toml:", "`train.beta_2`: 1.5 is not allowed"],
        ),
        (
            "unknown pretrain task",
            TINY.replace("task = \"base\"", "task = \"nope\""),
            vec!["bad.toml:", "unknown task `nope`"],
        ),
        (
            "unknown target",
            TINY.replace("hidden = [32, 32]", "hidden = [32, 32]\ntargets = [\"query\"]"),
            vec!["bad.toml:", "unknown LoRA target `query`"],
        ),
        (
            "missing data file",
            text.replace(sentences.to_str().unwrap(), "/nonexistent/train.csv"),
            vec!["/nonexistent/train.csv"],
        ),
        (
            "missing checkpoint",
            with_checkpoint(Path::new("/nonexistent/minilm")),
            vec!["/nonexistent/minilm/config.json"],
        ),
        (
            "empty dataset",
            text.replace(
                sentences.to_str().unwrap(),
                fixtures.join("empty.csv").to_str().unwrap(),
            ),
            vec!["empty.csv: no examples"],
        ),
        (
            "unlabeled dataset (no label column)",
            text.replace(
                sentences.to_str().unwrap(),
                fixtures.join("missing-column.csv").to_str().unwrap(),
            ),
            vec!["missing-column.csv:1: no column `text`"],
        ),
        (
            "unlabeled rows (empty label)",
            text.replace(
                sentences.to_str().unwrap(),
                fixtures.join("missing-value.csv").to_str().unwrap(),
            ),
            vec!["missing-value.csv:"],
        ),
        (
            "a training file of one label",
            text.replace(
                sentences.to_str().unwrap(),
                fixtures.join("one-label.csv").to_str().unwrap(),
            ),
            vec![
                "task `sentences`",
                "one-label.csv: every training example has label `pos` in column `label`",
            ],
        ),
        (
            "a pair task whose second column is missing",
            text.replace("label = \"label\"", "label = \"label\"\ntext_pair = \"hypothesis\""),
            vec!["sentences.csv:1: no column `hypothesis`"],
        ),
        (
            "text that is not UTF-8",
            text.replace(
                sentences.to_str().unwrap(),
                fixtures.join("latin1.csv").to_str().unwrap(),
            ),
            vec!["latin1.csv:"],
        ),
        (
            "corrupted safetensors",
            with_checkpoint(&checkpoint_with(
                dir.path(),
                "truncated",
                &[("model.safetensors", safetensors_head.clone())],
            )),
            vec!["truncated/model.safetensors"],
        ),
        (
            "corrupted tokenizer",
            with_checkpoint(&checkpoint_with(
                dir.path(),
                "bad-tokenizer",
                &[("tokenizer.json", b"{\"version\": ".to_vec())],
            )),
            vec!["bad-tokenizer/tokenizer.json", "not a Hugging Face tokenizer.json"],
        ),
        (
            "tokenizer and model vocabularies differ",
            with_checkpoint(&checkpoint_with(
                dir.path(),
                "small-vocab",
                &[(
                    "config.json",
                    config_json
                        .replace("\"vocab_size\": 30522", "\"vocab_size\": 1000")
                        .into_bytes(),
                )],
            )),
            vec![
                "small-vocab/tokenizer.json gives token id",
                "vocab_size = 1000",
                "does not belong to this model",
            ],
        ),
    ];

    // Results already there: a finished sweep, which no bad run may change.
    let (_, existing) = tiny_sweep(&dir.path().join("existing"));
    let before = snapshot(&existing);
    // Two cases at a time (each its own folder), one per core: every case is a few processes
    // that load a checkpoint or pretrain nothing and fail.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some((what, text, messages)) =
                    cases.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    let case = dir.path().join(what.replace(' ', "-"));
                    fs::create_dir_all(&case).unwrap();
                    let config = write_config(&case, "bad.toml", text);
                    let fresh = case.join("fresh");
                    for out in [&existing, &fresh] {
                        let output = loraplus(&["sweep", config.to_str().unwrap(), "--out", out.to_str().unwrap()]);
                        let stderr = String::from_utf8_lossy(&output.stderr);
                        assert_eq!(output.status.code(), Some(1), "{what}: exit code\n{stderr}");
                        for message in messages {
                            assert!(stderr.contains(message), "{what}: `{message}` not in:\n{stderr}");
                        }
                    }
                    assert!(!fresh.exists(), "{what}: a new output folder was created");
                }
            });
        }
    });
    assert!(snapshot(&existing) == before, "the existing results changed");

    // A missing config file.
    let output = loraplus(&["plan", dir.path().join("missing.toml").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml: cannot read the config"));
}
