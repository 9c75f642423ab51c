//! `[adaptive]`: when and how far a sweep extends its grid (the extension itself is
//! [`crate::adaptive`]'s).

use serde::{Deserialize, Serialize};

use super::error::Invalid;

/// `[adaptive]`: when and how far a sweep extends its grid.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveConfig {
    /// Extend at all. Default: true once the table is given.
    pub enabled: bool,
    /// Extension rounds at most (refinement not counted). Default: 4.
    pub max_rounds: usize,
    /// No eta_A below this. Default: 1e-7.
    pub eta_a_min: f64,
    /// No eta_A above this. Default: 1.
    pub eta_a_max: f64,
    /// No ratio below this. Default: 1 (eta_B below eta_A is outside LoRA+).
    pub ratio_min: f64,
    /// No ratio above this. Default: 2^14.
    pub ratio_max: f64,
    /// Trials added to one pair over all its rounds, at most. Default: 1000. Per pair, so what a
    /// pair adds depends on its own records alone, whenever the other pairs' records arrive.
    pub max_trials: usize,
    /// Once the optimum is interior (or bounded), add the cells around it at half the log step,
    /// once. Default: false.
    pub refine: bool,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_rounds: 4,
            eta_a_min: 1e-7,
            eta_a_max: 1.0,
            ratio_min: 1.0,
            ratio_max: 16384.0,
            max_trials: 1000,
            refine: false,
        }
    }
}

impl AdaptiveConfig {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), Invalid> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(positive(self.eta_a_min) && positive(self.eta_a_max) && self.eta_a_min < self.eta_a_max) {
            return Err(Invalid::new(
                "adaptive.eta_a_min",
                "need 0 < eta_a_min < eta_a_max, both finite",
            ));
        }
        if !(positive(self.ratio_min) && positive(self.ratio_max) && self.ratio_min < self.ratio_max) {
            return Err(Invalid::new(
                "adaptive.ratio_min",
                "need 0 < ratio_min < ratio_max, both finite",
            ));
        }
        Ok(())
    }
}
