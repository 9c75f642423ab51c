//! End-to-end tests of the loraplus CLI.
