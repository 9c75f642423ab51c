//! Seed-aware statistics of a sweep: top-k cells on seed means, bootstrap confidence intervals
//! that resample pairs and seeds, and a paired sign-flip test of the LoRA+ - LoRA gain.
//!
//! Everything works on [`Table`]s: one per pair, the final metric of every (cell, seed). A seed
//! is the same random draw (init, data order) in every cell of its pair, so resampling picks
//! seed *indices* and keeps the cells of a resampled seed together.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One pair's results: `values[cell][seed]`, `None` where that trial is not usable (diverged,
/// failed, did not learn, or missing). A cell is ranked only if every drawn seed is usable.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// (eta_A, ratio) of each cell.
    pub cells: Vec<(f64, f64)>,
    /// The metric per cell and seed.
    pub values: Vec<Vec<Option<f64>>>,
}

impl Table {
    /// Seeds in the table.
    pub fn n_seeds(&self) -> usize {
        self.values.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Mean of `cell` over `seeds` (indices, repeats allowed), if each is usable.
    pub fn mean(&self, cell: usize, seeds: &[usize]) -> Option<f64> {
        let row = &self.values[cell];
        let values: Option<Vec<f64>> = seeds.iter().map(|&s| row.get(s).copied().flatten()).collect();
        let values = values?;
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// Cells ranked by their mean over `seeds`, best first (ties: the smaller ratio first, then
    /// the smaller eta_A, so the order never depends on the order of records).
    ///
    /// Means are compared to 1e-9: accuracies are counts over a test set, and two cells whose
    /// seeds sum to the same count (0.962 + 0.967 and 0.963 + 0.966) can differ in the last bit
    /// of their float sums, which would otherwise decide the tie.
    pub fn ranked(&self, seeds: &[usize], only: impl Fn(f64) -> bool) -> Vec<(usize, f64)> {
        let mut ranked: Vec<(usize, f64)> = (0..self.cells.len())
            .filter(|&c| only(self.cells[c].1))
            .filter_map(|c| Some((c, self.mean(c, seeds)?)))
            .collect();
        let rounded = |mean: f64| (mean * 1e9).round();
        ranked.sort_by(|a, b| {
            rounded(b.1)
                .total_cmp(&rounded(a.1))
                .then(self.cells[a.0].1.total_cmp(&self.cells[b.0].1))
                .then(self.cells[a.0].0.total_cmp(&self.cells[b.0].0))
        });
        ranked
    }

    /// log2 ratios of the top-`k` cells over `seeds`.
    pub fn top_log2_ratios(&self, seeds: &[usize], k: usize) -> Vec<f64> {
        self.ranked(seeds, |_| true)
            .iter()
            .take(k)
            .map(|&(c, _)| self.cells[c].1.log2())
            .collect()
    }

    /// Best LoRA+ (ratio > 1) minus best plain LoRA (ratio 1) over `seeds`, each best chosen on
    /// its mean, and the two cells.
    pub fn gain(&self, seeds: &[usize]) -> Option<(f64, usize, usize)> {
        let lora = *self.ranked(seeds, |r| r == 1.0).first()?;
        let plus = *self.ranked(seeds, |r| r > 1.0).first()?;
        Some((plus.1 - lora.1, lora.0, plus.0))
    }
}

/// The median of `values` (none if empty).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// The median log2 ratio of every table's top-`k` cells, each table over the seeds given for it.
pub fn median_log2_ratio(tables: &[&Table], seeds: &[Vec<usize>], k: usize) -> Option<f64> {
    median(
        tables
            .iter()
            .zip(seeds)
            .flat_map(|(t, s)| t.top_log2_ratios(s, k))
            .collect(),
    )
}

/// The mean LoRA+ - LoRA gain over tables (pairs lacking either are left out).
pub fn mean_gain(tables: &[&Table], seeds: &[Vec<usize>]) -> Option<f64> {
    let gains: Vec<f64> = tables
        .iter()
        .zip(seeds)
        .filter_map(|(t, s)| Some(t.gain(s)?.0))
        .collect();
    (!gains.is_empty()).then(|| gains.iter().sum::<f64>() / gains.len() as f64)
}

/// The least-squares slope of `y` on `x`; `None` without two distinct `x`.
pub fn ols_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    (sxx > 1e-12).then(|| sxy / sxx)
}

/// A point estimate with a bootstrap percentile interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The statistic on the data as observed.
    pub value: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
    /// The interval's coverage, e.g. 0.95.
    pub level: f64,
}

/// Bootstrap settings: how many resamples, and the generator's seed (same seed, same interval).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// Resamples.
    pub samples: usize,
    /// Seed of the resampling generator.
    pub seed: u64,
    /// Coverage of the percentile interval.
    pub level: f64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            samples: 2000,
            seed: 0,
            level: 0.95,
        }
    }
}

impl Bootstrap {
    /// `statistic` on `tables` with its percentile interval: each resample draws pairs with
    /// replacement and, within each drawn pair, seeds with replacement. Resamples where the
    /// statistic is undefined are skipped. `None` if it is undefined on the data itself.
    pub fn estimate(
        &self,
        tables: &[&Table],
        statistic: impl Fn(&[&Table], &[Vec<usize>]) -> Option<f64>,
    ) -> Option<Estimate> {
        self.estimate_over(
            tables,
            |t| t,
            |picked, seeds| {
                let picked: Vec<&Table> = picked.iter().map(|t| **t).collect();
                statistic(&picked, seeds)
            },
        )
    }

    /// [`Self::estimate`] over items that each carry a table (e.g. a width and its table):
    /// resamples items, and seeds within each item's table.
    pub fn estimate_over<T>(
        &self,
        items: &[T],
        table: impl Fn(&T) -> &Table,
        statistic: impl Fn(&[&T], &[Vec<usize>]) -> Option<f64>,
    ) -> Option<Estimate> {
        let all: Vec<&T> = items.iter().collect();
        let all_seeds: Vec<Vec<usize>> = items.iter().map(|t| (0..table(t).n_seeds()).collect()).collect();
        let value = statistic(&all, &all_seeds)?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut draws = Vec::with_capacity(self.samples);
        for _ in 0..self.samples {
            let picked: Vec<&T> = (0..items.len())
                .map(|_| &items[rng.random_range(0..items.len())])
                .collect();
            let seeds: Vec<Vec<usize>> = picked
                .iter()
                .map(|t| {
                    let n = table(t).n_seeds();
                    (0..n).map(|_| rng.random_range(0..n)).collect()
                })
                .collect();
            draws.extend(statistic(&picked, &seeds));
        }
        if draws.is_empty() {
            return None;
        }
        draws.sort_by(f64::total_cmp);
        let at = |q: f64| draws[((q * (draws.len() - 1) as f64).round() as usize).min(draws.len() - 1)];
        let tail = (1.0 - self.level) / 2.0;
        Some(Estimate {
            value,
            low: at(tail),
            high: at(1.0 - tail),
            level: self.level,
        })
    }
}

/// A paired sign-flip (randomisation) test of `differences` (e.g. LoRA+ - LoRA per pair and
/// seed) against a mean of zero: the two-sided p-value of the observed mean under random signs.
/// Exact (all 2^n sign patterns) up to n = 16, else `samples` random patterns from `seed`.
pub fn sign_flip_test(differences: &[f64], samples: usize, seed: u64) -> Option<f64> {
    let n = differences.len();
    if n == 0 {
        return None;
    }
    let observed = differences.iter().sum::<f64>().abs();
    // A tolerance, so sign patterns that tie the observed sum count as extreme.
    let extreme = |signs: &mut dyn Iterator<Item = bool>| {
        let sum: f64 = differences
            .iter()
            .zip(signs)
            .map(|(d, flip)| if flip { -d } else { *d })
            .sum();
        sum.abs() >= observed - 1e-12
    };
    let (hits, total) = if n <= 16 {
        let patterns = 1u32 << n;
        let hits = (0..patterns)
            .filter(|p| extreme(&mut (0..n).map(|i| p >> i & 1 == 1)))
            .count();
        (hits, patterns as usize)
    } else {
        let mut rng = StdRng::seed_from_u64(seed);
        let hits = (0..samples)
            .filter(|_| extreme(&mut (0..n).map(|_| rng.random_bool(0.5)).collect::<Vec<_>>().into_iter()))
            .count();
        // Counting the observed pattern keeps the Monte Carlo p-value valid (never 0).
        (hits + 1, samples + 1)
    };
    Some(hits as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pair whose best cell has ratio 2^`best`, plus seed noise of `noise`.
    fn table(best: f64, noise: f64, seed_offsets: &[f64]) -> Table {
        let ratios = [1.0, 4.0, 16.0, 64.0, 256.0];
        let cells: Vec<(f64, f64)> = ratios.iter().map(|&r| (1e-3, r)).collect();
        let values = ratios
            .iter()
            .map(|r: &f64| {
                let acc = 0.9 - 0.02 * (r.log2() - best).abs();
                seed_offsets.iter().map(|o| Some(acc + noise * o)).collect()
            })
            .collect();
        Table { cells, values }
    }

    #[test]
    fn top_k_uses_seed_means_and_skips_unusable_cells() {
        let mut t = table(4.0, 0.0, &[0.0, 0.0]);
        assert_eq!(
            t.top_log2_ratios(&[0, 1], 2),
            [4.0, 2.0],
            "ties go to the smaller ratio"
        );
        t.values[2][1] = None; // ratio 16 diverged on seed 1
        assert_eq!(t.top_log2_ratios(&[0, 1], 1), [2.0]);
        assert_eq!(t.top_log2_ratios(&[0, 0], 1), [4.0], "seed 1 not drawn");
        // 0.1 + 0.2 is 0.30000000000000004 in floats: still a tie with 0.3 + 0.0.
        t.values[0] = vec![Some(0.3), Some(0.0)];
        t.values[1] = vec![Some(0.1), Some(0.2)];
        assert_eq!(
            t.top_log2_ratios(&[0, 1], 4)[2..],
            [0.0, 2.0],
            "float rounding breaks no tie"
        );
        let (gain, lora, plus) = table(4.0, 0.0, &[0.0]).gain(&[0]).unwrap();
        assert!((gain - 0.08).abs() < 1e-12 && (lora, plus) == (0, 2));
    }

    #[test]
    fn the_bootstrap_is_deterministic_and_covers_the_known_value() {
        // Eight pairs whose optima are at log2 ratio 4, 4, 4, 4, 6, 2, 4, 4 and three seeds of
        // small noise: the median is 4.
        let offsets = [-1.0, 0.3, 0.7];
        let tables: Vec<Table> = [4.0, 4.0, 4.0, 4.0, 6.0, 2.0, 4.0, 4.0]
            .iter()
            .map(|&b| table(b, 0.001, &offsets))
            .collect();
        let refs: Vec<&Table> = tables.iter().collect();
        let bootstrap = Bootstrap {
            samples: 500,
            ..Default::default()
        };
        let median = |t: &[&Table], s: &[Vec<usize>]| median_log2_ratio(t, s, 1);
        let a = bootstrap.estimate(&refs, median).unwrap();
        assert_eq!(
            a,
            bootstrap.estimate(&refs, median).unwrap(),
            "same seed, same interval"
        );
        assert_eq!(a.value, 4.0);
        assert!(a.low <= 4.0 && 4.0 <= a.high, "{a:?}");
        // The resamples follow the seed: the mean over pairs of their first cell's seed mean
        // varies with every draw, so another seed gives another interval around the same value.
        let first_cell = |t: &[&Table], s: &[Vec<usize>]| {
            let means: Option<Vec<f64>> = t.iter().zip(s).map(|(t, s)| t.mean(0, s)).collect();
            means.map(|m| m.iter().sum::<f64>() / m.len() as f64)
        };
        let (zero, one) = (
            bootstrap.estimate(&refs, first_cell).unwrap(),
            Bootstrap { seed: 1, ..bootstrap }.estimate(&refs, first_cell).unwrap(),
        );
        assert_eq!(zero.value, one.value, "the estimate itself is not resampled");
        assert_ne!((zero.low, zero.high), (one.low, one.high));
        assert!(zero.low < zero.value && zero.value < zero.high, "{zero:?}");

        // Pairs with widely spread optima give a wide interval.
        let spread: Vec<Table> = [0.0, 2.0, 4.0, 6.0, 8.0]
            .iter()
            .map(|&b| table(b, 0.001, &offsets))
            .collect();
        let refs: Vec<&Table> = spread.iter().collect();
        let wide = bootstrap.estimate(&refs, median).unwrap();
        assert!(wide.high - wide.low >= 4.0, "{wide:?}");
    }

    #[test]
    fn the_sign_flip_test_is_exact_for_few_differences() {
        // All 4 positive: only the all-plus and all-minus patterns are as extreme: p = 2/16.
        assert_eq!(sign_flip_test(&[1.0, 2.0, 1.5, 0.5], 0, 0), Some(2.0 / 16.0));
        // Symmetric differences: every pattern is at least as extreme as a zero sum.
        assert_eq!(sign_flip_test(&[1.0, -1.0], 0, 0), Some(1.0));
        let many: Vec<f64> = (0..30).map(|i| 0.01 + 0.001 * i as f64).collect();
        let p = sign_flip_test(&many, 2000, 7).unwrap();
        assert!(p < 0.01, "{p}");
        assert_eq!(Some(p), sign_flip_test(&many, 2000, 7));
    }
}
