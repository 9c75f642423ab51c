//! `Mlp`: a ReLU classifier for vector inputs, and the toy width-n network built from it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, activation::relu};
use rand::Rng;

use crate::{LoraLinear, LoraLinearConfig, LoraModel, Site, members};

/// Configuration of an [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Input features.
    pub d_input: usize,
    /// Widths of the hidden layers, first to last; at least one.
    pub hidden: Vec<usize>,
    /// Number of classes.
    pub n_classes: usize,
}

/// The toy model of the width-scaling study (LoRA+ Theorem 1): `x -> ReLU(x W_in) -> ReLU(h W)
/// -> logits`, where the `n x n` matrix `W` is the layer LoRA adapts (target `hidden`).
///
/// It is an [`Mlp`] with hidden widths `[n, n]`; only the width `n` varies across the study.
#[derive(Config, Debug)]
pub struct ToyWidthConfig {
    /// Input features.
    pub d_input: usize,
    /// The width `n`.
    pub width: usize,
    /// Number of classes.
    pub n_classes: usize,
}

/// `logits = head(ReLU(... ReLU(input(x)) ...))`.
///
/// Targets: `input` (the first layer) and `hidden` (every later hidden layer). The head is
/// `head`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `d_input -> hidden[0]`.
    pub input: LoraLinear,
    /// `hidden[i] -> hidden[i + 1]`.
    pub hidden: Vec<LoraLinear>,
    /// `hidden[last] -> n_classes`.
    pub head: Linear,
}

impl MlpConfig {
    /// A randomly initialised MLP (PyTorch `nn.Linear` init).
    ///
    /// # Panics
    /// If `hidden` is empty.
    pub fn init(&self, rng: &mut impl Rng, device: &Device) -> Mlp {
        assert!(!self.hidden.is_empty(), "an Mlp needs at least one hidden layer");
        let input = LoraLinearConfig::new(self.d_input, self.hidden[0]).init(rng, device);
        let hidden = self
            .hidden
            .windows(2)
            .map(|w| LoraLinearConfig::new(w[0], w[1]).init(rng, device))
            .collect();
        let last = *self.hidden.last().unwrap();
        let head = LoraLinearConfig::new(last, self.n_classes).init(rng, device).base;
        Mlp { input, hidden, head }
    }
}

impl ToyWidthConfig {
    /// A randomly initialised toy network of width `n`.
    pub fn init(&self, rng: &mut impl Rng, device: &Device) -> Mlp {
        MlpConfig::new(self.d_input, vec![self.width, self.width], self.n_classes).init(rng, device)
    }
}

impl Mlp {
    /// # Shapes
    /// `[batch, d_input] -> [batch, n_classes]` (batch and head stacked when trials are; see
    /// [`members`])
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut h = relu(self.input.forward(x));
        for layer in &self.hidden {
            h = relu(layer.forward(h));
        }
        members::linear(h, self.head.weight.val(), self.head.bias.as_ref().map(|b| b.val()))
    }
}

impl LoraModel for Mlp {
    fn linear_sites(&mut self) -> Vec<Site<'_, LoraLinear>> {
        let mut sites = vec![Site {
            target: "input",
            path: "input".into(),
            layer: &mut self.input,
        }];
        for (i, layer) in self.hidden.iter_mut().enumerate() {
            sites.push(Site {
                target: "hidden",
                path: format!("hidden.{i}"),
                layer,
            });
        }
        sites
    }

    fn head_sites(&mut self) -> Vec<Site<'_, Linear>> {
        vec![Site {
            target: "head",
            path: "head".into(),
            layer: &mut self.head,
        }]
    }
}
