//! Named tensors in safetensors files: read with errors that name the file and tensor, and
//! written whole or not at all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::LoraError;

/// The tensors of a safetensors file, each to be taken at most once.
pub(crate) struct Weights<'a> {
    file: SafeTensors<'a>,
    path: PathBuf,
    unused: BTreeSet<String>,
}

impl<'a> Weights<'a> {
    pub(crate) fn parse(bytes: &'a [u8], path: &Path) -> Result<Self, LoraError> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| LoraError::Format {
            path: path.into(),
            message: format!("not a safetensors file: {e}"),
        })?;
        let unused = file.names().into_iter().map(String::from).collect();
        Ok(Self {
            file,
            path: path.into(),
            unused,
        })
    }

    /// Whether the file holds `key`.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.file.tensor(key).is_ok()
    }

    /// The tensor `key`, which must have `shape`; F32, F16 and BF16 are read as f32.
    pub(crate) fn take<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>, LoraError> {
        let view = self.file.tensor(key).map_err(|_| LoraError::MissingTensor {
            path: self.path.clone(),
            key: key.into(),
            expected: shape.to_vec(),
        })?;
        if view.shape() != shape {
            return Err(LoraError::WrongShape {
                path: self.path.clone(),
                key: key.into(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => view
                .data()
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(LoraError::Format {
                    path: self.path.clone(),
                    message: format!("tensor `{key}` is {other:?}; only F32, F16 and BF16 are supported"),
                });
            }
        };
        self.unused.remove(key);
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// A 2-D tensor stored in PyTorch's `[out, in]` orientation, as a trainable `[in, out]` param.
    pub(crate) fn take_t(
        &mut self,
        key: &str,
        shape: [usize; 2],
        device: &Device,
    ) -> Result<Param<Tensor<2>>, LoraError> {
        Ok(Param::from_tensor(self.take(key, shape, device)?.transpose()))
    }

    /// The tensors not taken yet.
    pub(crate) fn unused(&self) -> impl Iterator<Item = &str> {
        self.unused.iter().map(String::as_str)
    }

    /// Marks the tensors whose names satisfy `unwanted` as taken.
    pub(crate) fn drop_where(&mut self, unwanted: impl Fn(&str) -> bool) {
        self.unused.retain(|key| !unwanted(key));
    }

    /// Fails on the first tensor not taken: a file with more than the model has is a mismatch.
    pub(crate) fn finish(self) -> Result<(), LoraError> {
        match self.unused.into_iter().next() {
            Some(key) => Err(LoraError::UnexpectedTensor { path: self.path, key }),
            None => Ok(()),
        }
    }
}

/// A named f32 tensor as a file stores it: `(name, shape, values)`.
pub(crate) type Entry = (String, Vec<usize>, Vec<f32>);

/// The entry of `tensor` under `name`, in the orientation given.
pub(crate) fn entry<const D: usize>(name: String, tensor: Tensor<D>) -> Entry {
    let shape = tensor.dims().to_vec();
    let values = tensor.into_data().convert::<f32>().try_to_vec().expect("f32 data");
    (name, shape, values)
}

/// Writes `entries` as an f32 safetensors file at `path` (PyTorch's `format` metadata set), to
/// a temporary file first, then renamed over `path`.
pub(crate) fn save(entries: &[Entry], path: &Path) -> Result<(), LoraError> {
    let bytes: Vec<Vec<u8>> = entries
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView)> = entries
        .iter()
        .zip(&bytes)
        .map(|((key, shape, _), data)| {
            (
                key.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).expect("shape matches data"),
            )
        })
        .collect();
    let metadata = Some([("format".to_string(), "pt".to_string())].into());
    let file = safetensors::serialize(views, metadata).map_err(|e| LoraError::Format {
        path: path.into(),
        message: e.to_string(),
    })?;
    write_atomic(path, &file)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LoraError> {
    let tmp = path.with_extension("tmp");
    let io = |source| LoraError::Io {
        path: path.into(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
