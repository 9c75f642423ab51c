//! What the config fuzz targets check, shared by both.

use std::path::Path;

use loraplus::config::SweepConfig;
use loraplus::plan::expand;
use loraplus::run::setup::check_models;

/// Parses `text` as a sweep config and, when it parses, checks its models as the training
/// commands do (throwaway models with the adapters attached), expands it and asks of every
/// trial what a sweep asks before training it. Errors are fine; panics, aborts and exhausted
/// memory are what the fuzzer reports.
pub fn parse_and_expand(text: &str) {
    let Ok(config) = SweepConfig::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    if check_models(&config).is_err() {
        return;
    }
    let trials = expand(&config);
    assert!(!trials.is_empty(), "a valid config has at least one trial");
    for trial in &trials {
        trial.id();
        trial.steps();
        trial.model.targets();
        trial.numeric_keys();
        trial.family();
        trial.base();
    }
}
