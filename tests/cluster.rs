//! Sweeps beyond one process: shards and merging, concurrent writers, kills, corrupt records,
//! and a real Slurm cluster (started by `scripts/slurm/local-cluster.sh`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `loraplus ARGS`, which must succeed.
fn ok(args: &[&str]) -> std::process::Output {
    let output = loraplus(args);
    assert!(
        output.status.success(),
        "loraplus {args:?} failed:\n{}",
        stderr(&output)
    );
    output
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Record files of `dir`, by name, with their bytes.
fn record_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir.join("trials"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .map(|p| {
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        fs::read(&p).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `loraplus status DIR`'s counts, by name (`done`, `missing`, ...), and its whole output.
fn status(dir: &Path) -> (std::collections::BTreeMap<String, usize>, String) {
    let text = stdout(&ok(&["status", s(dir)]));
    let counts = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, count) = (words.next()?, words.next()?.parse().ok()?);
            line.starts_with("  ").then(|| (name.to_string(), count))
        })
        .collect();
    (counts, text)
}

/// Trials run, summed over the `runs` of a directory's manifest.
fn trials_run(dir: &Path) -> u64 {
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["trials_run"].as_u64().unwrap())
        .sum()
}

#[test]
fn shards_run_on_separate_machines_merge_into_the_local_result() {
    let dir = tempfile::tempdir().unwrap();
    let (config, local) = tiny_sweep(dir.path());

    let shard_dirs: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("machine-{i}"))).collect();
    let mut owned = 0;
    for (i, out) in shard_dirs.iter().enumerate() {
        let shard = format!("{i}/3");
        let output = ok(&["sweep", s(&config), "--out", s(out), "--shard", &shard, "--jobs", "2"]);
        assert!(
            stdout(&output).contains(&format!("shard {i}/3:")),
            "{}",
            stdout(&output)
        );
        assert!(
            !out.join("results.csv").exists(),
            "a shard leaves the reports to `report`"
        );
        owned += record_files(out).len();
        // A shard's directory knows its shard count: the other two are missing.
        let (_, text) = status(out);
        let others = ["1-2", "0,2", "0-1"][i];
        assert!(text.contains(&format!("missing shards (of 3): {others}\n")), "{text}");
    }
    assert_eq!(owned, 32, "the shards are disjoint and cover the grid");

    let merged = dir.path().join("merged");
    let dirs: Vec<&str> = shard_dirs.iter().map(|d| s(d)).collect();
    let output = ok(&[&["merge"][..], &dirs, &["--out", s(&merged)]].concat());
    assert!(
        stdout(&output).contains("merged 32 trial records (0 missing); 0 duplicate(s)"),
        "{}",
        stdout(&output)
    );
    assert!(merged.join("results.csv").exists() && merged.join("best_ratios.csv").exists());
    assert_same_sweep(&merged, &local);
    let (counts, text) = status(&merged);
    assert_eq!(counts["missing"], 0, "{text}");
    assert_eq!(counts["done"] + counts["diverged"], 32, "{text}");
    assert!(
        text.contains("adapters: 24 whole, 0 missing, 0 corrupt"),
        "merge copies the adapters: {text}"
    );

    // Merging again (the merged directory with a shard it already holds) duplicates nothing.
    let output = ok(&["merge", s(&shard_dirs[0]), "--out", s(&merged)]);
    assert!(
        stdout(&output).contains("merged 32 trial records"),
        "{}",
        stdout(&output)
    );
    assert_eq!(record_files(&merged).len(), 32);

    // A directory of another config is refused, and the merged results are left as they were.
    let other = write_config(
        dir.path(),
        "other.toml",
        &TINY.replace("ratio = [4, 16]", "ratio = [4, 32]"),
    );
    let other_out = dir.path().join("other");
    ok(&["sweep", s(&other), "--out", s(&other_out), "--shard", "0/8"]);
    let before = record_files(&merged);
    let refused = loraplus(&["merge", s(&other_out), "--out", s(&merged)]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("hold different sweeps"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("other/config.toml"), "{}", stderr(&refused));
    assert_eq!(record_files(&merged), before);
}

#[test]
fn two_processes_sweeping_one_directory_run_each_trial_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "tiny.toml", TINY);
    let out = dir.path().join("shared");
    // One process sweeps everything, the other an overlapping shard, at the same time.
    let spawn = |extra: &[&str]| {
        Command::new(BIN)
            .args([&["sweep", s(&config), "--out", s(&out), "--jobs", "1"][..], extra].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (all, half) = (spawn(&[]), spawn(&["--shard", "0/2"]));
    let (all, half) = (all.wait_with_output().unwrap(), half.wait_with_output().unwrap());
    assert!(all.status.success(), "{}", stderr(&all));
    assert!(half.status.success(), "{}", stderr(&half));

    let records = records(&out);
    assert_eq!(records.len(), 32, "every trial recorded, each once");
    assert_eq!(trials_run(&out), 32, "no trial ran in both processes");
    let pretrained = [&all, &half]
        .iter()
        .map(|o| stderr(o).matches("pretraining base").count())
        .sum::<usize>();
    assert_eq!(pretrained, 1, "the shared base is pretrained once");
    // Beside each record only its adapter folder.
    let leftovers: Vec<_> = fs::read_dir(out.join("trials"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".json") && !records.contains_key(name))
        .collect();
    assert!(leftovers.is_empty(), "no lock or temporary files left: {leftovers:?}");

    let (_, alone) = tiny_sweep(&dir.path().join("alone"));
    assert_same_sweep(&out, &alone);
}

#[test]
fn a_corrupt_record_is_reported_kept_aside_and_its_trial_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = tiny_sweep(dir.path());
    let clean = record_files(&out);
    let mut names = clean.keys();
    let (truncated, misfiled) = (names.next().unwrap().clone(), names.next().unwrap().clone());
    let trials = out.join("trials");
    fs::write(trials.join(&truncated), &clean[&truncated][..100]).unwrap();
    // A valid record under another trial's name.
    fs::write(trials.join(&misfiled), &clean[&truncated]).unwrap();

    let (counts, text) = status(&out);
    assert_eq!(counts["missing"], 2, "{text}");
    assert!(text.contains("(2 with a corrupt record)"), "{text}");

    let output = sweep(&config, &out);
    let log = stderr(&output);
    assert!(log.contains(&format!("{truncated} is corrupt")), "{log}");
    assert!(log.contains(&format!("{misfiled} holds trial")), "{log}");
    assert!(log.contains("2 to run"), "{log}");
    for name in [&truncated, &misfiled] {
        assert!(
            trials.join(format!("{name}.corrupt")).exists(),
            "{name} kept for inspection"
        );
    }
    let again = record_files(&out);
    for (name, bytes) in &clean {
        if name != &truncated && name != &misfiled {
            assert_eq!(&again[name], bytes, "{name} untouched");
        }
    }
    let (before, after) = (
        serde_json::from_slice(&clean[&truncated]).unwrap(),
        serde_json::from_slice(&again[&truncated]).unwrap(),
    );
    assert_same_results(&truncated, &before, &after);
    assert_eq!(status(&out).0["missing"], 0);
}

#[test]
fn a_missing_or_corrupt_adapter_is_reported_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = tiny_sweep(dir.path());
    let (_, text) = status(&out);
    assert!(text.contains("adapters: 24 whole, 0 missing, 0 corrupt"), "{text}");
    let with_adapter: Vec<String> = records(&out)
        .into_iter()
        .filter(|(_, r)| r["adapter_sha256"].is_string())
        .map(|(id, _)| id)
        .take(2)
        .collect();
    let weights = out
        .join("trials")
        .join(&with_adapter[0])
        .join("adapter_model.safetensors");
    let bytes = fs::read(&weights).unwrap();
    fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    fs::remove_dir_all(out.join("trials").join(&with_adapter[1])).unwrap();
    let (counts, text) = status(&out);
    assert!(text.contains("adapters: 22 whole, 1 missing, 1 corrupt"), "{text}");
    assert!(
        text.contains(&format!("corrupt adapter: trial {}", with_adapter[0])),
        "{text}"
    );
    assert!(
        text.contains(&format!("missing adapter: trial {}", with_adapter[1])),
        "{text}"
    );
    assert_eq!(counts["missing"], 0, "the records themselves are whole: {text}");
}

#[test]
fn repeated_kills_lose_nothing_and_the_resumed_sweep_matches_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    // Longer trials, so kills land mid-trial as well as between trials and during pretraining;
    // one pair's 16 of them.
    let text = TINY
        .replace("seeds = [0, 1]", "seeds = [0, 1]\npairs = [[\"mlp\", \"shift-a\"]]")
        .replace("steps = 40", "steps = 3000")
        .replace("eval_interval = 10", "eval_interval = 500");
    let config = write_config(dir.path(), "tiny.toml", &text);
    let killed = dir.path().join("killed");
    let sweep_killed = || {
        Command::new(BIN)
            .args(["sweep", s(&config), "--out", s(&killed), "--jobs", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Six kills, each at a point of the sweep's own progress rather than of the clock (so a
    // slow or busy machine kills at the same points): either after a pseudo-random 50-500 ms
    // (during startup, pretraining or the first steps), or just after the next record lands
    // plus 0-300 ms (mid-trial). A fixed sequence, so a failure can be replayed.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut kills = 0;
    for _ in 0..6 {
        let before = record_files(&killed);
        if before.len() >= 12 {
            break; // leave trials for the resume
        }
        let (after_a_record, delay) = (next() % 2 == 1, next() % 300);
        let mut child = sweep_killed();
        let started = std::time::Instant::now();
        if after_a_record {
            while record_files(&killed).len() == before.len() && child.try_wait().unwrap().is_none() {
                assert!(
                    started.elapsed() < Duration::from_secs(300),
                    "the sweep made no progress"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(delay));
        } else {
            std::thread::sleep(Duration::from_millis(50 + delay * 3 / 2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        let after = record_files(&killed);
        for (name, bytes) in &after {
            let record: serde_json::Value = serde_json::from_slice(bytes)
                .unwrap_or_else(|e| panic!("{name} is not a whole record after a kill: {e}"));
            let id = record["trial_id"].as_str().unwrap();
            assert_eq!(format!("{id}.json"), *name);
            // Its adapter was written, whole, before it.
            if record["spec"]["method"] == "lora" && record["status"] == "ok" {
                let weights = fs::read(killed.join("trials").join(id).join("adapter_model.safetensors"))
                    .unwrap_or_else(|e| panic!("{id}: no adapter beside its record after a kill: {e}"));
                assert_eq!(
                    record["adapter_sha256"].as_str(),
                    Some(sha256(&weights).as_str()),
                    "{id}"
                );
            }
        }
        for (name, bytes) in &before {
            assert_eq!(after.get(name), Some(bytes), "{name}: a finished record never changes");
        }
    }
    assert!(kills >= 3, "the sweep was killed only {kills} time(s)");
    let survivors = record_files(&killed);
    assert!(
        !survivors.is_empty() && survivors.len() < 16,
        "{} records: some trials finished between kills, not all",
        survivors.len()
    );

    // Resume to the end.
    let resumed = sweep(&config, &killed);
    let log = stderr(&resumed);
    assert!(log.contains(&format!("{} already finished", survivors.len())), "{log}");
    let all = record_files(&killed);
    assert_eq!(all.len(), 16, "each trial exactly once");
    for (name, bytes) in &survivors {
        assert_eq!(&all[name], bytes, "{name} was not run again");
    }
    assert_eq!(status(&killed).0["missing"], 0);

    // The manifest accounts for the killed runs too: each entry is rewritten after every
    // record, so only the resume has an end, and the trials the runs say they ran add up to
    // the records (a kill between a record and its manifest update loses one count at most).
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(killed.join("manifest.json")).unwrap()).unwrap();
    let runs = manifest["runs"].as_array().unwrap();
    let (last, killed_runs) = runs.split_last().unwrap();
    assert!(last["finished_at"].is_u64(), "the resume finished: {last}");
    for run in killed_runs {
        assert!(run["finished_at"].is_null(), "a killed run has no end: {run}");
    }
    let counted = trials_run(&killed);
    assert!(
        (16 - kills as u64..=16).contains(&counted),
        "the runs say they ran {counted} trials; 16 records, {kills} kills"
    );

    let clean = dir.path().join("clean");
    sweep(&config, &clean);
    assert_same_sweep(&killed, &clean);
}

/// Whether a Slurm controller answers here and its node takes jobs (a down node would leave
/// `sbatch --wait` pending forever).
fn slurm_is_up() -> bool {
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let node_states = run("sinfo", &["-h", "-o", "%t"]);
    run("scontrol", &["ping"]).contains("UP")
        && node_states
            .split_whitespace()
            .any(|state| ["idle", "mix", "alloc", "comp"].contains(&state.trim_end_matches(['*', '~', '#'])))
}

#[test]
fn a_slurm_job_array_sweeps_resumes_and_reports() {
    if !slurm_is_up() {
        require::skip_unless_required(
            "slurm",
            "no Slurm cluster answers here (scripts/slurm/local-cluster.sh starts one, as root)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "tiny.toml", TINY);
    let out = dir.path().join("slurm-run");
    let written = stdout(&ok(&[
        "slurm",
        s(&config),
        "--out",
        s(&out),
        "--shards",
        "3",
        "--cpus-per-task",
        "1",
    ]));
    assert!(written.contains("32 trials in 3 array tasks"), "{written}");
    let script = out.join("slurm").join("sweep.sbatch");
    // Bounded: a job that never starts fails the test instead of hanging it.
    let sbatch = |args: &[&str]| {
        let output = Command::new("timeout")
            .args([&["600", "sbatch"][..], args].concat())
            .output()
            .unwrap();
        assert!(output.status.success(), "sbatch {args:?}:\n{}", stderr(&output));
    };

    // Two of the three shards, as if the third had been lost: status names it.
    sbatch(&["--wait", "--array=0,2", s(&script)]);
    let (_, text) = status(&out);
    assert!(text.contains("missing shards (of 3): 1\n"), "{text}");
    assert!(
        text.contains(&format!("resubmit: sbatch --array=1 {}", script.display())),
        "{text}"
    );

    // The whole array again, then the report step: finished shards skip their trials.
    let submit = Command::new("timeout")
        .args(["600", "bash"])
        .arg(out.join("slurm").join("submit.sh"))
        .arg("--wait")
        .output()
        .unwrap();
    assert!(
        submit.status.success(),
        "submit.sh:\n{}{}",
        stdout(&submit),
        stderr(&submit)
    );
    let (counts, text) = status(&out);
    assert!(text.contains("missing shards (of 3): none"), "{text}");
    assert_eq!(counts["missing"] + counts["running"] + counts["failed"], 0, "{text}");
    assert!(out.join("results.csv").exists(), "the report step ran");
    assert_eq!(trials_run(&out), 32, "no trial ran twice");

    let (_, local) = tiny_sweep(&dir.path().join("local"));
    let merged = dir.path().join("merged");
    ok(&["merge", s(&out), "--out", s(&merged)]);
    assert_same_sweep(&merged, &local);
}
