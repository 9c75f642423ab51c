//! Tasks for LoRA / LoRA+ trials: synthetic tasks that need no download, tasks read from text
//! and image files (the packaged corpora and a user's own), tokenization with a Hugging Face
//! `tokenizer.json`, and the examples and batches every task becomes.

pub mod error;
pub mod examples;
pub mod file_tasks;
pub mod images;
pub mod synthetic;
pub mod table;
pub mod text;

pub use error::DataError;
pub use examples::{Batch, BatchInput, Inputs, Split, TaskData, numbered_labels};
pub use file_tasks::{ImageTask, TextTask};
pub use images::{Images, LabelColumn, idx_from_bytes, pixel_csv_from_bytes, read_idx, read_pixel_csv};
pub use synthetic::{BagOfTokensTask, TeacherTask};
pub use table::{Columns, Labels, TableFormat, TextRow, each_row, read_rows, rows_from_bytes};
pub use text::{TOKENIZER_FILE, TextEncoder};
