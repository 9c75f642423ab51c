//! Dropout whose masks come from a seeded generator owned by the running trial.
//!
//! Burn's `Dropout` draws from the backend's process-wide generator, so trials training in
//! parallel interleave their draws and cannot be reproduced. Here each thread holds a stack of
//! generators: [`with_dropout_seed`] pushes one for the duration of a closure (a trial), and every
//! mask drawn inside it comes from that generator alone. A stack, not a single slot, because
//! rayon may run a second trial on the same thread while the first waits inside a parallel
//! tensor op; the second pushes and pops its own generator and leaves the first one's untouched.

use std::cell::RefCell;

use burn::config::Config;
use burn::module::{Flag, Module, Param};
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rayon::prelude::*;

thread_local! {
    static GENERATORS: RefCell<Vec<MaskSource>> = const { RefCell::new(Vec::new()) };
}

/// The generator of one running trial (or group of stacked trials).
/// Mask values drawn per parallel task.
const MASK_BLOCK: usize = 1 << 14;

struct MaskSource {
    /// ChaCha12 (what `StdRng` is), used directly for its jump-ahead (`set_word_pos`).
    rng: ChaCha12Rng,
    /// Stacked trials sharing each mask (see [`with_member_dropout`]).
    members: usize,
}

/// Runs `body` with dropout masks drawn from a generator seeded with `seed`.
pub fn with_dropout_seed<T>(seed: u64, body: impl FnOnce() -> T) -> T {
    with_member_dropout(seed, 1, body)
}

/// Like [`with_dropout_seed`], for `members` stacked trials of one seed (see
/// [`members`](crate::members)): each mask is drawn for one member and repeated for all, so every
/// member sees the masks it would see training alone.
pub fn with_member_dropout<T>(seed: u64, members: usize, body: impl FnOnce() -> T) -> T {
    let source = MaskSource {
        rng: ChaCha12Rng::seed_from_u64(seed),
        members,
    };
    GENERATORS.with(|g| g.borrow_mut().push(source));
    let result = body();
    GENERATORS.with(|g| g.borrow_mut().pop());
    result
}

/// `n` mask values: `1 / keep` with probability `keep`, else 0. Outside any
/// [`with_dropout_seed`] scope the generator is seeded with 0.
fn mask(n: usize, keep: f64) -> Vec<f32> {
    let scale = (1.0 / keep) as f32;
    // A kept element is a uniform u32 below keep * 2^32: one 32-bit draw per element. Blocks of
    // the mask are drawn in parallel, each from the generator jumped ahead to its first word, so
    // the mask is the one a single sequential `fill` would give, on any number of threads.
    let threshold = (keep * 4_294_967_296.0) as u64;
    let draw = |source: &mut MaskSource| {
        assert!(
            n.is_multiple_of(source.members),
            "{n} activations do not split into {} members",
            source.members
        );
        let len = n / source.members;
        let start = source.rng.get_word_pos();
        let mut one = vec![0.0f32; len];
        let generator = &source.rng;
        one.par_chunks_mut(MASK_BLOCK).enumerate().for_each(|(block, out)| {
            let mut rng = generator.clone();
            rng.set_word_pos(start + (block * MASK_BLOCK) as u128);
            let mut bits = vec![0u32; out.len()];
            rng.fill(&mut bits[..]);
            for (o, b) in out.iter_mut().zip(bits) {
                *o = if (b as u64) < threshold { scale } else { 0.0 };
            }
        });
        source.rng.set_word_pos(start + len as u128);
        match source.members {
            1 => one,
            members => one.repeat(members),
        }
    };
    GENERATORS.with(|g| {
        let mut stack = g.borrow_mut();
        if stack.is_empty() {
            stack.push(MaskSource {
                rng: ChaCha12Rng::seed_from_u64(0),
                members: 1,
            });
        }
        draw(stack.last_mut().expect("pushed above"))
    })
}

/// Configuration of a [`Dropout`].
#[derive(Config, Debug)]
pub struct DropoutConfig {
    /// Probability of zeroing an element during training.
    pub prob: f64,
}

/// Zeroes each element with probability `prob` during training and scales the rest by
/// `1 / (1 - prob)` (Srivastava et al. 2014); the identity in evaluation (`Module::valid`) and
/// on devices without autodiff.
#[derive(Module, Debug)]
pub struct Dropout {
    /// Probability of zeroing an element.
    pub prob: f64,
    /// Whether the layer trains; cleared by `valid` and `freeze`.
    pub training: Param<Flag>,
}

impl DropoutConfig {
    /// A dropout layer.
    ///
    /// # Panics
    /// If `prob` is not in `[0, 1)`.
    pub fn init(&self) -> Dropout {
        assert!(
            (0.0..1.0).contains(&self.prob),
            "dropout probability must be in [0, 1), got {}",
            self.prob
        );
        Dropout {
            prob: self.prob,
            training: Param::from_bool(true),
        }
    }
}

impl Dropout {
    /// # Shapes
    /// `[...] -> [...]`
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        match self.mask(&input) {
            Some(mask) => input * mask,
            None => input,
        }
    }

    /// The next mask for a tensor shaped like `input`: 0 for a dropped element, `1 / (1 - prob)`
    /// for a kept one; `None` when nothing is dropped (evaluation, no autodiff, `prob = 0`). For
    /// the fused ops that apply the mask themselves.
    pub fn mask<const D: usize>(&self, input: &Tensor<D>) -> Option<Tensor<D>> {
        let device = input.device();
        if self.prob == 0.0 || !self.training.is_enabled() || !device.is_autodiff() {
            return None;
        }
        let shape = input.shape();
        let values = mask(shape.num_elements(), 1.0 - self.prob);
        Some(Tensor::from_data(TensorData::new(values, shape), &device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn dropped(seed: u64) -> Vec<f32> {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::ones([50, 40], &device);
        with_dropout_seed(seed, || DropoutConfig::new(0.25).init().forward(x))
            .into_data()
            .try_to_vec()
            .unwrap()
    }

    #[test]
    fn same_seed_same_mask_and_kept_values_are_rescaled() {
        let (a, b, c) = (dropped(3), dropped(3), dropped(4));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| *v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        let kept = a.iter().filter(|v| **v != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.75).abs() < 0.05, "kept {kept}");
    }

    #[test]
    fn parallel_masks_are_the_sequential_stream() {
        let keep = 0.75f64;
        let n = 3 * MASK_BLOCK + 123;
        let (first, second) = with_dropout_seed(9, || (mask(n, keep), mask(77, keep)));
        // The same draws from `StdRng`, one sequential fill for both masks.
        let mut bits = vec![0u32; n + 77];
        rand::rngs::StdRng::seed_from_u64(9).fill(&mut bits[..]);
        let expected: Vec<f32> = bits
            .iter()
            .map(|&b| {
                if (b as f64) < keep * 4_294_967_296.0 {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(first, expected[..n]);
        assert_eq!(second, expected[n..]);
    }

    #[test]
    fn stacked_members_share_the_mask_one_trial_draws() {
        let device = Device::flex().autodiff();
        let alone = dropped(5);
        let stacked: Vec<f32> = with_member_dropout(5, 3, || {
            DropoutConfig::new(0.25)
                .init()
                .forward(Tensor::<2>::ones([150, 40], &device))
        })
        .into_data()
        .try_to_vec()
        .unwrap();
        for member in stacked.chunks(alone.len()) {
            assert_eq!(member, alone);
        }
    }

    #[test]
    fn a_nested_scope_leaves_the_outer_generator_untouched() {
        let device = Device::flex().autodiff();
        let dropout = DropoutConfig::new(0.5).init();
        let x = || Tensor::<1>::ones([64], &device);
        let alone = with_dropout_seed(1, || {
            (dropout.forward(x()).into_data(), dropout.forward(x()).into_data())
        });
        let interrupted = with_dropout_seed(1, || {
            let first = dropout.forward(x()).into_data();
            with_dropout_seed(2, || dropout.forward(x()));
            (first, dropout.forward(x()).into_data())
        });
        assert_eq!(alone, interrupted);
    }

    #[test]
    fn evaluation_is_the_identity() {
        let device = Device::flex().autodiff();
        let dropout = DropoutConfig::new(0.5).init().valid();
        let x = Tensor::<1>::ones([64], &device.inner());
        assert_eq!(dropout.forward(x.clone()).into_data(), x.into_data());
    }
}
