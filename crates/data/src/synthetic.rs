//! Synthetic tasks that need no download.
//!
//! Each task family has a random *teacher* that labels random inputs. A pretraining task and
//! its downstream tasks share the teacher's seed; a downstream task adds a low-rank *shift* to the
//! teacher (`shift_rank`, `shift_scale`), so a base pretrained on the unshifted teacher must change
//! its features, not only its head, to fit it. That is what makes adapters necessary, and the
//! frozen-base baseline (head only) measures how much.

use loraplus_model::init;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::examples::{Inputs, Split, TaskData, numbered_labels};

/// `label = argmax(ReLU(x (W1 + s U V)) W2)`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeacherTask {
    /// Input features.
    pub d_input: usize,
    /// Classes.
    pub n_classes: usize,
    /// The teacher's hidden width. Default: 32.
    #[serde(default = "default_teacher_width")]
    pub teacher_width: usize,
    /// Seed of `W1`, `W2`; tasks sharing it share a teacher. Default: 0.
    #[serde(default)]
    pub teacher_seed: u64,
    /// Rank of the shift `U V` of `W1`; 0 is the unshifted teacher. Default: 0.
    #[serde(default)]
    pub shift_rank: usize,
    /// Size of the shift relative to `W1` (entries of equal spread at 1). Default: 0.
    #[serde(default)]
    pub shift_scale: f64,
    /// Seed of `U`, `V`. Default: 1.
    #[serde(default = "default_shift_seed")]
    pub shift_seed: u64,
    /// Seed of the inputs. Default: 2.
    #[serde(default = "default_data_seed")]
    pub data_seed: u64,
    /// Split sizes.
    pub n_train: usize,
    /// Validation examples.
    pub n_val: usize,
    /// Test examples.
    pub n_test: usize,
}

/// `label = argmax(mean_t (E + s U V)[token_t])` over sequences of `seq_len` tokens.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BagOfTokensTask {
    /// Vocabulary size; id 0 is padding.
    pub vocab: usize,
    /// Tokens per sequence (before padding).
    pub seq_len: usize,
    /// Classes.
    pub n_classes: usize,
    /// Seed of the score table `E`. Default: 0.
    #[serde(default)]
    pub teacher_seed: u64,
    /// Rank of the shift of `E`. Default: 0.
    #[serde(default)]
    pub shift_rank: usize,
    /// Size of the shift relative to `E`. Default: 0.
    #[serde(default)]
    pub shift_scale: f64,
    /// Seed of the shift. Default: 1.
    #[serde(default = "default_shift_seed")]
    pub shift_seed: u64,
    /// Seed of the sequences. Default: 2.
    #[serde(default = "default_data_seed")]
    pub data_seed: u64,
    /// Split sizes.
    pub n_train: usize,
    /// Validation examples.
    pub n_val: usize,
    /// Test examples.
    pub n_test: usize,
}

fn default_teacher_width() -> usize {
    32
}
fn default_shift_seed() -> u64 {
    1
}
fn default_data_seed() -> u64 {
    2
}

/// `base + scale * U V / sqrt(rank * fan_in)`: a rank-`rank` change whose entries have the spread
/// of `base`'s (`1 / sqrt(fan_in)`) at `scale = 1`.
fn shifted(base: Vec<f64>, rows: usize, cols: usize, rank: usize, scale: f64, seed: u64, fan_in: usize) -> Vec<f64> {
    if rank == 0 || scale == 0.0 {
        return base;
    }
    let mut rng = init::rng(seed);
    let u = gaussian(rows * rank, 1.0, &mut rng);
    let v = gaussian(rank * cols, 1.0, &mut rng);
    let norm = scale / ((rank * fan_in) as f64).sqrt();
    let mut out = base;
    for i in 0..rows {
        for j in 0..cols {
            let uv: f64 = (0..rank).map(|k| u[i * rank + k] * v[k * cols + j]).sum();
            out[i * cols + j] += norm * uv;
        }
    }
    out
}

fn gaussian(n: usize, std: f64, rng: &mut impl Rng) -> Vec<f64> {
    let normal = Normal::new(0.0, std).expect("finite std");
    (0..n).map(|_| normal.sample(rng)).collect()
}

fn argmax(scores: &[f64]) -> i64 {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
        }
    }
    best as i64
}

impl TeacherTask {
    /// Generates the three splits; the same config always gives the same data.
    pub fn generate(&self) -> TaskData {
        let (d, h, c) = (self.d_input, self.teacher_width, self.n_classes);
        let mut rng = init::rng(self.teacher_seed);
        let w1 = gaussian(d * h, 1.0 / (d as f64).sqrt(), &mut rng);
        let w2 = gaussian(h * c, 1.0 / (h as f64).sqrt(), &mut rng);
        let w1 = shifted(w1, d, h, self.shift_rank, self.shift_scale, self.shift_seed, d);
        let label = |x: &[f64]| {
            let hidden: Vec<f64> = (0..h)
                .map(|j| (0..d).map(|i| x[i] * w1[i * h + j]).sum::<f64>().max(0.0))
                .collect();
            let scores: Vec<f64> = (0..c)
                .map(|k| (0..h).map(|j| hidden[j] * w2[j * c + k]).sum())
                .collect();
            argmax(&scores)
        };
        let mut data_rng = init::rng(self.data_seed);
        let mut split = |n: usize| {
            let x = gaussian(n * d, 1.0, &mut data_rng);
            let labels = x.chunks(d).map(label).collect();
            Split {
                inputs: Inputs::Vectors {
                    values: x.iter().map(|v| *v as f32).collect(),
                    dim: d,
                },
                labels,
            }
        };
        TaskData {
            train: split(self.n_train),
            val: split(self.n_val),
            test: split(self.n_test),
            labels: numbered_labels(c),
        }
    }
}

impl BagOfTokensTask {
    /// Generates the three splits; the same config always gives the same data.
    pub fn generate(&self) -> TaskData {
        let (v, c, len) = (self.vocab, self.n_classes, self.seq_len);
        let mut rng = init::rng(self.teacher_seed);
        let table = gaussian(v * c, 1.0, &mut rng);
        let table = shifted(table, v, c, self.shift_rank, self.shift_scale, self.shift_seed, 1);
        let mut data_rng = init::rng(self.data_seed);
        let mut split = |n: usize| {
            let (mut ids, mut mask, mut labels) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..n {
                // Lengths vary from half to all of seq_len, so padding and masks are exercised.
                let tokens = data_rng.random_range(len.div_ceil(2)..=len);
                let seq: Vec<i64> = (0..tokens).map(|_| data_rng.random_range(1..v as i64)).collect();
                let scores: Vec<f64> = (0..c)
                    .map(|k| seq.iter().map(|t| table[*t as usize * c + k]).sum::<f64>() / tokens as f64)
                    .collect();
                labels.push(argmax(&scores));
                ids.extend(seq.iter().copied().chain(std::iter::repeat_n(0, len - tokens)));
                mask.extend(std::iter::repeat_n(1, tokens).chain(std::iter::repeat_n(0, len - tokens)));
            }
            Split {
                inputs: Inputs::Tokens {
                    type_ids: vec![0; ids.len()],
                    ids,
                    mask,
                    seq_len: len,
                },
                labels,
            }
        };
        TaskData {
            train: split(self.n_train),
            val: split(self.n_val),
            test: split(self.n_test),
            labels: numbered_labels(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn teacher(shift_rank: usize, shift_scale: f64) -> TeacherTask {
        TeacherTask {
            d_input: 8,
            n_classes: 3,
            teacher_width: 16,
            teacher_seed: 0,
            shift_rank,
            shift_scale,
            shift_seed: 1,
            data_seed: 2,
            n_train: 500,
            n_val: 10,
            n_test: 10,
        }
    }

    #[test]
    fn same_config_same_data_and_a_shift_changes_labels() {
        let a = teacher(0, 0.0).generate();
        let b = teacher(0, 0.0).generate();
        assert_eq!(a.train.labels, b.train.labels);
        let shifted = teacher(2, 1.5).generate();
        let changed = a
            .train
            .labels
            .iter()
            .zip(&shifted.train.labels)
            .filter(|(x, y)| x != y)
            .count();
        assert!(
            changed > 50 && changed < 450,
            "a rank-2 shift relabels part of the data: {changed} of 500"
        );
        // Every class occurs.
        assert!((0..3).all(|c| a.train.labels.contains(&c)));
    }

    #[test]
    fn token_sequences_are_padded_and_masked() {
        let task = BagOfTokensTask {
            vocab: 20,
            seq_len: 6,
            n_classes: 2,
            teacher_seed: 0,
            shift_rank: 0,
            shift_scale: 0.0,
            shift_seed: 1,
            data_seed: 2,
            n_train: 50,
            n_val: 5,
            n_test: 5,
        };
        let data = task.generate();
        let Inputs::Tokens { ids, mask, seq_len, .. } = &data.train.inputs else {
            panic!("tokens")
        };
        assert_eq!(ids.len(), 50 * seq_len);
        for (id, m) in ids.iter().zip(mask) {
            assert_eq!(*id == 0, *m == 0, "padding is exactly where the mask is 0");
        }
        let batch = data.train.batch(&[3, 1], &Device::flex());
        assert_eq!(batch.labels.dims(), [2]);
    }
}
