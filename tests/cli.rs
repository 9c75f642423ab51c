//! End-to-end tests of the `loraplus` command line, on tiny configs.

mod common;

use std::fs;

use common::*;

#[test]
fn tiny_sweep_writes_every_report_with_the_right_row_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = tiny_sweep(dir.path());

    let plan = loraplus(&["plan", config.to_str().unwrap()]);
    assert!(plan.status.success());
    let plan = String::from_utf8(plan.stdout).unwrap();
    // 2 pairs x 2 seeds x 2 eta_A x (3 ratios + 1 baseline) = 32 trials.
    assert!(plan.starts_with("tiny: 32 trials"), "{plan}");
    assert!(
        plan.contains("mlp/shift-a: 12 adapter trials + 4 head-only baselines"),
        "{plan}"
    );

    let summary = fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(summary.contains("median log2(eta_B / eta_A)"), "{summary}");

    let results = csv_rows(&out.join("results.csv"));
    assert_eq!(results.len(), 32, "one row per trial");
    let curve_points = 40 / 10 + 1;
    assert_eq!(
        csv_rows(&out.join("curves.csv")).len(),
        32 * curve_points,
        "an eval point every 10 steps plus the end"
    );
    let best = csv_rows(&out.join("best_ratios.csv"));
    assert_eq!(best.len(), 2 * 2, "top-2 cells of 2 pairs");
    for pair in ["mlp_shift-a", "mlp_shift-b"] {
        assert!(is_png(&out.join(format!("heatmap_{pair}.png"))), "heatmap of {pair}");
        assert!(is_png(&out.join(format!("curves_{pair}.png"))), "curves of {pair}");
    }
    assert!(is_png(&out.join("ratio_distribution.png")));
    assert_eq!(records(&out).len(), 32);

    // Every adapter trial that trained to the end keeps its adapter, in PEFT's layout, whose
    // weights the record's digest names; head-only baselines have none.
    let mut adapters = 0;
    for (id, record) in records(&out) {
        let dir = out.join("trials").join(&id);
        if record["spec"]["method"] == "head_only" || record["status"] != "ok" {
            assert!(!dir.exists() && record["adapter_sha256"].is_null(), "{id}");
            continue;
        }
        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("adapter_config.json")).unwrap()).unwrap();
        assert_eq!(config["peft_type"], "LORA");
        assert_eq!(config["r"], 2);
        assert_eq!(config["modules_to_save"], serde_json::json!(["head"]));
        let labels: Vec<String> = serde_json::from_slice(&fs::read(dir.join("labels.json")).unwrap()).unwrap();
        assert_eq!(labels, ["0", "1", "2"]);
        let weights = fs::read(dir.join("adapter_model.safetensors")).unwrap();
        assert_eq!(
            record["adapter_sha256"].as_str(),
            Some(sha256(&weights).as_str()),
            "{id}"
        );
        adapters += 1;
    }
    assert_eq!(adapters, 24, "2 pairs x 2 seeds x 2 eta_A x 3 ratios");

    // Every record carries its config, seed, code version and backend.
    let record = records(&out).into_values().next().unwrap();
    assert!(record["spec"]["seed"].is_u64() && record["spec"]["train"]["steps"] == 40);
    assert_eq!(record["provenance"]["backend"], "flex");
    let accuracy = &record["accuracy"];
    assert!(accuracy["best_test"].as_f64().unwrap() >= accuracy["final_test"].as_f64().unwrap());
    assert!(!record["provenance"]["code_version"].as_str().unwrap().is_empty());

    // The report is rebuilt from the records alone, identically.
    let before = fs::read(out.join("best_ratios.csv")).unwrap();
    let report = loraplus(&["report", out.to_str().unwrap()]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    assert_eq!(fs::read(out.join("best_ratios.csv")).unwrap(), before);
}

#[test]
fn adapters_beat_the_frozen_base_on_the_shifted_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = tiny_sweep(dir.path());
    let path = out.join("results.csv");
    let (method, task, test) = (
        column(&path, "method"),
        column(&path, "task"),
        column(&path, "test_accuracy"),
    );
    for shift in ["shift-a", "shift-b"] {
        let best = |wanted: &str| {
            csv_rows(&path)
                .iter()
                .filter(|r| &r[method] == wanted && &r[task] == shift)
                .map(|r| r[test].parse::<f64>().unwrap())
                .fold(0.0, f64::max)
        };
        let (lora, head_only) = (best("lora"), best("head_only"));
        assert!(
            lora > head_only + 0.05,
            "{shift}: adapters {lora} vs head only {head_only}"
        );
    }
}

#[test]
fn an_absurd_learning_rate_is_recorded_as_diverged_and_the_sweep_completes() {
    let dir = tempfile::tempdir().unwrap();
    let text = TINY
        .replace("eta_a = [1e-3, 1e-2]", "eta_a = [1e-2, 1e4]")
        .replace("seeds = [0, 1]", "seeds = [0]");
    let config = write_config(dir.path(), "tiny.toml", &text);
    let out = dir.path().join("out");
    sweep(&config, &out);
    let path = out.join("results.csv");
    let (status, eta) = (column(&path, "status"), column(&path, "eta_a"));
    let rows = csv_rows(&path);
    let absurd: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[eta] == "10000").collect();
    assert!(!absurd.is_empty());
    assert!(absurd.iter().any(|r| &r[status] == "diverged"), "eta_A = 1e4 diverges");
    for row in rows.iter().filter(|r| &r[status] == "diverged") {
        assert!(
            !out.join("trials").join(&row[0]).exists(),
            "a diverged trial saves no adapter"
        );
    }
    assert!(
        rows.iter()
            .filter(|r| &r[eta] == "0.01")
            .all(|r| trained_to_the_end(&r[status])),
        "eta_A = 0.01 does not diverge"
    );
    assert!(is_png(&out.join("heatmap_mlp_shift-a.png")));
}

#[test]
fn a_list_valued_setting_becomes_an_axis_and_splits_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let text = TINY
        .replace("seeds = [0, 1]", "seeds = [0]")
        .replace("eta_a = [1e-3, 1e-2]", "eta_a = [1e-2]")
        .replace("\nrank = 2", "\nrank = [2, 4]")
        .replace("top_k = 2", "top_k = 2\nsave_adapters = \"none\"");
    let config = write_config(dir.path(), "tiny.toml", &text);
    let plan = String::from_utf8(loraplus(&["plan", config.to_str().unwrap()]).stdout).unwrap();
    // Per pair: 2 ranks x (ratios 1, 4, 16) + 1 head-only baseline (it has no rank).
    assert!(
        plan.contains("mlp/shift-a: 6 adapter trials + 1 head-only baselines"),
        "{plan}"
    );
    assert!(plan.contains("other axes: rank"), "{plan}");
    let out = dir.path().join("out");
    sweep(&config, &out);
    let best = out.join("best_ratios.csv");
    let axes = column(&best, "axes");
    let labels: std::collections::BTreeSet<String> = csv_rows(&best).iter().map(|r| r[axes].to_string()).collect();
    assert_eq!(labels.into_iter().collect::<Vec<_>>(), ["rank=2", "rank=4"]);
    assert!(is_png(&out.join("heatmap_mlp_shift-a_rank-2.png")));
    let files = fs::read_dir(out.join("trials")).unwrap().map(|e| e.unwrap().path());
    assert!(
        files.into_iter().all(|p| p.extension().is_some_and(|e| e == "json")),
        "save_adapters = \"none\""
    );
    assert!(is_png(&out.join("heatmap_mlp_shift-a_rank-4.png")));
}

/// A tiny BERT on token sequences, with dropout in the encoder and the adapters.
const TINY_BERT: &str = r#"
name = "tiny-bert"
seeds = [0]
[grid]
eta_a = [1e-3]
ratio = [16]
baseline = false
[train]
steps = 30
batch_size = 8
eval_interval = 10
[lora]
rank = 2
dropout = 0.1
[[task]]
name = "tokens"
kind = "bag_of_tokens"
vocab = 30
seq_len = 8
n_classes = 2
n_train = 200
n_val = 40
n_test = 40
[[task]]
name = "tokens-shift"
kind = "bag_of_tokens"
vocab = 30
seq_len = 8
n_classes = 2
shift_rank = 1
shift_scale = 1.0
n_train = 100
n_val = 40
n_test = 40
[[model]]
name = "bert"
kind = "bert"
hidden_size = 16
num_hidden_layers = 1
num_attention_heads = 2
intermediate_size = 32
dropout = 0.1
pretrain = { task = "tokens", steps = 30, lr = 1e-3, batch_size = 16 }
"#;

#[test]
fn trials_with_dropout_are_reproducible_whatever_the_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "bert.toml", TINY_BERT);
    let run = |name: &str, jobs: &str| {
        let out = dir.path().join(name);
        sweep_with_jobs(&config, &out, jobs);
        let path = out.join("curves.csv");
        fs::read_to_string(path).unwrap()
    };
    let (one, two, again) = (run("one", "1"), run("two", "2"), run("again", "2"));
    assert_eq!(two, again, "same config, same numbers");
    assert_eq!(one, two, "the number of parallel trials does not change them");
}

#[test]
fn a_pretrained_checkpoint_fine_tunes_on_a_text_file() {
    let dir = tempfile::tempdir().unwrap();
    let train = repo_root().join("crates/data/tests/fixtures/sentences.csv");
    let config = write_config(dir.path(), "text.toml", &text_config(&train));
    let out = dir.path().join("out");
    sweep(&config, &out);
    let rows = results(&out);
    assert_eq!(rows.len(), 3, "LoRA, LoRA+ and the head-only baseline");
    assert!(
        rows.values().all(|(status, _, _)| trained_to_the_end(status)),
        "{rows:?}"
    );
    // The adapters sit on MiniLM's query and value projections: 6 layers x 2 x (384 x 2 + 2 x 384).
    let record: serde_json::Value = fs::read_dir(out.join("trials"))
        .unwrap()
        .map(|e| serde_json::from_slice::<serde_json::Value>(&fs::read(e.unwrap().path()).unwrap()).unwrap())
        .find(|r| r["spec"]["method"] == "lora")
        .unwrap();
    let head = 384 * 2 + 2;
    assert_eq!(record["trainable_params"], 6 * 2 * (384 * 2 + 2 * 384) + head);
}

#[test]
fn an_image_transfer_pair_pretrains_on_one_file_and_fine_tunes_on_another() {
    let dir = tempfile::tempdir().unwrap();
    // Two small "image" sets of 16 pixels whose labels follow different pixel sums.
    let images = |name: &str, offset: usize| {
        let rows: Vec<String> = (0..120)
            .map(|i| {
                let pixels: Vec<usize> = (0..16).map(|p| (i * 37 + p * 11 + offset) % 256).collect();
                let label = (pixels[..8].iter().sum::<usize>() / 8 + offset) % 3;
                format!(
                    "{},{label}",
                    pixels.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        write_config(dir.path(), name, &(rows.join("\n") + "\n"))
    };
    let (source, target) = (images("source.csv", 0), images("target.csv", 1));
    let config = format!(
        r#"
name = "vision"
[grid]
eta_a = [1e-3]
ratio = [4]
[train]
steps = 5
batch_size = 8
eval_interval = 5
[lora]
rank = 2
[[model]]
name = "mlp"
kind = "mlp"
hidden = [16]
pretrain = {{ task = "source", steps = 10, batch_size = 8 }}
[[task]]
name = "source"
kind = "images"
train = "{}"
n_val = 10
n_test = 10
[[task]]
name = "target"
kind = "images"
train = "{}"
n_val = 10
n_test = 10
"#,
        source.display(),
        target.display()
    );
    let config = write_config(dir.path(), "vision.toml", &config);
    let out = dir.path().join("out");
    let output = sweep(&config, &out);
    let rows = results(&out);
    assert_eq!(rows.len(), 3, "only `target` is a downstream task");
    assert!(
        rows.values().all(|(status, _, _)| trained_to_the_end(status)),
        "{rows:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("task `source`: 100 train / 10 val / 10 test examples, 3 classes"),
        "{stderr}"
    );
}

/// `trial_id -> record` of every trial record in `dir`.
#[test]
fn stacked_trials_match_the_same_trials_run_one_by_one() {
    // A BERT with dropout and adapters on attention and embeddings, an MLP, head-only baselines,
    // and eta_A = 1e4, which diverges inside a group of healthy trials.
    let text = TINY_BERT
        .replace("eta_a = [1e-3]", "eta_a = [1e-3, 1e-2, 1e4]")
        .replace("ratio = [16]", "ratio = [4, 16]")
        .replace("baseline = false", "baseline = true")
        .replace(
            "dropout = 0.1\npretrain",
            "dropout = 0.1\ntargets = [\"query\", \"value\", \"word_embeddings\"]\npretrain",
        );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "bert.toml", &text);
    let run = |name: &str, group_size: &str| {
        let out = dir.path().join(name);
        let args = ["sweep", config.to_str().unwrap(), "--out", out.to_str().unwrap()];
        let output = loraplus(&[&args[..], &["--jobs", "1", "--group-size", group_size]].concat());
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        records(&out)
    };
    let (alone, stacked) = (run("alone", "1"), run("stacked", "auto"));
    assert_eq!(alone.len(), 12, "9 adapter trials and 3 baselines");
    assert_eq!(alone.keys().collect::<Vec<_>>(), stacked.keys().collect::<Vec<_>>());
    for (id, a) in &alone {
        let s = &stacked[id];
        assert_eq!(a["provenance"]["group_size"], 1);
        let group_size = s["provenance"]["group_size"].as_u64().unwrap();
        assert!(group_size > 1, "{id} ran stacked");
        let absurd = a["spec"]["eta_a"].as_f64() == Some(1e4);
        assert_eq!(a["status"] == "diverged", absurd, "{id}: only eta_A = 1e4 diverges");
        assert_same_results(id, a, s);
    }
}

#[test]
fn bench_times_one_by_one_and_stacked_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "tiny.toml", TINY);
    let work = dir.path().join("bench");
    let args = [
        "bench",
        config.to_str().unwrap(),
        "--members",
        "3",
        "--steps",
        "5",
        "--rounds",
        "2",
    ];
    let output = loraplus(&[&args[..], &["--out", work.to_str().unwrap()]].concat());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("3 trials x 5 steps of batch 16"), "{stdout}");
    for line in ["one by one:", "stacked:", "speed-up:"] {
        assert!(stdout.contains(line), "{line} in {stdout}");
    }
    let unknown = loraplus(&[&args[..], &["--model", "nope"]].concat());
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no adapter trials (of that model)"));
}

#[test]
fn an_adaptive_sweep_extends_a_grid_that_misses_the_optimum_until_it_is_inside() {
    // eta_A 1e-4 and 3e-4 are far too small for 40 steps: nothing learns on the first grid.
    let text = TINY
        .replace("seeds = [0, 1]", "seeds = [0, 1]\npairs = [[\"mlp\", \"shift-a\"]]")
        .replace("eta_a = [1e-3, 1e-2]", "eta_a = [1e-4, 3e-4]")
        .replace("ratio = [4, 16]", "ratio = [4, 16]\nbaseline = false")
        .replace("[train]", "[adaptive]\nmax_rounds = 8\n\n[train]");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "adaptive.toml", &text);
    let out = dir.path().join("out");
    let plan = loraplus(&["plan", config.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("stages: grid 12 (further stages are planned"));

    let summary = String::from_utf8_lossy(&sweep(&config, &out).stdout).into_owned();
    let rounds: usize = summary
        .split("the grid was extended in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("the report says how many extensions it took:\n{summary}"));
    assert!(rounds >= 1, "{summary}");
    assert!(
        !summary.contains("the best cell is on the grid"),
        "the optimum ends inside the grid:\n{summary}"
    );
    let best = csv_rows(&out.join("best_ratios.csv"));
    let (eta, edges) = (
        column(&out.join("best_ratios.csv"), "eta_a"),
        column(&out.join("best_ratios.csv"), "grid_edges"),
    );
    assert!(
        best[0][eta].parse::<f64>().unwrap() > 3e-4,
        "found beyond the first grid"
    );
    assert_eq!(&best[0][edges], "", "and not on an edge");

    // The stages are replayed from the records: resuming runs nothing and plans nothing new.
    let again = sweep(&config, &out);
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 to run"));
    let planned = loraplus(&["plan", config.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let planned = String::from_utf8_lossy(&planned.stdout);
    assert!(planned.contains(&format!("extension {rounds} ")), "{planned}");
    let all = records(&out).len();
    assert_eq!(all, results(&out).len());

    // Merging keeps the extension trials: they are trials of the sweep, planned from its records.
    let merged = dir.path().join("merged");
    let output = loraplus(&["merge", out.to_str().unwrap(), "--out", merged.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&format!("merged {all} trial records (0 missing)")),
        "{text}"
    );
}

#[test]
fn a_resumed_sweep_runs_a_pairs_planned_extension_before_the_next_pairs_grid() {
    // Nothing learns on either pair's first grid, so both are extended.
    let text = TINY
        .replace("eta_a = [1e-3, 1e-2]", "eta_a = [1e-4, 3e-4]")
        .replace("ratio = [4, 16]", "ratio = [4, 16]\nbaseline = false")
        .replace("[train]", "[adaptive]\nmax_rounds = 1\n\n[train]");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // A first run (stopped, say, at a session's end) got through the first pair's grid only.
    let first_pair = text.replace("seeds = [0, 1]", "seeds = [0, 1]\npairs = [[\"mlp\", \"shift-a\"]]");
    let first_pair = first_pair.replace("[adaptive]", "[adaptive]\nenabled = false");
    let first = write_config(dir.path(), "first.toml", &first_pair);
    assert!(sweep_with_jobs(&first, &out, "1").status.success());
    // The whole sweep resumes; one trial at a time, its log lists the trials in the order they ran.
    let config = write_config(dir.path(), "adaptive.toml", &text);
    let output = sweep_with_jobs(&config, &out, "1");
    let log = String::from_utf8_lossy(&output.stderr);
    let order: Vec<(&str, f64)> = log
        .lines()
        .filter(|l| l.starts_with('['))
        .filter_map(|l| {
            let pair = l.split(' ').nth(2)?;
            let eta_a = l.split("eta_A ").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((pair, eta_a))
        })
        .collect();
    let split = order
        .iter()
        .position(|(pair, _)| *pair != "mlp/shift-a")
        .unwrap_or_else(|| panic!("the first pair is extended, then the second pair runs:\n{log}"));
    let (first, second) = order.split_at(split);
    assert!(
        !first.is_empty() && first.iter().all(|(_, eta_a)| *eta_a > 3e-4),
        "the first pair's extension runs first:\n{log}"
    );
    // 2 eta_A x 3 ratios x 2 seeds on the second pair's grid, then its own extension.
    assert!(second.iter().all(|(pair, _)| *pair == "mlp/shift-b"), "{log}");
    assert!(
        second.len() > 12 && second[..12].iter().all(|(_, eta_a)| *eta_a <= 3e-4),
        "{log}"
    );
}

#[test]
fn toy_widths_get_a_width_scaling_fit_and_gains_compare_ratio_16() {
    let dir = tempfile::tempdir().unwrap();
    let models = r#"
[[model]]
name = "toy64"
kind = "toy"
width = 64
pretrain = { task = "base", steps = 150, lr = 3e-3, batch_size = 32 }

[[model]]
name = "toy32"
kind = "toy"
width = 32
pretrain = { task = "base", steps = 150, lr = 3e-3, batch_size = 32 }
"#;
    let text = TINY[..TINY.find("[[model]]").unwrap()].replace("eta_a = [1e-3, 1e-2]", "eta_a = [1e-2, 3e-2]") + models;
    let config = write_config(dir.path(), "widths.toml", &text);
    let out = dir.path().join("out");
    let output = sweep(&config, &out);
    let summary = String::from_utf8(output.stdout).unwrap();
    assert!(summary.contains("width scaling on shift-a"), "{summary}");

    // Each width's best cell, recomputed from results.csv: the highest seed-mean test accuracy
    // among cells whose every seed trained and learned (status `ok`).
    let results_path = out.join("results.csv");
    let results = csv_rows(&results_path);
    let [model, task, method, eta_a, ratio, accuracy, status] =
        ["model", "task", "method", "eta_a", "ratio", "test_accuracy", "status"].map(|c| column(&results_path, c));
    let best_ratio = |model_name: &str, task_name: &str| {
        let mut cells: std::collections::BTreeMap<(String, String), Vec<Option<f64>>> = Default::default();
        for row in results
            .iter()
            .filter(|r| &r[model] == model_name && &r[task] == task_name)
        {
            if &row[method] != "lora" {
                continue; // head-only baseline
            }
            let value = (&row[status] == "ok").then(|| row[accuracy].parse::<f64>().unwrap());
            cells
                .entry((row[eta_a].to_string(), row[ratio].to_string()))
                .or_default()
                .push(value);
        }
        let ((_, r), _) = cells
            .into_iter()
            .filter_map(|(cell, v)| Some((cell, v.iter().copied().sum::<Option<f64>>()? / v.len() as f64)))
            .max_by(|a, b| {
                a.1.total_cmp(&b.1)
                    .then(b.0.1.parse::<f64>().unwrap().total_cmp(&a.0.1.parse().unwrap()))
            })
            .unwrap();
        r.parse::<f64>().unwrap()
    };

    let scaling_path = out.join("width_scaling.csv");
    let rows = csv_rows(&scaling_path);
    assert_eq!(rows.len(), 2 * 2, "two widths on each of two tasks");
    let [s_task, s_width, s_ratio, s_slope] =
        ["task", "width", "best_ratio", "slope"].map(|c| column(&scaling_path, c));
    for task_name in ["shift-a", "shift-b"] {
        let points: Vec<(f64, f64, f64)> = rows
            .iter()
            .filter(|r| &r[s_task] == task_name)
            .map(|r| {
                (
                    r[s_width].parse().unwrap(),
                    r[s_ratio].parse().unwrap(),
                    r[s_slope].parse().unwrap(),
                )
            })
            .collect();
        for (width, ratio, _) in &points {
            assert_eq!(
                *ratio,
                best_ratio(&format!("toy{width}"), task_name),
                "toy{width}/{task_name}"
            );
        }
        // Two points: the slope is the line through them.
        let [(w1, r1, slope), (w2, r2, _)] = points[..] else {
            panic!("two widths")
        };
        let expected = (r2.log2() - r1.log2()) / (w2.log2() - w1.log2());
        assert!(
            (slope - expected).abs() < 1e-9,
            "{task_name}: slope {slope} vs {expected}"
        );
        assert!(is_png(&out.join(format!("width_scaling_{task_name}.png"))));
    }

    // gains.csv: LoRA+ at ratio 16 beside the best of each, its gain over LoRA consistent.
    let gains_path = out.join("gains.csv");
    let [lora_mean, default_mean, default_gain] =
        ["lora_mean", "default_ratio_mean", "default_ratio_gain"].map(|c| column(&gains_path, c));
    let pair_rows: Vec<_> = csv_rows(&gains_path)
        .into_iter()
        .filter(|r| &r[0] != "all pairs")
        .collect();
    assert_eq!(pair_rows.len(), 4);
    for row in pair_rows {
        let (lora, default, gain): (f64, f64, f64) = (
            row[lora_mean].parse().unwrap(),
            row[default_mean].parse().unwrap(),
            row[default_gain].parse().unwrap(),
        );
        assert!((default - lora - gain).abs() < 1e-12);
    }
}

#[test]
fn a_report_on_an_unfinished_sweep_names_the_incomplete_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = tiny_sweep(dir.path());
    let summary = fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(!summary.contains("INCOMPLETE"), "{summary}");

    // Remove two records of one pair, as if the sweep had been interrupted.
    let ids: Vec<String> = records(&out)
        .into_iter()
        .filter(|(_, r)| r["spec"]["task"]["name"] == "shift-b")
        .map(|(id, _)| id)
        .take(2)
        .collect();
    for id in &ids {
        fs::remove_file(out.join("trials").join(format!("{id}.json"))).unwrap();
    }
    let report = loraplus(&["report", out.to_str().unwrap()]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let summary = String::from_utf8(report.stdout).unwrap();
    assert!(
        summary.contains("INCOMPLETE") && summary.contains("mlp/shift-b: 2 of 16 planned trials have no record yet"),
        "{summary}"
    );
    assert!(!summary.contains("mlp/shift-a:"), "{summary}");
    // Where the records came from is counted from the records that are there.
    let left = records(&out);
    let version = left.values().next().unwrap()["provenance"]["code_version"]
        .as_str()
        .unwrap();
    let cpu = left.values().next().unwrap()["provenance"]["cpu"].as_str().unwrap();
    assert!(cpu.contains('('), "the CPU's model and vector instructions: {cpu}");
    let n = left.len();
    assert!(
        summary.contains(&format!("records from code {version} ({n}); backend flex ({n}); host"))
            && summary.contains(&format!("; cpu {cpu} ({n}); ")),
        "{summary}"
    );
    assert_eq!(fs::read_to_string(out.join("summary.txt")).unwrap(), summary);
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    // Enough trials that the listing overflows the pipe's buffer while the reader is gone.
    let wide = TINY.replace(
        "eta_a = [1e-3, 1e-2]",
        "eta_a = { from = 1e-4, to = 1e-2, points = 2000 }",
    );
    let config = write_config(dir.path(), "wide.toml", &wide);
    // `loraplus plan --list | head -1`: the reader goes away after the first line.
    let mut child = Command::new(BIN)
        .args(["plan", config.to_str().unwrap(), "--list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("tiny: 32000 trials"), "{first}");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The listing fills the pipe's buffer long before its end, so the next write after the
    // reader left ends the process by SIGPIPE's default action, as `head` expects.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(13),
        "ended by SIGPIPE: {:?}\n{stderr}",
        output.status
    );
}

#[test]
fn a_changed_config_is_refused_in_a_folder_of_another_sweep_but_added_values_run() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = tiny_sweep(dir.path());
    let before = fs::read(out.join("config.toml")).unwrap();
    let records_before = records(&out);

    // Other steps make other trials: the folder's 32 records are not this config's.
    let longer = write_config(dir.path(), "longer.toml", &TINY.replace("steps = 40", "steps = 60"));
    let refused = loraplus(&["sweep", longer.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("holds 32 of its 32 records from trials this config does not plan"),
        "{stderr}"
    );
    assert!(stderr.contains("`train.steps` (40 -> 60)"), "{stderr}");
    assert_eq!(
        fs::read(out.join("config.toml")).unwrap(),
        before,
        "config.toml untouched"
    );
    assert_eq!(records(&out), records_before, "records untouched");

    // A third eta_A only adds trials: the folder is this config's too, and only they run.
    let wider = TINY.replace("eta_a = [1e-3, 1e-2]", "eta_a = [1e-3, 1e-2, 3e-2]");
    let wider = write_config(dir.path(), "wider.toml", &wider);
    let output = sweep(&wider, &out);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("48 trials, 32 already finished, 16 to run"), "{log}");
    assert_eq!(
        fs::read_to_string(out.join("config.toml")).unwrap(),
        fs::read_to_string(&wider).unwrap()
    );
}

#[test]
fn a_roberta_checkpoint_fine_tunes_with_its_classification_head() {
    // The tiny random RoBERTa of the model crate's fixtures (byte-level BPE, RoBERTa positions,
    // `RobertaForSequenceClassification`'s head), on a 12-sentence CSV.
    let dir = tempfile::tempdir().unwrap();
    let train = repo_root().join("crates/data/tests/fixtures/sentences.csv");
    let roberta = repo_root().join("crates/model/tests/fixtures/tiny-roberta");
    let text = text_config(&train)
        .replace(repo_root().join("data/all-MiniLM-L6-v2").to_str().unwrap(), roberta.to_str().unwrap())
        .replace("kind = \"bert_checkpoint\"", "kind = \"bert_checkpoint\"\npooling = \"cls_head\"");
    let config = write_config(dir.path(), "roberta.toml", &text);
    let out = dir.path().join("out");
    sweep(&config, &out);
    let (id, record) = records(&out)
        .into_iter()
        .find(|(_, r)| r["spec"]["method"] == "lora")
        .unwrap();
    assert!(trained_to_the_end(record["status"].as_str().unwrap()), "{record}");
    // The head is the two layers of RoBERTa's, saved with the adapters under their module paths.
    let adapter: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("trials").join(&id).join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(adapter["modules_to_save"], serde_json::json!(["classifier.dense", "classifier.out_proj"]));
    assert!(adapter["target_modules"][0].as_str().unwrap().starts_with("roberta.encoder.layer.0."), "{adapter}");
}
