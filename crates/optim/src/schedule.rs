//! Learning-rate schedules: a factor in `[0, 1]` per step, applied to every group alike.

use burn::config::Config;

/// The shape of the learning rate over training, as a factor of each group's base rate.
///
/// Steps count optimizer updates from 0, and the factors are those of Hugging Face's
/// `get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup` and
/// `get_cosine_schedule_with_warmup`, so a run here follows the same rates as a `Trainer` run.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum Schedule {
    /// Factor 1 throughout (after an optional linear warmup).
    Constant {
        /// Steps of linear warmup from 0.
        warmup_steps: usize,
    },
    /// Linear warmup from 0 to 1, then linear decay to 0 at `total_steps`.
    Linear {
        /// Steps of warmup.
        warmup_steps: usize,
    },
    /// Linear warmup, then half a cosine from 1 down to 0 at `total_steps`.
    Cosine {
        /// Steps of warmup.
        warmup_steps: usize,
    },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::Constant { warmup_steps: 0 }
    }
}

impl Schedule {
    /// Steps of warmup.
    pub fn warmup_steps(&self) -> usize {
        match *self {
            Schedule::Constant { warmup_steps }
            | Schedule::Linear { warmup_steps }
            | Schedule::Cosine { warmup_steps } => warmup_steps,
        }
    }

    /// The factor for update `step` (0-based) of `total_steps`.
    pub fn factor(&self, step: usize, total_steps: usize) -> f64 {
        let warmup = self.warmup_steps();
        if step < warmup {
            return step as f64 / warmup as f64;
        }
        let progress = (step - warmup) as f64 / (total_steps.saturating_sub(warmup)).max(1) as f64;
        match self {
            Schedule::Constant { .. } => 1.0,
            Schedule::Linear { .. } => (1.0 - progress).max(0.0),
            Schedule::Cosine { .. } => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_warmup_then_decay_matches_hugging_face() {
        let s = Schedule::Linear { warmup_steps: 2 };
        let factors: Vec<f64> = (0..7).map(|k| s.factor(k, 6)).collect();
        // HF: k / warmup during warmup, then (total - k) / (total - warmup).
        assert_eq!(factors, vec![0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0]);
    }

    #[test]
    fn cosine_ends_at_zero_and_is_half_way_at_the_middle() {
        let s = Schedule::Cosine { warmup_steps: 0 };
        assert_eq!(s.factor(0, 10), 1.0);
        assert!((s.factor(5, 10) - 0.5).abs() < 1e-12);
        assert!(s.factor(10, 10).abs() < 1e-12);
    }

    #[test]
    fn constant_with_warmup() {
        let s = Schedule::Constant { warmup_steps: 4 };
        assert_eq!(s.factor(1, 100), 0.25);
        assert_eq!(s.factor(4, 100), 1.0);
        assert_eq!(s.factor(99, 100), 1.0);
    }
}
