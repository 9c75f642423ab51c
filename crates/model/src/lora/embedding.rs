//! `LoraEmbedding`: a token embedding whose frozen table carries a trainable low-rank update.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Embedding;
use burn::tensor::{Device, Int, Tensor};
use rand::Rng;

use super::{LoraConfig, LowRank};
use crate::{LoraError, init, members};

/// Configuration of a plain (not yet adapted) [`LoraEmbedding`].
#[derive(Config, Debug)]
pub struct LoraEmbeddingConfig {
    /// Number of rows (vocabulary size).
    pub n_embedding: usize,
    /// Width of each row.
    pub d_model: usize,
    /// Standard deviation of the initial rows. Default: 0.02 (BERT's `initializer_range`).
    #[config(default = 0.02)]
    pub init_std: f64,
}

/// An embedding `e(t) = E0[t] + s A[t] B`, as in loralib and PEFT's `lora.Embedding`.
///
/// `A` (`[vocab, r]`) starts at zero and `B` (`[r, d_model]`) at `N(0, 1)`, so `A B = 0` at init.
/// Attaching freezes `E0`. The row lookup `A[t]` is the embedding-space analogue of `x A`.
#[derive(Module, Debug)]
pub struct LoraEmbedding {
    /// The pretrained table `E0`: `[vocab, d_model]`.
    pub base: Embedding,
    /// The trainable update, once attached.
    pub adapter: Option<LowRank>,
}

impl LoraEmbeddingConfig {
    /// A plain table with rows drawn from `N(0, init_std^2)`.
    pub fn init(&self, rng: &mut impl Rng, device: &Device) -> LoraEmbedding {
        let weight = init::normal([self.n_embedding, self.d_model], self.init_std, rng, device);
        LoraEmbedding::new(Embedding {
            weight: Param::from_tensor(weight),
        })
    }
}

impl LoraEmbedding {
    /// Wraps an embedding; it stays trainable until an adapter is attached.
    pub fn new(base: Embedding) -> Self {
        Self { base, adapter: None }
    }

    /// `[vocab, d_model]`.
    pub fn dims(&self) -> [usize; 2] {
        self.base.weight.dims()
    }

    /// Freezes the table and attaches a fresh adapter (`A = 0`, `B ~ N(0, 1)`; dropout does not
    /// apply to token ids). `name` only labels errors.
    pub fn attach(self, name: &str, config: &LoraConfig, rng: &mut impl Rng) -> Result<Self, LoraError> {
        let [vocab, d_model] = self.dims();
        config.check_fits(name, vocab, d_model)?;
        let device = self.base.weight.device();
        let lora_a = Tensor::zeros([vocab, config.rank], &device);
        let lora_b = init::normal([config.rank, d_model], 1.0, rng, &device);
        Ok(Self {
            base: self.base.no_grad(),
            adapter: Some(LowRank::new(lora_a, lora_b, 0.0, config.scale())),
        })
    }

    /// Looks up the rows of `ids`.
    ///
    /// # Shapes
    /// `[batch, seq] -> [batch, seq, d_model]`
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let rows = self.base.forward(ids.clone());
        match &self.adapter {
            Some(adapter) if !adapter.merged => {
                let [vocab, _] = self.dims();
                let low_rank_rows = members::embedding(adapter.lora_a.val(), ids, vocab);
                let update = members::linear(low_rank_rows, adapter.lora_b.val(), None);
                rows + update.mul_scalar(adapter.scaling)
            }
            _ => rows,
        }
    }

    /// Folds `s A B` into `E0`; see [`LoraLinear::merge`](crate::LoraLinear::merge).
    pub fn merge(self) -> Self {
        self.fold(true)
    }

    /// Takes `s A B` back out of `E0`; a no-op unless merged.
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
    use crate::init::rng;
    use crate::test_util::{assert_close, central_difference, values};
    use burn::tensor::TensorData;

    fn table(device: &Device) -> LoraEmbedding {
        LoraEmbeddingConfig::new(10, 4)
            .with_init_std(1.0)
            .init(&mut rng(0), device)
    }

    fn ids(device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(vec![1i64, 3, 3, 9, 0, 1], [2, 3]), device)
    }

    #[test]
    fn init_is_a_zero_and_b_normal_and_output_unchanged() {
        let device = Device::flex();
        let plain = table(&device);
        let adapted = plain.clone().attach("emb", &LoraConfig::new(2), &mut rng(1)).unwrap();
        let adapter = adapted.adapter.as_ref().unwrap();
        assert!(values(adapter.lora_a.val()).iter().all(|v| *v == 0.0));
        assert!(values(adapter.lora_b.val()).iter().all(|v| *v != 0.0));
        assert_eq!(
            values(adapted.forward(ids(&device))),
            values(plain.forward(ids(&device)))
        );
    }

    #[test]
    fn gradients_match_central_differences_and_table_gets_none() {
        let device = Device::flex().autodiff();
        let mut adapted = table(&device).attach("emb", &LoraConfig::new(2), &mut rng(1)).unwrap();
        adapted.adapter.as_mut().unwrap().lora_a = Param::from_tensor(init::normal([10, 2], 1.0, &mut rng(2), &device));
        let target: Tensor<3> = init::normal([2, 3, 4], 1.0, &mut rng(3), &device);
        let loss = |e: &LoraEmbedding| (e.forward(ids(&device)) - target.clone()).powi_scalar(2).sum();

        let grads = loss(&adapted).backward();
        let adapter = adapted.adapter.as_ref().unwrap();
        assert!(adapted.base.weight.grad(&grads).is_none(), "E0 is frozen");
        let numeric_a = central_difference(
            &adapted,
            |e| &mut e.adapter.as_mut().unwrap().lora_a,
            |e| values(loss(e)),
        );
        let numeric_b = central_difference(
            &adapted,
            |e| &mut e.adapter.as_mut().unwrap().lora_b,
            |e| values(loss(e)),
        );
        assert_close(&values(adapter.lora_a.grad(&grads).unwrap()), &numeric_a, 1e-3);
        assert_close(&values(adapter.lora_b.grad(&grads).unwrap()), &numeric_b, 1e-3);
    }

    #[test]
    fn merge_and_unmerge() {
        let device = Device::flex();
        let mut adapted = table(&device).attach("emb", &LoraConfig::new(2), &mut rng(1)).unwrap();
        adapted.adapter.as_mut().unwrap().lora_a = Param::from_tensor(init::normal([10, 2], 1.0, &mut rng(2), &device));
        let e0 = values(adapted.base.weight.val());
        let expected = values(adapted.forward(ids(&device)));
        let merged = adapted.merge();
        assert_close(&values(merged.base.forward(ids(&device))), &expected, 1e-5);
        assert_close(&values(merged.unmerge().base.weight.val()), &e0, 1e-6);
    }
}
