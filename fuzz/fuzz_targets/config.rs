//! Fuzzes the sweep config: any text must parse to a config or to a `ConfigError`, and a config
//! that parses must expand into its trials without panicking or exhausting memory.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use loraplus::config::SweepConfig;
use loraplus::grid::expand;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = SweepConfig::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    let trials = expand(&config);
    assert!(!trials.is_empty(), "a valid config has at least one trial");
    for trial in &trials {
        // What the runner asks of every trial before training it.
        trial.id();
        trial.steps();
        trial.targets();
        trial.numeric_keys();
    }
});
