//! Text to model inputs with a Hugging Face `tokenizer.json`: special tokens, truncation to a
//! maximum length, padding and attention masks, as transformers' fast tokenizers do them.

use std::path::{Path, PathBuf};

use tokenizers::{EncodeInput, Tokenizer, TruncationParams, TruncationStrategy};

use crate::error::DataError;
use crate::examples::Inputs;

/// The tokenizer file of a checkpoint folder.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// A tokenizer that truncates every input (a text or a text pair) to `max_seq_len` tokens,
/// special tokens included.
#[derive(Debug, Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    path: PathBuf,
    max_seq_len: usize,
    pad_id: i64,
}

impl TextEncoder {
    /// Reads `tokenizer.json`. Padding is done here, to the longest input of a split, whatever
    /// the file says; truncation (longest-first for pairs) follows `max_seq_len`.
    pub fn from_file(path: &Path, max_seq_len: usize) -> Result<Self, DataError> {
        let tokenizer_error = |message: String| DataError::Tokenizer {
            path: path.into(),
            message,
        };
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| {
            if path.exists() {
                tokenizer_error(format!("not a Hugging Face tokenizer.json: {e}"))
            } else {
                tokenizer_error("no such file; a checkpoint folder must hold tokenizer.json".into())
            }
        })?;
        let pad_id = match tokenizer.get_padding() {
            Some(padding) => padding.pad_id,
            None => ["[PAD]", "<pad>"]
                .iter()
                .find_map(|token| tokenizer.token_to_id(token))
                .unwrap_or(0),
        };
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_len,
                strategy: TruncationStrategy::LongestFirst,
                ..Default::default()
            }))
            .map_err(|e| tokenizer_error(format!("cannot truncate to max_seq_len = {max_seq_len}: {e}")))?;
        Ok(Self {
            tokenizer,
            path: path.into(),
            max_seq_len,
            pad_id: pad_id as i64,
        })
    }

    /// The longest input, in tokens.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Encodes `texts` (each with its optional second segment) as `[n, seq_len]` ids, masks and
    /// segment ids, padded to the longest encoding.
    pub fn encode(&self, texts: &[(&str, Option<&str>)]) -> Result<Inputs, DataError> {
        let inputs: Vec<EncodeInput> = texts
            .iter()
            .map(|(text, pair)| match pair {
                Some(pair) => EncodeInput::Dual((*text).into(), (*pair).into()),
                None => EncodeInput::Single((*text).into()),
            })
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| DataError::Tokenizer {
                path: self.path.clone(),
                message: format!("cannot encode: {e}"),
            })?;
        let seq_len = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let n = encodings.len();
        let (mut ids, mut mask, mut type_ids) = (
            vec![self.pad_id; n * seq_len],
            vec![0; n * seq_len],
            vec![0; n * seq_len],
        );
        for (row, encoding) in encodings.iter().enumerate() {
            let start = row * seq_len;
            for (t, ((id, m), ty)) in encoding
                .get_ids()
                .iter()
                .zip(encoding.get_attention_mask())
                .zip(encoding.get_type_ids())
                .enumerate()
            {
                ids[start + t] = *id as i64;
                mask[start + t] = *m as i64;
                type_ids[start + t] = *ty as i64;
            }
        }
        Ok(Inputs::Tokens {
            ids,
            mask,
            type_ids,
            seq_len,
        })
    }
}
