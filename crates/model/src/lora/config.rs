//! The hyper-parameters every LoRA adapter shares: rank, alpha, scaling rule, dropout, init.

use burn::config::Config;

use crate::LoraError;

/// How the update `B A` is scaled.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum LoraScaling {
    /// `s = alpha / r`, the original LoRA rule (Hu et al. 2022).
    Standard,
    /// `s = alpha / sqrt(r)`, rank-stabilised LoRA (Kalajdzievski 2023; PEFT `use_rslora`).
    RankStabilized,
}

/// How `A` and `B` start. Every choice makes `B A = 0`, so training starts at the base model.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum LoraInit {
    /// PEFT's default (`init_lora_weights=True`): `A ~ kaiming_uniform(a = sqrt(5))`, i.e.
    /// `U(-1/sqrt(d_in), 1/sqrt(d_in))`, and `B = 0`.
    Peft,
    /// PEFT's `init_lora_weights="gaussian"`: `A ~ N(0, sigma^2)` with `sigma = 1/r`, `B = 0`.
    Gaussian,
    /// The LoRA+ authors' alternative: `A = 0` and `B ~ kaiming_uniform(a = sqrt(5))` over its
    /// `r` inputs, i.e. `U(-1/sqrt(r), 1/sqrt(r))`.
    Reverse,
}

/// Settings of one LoRA adapter; the same for every layer it is attached to.
#[derive(Config, Debug, PartialEq)]
pub struct LoraConfig {
    /// Rank `r` of the update.
    pub rank: usize,
    /// Scaling numerator `alpha`. Default: 8 (PEFT's `lora_alpha`).
    #[config(default = 8.0)]
    pub alpha: f64,
    /// Dropout probability on the adapter's input (PEFT's `lora_dropout`). Default: 0.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Scaling rule. Default: `alpha / r`.
    #[config(default = "LoraScaling::Standard")]
    pub scaling: LoraScaling,
    /// Initialisation of `A` and `B`. Default: PEFT's.
    #[config(default = "LoraInit::Peft")]
    pub init: LoraInit,
}

impl LoraConfig {
    /// The scale `s` applied to `x A B`.
    pub fn scale(&self) -> f64 {
        match self.scaling {
            LoraScaling::Standard => self.alpha / self.rank as f64,
            LoraScaling::RankStabilized => self.alpha / (self.rank as f64).sqrt(),
        }
    }

    /// Rejects settings no layer could use; per-layer limits are checked on attach.
    pub fn validate(&self) -> Result<(), LoraError> {
        if self.rank == 0 {
            return Err(LoraError::ZeroRank(self.rank));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(LoraError::InvalidAlpha(self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(LoraError::InvalidDropout(self.dropout));
        }
        Ok(())
    }

    /// Checks that this rank fits a `d_input -> d_output` layer named `layer`.
    pub(crate) fn check_fits(&self, layer: &str, d_input: usize, d_output: usize) -> Result<(), LoraError> {
        self.validate()?;
        if self.rank > d_input.min(d_output) {
            return Err(LoraError::RankTooLarge {
                layer: layer.to_string(),
                rank: self.rank,
                d_input,
                d_output,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_follows_the_rule() {
        let config = LoraConfig::new(4).with_alpha(8.0);
        assert_eq!(config.scale(), 2.0);
        assert_eq!(config.with_scaling(LoraScaling::RankStabilized).scale(), 4.0);
    }

    #[test]
    fn invalid_settings_name_the_value() {
        let err = LoraConfig::new(0).validate().unwrap_err().to_string();
        assert!(err.contains("rank must be at least 1, got 0"), "{err}");
        let err = LoraConfig::new(2).with_alpha(-1.0).validate().unwrap_err().to_string();
        assert!(err.contains("alpha") && err.contains("-1"), "{err}");
        let err = LoraConfig::new(2).with_dropout(1.0).validate().unwrap_err().to_string();
        assert!(err.contains("dropout must be in [0, 1), got 1"), "{err}");
        let err = LoraConfig::new(9).check_fits("query", 8, 16).unwrap_err().to_string();
        assert!(
            err.contains("rank 9") && err.contains("`query`") && err.contains("at most"),
            "{err}"
        );
    }
}
