//! Tasks for LoRA / LoRA+ trials: synthetic tasks that need no download, and the examples and
//! batches every task becomes.

pub mod examples;
pub mod synthetic;

pub use examples::{Batch, BatchInput, Inputs, Split, TaskData};
pub use synthetic::{BagOfTokensTask, TeacherTask};
