//! `loraplus`: learning-rate ratio sweeps for LoRA and LoRA+.
//!
//! The crate is layered as the pipeline runs; each layer imports only the layers above it:
//!
//! 1. [`config`]: what the user wrote, the TOML schema and its validation (pure: no file read
//!    but the config, no model built).
//! 2. [`plan`]: the trials it means, with stable ids, the pairs and stacking families they
//!    form, and the shards of a job array.
//! 3. [`store`]: records on disk, their schema apart from the code that writes them; claims,
//!    atomic writes, the manifest.
//! 4. [`analysis`]: what the records say: pairs and cells ranked, grid edges, bootstrap
//!    statistics, width scaling.
//! 5. [`adaptive`]: the stages an adaptive sweep adds, planned from its records.
//! 6. [`run`]: training: models, data, bases, trials, the sweep loop, the bench.
//! 7. [`report`]: CSV tables, the summary and PNG figures, rebuilt from records.
//! 8. [`export`]: the best adapters as folders PEFT and transformers load; `predict`.
//! 9. [`cluster`]: status, merge and Slurm scripts.
//!
//! `main.rs` is the command line over them: parse -> validate -> run -> report.

pub mod adaptive;
pub mod analysis;
pub mod cluster;
pub mod config;
pub mod export;
pub mod plan;
pub mod report;
pub mod run;
pub mod store;

#[cfg(test)]
mod test_support;
