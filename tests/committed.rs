//! The committed studies in `results/` pin the code's behaviour through the command line alone,
//! so the checks hold whatever the crate's insides look like: a config expands to the trial ids
//! its records carry, in a pinned order, and every report rebuilds byte for byte from the
//! records.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The trial ids `loraplus plan CONFIG --list --out DIR` lists, in its order.
fn listed_ids(config: &Path, out: &Path) -> Vec<String> {
    let output = loraplus(&[
        "plan",
        config.to_str().unwrap(),
        "--list",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let table = text.split_once("\ntrial_id").expect("a listing").1;
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next().map(String::from))
        .collect()
}

/// The ids of the records in `dir/trials`.
fn record_ids(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir.join("trials"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn committed_configs_expand_to_the_trials_their_records_hold() {
    // `quick` is one grid; `width-scaling` adds adaptive extensions, replayed from its records.
    for study in ["quick", "width-scaling"] {
        let dir = repo_root().join("results").join(study);
        let listed = listed_ids(&dir.join("config.toml"), &dir);
        // The order the code listed them in when these tests were written (commit 6663450): it
        // decides which shard owns a trial.
        let pinned = fs::read_to_string(repo_root().join(format!("tests/fixtures/trial-ids/{study}.txt"))).unwrap();
        let pinned: Vec<&str> = pinned.lines().collect();
        assert_eq!(listed, pinned, "{study}: trial ids and their order");
        let listed: BTreeSet<String> = listed.into_iter().collect();
        assert_eq!(listed.len(), pinned.len(), "{study}: no id twice");
        assert_eq!(listed, record_ids(&dir), "{study}: exactly the trials recorded");
    }
}

#[test]
fn every_committed_report_rebuilds_byte_for_byte_from_its_records() {
    let results = repo_root().join("results");
    let scratch = tempfile::tempdir().unwrap();
    let mut studies: Vec<_> = fs::read_dir(&results).unwrap().map(|e| e.unwrap().path()).collect();
    studies.sort();
    assert!(studies.len() >= 4, "{studies:?}");
    let check = |study: &PathBuf| {
        let name = study.file_name().unwrap().to_string_lossy().into_owned();
        // Only what `report` reads: the records, the config and the report settings.
        let copy = scratch.path().join(&name);
        fs::create_dir_all(copy.join("trials")).unwrap();
        for file in ["config.toml", "sweep.json"] {
            fs::copy(study.join(file), copy.join(file)).unwrap();
        }
        for entry in fs::read_dir(study.join("trials")).unwrap() {
            let path = entry.unwrap().path();
            fs::copy(&path, copy.join("trials").join(path.file_name().unwrap())).unwrap();
        }
        // From the repository root, where the configs' relative data paths point.
        let output = Command::new(BIN)
            .args(["report", copy.to_str().unwrap()])
            .current_dir(repo_root())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let tables = [
            "results.csv",
            "curves.csv",
            "best_ratios.csv",
            "gains.csv",
            "width_scaling.csv",
        ];
        for file in tables.iter().chain(&["summary.txt"]) {
            let committed = study.join(file);
            if !committed.exists() {
                assert!(!copy.join(file).exists(), "{name}/{file} is new");
                continue;
            }
            let (expected, rebuilt) = (
                fs::read_to_string(&committed).unwrap(),
                fs::read_to_string(copy.join(file)).unwrap(),
            );
            if expected != rebuilt {
                let line = expected
                    .lines()
                    .zip(rebuilt.lines())
                    .position(|(a, b)| a != b)
                    .map_or_else(|| "the line count".into(), |i| format!("line {}", i + 1));
                panic!("{name}/{file} differs from its rebuild at {line}");
            }
        }
    };
    // Two studies at a time, one per core.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some(study) = studies.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    check(study);
                }
            });
        }
    });
}
