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
    flat.map_or(0.0, |g| reduce(g).into_scalar::<f64>())
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::Device;
    use loraplus_model::models::{Mlp, MlpConfig};
    use loraplus_model::{AttachConfig, LoraConfig, attach, init};

    /// A 3 -> 4 -> 2 MLP with a rank-2 adapter on its input layer, B made non-zero so that both
    /// factors get gradients, and its head trainable.
    fn adapted_mlp(device: &Device) -> Mlp {
        let model = MlpConfig::new(3, vec![4], 2).init(&mut init::rng(0), device);
        let config = AttachConfig::new(LoraConfig::new(2), vec!["input".into()]);
        let mut model = attach(model, &config, &mut init::rng(1)).unwrap();
        let adapter = model.input.adapter.as_mut().unwrap();
        adapter.lora_b = Param::from_tensor(init::normal([2, 4], 0.5, &mut init::rng(2), device));
        model
    }

    fn loss(model: &Mlp, seed: u64, device: &Device) -> Tensor<1> {
        let x: Tensor<2> = init::normal([5, 3], 1.0, &mut init::rng(seed), device);
        model.forward(x).tanh().sum()
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
        t.into_data().convert::<f64>().try_to_vec().unwrap()
    }

    /// Every trainable tensor's values, by path.
    fn snapshot(model: &Mlp, optim: &LoraPlus) -> Vec<(String, Vec<f64>)> {
        optim
            .assignments()
            .iter()
            .map(|(p, _)| (p.path.clone(), param_values(model, &p.path)))
            .collect()
    }

    fn param_values(model: &Mlp, path: &str) -> Vec<f64> {
        match path {
            "input.adapter.lora_a" => values(model.input.adapter.as_ref().unwrap().lora_a.val()),
            "input.adapter.lora_b" => values(model.input.adapter.as_ref().unwrap().lora_b.val()),
            "head.weight" => values(model.head.weight.val()),
            "head.bias" => values(model.head.bias.as_ref().unwrap().val()),
            other => panic!("unexpected trainable parameter {other}"),
        }
    }

    fn grad_values(model: &Mlp, grads: &GradientsParams, path: &str) -> Vec<f64> {
        let adapter = model.input.adapter.as_ref().unwrap();
        match path {
            "input.adapter.lora_a" => values(grads.get::<2>(adapter.lora_a.id).unwrap()),
            "input.adapter.lora_b" => values(grads.get::<2>(adapter.lora_b.id).unwrap()),
            "head.weight" => values(grads.get::<2>(model.head.weight.id).unwrap()),
            "head.bias" => values(grads.get::<1>(model.head.bias.as_ref().unwrap().id).unwrap()),
            other => panic!("unexpected trainable parameter {other}"),
        }
    }

    /// PyTorch's AdamW, written out in f64: moments, bias correction, decoupled decay.
    struct HandAdamW {
        m: Vec<f64>,
        v: Vec<f64>,
        t: i32,
    }

    impl HandAdamW {
        fn new(n: usize) -> Self {
            Self {
                m: vec![0.0; n],
                v: vec![0.0; n],
                t: 0,
            }
        }

        fn step(&mut self, p: &[f64], g: &[f64], lr: f64, wd: f64, c: &LoraPlusConfig) -> Vec<f64> {
            self.t += 1;
            let (b1, b2) = (c.beta_1, c.beta_2);
            (0..p.len())
                .map(|i| {
                    self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
                    self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
                    let m_hat = self.m[i] / (1.0 - b1.powi(self.t));
                    let v_hat = self.v[i] / (1.0 - b2.powi(self.t));
                    p[i] * (1.0 - lr * wd) - lr * m_hat / (v_hat.sqrt() + c.epsilon)
                })
                .collect()
        }
    }

    /// Runs `steps` updates of the optimizer and of a hand-written AdamW on the same gradients,
    /// and compares every trainable tensor after each update.
    fn check_against_hand_adamw(config: LoraPlusConfig, steps: usize) {
        let device = Device::flex().autodiff();
        let mut model = adapted_mlp(&device);
        let mut optim = config.init(&model, steps).unwrap();
        let mut hand: Vec<HandAdamW> = optim
            .assignments()
            .iter()
            .map(|(p, _)| HandAdamW::new(p.numel()))
            .collect();
        let w0 = values(model.input.base.weight.val());
        for step in 0..steps {
            let grads = GradientsParams::from_grads(loss(&model, 10 + step as u64, &device).backward(), &model);
            let expected: Vec<Vec<f64>> = optim
                .assignments()
                .iter()
                .zip(&mut hand)
                .map(|((p, group), adam)| {
                    // The reference's rates, written out rather than taken from `group_lr`.
                    let base = match group {
                        Group::A => config.lr,
                        Group::B | Group::BNoDecay => config.lr * config.ratio,
                        Group::Embedding => config.lr_embedding,
                    };
                    let lr = base * config.schedule.factor(step, steps);
                    let wd = if *group == Group::BNoDecay {
                        0.0
                    } else {
                        config.weight_decay
                    };
                    adam.step(
                        &param_values(&model, &p.path),
                        &grad_values(&model, &grads, &p.path),
                        lr,
                        wd,
                        &config,
                    )
                })
                .collect();
            model = optim.step(model, grads);
            for ((path, actual), expected) in snapshot(&model, &optim).into_iter().zip(expected) {
                for (a, e) in actual.iter().zip(&expected) {
                    assert!((a - e).abs() <= 1e-6, "step {step}, {path}: {a} vs hand-computed {e}");
                }
            }
        }
        assert_eq!(
            values(model.input.base.weight.val()),
            w0,
            "the frozen base is bit-identical"
        );
    }

    #[test]
    fn steps_match_hand_computed_adamw_with_b_at_lr_times_ratio() {
        let config = LoraPlusConfig::new(1e-2, 4.0).with_weight_decay(0.1).with_beta_2(0.99);
        check_against_hand_adamw(config, 3);
    }

    #[test]
    fn warmup_and_decay_scale_every_group() {
        let config = LoraPlusConfig::new(5e-3, 16.0)
            .with_weight_decay(0.05)
            .with_schedule(Schedule::Linear { warmup_steps: 2 });
        check_against_hand_adamw(config.clone(), 5);

        let device = Device::flex().autodiff();
        let model = adapted_mlp(&device);
        let mut optim = config.init(&model, 5).unwrap();
        let mut model = model;
        for step in 0..5 {
            let factor = config.schedule.factor(step, 5);
            assert_eq!(optim.next_lr(Group::B), 5e-3 * 16.0 * factor, "step {step}");
            let grads = GradientsParams::from_grads(loss(&model, step as u64, &device).backward(), &model);
            let before = snapshot(&model, &optim);
            model = optim.step(model, grads);
            if factor == 0.0 {
                assert_eq!(
                    snapshot(&model, &optim),
                    before,
                    "a zero rate moves no group, B included"
                );
            }
        }
    }

    #[test]
    fn groups_follow_the_reference() {
        let device = Device::flex().autodiff();
        let optim = LoraPlusConfig::new(1e-3, 16.0).init(&adapted_mlp(&device), 10).unwrap();
        let groups: Vec<(&str, Group)> = optim.assignments().iter().map(|(p, g)| (p.path.as_str(), *g)).collect();
        assert_eq!(
            groups,
            vec![
                ("input.adapter.lora_a", Group::A),
                ("input.adapter.lora_b", Group::B),
                ("head.weight", Group::A),
                ("head.bias", Group::BNoDecay),
            ]
        );
        let table = optim.group_table();
        assert!(
            table.contains("head.bias") && table.contains("B (no decay)") && table.contains("1.600e-2"),
            "{table}"
        );
        assert!(optim.group_summary().contains("group B "), "{}", optim.group_summary());
    }

    #[test]
    fn ratio_one_is_plain_lora() {
        let config = LoraPlusConfig::new(3e-4, 1.0);
        assert_eq!(config.group_lr(Group::B), config.group_lr(Group::A));
    }

    #[test]
    fn invalid_settings_are_named() {
        let device = Device::flex().autodiff();
        let model = adapted_mlp(&device);
        let cases = [
            (LoraPlusConfig::new(0.0, 16.0), "invalid `lr` = 0"),
            (LoraPlusConfig::new(-1e-3, 16.0), "invalid `lr` = -0.001"),
            (LoraPlusConfig::new(1e-3, 0.0), "invalid `ratio` = 0"),
            (LoraPlusConfig::new(1e-3, f64::NAN), "invalid `ratio` = NaN"),
            (
                LoraPlusConfig::new(1e-3, 16.0).with_beta_2(1.0),
                "invalid `beta_2` = 1: must be a number in [0, 1)",
            ),
            (
                LoraPlusConfig::new(1e-3, 16.0).with_weight_decay(-0.1),
                "invalid `weight_decay` = -0.1",
            ),
        ];
        for (config, message) in cases {
            let err = config.init(&model, 10).err().expect("rejected").to_string();
            assert!(err.contains(message), "{err} should contain {message}");
        }
        let warmup = LoraPlusConfig::new(1e-3, 2.0).with_schedule(Schedule::Linear { warmup_steps: 20 });
        assert!(
            warmup
                .init(&model, 10)
                .err()
                .unwrap()
                .to_string()
                .contains("warmup_steps (20) exceeds")
        );
        let frozen = MlpConfig::new(3, vec![4], 2).init(&mut init::rng(0), &device).no_grad();
        assert!(matches!(
            LoraPlusConfig::new(1e-3, 2.0).init(&frozen, 10),
            Err(OptimError::NoTrainableParams)
        ));
    }

    #[test]
    fn global_norm_clipping_scales_to_the_bound() {
        let device = Device::flex().autodiff();
        let model = adapted_mlp(&device);
        let optim = LoraPlusConfig::new(1e-2, 2.0)
            .with_max_grad_norm(Some(1e-3))
            .init(&model, 4)
            .unwrap();
        let mut grads = GradientsParams::from_grads(loss(&model, 3, &device).backward(), &model);
        let norm = |grads: &GradientsParams| {
            optim
                .assignments()
                .iter()
                .map(|(p, _)| with_grad(grads, p, |g| g.square().sum()))
                .sum::<f64>()
                .sqrt()
        };
        let before = norm(&grads);
        assert!(before > 1e-2, "the test needs a gradient above the bound, got {before}");
        optim.clip_global_norm(&mut grads, 1e-3);
        assert!((norm(&grads) - 1e-3).abs() < 1e-8, "clipped norm {}", norm(&grads));
    }
}
