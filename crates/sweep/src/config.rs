//! The sweep config: a TOML file declaring models, tasks, the (eta_A, lambda) grid, seeds and
//! training settings. Parsing is strict (unknown keys and wrong types are errors with a line
//! number) and every value is checked before anything runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use loraplus_model::{AttachConfig, LoraConfig, LoraError, attach, init};
use serde::{Deserialize, Serialize};

use crate::adaptive::AdaptiveConfig;
use crate::data::{InputShape, TaskKind};
use crate::grid::{self, MAX_TRIALS};
use crate::stacking::GroupSize;
use crate::zoo::{MAX_PARAMETERS, ModelKind};

/// A whole sweep, as written in its TOML file.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// A name for the sweep, used in reports.
    pub name: String,
    /// Seeds; each grid cell runs once per seed. Default: `[0]`.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// The metric that ranks trials. Default: test accuracy, as the LoRA+ paper does.
    #[serde(default)]
    pub metric: Metric,
    /// How best cells are chosen: `seed_mean` or `paper` (single seed, test accuracy).
    /// Default: seed_mean.
    #[serde(default)]
    pub protocol: Protocol,
    /// How many best cells per (model, task) pair enter the ratio distribution. Default: 4.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// The compute device. Default: `cpu`.
    #[serde(default)]
    pub device: DeviceChoice,
    /// Trials trained together in one stacked pass (those differing only in eta_A and ratio):
    /// `"auto"` (as many as fit in memory) or a number; 1 runs every trial alone. Default: auto.
    #[serde(default)]
    pub group_size: GroupSize,
    /// The learning-rate grid.
    pub grid: GridConfig,
    /// Extend the grid where a pair's best cell lies on its edge (see [`crate::adaptive`]).
    /// Default: off.
    #[serde(default)]
    pub adaptive: Option<AdaptiveConfig>,
    /// Training settings; numeric keys may be lists.
    #[serde(default)]
    pub train: TrainConfig,
    /// Adapter settings; numeric keys may be lists.
    #[serde(default)]
    pub lora: LoraSection,
    /// The tasks (datasets).
    #[serde(rename = "task")]
    pub tasks: Vec<TaskConfig>,
    /// The models.
    #[serde(rename = "model")]
    pub models: Vec<ModelConfig>,
    /// Which (model, task) pairs to run. Default: every model on every downstream task its input
    /// fits (tasks used only for pretraining are left out).
    #[serde(default)]
    pub pairs: Option<Vec<(String, String)>>,
}

/// Which accuracy ranks trials.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Final test accuracy (the LoRA+ paper's protocol).
    #[default]
    TestAccuracy,
    /// Final validation accuracy.
    ValAccuracy,
}

/// How the best cells of a pair are chosen.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Rank cells by their mean over every seed (a cell counts only if every seed trained and
    /// learned), with bootstrap intervals over pairs and seeds.
    #[default]
    SeedMean,
    /// The LoRA+ paper's: rank by the test accuracy of a single seed (the first).
    Paper,
}

/// Where tensors live.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// The default CPU backend (Burn's flex, measured fastest; see the README).
    #[default]
    Cpu,
    /// Burn's ndarray CPU backend.
    Ndarray,
    /// Burn's wgpu backend (Vulkan, Metal or DirectX); needs a build with the `wgpu` feature.
    Wgpu,
}

/// The (eta_A, lambda) grid.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// Rates of the A group: a list, or `{ from, to, points }` log-spaced.
    pub eta_a: Axis,
    /// Ratios `lambda = eta_B / eta_A`: a list or a log-spaced range. 1 (plain LoRA) is always
    /// added if missing.
    pub ratio: Axis,
    /// Also run the frozen-base baseline (only the head trains) at every eta_A. Default: true.
    #[serde(default = "default_true")]
    pub baseline: bool,
}

/// One grid axis.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(
    untagged,
    expecting = "a list of numbers, or a log range { from = .., to = .., points = .. }"
)]
pub enum Axis {
    /// Explicit values.
    List(Vec<f64>),
    /// `points` values from `from` to `to`, evenly spaced in log scale.
    LogRange { from: f64, to: f64, points: usize },
}

/// A value that is either one number or a list of them; a list makes the key a grid axis.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged, expecting = "a number or a list of numbers")]
pub enum Values<T> {
    /// One value.
    One(T),
    /// A grid axis.
    Many(Vec<T>),
}

/// How the task is trained. Every numeric key may be a list.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimizer updates per trial (exclusive with `epochs`).
    pub steps: Option<Values<usize>>,
    /// Passes over the train split (exclusive with `steps`).
    pub epochs: Option<Values<usize>>,
    /// Examples per update. Default: 32.
    pub batch_size: Values<usize>,
    /// Evaluate every this many steps. Default: 50.
    pub eval_interval: Values<usize>,
    /// Rate schedule: `constant`, `linear` or `cosine`. Default: `linear` (Trainer's).
    pub schedule: ScheduleKind,
    /// Steps of linear warmup. Default: 0.
    pub warmup_steps: Values<usize>,
    /// Decoupled weight decay. Default: 0.
    pub weight_decay: Values<f64>,
    /// Rate of embedding adapters. Default: 1e-6.
    pub lr_embedding: Values<f64>,
    /// Adam beta_1. Default: 0.9.
    pub beta_1: Values<f64>,
    /// Adam beta_2. Default: 0.999.
    pub beta_2: Values<f64>,
    /// Adam epsilon. Default: 1e-8.
    pub epsilon: Values<f64>,
    /// Global gradient-norm clip; absent means none. Default: none.
    pub max_grad_norm: Option<Values<f64>>,
    /// A trial diverges when its loss is not finite or exceeds this multiple of its first loss.
    /// Default: 100.
    pub diverge_factor: Values<f64>,
}

/// Settings of the Hugging Face-style schedules.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Constant after warmup.
    Constant,
    /// Linear decay to 0 after warmup.
    Linear,
    /// Cosine decay to 0 after warmup.
    Cosine,
}

/// Adapter settings shared by every model. Every numeric key may be a list.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoraSection {
    /// Rank r. Default: 8.
    pub rank: Values<usize>,
    /// Scaling numerator. Default: 16.
    pub alpha: Values<f64>,
    /// Adapter-input dropout. Default: 0.
    pub dropout: Values<f64>,
    /// `alpha / sqrt(r)` scaling. Default: false.
    pub rslora: bool,
    /// `peft`, `gaussian` or `reverse`. Default: `peft`.
    pub init: InitKind,
    /// Whether the task head trains with the adapters. Default: true.
    pub train_head: bool,
}

/// Adapter initialisations (see `loraplus_model::LoraInit`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InitKind {
    /// PEFT's default: A Kaiming-uniform, B = 0.
    Peft,
    /// A ~ N(0, (1/r)^2), B = 0.
    Gaussian,
    /// A = 0, B random.
    Reverse,
}

/// A task: a name and how its data is made.
///
/// (Unknown keys are rejected by the `kind`'s own struct: serde cannot combine
/// `deny_unknown_fields` with `flatten` on this one.)
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TaskConfig {
    /// Name used in reports and `pairs`.
    pub name: String,
    /// The data.
    #[serde(flatten)]
    pub kind: TaskKind,
}

/// A model: a name, its architecture, its targets and how its base is pretrained.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Name used in reports and `pairs`.
    pub name: String,
    /// The architecture.
    #[serde(flatten)]
    pub kind: ModelKind,
    /// Layers that get adapters. Default: the architecture's usual targets.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// How the base is pretrained before any trial; a checkpoint comes pretrained and has none.
    #[serde(default)]
    pub pretrain: Option<PretrainConfig>,
}

/// Pretraining of a model's base on a task that is not a downstream task.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// The pretraining task's name.
    pub task: String,
    /// Updates. Default: 1000.
    #[serde(default = "default_pretrain_steps")]
    pub steps: usize,
    /// AdamW rate. Default: 1e-3.
    #[serde(default = "default_pretrain_lr")]
    pub lr: f64,
    /// Examples per update. Default: 64.
    #[serde(default = "default_pretrain_batch")]
    pub batch_size: usize,
    /// Init and data-order seed. Default: 0.
    #[serde(default)]
    pub seed: u64,
}

/// Everything wrong with a config, named by file, key and (where known) line.
#[derive(Debug, thiserror::Error)]
#[error("{file}{line}: {message}", line = line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// The line of the offending key, where known.
    pub line: Option<usize>,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}
fn default_top_k() -> usize {
    4
}
fn default_true() -> bool {
    true
}
fn default_pretrain_steps() -> usize {
    1000
}
fn default_pretrain_lr() -> f64 {
    1e-3
}
fn default_pretrain_batch() -> usize {
    64
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: None,
            epochs: None,
            batch_size: Values::One(32),
            eval_interval: Values::One(50),
            schedule: ScheduleKind::Linear,
            warmup_steps: Values::One(0),
            weight_decay: Values::One(0.0),
            lr_embedding: Values::One(1e-6),
            beta_1: Values::One(0.9),
            beta_2: Values::One(0.999),
            epsilon: Values::One(1e-8),
            max_grad_norm: None,
            diverge_factor: Values::One(100.0),
        }
    }
}

impl Default for LoraSection {
    fn default() -> Self {
        Self {
            rank: Values::One(8),
            alpha: Values::One(16.0),
            dropout: Values::One(0.0),
            rslora: false,
            init: InitKind::Peft,
            train_head: true,
        }
    }
}

impl<T: Copy> Values<T> {
    /// All values, in order.
    pub fn all(&self) -> Vec<T> {
        match self {
            Values::One(v) => vec![*v],
            Values::Many(vs) => vs.clone(),
        }
    }

    /// The value of a resolved (single-valued) key.
    ///
    /// # Panics
    /// If the key is still a list; grid expansion resolves every list first.
    pub fn get(&self) -> T {
        match self {
            Values::One(v) => *v,
            Values::Many(_) => panic!("a grid axis was not expanded"),
        }
    }
}

impl Axis {
    /// How many values the axis has, without making them.
    pub fn n_values(&self) -> usize {
        match *self {
            Axis::List(ref values) => values.len(),
            Axis::LogRange { points, .. } => points,
        }
    }

    /// The axis values, in order.
    pub fn values(&self) -> Vec<f64> {
        match *self {
            Axis::List(ref values) => values.clone(),
            Axis::LogRange { from, to, points } => {
                if points == 1 {
                    return vec![from];
                }
                let (lo, hi) = (from.ln(), to.ln());
                (0..points)
                    .map(|i| (lo + (hi - lo) * i as f64 / (points - 1) as f64).exp())
                    .collect()
            }
        }
    }
}

impl SweepConfig {
    /// Reads, parses and validates the config at `path`; returns it with its text.
    pub fn load(path: &Path) -> Result<(Self, String), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.into(),
            line: None,
            message: format!("cannot read the config: {e}"),
        })?;
        Ok((Self::parse(&text, path)?, text))
    }

    /// Parses and validates config `text` (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: SweepConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| text[..span.start].matches('\n').count() + 1);
            // Quote the offending line: serde's messages for scalar-or-list keys name no key.
            let quoted = line
                .and_then(|l| text.lines().nth(l - 1))
                .map(|l| format!("`{}`: ", l.trim()));
            ConfigError {
                file: path.into(),
                line,
                message: format!("{}{}", quoted.unwrap_or_default(), e.message().trim()),
            }
        })?;
        config.validate().map_err(|(key, message)| ConfigError {
            file: path.into(),
            line: line_of(text, &key),
            message: format!("`{key}`: {message}"),
        })?;
        Ok(config)
    }

    /// Checks every value; on failure returns the key and what is allowed.
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((key.to_string(), message));
        if self.seeds.is_empty() {
            return fail("seeds", "the list is empty; give at least one seed".into());
        }
        if self.top_k == 0 {
            return fail("top_k", "must be at least 1".into());
        }
        if self.group_size == GroupSize::Trials(0) {
            return fail("group_size", "must be `auto` or at least 1".into());
        }
        if let Some(adaptive) = &self.adaptive {
            adaptive.validate()?;
        }
        // Before any axis is made: a log range's `points` alone can ask for more than memory holds.
        let sizes = grid::sizes(self);
        let trials = sizes
            .iter()
            .try_fold(1_usize, |n, (_, size)| n.checked_mul((*size).max(1)));
        if trials.is_none_or(|n| n > MAX_TRIALS) {
            let (key, _) = sizes
                .iter()
                .max_by_key(|(_, size)| *size)
                .expect("sizes has the grid's axes");
            let count = trials.map_or_else(|| format!("more than {}", usize::MAX), |n| n.to_string());
            let product: Vec<String> = sizes.iter().map(|(key, size)| format!("{size} {key}")).collect();
            return fail(
                key,
                format!(
                    "the grid has up to {count} trials ({}; the ratios include 1 and the baseline); \
                     at most {MAX_TRIALS} are allowed, as each trains a model: shrink `{key}`",
                    product.join(" x ")
                ),
            );
        }
        for (key, axis) in [("eta_a", &self.grid.eta_a), ("ratio", &self.grid.ratio)] {
            if let Axis::LogRange { from, to, points } = *axis {
                if points == 0 {
                    return fail(key, "`points` must be at least 1".into());
                }
                if !(from > 0.0 && to > 0.0 && from.is_finite() && to.is_finite()) {
                    return fail(
                        key,
                        format!("a log range needs finite `from` and `to` > 0, got {from} and {to}"),
                    );
                }
            }
            let values = axis.values();
            if values.is_empty() {
                return fail(key, "the grid is empty; give at least one value".into());
            }
            if let Some(bad) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return fail(
                    key,
                    format!("{bad} is not allowed; every value must be a finite number > 0"),
                );
            }
        }
        self.train.validate()?;
        self.lora.validate()?;
        if self.train.epochs.is_some()
            && let Some((_, task)) = self.pairs().into_iter().find(|(_, t)| t.kind.n_train().is_none())
        {
            return fail(
                "epochs",
                format!(
                    "task `{}` sets no n_train, so epochs cannot be counted: give steps or n_train",
                    task.name
                ),
            );
        }
        if let Some(epochs) = &self.train.epochs {
            // A trial counts its steps as epochs x batches per epoch; the smallest batch makes most.
            let most = epochs.all().into_iter().max().unwrap_or(0);
            let smallest_batch = self.train.batch_size.all().into_iter().min().unwrap_or(1);
            for (_, task) in self.pairs() {
                let batches = task.kind.n_train().unwrap_or(0).div_ceil(smallest_batch);
                if most.checked_mul(batches).is_none() {
                    return fail(
                        "epochs",
                        format!(
                            "{most} epochs of {batches} batches (task `{}`) are more steps than a trial can \
                             count; give fewer epochs",
                            task.name
                        ),
                    );
                }
            }
        }

        let mut names = BTreeSet::new();
        for task in &self.tasks {
            if !names.insert(&task.name) {
                return fail("task.name", format!("task `{}` is defined twice", task.name));
            }
            task.kind
                .validate()
                .map_err(|(key, msg)| (format!("task.{key}"), format!("task `{}`: {msg}", task.name)))?;
        }
        if self.tasks.is_empty() {
            return fail("task", "no [[task]] is defined".into());
        }
        let mut model_names = BTreeSet::new();
        for model in &self.models {
            if !model_names.insert(&model.name) {
                return fail("model.name", format!("model `{}` is defined twice", model.name));
            }
            model
                .kind
                .validate()
                .map_err(|(key, msg)| (format!("model.{key}"), format!("model `{}`: {msg}", model.name)))?;
            let pretrain = match (&model.pretrain, model.kind.is_checkpoint()) {
                (Some(pretrain), false) => pretrain,
                (None, false) => {
                    return fail(
                        "pretrain",
                        format!(
                            "model `{}` starts from random weights: give pretrain = {{ task = \"...\" }}",
                            model.name
                        ),
                    );
                }
                (Some(_), true) => {
                    return fail(
                        "pretrain",
                        format!("model `{}` is a pretrained checkpoint: remove its pretrain", model.name),
                    );
                }
                (None, true) => {
                    for task in self.tasks.iter().filter(|t| model.kind.accepts(&t.kind).is_ok()) {
                        self.check_adapters_fit(model, task)?;
                    }
                    continue;
                }
            };
            let Some(task) = self.task(&pretrain.task) else {
                return fail(
                    "pretrain",
                    format!("model `{}` pretrains on unknown task `{}`", model.name, pretrain.task),
                );
            };
            if let Err(why) = model.kind.accepts(&task.kind) {
                return fail(
                    "pretrain",
                    format!("model `{}` cannot pretrain on `{}`: {why}", model.name, task.name),
                );
            }
            if pretrain.steps == 0 || pretrain.batch_size == 0 || !(pretrain.lr.is_finite() && pretrain.lr > 0.0) {
                return fail(
                    "pretrain",
                    format!(
                        "model `{}`: pretraining needs steps >= 1, batch_size >= 1 and lr > 0",
                        model.name
                    ),
                );
            }
            self.check_adapters_fit(model, task)?;
        }
        if self.models.is_empty() {
            return fail("model", "no [[model]] is defined".into());
        }
        if let Some(pairs) = &self.pairs {
            if pairs.is_empty() {
                return fail(
                    "pairs",
                    "the list is empty; remove it to run every compatible pair".into(),
                );
            }
            for (model, task) in pairs {
                let (Some(m), Some(t)) = (self.model(model), self.task(task)) else {
                    return fail(
                        "pairs",
                        format!("[\"{model}\", \"{task}\"] names an unknown model or task"),
                    );
                };
                if let Err(why) = m.kind.accepts(&t.kind) {
                    return fail("pairs", format!("model `{model}` cannot take task `{task}`: {why}"));
                }
            }
        }
        if self.pairs().is_empty() {
            return fail(
                "pairs",
                "no (model, task) pair: no model accepts any downstream task".into(),
            );
        }
        Ok(())
    }

    /// [`SweepConfig::adapters_fit`] for tasks whose input size the config states. (Image tasks
    /// tell theirs only once read: the sweep checks them then, before writing anything.)
    fn check_adapters_fit(&self, model: &ModelConfig, task: &TaskConfig) -> Result<(), (String, String)> {
        let Some(shape) = task.kind.shape() else {
            return Ok(());
        };
        if let Some(parameters) = model.kind.parameters(&shape)
            && parameters > MAX_PARAMETERS
        {
            let key = match model.kind {
                ModelKind::Toy(_) => "width",
                ModelKind::Bert(_) => "hidden_size",
                _ => "hidden",
            };
            return Err((
                key.into(),
                format!(
                    "model `{}` has {parameters} parameters on the inputs of task `{}`; at most \
                     {MAX_PARAMETERS} are allowed: shrink the model or the task's inputs",
                    model.name, task.name
                ),
            ));
        }
        self.adapters_fit(model, &shape)
    }

    /// Attaches the configured adapters to a throwaway copy of `model` built for inputs of
    /// `shape`, so unknown targets and ranks too large for a layer are reported before anything
    /// runs. On failure returns the key and what is wrong.
    pub fn adapters_fit(&self, model: &ModelConfig, shape: &InputShape) -> Result<(), (String, String)> {
        let skeleton = model
            .kind
            .init(shape, false, &mut init::rng(0), &Device::flex())
            .map_err(|error| ("path".to_string(), format!("model `{}`: {error:#}", model.name)))?;
        let targets = model.targets.clone().unwrap_or_else(|| model.kind.default_targets());
        for rank in self.lora.rank.all() {
            let config = AttachConfig::new(LoraConfig::new(rank), targets.clone());
            if let Err(error) = attach(skeleton.clone(), &config, &mut init::rng(0)) {
                let key = if matches!(error, LoraError::RankTooLarge { .. }) {
                    "rank"
                } else {
                    "targets"
                };
                return Err((key.into(), format!("model `{}`: {error}", model.name)));
            }
        }
        Ok(())
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&TaskConfig> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// The model named `name`.
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The (model, task) pairs to run, in config order.
    pub fn pairs(&self) -> Vec<(&ModelConfig, &TaskConfig)> {
        match &self.pairs {
            Some(pairs) => pairs
                .iter()
                .filter_map(|(m, t)| Some((self.model(m)?, self.task(t)?)))
                .collect(),
            None => {
                let pretraining: BTreeSet<&str> = self
                    .models
                    .iter()
                    .filter_map(|m| m.pretrain.as_ref())
                    .map(|p| p.task.as_str())
                    .collect();
                let downstream = self.tasks.iter().filter(|t| !pretraining.contains(t.name.as_str()));
                let downstream: Vec<&TaskConfig> = downstream.collect();
                self.models
                    .iter()
                    .flat_map(|m| {
                        downstream
                            .iter()
                            .filter(|t| m.kind.accepts(&t.kind).is_ok())
                            .map(move |t| (m, *t))
                    })
                    .collect()
            }
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((key.to_string(), message));
        match (&self.steps, &self.epochs) {
            (None, None) => return fail("steps", "give either `steps` or `epochs`".into()),
            (Some(_), Some(_)) => return fail("epochs", "give either `steps` or `epochs`, not both".into()),
            _ => {}
        }
        let counts = [
            ("steps", self.steps.clone()),
            ("epochs", self.epochs.clone()),
            ("batch_size", Some(self.batch_size.clone())),
            ("eval_interval", Some(self.eval_interval.clone())),
        ];
        for (key, values) in counts {
            if let Some(values) = values {
                check_list(key, &values)?;
                if values.all().contains(&0) {
                    return fail(key, "must be at least 1".into());
                }
            }
        }
        check_list("warmup_steps", &self.warmup_steps)?;
        let reals = [
            ("weight_decay", Some(&self.weight_decay), 0.0, f64::INFINITY, true),
            ("lr_embedding", Some(&self.lr_embedding), 0.0, f64::INFINITY, false),
            ("beta_1", Some(&self.beta_1), 0.0, 1.0, true),
            ("beta_2", Some(&self.beta_2), 0.0, 1.0, true),
            ("epsilon", Some(&self.epsilon), 0.0, f64::INFINITY, false),
            ("max_grad_norm", self.max_grad_norm.as_ref(), 0.0, f64::INFINITY, false),
            ("diverge_factor", Some(&self.diverge_factor), 1.0, f64::INFINITY, false),
        ];
        for (key, values, low, high, low_inclusive) in reals {
            let Some(values) = values else { continue };
            check_list(key, values)?;
            for v in values.all() {
                let above = if low_inclusive { v >= low } else { v > low };
                if !(v.is_finite() && above && v < high) {
                    let bound = if low_inclusive { ">=" } else { ">" };
                    let upper = if high.is_finite() {
                        format!(" and < {high}")
                    } else {
                        String::new()
                    };
                    return fail(key, format!("{v} is not allowed; must be {bound} {low}{upper}"));
                }
            }
        }
        Ok(())
    }
}

impl LoraSection {
    fn validate(&self) -> Result<(), (String, String)> {
        check_list("rank", &self.rank)?;
        if self.rank.all().contains(&0) {
            return Err(("rank".into(), "must be at least 1".into()));
        }
        check_list("alpha", &self.alpha)?;
        if let Some(bad) = self.alpha.all().into_iter().find(|a| !(a.is_finite() && *a > 0.0)) {
            return Err(("alpha".into(), format!("{bad} is not allowed; must be > 0")));
        }
        check_list("dropout", &self.dropout)?;
        if let Some(bad) = self.dropout.all().into_iter().find(|p| !(0.0..1.0).contains(p)) {
            return Err(("dropout".into(), format!("{bad} is not allowed; must be in [0, 1)")));
        }
        Ok(())
    }
}

fn check_list<T>(key: &str, values: &Values<T>) -> Result<(), (String, String)> {
    match values {
        Values::Many(list) if list.is_empty() => Err((
            key.to_string(),
            "the list is empty; give one value or a non-empty list".into(),
        )),
        _ => Ok(()),
    }
}

/// The 1-based line where `key` (the last dotted part) is first assigned, if any.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let key = key.rsplit('.').next().unwrap_or(key);
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
                || line.trim() == format!("[{key}]")
                || line.trim() == format!("[[{key}]]")
        })
        .map(|i| i + 1)
}

/// A tiny valid config for unit tests: an MLP pretrained on one teacher task, fine-tuned on
/// another; `seeds` seeds x 2 eta_A x ratios 1 and 4, no baselines.
#[cfg(test)]
pub(crate) fn tiny_config(seeds: usize) -> SweepConfig {
    let text = format!(
        r#"
        name = "t"
        seeds = {:?}
        [grid]
        eta_a = [1e-3, 1e-2]
        ratio = [4]
        baseline = false
        [train]
        steps = 1
        [lora]
        rank = 2
        [[task]]
        name = "base"
        kind = "teacher"
        d_input = 4
        n_classes = 2
        n_train = 8
        n_val = 2
        n_test = 2
        [[task]]
        name = "down"
        kind = "teacher"
        d_input = 4
        n_classes = 2
        n_train = 8
        n_val = 2
        n_test = 2
        [[model]]
        name = "mlp"
        kind = "mlp"
        hidden = [4]
        pretrain = {{ task = "base", steps = 1 }}
        "#,
        (0..seeds).collect::<Vec<_>>()
    );
    SweepConfig::parse(&text, Path::new("t.toml")).expect("a valid config")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `experiments/quick.toml`, shortened: an MLP and the toy network pretrained on one teacher
    /// task and fine-tuned on another.
    const QUICK: &str = r#"
name = "quick"
seeds = [0, 1]

[grid]
eta_a = { from = 1e-4, to = 3e-2, points = 5 }
ratio = [1, 4, 16, 64, 256]

[train]
steps = 500
batch_size = 32

[lora]
rank = 4

[[task]]
name = "teacher"
kind = "teacher"
d_input = 32
n_classes = 4
teacher_width = 32
n_train = 8000
n_val = 1000
n_test = 1000

[[task]]
name = "shift-r2"
kind = "teacher"
d_input = 32
n_classes = 4
teacher_width = 32
shift_rank = 2
shift_scale = 2.0
n_train = 2000
n_val = 1000
n_test = 1000

[[model]]
name = "mlp"
kind = "mlp"
hidden = [256, 256]
pretrain = { task = "teacher", steps = 2000 }

[[model]]
name = "toy512"
kind = "toy"
width = 512
pretrain = { task = "teacher", steps = 2000 }
"#;

    /// The error `text` (`QUICK` with `from` replaced by `to`) fails with, after checking that it
    /// names the file.
    fn error(from: &str, to: &str) -> String {
        assert!(QUICK.contains(from), "`{from}` is in the config");
        let error = SweepConfig::parse(&QUICK.replace(from, to), Path::new("quick.toml")).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("quick.toml:"), "{message}");
        message
    }

    #[test]
    fn the_base_config_parses() {
        SweepConfig::parse(QUICK, Path::new("quick.toml")).unwrap();
    }

    // The tests below are the inputs that made the `config_values` fuzz target (`scripts/fuzz.sh`)
    // exhaust memory, time out or panic, cut down to the one value that did it, and pin the error
    // that now stops them before anything is allocated.

    #[test]
    fn a_log_range_of_too_many_points_is_an_error_before_it_is_made() {
        let message = error("points = 5 }", "points = 5000000000000 }");
        assert!(
            message.starts_with("quick.toml:6: `eta_a`: the grid has up to 140000000000000 trials"),
            "{message}"
        );
        assert!(message.contains("5000000000000 eta_a"), "{message}");
        assert!(message.contains("at most 100000 are allowed"), "{message}");
    }

    #[test]
    fn axes_whose_product_exceeds_the_trial_cap_are_an_error() {
        let ten = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]";
        let text = QUICK
            .replace("seeds = [0, 1]", &format!("seeds = {ten}"))
            .replace("batch_size = 32", &format!("batch_size = {ten}\nwarmup_steps = {ten}"))
            .replace("rank = 4", &format!("rank = {ten}\nalpha = {ten}"));
        let message = SweepConfig::parse(&text, Path::new("quick.toml"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("the grid has up to 7000000 trials"), "{message}");
        // The list-valued keys follow the four grid sizes, in no promised order.
        assert!(
            message.contains("(2 pairs x 10 seeds x 5 eta_a x 7 ratio x "),
            "{message}"
        );
        for axis in ["10 batch_size", "10 warmup_steps", "10 rank", "10 alpha"] {
            assert!(message.contains(axis), "{axis} in {message}");
        }
    }

    #[test]
    fn axes_whose_product_overflows_are_an_error() {
        let message = error("points = 5 }", &format!("points = {} }}", usize::MAX));
        assert!(
            message.contains("the grid has up to more than 18446744073709551615 trials"),
            "{message}"
        );
    }

    #[test]
    fn a_model_too_large_to_build_is_an_error_before_it_is_built() {
        let message = error("hidden = [256, 256]", "hidden = [256000000, 256]");
        assert!(
            message.contains("`hidden`: model `mlp` has 73984001284 parameters on the inputs of task `teacher`"),
            "{message}"
        );
        assert!(message.contains("at most 1000000000"), "{message}");

        let message = error("width = 512", "width = 99999999999");
        assert!(message.contains("`width`: model `toy512` has"), "{message}");
    }

    #[test]
    fn a_bert_too_large_to_build_is_an_error() {
        let text = r#"
name = "bert"
[grid]
eta_a = [1e-3]
ratio = [16]
[train]
steps = 30
[lora]
rank = 1
[[task]]
name = "tokens"
kind = "bag_of_tokens"
vocab = 30
seq_len = 8
n_classes = 2
n_train = 200
n_val = 40
n_test = 40
[[task]]
name = "tokens-shift"
kind = "bag_of_tokens"
vocab = 30
seq_len = 8
n_classes = 2
n_train = 100
n_val = 40
n_test = 40
[[model]]
name = "bert"
kind = "bert"
hidden_size = 1
num_hidden_layers = 100000000
num_attention_heads = 1
intermediate_size = 1
pretrain = { task = "tokens" }
"#;
        let message = SweepConfig::parse(text, Path::new("bert.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`model.num_hidden_layers`: model `bert`: 100000000 is too many; at most 1000"),
            "{message}"
        );
        let fewer = text.replace("num_hidden_layers = 100000000", "num_hidden_layers = 2");
        SweepConfig::parse(&fewer, Path::new("bert.toml")).unwrap();

        let wide = fewer.replace("hidden_size = 1\n", "hidden_size = 100000\n");
        let message = SweepConfig::parse(&wide, Path::new("bert.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`hidden_size`: model `bert` has 80006600004 parameters on the inputs of task `tokens`"),
            "{message}"
        );
    }

    #[test]
    fn epochs_whose_step_count_overflows_are_an_error() {
        let message = error("steps = 500\n", "epochs = 1000000000000000000\n");
        assert!(
            message.contains("`epochs`: 1000000000000000000 epochs of 63 batches (task `shift-r2`)"),
            "{message}"
        );
        let fine = QUICK.replace("steps = 500\n", "epochs = 3\n");
        let config = SweepConfig::parse(&fine, Path::new("quick.toml")).unwrap();
        assert_eq!(crate::grid::expand(&config)[0].steps(), 3 * 63);
    }
}
