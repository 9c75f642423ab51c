//! `LoraLinear`: a linear layer whose frozen weight carries a trainable low-rank update.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use rand::Rng;

use super::{LoraConfig, LoraInit, LowRank};
use crate::{LoraError, fused, init};

/// Configuration of a plain (not yet adapted) [`LoraLinear`], initialised like PyTorch's
/// `nn.Linear`.
#[derive(Config, Debug)]
pub struct LoraLinearConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether the layer has a bias. Default: true.
    #[config(default = true)]
    pub bias: bool,
    /// `None`: PyTorch's `nn.Linear` init. `Some(std)`: `W ~ N(0, std^2)` and `b = 0`, as
    /// Hugging Face initialises BERT (`initializer_range`). Default: None.
    #[config(default = "None")]
    pub init_std: Option<f64>,
}

/// A linear layer `y = x W0 + b + s (drop(x) A) B` (Hu et al. 2022, arXiv 2106.09685, eq. 3).
///
/// Before [`attach`](Self::attach) it is a plain trainable linear layer (used to pretrain base
/// models). Attaching freezes `W0` and `b`, so backward computes no gradient for them, and adds a
/// [`LowRank`] update that is applied on the `x A B` path: `W0 + s A B` is never formed inside the
/// autodiff graph, which keeps the adapter's backward at `O(r (d_in + d_out))` per token instead of
/// a dense weight gradient's `O(d_in d_out)`.
#[derive(Module, Debug)]
pub struct LoraLinear {
    /// The pretrained layer: weight `[d_in, d_out]` (Burn's layout), bias `[d_out]`.
    pub base: Linear,
    /// The trainable update, once attached.
    pub adapter: Option<LowRank>,
}

impl LoraLinearConfig {
    /// A plain, trainable layer, initialised as `init_std` says.
    pub fn init(&self, rng: &mut impl Rng, device: &Device) -> LoraLinear {
        let shape = [self.d_input, self.d_output];
        let (weight, bias) = match self.init_std {
            // nn.Linear: W, b ~ U(-1/sqrt(d_in), 1/sqrt(d_in)).
            None => (
                init::kaiming_uniform_a_sqrt5(shape, self.d_input, rng, device),
                init::kaiming_uniform_a_sqrt5([self.d_output], self.d_input, rng, device),
            ),
            Some(std) => (
                init::normal(shape, std, rng, device),
                Tensor::zeros([self.d_output], device),
            ),
        };
        let bias = self.bias.then_some(bias);
        LoraLinear::new(Linear {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
        })
    }
}

impl LoraLinear {
    /// Wraps a linear layer; it stays trainable until an adapter is attached.
    pub fn new(base: Linear) -> Self {
        Self { base, adapter: None }
    }

    /// `[d_in, d_out]`.
    pub fn dims(&self) -> [usize; 2] {
        self.base.weight.dims()
    }

    /// Freezes the base and attaches a fresh adapter, initialised by `config.init`.
    ///
    /// `name` only labels errors. Fails if `config` is invalid or its rank exceeds
    /// `min(d_in, d_out)`.
    pub fn attach(self, name: &str, config: &LoraConfig, rng: &mut impl Rng) -> Result<Self, LoraError> {
        let [d_input, d_output] = self.dims();
        config.check_fits(name, d_input, d_output)?;
        let device = self.base.weight.device();
        let r = config.rank;
        let (lora_a, lora_b) = match config.init {
            LoraInit::Peft => (
                init::kaiming_uniform_a_sqrt5([d_input, r], d_input, rng, &device),
                Tensor::zeros([r, d_output], &device),
            ),
            LoraInit::Gaussian => (
                init::normal([d_input, r], 1.0 / r as f64, rng, &device),
                Tensor::zeros([r, d_output], &device),
            ),
            LoraInit::Reverse => (
                Tensor::zeros([d_input, r], &device),
                init::kaiming_uniform_a_sqrt5([r, d_output], r, rng, &device),
            ),
        };
        Ok(Self {
            base: self.base.no_grad(),
            adapter: Some(LowRank::new(lora_a, lora_b, config.dropout, config.scale())),
        })
    }

    /// Applies the layer.
    ///
    /// # Shapes
    /// `[..., d_in] -> [..., d_out]`
    ///
    /// # Panics
    /// If the last axis of `x` is not `d_in`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.adapter {
            Some(adapter) if !adapter.merged => self.base_forward(x.clone()) + adapter.forward(x),
            _ => self.base_forward(x),
        }
    }

    /// `x W0 + b` (through [`fused::linear`] on flex).
    fn base_forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        fused::linear(x, self.base.weight.val(), self.base.bias.as_ref().map(|b| b.val()))
    }

    /// Folds `s A B` into `W0` so inference costs one matmul; a no-op without an adapter or when
    /// already merged. Train only unmerged layers: merged, the adapter gets no gradient.
    pub fn merge(self) -> Self {
        self.fold(true)
    }

    /// Takes `s A B` back out of `W0`; a no-op unless merged.
    pub fn unmerge(self) -> Self {
        self.fold(false)
    }

    fn fold(mut self, merge: bool) -> Self {
        if let Some(adapter) = self.adapter.as_mut() {
            self.base.weight = adapter.fold(self.base.weight, merge);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, central_difference, values};
    use crate::{LoraScaling, init::rng};

    fn layer(device: &Device) -> LoraLinear {
        LoraLinearConfig::new(6, 5).init(&mut rng(0), device)
    }

    #[test]
    fn output_at_init_equals_base_output_for_every_init() {
        let device = Device::flex();
        let x: Tensor<3> = init::normal([2, 3, 6], 1.0, &mut rng(1), &device);
        let plain = layer(&device);
        let expected = values(plain.forward(x.clone()));
        for lora_init in [LoraInit::Peft, LoraInit::Gaussian, LoraInit::Reverse] {
            let config = LoraConfig::new(2).with_init(lora_init);
            let adapted = plain.clone().attach("l", &config, &mut rng(2)).unwrap();
            let adapter = adapted.adapter.as_ref().unwrap();
            let (a, b) = (values(adapter.lora_a.val()), values(adapter.lora_b.val()));
            assert!(
                a.iter().any(|v| *v != 0.0) || b.iter().any(|v| *v != 0.0),
                "{lora_init:?}: one factor is random"
            );
            assert_eq!(values(adapted.forward(x.clone())), expected, "{lora_init:?}");
        }
    }

    #[test]
    fn gradients_match_central_differences_and_base_gets_none() {
        let device = Device::flex().autodiff();
        let config = LoraConfig::new(3)
            .with_alpha(6.0)
            .with_scaling(LoraScaling::RankStabilized);
        let mut adapted = layer(&device).attach("l", &config, &mut rng(3)).unwrap();
        // B starts at zero, which would make dL/dA vanish: give it values to test both factors.
        let adapter = adapted.adapter.as_mut().unwrap();
        adapter.lora_b = Param::from_tensor(init::normal([3, 5], 0.5, &mut rng(4), &device));
        let x: Tensor<2> = init::normal([4, 6], 1.0, &mut rng(5), &device);
        let target: Tensor<2> = init::normal([4, 5], 1.0, &mut rng(6), &device);
        let loss = |layer: &LoraLinear| (layer.forward(x.clone()) - target.clone()).powi_scalar(2).sum();

        let grads = loss(&adapted).backward();
        let adapter = adapted.adapter.as_ref().unwrap();
        let grad_a = adapter.lora_a.grad(&grads).expect("A is trainable");
        let grad_b = adapter.lora_b.grad(&grads).expect("B is trainable");
        assert!(adapted.base.weight.grad(&grads).is_none(), "W0 is frozen");
        assert!(
            adapted.base.bias.as_ref().unwrap().grad(&grads).is_none(),
            "b is frozen"
        );

        let numeric_a = central_difference(
            &adapted,
            |l| &mut l.adapter.as_mut().unwrap().lora_a,
            |l| values(loss(l)),
        );
        let numeric_b = central_difference(
            &adapted,
            |l| &mut l.adapter.as_mut().unwrap().lora_b,
            |l| values(loss(l)),
        );
        assert_close(&values(grad_a), &numeric_a, 1e-3);
        assert_close(&values(grad_b), &numeric_b, 1e-3);
    }

    #[test]
    fn merge_matches_adapter_forward_and_unmerge_restores_base() {
        let device = Device::flex();
        let config = LoraConfig::new(2).with_init(LoraInit::Reverse);
        let mut adapted = layer(&device).attach("l", &config, &mut rng(7)).unwrap();
        adapted.adapter.as_mut().unwrap().lora_a = Param::from_tensor(init::normal([6, 2], 1.0, &mut rng(8), &device));
        let x: Tensor<2> = init::normal([3, 6], 1.0, &mut rng(9), &device);
        let w0 = values(adapted.base.weight.val());
        let unmerged_out = values(adapted.forward(x.clone()));

        let merged = adapted.merge();
        assert_ne!(values(merged.base.weight.val()), w0, "merge changed W0");
        assert_close(&values(merged.forward(x.clone())), &unmerged_out, 1e-5);
        // The merged layer's output is the plain linear map of the merged weight.
        assert_close(&values(merged.base.forward(x.clone())), &unmerged_out, 1e-5);
        let merged = merged.merge();
        assert_close(&values(merged.forward(x)), &unmerged_out, 1e-5);

        let restored = merged.unmerge();
        assert_close(&values(restored.base.weight.val()), &w0, 1e-6);
    }

    #[test]
    fn rank_larger_than_layer_is_an_error() {
        let device = Device::flex();
        let err = layer(&device)
            .attach("encoder.query", &LoraConfig::new(6), &mut rng(0))
            .unwrap_err();
        assert!(err.to_string().contains("`encoder.query` (6 -> 5)"), "{err}");
    }
}
