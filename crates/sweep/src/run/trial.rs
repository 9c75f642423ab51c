//! One trial, or a stacked group of them: the model it starts from, the optimizer its rates
//! make, the training run, and the record it leaves (what ran it: code, backend, machine).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use burn::module::Module;
use burn::tensor::Device;
use loraplus_data::TaskData;
use loraplus_model::{
    AttachConfig, LoraConfig, LoraScaling, attach, init, members, param_counts, param_table, with_member_dropout,
};
use loraplus_optim::{LoraPlus, LoraPlusConfig};

use super::device::backend_name;
use super::train::{FitPlan, evaluate, fit};
use super::zoo::Classifier;
use crate::plan::{FamilyKey, Method, TrialSpec};
use crate::store::{Accuracies, Provenance, Status, TrialRecord};

/// The code version baked in at build time.
pub const CODE_VERSION: &str = env!("LORAPLUS_CODE_VERSION");

/// What a stacked group trained: one record per trial and the model holding every member.
pub struct Trained {
    /// One record per trial of the group, in its order.
    pub records: Vec<TrialRecord>,
    /// The stacked model as training left it; none when the group could not run.
    pub model: Option<Classifier>,
}

impl Trained {
    /// Trial `k`'s own trained model (member `k` of the stack).
    pub fn member(&self, k: usize) -> Option<Classifier> {
        let model = self.model.clone()?;
        Some(members::member(model, k, self.records.len()))
    }
}

/// Runs `group` (one family's trials, which differ only in eta_A and ratio) from
/// `base` as one stacked computation and returns one record per trial, each as the trial alone
/// would have produced it. A diverging trial is a result (status `diverged`), not an error; an
/// error here means the group could not be set up.
pub fn run_group(
    group: &[&TrialSpec],
    base: &Classifier,
    data: &TaskData,
    device: &Device,
    start_points: &StartPoints,
) -> Result<Trained> {
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
    let majority = data.test.majority_accuracy(data.n_classes());
    let records = group
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
            adapter_sha256: None,
        })
        .collect();
    Ok(Trained {
        records,
        model: Some(outcome.model),
    })
}

/// The model `spec` starts from, the same for every trial of its family: `base` with a fresh
/// head and, for an adapter trial, adapters attached; for a head-only trial, only the head
/// trains.
fn start_model(spec: &TrialSpec, base: &Classifier, data: &TaskData) -> Result<Classifier> {
    let mut rng = init::rng(spec.seed);
    let model = base.clone().with_new_head(data.n_classes(), &mut rng);
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
/// [`FamilyKey`]) differ only in their rates, so they all start from the same model
/// and the same step-0 evaluation: a sweep computes it once per family, not once per trial (one
/// of a MiniLM trial's five evaluations, about a tenth of its work).
#[derive(Default)]
pub struct StartPoints(Mutex<HashMap<FamilyKey, (f64, f64)>>);

impl StartPoints {
    /// The start of `spec`'s family, from `evaluate` the first time it is asked for.
    fn get_or_evaluate(&self, spec: &TrialSpec, evaluate: impl FnOnce() -> (f64, f64)) -> (f64, f64) {
        let family = spec.family();
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
fn failed_record(spec: &TrialSpec, message: String, device: &Device, group_size: usize) -> TrialRecord {
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
        adapter_sha256: None,
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

/// The adapters `spec` attaches, as the model crate (and PEFT's config) describe them.
pub fn attach_config(spec: &TrialSpec) -> AttachConfig {
    let lora = &spec.lora;
    let config = LoraConfig::new(lora.rank.get())
        .with_alpha(lora.alpha.get())
        .with_dropout(lora.dropout.get())
        .with_scaling(if lora.rslora {
            LoraScaling::RankStabilized
        } else {
            LoraScaling::Standard
        })
        .with_init(lora.init.into());
    AttachConfig::new(config, spec.model.targets()).with_train_head(lora.train_head)
}

fn optimizer_config(spec: &TrialSpec) -> LoraPlusConfig {
    let train = &spec.train;
    LoraPlusConfig::new(spec.eta_a, spec.ratio)
        .with_lr_embedding(train.lr_embedding.get())
        .with_weight_decay(train.weight_decay.get())
        .with_beta_1(train.beta_1.get())
        .with_beta_2(train.beta_2.get())
        .with_epsilon(train.epsilon.get())
        .with_max_grad_norm(train.max_grad_norm.as_ref().map(|v| v.get()))
        .with_schedule(train.schedule.with_warmup(train.warmup_steps.get()))
}

/// What `run` trained, or, if it fails or panics, a `failed` record for every trial of `group`
/// with the reason: one bad group never stops a sweep.
pub fn run_guarded(group: &[&TrialSpec], device: &Device, run: impl FnOnce() -> Result<Trained>) -> Trained {
    let failed = |message: String| Trained {
        records: group
            .iter()
            .map(|spec| failed_record(spec, message.clone(), device, group.len()))
            .collect(),
        model: None,
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(trained)) => trained,
        Ok(Err(error)) => failed(format!("{error:#}")),
        Err(panic) => failed(format!("panicked: {}", panic_message(&panic))),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{ConfigFile, DeviceChoice};
    use crate::plan;
    use crate::run::device::device;
    use crate::run::setup::Setup;
    use crate::store::Store;

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

    /// The config, read for a sweep.
    fn config() -> ConfigFile {
        ConfigFile::parse(BERT.into(), Path::new("t.toml")).unwrap()
    }

    /// The config's trials, prepared, their bases pretrained into `dir`.
    fn setup<'a>(file: &'a ConfigFile, dir: &Path) -> (Vec<TrialSpec>, Setup<'a>) {
        let trials = plan::expand(&file.config);
        let mut setup = Setup::new(file, device(DeviceChoice::Cpu).unwrap());
        setup.add(&trials, &|_| {}).unwrap();
        setup.pretrain(&trials, &Store::open(dir).unwrap(), &|_| {}).unwrap();
        (trials, setup)
    }

    #[test]
    fn stacked_members_start_where_one_member_alone_does() {
        // `fit` used to evaluate step 0 on the stacked model; the shared start evaluates one
        // member alone.
        let (dir, file) = (tempfile::tempdir().unwrap(), config());
        let (trials, setup) = setup(&file, dir.path());
        let device = setup.device();
        for spec in [
            &trials[0],
            trials.iter().find(|t| t.method == Method::HeadOnly).unwrap(),
        ] {
            let data = setup.data(spec);
            let model = start_model(spec, setup.base(spec), data).unwrap();
            let (val, test) = evaluate(&model, data, 1, device);
            assert!(
                0.0 < test[0] && test[0] < 1.0,
                "a split that can tell models apart: {test:?}"
            );
            let (stacked_val, stacked_test) = evaluate(&members::stack(model, 3).unwrap(), data, 3, device);
            assert_eq!(stacked_val, [val[0]; 3]);
            assert_eq!(stacked_test, [test[0]; 3]);
        }
    }

    #[test]
    fn a_familys_trials_share_one_step_0_evaluation_and_record_what_evaluating_gives() {
        let (dir, file) = (tempfile::tempdir().unwrap(), config());
        let (trials, setup) = setup(&file, dir.path());
        let run =
            |spec: &TrialSpec, start_points: &StartPoints| setup.run(&[spec], start_points).unwrap().records.remove(0);
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

    #[test]
    fn a_panicking_or_failing_group_becomes_failed_records() {
        let trials = plan::expand(&crate::config::tiny_config(1));
        let group: Vec<&TrialSpec> = trials.iter().collect();
        let device = Device::flex();
        let panicked = run_guarded(&group, &device, || panic!("index out of bounds: 7 >= 3")).records;
        let errored = run_guarded(&group, &device, || Err(anyhow::anyhow!("no such file"))).records;
        for (records, message) in [
            (panicked, "panicked: index out of bounds: 7 >= 3"),
            (errored, "no such file"),
        ] {
            assert_eq!(records.len(), 4, "every trial of the group gets a record");
            for (record, spec) in records.iter().zip(&group) {
                assert_eq!(record.trial_id, spec.id());
                assert_eq!(record.status, Status::Failed);
                assert_eq!(record.message.as_deref(), Some(message));
            }
        }
    }
}
