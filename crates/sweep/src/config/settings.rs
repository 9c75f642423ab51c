//! `[train]` and `[lora]`: the settings every trial shares, any numeric one of which may be a
//! list, which makes it a grid axis.

use loraplus_model::LoraInit;
use loraplus_optim::Schedule;
use serde::{Deserialize, Serialize};

use super::error::Invalid;

/// A value that is either one number or a list of them; a list makes the key a grid axis.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged, expecting = "a number or a list of numbers")]
pub enum Values<T> {
    /// One value.
    One(T),
    /// A grid axis.
    Many(Vec<T>),
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

/// One numeric setting, whatever its number type: what tables, pair labels and grid expansion
/// read of it.
pub trait Setting {
    /// Its value or values, as floats.
    fn as_f64(&self) -> Values<f64>;
    /// Keeps value `index` of a list alone.
    fn keep(&mut self, index: usize);
}

impl<T: Copy + Into<Number>> Setting for Values<T> {
    fn as_f64(&self) -> Values<f64> {
        match self {
            Values::One(v) => Values::One((*v).into().0),
            Values::Many(vs) => Values::Many(vs.iter().map(|v| (*v).into().0).collect()),
        }
    }

    fn keep(&mut self, index: usize) {
        *self = Values::One(self.all()[index]);
    }
}

/// A setting's number as a float (counts are far below 2^53).
pub struct Number(f64);

impl From<usize> for Number {
    fn from(n: usize) -> Self {
        Number(n as f64)
    }
}

impl From<f64> for Number {
    fn from(x: f64) -> Self {
        Number(x)
    }
}

/// A section whose numeric keys may be lists (`[train]`, `[lora]`).
pub trait Section: Clone {
    /// The numeric settings by key in alphabetical order (the order of the tables' columns and
    /// of grid expansion), unset optional ones left out.
    fn settings_mut(&mut self) -> Vec<(&'static str, &mut dyn Setting)>;

    /// The numeric settings and their values. (Read through a copy, so one list of keys,
    /// [`Section::settings_mut`], serves reading and expansion.)
    fn settings(&self) -> Vec<(&'static str, Values<f64>)> {
        let mut copy = self.clone();
        copy.settings_mut()
            .into_iter()
            .map(|(key, s)| (key, s.as_f64()))
            .collect()
    }

    /// Every combination of the list-valued settings' values, each a section of single values;
    /// the first key in [`Section::settings_mut`]'s order varies slowest.
    fn expand(&self) -> Vec<Self> {
        let mut combos = vec![self.clone()];
        for (position, (_, values)) in self.settings().into_iter().enumerate() {
            let Values::Many(list) = values else { continue };
            combos = combos
                .into_iter()
                .flat_map(|combo| {
                    (0..list.len()).map(move |index| {
                        let mut combo = combo.clone();
                        combo.settings_mut()[position].1.keep(index);
                        combo
                    })
                })
                .collect();
        }
        combos
    }
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

/// The Hugging Face-style rate schedules.
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

impl ScheduleKind {
    /// The optimizer's schedule of this kind, after `warmup_steps` of linear warmup.
    pub fn with_warmup(self, warmup_steps: usize) -> Schedule {
        match self {
            ScheduleKind::Constant => Schedule::Constant { warmup_steps },
            ScheduleKind::Linear => Schedule::Linear { warmup_steps },
            ScheduleKind::Cosine => Schedule::Cosine { warmup_steps },
        }
    }
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

impl From<InitKind> for LoraInit {
    fn from(kind: InitKind) -> Self {
        match kind {
            InitKind::Peft => LoraInit::Peft,
            InitKind::Gaussian => LoraInit::Gaussian,
            InitKind::Reverse => LoraInit::Reverse,
        }
    }
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

impl Section for TrainConfig {
    fn settings_mut(&mut self) -> Vec<(&'static str, &mut dyn Setting)> {
        let mut settings: Vec<(&'static str, &mut dyn Setting)> = vec![
            ("batch_size", &mut self.batch_size),
            ("beta_1", &mut self.beta_1),
            ("beta_2", &mut self.beta_2),
            ("diverge_factor", &mut self.diverge_factor),
        ];
        if let Some(epochs) = &mut self.epochs {
            settings.push(("epochs", epochs));
        }
        settings.push(("epsilon", &mut self.epsilon));
        settings.push(("eval_interval", &mut self.eval_interval));
        settings.push(("lr_embedding", &mut self.lr_embedding));
        if let Some(max_grad_norm) = &mut self.max_grad_norm {
            settings.push(("max_grad_norm", max_grad_norm));
        }
        if let Some(steps) = &mut self.steps {
            settings.push(("steps", steps));
        }
        settings.push(("warmup_steps", &mut self.warmup_steps));
        settings.push(("weight_decay", &mut self.weight_decay));
        settings
    }
}

impl Section for LoraSection {
    fn settings_mut(&mut self) -> Vec<(&'static str, &mut dyn Setting)> {
        vec![
            ("alpha", &mut self.alpha),
            ("dropout", &mut self.dropout),
            ("rank", &mut self.rank),
        ]
    }
}

impl TrainConfig {
    /// Checks every value.
    pub fn validate(&self) -> Result<(), Invalid> {
        let fail = |key: &str, message: String| Err(Invalid::new(&format!("train.{key}"), message));
        match (&self.steps, &self.epochs) {
            (None, None) => return fail("steps", "give either `steps` or `epochs`".into()),
            (Some(_), Some(_)) => return fail("epochs", "give either `steps` or `epochs`, not both".into()),
            _ => {}
        }
        let counts = [
            ("steps", self.steps.as_ref()),
            ("epochs", self.epochs.as_ref()),
            ("batch_size", Some(&self.batch_size)),
            ("eval_interval", Some(&self.eval_interval)),
        ];
        for (key, values) in counts {
            if let Some(values) = values {
                check_list(&format!("train.{key}"), values)?;
                if values.all().contains(&0) {
                    return fail(key, "must be at least 1".into());
                }
            }
        }
        check_list("train.warmup_steps", &self.warmup_steps)?;
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
            check_list(&format!("train.{key}"), values)?;
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
    /// Checks every value.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_list("lora.rank", &self.rank)?;
        if self.rank.all().contains(&0) {
            return Err(Invalid::new("lora.rank", "must be at least 1"));
        }
        check_list("lora.alpha", &self.alpha)?;
        if let Some(bad) = self.alpha.all().into_iter().find(|a| !(a.is_finite() && *a > 0.0)) {
            return Err(Invalid::new("lora.alpha", format!("{bad} is not allowed; must be > 0")));
        }
        check_list("lora.dropout", &self.dropout)?;
        if let Some(bad) = self.dropout.all().into_iter().find(|p| !(0.0..1.0).contains(p)) {
            return Err(Invalid::new(
                "lora.dropout",
                format!("{bad} is not allowed; must be in [0, 1)"),
            ));
        }
        Ok(())
    }
}

/// An empty list gives a key no value at all.
pub(super) fn check_list<T>(key: &str, values: &Values<T>) -> Result<(), Invalid> {
    match values {
        Values::Many(list) if list.is_empty() => Err(Invalid::new(
            key,
            "the list is empty; give one value or a non-empty list",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_listed_in_the_alphabetical_order_tables_and_expansion_use() {
        let train = TrainConfig {
            steps: Some(Values::One(10)),
            max_grad_norm: Some(Values::One(1.0)),
            ..TrainConfig::default()
        };
        let keys: Vec<&str> = train.settings().into_iter().map(|(key, _)| key).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 11, "every numeric key but the unset `epochs`");
        assert!(!TrainConfig::default().settings().iter().any(|(k, _)| *k == "steps"));
    }

    #[test]
    fn expansion_is_every_combination_with_the_first_key_slowest() {
        let lora = LoraSection {
            alpha: Values::Many(vec![4.0, 16.0]),
            rank: Values::Many(vec![2, 8, 32]),
            ..LoraSection::default()
        };
        let combos: Vec<(f64, usize)> = lora.expand().iter().map(|l| (l.alpha.get(), l.rank.get())).collect();
        assert_eq!(
            combos,
            [(4.0, 2), (4.0, 8), (4.0, 32), (16.0, 2), (16.0, 8), (16.0, 32)]
        );
        assert_eq!(LoraSection::default().expand(), [LoraSection::default()]);
    }
}
