//! The GPU path against the CPU path: the same trials, from the same pretrained base, give the
//! same loss curves on `wgpu` as on the CPU backend.
//!
//! Needs a build with `--features wgpu` and a GPU the wgpu runtime can open; anywhere else the
//! test says why it skipped and passes (CI has neither).

use std::path::Path;

#[path = "common/require.rs"]
mod require;

use burn::tensor::{Device, Tensor};
use loraplus::config::{ConfigFile, DeviceChoice};
use loraplus::plan;
use loraplus::run::device::device;
use loraplus::run::setup::Setup;
use loraplus::run::trial::StartPoints;
use loraplus::store::{Store, TrialRecord};

/// A tiny BERT with dropout, adapters on attention and embeddings, three rates stacked.
const CONFIG: &str = r#"
name = "gpu-check"
seeds = [0]
[grid]
eta_a = [1e-3, 1e-2]
ratio = [16]
baseline = false
[train]
steps = 20
batch_size = 16
eval_interval = 5
[lora]
rank = 4
dropout = 0.1
[[task]]
name = "tokens"
kind = "bag_of_tokens"
vocab = 50
seq_len = 12
n_classes = 3
n_train = 300
n_val = 60
n_test = 60
[[task]]
name = "tokens-shift"
kind = "bag_of_tokens"
vocab = 50
seq_len = 12
n_classes = 3
shift_rank = 2
shift_scale = 1.0
n_train = 200
n_val = 60
n_test = 60
[[model]]
name = "bert"
kind = "bert"
hidden_size = 32
num_hidden_layers = 2
num_attention_heads = 4
intermediate_size = 64
dropout = 0.1
targets = ["query", "value", "word_embeddings"]
pretrain = { task = "tokens", steps = 40, lr = 1e-3, batch_size = 16 }
"#;

/// The GPU device, or why there is none.
fn gpu() -> Result<Device, String> {
    let device = device(DeviceChoice::Wgpu).map_err(|e| e.to_string())?;
    let probe = device.clone();
    std::panic::catch_unwind(move || Tensor::<1>::ones([1], &probe).into_data())
        .map(|_| device)
        .map_err(|_| "the wgpu runtime found no usable GPU adapter".into())
}

/// Every trial of the config on `device`, stacked, from the base cached in `store_dir`.
fn run(file: &ConfigFile, device: &Device, store_dir: &Path) -> Vec<TrialRecord> {
    let trials = plan::expand(&file.config);
    let mut setup = Setup::new(file, device.clone());
    setup.add(&trials, &|_| {}).unwrap();
    setup
        .pretrain(&trials, &Store::open(store_dir).unwrap(), &|_| {})
        .unwrap();
    let group: Vec<_> = trials.iter().collect();
    setup.run(&group, &StartPoints::default()).unwrap().records
}

/// Runs the config on the flex CPU backend and on `other` from the same base, and compares.
fn assert_matches_cpu(other: &Device, backend: &str) {
    let config = ConfigFile::parse(CONFIG.into(), Path::new("gpu-check.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The CPU pretrains the base and caches it; the other run loads that same base.
    let cpu = run(&config, &device(DeviceChoice::Cpu).unwrap(), dir.path());
    let others = run(&config, other, dir.path());
    assert_eq!(others[0].provenance.backend, backend);
    assert_eq!(cpu.len(), 4);
    for (c, o) in cpu.iter().zip(&others) {
        assert_eq!(c.trial_id, o.trial_id);
        assert_eq!(c.curve.len(), o.curve.len());
        eprintln!(
            "trial {} (eta_A {:e}, ratio {}): flex losses {:?}, {backend} losses {:?}",
            c.trial_id,
            c.spec.eta_a,
            c.spec.ratio,
            c.curve.iter().map(|p| p.train_loss).collect::<Vec<_>>(),
            o.curve.iter().map(|p| p.train_loss).collect::<Vec<_>>()
        );
        // Tolerance: the mean loss of every 5-step window within 1e-3 relative over 20 steps.
        for (p, q) in c.curve.iter().zip(&o.curve) {
            if let (Some(x), Some(y)) = (p.train_loss, q.train_loss) {
                assert!(
                    (x - y).abs() <= 1e-3 * x.abs(),
                    "trial {} step {}: flex loss {x} vs {backend} {y}",
                    c.trial_id,
                    p.step
                );
            }
        }
    }
}

/// The comparison itself, between the two CPU backends: runs everywhere, CI included.
#[test]
fn ndarray_loss_curves_match_flex() {
    assert_matches_cpu(&device(DeviceChoice::Ndarray).unwrap(), "ndarray");
}

#[test]
#[cfg_attr(
    not(feature = "wgpu"),
    ignore = "needs a GPU and a build with --features wgpu (CI has neither)"
)]
fn gpu_loss_curves_match_the_cpu_for_the_first_steps() {
    match gpu() {
        Ok(device) => assert_matches_cpu(&device, "wgpu"),
        Err(why) => require::skip_unless_required("gpu", &why),
    }
}

/// With `LORAPLUS_REQUIRE=gpu`, a build without the GPU backend fails instead of ignoring the
/// GPU test.
#[test]
#[cfg(not(feature = "wgpu"))]
fn a_required_gpu_backend_is_built_in() {
    assert!(
        !require::required("gpu"),
        "LORAPLUS_REQUIRE names `gpu`: build with --features wgpu"
    );
}
