//! Each fused op against the same computation composed from Burn's ops: values, and the
//! gradients of a random linear functional of the output with respect to every input.

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use super::*;
use crate::init::{normal, rng, uniform};
use crate::test_util::{assert_close, values};

fn device() -> Device {
    Device::flex().autodiff()
}

/// `sum(output * weights)` for fixed random weights: its gradient is a fixed random projection.
fn functional<const D: usize>(output: Tensor<D>, seed: u64) -> Tensor<1> {
    let weights: Tensor<D> = normal(output.dims(), 1.0, &mut rng(seed), &output.device());
    (output * weights).sum()
}

/// A dropout mask with values 0 and 1 / 0.8.
fn mask<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    let draws: Tensor<D> = uniform(shape, 1.0, &mut rng(seed), &device());
    draws.greater_elem(-0.6).float().mul_scalar(1.0 / 0.8)
}

#[test]
fn gelu_matches_burn() {
    let x: Tensor<3> = normal([3, 5, 70], 2.0, &mut rng(1), &device()).require_grad();
    let fused = gelu(x.clone());
    let reference = burn::tensor::activation::gelu(x.clone());
    assert_close(&values(fused.clone()), &values(reference.clone()), 1e-6);
    let fused_grad = values(x.grad(&functional(fused, 2).backward()).unwrap());
    let reference_grad = values(x.grad(&functional(reference, 2).backward()).unwrap());
    assert_close(&fused_grad, &reference_grad, 1e-5);
}

#[test]
fn attention_softmax_matches_composed_ops() {
    let [batch, heads, queries, keys] = [3, 2, 5, 7];
    let scores: Tensor<4> = normal([batch, heads, queries, keys], 3.0, &mut rng(3), &device()).require_grad();
    // The last two keys of the second sequence are padding.
    let padding = Tensor::<2>::from_floats([[0.0; 7], [0., 0., 0., 0., 0., -1e9, -1e9], [0.0; 7]], &device());
    for dropout in [None, Some(mask([batch, heads, queries, keys], 4))] {
        let fused = attention_softmax(scores.clone(), padding.clone(), 0.125, dropout.clone());
        let reference = reference_attention_softmax(scores.clone(), padding.clone(), 0.125, dropout.clone());
        assert_close(&values(fused.clone()), &values(reference.clone()), 1e-6);
        let fused_grad = values(scores.grad(&functional(fused, 5).backward()).unwrap());
        let reference_grad = values(scores.grad(&functional(reference, 5).backward()).unwrap());
        assert_close(&fused_grad, &reference_grad, 1e-5);
    }
}

#[test]
fn residual_layer_norm_matches_composed_ops() {
    let width = 24;
    let mut norm = burn::nn::LayerNormConfig::new(width).with_epsilon(1e-5).init(&device());
    // Non-trivial gamma and beta, trainable.
    norm.gamma = Param::from_tensor(normal([width], 1.0, &mut rng(6), &device()));
    norm.beta = Some(Param::from_tensor(normal([width], 1.0, &mut rng(7), &device())));
    let x: Tensor<3> = normal([4, 3, width], 2.0, &mut rng(8), &device()).require_grad();
    let residual: Tensor<3> = normal([4, 3, width], 1.0, &mut rng(9), &device()).require_grad();
    for dropout in [None, Some(mask([4, 3, width], 10))] {
        let fused = residual_layer_norm(x.clone(), residual.clone(), dropout.clone(), &norm, 1e-5);
        let reference = reference_residual_layer_norm(x.clone(), residual.clone(), dropout.clone(), &norm);
        assert_close(&values(fused.clone()), &values(reference.clone()), 1e-5);
        let (fused, reference) = (functional(fused, 11).backward(), functional(reference, 11).backward());
        let gamma = norm.gamma.val();
        let beta = norm.beta.as_ref().unwrap().val();
        for (name, f, r) in [
            ("x", x.grad(&fused), x.grad(&reference)),
            ("residual", residual.grad(&fused), residual.grad(&reference)),
        ] {
            assert_close(&values(f.expect(name)), &values(r.expect(name)), 1e-4);
        }
        for (name, f, r) in [
            ("gamma", gamma.grad(&fused), gamma.grad(&reference)),
            ("beta", beta.grad(&fused), beta.grad(&reference)),
        ] {
            assert_close(&values(f.expect(name)), &values(r.expect(name)), 1e-4);
        }
    }
}

#[test]
fn frozen_norm_parameters_get_no_gradient() {
    let width = 8;
    let norm = burn::nn::LayerNormConfig::new(width).init(&device()).no_grad();
    let x: Tensor<2> = normal([5, width], 1.0, &mut rng(12), &device()).require_grad();
    let grads = functional(residual_layer_norm(x.clone(), x.clone(), None, &norm, 1e-5), 13).backward();
    assert!(x.grad(&grads).is_some());
    assert!(norm.gamma.val().grad(&grads).is_none());
}

#[test]
fn linear_matches_burn_with_and_without_weight_gradients() {
    let x: Tensor<3> = normal([4, 3, 10], 1.0, &mut rng(14), &device()).require_grad();
    let bias: Tensor<1> = normal([6], 1.0, &mut rng(15), &device()).require_grad();
    for weight_trains in [true, false] {
        let weight: Tensor<2> = normal([10, 6], 1.0, &mut rng(16), &device());
        let weight = if weight_trains { weight.require_grad() } else { weight };
        let fused = linear(x.clone(), weight.clone(), Some(bias.clone()));
        let reference = burn::tensor::module::linear(x.clone(), weight.clone(), Some(bias.clone()));
        assert_close(&values(fused.clone()), &values(reference.clone()), 1e-5);
        let (fused, reference) = (functional(fused, 17).backward(), functional(reference, 17).backward());
        assert_close(
            &values(x.grad(&fused).unwrap()),
            &values(x.grad(&reference).unwrap()),
            1e-5,
        );
        assert_close(
            &values(bias.grad(&fused).unwrap()),
            &values(bias.grad(&reference).unwrap()),
            1e-5,
        );
        match weight.grad(&fused) {
            Some(d_weight) => assert_close(&values(d_weight), &values(weight.grad(&reference).unwrap()), 1e-5),
            None => assert!(!weight_trains, "a trainable weight gets a gradient"),
        }
    }
}
