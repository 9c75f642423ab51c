//! Seeded random tensors.
//!
//! Burn's own initialisers draw from a per-device generator that every thread shares, so two
//! trials initialised in parallel would interleave their draws and lose reproducibility. Every
//! random tensor in this crate is drawn from an explicit, caller-owned generator instead.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal, Uniform};

/// The generator every initialiser takes; seed it once per trial.
pub type InitRng = StdRng;

/// A generator seeded with `seed`.
pub fn rng(seed: u64) -> InitRng {
    StdRng::seed_from_u64(seed)
}

/// `U(-bound, bound)` of the given shape.
pub fn uniform<const D: usize>(shape: [usize; D], bound: f64, rng: &mut impl Rng, device: &Device) -> Tensor<D> {
    if bound == 0.0 {
        return Tensor::zeros(shape, device);
    }
    let dist = Uniform::new(-bound, bound).expect("bound is finite and positive");
    sample(shape, |r| dist.sample(r), rng, device)
}

/// `N(0, std^2)` of the given shape.
pub fn normal<const D: usize>(shape: [usize; D], std: f64, rng: &mut impl Rng, device: &Device) -> Tensor<D> {
    let dist = Normal::new(0.0, std).expect("std is finite and non-negative");
    sample(shape, |r| dist.sample(r), rng, device)
}

/// PyTorch's `kaiming_uniform_(w, a = sqrt(5))` for a weight with `fan_in` inputs, the default
/// of `nn.Linear` and of PEFT's `lora_A`: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
pub fn kaiming_uniform_a_sqrt5<const D: usize>(
    shape: [usize; D],
    fan_in: usize,
    rng: &mut impl Rng,
    device: &Device,
) -> Tensor<D> {
    // gain = sqrt(2 / (1 + a^2)) = sqrt(1/3); bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
    uniform(shape, 1.0 / (fan_in as f64).sqrt(), rng, device)
}

fn sample<const D: usize, R: Rng>(
    shape: [usize; D],
    mut draw: impl FnMut(&mut R) -> f64,
    rng: &mut R,
    device: &Device,
) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| draw(rng) as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_tensor_and_bounds_hold() {
        let device = Device::flex();
        let a: Tensor<2> = kaiming_uniform_a_sqrt5([16, 4], 16, &mut rng(7), &device);
        let b: Tensor<2> = kaiming_uniform_a_sqrt5([16, 4], 16, &mut rng(7), &device);
        let (a, b) = (
            a.into_data().try_to_vec::<f32>().unwrap(),
            b.into_data().try_to_vec::<f32>().unwrap(),
        );
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.abs() <= 0.25), "bound is 1/sqrt(16)");
        assert!(a.iter().any(|v| v.abs() > 0.1), "values spread over the interval");
    }

    #[test]
    fn normal_has_requested_spread() {
        let device = Device::flex();
        let x: Tensor<1> = normal([20_000], 0.5, &mut rng(1), &device);
        let v = x.into_data().try_to_vec::<f32>().unwrap();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.02, "std {}", var.sqrt());
    }
}
