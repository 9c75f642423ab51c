//! Records and settings the unit tests share.

use crate::config::{Metric, Protocol, ReportSettings};
use crate::store::{Accuracies, CurvePoint, Provenance, Status, TrialRecord};

/// A finished record of the tiny config's first trial moved to (eta_A, ratio, seed), with a
/// final test (and validation) accuracy of `accuracy` and a majority class of `majority`.
pub fn record(eta_a: f64, ratio: f64, seed: u64, accuracy: f64, majority: f64) -> TrialRecord {
    let mut spec = crate::plan::expand(&crate::config::tiny_config(1)).remove(0);
    (spec.eta_a, spec.ratio, spec.seed) = (eta_a, ratio, seed);
    let curve = vec![CurvePoint {
        step: 10,
        train_loss: Some(0.5),
        val_accuracy: accuracy,
        test_accuracy: accuracy,
    }];
    TrialRecord {
        trial_id: spec.id(),
        status: Status::Ok,
        message: None,
        steps_run: 10,
        steps_planned: 10,
        accuracy: Accuracies::of(&curve),
        curve,
        majority_test_accuracy: Some(majority),
        trainable_params: 0,
        total_params: 0,
        wall_seconds: 0.0,
        provenance: Provenance {
            code_version: "test".into(),
            backend: "flex".into(),
            group_size: 1,
            host: String::new(),
            cpu: String::new(),
            finished_at: 0,
        },
        adapter_sha256: None,
        spec,
    }
}

/// A 3 x 3 grid (eta_A 1e-4..1e-2, ratios 1, 4, 16) over two seeds whose accuracy peaks at
/// `peak` and falls off with log distance from it.
pub fn grid_peaking_at(peak: (f64, f64)) -> Vec<TrialRecord> {
    let mut records = Vec::new();
    for eta_a in [1e-4, 1e-3, 1e-2] {
        for ratio in [1.0, 4.0, 16.0] {
            for seed in [0, 1] {
                let distance = (eta_a / peak.0).log10().abs() + (ratio / peak.1).log2().abs() / 2.0;
                records.push(record(
                    eta_a,
                    ratio,
                    seed,
                    0.9 - 0.05 * distance + 0.001 * seed as f64,
                    0.3,
                ));
            }
        }
    }
    records
}

/// Seed means of test accuracy, the top cell alone.
pub fn settings() -> ReportSettings {
    ReportSettings {
        name: "t".into(),
        metric: Metric::TestAccuracy,
        top_k: 1,
        protocol: Protocol::SeedMean,
    }
}
