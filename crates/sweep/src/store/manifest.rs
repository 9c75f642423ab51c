//! `DIR/manifest.json`: every `loraplus sweep` that wrote into a directory and every directory
//! merged into it, with the code, machine and time of each.

use serde::{Deserialize, Serialize};

use crate::plan::shard::Shard;

/// `DIR/manifest.json`: how a sweep directory came to be.
#[derive(Serialize, Deserialize)]
pub struct Manifest {
    /// The sweep's name.
    pub name: String,
    /// The config, relative to the directory.
    pub config: String,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// Every `loraplus sweep` that wrote into it, in order.
    pub runs: Vec<Run>,
    /// Directories merged into it by `loraplus merge`, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

/// One invocation of `loraplus sweep` on a directory, as `manifest.json` lists it.
#[derive(Serialize, Deserialize, Clone)]
pub struct Run {
    /// Which invocation: host, process id and start time, so concurrent runs (shards) each
    /// update their own entry.
    #[serde(default)]
    pub id: String,
    /// The command line.
    pub command: Vec<String>,
    /// The code that ran.
    pub code_version: String,
    /// The tensor backend.
    pub backend: String,
    /// The machine.
    pub host: String,
    /// What computed: the device Burn was given and the host's CPU model.
    #[serde(default)]
    pub device: String,
    /// Its cores.
    pub cpus: usize,
    /// Trials (or groups) at a time.
    pub jobs: usize,
    /// The slice of the grid it ran, if one.
    #[serde(default)]
    pub shard: Option<Shard>,
    /// Trials it was given.
    pub trials_total: usize,
    /// Trials it ran (the rest were finished before, or run by another process).
    pub trials_run: usize,
    /// Seconds from its start to its last record (or to its end, once finished).
    pub wall_seconds: f64,
    /// Seconds since the Unix epoch at its start.
    #[serde(default)]
    pub started_at: u64,
    /// Seconds since the Unix epoch at its end; empty while it runs, and for good if it was
    /// killed: the entry then holds what it did up to its last record.
    pub finished_at: Option<u64>,
}

impl Manifest {
    /// The manifest of a new directory of sweep `name`, with `config.toml` beside it.
    pub fn new(name: String, seeds: Vec<u64>) -> Self {
        Self {
            name,
            config: "config.toml".into(),
            seeds,
            runs: Vec::new(),
            merged_from: Vec::new(),
        }
    }
}
