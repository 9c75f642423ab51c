//! Fused CPU kernels for the transformer's memory-bound ops, on Burn's flex backend.
//!
//! Composed from Burn's tensor ops, a BERT layer's softmax, LayerNorm and GELU are a dozen
//! elementwise passes, each allocating its output and each running on one thread (flex
//! parallelises matmuls, not elementwise ops), and autodiff records every pass and runs a
//! backward pass for each. Here each is one op with a hand-written backward, computed row by row
//! over all cores ([`kernels`]):
//!
//! - [`linear`]: `x W + b`, the bias written first and the product added onto it by the `gemm`
//!   crate's kernels directly into the output (flex's matmul zeroes its output and then copies it
//!   to re-align it: two extra passes per product); backward skips a frozen `W`'s gradient;
//! - [`gelu`]: `x * Phi(x)`;
//! - [`attention_softmax`]: `softmax(scores * scale + key_bias)`, then the dropout mask;
//! - [`residual_layer_norm`]: `LayerNorm(x * mask + residual)`.
//!
//! Each function takes the fused path for `f32` tensors on the flex device (with or without
//! autodiff) and otherwise computes the same thing from Burn's ops (`reference_*`), so other
//! backends (ndarray, wgpu) are unchanged. The tests check every fused op's value and gradients
//! against that composed computation. [`set_enabled`] switches the fused path off, for
//! measuring what it saves.

mod kernels;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, ExtensionType, Flex, TensorMetadata, backend_extension};
use burn::nn::LayerNorm;
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Device, Shape, Tensor, TensorData};

use kernels::LayerNormSaved;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the fused kernels on (the default) or off for the whole process.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether `x` takes the fused path.
fn fusable<const D: usize>(x: &Tensor<D>) -> bool {
    ENABLED.load(Ordering::Relaxed) && x.dtype() == DType::F32 && x.device().inner() == Device::flex()
}

/// `x W + b`, with `W` in Burn's `[d_in, d_out]` layout.
///
/// # Shapes
/// `x`: `[..., d_in]`, `weight`: `[d_in, d_out]`, `bias`: `[d_out]` -> `[..., d_out]`
///
/// # Panics
/// If `x`'s last axis is not `d_in`, or the bias is not `d_out` long.
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    let ([d_in, d_out], width) = (weight.dims(), x.dims()[D - 1]);
    assert_eq!(
        width, d_in,
        "linear: input width {width} but the weight is {d_in} x {d_out}"
    );
    if let Some(bias) = &bias {
        assert_eq!(
            bias.dims(),
            [d_out],
            "linear: bias of {:?} for {d_out} outputs",
            bias.dims()
        );
    }
    match bias {
        Some(bias) if fusable(&x) => Tensor::from_dispatch(<Dispatch as FusedOps>::fused_linear(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        )),
        bias => burn::tensor::module::linear(x, weight, bias),
    }
}

/// `x * Phi(x)` (exact GELU), elementwise.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !fusable(&x) {
        return burn::tensor::activation::gelu(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_gelu(x.into_dispatch()))
}

/// Attention probabilities: `softmax(scores * scale + key_bias)` over the keys, times the dropout
/// mask when one is given.
///
/// # Shapes
/// - `scores`, `dropout`: `[batch, heads, queries, keys]`
/// - `key_bias`: `[batch, keys]` (0 for a token, a large negative number for padding)
/// - output: `[batch, heads, queries, keys]`
pub fn attention_softmax(scores: Tensor<4>, key_bias: Tensor<2>, scale: f64, dropout: Option<Tensor<4>>) -> Tensor<4> {
    if !fusable(&scores) {
        return reference_attention_softmax(scores, key_bias, scale, dropout);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_attention_softmax(
        scores.into_dispatch(),
        key_bias.into_dispatch(),
        Mask::new(dropout),
        scale as f32,
    ))
}

fn reference_attention_softmax(
    scores: Tensor<4>,
    key_bias: Tensor<2>,
    scale: f64,
    dropout: Option<Tensor<4>>,
) -> Tensor<4> {
    let probs = softmax(scores.mul_scalar(scale) + key_bias.unsqueeze_dims::<4>(&[1, 2]), 3);
    match dropout {
        Some(mask) => probs * mask,
        None => probs,
    }
}

/// `norm(x * dropout + residual)`: the end of a post-LayerNorm transformer block. `epsilon` is
/// `norm`'s (which Burn's `LayerNorm` keeps private).
///
/// # Shapes
/// `x`, `residual`, `dropout`: `[..., d]` -> `[..., d]`
pub fn residual_layer_norm<const D: usize>(
    x: Tensor<D>,
    residual: Tensor<D>,
    dropout: Option<Tensor<D>>,
    norm: &LayerNorm,
    epsilon: f64,
) -> Tensor<D> {
    let Some(beta) = norm.beta.as_ref().filter(|_| fusable(&x)) else {
        return reference_residual_layer_norm(x, residual, dropout, norm);
    };
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_residual_layer_norm(
        x.into_dispatch(),
        residual.into_dispatch(),
        Mask::new(dropout),
        norm.gamma.val().into_dispatch(),
        beta.val().into_dispatch(),
        epsilon as f32,
    ))
}

fn reference_residual_layer_norm<const D: usize>(
    x: Tensor<D>,
    residual: Tensor<D>,
    dropout: Option<Tensor<D>>,
    norm: &LayerNorm,
) -> Tensor<D> {
    let x = match dropout {
        Some(mask) => x * mask,
        None => x,
    };
    norm.forward(x + residual)
}

/// The fused ops as a Burn backend extension: implemented for flex and for autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// See [`linear`].
    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
    /// See [`gelu`].
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// See [`attention_softmax`].
    fn fused_attention_softmax(
        scores: FloatTensor<Self>,
        key_bias: FloatTensor<Self>,
        #[extension_type] dropout: Mask<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;
    /// See [`residual_layer_norm`].
    fn fused_residual_layer_norm(
        x: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        #[extension_type] dropout: Mask<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self>;
}

/// A dropout mask (kept values scaled by `1 / keep`), or none.
#[derive(ExtensionType)]
pub enum Mask<B: Backend> {
    /// Multiply by this mask.
    Drop(FloatTensor<B>),
    /// No dropout (evaluation, or probability 0).
    Off,
}

impl Mask<Dispatch> {
    fn new<const D: usize>(mask: Option<Tensor<D>>) -> Self {
        mask.map_or(Self::Off, |mask| Self::Drop(mask.into_dispatch()))
    }
}

impl<B: Backend> Mask<B> {
    fn into_option(self) -> Option<FloatTensor<B>> {
        match self {
            Self::Drop(mask) => Some(mask),
            Self::Off => None,
        }
    }
}

type FlexFloat = FloatTensor<Flex>;

/// `t` with a contiguous row-major `f32` buffer (a copy only if it was a strided view).
fn contiguous(t: FlexFloat) -> FlexFloat {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

fn slice(t: &FlexFloat) -> &[f32] {
    t.as_slice::<f32>().expect("made contiguous f32 by `contiguous`")
}

fn flex(values: Vec<f32>, shape: Shape) -> FlexFloat {
    FlexFloat::from_data(TensorData::new(values, shape))
}

fn linear_forward(x: &FlexFloat, weight: &FlexFloat, bias: &FlexFloat) -> FlexFloat {
    let mut shape = x.shape();
    let last = shape.num_dims() - 1;
    shape[last] = bias.shape()[0];
    flex(kernels::linear(slice(x), slice(weight), slice(bias)), shape)
}

/// What the attention softmax keeps for its backward pass.
#[derive(Debug, Clone)]
struct SoftmaxSaved {
    probs: FlexFloat,
    dropout: Option<FlexFloat>,
    scale: f32,
}

fn softmax_forward(
    scores: FlexFloat,
    key_bias: FlexFloat,
    dropout: Option<FlexFloat>,
    scale: f32,
) -> (FlexFloat, SoftmaxSaved) {
    let shape = scores.shape();
    let [_, heads, queries, keys] = shape.dims();
    let (scores, key_bias, dropout) = (contiguous(scores), contiguous(key_bias), dropout.map(contiguous));
    let (probs, dropped) = kernels::attention_softmax(
        slice(&scores),
        keys,
        heads * queries,
        slice(&key_bias),
        scale,
        dropout.as_ref().map(slice),
    );
    let probs = flex(probs, shape.clone());
    let output = if dropout.is_some() {
        flex(dropped, shape)
    } else {
        probs.clone()
    };
    (output, SoftmaxSaved { probs, dropout, scale })
}

#[derive(Debug, Clone)]
struct LayerNormState {
    saved: std::sync::Arc<LayerNormSaved>,
    gamma: FlexFloat,
    dropout: Option<FlexFloat>,
    shape: Shape,
}

fn layer_norm_forward(
    x: FlexFloat,
    residual: FlexFloat,
    dropout: Option<FlexFloat>,
    gamma: FlexFloat,
    beta: FlexFloat,
    epsilon: f32,
) -> (FlexFloat, LayerNormState) {
    let shape = x.shape();
    let (x, residual, dropout) = (contiguous(x), contiguous(residual), dropout.map(contiguous));
    let (gamma, beta) = (contiguous(gamma), contiguous(beta));
    let (output, saved) = kernels::residual_layer_norm(
        slice(&x),
        slice(&residual),
        dropout.as_ref().map(slice),
        slice(&gamma),
        slice(&beta),
        epsilon,
    );
    let state = LayerNormState {
        saved: std::sync::Arc::new(saved),
        gamma,
        dropout,
        shape: shape.clone(),
    };
    (flex(output, shape), state)
}

impl FusedOps for Flex {
    fn fused_linear(x: FlexFloat, weight: FlexFloat, bias: FlexFloat) -> FlexFloat {
        linear_forward(&contiguous(x), &contiguous(weight), &contiguous(bias))
    }

    fn fused_gelu(x: FlexFloat) -> FlexFloat {
        let (shape, x) = (x.shape(), contiguous(x));
        flex(kernels::gelu(slice(&x)), shape)
    }

    fn fused_attention_softmax(scores: FlexFloat, key_bias: FlexFloat, dropout: Mask<Flex>, scale: f32) -> FlexFloat {
        softmax_forward(scores, key_bias, dropout.into_option(), scale).0
    }

    fn fused_residual_layer_norm(
        x: FlexFloat,
        residual: FlexFloat,
        dropout: Mask<Flex>,
        gamma: FlexFloat,
        beta: FlexFloat,
        epsilon: f32,
    ) -> FlexFloat {
        layer_norm_forward(x, residual, dropout.into_option(), gamma, beta, epsilon).0
    }
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    /// The input (kept only when the weight trains) and the weight.
    type State = (Option<FlexFloat>, FlexFloat);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        use kernels::Matrix;
        let [x_node, weight_node, bias_node] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, weight) = ops.state;
        let [d_in, d_out] = weight.shape().dims::<2>();
        let rows = grad.shape().num_elements() / d_out;
        let g = Matrix::new(slice(&grad), rows, d_out);
        if let Some(node) = x_node {
            // d x = g W^T
            let mut d_x = vec![0.0; rows * d_in];
            kernels::matmul_into(&mut d_x, false, g, Matrix::new(slice(&weight), d_in, d_out).t());
            let mut shape = grad.shape();
            let last = shape.num_dims() - 1;
            shape[last] = d_in;
            grads.register::<Flex>(node.id, flex(d_x, shape));
        }
        if let Some(node) = weight_node {
            // d W = x^T g
            let x = x.expect("the input is kept when the weight trains");
            let mut d_weight = vec![0.0; d_in * d_out];
            kernels::matmul_into(&mut d_weight, false, Matrix::new(slice(&x), rows, d_in).t(), g);
            grads.register::<Flex>(node.id, flex(d_weight, Shape::new([d_in, d_out])));
        }
        if let Some(node) = bias_node {
            grads.register::<Flex>(
                node.id,
                flex(kernels::column_sums(slice(&grad), d_out), Shape::new([d_out])),
            );
        }
    }
}

#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    /// The input.
    type State = FlexFloat;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        if let Some(parent) = parent {
            let x = contiguous(ops.state);
            let dx = kernels::gelu_backward(slice(&x), slice(&grad));
            grads.register::<Flex>(parent.id, flex(dx, x.shape()));
        }
    }
}

#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 2> for SoftmaxBackward {
    type State = SoftmaxSaved;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [scores, key_bias] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let saved = ops.state;
        let shape = saved.probs.shape();
        let keys = shape.dims::<4>()[3];
        let d_scores = kernels::attention_softmax_backward(
            slice(&saved.probs),
            keys,
            saved.scale,
            slice(&grad),
            saved.dropout.as_ref().map(slice),
        );
        assert!(
            key_bias.is_none(),
            "the attention key bias is a constant, not a parameter"
        );
        if let Some(scores) = scores {
            grads.register::<Flex>(scores.id, flex(d_scores, shape));
        }
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 4> for LayerNormBackward {
    type State = LayerNormState;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, residual, gamma, beta] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let state = ops.state;
        let (d_v, parameters) = kernels::residual_layer_norm_backward(
            &state.saved,
            slice(&state.gamma),
            slice(&grad),
            gamma.is_some() || beta.is_some(),
        );
        if let Some((d_gamma, d_beta)) = parameters {
            let width = d_gamma.len();
            if let Some(gamma) = gamma {
                grads.register::<Flex>(gamma.id, flex(d_gamma, Shape::new([width])));
            }
            if let Some(beta) = beta {
                grads.register::<Flex>(beta.id, flex(d_beta, Shape::new([width])));
            }
        }
        if let Some(x) = x {
            let d_x = match &state.dropout {
                Some(mask) => kernels::multiply(&d_v, slice(mask)),
                None => d_v.clone(),
            };
            grads.register::<Flex>(x.id, flex(d_x, state.shape.clone()));
        }
        if let Some(residual) = residual {
            grads.register::<Flex>(residual.id, flex(d_v, state.shape));
        }
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let weight_trains = weight.is_tracked();
        let prepared = LinearBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let (x, weight) = (contiguous(x.into_primitive()), contiguous(weight.into_primitive()));
        let output = linear_forward(&x, &weight, &contiguous(bias.into_primitive()));
        match prepared {
            OpsKind::Tracked(prep) => prep.finish((weight_trains.then_some(x), weight), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let input = contiguous(x.primitive().clone());
                prep.finish(input.clone(), Flex::fused_gelu(input))
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_gelu(x.into_primitive())),
        }
    }

    fn fused_attention_softmax(
        scores: FloatTensor<Self>,
        key_bias: FloatTensor<Self>,
        dropout: Mask<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let dropout = dropout.into_option().map(|mask| mask.into_primitive());
        let prepared = SoftmaxBackward
            .prepare::<C>([scores.node(), key_bias.node()])
            .compute_bound()
            .stateful();
        let (output, saved) = softmax_forward(scores.primitive().clone(), key_bias.into_primitive(), dropout, scale);
        match prepared {
            OpsKind::Tracked(prep) => prep.finish(saved, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_residual_layer_norm(
        x: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        dropout: Mask<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        let dropout = dropout.into_option().map(|mask| mask.into_primitive());
        let prepared = LayerNormBackward
            .prepare::<C>([x.node(), residual.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (output, state) = layer_norm_forward(
            x.primitive().clone(),
            residual.primitive().clone(),
            dropout,
            gamma.primitive().clone(),
            beta.primitive().clone(),
            epsilon,
        );
        match prepared {
            OpsKind::Tracked(prep) => prep.finish(state, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
}

#[cfg(test)]
mod tests;
