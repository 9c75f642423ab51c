//! Building the model a trial trains: `Classifier`, the one model type trials handle, made for
//! a config's architecture and a task's inputs (randomly, or from a checkpoint's weights).

use anyhow::{Context, Result};
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use loraplus_data::{BatchInput, Inputs, TOKENIZER_FILE, TaskData};
use loraplus_model::models::{
    BertClassifier, BertClassifierConfig, BertConfig, CONFIG_FILE, Mlp, MlpConfig, Pooling, read_bert_config,
};
use loraplus_model::{LoraEmbedding, LoraLinear, LoraModel, Site, init};
use rand::Rng;

use crate::config::{CheckpointSpec, Features, InputShape, ModelKind};

/// The model a trial trains, of any architecture a config names.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // A handful per sweep; the variants' tensors live on the heap.
pub enum Classifier {
    /// An MLP or the toy network.
    Mlp(Mlp),
    /// A BERT classifier.
    Bert(BertClassifier),
}

/// The model of architecture `kind` for inputs of `shape`: randomly initialised, or for a
/// checkpoint its pretrained encoder (with `load_weights`; without, a random one of the same
/// shape, enough to check that adapters fit). The head is random.
pub fn build(
    kind: &ModelKind,
    shape: &InputShape,
    load_weights: bool,
    rng: &mut impl Rng,
    device: &Device,
) -> Result<Classifier> {
    let n_classes = shape.n_classes;
    Ok(match (kind, &shape.features) {
        (ModelKind::Mlp(m), Features::Vectors(dim)) => {
            Classifier::Mlp(MlpConfig::new(*dim, m.hidden.clone(), n_classes).init(rng, device))
        }
        (ModelKind::Toy(toy), Features::Vectors(dim)) => {
            Classifier::Mlp(MlpConfig::new(*dim, vec![toy.width, toy.width], n_classes).init(rng, device))
        }
        (ModelKind::Bert(b), Features::Tokens { vocab, seq_len }) => {
            let bert = BertConfig::new(
                *vocab,
                b.hidden_size,
                b.num_hidden_layers,
                b.num_attention_heads,
                b.intermediate_size,
            )
            .with_max_position_embeddings(*seq_len)
            .with_hidden_dropout_prob(b.dropout)
            .with_attention_probs_dropout_prob(b.dropout);
            let config = BertClassifierConfig::new(bert, n_classes).with_pooling(Pooling::Mean);
            Classifier::Bert(config.init(rng, device))
        }
        (ModelKind::BertCheckpoint(c), Features::Text) => {
            let config = classifier_config(c, n_classes)?;
            Classifier::Bert(if load_weights {
                config
                    .init_pretrained(&c.path, rng, device)
                    .with_context(|| format!("cannot load the checkpoint {}", c.path.display()))?
            } else {
                config.init(rng, device)
            })
        }
        _ => panic!("model and task were checked to be compatible"),
    })
}

/// Checks that a checkpoint (`kind`) can read `data` as its tokenizer encoded it: every token id in
/// its vocabulary, every segment id in its segment table, every sequence within its
/// position table. (Out-of-range ids would otherwise index past an embedding table.)
pub fn check_data(kind: &ModelKind, data: &TaskData) -> Result<()> {
    let ModelKind::BertCheckpoint(c) = kind else {
        return Ok(());
    };
    let bert = read_bert_config(&c.path)?;
    let config = c.path.join(CONFIG_FILE);
    let tokenizer = c.path.join(TOKENIZER_FILE);
    for split in [&data.train, &data.val, &data.test] {
        let Inputs::Tokens {
            ids, type_ids, seq_len, ..
        } = &split.inputs
        else {
            continue;
        };
        let max = |values: &[i64]| values.iter().copied().max().unwrap_or(0) as usize;
        anyhow::ensure!(
            max(ids) < bert.vocab_size,
            "{} gives token id {}, but {} has vocab_size = {}: the tokenizer does not belong to this model",
            tokenizer.display(),
            max(ids),
            config.display(),
            bert.vocab_size
        );
        // A model without token types (MPNet) reads no segment ids.
        anyhow::ensure!(
            bert.type_vocab_size == 0 || max(type_ids) < bert.type_vocab_size,
            "the task has text pairs (segment id {}), but {} has type_vocab_size = {}",
            max(type_ids),
            config.display(),
            bert.type_vocab_size
        );
        // RoBERTa-style position ids start after the padding id.
        let positions = if bert.model_type.offset_positions() {
            bert.max_position_embeddings.saturating_sub(bert.pad_token_id + 1)
        } else {
            bert.max_position_embeddings
        };
        anyhow::ensure!(
            *seq_len <= positions,
            "sequences of {seq_len} tokens, but {} has room for {positions} positions (max_position_embeddings \
             = {}): lower the task's max_seq_len",
            config.display(),
            bert.max_position_embeddings
        );
    }
    Ok(())
}

/// The classifier of checkpoint `c` for `n_classes` classes.
fn classifier_config(c: &CheckpointSpec, n_classes: usize) -> Result<BertClassifierConfig> {
    let mut bert = read_bert_config(&c.path)?;
    if let Some(p) = c.dropout {
        bert = bert.with_hidden_dropout_prob(p).with_attention_probs_dropout_prob(p);
    }
    Ok(BertClassifierConfig::new(bert, n_classes).with_pooling(c.pooling.into()))
}

impl Classifier {
    /// Class logits.
    ///
    /// # Shapes
    /// `[batch, ...]` inputs -> `[batch, n_classes]`
    pub fn forward(&self, input: &BatchInput) -> Tensor<2> {
        match (self, input) {
            (Classifier::Mlp(m), BatchInput::Vectors(x)) => m.forward(x.clone()),
            (Classifier::Bert(b), BatchInput::Tokens { ids, mask, type_ids }) => {
                b.forward(ids.clone(), mask.clone(), Some(type_ids.clone()))
            }
            _ => panic!("model and batch were checked to be compatible"),
        }
    }

    /// The same model with a fresh, trainable head for `n_classes` classes (PyTorch
    /// `nn.Linear` init of each of its layers: the classifier, and with RoBERTa's head its
    /// `dense`), as when a pretrained encoder meets a new task.
    pub fn with_new_head(mut self, n_classes: usize, rng: &mut impl Rng) -> Self {
        let sites = self.head_sites();
        let last = sites.len() - 1;
        for (i, site) in sites.into_iter().enumerate() {
            let [d_in, d_out] = site.layer.weight.dims();
            // The last layer maps to the classes; any before it keep their width.
            let d_out = if i == last { n_classes } else { d_out };
            let device = site.layer.weight.device();
            *site.layer = Linear {
                weight: Param::from_tensor(init::kaiming_uniform_a_sqrt5([d_in, d_out], d_in, rng, &device)),
                bias: Some(Param::from_tensor(init::kaiming_uniform_a_sqrt5(
                    [d_out],
                    d_in,
                    rng,
                    &device,
                ))),
            };
        }
        self
    }
}

impl LoraModel for Classifier {
    fn linear_sites(&mut self) -> Vec<Site<'_, LoraLinear>> {
        match self {
            Classifier::Mlp(m) => m.linear_sites(),
            Classifier::Bert(b) => b.linear_sites(),
        }
    }

    fn embedding_sites(&mut self) -> Vec<Site<'_, LoraEmbedding>> {
        match self {
            Classifier::Mlp(m) => m.embedding_sites(),
            Classifier::Bert(b) => b.embedding_sites(),
        }
    }

    fn head_sites(&mut self) -> Vec<Site<'_, Linear>> {
        match self {
            Classifier::Mlp(m) => m.head_sites(),
            Classifier::Bert(b) => b.head_sites(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BertSpec, MlpSpec, ToySpec};

    fn count(kind: &ModelKind, features: Features) -> (Option<usize>, usize) {
        let shape = InputShape { features, n_classes: 3 };
        let model = build(kind, &shape, false, &mut init::rng(0), &Device::flex()).unwrap();
        (kind.parameters(&shape), model.num_params())
    }

    #[test]
    fn parameter_counts_match_the_built_models() {
        let mlp = ModelKind::Mlp(MlpSpec { hidden: vec![7, 5] });
        let (counted, built) = count(&mlp, Features::Vectors(4));
        assert_eq!(counted, Some(built));
        let toy = ModelKind::Toy(ToySpec { width: 6 });
        let (counted, built) = count(&toy, Features::Vectors(4));
        assert_eq!(counted, Some(built));
        let bert = ModelKind::Bert(BertSpec {
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 12,
            dropout: 0.0,
        });
        let (counted, built) = count(&bert, Features::Tokens { vocab: 11, seq_len: 5 });
        assert_eq!(counted, Some(built));
    }

    #[test]
    fn a_parameter_count_that_overflows_saturates() {
        let mlp = ModelKind::Mlp(MlpSpec {
            hidden: vec![usize::MAX / 2],
        });
        let shape = InputShape {
            features: Features::Vectors(4),
            n_classes: 3,
        };
        assert_eq!(mlp.parameters(&shape), Some(usize::MAX));
    }
}
