//! The training loop, shared by base pretraining and every trial. It reads top to bottom in a
//! fixed order: evaluate (every `eval_interval` steps), forward, check for divergence, backward,
//! step; and a final evaluation.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use loraplus_data::{Split, TaskData};
use loraplus_model::init;
use loraplus_optim::LoraPlus;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::zoo::Classifier;

/// How long and how a model trains.
#[derive(Debug, Clone)]
pub struct FitPlan {
    /// Optimizer updates.
    pub steps: usize,
    /// Examples per update.
    pub batch_size: usize,
    /// Evaluate every this many steps (and at the end).
    pub eval_interval: usize,
    /// Stop as diverged when the loss exceeds this multiple of the first loss.
    pub diverge_factor: f64,
    /// Seed of the order in which training examples are visited.
    pub data_seed: u64,
}

/// One evaluation point of a training curve.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// Updates taken before this evaluation.
    pub step: usize,
    /// Mean training loss over the updates since the previous point (none at step 0).
    pub train_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
}

/// How a run ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trained for every step.
    Ok,
    /// Stopped early: the loss became NaN/inf or exploded.
    Diverged,
    /// Stopped by an error or a panic; the record's message says which.
    Failed,
}

/// The result of [`fit`].
pub struct FitOutcome {
    /// The trained model (as it was when the run stopped).
    pub model: Classifier,
    /// Evaluation points, the last at the final step.
    pub curve: Vec<CurvePoint>,
    /// How the run ended.
    pub status: Status,
    /// Why it stopped early, if it did.
    pub message: Option<String>,
    /// Updates taken.
    pub steps_run: usize,
}

/// Trains `model` with `optim` on `data.train` as `plan` says.
pub fn fit(mut model: Classifier, mut optim: LoraPlus, data: &TaskData, plan: &FitPlan, device: &Device) -> FitOutcome {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut order = BatchOrder::new(data.train.len(), plan.data_seed);
    let mut curve = Vec::new();
    let mut first_loss = None;
    let mut window = Vec::new();
    for step in 0..plan.steps {
        if step % plan.eval_interval == 0 {
            curve.push(evaluate(&model, data, step, mean(&window), device));
            window.clear();
        }
        let batch = data.train.batch(&order.next(plan.batch_size), device);
        let loss = loss_fn.forward(model.forward(&batch.input), batch.labels);
        let loss_value = loss.clone().into_scalar::<f64>();
        let first = *first_loss.get_or_insert(loss_value);
        if !loss_value.is_finite() || loss_value > plan.diverge_factor * first {
            let message = format!("loss {loss_value} at step {step} (first loss {first:.4})");
            return FitOutcome {
                model,
                curve,
                status: Status::Diverged,
                message: Some(message),
                steps_run: step,
            };
        }
        window.push(loss_value);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(model, grads);
    }
    curve.push(evaluate(&model, data, plan.steps, mean(&window), device));
    FitOutcome {
        model,
        curve,
        status: Status::Ok,
        message: None,
        steps_run: plan.steps,
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn evaluate(model: &Classifier, data: &TaskData, step: usize, train_loss: Option<f64>, device: &Device) -> CurvePoint {
    let model = model.valid();
    let device = device.clone().inner();
    CurvePoint {
        step,
        train_loss,
        val_accuracy: accuracy(&model, &data.val, &device),
        test_accuracy: accuracy(&model, &data.test, &device),
    }
}

/// The fraction of `split` that `model` classifies correctly.
pub fn accuracy(model: &Classifier, split: &Split, device: &Device) -> f64 {
    const EVAL_BATCH: usize = 256;
    let indices: Vec<usize> = (0..split.len()).collect();
    let correct: i64 = indices
        .chunks(EVAL_BATCH)
        .map(|chunk| {
            let batch = split.batch(chunk, device);
            let predicted: Tensor<1, burn::tensor::Int> = model.forward(&batch.input).argmax(1).flatten(0, 1);
            predicted.equal(batch.labels).int().sum().into_scalar::<i64>()
        })
        .sum();
    correct as f64 / split.len() as f64
}

/// Visits the training examples in a seeded random order, reshuffled every epoch.
struct BatchOrder {
    order: Vec<usize>,
    position: usize,
    rng: init::InitRng,
}

impl BatchOrder {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = init::rng(seed);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        Self {
            order,
            position: 0,
            rng,
        }
    }

    /// The next `size` indices, wrapping into a freshly shuffled epoch.
    fn next(&mut self, size: usize) -> Vec<usize> {
        (0..size)
            .map(|_| {
                if self.position == self.order.len() {
                    self.order.shuffle(&mut self.rng);
                    self.position = 0;
                }
                self.position += 1;
                self.order[self.position - 1]
            })
            .collect()
    }
}
