//! `loraplus`: learning-rate ratio sweeps for LoRA and LoRA+.
//!
//! A TOML [`config`] declares models, tasks and the (eta_A, lambda) grid; [`grid`] expands it
//! into trials with stable ids; [`runner`] trains them ([`trial`], [`train`]) in parallel into a
//! [`store`] of atomic JSON records; [`report`] and [`plots`] turn the records into CSV tables
//! and PNG figures. On a cluster, [`shard`] splits the grid across the jobs of an array that
//! [`slurm`] writes, [`status`] tells what is left and [`merge`] joins result directories.

pub mod adaptive;
pub mod bench;
pub mod config;
pub mod data;
pub mod grid;
pub mod merge;
pub mod plots;
pub mod report;
pub mod runner;
pub mod scaling;
pub mod shard;
pub mod slurm;
pub mod stacking;
pub mod stats;
pub mod status;
pub mod store;
pub mod train;
pub mod trial;
pub mod zoo;
