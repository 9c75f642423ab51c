//! What a sweep says as a whole: the best ratios and the LoRA+ gain, with their uncertainty.

use crate::analysis::pairs::Pair;
use crate::analysis::stats::{self, Bootstrap, Estimate, Table};
use crate::config::{Protocol, ReportSettings};

/// What a sweep says as a whole: the best ratios and the LoRA+ gain, with their uncertainty.
pub struct Findings {
    /// One entry per top-k cell of every pair: (pair slug, log2 ratio).
    pub log2_ratios: Vec<(String, f64)>,
    /// The median log2 ratio over those cells, with a bootstrap interval that resamples pairs
    /// and, within them, seeds (the top-k cells are chosen again in every resample).
    pub median: Option<Estimate>,
    /// The mean over pairs of best LoRA+ minus best plain LoRA, with the same kind of interval.
    pub gain: Option<Estimate>,
    /// Per pair (by slug): the per-seed differences between its best LoRA+ and best LoRA cells
    /// (chosen on seed means) and their sign-flip p-value.
    pub paired: Vec<(String, Vec<f64>, Option<f64>)>,
    /// The sign-flip p-value over every pair's differences pooled, and how many there are.
    pub gain_test: Option<(f64, usize)>,
    /// The resampling used.
    pub bootstrap: Bootstrap,
}

impl Findings {
    /// The findings of `pairs` under `settings`' protocol.
    pub fn of(pairs: &[Pair], settings: &ReportSettings) -> Self {
        let bootstrap = Bootstrap::default();
        let tables: Vec<Table> = pairs.iter().map(|p| p.table(settings.ranking_metric())).collect();
        let refs: Vec<&Table> = tables.iter().collect();
        // The paper's protocol ranks on one seed: resamples draw pairs only.
        let protocol_seeds = |seeds: &[Vec<usize>]| -> Vec<Vec<usize>> {
            match settings.protocol {
                Protocol::SeedMean => seeds.to_vec(),
                Protocol::Paper => vec![vec![0]; seeds.len()],
            }
        };
        let top_k = settings.top_k;
        let median = bootstrap.estimate(&refs, |t, s| stats::median_log2_ratio(t, &protocol_seeds(s), top_k));
        let gain = bootstrap.estimate(&refs, |t, s| stats::mean_gain(t, &protocol_seeds(s)));
        let log2_ratios = pairs
            .iter()
            .flat_map(|pair| {
                pair.ranked(settings)
                    .iter()
                    .take(top_k)
                    .map(|r| (pair.slug(), r.cell.ratio.log2()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut paired = Vec::new();
        for (pair, table) in pairs.iter().zip(&tables) {
            let all: Vec<usize> = (0..table.n_seeds()).collect();
            let Some((_, lora, plus)) = table.gain(&all) else {
                continue;
            };
            let differences: Vec<f64> = all
                .iter()
                .filter_map(|&s| Some(table.values[plus][s]? - table.values[lora][s]?))
                .collect();
            let p = stats::sign_flip_test(&differences, 10_000, bootstrap.seed);
            paired.push((pair.slug(), differences, p));
        }
        let pooled: Vec<f64> = paired.iter().flat_map(|(_, d, _)| d.iter().copied()).collect();
        let gain_test = stats::sign_flip_test(&pooled, 10_000, bootstrap.seed).map(|p| (p, pooled.len()));
        Self {
            log2_ratios,
            median,
            gain,
            paired,
            gain_test,
            bootstrap,
        }
    }
}
