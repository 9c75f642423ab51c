//! What the config fuzz targets check, shared by both.

use std::path::Path;

use loraplus::config::SweepConfig;
use loraplus::grid::expand;

/// Parses `text` as a sweep config and, when it parses, expands it and asks of every trial what
/// the runner asks before training it. Errors are fine; panics, aborts and exhausted memory are
/// what the fuzzer reports.
pub fn parse_and_expand(text: &str) {
    let Ok(config) = SweepConfig::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    let trials = expand(&config);
    assert!(!trials.is_empty(), "a valid config has at least one trial");
    for trial in &trials {
        trial.id();
        trial.steps();
        trial.targets();
        trial.numeric_keys();
    }
}
