//! `LoraPlus`: AdamW whose learning rate depends on each parameter's LoRA+ group.

use std::collections::HashMap;
use std::fmt::Write;

use burn::config::Config;
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use loraplus_model::{ParamInfo, param_table};

use crate::{Group, OptimError, Schedule};

/// Settings of the LoRA+ optimizer (Hayou, Ghosh, Yu 2024, arXiv 2402.12354).
///
/// Rates: group A trains at `lr`, groups B and B-no-decay at `lr * ratio`, embedding adapters at
/// `lr_embedding`; every rate follows `schedule`. Defaults are PyTorch's AdamW and Hugging Face
/// `Trainer`'s, so a run compares with a PEFT `create_loraplus_optimizer` run.
///
/// Stacked trials ([`loraplus_model::members`]) get one config each through
/// [`LoraPlus::stacked`]; they may differ in `lr` and `ratio` only.
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
        LoraPlus::stacked(std::slice::from_ref(self), model, total_steps)
    }

    /// These settings with the rates blanked: what stacked members must share.
    fn shared(&self) -> Self {
        Self {
            lr: 0.0,
            ratio: 0.0,
            ..self.clone()
        }
    }
}

/// AdamW (PyTorch's, with decoupled decay) over the trainable parameters of a model, each at its
/// LoRA+ group's scheduled rate, for one trial or for `K` stacked trials at once.
///
/// A model stacked with `K` members holds member `k` of every trainable tensor in row `k` of
/// the tensor's `[K, numel / K]` view. The update is elementwise, so each member's row moves
/// exactly as it would under a one-member optimizer with that member's rates. Gradient clipping
/// is per member too, and a member can be stopped (its parameters keep their values) without
/// disturbing the others.
pub struct LoraPlus {
    members: Vec<LoraPlusConfig>,
    total_steps: usize,
    steps_taken: usize,
    assignments: Vec<(ParamInfo, Group)>,
    /// The group of each trainable parameter, by id (the lookup `assignments` serves).
    groups: HashMap<ParamId, Group>,
    /// Per trainable parameter: Adam's first and second moments, `[K, numel / K]`.
    moments: HashMap<ParamId, (Tensor<2>, Tensor<2>)>,
    stopped: Vec<bool>,
    /// The per-member tensors every step uses, made on the device once (and again after a
    /// member stops) rather than uploaded every step.
    columns: Option<MemberColumns>,
}

/// `[K, 1]` columns: 1 for a running member and 0 for a stopped one, and each group's base rate
/// times that.
struct MemberColumns {
    running: Tensor<2>,
    rates: HashMap<Group, Tensor<2>>,
}

impl LoraPlus {
    /// One optimizer for the members of a stacked model, `configs[k]` for member `k`.
    ///
    /// The configs must agree on everything but `lr` and `ratio`, and every trainable tensor of
    /// `model` must split into `configs.len()` members.
    pub fn stacked<M: Module>(configs: &[LoraPlusConfig], model: &M, total_steps: usize) -> Result<Self, OptimError> {
        let first = configs.first().ok_or(OptimError::NoMembers)?;
        for config in configs {
            config.validate()?;
            if config.shared() != first.shared() {
                return Err(OptimError::MembersDiffer);
            }
        }
        if total_steps == 0 {
            return Err(OptimError::value("total_steps", 0.0, "at least 1"));
        }
        let warmup = first.schedule.warmup_steps();
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
        if let Some((p, _)) = assignments
            .iter()
            .find(|(p, _)| !p.numel().is_multiple_of(configs.len()))
        {
            return Err(OptimError::NotStacked {
                path: p.path.clone(),
                members: configs.len(),
            });
        }
        Ok(Self {
            members: configs.to_vec(),
            total_steps,
            steps_taken: 0,
            groups: assignments.iter().map(|(p, g)| (p.id, *g)).collect(),
            assignments,
            moments: HashMap::new(),
            stopped: vec![false; configs.len()],
            columns: None,
        })
    }

    /// One AdamW update of every trainable parameter at its group's scheduled rate.
    pub fn step<M: Module>(&mut self, model: M, mut grads: GradientsParams) -> M {
        let k = self.members.len();
        let mut flat: HashMap<ParamId, Tensor<2>> = HashMap::new();
        for (param, _) in &self.assignments {
            if let Some(grad) = take_grad(&mut grads, param) {
                flat.insert(param.id, grad.reshape([k as i32, -1]));
            }
        }
        let Some(device) = flat.values().next().map(|g| g.device()) else {
            return model;
        };
        let columns = self.columns.get_or_insert_with(|| {
            let column = |value: &dyn Fn(usize) -> f64| {
                let values: Vec<f32> = (0..k).map(|m| value(m) as f32).collect();
                Tensor::<2>::from_data(TensorData::new(values, [k, 1]), &device)
            };
            let running = |m: usize| if self.stopped[m] { 0.0 } else { 1.0 };
            MemberColumns {
                running: column(&running),
                rates: Group::ALL
                    .into_iter()
                    .map(|g| (g, column(&|m| self.members[m].group_lr(g) * running(m))))
                    .collect(),
            }
        });
        if self.stopped.contains(&true) {
            // A stopped member's gradient may be NaN: zero it, so its moments stay finite.
            for grad in flat.values_mut() {
                let stopped = columns.running.clone().expand(grad.dims()).equal_elem(0.0);
                *grad = grad.clone().mask_fill(stopped, 0.0);
            }
        }
        if let Some(max_norm) = self.members[0].max_grad_norm {
            clip_member_norms(&mut flat, max_norm);
        }
        let factor = self.members[0].schedule.factor(self.steps_taken, self.total_steps);
        self.steps_taken += 1;
        let rates: HashMap<Group, Tensor<2>> = columns
            .rates
            .iter()
            .map(|(group, rate)| (*group, rate.clone().mul_scalar(factor)))
            .collect();
        let config = self.config().clone();
        let mut update = AdamWUpdate {
            config: &config,
            step: self.steps_taken as i32,
            grads: flat,
            groups: &self.groups,
            rates,
            moments: &mut self.moments,
        };
        model.map(&mut update)
    }

    /// Stops member `k` (a diverged trial): from now on its parameters keep their values.
    pub fn stop_member(&mut self, k: usize) {
        self.stopped[k] = true;
        self.columns = None;
    }

    /// The number of stacked members (1 for a plain trial).
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// The settings (member 0's rates; everything else is shared).
    pub fn config(&self) -> &LoraPlusConfig {
        &self.members[0]
    }

    /// Updates taken so far.
    pub fn steps_taken(&self) -> usize {
        self.steps_taken
    }

    /// The schedule factor the next update uses.
    pub fn next_factor(&self) -> f64 {
        self.config().schedule.factor(self.steps_taken, self.total_steps)
    }

    /// Member `k`'s rate for `group` at the next update.
    pub fn next_lr(&self, k: usize, group: Group) -> f64 {
        self.members[k].group_lr(group) * self.next_factor()
    }

    /// Every trainable parameter and its group.
    pub fn assignments(&self) -> &[(ParamInfo, Group)] {
        &self.assignments
    }

    /// Per group: tensors, scalars, base rate (member 0's) and decay; printed at the start of a
    /// run.
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
                self.config().group_lr(group),
                self.config().group_weight_decay(group),
            )
            .unwrap();
        }
        out
    }

    /// One row per trainable parameter: path, group, base rate (member 0's), weight decay.
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
                self.config().group_lr(*group),
                self.config().group_weight_decay(*group)
            )
            .unwrap();
        }
        out
    }
}

/// `torch.nn.utils.clip_grad_norm_`, member by member: where a member's L2 norm over all its
/// gradients exceeds `max_norm`, its gradients are scaled by `max_norm / (norm + 1e-6)`.
fn clip_member_norms(grads: &mut HashMap<ParamId, Tensor<2>>, max_norm: f64) {
    let Some(sum_sq) = grads
        .values()
        .map(|g| g.clone().square().sum_dim(1))
        .reduce(|a, b| a + b)
    else {
        return;
    };
    let norm = sum_sq.sqrt();
    let within = norm.clone().lower_equal_elem(max_norm);
    let scale = norm
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .mask_fill(within, 1.0);
    for grad in grads.values_mut() {
        *grad = grad.clone() * scale.clone();
    }
}

/// Removes `param`'s gradient (of any supported rank) from `grads`, flattened.
fn take_grad(grads: &mut GradientsParams, param: &ParamInfo) -> Option<Tensor<1>> {
    match param.shape.len() {
        1 => grads.remove::<1>(param.id),
        2 => grads.remove::<2>(param.id).map(|g| g.flatten(0, 1)),
        3 => grads.remove::<3>(param.id).map(|g| g.flatten(0, 2)),
        4 => grads.remove::<4>(param.id).map(|g| g.flatten(0, 3)),
        rank => unimplemented!("rank-{rank} parameter {}", param.path),
    }
}

/// One step's AdamW update, applied parameter by parameter as the model is mapped.
struct AdamWUpdate<'a> {
    config: &'a LoraPlusConfig,
    /// The update's 1-based index (for bias correction).
    step: i32,
    /// Gradients as `[K, numel / K]`.
    grads: HashMap<ParamId, Tensor<2>>,
    groups: &'a HashMap<ParamId, Group>,
    /// Per group, every member's rate, `[K, 1]`.
    rates: HashMap<Group, Tensor<2>>,
    moments: &'a mut HashMap<ParamId, (Tensor<2>, Tensor<2>)>,
}

impl ModuleMapper for AdamWUpdate<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove(&id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let group = self.groups[&id];
        let (b1, b2) = (self.config.beta_1, self.config.beta_2);
        let (m, v) = self
            .moments
            .remove(&id)
            .unwrap_or_else(|| (grad.zeros_like(), grad.zeros_like()));
        let m = m.mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1);
        let v = v.mul_scalar(b2) + grad.square().mul_scalar(1.0 - b2);
        let m_hat = m.clone().div_scalar(1.0 - b1.powi(self.step));
        let v_hat = v.clone().div_scalar(1.0 - b2.powi(self.step));
        let direction = m_hat / v_hat.sqrt().add_scalar(self.config.epsilon);
        let rate = self.rates[&group].clone();
        let decay = rate.clone().mul_scalar(self.config.group_weight_decay(group));

        let shape = tensor.shape();
        let trainable = tensor.is_require_grad();
        let p: Tensor<2> = tensor.inner().reshape(m.dims());
        let updated = p.clone() - p * decay - direction * rate;
        self.moments.insert(id, (m, v));
        let updated = Tensor::from_inner(updated.reshape(shape));
        let updated = if trainable { updated.require_grad() } else { updated };
        Param::from_mapped_value(id, updated, mapper)
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
        // The reference's rates, written out rather than taken from `group_lr`.
        let rate = |group: Group, config: &LoraPlusConfig| match group {
            Group::A => config.lr,
            Group::B | Group::BNoDecay => config.lr * config.ratio,
            Group::Embedding => config.lr_embedding,
        };
        check_against_hand_adamw_at(config, steps, rate);
    }

    /// [`check_against_hand_adamw`] with the hand-written AdamW's base rate for each group given.
    fn check_against_hand_adamw_at(config: LoraPlusConfig, steps: usize, rate: impl Fn(Group, &LoraPlusConfig) -> f64) {
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
                    let lr = rate(*group, &config) * config.schedule.factor(step, steps);
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
            assert_eq!(optim.next_lr(0, Group::B), 5e-3 * 16.0 * factor, "step {step}");
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
    fn ratio_one_is_plain_adamw_at_one_rate() {
        // Plain LoRA: one AdamW over every trainable tensor (A, B and the head) at `lr`.
        let config = LoraPlusConfig::new(3e-3, 1.0).with_weight_decay(0.1);
        check_against_hand_adamw_at(config, 3, |_, config| config.lr);
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
    fn clipping_bounds_each_members_norm_alone() {
        let device = Device::flex();
        let grad = |rows: [[f32; 3]; 2]| Tensor::<2>::from_data(rows, &device);
        // Member 0's norm is 13 (above the bound), member 1's 0.5 (below).
        let mut grads = HashMap::from([
            (ParamId::new(), grad([[3.0, 4.0, 0.0], [0.3, 0.0, 0.0]])),
            (ParamId::new(), grad([[12.0, 0.0, 0.0], [0.0, 0.4, 0.0]])),
        ]);
        let before: Vec<Vec<f64>> = grads.values().map(|g| values(g.clone())).collect();
        clip_member_norms(&mut grads, 1.0);
        let norm = |member: usize| {
            grads
                .values()
                .map(|g| values(g.clone().narrow(0, member, 1).square().sum()))
                .map(|v| v[0])
                .sum::<f64>()
                .sqrt()
        };
        assert!((norm(0) - 1.0).abs() < 1e-6, "clipped to the bound: {}", norm(0));
        for (g, before) in grads.values().zip(&before) {
            assert_eq!(values(g.clone())[3..], before[3..], "member 1 untouched");
        }
    }

    /// `K` stacked members with their own rates, against `K` separate one-member optimizers on
    /// the same model, gradients and clipping; member 1 is stopped half way.
    #[test]
    fn stacked_members_step_like_separate_optimizers() {
        use loraplus_model::members;
        const K: usize = 3;
        let device = Device::flex().autodiff();
        let shared = LoraPlusConfig::new(1.0, 1.0)
            .with_weight_decay(0.1)
            .with_max_grad_norm(Some(0.05))
            .with_schedule(Schedule::Linear { warmup_steps: 1 });
        let configs: Vec<LoraPlusConfig> = [(1e-2, 1.0), (3e-2, 16.0), (5e-3, 4.0)]
            .into_iter()
            .map(|(lr, ratio)| LoraPlusConfig {
                lr,
                ratio,
                ..shared.clone()
            })
            .collect();
        let steps = 4;
        let mut stacked = members::stack(adapted_mlp(&device), K).unwrap();
        let mut optim = LoraPlus::stacked(&configs, &stacked, steps).unwrap();
        let mut alone: Vec<(Mlp, LoraPlus)> = configs
            .iter()
            .map(|c| {
                let model = adapted_mlp(&device);
                let optim = c.init(&model, steps).unwrap();
                (model, optim)
            })
            .collect();
        let x = |step: usize| init::normal([5, 3], 1.0, &mut init::rng(20 + step as u64), &device);
        for step in 0..steps {
            if step == 2 {
                optim.stop_member(1);
            }
            let loss = stacked.forward(x(step).repeat_dim(0, K)).tanh().sum();
            let grads = GradientsParams::from_grads(loss.backward(), &stacked);
            stacked = optim.step(stacked, grads);
            for (k, (model, optim)) in alone.iter_mut().enumerate() {
                if k == 1 && step >= 2 {
                    continue;
                }
                let loss = model.forward(x(step)).tanh().sum();
                let grads = GradientsParams::from_grads(loss.backward(), &*model);
                *model = optim.step(model.clone(), grads);
            }
            for (k, (model, _)) in alone.iter().enumerate() {
                let member = members::member(stacked.clone(), k, K);
                for path in [
                    "input.adapter.lora_a",
                    "input.adapter.lora_b",
                    "head.weight",
                    "head.bias",
                ] {
                    let (a, b) = (param_values(&member, path), param_values(model, path));
                    for (a, b) in a.iter().zip(&b) {
                        assert!((a - b).abs() < 1e-6, "step {step}, member {k}, {path}: {a} vs {b}");
                    }
                }
            }
        }
        let config = LoraPlusConfig::new(1e-2, 2.0);
        let other = config.clone().with_beta_2(0.9);
        assert!(matches!(
            LoraPlus::stacked(&[config, other], &stacked, steps),
            Err(OptimError::MembersDiffer)
        ));
    }
}
