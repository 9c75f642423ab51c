//! Training: the models a config names built ([`zoo`]), the data read ([`data`]), bases
//! pretrained ([`bases`]), all prepared once ([`setup`]); one trial or a stacked group of them
//! ([`trial`], through the loop in [`train`]); a whole sweep in parallel, resumable, claimed
//! trial by trial ([`sweep`]); and the throughput bench ([`bench`]).

pub mod adapters;
pub mod bases;
pub mod bench;
pub mod data;
pub mod device;
pub mod memory;
pub mod progress;
pub mod run_log;
pub mod setup;
pub mod sweep;
pub mod train;
pub mod trial;
pub mod zoo;
