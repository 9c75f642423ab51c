//! `LoraPlus`: AdamW whose learning rate depends on each parameter's LoRA+ group.

use std::fmt::Write;

use burn::config::Config;
use burn::module::{Module, ParamGroup, ParamId};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use loraplus_model::{ParamInfo, param_table};

use crate::{Group, OptimError, Schedule, ScheduledLr};

/// Settings of the LoRA+ optimizer (Hayou, Ghosh, Yu 2024, arXiv 2402.12354).
///
/// Rates: group A trains at `lr`, groups B and B-no-decay at `lr * ratio`, embedding adapters at
/// `lr_embedding`; every rate follows `schedule`. Defaults are PyTorch's AdamW and Hugging Face
/// `Trainer`'s, so a run compares with a PEFT `create_loraplus_optimizer` run.
#[derive(Config, Debug, PartialEq)]
pub struct LoraPlusConfig {
    /// `eta_A`, the rate of group A.
    pub lr: f64,
    /// `lambda = eta_B / eta_A`; 1 is plain LoRA.
    pub ratio: f64,
    /// Rate of embedding adapters. Default: 1e-6 (the reference's `loraplus_lr_embedding`).
    #[config(default = 1e-6)]
    pub lr_embedding: f64,
    /// Decoupled weight decay (zero for the B-no-decay group). Default: 0 (`Trainer`'s).
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// Adam's first-moment decay. Default: 0.9.
    #[config(default = 0.9)]
    pub beta_1: f64,
    /// Adam's second-moment decay. Default: 0.999.
    #[config(default = 0.999)]
    pub beta_2: f64,
    /// Adam's denominator guard. Default: 1e-8.
    #[config(default = 1e-8)]
    pub epsilon: f64,
    /// The rate schedule, shared by every group. Default: constant, no warmup.
    #[config(default = "Schedule::Constant { warmup_steps: 0 }")]
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value before each step (`Trainer`'s
    /// `max_grad_norm`). Default: no clipping.
    #[config(default = "None")]
    pub max_grad_norm: Option<f64>,
}

/// The optimizer: the group of every trainable parameter, a Burn AdamW per decay setting, and
/// one scheduled rate per group.
pub struct LoraPlus {
    config: LoraPlusConfig,
    total_steps: usize,
    steps_taken: usize,
    assignments: Vec<(ParamInfo, Group)>,
    optimizer: ModuleOptimizer,
    rates: ModuleLrScheduler,
}

impl LoraPlusConfig {
    /// Rejects settings no run could use, naming the key and what is allowed.
    pub fn validate(&self) -> Result<(), OptimError> {
        let positive = |key, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(OptimError::value(key, value, "a finite number > 0"))
            }
        };
        positive("lr", self.lr)?;
        positive("ratio", self.ratio)?;
        positive("lr_embedding", self.lr_embedding)?;
        positive("epsilon", self.epsilon)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(OptimError::value(
                "weight_decay",
                self.weight_decay,
                "a finite number >= 0",
            ));
        }
        for (key, beta) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(OptimError::value(key, beta, "a number in [0, 1)"));
            }
        }
        if let Some(norm) = self.max_grad_norm {
            positive("max_grad_norm", norm)?;
        }
        Ok(())
    }

    /// The base rate of `group`.
    pub fn group_lr(&self, group: Group) -> f64 {
        match group {
            Group::A => self.lr,
            Group::B | Group::BNoDecay => self.lr * self.ratio,
            Group::Embedding => self.lr_embedding,
        }
    }

    /// The weight decay of `group`.
    pub fn group_weight_decay(&self, group: Group) -> f64 {
        if group == Group::BNoDecay {
            0.0
        } else {
            self.weight_decay
        }
    }

    /// An optimizer for the trainable parameters of `model`, for a run of `total_steps` updates.
    pub fn init<M: Module>(&self, model: &M, total_steps: usize) -> Result<LoraPlus, OptimError> {
        self.validate()?;
        if total_steps == 0 {
            return Err(OptimError::value("total_steps", 0.0, "at least 1"));
        }
        let warmup = self.schedule.warmup_steps();
        if warmup > total_steps {
            return Err(OptimError::WarmupTooLong {
                warmup_steps: warmup,
                total_steps,
            });
        }
        let assignments: Vec<(ParamInfo, Group)> = param_table(model)
            .into_iter()
            .filter_map(|p| Group::of(&p).map(|g| (p, g)))
            .collect();
        if assignments.is_empty() {
            return Err(OptimError::NoTrainableParams);
        }
        let ids = |group: Group| -> Vec<ParamId> {
            assignments
                .iter()
                .filter(|(_, g)| *g == group)
                .map(|(p, _)| p.id)
                .collect()
        };
        let adamw = |weight_decay: f64| {
            AdamWConfig::new()
                .with_beta_1(self.beta_1 as f32)
                .with_beta_2(self.beta_2 as f32)
                .with_epsilon(self.epsilon as f32)
                .with_weight_decay(weight_decay as f32)
                .build()
        };
        // Burn picks the last matching group: everything defaults to A's settings, and the other
        // groups override by parameter id. Empty groups are left out.
        let mut optimizer = ModuleOptimizer::from(adamw(self.weight_decay));
        let no_decay = ids(Group::BNoDecay);
        if !no_decay.is_empty() {
            optimizer = optimizer.with_group(ParamGroup::from_ids(no_decay), adamw(0.0), None);
        }
        let scheduled = |group| ScheduledLr {
            base: self.group_lr(group),
            schedule: self.schedule,
            total_steps,
            step: 0,
        };
        let mut rates = ModuleLrScheduler::new(scheduled(Group::A));
        for group in [Group::B, Group::BNoDecay, Group::Embedding] {
            let members = ids(group);
            if !members.is_empty() {
                rates = rates.with_group(ParamGroup::from_ids(members), scheduled(group));
            }
        }
        Ok(LoraPlus {
            config: self.clone(),
            total_steps,
            steps_taken: 0,
            assignments,
            optimizer,
            rates,
        })
    }
}

impl LoraPlus {
    /// One AdamW update of every trainable parameter at its group's scheduled rate.
    pub fn step<M: Module>(&mut self, model: M, mut grads: GradientsParams) -> M {
        if let Some(max_norm) = self.config.max_grad_norm {
            self.clip_global_norm(&mut grads, max_norm);
        }
        let rates = self.rates.step();
        self.steps_taken += 1;
        self.optimizer.step(rates, model, grads)
    }

    /// The settings.
    pub fn config(&self) -> &LoraPlusConfig {
        &self.config
    }

    /// Updates taken so far.
    pub fn steps_taken(&self) -> usize {
        self.steps_taken
    }

    /// The schedule factor the next update uses.
    pub fn next_factor(&self) -> f64 {
        self.config.schedule.factor(self.steps_taken, self.total_steps)
    }

    /// `group`'s rate at the next update.
    pub fn next_lr(&self, group: Group) -> f64 {
        self.config.group_lr(group) * self.next_factor()
    }

    /// Every trainable parameter and its group.
    pub fn assignments(&self) -> &[(ParamInfo, Group)] {
        &self.assignments
    }

    /// Per group: tensors, scalars, base rate and decay; printed at the start of a run.
    pub fn group_summary(&self) -> String {
        let mut out = String::new();
        for group in Group::ALL {
            let members: Vec<&ParamInfo> = self
                .assignments
                .iter()
                .filter(|(_, g)| *g == group)
                .map(|(p, _)| p)
                .collect();
            let scalars: usize = members.iter().map(|p| p.numel()).sum();
            writeln!(
                out,
                "group {group:<13} {:>4} tensors {scalars:>10} params  lr {:.3e}  weight_decay {}",
                members.len(),
                self.config.group_lr(group),
                self.config.group_weight_decay(group),
            )
            .unwrap();
        }
        out
    }

    /// One row per trainable parameter: path, group, base rate, weight decay.
    pub fn group_table(&self) -> String {
        let width = self
            .assignments
            .iter()
            .map(|(p, _)| p.path.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!("{:<width$}  {:<13}  {:>10}  weight_decay\n", "path", "group", "lr");
        for (param, group) in &self.assignments {
            writeln!(
                out,
                "{:<width$}  {:<13}  {:>10.3e}  {}",
                param.path,
                group.to_string(),
                self.config.group_lr(*group),
                self.config.group_weight_decay(*group)
            )
            .unwrap();
        }
        out
    }

    /// `torch.nn.utils.clip_grad_norm_` over all trainable parameters: if the global L2 norm
    /// exceeds `max_norm`, every gradient is scaled by `max_norm / (norm + 1e-6)`.
    fn clip_global_norm(&self, grads: &mut GradientsParams, max_norm: f64) {
        let sum_sq: f64 = self
            .assignments
            .iter()
            .map(|(p, _)| with_grad(grads, p, |g| g.square().sum()))
            .sum();
        let norm = sum_sq.sqrt();
        if norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            for (param, _) in &self.assignments {
                scale_grad(grads, param, scale);
            }
        }
    }
}

/// Applies `reduce` to the gradient of `param` (of any supported rank) and reads the scalar.
fn with_grad(grads: &GradientsParams, param: &ParamInfo, reduce: impl Fn(Tensor<1>) -> Tensor<1>) -> f64 {
    let flat = match param.shape.len() {
        1 => grads.get::<1>(param.id),
        2 => grads.get::<2>(param.id).map(|g| g.flatten(0, 1)),
        3 => grads.get::<3>(param.id).map(|g| g.flatten(0, 2)),
        4 => grads.get::<4>(param.id).map(|g| g.flatten(0, 3)),
        rank => unimplemented!("gradient clipping of rank-{rank} parameter {}", param.path),
    };
    flat.map_or(0.0, |g| reduce(g).into_scalar().to_f64())
}

fn scale_grad(grads: &mut GradientsParams, param: &ParamInfo, scale: f64) {
    fn rescale<const D: usize>(grads: &mut GradientsParams, id: ParamId, scale: f64) {
        if let Some(g) = grads.remove::<D>(id) {
            grads.register(id, g.mul_scalar(scale));
        }
    }
    match param.shape.len() {
        1 => rescale::<1>(grads, param.id, scale),
        2 => rescale::<2>(grads, param.id, scale),
        3 => rescale::<3>(grads, param.id, scale),
        4 => rescale::<4>(grads, param.id, scale),
        rank => unimplemented!("gradient clipping of rank-{rank} parameter {}", param.path),
    }
}
