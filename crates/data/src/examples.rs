//! Examples as the models eat them: a task's splits, and batches on a device.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// A task's three splits.
#[derive(Debug, Clone)]
pub struct TaskData {
    /// Training examples.
    pub train: Split,
    /// Validation examples.
    pub val: Split,
    /// Test examples.
    pub test: Split,
    /// The class names, in class-index order: a text task's labels, a synthetic or image task's
    /// class numbers.
    pub labels: Vec<String>,
}

impl TaskData {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.labels.len()
    }
}

/// Class names `0`, `1`, ... for tasks whose classes are numbers.
pub fn numbered_labels(n_classes: usize) -> Vec<String> {
    (0..n_classes).map(|c| c.to_string()).collect()
}

/// Examples of one split.
#[derive(Debug, Clone)]
pub struct Split {
    /// The inputs.
    pub inputs: Inputs,
    /// One label per example, in `0..n_classes`.
    pub labels: Vec<i64>,
}

/// The inputs of a split, row-major.
#[derive(Debug, Clone)]
pub enum Inputs {
    /// `[n, dim]` features.
    Vectors { values: Vec<f32>, dim: usize },
    /// `[n, seq_len]` token ids, attention mask (1 = token, 0 = padding) and segment ids
    /// (0 for the first text, 1 for the second of a pair).
    Tokens {
        ids: Vec<i64>,
        mask: Vec<i64>,
        type_ids: Vec<i64>,
        seq_len: usize,
    },
}

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The inputs.
    pub input: BatchInput,
    /// `[batch]` labels.
    pub labels: Tensor<1, Int>,
}

/// A batch's inputs.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // One per step, moved rarely: boxing would buy nothing.
pub enum BatchInput {
    /// `[batch, dim]`.
    Vectors(Tensor<2>),
    /// `[batch, seq]` ids, mask and segment ids.
    Tokens {
        ids: Tensor<2, Int>,
        mask: Tensor<2, Int>,
        type_ids: Tensor<2, Int>,
    },
}

impl BatchInput {
    /// The batch repeated `times` times along its first axis: the input of `times` stacked
    /// trials (see `loraplus_model::members`).
    pub fn repeat(&self, times: usize) -> BatchInput {
        if times == 1 {
            return self.clone();
        }
        match self {
            BatchInput::Vectors(x) => BatchInput::Vectors(x.clone().repeat_dim(0, times)),
            BatchInput::Tokens { ids, mask, type_ids } => BatchInput::Tokens {
                ids: ids.clone().repeat_dim(0, times),
                mask: mask.clone().repeat_dim(0, times),
                type_ids: type_ids.clone().repeat_dim(0, times),
            },
        }
    }
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The accuracy of always answering the most frequent class.
    pub fn majority_accuracy(&self, n_classes: usize) -> f64 {
        let mut counts = vec![0usize; n_classes];
        for label in &self.labels {
            counts[*label as usize] += 1;
        }
        *counts.iter().max().unwrap_or(&0) as f64 / self.len().max(1) as f64
    }

    /// The examples at `indices`, as tensors on `device`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Batch {
        let n = indices.len();
        let input = match &self.inputs {
            Inputs::Vectors { values, dim } => {
                let rows: Vec<f32> = indices
                    .iter()
                    .flat_map(|i| &values[i * dim..(i + 1) * dim])
                    .copied()
                    .collect();
                BatchInput::Vectors(Tensor::from_data(TensorData::new(rows, [n, *dim]), device))
            }
            Inputs::Tokens {
                ids,
                mask,
                type_ids,
                seq_len,
            } => {
                // Padding is cut to the batch's longest example: attention and pooling ignore
                // it, so the result is the same and short batches cost less.
                let longest = indices
                    .iter()
                    .map(|i| {
                        mask[i * seq_len..(i + 1) * seq_len]
                            .iter()
                            .rposition(|m| *m != 0)
                            .map_or(0, |p| p + 1)
                    })
                    .max()
                    .unwrap_or(0)
                    .max(1);
                let take = |all: &[i64]| -> Tensor<2, Int> {
                    let rows: Vec<i64> = indices
                        .iter()
                        .flat_map(|i| &all[i * seq_len..i * seq_len + longest])
                        .copied()
                        .collect();
                    Tensor::from_data(TensorData::new(rows, [n, longest]), device)
                };
                BatchInput::Tokens {
                    ids: take(ids),
                    mask: take(mask),
                    type_ids: take(type_ids),
                }
            }
        };
        let labels: Vec<i64> = indices.iter().map(|i| self.labels[*i]).collect();
        Batch {
            input,
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}
