//! `LowRank`: the trainable pair `(A, B)` shared by linear and embedding adapters.

use crate::{Dropout, DropoutConfig};
use burn::module::{Module, Param};
use burn::tensor::Tensor;

use crate::members;

/// The update `s (x A) B` of a LoRA adapter.
///
/// `A` maps the layer's input space to rank `r`, `B` maps rank `r` to the output space; `s` is
/// fixed by [`LoraConfig::scale`](crate::LoraConfig::scale). This crate keeps Burn's `x W`
/// orientation (`A: [d_in, r]`, `B: [r, d_out]`); PEFT files hold the transposes, and
/// [`peft`](crate::peft) converts. Stacked trials ([`members`]) keep `K` pairs stacked along
/// the rows.
#[derive(Module, Debug)]
pub struct LowRank {
    /// `A`: `[d_in, r]` (for an embedding, `[vocab, r]`).
    pub lora_a: Param<Tensor<2>>,
    /// `B`: `[r, d_out]`.
    pub lora_b: Param<Tensor<2>>,
    /// Dropout on the adapter's input (linear adapters only).
    pub dropout: Dropout,
    /// The scale `s`.
    pub scaling: f64,
    /// Whether `s A B` is currently folded into the base weight.
    pub merged: bool,
}

impl LowRank {
    /// A trainable pair from initial values.
    pub fn new(lora_a: Tensor<2>, lora_b: Tensor<2>, dropout: f64, scaling: f64) -> Self {
        Self {
            lora_a: Param::from_tensor(lora_a),
            lora_b: Param::from_tensor(lora_b),
            dropout: DropoutConfig::new(dropout).init(),
            scaling,
            merged: false,
        }
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.lora_a.dims()[1]
    }

    /// `s (drop(x) A) B`, computed as two thin matmuls (member by member when stacked).
    ///
    /// # Shapes
    /// `[..., d_in] -> [..., d_out]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let hidden = members::linear(self.dropout.forward(x), self.lora_a.val(), None);
        members::linear(hidden, self.lora_b.val(), None).mul_scalar(self.scaling)
    }

    /// Adds (`merge`) or subtracts `s A B` to/from `weight`, unless it already is in that state.
    pub fn fold(&mut self, weight: Param<Tensor<2>>, merge: bool) -> Param<Tensor<2>> {
        if self.merged == merge {
            return weight;
        }
        assert_eq!(
            self.lora_a.dims()[0],
            weight.dims()[0],
            "a stacked adapter cannot be merged; take one member out first (`members::member`)"
        );
        let delta = self.delta();
        self.merged = merge;
        weight.map(|w| if merge { w + delta } else { w - delta })
    }

    /// `s A B` as a dense `[d_in, d_out]` matrix, outside any autodiff graph.
    pub fn delta(&self) -> Tensor<2> {
        let a = self.lora_a.val().detach();
        let b = self.lora_b.val().detach();
        a.matmul(b).mul_scalar(self.scaling).set_require_grad(false)
    }
}
