//! The setup every command that trains shares: the config loaded with the checks that need a
//! model, then everything its trials read (data, checkpoints, pretrained bases), prepared before
//! any trial runs, so a bad input fails before anything is written.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;
use burn::tensor::Device;
use loraplus_data::TaskData;
use loraplus_model::{AttachConfig, LoraConfig, LoraError, attach, init};

use super::bases::{Bases, load_checkpoints, pretrain_bases};
use super::data::{DataCache, input_shape};
use super::trial::{StartPoints, Trained, run_group};
use super::zoo::{self, Classifier};
use crate::config::{ConfigError, ConfigFile, InputShape, Invalid, SweepConfig, TaskConfig};
use crate::plan::TrialSpec;
use crate::store::Store;

/// Loads the config at `path` for a command that trains or plans training (`plan`, `sweep`,
/// `slurm`, `bench`): parsed and validated, then each model built once, as a throwaway, to check
/// that the adapters fit its layers on the inputs the config states.
pub fn load_config(path: &Path) -> Result<ConfigFile, ConfigError> {
    let file = ConfigFile::load(path)?;
    check_models(&file.config).map_err(|invalid| file.error(invalid))?;
    Ok(file)
}

/// Checks every model's adapters on the inputs it is built for: its pretraining task's, or for
/// a checkpoint the text its tasks hold. (Image tasks tell their input size only once read;
/// [`Setup::add`] checks them then.)
pub fn check_models(config: &SweepConfig) -> Result<(), Invalid> {
    for (index, model) in config.models.iter().enumerate() {
        let tasks: Vec<&TaskConfig> = match &model.pretrain {
            Some(pretrain) => config.task(&pretrain.task).into_iter().collect(),
            None => config
                .tasks
                .iter()
                .filter(|t| model.kind.accepts(&t.kind).is_ok())
                .collect(),
        };
        let mut shapes: Vec<InputShape> = tasks.iter().filter_map(|t| t.kind.shape()).collect();
        shapes.dedup();
        for shape in shapes {
            adapters_fit(config, index, &shape)?;
        }
    }
    Ok(())
}

/// Attaches the configured adapters, at every rank of the config, to a throwaway copy of model
/// `index` built for inputs of `shape`, so unknown targets and ranks too large for a layer are
/// reported before anything runs.
fn adapters_fit(config: &SweepConfig, index: usize, shape: &InputShape) -> Result<(), Invalid> {
    let model = &config.models[index];
    let skeleton = zoo::build(&model.kind, shape, false, &mut init::rng(0), &Device::flex())
        .map_err(|error| Invalid::new("path", format!("model `{}`: {error:#}", model.name)).in_array("model", index))?;
    for rank in config.lora.rank.all() {
        let attach_config = AttachConfig::new(LoraConfig::new(rank), model.targets());
        if let Err(error) = attach(skeleton.clone(), &attach_config, &mut init::rng(0)) {
            let message = format!("model `{}`: {error}", model.name);
            return Err(match error {
                LoraError::RankTooLarge { .. } => Invalid::new("lora.rank", message),
                _ => Invalid::new("targets", message).in_array("model", index),
            });
        }
    }
    Ok(())
}

/// What a config's trials read, and the bases they start from.
pub struct Setup<'a> {
    file: &'a ConfigFile,
    device: Device,
    data: DataCache,
    bases: Bases,
    checked: BTreeSet<(String, String)>,
}

impl<'a> Setup<'a> {
    /// Nothing read yet, for trials of `file` on `device`.
    pub fn new(file: &'a ConfigFile, device: Device) -> Self {
        Self {
            file,
            device,
            data: DataCache::default(),
            bases: Bases::new(),
            checked: BTreeSet::new(),
        }
    }

    /// Reads the data of `trials` not read yet, checks their adapters against the input sizes
    /// only data files tell (images), and loads their checkpoints, checked against the data:
    /// everything that can fail on a bad input file. Writes nothing.
    pub fn add(&mut self, trials: &[TrialSpec], log: &dyn Fn(String)) -> Result<()> {
        self.data.add(trials, log)?;
        for spec in trials {
            let base_task = spec.pretrain_task.as_ref().unwrap_or(&spec.task);
            let unchecked = self.checked.insert((spec.model.name.clone(), base_task.name.clone()));
            if base_task.kind.shape().is_some() || !unchecked {
                continue;
            }
            let shape = input_shape(&base_task.kind, self.data.get(base_task, &spec.model));
            let config = &self.file.config;
            let index = config
                .models
                .iter()
                .position(|m| m.name == spec.model.name)
                .expect("a trial's model");
            adapters_fit(config, index, &shape).map_err(|invalid| {
                let message = format!(
                    "{} (the input size of task `{}` comes from its data files)",
                    invalid.message, base_task.name
                );
                self.file.error(Invalid { message, ..invalid })
            })?;
        }
        let missing: Vec<TrialSpec> = trials
            .iter()
            .filter(|t| !self.bases.contains_key(&t.base()))
            .cloned()
            .collect();
        load_checkpoints(&missing, &self.data, &self.device, log, &mut self.bases)
    }

    /// Pretrains, or loads from `store`'s cache, the random-init bases of `trials` not loaded
    /// yet.
    pub fn pretrain(&mut self, trials: &[TrialSpec], store: &Store, log: &dyn Fn(String)) -> Result<()> {
        pretrain_bases(trials, store, &self.data, &self.device, log, &mut self.bases)
    }

    /// The device trials run on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The data `spec` trains on.
    pub fn data(&self, spec: &TrialSpec) -> &TaskData {
        self.data.get(&spec.task, &spec.model)
    }

    /// The base `spec` starts from.
    ///
    /// # Panics
    /// If it was not added and pretrained.
    pub fn base(&self, spec: &TrialSpec) -> &Classifier {
        &self.bases[&spec.base()]
    }

    /// Runs `group` (one family's trials) as one stacked computation; see [`run_group`].
    pub fn run(&self, group: &[&TrialSpec], start_points: &StartPoints) -> Result<Trained> {
        let spec = group[0];
        run_group(group, self.base(spec), self.data(spec), &self.device, start_points)
    }
}
