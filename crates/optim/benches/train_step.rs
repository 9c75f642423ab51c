//! One training step of a BERT-shaped classifier (batch 32 x seq 64), timed side by side in one
//! run, at one of two real checkpoints' sizes (random weights; the work is the same):
//!
//! - `--model minilm` (default): all-MiniLM-L6-v2, 6 layers, hidden 384, 12 heads, ffn 1536;
//! - `--model mpnet`: all-mpnet-base-v2, 12 layers, hidden 768, 12 heads, ffn 3072, MPNet's
//!   relative position bias and offset position ids;
//!
//! with these variants:
//!
//! - `lora+`: this project's adapters on query/value (r = 8), `x A B` path, LoRA+ AdamW;
//! - `full`: every parameter trainable, AdamW;
//! - `burn apply_lora`: Burn's own LoRA on the same weights, which forms `W0 + s A B` in the graph;
//! - `lora+ unfused`, `full unfused`: the same with the model's fused CPU kernels switched off
//!   (softmax, LayerNorm and GELU composed from Burn's ops), to show what they save;
//!
//! on Burn's flex and ndarray CPU backends. Variants run round-robin so that machine noise hits
//! them alike; each figure is the median over the timed rounds. Each backend's table starts with
//! its measured GEMM peak (the FFN's matmul shape, and a square one), and each variant's
//! achieved GFLOP/s counts a step's matmul work: forward F, plus F for the activations' gradients,
//! plus F more for the weights' gradients when every weight trains (so 2F for LoRA, 3F for full).
//!
//! ```text
//! cargo bench --workspace --bench train_step [-- --model mpnet] [--rounds 5] [--backend flex] [--variant lora+ ...] [--brief]
//! ```
//!
//! `--brief` prints only `variant ms/step samples/s peak-MB` lines, for `scripts/bench/vs-peft.sh`
//! (the peak is the process's, so it is one workload's when one `--variant` is given).

use std::time::Instant;

use burn::module::{Lora, Module, ParamGroup};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use loraplus_model::models::{BertClassifier, BertClassifierConfig, BertConfig, ModelType};
use loraplus_model::{AttachConfig, LoraConfig, attach, fused, init, param_counts, param_table};
use loraplus_optim::{LoraPlus, LoraPlusConfig};
use rand::Rng;

const BATCH: usize = 32;
const SEQ: usize = 64;

struct Batch {
    ids: Tensor<2, Int>,
    mask: Tensor<2, Int>,
    labels: Tensor<1, Int>,
}

struct Variant {
    name: &'static str,
    /// Whether the model's fused CPU kernels are on (`loraplus_model::fused`).
    fused: bool,
    model: Option<BertClassifier>,
    optim: LoraPlus,
    /// Per timed round: `[forward, backward, optimizer]` milliseconds.
    millis: Vec<[f64; 3]>,
}

/// Command-line options (after `--` of `cargo bench`).
struct Options {
    model: String,
    rounds: usize,
    backends: Vec<String>,
    variants: Vec<String>,
    brief: bool,
}

impl Options {
    fn parse() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let values =
            |flag: &str| -> Vec<String> { args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].clone()).collect() };
        Self {
            model: values("--model").pop().unwrap_or_else(|| "minilm".into()),
            rounds: values("--rounds")
                .first()
                .map(|r| r.parse().expect("--rounds takes a number"))
                .unwrap_or(5),
            backends: values("--backend"),
            variants: values("--variant"),
            brief: args.iter().any(|a| a == "--brief"),
        }
    }
}

/// The encoder of `--model`: a real checkpoint's shape (its `config.json`), random weights.
fn encoder(model: &str) -> BertConfig {
    match model {
        "minilm" => BertConfig::new(30522, 384, 6, 12, 1536),
        "mpnet" => BertConfig::new(30527, 768, 12, 12, 3072)
            .with_model_type(ModelType::Mpnet)
            .with_type_vocab_size(0)
            .with_pad_token_id(1)
            .with_max_position_embeddings(514)
            .with_relative_attention_num_buckets(32)
            .with_layer_norm_eps(1e-5),
        other => panic!("--model {other}: expected minilm or mpnet"),
    }
}

/// Matmul FLOPs of one forward pass (projections, FFN, attention scores and values; embeddings,
/// norms and the head are negligible).
fn forward_flops(bert: &BertConfig) -> f64 {
    let tokens = (BATCH * SEQ) as f64;
    let (d, ff) = (bert.hidden_size as f64, bert.intermediate_size as f64);
    let per_layer = 2.0 * tokens * (4.0 * d * d + 2.0 * d * ff) + 2.0 * 2.0 * tokens * SEQ as f64 * d;
    bert.num_hidden_layers as f64 * per_layer
}

/// GFLOP/s of `[m, k] x [k, n]` matmuls on `device`, median of 5 after a warm-up.
fn gemm_gflops(device: &Device, m: usize, k: usize, n: usize) -> f64 {
    let a = Tensor::<2>::ones([m, k], device);
    let b = Tensor::<2>::ones([k, n], device);
    let mut times = Vec::new();
    for round in 0..6 {
        let started = Instant::now();
        let c = a.clone().matmul(b.clone());
        let _ = c.into_data();
        if round > 0 {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    2.0 * (m * k * n) as f64 / median(&times) / 1e9
}

fn main() {
    loraplus_model::keep_freed_buffers();
    let options = Options::parse();
    let rounds = options.rounds;
    let bert = encoder(&options.model);
    let (d, ff) = (bert.hidden_size, bert.intermediate_size);
    if !options.brief {
        println!(
            "train step, {} size ({} layers x {d}), batch {BATCH} x seq {SEQ}, median of {rounds} rounds",
            options.model, bert.num_hidden_layers
        );
        println!("matmul work per forward pass F = {:.1} GFLOP\n", forward_flops(&bert) / 1e9);
    }
    #[allow(deprecated)] // ndarray is deprecated upstream, but the comparison is the point.
    let backends = [("flex", Device::flex()), ("ndarray", Device::ndarray())];
    for (backend, device) in backends {
        if !options.backends.is_empty() && !options.backends.iter().any(|b| b == backend) {
            continue;
        }
        if !options.brief {
            println!(
                "{backend}: GEMM peak {:.0} GFLOP/s ({BATCH}*{SEQ} x {d} x {ff}), {:.0} GFLOP/s (1024^3)",
                gemm_gflops(&device, BATCH * SEQ, d, ff),
                gemm_gflops(&device, 1024, 1024, 1024)
            );
            println!(
                "{:<8} {:<16} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10} {:>8}",
                "backend",
                "variant",
                "ms/step",
                "forward",
                "backward",
                "optim",
                "samples/s",
                "GFLOP/s",
                "trainable",
                "vs full"
            );
        }
        let device = device.autodiff();
        let batch = random_batch(bert.vocab_size, &device);
        let mut variants = variants(&bert, &device);
        variants.retain(|v| options.variants.is_empty() || options.variants.iter().any(|n| n == v.name));
        for round in 0..=rounds {
            for variant in &mut variants {
                let model = variant.model.take().unwrap();
                fused::set_enabled(variant.fused);
                let (model, phases) = train_step(model, &mut variant.optim, &batch);
                variant.model = Some(model);
                // Round 0 warms caches and allocators; it is not counted.
                if round > 0 {
                    variant.millis.push(phases);
                }
            }
        }
        let phase = |v: &Variant, i: usize| median(&v.millis.iter().map(|p| p[i]).collect::<Vec<f64>>());
        let total = |v: &Variant| median(&v.millis.iter().map(|p| p.iter().sum()).collect::<Vec<f64>>());
        let full = variants.iter().find(|v| v.name == "full").map(total);
        for v in &variants {
            let ms = total(v);
            let samples = BATCH as f64 / (ms / 1e3);
            if options.brief {
                println!("{} {ms:.1} {samples:.2} {:.0}", v.name, peak_resident_mb());
                continue;
            }
            let (trainable, _) = param_counts(&param_table(v.model.as_ref().unwrap()));
            let passes = if v.name.starts_with("full") { 3.0 } else { 2.0 };
            let gflops = passes * forward_flops(&bert) / (ms / 1e3) / 1e9;
            println!(
                "{backend:<8} {:<16} {ms:>9.1} {:>9.1} {:>9.1} {:>9.1} {samples:>10.1} {gflops:>8.0} {trainable:>10} {:>7}",
                v.name,
                phase(v, 0),
                phase(v, 1),
                phase(v, 2),
                full.map(|f| format!("{:.2}x", ms / f)).unwrap_or_default()
            );
        }
        if !options.brief {
            println!();
        }
    }
}

fn variants(bert: &BertConfig, device: &Device) -> Vec<Variant> {
    let base = BertClassifierConfig::new(bert.clone(), 2).init(&mut init::rng(0), device);
    let total_steps = 1000;

    let lora = AttachConfig::new(
        LoraConfig::new(8).with_alpha(16.0),
        vec!["query".into(), "value".into()],
    );
    let lora_plus = attach(base.clone(), &lora, &mut init::rng(1)).unwrap();

    let query_value = ParamGroup::from_regex(r"(query|value)\.base\.weight$").unwrap();
    let burn_lora = base
        .clone()
        .apply_lora(Lora::new(8, 16.0).set_param_group(query_value))
        .unfreeze_group(ParamGroup::from_predicate("classifier"));

    let optim = |model: &BertClassifier, lr, ratio| LoraPlusConfig::new(lr, ratio).init(model, total_steps).unwrap();
    let variant = |name, model: BertClassifier, optim: LoraPlus| Variant {
        name,
        fused: !name.ends_with("unfused"),
        model: Some(model),
        optim,
        millis: Vec::new(),
    };
    vec![
        variant("lora+", lora_plus.clone(), optim(&lora_plus, 1e-4, 16.0)),
        variant("lora+ unfused", lora_plus.clone(), optim(&lora_plus, 1e-4, 16.0)),
        variant("full", base.clone(), optim(&base, 2e-5, 1.0)),
        variant("full unfused", base.clone(), optim(&base, 2e-5, 1.0)),
        variant("burn apply_lora", burn_lora.clone(), optim(&burn_lora, 1e-4, 16.0)),
    ]
}

/// One step, with the milliseconds of its forward, backward and optimizer phases (the device is
/// synchronised after each, so no work leaks into the next phase's time).
fn train_step(model: BertClassifier, optim: &mut LoraPlus, batch: &Batch) -> (BertClassifier, [f64; 3]) {
    let device = batch.ids.device();
    let mut clock = Instant::now();
    let mut lap = || {
        device.sync().unwrap();
        let ms = clock.elapsed().as_secs_f64() * 1e3;
        clock = Instant::now();
        ms
    };
    let logits = model.forward(batch.ids.clone(), batch.mask.clone(), None);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits, batch.labels.clone());
    let forward = lap();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let backward = lap();
    let model = optim.step(model, grads);
    (model, [forward, backward, lap()])
}

fn random_batch(vocab_size: usize, device: &Device) -> Batch {
    let mut rng = init::rng(7);
    let ids: Vec<i64> = (0..BATCH * SEQ).map(|_| rng.random_range(0..vocab_size as i64)).collect();
    let labels: Vec<i64> = (0..BATCH).map(|_| rng.random_range(0..2)).collect();
    Batch {
        ids: Tensor::from_data(TensorData::new(ids, [BATCH, SEQ]), device),
        mask: Tensor::ones([BATCH, SEQ], device),
        labels: Tensor::from_data(TensorData::new(labels, [BATCH]), device),
    }
}

/// This process's peak resident memory so far (`VmHWM`), in MB; 0 where `/proc` has none. With
/// one `--variant`, the peak of that workload (model, activations, optimizer state).
fn peak_resident_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
