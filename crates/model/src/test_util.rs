//! Helpers shared by this crate's numerical tests.

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};

/// A tensor's values, row-major.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// Asserts `|actual - expected| <= tol * max(1, |expected|)` elementwise.
pub fn assert_close(actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol * e.abs().max(1.0),
            "element {i}: {a} vs {e} (tol {tol})"
        );
    }
}

/// d loss / d param by central differences, one element at a time.
///
/// The losses in these tests are quadratic in any single element, for which the central
/// difference is exact up to rounding; `eps` is large to keep f32 rounding small.
pub fn central_difference<M: Clone>(
    module: &M,
    param: impl Fn(&mut M) -> &mut Param<Tensor<2>>,
    loss: impl Fn(&M) -> Vec<f32>,
) -> Vec<f32> {
    central_difference_at(1e-2, module, param, loss)
}

/// [`central_difference`] with step `eps`, for losses far from quadratic (whose truncation error
/// grows with `eps^2`).
pub fn central_difference_at<M: Clone>(
    eps: f32,
    module: &M,
    param: impl Fn(&mut M) -> &mut Param<Tensor<2>>,
    loss: impl Fn(&M) -> Vec<f32>,
) -> Vec<f32> {
    let mut probe = module.clone();
    let tensor = param(&mut probe).val();
    let (shape, device) = (tensor.dims(), tensor.device());
    let original = values(tensor);
    let loss_at = |i: usize, delta: f32| {
        let mut moved = original.clone();
        moved[i] += delta;
        let mut module = module.clone();
        *param(&mut module) = Param::from_tensor(Tensor::from_data(TensorData::new(moved, shape), &device));
        loss(&module)[0]
    };
    (0..original.len())
        .map(|i| (loss_at(i, eps) - loss_at(i, -eps)) / (2.0 * eps))
        .collect()
}
