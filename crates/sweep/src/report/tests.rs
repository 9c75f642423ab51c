//! The summary's text, from records made to order.

use super::summary::{by_model, provenance, summary};
use crate::analysis::{Findings, pairs};
use crate::config::{Protocol, ReportSettings};
use crate::test_support::{grid_peaking_at, record, settings};

#[test]
fn compute_under_an_hour_is_counted_in_minutes() {
    let mut records = vec![record(1e-3, 4.0, 0, 0.9, 0.3), record(1e-3, 4.0, 1, 0.9, 0.3)];
    records[0].wall_seconds = 90.0;
    records[1].wall_seconds = 60.0;
    assert!(provenance(&records).contains("; 2.5 trial-minutes ("));
    records[1].wall_seconds = 5310.0;
    assert!(provenance(&records).contains("; 1.5 trial-hours ("));
}

#[test]
fn each_model_gets_the_findings_of_its_own_pairs() {
    let mut records = grid_peaking_at((1e-3, 16.0));
    let mut other = grid_peaking_at((1e-3, 1.0));
    for r in &mut other {
        r.spec.model.name = "other".into();
    }
    records.extend(other);
    let text = by_model(&records, &settings());
    let line = |model: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(model))
            .unwrap()
            .to_string()
    };
    // Top-1 cells: log2 16 = 4 for one model, plain LoRA (log2 1 = 0) for the other. At the
    // peak's eta_A, accuracy falls 0.05 per factor 4 of ratio away from the peak's: the
    // first model's plain LoRA is two factors below (-0.10), the other's best LoRA+ (ratio
    // 4) one factor above (-0.05), on both seeds.
    assert!(
        line("mlp").contains("1 pair(s)  median log2 ratio 4.00 [4.00, 4.00]"),
        "{text}"
    );
    assert!(line("mlp").contains("LoRA+ - LoRA +0.1000 [0.1000, 0.1000]"), "{text}");
    assert!(line("other").contains("median log2 ratio 0.00 [0.00, 0.00]"), "{text}");
    assert!(
        line("other").contains("LoRA+ - LoRA -0.0500 [-0.0500, -0.0500]"),
        "{text}"
    );
    assert_eq!(by_model(&records[..18], &settings()), "", "one model: nothing to split");
}

#[test]
fn a_cell_missing_a_seed_is_counted_as_awaiting_it_not_ranked() {
    let mut records = grid_peaking_at((1e-3, 4.0));
    // The best cell's seed 1 and another cell's seed 0 are still to run.
    records.retain(|r| {
        !((r.spec.eta_a, r.spec.ratio, r.spec.seed) == (1e-3, 4.0, 1)
            || (r.spec.eta_a, r.spec.ratio, r.spec.seed) == (1e-2, 16.0, 0))
    });
    let pairs = pairs(&records);
    let seed_mean = settings();
    let paper = ReportSettings {
        protocol: Protocol::Paper,
        ..settings()
    };
    assert_eq!(pairs[0].cells_awaiting_seeds(&seed_mean), 2);
    assert_eq!(pairs[0].ranked(&seed_mean).len(), 7);
    assert_ne!(
        pairs[0].ranked(&seed_mean)[0].cell.ratio,
        4.0,
        "the half-run best cell is not ranked"
    );
    assert_eq!(pairs[0].cells_awaiting_seeds(&paper), 1, "the paper ranks seed 0 alone");
    assert_eq!(pairs[0].ranked(&paper).len(), 8);
    let text = summary(&pairs, &Findings::of(&pairs, &seed_mean), &seed_mean, records.len());
    assert!(
        text.contains("of 9 cells: 0 did not learn, 0 diverged, 0 failed, 2 await a seed's record"),
        "{text}"
    );
}
