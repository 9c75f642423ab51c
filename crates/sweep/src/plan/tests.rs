//! Expansion, ids and the identities derived from a spec.

use std::path::Path;

use super::*;

const CONFIG: &str = r#"
    name = "t"
    seeds = [0, 1]
    [grid]
    eta_a = { from = 1e-4, to = 1e-2, points = 3 }
    ratio = [4, 16]
    [train]
    steps = 10
    batch_size = [8, 16]
    [lora]
    rank = [2, 4]
    [[task]]
    name = "base"
    kind = "teacher"
    d_input = 4
    n_classes = 2
    n_train = 20
    n_val = 5
    n_test = 5
    [[task]]
    name = "down"
    kind = "teacher"
    d_input = 4
    n_classes = 2
    shift_rank = 1
    shift_scale = 1.0
    n_train = 20
    n_val = 5
    n_test = 5
    [[model]]
    name = "mlp"
    kind = "mlp"
    hidden = [8]
    pretrain = { task = "base", steps = 5 }
"#;

fn config() -> SweepConfig {
    SweepConfig::parse(CONFIG, Path::new("t.toml")).unwrap()
}

#[test]
fn expansion_is_the_full_product_with_ratio_one_added() {
    let trials = expand(&config());
    // 1 pair x 2 batch sizes x 2 seeds x 3 eta_a x (3 ratios incl. 1) x 2 ranks LoRA trials,
    // plus head-only baselines, which do not depend on the rank: 2 x 2 x 3.
    let lora = trials.iter().filter(|t| t.method == Method::Lora).count();
    let head_only = trials.iter().filter(|t| t.method == Method::HeadOnly).count();
    assert_eq!((lora, head_only), (2 * 2 * 3 * 3 * 2, 2 * 2 * 3));
    assert!(
        trials.iter().any(|t| t.ratio == 1.0),
        "plain LoRA is always in the grid"
    );
    let etas: Vec<f64> = trials.iter().map(|t| t.eta_a).collect();
    assert!(etas.iter().any(|e| (e - 1e-3).abs() < 1e-12), "log-spaced midpoint");
    assert_eq!(
        trials[0].task.name, "down",
        "the pretraining task is not a downstream task"
    );
    // The axes vary slowest first in key order: batch size, then rank, then seed.
    let order: Vec<(usize, usize, u64)> = trials
        .iter()
        .filter(|t| t.method == Method::Lora)
        .map(|t| (t.train.batch_size.get(), t.lora.rank.get(), t.seed))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

#[test]
fn ids_are_stable_and_change_with_everything_that_makes_a_result() {
    let (a, b) = (expand(&config()), expand(&config()));
    let ids: Vec<String> = a.iter().map(TrialSpec::id).collect();
    assert_eq!(ids, b.iter().map(TrialSpec::id).collect::<Vec<_>>());
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    assert_eq!(ids[0].len(), 16);
    // A spec rebuilt from its record's JSON has the same id.
    let first = &a[0];
    let rebuilt: TrialSpec = serde_json::from_str(&serde_json::to_string(first).unwrap()).unwrap();
    assert_eq!(rebuilt.id(), first.id());
    let mut changes: Vec<TrialSpec> = vec![first.clone(); 5];
    changes[0].seed += 7;
    changes[1].eta_a *= 2.0;
    changes[2].train.steps = Some(crate::config::Values::One(11));
    changes[3].lora.alpha = crate::config::Values::One(32.0);
    changes[4].model.name = "other".into();
    for changed in &changes {
        assert_ne!(changed.id(), first.id(), "{changed:?}");
    }
}

#[test]
fn families_differ_only_in_rates_and_pairs_only_in_rates_and_seeds() {
    let trials = expand(&config());
    let first = &trials[0];
    let same_rates_elsewhere = TrialSpec {
        eta_a: 0.5,
        ratio: 64.0,
        ..first.clone()
    };
    assert_eq!(same_rates_elsewhere.family(), first.family());
    let other_seed = TrialSpec {
        seed: first.seed + 1,
        ..first.clone()
    };
    assert_ne!(other_seed.family(), first.family());

    let lora: Vec<&TrialSpec> = trials.iter().filter(|t| t.method == Method::Lora).collect();
    let pairs = group_pairs(&lora, |t| t);
    let labels: Vec<&str> = pairs.iter().map(|(key, _)| key.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "batch_size=8,rank=2",
            "batch_size=8,rank=4",
            "batch_size=16,rank=2",
            "batch_size=16,rank=4"
        ]
    );
    for (key, members) in &pairs {
        // 2 seeds x 3 eta_A x 3 ratios.
        assert_eq!(members.len(), 18, "{key}");
        assert!(members.iter().all(|t| t.pair_name() == key.name));
    }
    // Every family is one pair at one seed: 4 pairs x 2 seeds.
    let refs: Vec<&TrialSpec> = lora.to_vec();
    assert_eq!(groups(&refs, |_| usize::MAX).len(), 8);
    assert_eq!(groups(&refs, |_| 4).iter().map(Vec::len).max(), Some(4));
}

#[test]
fn base_keys_follow_the_recipe_not_the_sweep() {
    let trials = expand(&config());
    assert!(trials.iter().all(|t| t.base() == trials[0].base()));
    let mut other = trials[0].clone();
    other.model.pretrain.as_mut().unwrap().steps += 1;
    assert_ne!(other.base(), trials[0].base());
    assert!(trials[0].base().to_string().starts_with("mlp-"));
}
