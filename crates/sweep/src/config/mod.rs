//! What the user wrote: the sweep config's TOML schema, every `*Config` type, and validation.
//!
//! Parsing is strict (unknown keys and wrong types are errors with a line number) and pure: it
//! reads nothing but the config's text and builds no model. The checks that need a model (do
//! the adapters fit its layers?) run where the commands that train load their config,
//! [`crate::run::setup::load_config`].

mod adaptive;
mod error;
mod model;
mod settings;
mod task;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use adaptive::AdaptiveConfig;
pub use error::{ConfigError, Invalid, KeyPath};
pub use model::{
    BertSpec, CheckpointSpec, MAX_LAYERS, MAX_PARAMETERS, MlpSpec, ModelConfig, ModelKind, PoolingKind, PretrainConfig,
    ToySpec,
};
pub use settings::{InitKind, LoraSection, ScheduleKind, Section, Setting, TrainConfig, Values};
pub use task::{Features, InputShape, TaskConfig, TaskKind};

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
    /// Which trials keep their trained adapter, in PEFT's layout beside their record
    /// (`trials/<id>/`): `"all"` (every adapter trial that trained to the end) or `"none"`.
    /// Default: all.
    #[serde(default)]
    pub save_adapters: SaveAdapters,
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

fn default_seeds() -> Vec<u64> {
    vec![0]
}
fn default_top_k() -> usize {
    4
}
fn default_true() -> bool {
    true
}

/// Which accuracy ranks trials.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Final test accuracy (the LoRA+ paper's protocol).
    #[default]
    TestAccuracy,
    /// Final validation accuracy.
    ValAccuracy,
}

impl Metric {
    /// The config's name for it, as tables write it: `test_accuracy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::TestAccuracy => "test_accuracy",
            Metric::ValAccuracy => "val_accuracy",
        }
    }
}

impl fmt::Display for Metric {
    /// In words: `test accuracy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str().replace('_', " "))
    }
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

impl Protocol {
    /// The config's name for it: `seed_mean` or `paper`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::SeedMean => "seed_mean",
            Protocol::Paper => "paper",
        }
    }
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

impl DeviceChoice {
    /// The config's name for it, which `--device` takes too.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Ndarray => "ndarray",
            DeviceChoice::Wgpu => "wgpu",
        }
    }
}

/// Which trained adapters a sweep keeps.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SaveAdapters {
    /// Every adapter trial that trained to the end (diverged and failed trials have none).
    #[default]
    All,
    /// None: records only.
    None,
}

/// How many trials train together in one stacked pass.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(untagged, expecting = "\"auto\" or a number of trials >= 1")]
pub enum GroupSize {
    /// As many as fit the memory budget (`crate::run::memory`).
    #[default]
    #[serde(with = "auto_keyword")]
    Auto,
    /// At most this many (1: every trial alone).
    Trials(usize),
}

mod auto_keyword {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("auto")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        match String::deserialize(d)?.as_str() {
            "auto" => Ok(()),
            other => Err(D::Error::custom(format!("unknown group size `{other}`"))),
        }
    }
}

impl std::str::FromStr for GroupSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(GroupSize::Auto),
            n => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(GroupSize::Trials(n)),
                _ => Err(format!("`{s}` is neither `auto` nor a number of trials >= 1")),
            },
        }
    }
}

impl fmt::Display for GroupSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupSize::Auto => f.write_str("auto"),
            GroupSize::Trials(n) => write!(f, "{n}"),
        }
    }
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

impl GridConfig {
    /// The ratios trials run at: the axis, with 1 (plain LoRA) first if missing.
    pub fn ratios(&self) -> Vec<f64> {
        let mut ratios = self.ratio.values();
        if !ratios.contains(&1.0) {
            ratios.insert(0, 1.0);
        }
        ratios
    }
}

/// How reports rank and summarise: read from the config, stored beside the records
/// (`sweep.json`) so `loraplus report DIR` needs no config.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ReportSettings {
    /// The sweep's name.
    pub name: String,
    /// The metric that ranks cells.
    pub metric: Metric,
    /// Cells per pair in the ratio distribution.
    pub top_k: usize,
    /// How best cells are chosen.
    #[serde(default)]
    pub protocol: Protocol,
}

impl From<&SweepConfig> for ReportSettings {
    fn from(config: &SweepConfig) -> Self {
        Self {
            name: config.name.clone(),
            metric: config.metric,
            top_k: config.top_k,
            protocol: config.protocol,
        }
    }
}

impl ReportSettings {
    /// The settings of a directory that stores none: named after it, the config defaults.
    pub fn defaults(name: String) -> Self {
        Self {
            name,
            metric: Metric::default(),
            top_k: default_top_k(),
            protocol: Protocol::default(),
        }
    }

    /// The metric that ranks cells: the paper's protocol always ranks by test accuracy.
    pub fn ranking_metric(&self) -> Metric {
        match self.protocol {
            Protocol::SeedMean => self.metric,
            Protocol::Paper => Metric::TestAccuracy,
        }
    }
}

/// The most trials a config may declare. Each trains a model, so a larger grid is a slip (a log
/// range of 10^7 points, say) rather than a sweep, and expanding it would exhaust memory before
/// the first trial ran.
pub const MAX_TRIALS: usize = 100_000;

/// A config file, read and validated: the config, its text (saved beside the results) and where
/// it came from (errors name it).
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The config.
    pub config: SweepConfig,
    /// Its text, as given.
    pub text: String,
    /// Its path.
    pub path: PathBuf,
}

impl ConfigFile {
    /// Reads, parses and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.into(),
            line: None,
            message: format!("cannot read the config: {e}"),
        })?;
        Self::parse(text, path)
    }

    /// Parses and validates config `text` (`path` names it in errors).
    pub fn parse(text: String, path: &Path) -> Result<Self, ConfigError> {
        let config: SweepConfig = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|span| error::line_at(&text, span.start));
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
        let file = Self {
            config,
            text,
            path: path.into(),
        };
        file.config.validate().map_err(|invalid| file.error(invalid))?;
        Ok(file)
    }

    /// `invalid` as an error of this file, at the line of its key.
    pub fn error(&self, invalid: Invalid) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            line: invalid.key.line_in(&self.text),
            message: invalid.to_string(),
        }
    }
}

impl SweepConfig {
    /// Parses and validates config `text` (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        ConfigFile::parse(text.to_string(), path).map(|file| file.config)
    }

    /// Checks every value that the config alone can tell.
    fn validate(&self) -> Result<(), Invalid> {
        self.validate_sweep()?;
        self.validate_grid()?;
        self.train.validate()?;
        self.lora.validate()?;
        self.validate_epochs()?;
        self.validate_tasks()?;
        self.validate_models()?;
        self.validate_pairs()
    }

    /// The top-level keys.
    fn validate_sweep(&self) -> Result<(), Invalid> {
        if self.seeds.is_empty() {
            return Err(Invalid::new("seeds", "the list is empty; give at least one seed"));
        }
        if self.top_k == 0 {
            return Err(Invalid::new("top_k", "must be at least 1"));
        }
        if self.group_size == GroupSize::Trials(0) {
            return Err(Invalid::new("group_size", "must be `auto` or at least 1"));
        }
        if let Some(adaptive) = &self.adaptive {
            adaptive.validate()?;
        }
        Ok(())
    }

    /// The grid's size first (before any axis is made: a log range's `points` alone can ask
    /// for more than memory holds), then its values.
    fn validate_grid(&self) -> Result<(), Invalid> {
        let sizes = self.sizes();
        let trials = sizes
            .iter()
            .try_fold(1_usize, |n, (_, size)| n.checked_mul((*size).max(1)));
        if trials.is_none_or(|n| n > MAX_TRIALS) {
            let (key, _) = sizes
                .iter()
                .max_by_key(|(_, size)| *size)
                .expect("sizes has the grid's axes");
            let count = trials.map_or_else(|| format!("more than {}", usize::MAX), |n| n.to_string());
            let bare = |key: &str| key.rsplit('.').next().unwrap_or(key).to_string();
            let product: Vec<String> = sizes
                .iter()
                .map(|(key, size)| format!("{size} {}", bare(key)))
                .collect();
            return Err(Invalid::new(
                key,
                format!(
                    "the grid has up to {count} trials ({}; the ratios include 1 and the baseline); \
                     at most {MAX_TRIALS} are allowed, as each trains a model: shrink `{}`",
                    product.join(" x "),
                    bare(key)
                ),
            ));
        }
        for (key, axis) in [("grid.eta_a", &self.grid.eta_a), ("grid.ratio", &self.grid.ratio)] {
            if let Axis::LogRange { from, to, points } = *axis {
                if points == 0 {
                    return Err(Invalid::new(key, "`points` must be at least 1"));
                }
                if !(from > 0.0 && to > 0.0 && from.is_finite() && to.is_finite()) {
                    return Err(Invalid::new(
                        key,
                        format!("a log range needs finite `from` and `to` > 0, got {from} and {to}"),
                    ));
                }
            }
            let values = axis.values();
            if values.is_empty() {
                return Err(Invalid::new(key, "the grid is empty; give at least one value"));
            }
            if let Some(bad) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return Err(Invalid::new(
                    key,
                    format!("{bad} is not allowed; every value must be a finite number > 0"),
                ));
            }
        }
        Ok(())
    }

    /// The sizes, by key, whose product bounds how many trials the config expands to: (model,
    /// task) pairs, seeds, eta_A values, ratios (counting the ratio 1 that expansion adds and the
    /// head-only baseline), and every list-valued training and adapter key. Nothing is expanded
    /// to count them.
    fn sizes(&self) -> Vec<(String, usize)> {
        let ratios = self
            .grid
            .ratio
            .n_values()
            .saturating_add(1 + usize::from(self.grid.baseline));
        let mut sizes = vec![
            ("pairs".to_string(), self.pairs().len()),
            ("seeds".to_string(), self.seeds.len()),
            ("grid.eta_a".to_string(), self.grid.eta_a.n_values()),
            ("grid.ratio".to_string(), ratios),
        ];
        for (section, settings) in [("train", self.train.settings()), ("lora", self.lora.settings())] {
            for (key, values) in settings {
                if let Values::Many(list) = values {
                    sizes.push((format!("{section}.{key}"), list.len()));
                }
            }
        }
        sizes
    }

    /// The list-valued training and adapter keys: the grid's axes beyond eta_A and ratio.
    pub fn axes(&self) -> Vec<&'static str> {
        let settings = self.train.settings().into_iter().chain(self.lora.settings());
        settings
            .filter(|(_, values)| matches!(values, Values::Many(_)))
            .map(|(key, _)| key)
            .collect()
    }

    /// Every `[[task]]`: unique names, valid sizes.
    fn validate_tasks(&self) -> Result<(), Invalid> {
        if self.tasks.is_empty() {
            return Err(Invalid::new("task", "no [[task]] is defined"));
        }
        let mut names = BTreeSet::new();
        for (i, task) in self.tasks.iter().enumerate() {
            let fail = |invalid: Invalid| invalid.in_array("task", i);
            if !names.insert(&task.name) {
                return Err(fail(Invalid::new(
                    "name",
                    format!("task `{}` is defined twice", task.name),
                )));
            }
            task.kind.validate().map_err(|invalid| {
                fail(Invalid {
                    message: format!("task `{}`: {}", task.name, invalid.message),
                    ..invalid
                })
            })?;
        }
        Ok(())
    }

    /// Every `[[model]]`: unique names, valid sizes, a pretraining recipe exactly when it is not
    /// a checkpoint, and a size within [`MAX_PARAMETERS`] on its pretraining task.
    fn validate_models(&self) -> Result<(), Invalid> {
        if self.models.is_empty() {
            return Err(Invalid::new("model", "no [[model]] is defined"));
        }
        let mut names = BTreeSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let fail = |key: &str, message: String| Err(Invalid::new(key, message).in_array("model", i));
            if !names.insert(&model.name) {
                return fail("name", format!("model `{}` is defined twice", model.name));
            }
            model.kind.validate().map_err(|invalid| {
                Invalid {
                    message: format!("model `{}`: {}", model.name, invalid.message),
                    ..invalid
                }
                .in_array("model", i)
            })?;
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
                (None, true) => continue,
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
            // The base is built for the pretraining task's inputs.
            model.check_size(task).map_err(|invalid| invalid.in_array("model", i))?;
        }
        Ok(())
    }

    /// `pairs`, when given: known names that fit; in any case at least one pair.
    fn validate_pairs(&self) -> Result<(), Invalid> {
        if let Some(pairs) = &self.pairs {
            if pairs.is_empty() {
                return Err(Invalid::new(
                    "pairs",
                    "the list is empty; remove it to run every compatible pair",
                ));
            }
            for (model, task) in pairs {
                let (Some(m), Some(t)) = (self.model(model), self.task(task)) else {
                    return Err(Invalid::new(
                        "pairs",
                        format!("[\"{model}\", \"{task}\"] names an unknown model or task"),
                    ));
                };
                if let Err(why) = m.kind.accepts(&t.kind) {
                    return Err(Invalid::new(
                        "pairs",
                        format!("model `{model}` cannot take task `{task}`: {why}"),
                    ));
                }
            }
        }
        if self.pairs().is_empty() {
            return Err(Invalid::new(
                "pairs",
                "no (model, task) pair: no model accepts any downstream task",
            ));
        }
        Ok(())
    }

    /// `epochs` needs every pair's task to state its training size, and must count steps
    /// within `usize`.
    fn validate_epochs(&self) -> Result<(), Invalid> {
        let Some(epochs) = &self.train.epochs else {
            return Ok(());
        };
        if let Some((_, task)) = self.pairs().into_iter().find(|(_, t)| t.kind.n_train().is_none()) {
            return Err(Invalid::new(
                "train.epochs",
                format!(
                    "task `{}` sets no n_train, so epochs cannot be counted: give steps or n_train",
                    task.name
                ),
            ));
        }
        // A trial counts its steps as epochs x batches per epoch; the smallest batch makes most.
        let most = epochs.all().into_iter().max().unwrap_or(0);
        let smallest_batch = self.train.batch_size.all().into_iter().min().unwrap_or(1);
        for (_, task) in self.pairs() {
            let batches = task.kind.n_train().unwrap_or(0).div_ceil(smallest_batch);
            if most.checked_mul(batches).is_none() {
                return Err(Invalid::new(
                    "train.epochs",
                    format!(
                        "{most} epochs of {batches} batches (task `{}`) are more steps than a trial can \
                         count; give fewer epochs",
                        task.name
                    ),
                ));
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
                let downstream: Vec<&TaskConfig> = self
                    .tasks
                    .iter()
                    .filter(|t| !pretraining.contains(t.name.as_str()))
                    .collect();
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
mod tests;
