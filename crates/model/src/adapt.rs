//! Attaching adapters to a model by target name, merging them, and listing its trainable part.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use rand::Rng;

use crate::{LoraConfig, LoraEmbedding, LoraError, LoraLinear};

/// One layer of a model that can carry an adapter (or, for a head, be trained beside them).
pub struct Site<'a, L> {
    /// The target name a user selects it by, e.g. `query`.
    pub target: &'static str,
    /// Its module path in the model's checkpoint naming, e.g.
    /// `bert.encoder.layer.0.attention.self.query`. PEFT files use this path.
    pub path: String,
    /// The layer itself.
    pub layer: &'a mut L,
}

/// A model whose layers can carry LoRA adapters.
///
/// The model lists its layers; [`attach`], [`merge`], [`unmerge`] and the [`peft`](crate::peft)
/// format work on any model through these lists.
pub trait LoraModel: Module + Sized {
    /// Every linear layer that can carry an adapter, in a fixed order.
    fn linear_sites(&mut self) -> Vec<Site<'_, LoraLinear>>;

    /// Every embedding that can carry an adapter. Default: none.
    fn embedding_sites(&mut self) -> Vec<Site<'_, LoraEmbedding>> {
        Vec::new()
    }

    /// The task head, trained beside the adapters when asked (PEFT's `modules_to_save`).
    fn head_sites(&mut self) -> Vec<Site<'_, Linear>>;

    /// The target names this model accepts, in the order its layers list them.
    fn target_names(&mut self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.embedding_sites().iter().map(|s| s.target).collect();
        names.extend(self.linear_sites().iter().map(|s| s.target));
        let mut seen = Vec::new();
        names.retain(|name| {
            !seen.contains(name) && {
                seen.push(*name);
                true
            }
        });
        names
    }
}

/// Which layers get adapters, with which settings, and what else trains.
#[derive(Config, Debug, PartialEq)]
pub struct AttachConfig {
    /// Settings shared by every adapter.
    pub lora: LoraConfig,
    /// Target names, e.g. `["query", "value"]`; see [`LoraModel::target_names`].
    pub targets: Vec<String>,
    /// Whether the task head trains too (PEFT's `modules_to_save`). Default: true.
    #[config(default = true)]
    pub train_head: bool,
}

/// Freezes `model`, attaches an adapter to every layer named by `config.targets`, and unfreezes
/// the head if `config.train_head`.
///
/// Nothing is attached unless every target is known and the rank fits every targeted layer; the
/// error names the offending target or layer and what is allowed.
pub fn attach<M: LoraModel>(model: M, config: &AttachConfig, rng: &mut impl Rng) -> Result<M, LoraError> {
    let mut model = model;
    let allowed = model.target_names();
    let model_name = short_type_name::<M>();
    let allowed_list = || allowed.iter().map(|s| s.to_string()).collect();
    if config.targets.is_empty() {
        return Err(LoraError::NoTargets {
            model: model_name,
            allowed: allowed_list(),
        });
    }
    if let Some(unknown) = config.targets.iter().find(|t| !allowed.contains(&t.as_str())) {
        return Err(LoraError::UnknownTarget {
            target: unknown.clone(),
            model: model_name,
            allowed: allowed_list(),
        });
    }
    let wanted = |target: &str, _path: &str| config.targets.iter().any(|t| t == target);
    attach_where(model, &config.lora, wanted, config.train_head, rng)
}

/// Freezes `model` and attaches an adapter to every site `wanted(target, path)` selects; the
/// one mechanism behind [`attach`] (select by target name) and [`peft::load`](crate::peft::load)
/// (select by module path).
pub(crate) fn attach_where<M: LoraModel>(
    model: M,
    lora: &LoraConfig,
    wanted: impl Fn(&str, &str) -> bool,
    train_head: bool,
    rng: &mut impl Rng,
) -> Result<M, LoraError> {
    let mut model = model.no_grad();
    for site in model.linear_sites().into_iter().filter(|s| wanted(s.target, &s.path)) {
        *site.layer = site.layer.clone().attach(&site.path, lora, rng)?;
    }
    for site in model
        .embedding_sites()
        .into_iter()
        .filter(|s| wanted(s.target, &s.path))
    {
        *site.layer = site.layer.clone().attach(&site.path, lora, rng)?;
    }
    if train_head {
        for site in model.head_sites() {
            *site.layer = site.layer.clone().set_require_grad(true);
        }
    }
    Ok(model)
}

/// Folds every adapter into its base weight (zero-latency inference).
pub fn merge<M: LoraModel>(mut model: M) -> M {
    for site in model.linear_sites() {
        *site.layer = site.layer.clone().merge();
    }
    for site in model.embedding_sites() {
        *site.layer = site.layer.clone().merge();
    }
    model
}

/// Takes every merged adapter back out of its base weight.
pub fn unmerge<M: LoraModel>(mut model: M) -> M {
    for site in model.linear_sites() {
        *site.layer = site.layer.clone().unmerge();
    }
    for site in model.embedding_sites() {
        *site.layer = site.layer.clone().unmerge();
    }
    model
}

fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full).to_string()
}
