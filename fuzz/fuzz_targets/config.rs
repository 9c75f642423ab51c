//! Fuzzes the sweep config as text: any input must parse to a config or to a `ConfigError`, and
//! a config that parses must expand into its trials without panicking or exhausting memory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loraplus_fuzz::parse_and_expand;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        parse_and_expand(text);
    }
});
