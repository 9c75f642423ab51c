//! The LoRA+ optimizer: AdamW with the reference code's four parameter groups, where
//! `eta_B = ratio * eta_A`, and schedules that move every group's rate together.
//!
//! ```text
//! let mut optim = LoraPlusConfig::new(2e-4, 16.0).init(&model, total_steps)?;
//! print!("{}", optim.group_summary());
//! for step in 0..total_steps {
//!     let grads = GradientsParams::from_grads(loss.backward(), &model);
//!     model = optim.step(model, grads);
//! }
//! ```

mod error;
mod groups;
mod loraplus;
mod schedule;

pub use error::OptimError;
pub use groups::Group;
pub use loraplus::{LoraPlus, LoraPlusConfig};
pub use schedule::Schedule;
