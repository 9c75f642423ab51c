//! Adapter-only checkpoints in Hugging Face PEFT's on-disk format.
//!
//! A directory holds `adapter_config.json` (PEFT's `LoraConfig`) and `adapter_model.safetensors`
//! with PEFT's key names and PyTorch layouts:
//!
//! | tensor | key | shape |
//! |---|---|---|
//! | linear `A` | `base_model.model.<path>.lora_A.weight` | `[r, d_in]` |
//! | linear `B` | `base_model.model.<path>.lora_B.weight` | `[d_out, r]` |
//! | embedding `A` | `base_model.model.<path>.lora_embedding_A` | `[r, vocab]` |
//! | embedding `B` | `base_model.model.<path>.lora_embedding_B` | `[d_model, r]` |
//! | head (`modules_to_save`) | `base_model.model.<path>.weight`, `.bias` | `[d_out, d_in]`, `[d_out]` |
//!
//! `<path>` is the layer's [`Site::path`](crate::Site), its module name in the checkpoint the
//! model mirrors, so an adapter written here loads with `PeftModel.from_pretrained` on the
//! matching PyTorch model, and one PEFT wrote loads here.

use std::fs;
use std::path::Path;

use burn::module::Param;
use serde::{Deserialize, Serialize};

use crate::adapt::attach_where;
use crate::weights::{self, Entry, Weights, entry, write_atomic};
use crate::{AttachConfig, LoraConfig, LoraError, LoraInit, LoraModel, LoraScaling, init};

/// The weights file PEFT reads and writes.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The config file PEFT reads and writes.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The prefix `PeftModel` puts before every module path.
pub const KEY_PREFIX: &str = "base_model.model.";

/// The fields of PEFT's `adapter_config.json` that this crate writes and understands.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PeftConfigFile {
    /// Must be `LORA`.
    pub peft_type: String,
    /// PEFT's task type, e.g. `SEQ_CLS`.
    #[serde(default)]
    pub task_type: Option<String>,
    /// The base checkpoint, if known.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Whether the adapter is frozen when loaded.
    #[serde(default)]
    pub inference_mode: bool,
    /// Rank.
    pub r: usize,
    /// Scaling numerator.
    pub lora_alpha: f64,
    /// Adapter-input dropout.
    #[serde(default)]
    pub lora_dropout: f64,
    /// `alpha / sqrt(r)` scaling.
    #[serde(default)]
    pub use_rslora: bool,
    /// `true` (PEFT default), `"gaussian"`, or `false` (random, not a no-op).
    #[serde(default = "default_init")]
    pub init_lora_weights: serde_json::Value,
    /// Module names (a module matches one if its path equals it or ends with `.name`) or one
    /// regular expression that must match the whole path.
    pub target_modules: TargetModules,
    /// Modules trained and saved whole (the task head).
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// Which biases are trained; only `none` is supported.
    #[serde(default = "default_bias")]
    pub bias: String,
    /// Whether weights are stored `[d_in, d_out]`; only `false` is supported.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Per-layer ranks; must be empty.
    #[serde(default)]
    pub rank_pattern: serde_json::Map<String, serde_json::Value>,
    /// Per-layer alphas; must be empty.
    #[serde(default)]
    pub alpha_pattern: serde_json::Map<String, serde_json::Value>,
    /// Weight-decomposed LoRA; must be false.
    #[serde(default)]
    pub use_dora: bool,
}

/// PEFT's `target_modules`: a list of names or a single regular expression.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum TargetModules {
    /// Names matched against the end of each module path.
    Names(Vec<String>),
    /// A regular expression matched against the whole module path.
    Regex(String),
}

fn default_init() -> serde_json::Value {
    serde_json::Value::Bool(true)
}

fn default_bias() -> String {
    "none".into()
}

impl TargetModules {
    fn matcher(&self, config_path: &Path) -> Result<impl Fn(&str) -> bool + '_, LoraError> {
        let regex = match self {
            TargetModules::Regex(pattern) => {
                Some(
                    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| LoraError::Format {
                        path: config_path.into(),
                        message: format!("target_modules is not a valid regex: {e}"),
                    })?,
                )
            }
            TargetModules::Names(_) => None,
        };
        Ok(move |path: &str| match (self, &regex) {
            (_, Some(regex)) => regex.is_match(path),
            (TargetModules::Names(names), None) => names.iter().any(|n| path == n || path.ends_with(&format!(".{n}"))),
            (TargetModules::Regex(_), None) => unreachable!("regex compiled above"),
        })
    }
}

/// Writes the adapters (and, if `config.train_head`, the head) of `model` to `dir` in PEFT's
/// format. `task_type` is PEFT's (e.g. `SEQ_CLS`) and `base_model` the base checkpoint's name,
/// both recorded in the config. Each file is written whole or not at all.
pub fn save<M: LoraModel>(
    model: &M,
    config: &AttachConfig,
    task_type: Option<&str>,
    base_model: Option<&str>,
    dir: &Path,
) -> Result<(), LoraError> {
    let mut model = model.clone();
    let mut tensors: Vec<Entry> = Vec::new();
    let mut target_modules = Vec::new();
    for site in model.linear_sites() {
        if let Some(adapter) = &site.layer.adapter {
            tensors.push(entry(
                format!("{KEY_PREFIX}{}.lora_A.weight", site.path),
                adapter.lora_a.val().transpose(),
            ));
            tensors.push(entry(
                format!("{KEY_PREFIX}{}.lora_B.weight", site.path),
                adapter.lora_b.val().transpose(),
            ));
            target_modules.push(site.path);
        }
    }
    for site in model.embedding_sites() {
        if let Some(adapter) = &site.layer.adapter {
            tensors.push(entry(
                format!("{KEY_PREFIX}{}.lora_embedding_A", site.path),
                adapter.lora_a.val().transpose(),
            ));
            tensors.push(entry(
                format!("{KEY_PREFIX}{}.lora_embedding_B", site.path),
                adapter.lora_b.val().transpose(),
            ));
            target_modules.push(site.path);
        }
    }
    let mut modules_to_save = Vec::new();
    if config.train_head {
        for site in model.head_sites() {
            tensors.push(entry(
                format!("{KEY_PREFIX}{}.weight", site.path),
                site.layer.weight.val().transpose(),
            ));
            if let Some(bias) = &site.layer.bias {
                tensors.push(entry(format!("{KEY_PREFIX}{}.bias", site.path), bias.val()));
            }
            modules_to_save.push(site.path);
        }
    }

    let file = PeftConfigFile {
        peft_type: "LORA".into(),
        task_type: task_type.map(String::from),
        base_model_name_or_path: base_model.map(String::from),
        inference_mode: true,
        r: config.lora.rank,
        lora_alpha: config.lora.alpha,
        lora_dropout: config.lora.dropout,
        use_rslora: config.lora.scaling == LoraScaling::RankStabilized,
        init_lora_weights: match config.lora.init {
            LoraInit::Peft => serde_json::Value::Bool(true),
            LoraInit::Gaussian => serde_json::Value::String("gaussian".into()),
            // PEFT has no A = 0 init; `false` is its "not the default" value.
            LoraInit::Reverse => serde_json::Value::Bool(false),
        },
        target_modules: TargetModules::Names(target_modules),
        modules_to_save: (!modules_to_save.is_empty()).then_some(modules_to_save),
        bias: default_bias(),
        fan_in_fan_out: false,
        rank_pattern: Default::default(),
        alpha_pattern: Default::default(),
        use_dora: false,
    };

    fs::create_dir_all(dir).map_err(|source| LoraError::Io {
        path: dir.into(),
        source,
    })?;
    weights::save(&tensors, &dir.join(WEIGHTS_FILE))?;
    let json = serde_json::to_vec_pretty(&file).expect("config serialises");
    write_atomic(&dir.join(CONFIG_FILE), &json)
}

/// Attaches the adapter stored in `dir` to `model` (freezing the rest) and returns the model with
/// the settings it was attached with.
///
/// Every tensor the config implies must be present with its expected shape, and every tensor in
/// the file must be used; otherwise the error names the key.
pub fn load<M: LoraModel>(model: M, dir: &Path) -> Result<(M, AttachConfig), LoraError> {
    let config_path = dir.join(CONFIG_FILE);
    let text = fs::read_to_string(&config_path).map_err(|source| LoraError::Io {
        path: config_path.clone(),
        source,
    })?;
    let file: PeftConfigFile = serde_json::from_str(&text).map_err(|e| LoraError::Format {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    check_supported(&file, &config_path)?;

    let lora = LoraConfig::new(file.r)
        .with_alpha(file.lora_alpha)
        .with_dropout(file.lora_dropout)
        .with_scaling(if file.use_rslora {
            LoraScaling::RankStabilized
        } else {
            LoraScaling::Standard
        });
    let is_target = file.target_modules.matcher(&config_path)?;
    let heads = file.modules_to_save.clone().unwrap_or_default();
    let is_head = |path: &str| heads.iter().any(|h| path == h || path.ends_with(&format!(".{h}")));
    // The factors are overwritten below; the generator only feeds the throwaway init.
    let mut model = attach_where(
        model,
        &lora,
        |_, path| is_target(path),
        !heads.is_empty(),
        &mut init::rng(0),
    )?;

    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = fs::read(&weights_path).map_err(|source| LoraError::Io {
        path: weights_path.clone(),
        source,
    })?;
    let mut weights = Weights::parse(&bytes, &weights_path)?;

    let mut targets: Vec<String> = Vec::new();
    let mut note_target = |target: &str| {
        if !targets.iter().any(|t| t == target) {
            targets.push(target.to_string());
        }
    };
    for site in model.linear_sites() {
        let [d_in, d_out] = site.layer.dims();
        let device = site.layer.base.weight.device();
        if let Some(adapter) = site.layer.adapter.as_mut() {
            let r = adapter.rank();
            adapter.lora_a = weights.take_t(&format!("{KEY_PREFIX}{}.lora_A.weight", site.path), [r, d_in], &device)?;
            adapter.lora_b =
                weights.take_t(&format!("{KEY_PREFIX}{}.lora_B.weight", site.path), [d_out, r], &device)?;
            note_target(site.target);
        }
    }
    for site in model.embedding_sites() {
        let [vocab, d_model] = site.layer.dims();
        let device = site.layer.base.weight.device();
        if let Some(adapter) = site.layer.adapter.as_mut() {
            let r = adapter.rank();
            adapter.lora_a = weights.take_t(
                &format!("{KEY_PREFIX}{}.lora_embedding_A", site.path),
                [r, vocab],
                &device,
            )?;
            adapter.lora_b = weights.take_t(
                &format!("{KEY_PREFIX}{}.lora_embedding_B", site.path),
                [d_model, r],
                &device,
            )?;
            note_target(site.target);
        }
    }
    if targets.is_empty() {
        return Err(LoraError::Format {
            path: config_path,
            message: format!("target_modules {:?} match no layer of this model", file.target_modules),
        });
    }
    for site in model.head_sites().into_iter().filter(|s| is_head(&s.path)) {
        let [d_in, d_out] = site.layer.weight.dims();
        let device = site.layer.weight.device();
        site.layer.weight = weights.take_t(&format!("{KEY_PREFIX}{}.weight", site.path), [d_out, d_in], &device)?;
        if let Some(bias) = site.layer.bias.as_mut() {
            *bias = Param::from_tensor(weights.take(&format!("{KEY_PREFIX}{}.bias", site.path), [d_out], &device)?);
        }
    }
    weights.finish()?;
    let config = AttachConfig::new(lora, targets).with_train_head(!heads.is_empty());
    Ok((model, config))
}

fn check_supported(file: &PeftConfigFile, path: &Path) -> Result<(), LoraError> {
    let unsupported = |message: String| {
        Err(LoraError::Format {
            path: path.into(),
            message,
        })
    };
    if file.peft_type != "LORA" {
        return unsupported(format!("peft_type is `{}`; only `LORA` is supported", file.peft_type));
    }
    if file.bias != "none" {
        return unsupported(format!("bias is `{}`; only `none` is supported", file.bias));
    }
    if file.fan_in_fan_out {
        return unsupported("fan_in_fan_out = true (Conv1D layers) is not supported".into());
    }
    if file.use_dora {
        return unsupported("use_dora = true is not supported".into());
    }
    if !file.rank_pattern.is_empty() || !file.alpha_pattern.is_empty() {
        return unsupported("per-layer rank_pattern / alpha_pattern are not supported".into());
    }
    Ok(())
}
