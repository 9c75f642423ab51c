//! Running one trial, and pretraining (once, cached) the bases trials start from.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use loraplus_data::TaskData;
use loraplus_model::{
    AttachConfig, LoraConfig, LoraInit, LoraScaling, attach, init, members, param_counts, param_table,
    with_dropout_seed, with_member_dropout,
};
use loraplus_optim::{LoraPlus, LoraPlusConfig, Schedule};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{InitKind, ModelConfig, ScheduleKind, TaskConfig};
use crate::data::{DataCache, InputShape};
use crate::grid::{Method, TrialSpec};
use crate::stacking;
use crate::store::{Accuracies, Provenance, Store, TrialRecord, with_lock, write_atomic};
use crate::train::{FitPlan, Status, evaluate, fit};
use crate::zoo::Classifier;

/// The code version baked in at build time.
pub const CODE_VERSION: &str = env!("LORAPLUS_CODE_VERSION");

/// How a pretrained base was made: its cache key, and what is written beside it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BaseInfo {
    /// The model (architecture and pretraining recipe).
    pub model: ModelConfig,
    /// The pretraining task (none for a checkpoint).
    pub task: Option<TaskConfig>,
    /// Validation accuracy on the pretraining task after pretraining.
    pub pretrain_val_accuracy: Option<f64>,
    /// How pretraining ended.
    pub status: Option<Status>,
}

impl BaseInfo {
    /// The base a trial starts from.
    pub fn of(spec: &TrialSpec) -> Self {
        Self {
            model: spec.model.clone(),
            task: spec.pretrain_task.clone(),
            pretrain_val_accuracy: None,
            status: None,
        }
    }

    /// `<model>-<hash of architecture, recipe and task>`: the same base for every sweep that
    /// describes it the same way, whatever the model is called.
    pub fn key(&self) -> String {
        let recipe = serde_json::to_string(&(
            &self.model.kind,
            &self.model.pretrain,
            self.task.as_ref().map(|t| &t.kind),
        ))
        .expect("serialises");
        let digest = Sha256::digest(recipe.as_bytes());
        let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("{}-{hash}", self.model.name)
    }
}

/// The name of a backend device, as records state it.
pub fn backend_name(device: &Device) -> String {
    let debug = format!("{device:?}").to_lowercase();
    ["flex", "ndarray", "wgpu", "cuda"]
        .into_iter()
        .find(|b| debug.contains(b))
        .unwrap_or("unknown")
        .to_string()
}

/// The checkpoints `trials` start from, loaded and checked against the data their tasks read
/// (token ids within the vocabulary, sequences within the position table). Needs no output
/// folder, so a sweep calls it before writing anything: a corrupt checkpoint or a mismatched
/// tokenizer leaves results untouched.
pub fn load_checkpoints(
    trials: &[TrialSpec],
    data: &DataCache,
    device: &Device,
    log: &dyn Fn(String),
) -> Result<BTreeMap<String, Classifier>> {
    let mut bases = BTreeMap::new();
    for spec in trials.iter().filter(|spec| spec.model.pretrain.is_none()) {
        let task_data = data.get(&spec.task, &spec.model);
        spec.model
            .kind
            .check_data(task_data)
            .with_context(|| format!("model `{}` on task `{}`", spec.model.name, spec.task.name))?;
        if let Entry::Vacant(entry) = bases.entry(BaseInfo::of(spec).key()) {
            log(format!("loading checkpoint `{}`", spec.model.name));
            let shape = InputShape::of(&spec.task.kind, task_data);
            entry.insert(spec.model.kind.init(&shape, true, &mut init::rng(0), device)?);
        }
    }
    Ok(bases)
}

/// Adds to `bases` the random-init bases `trials` need: pretrained once and cached in the
/// store, or loaded from there. Processes sharing a store (shards of one sweep) take turns
/// through a lock per base, so each base is pretrained once and every trial starts from the
/// same weights.
pub fn pretrain_bases(
    trials: &[TrialSpec],
    store: &Store,
    data: &DataCache,
    device: &Device,
    log: &dyn Fn(String),
    bases: &mut BTreeMap<String, Classifier>,
) -> Result<()> {
    for spec in trials {
        let info = BaseInfo::of(spec);
        let key = info.key();
        let (Some(task), Some(recipe)) = (&info.task, &info.model.pretrain) else {
            continue;
        };
        if bases.contains_key(&key) {
            continue;
        }
        let task_data = data.get(task, &info.model);
        let shape = InputShape::of(&task.kind, task_data);
        let skeleton = info
            .model
            .kind
            .init(&shape, true, &mut init::rng(recipe.seed), device)?;
        std::fs::create_dir_all(store.bases_dir())?;
        let path = store.bases_dir().join(format!("{key}.bpk"));
        let base = with_lock(&path.with_extension("lock"), || {
            if path.exists() {
                return skeleton
                    .try_load_file(&path)
                    .with_context(|| format!("cannot load the cached base {}", path.display()));
            }
            log(format!(
                "pretraining base {key} on `{}` ({} steps)",
                task.name, recipe.steps
            ));
            let started = Instant::now();
            let (base, info) = pretrain(skeleton, info.clone(), task_data, device)?;
            log(format!(
                "pretrained base {key}: val accuracy {:.4} on `{}` in {:.1}s",
                info.pretrain_val_accuracy.unwrap_or(f64::NAN),
                task.name,
                started.elapsed().as_secs_f64()
            ));
            save_base(&base, &info, &path)?;
            Ok(base)
        })?;
        bases.insert(key, base);
    }
    Ok(())
}

fn pretrain(model: Classifier, mut info: BaseInfo, data: &TaskData, device: &Device) -> Result<(Classifier, BaseInfo)> {
    let recipe = info.model.pretrain.clone().expect("only recipes are pretrained");
    let task_name = info.task.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    let optim = LoraPlusConfig::new(recipe.lr, 1.0).init(&model, recipe.steps)?;
    let plan = FitPlan {
        steps: recipe.steps,
        batch_size: recipe.batch_size,
        eval_interval: recipe.steps,
        diverge_factor: f64::INFINITY,
        data_seed: recipe.seed,
        start: None,
    };
    let outcome = with_dropout_seed(recipe.seed, || fit(model, optim, data, &plan, device));
    let [run] = &outcome.members[..] else {
        unreachable!("one model, one member")
    };
    anyhow::ensure!(
        run.status == Some(Status::Ok),
        "pretraining of `{}` on `{task_name}` diverged: {}; lower its pretrain.lr",
        info.model.name,
        run.message.clone().unwrap_or_default()
    );
    info.pretrain_val_accuracy = run.curve.last().map(|p| p.val_accuracy);
    info.status = run.status;
    Ok((outcome.model, info))
}

fn save_base(base: &Classifier, info: &BaseInfo, path: &Path) -> Result<()> {
    let bytes = base
        .clone()
        .into_record()
        .into_bytes()
        .context("cannot serialise a base")?;
    write_atomic(path, &bytes)?;
    write_atomic(&path.with_extension("json"), &serde_json::to_vec_pretty(info)?)
}

/// Runs `group` (trials that differ only in eta_A and ratio; see [`crate::stacking`]) from
/// `base` as one stacked computation and returns one record per trial, each as the trial alone
/// would have produced it. A diverging trial is a result (status `diverged`), not an error; an
/// error here means the group could not be set up.
pub fn run_group(
    group: &[&TrialSpec],
    base: &Classifier,
    data: &TaskData,
    device: &Device,
    start_points: &StartPoints,
) -> Result<Vec<TrialRecord>> {
    let started = Instant::now();
    let spec = group[0];
    let k = group.len();
    let model = start_model(spec, base, data)?;
    let (trainable_params, total_params) = param_counts(&param_table(&model));
    let start = start_points.get_or_evaluate(spec, || {
        let (val, test) = evaluate(&model, data, 1, device);
        (val[0], test[0])
    });
    let model = members::stack(model, k)?;
    let steps = spec.steps();
    let configs: Vec<LoraPlusConfig> = group.iter().map(|s| optimizer_config(s)).collect();
    let optim = LoraPlus::stacked(&configs, &model, steps)?;
    let plan = FitPlan {
        steps,
        batch_size: spec.train.batch_size.get(),
        eval_interval: spec.train.eval_interval.get(),
        diverge_factor: spec.train.diverge_factor.get(),
        // The data order depends on the seed alone, so trials of one seed see the same batches.
        data_seed: spec.seed ^ 0x5eed_da7a,
        start: Some(start),
    };
    // Dropout masks, like everything else random in a trial, follow its seed.
    let outcome = with_member_dropout(spec.seed ^ 0xd20f_0a75, k, || fit(model, optim, data, &plan, device));
    // The group's time, shared evenly: what each trial cost.
    let wall_seconds = started.elapsed().as_secs_f64() / k as f64;
    let majority = data.test.majority_accuracy(data.n_classes);
    Ok(group
        .iter()
        .zip(outcome.members)
        .map(|(spec, member)| TrialRecord {
            trial_id: spec.id(),
            status: member.status.expect("fit ends every member"),
            message: member.message,
            spec: (*spec).clone(),
            steps_run: member.steps_run,
            steps_planned: steps,
            accuracy: Accuracies::of(&member.curve),
            curve: member.curve,
            majority_test_accuracy: Some(majority),
            trainable_params,
            total_params,
            wall_seconds,
            provenance: provenance(device, k),
        })
        .collect())
}

/// The model `spec` starts from, the same for every trial of its family: `base` with a fresh
/// head and, for an adapter trial, adapters attached; for a head-only trial, only the head
/// trains.
fn start_model(spec: &TrialSpec, base: &Classifier, data: &TaskData) -> Result<Classifier> {
    let mut rng = init::rng(spec.seed);
    let model = base.clone().with_new_head(data.n_classes, &mut rng);
    Ok(match spec.method {
        Method::Lora => attach(model, &attach_config(spec), &mut rng)?,
        Method::HeadOnly => {
            let mut model = model.no_grad();
            for site in loraplus_model::LoraModel::head_sites(&mut model) {
                *site.layer = site.layer.clone().set_require_grad(true);
            }
            model
        }
    })
}

/// The val and test accuracy of each family's untrained model. The trials of a family (see
/// [`stacking::family_key`]) differ only in their rates, so they all start from the same model
/// and the same step-0 evaluation: a sweep computes it once per family, not once per trial (one
/// of a MiniLM trial's five evaluations, about a tenth of its work).
#[derive(Default)]
pub struct StartPoints(Mutex<HashMap<String, (f64, f64)>>);

impl StartPoints {
    /// The start of `spec`'s family, from `evaluate` the first time it is asked for.
    fn get_or_evaluate(&self, spec: &TrialSpec, evaluate: impl FnOnce() -> (f64, f64)) -> (f64, f64) {
        let family = stacking::family_key(spec);
        if let Some(&start) = self.0.lock().unwrap().get(&family) {
            return start;
        }
        // Evaluated outside the lock, so other jobs' trials go on meanwhile; two jobs of one
        // family may both evaluate it, and get the same numbers.
        let start = evaluate();
        self.0.lock().unwrap().insert(family, start);
        start
    }
}

/// The record of a trial that could not run (an error or a panic).
pub fn failed_record(spec: &TrialSpec, message: String, device: &Device, group_size: usize) -> TrialRecord {
    TrialRecord {
        trial_id: spec.id(),
        status: Status::Failed,
        message: Some(message),
        spec: spec.clone(),
        steps_run: 0,
        steps_planned: spec.steps(),
        accuracy: Accuracies::default(),
        curve: Vec::new(),
        majority_test_accuracy: None,
        trainable_params: 0,
        total_params: 0,
        wall_seconds: 0.0,
        provenance: provenance(device, group_size),
    }
}

fn provenance(device: &Device, group_size: usize) -> Provenance {
    Provenance {
        code_version: CODE_VERSION.to_string(),
        backend: backend_name(device),
        group_size,
        host: host_name(),
        cpu: cpu_name(),
        finished_at: unix_now(),
    }
}

/// The CPU's model name (`/proc/cpuinfo`, or `unknown CPU`), the widest vector instructions it
/// offers the tensor kernels and its L2 / L3 cache sizes (which set the matmul's blocking), e.g.
/// `AMD EPYC (avx2+fma, L2 512K, L3 32768K)`.
pub fn cpu_name() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(read_cpu_name).clone()
}

fn read_cpu_name() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("model name"))?;
            Some(line.split_once(':')?.1.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    #[cfg(target_arch = "x86_64")]
    let simd = if std::arch::is_x86_feature_detected!("avx512f") {
        "avx512f"
    } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        "avx2+fma"
    } else {
        "sse2"
    };
    #[cfg(target_arch = "aarch64")]
    let simd = "neon";
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let simd = "scalar";
    // Per-core L2 and shared L3 as Linux reports them, e.g. `512K`, `32768K`.
    let caches: Vec<String> = (0..8)
        .filter_map(|i| {
            let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
            let level = std::fs::read_to_string(format!("{dir}/level")).ok()?;
            let size = std::fs::read_to_string(format!("{dir}/size")).ok()?;
            (level.trim() != "1").then(|| format!("L{} {}", level.trim(), size.trim()))
        })
        .collect();
    let details: Vec<String> = std::iter::once(simd.to_string()).chain(caches).collect();
    format!("{model} ({})", details.join(", "))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// This machine's name, where the system says it.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn attach_config(spec: &TrialSpec) -> AttachConfig {
    let lora = &spec.lora;
    let config = LoraConfig::new(lora.rank.get())
        .with_alpha(lora.alpha.get())
        .with_dropout(lora.dropout.get())
        .with_scaling(if lora.rslora {
            LoraScaling::RankStabilized
        } else {
            LoraScaling::Standard
        })
        .with_init(match lora.init {
            InitKind::Peft => LoraInit::Peft,
            InitKind::Gaussian => LoraInit::Gaussian,
            InitKind::Reverse => LoraInit::Reverse,
        });
    AttachConfig::new(config, spec.targets()).with_train_head(lora.train_head)
}

fn optimizer_config(spec: &TrialSpec) -> LoraPlusConfig {
    let train = &spec.train;
    let warmup_steps = train.warmup_steps.get();
    LoraPlusConfig::new(spec.eta_a, spec.ratio)
        .with_lr_embedding(train.lr_embedding.get())
        .with_weight_decay(train.weight_decay.get())
        .with_beta_1(train.beta_1.get())
        .with_beta_2(train.beta_2.get())
        .with_epsilon(train.epsilon.get())
        .with_max_grad_norm(train.max_grad_norm.as_ref().map(|v| v.get()))
        .with_schedule(match train.schedule {
            ScheduleKind::Constant => Schedule::Constant { warmup_steps },
            ScheduleKind::Linear => Schedule::Linear { warmup_steps },
            ScheduleKind::Cosine => Schedule::Cosine { warmup_steps },
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeviceChoice, SweepConfig};
    use crate::grid;
    use crate::runner::device;

    /// A BERT with dropout and adapters on attention and embeddings, on 40-example splits.
    const BERT: &str = r#"
        name = "t"
        seeds = [0, 1]
        [grid]
        eta_a = [1e-3, 1e-2]
        ratio = [4]
        [train]
        steps = 2
        [lora]
        rank = 2
        dropout = 0.1
        [[task]]
        name = "tokens"
        kind = "bag_of_tokens"
        vocab = 30
        seq_len = 8
        n_classes = 3
        n_train = 100
        n_val = 40
        n_test = 40
        [[task]]
        name = "tokens-shift"
        kind = "bag_of_tokens"
        vocab = 30
        seq_len = 8
        n_classes = 3
        shift_rank = 1
        shift_scale = 1.0
        n_train = 100
        n_val = 40
        n_test = 40
        [[model]]
        name = "bert"
        kind = "bert"
        hidden_size = 16
        num_hidden_layers = 1
        num_attention_heads = 2
        intermediate_size = 32
        dropout = 0.1
        targets = ["query", "value", "word_embeddings"]
        pretrain = { task = "tokens", steps = 30, lr = 1e-3, batch_size = 16 }
    "#;

    /// The config's trials, their data and their pretrained bases (cached in `dir`).
    fn setup(dir: &Path) -> (Vec<TrialSpec>, DataCache, BTreeMap<String, Classifier>, Device) {
        let config = SweepConfig::parse(BERT, Path::new("t.toml")).unwrap();
        let trials = grid::expand(&config);
        let device = device(DeviceChoice::Cpu).unwrap();
        let data = DataCache::load(&trials, &|_| {}).unwrap();
        let mut bases = load_checkpoints(&trials, &data, &device, &|_| {}).unwrap();
        let store = Store::open(dir).unwrap();
        pretrain_bases(&trials, &store, &data, &device, &|_| {}, &mut bases).unwrap();
        (trials, data, bases, device)
    }

    #[test]
    fn stacked_members_start_where_one_member_alone_does() {
        // `fit` used to evaluate step 0 on the stacked model; the shared start evaluates one
        // member alone.
        let dir = tempfile::tempdir().unwrap();
        let (trials, data, bases, device) = setup(dir.path());
        for spec in [
            &trials[0],
            trials.iter().find(|t| t.method == Method::HeadOnly).unwrap(),
        ] {
            let data = data.get(&spec.task, &spec.model);
            let model = start_model(spec, &bases[&BaseInfo::of(spec).key()], data).unwrap();
            let (val, test) = evaluate(&model, data, 1, &device);
            assert!(
                0.0 < test[0] && test[0] < 1.0,
                "a split that can tell models apart: {test:?}"
            );
            let (stacked_val, stacked_test) = evaluate(&members::stack(model, 3).unwrap(), data, 3, &device);
            assert_eq!(stacked_val, [val[0]; 3]);
            assert_eq!(stacked_test, [test[0]; 3]);
        }
    }

    #[test]
    fn a_familys_trials_share_one_step_0_evaluation_and_record_what_evaluating_gives() {
        let dir = tempfile::tempdir().unwrap();
        let (trials, data, bases, device) = setup(dir.path());
        let run = |spec: &TrialSpec, start_points: &StartPoints| {
            let base = &bases[&BaseInfo::of(spec).key()];
            run_group(&[spec], base, data.get(&spec.task, &spec.model), &device, start_points)
                .unwrap()
                .remove(0)
        };
        let shared = StartPoints::default();
        for spec in &trials {
            let alone = run(spec, &StartPoints::default());
            let with_family = run(spec, &shared);
            assert_eq!(alone.curve, with_family.curve, "trial {}", spec.id());
            assert_eq!(alone.curve[0].step, 0);
        }
        // 2 seeds x (2 eta_A x 2 ratios + 2 head-only baselines): one family per seed and method.
        assert_eq!(trials.len(), 12);
        assert_eq!(shared.0.lock().unwrap().len(), 4);
    }
}
