//! The training loop, shared by base pretraining and every trial. It reads top to bottom in a
//! fixed order: evaluate (every `eval_interval` steps), forward, check for divergence, backward,
//! step; and a final evaluation.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};
use loraplus_data::{Split, TaskData};
use loraplus_model::init;
use loraplus_optim::LoraPlus;
use rand::seq::SliceRandom;

use super::zoo::Classifier;
use crate::store::{CurvePoint, Status};

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
    /// Val and test accuracy of the model before training, when already known: every member
    /// starts from it, so step 0 is recorded without evaluating again.
    pub start: Option<(f64, f64)>,
}

/// How one member of a [`fit`] ran.
#[derive(Debug, Clone, Default)]
pub struct MemberOutcome {
    /// Evaluation points, the last at the final step (or the last before stopping).
    pub curve: Vec<CurvePoint>,
    /// How the run ended; `None` while it runs.
    pub status: Option<Status>,
    /// Why it stopped early, if it did.
    pub message: Option<String>,
    /// Updates taken.
    pub steps_run: usize,
    /// The first loss (the reference for divergence).
    first_loss: Option<f64>,
    /// Losses since the last evaluation.
    window: Vec<f64>,
}

/// The result of [`fit`].
pub struct FitOutcome {
    /// The trained model (as it was when the run stopped).
    pub model: Classifier,
    /// One per stacked member (one for a plain model).
    pub members: Vec<MemberOutcome>,
}

/// Trains `model` with `optim` on `data.train` as `plan` says.
///
/// `model` may hold several stacked trials (`optim.members()` of them; see
/// `loraplus_model::members`): they see the same batches, and each is evaluated, checked for
/// divergence and stopped on its own. The loss is the sum of the members' mean losses, so each
/// member's gradient is exactly its own loss's.
///
/// Losses stay on the device until the next evaluation and are read then, one transfer per
/// evaluation instead of one per step (on a GPU, a read waits for every queued kernel). A member
/// whose loss diverged in between is stopped at its first bad step, and its record is what it
/// would have been had it been checked at every step.
pub fn fit(mut model: Classifier, mut optim: LoraPlus, data: &TaskData, plan: &FitPlan, device: &Device) -> FitOutcome {
    let k = optim.members();
    let mut order = BatchOrder::new(data.train.len(), plan.data_seed);
    let mut members = vec![MemberOutcome::default(); k];
    let mut unread: Vec<Tensor<1>> = Vec::new();
    for step in 0..plan.steps {
        if step % plan.eval_interval == 0 {
            check_losses(&mut unread, step, &mut members, &mut optim, plan);
            if members.iter().all(|m| m.status.is_some()) {
                return FitOutcome { model, members };
            }
            let (val, test) = match plan.start.filter(|_| step == 0) {
                Some((val, test)) => (vec![val; k], vec![test; k]),
                None => evaluate(&model, data, k, device),
            };
            record_point(step, &val, &test, &mut members);
        }
        let batch = data.train.batch(&order.next(plan.batch_size), device);
        let losses = member_losses(model.forward(&batch.input.repeat(k)), batch.labels, k);
        unread.push(losses.clone().detach());
        let grads = GradientsParams::from_grads(losses.sum().backward(), &model);
        model = optim.step(model, grads);
    }
    check_losses(&mut unread, plan.steps, &mut members, &mut optim, plan);
    let (val, test) = evaluate(&model, data, k, device);
    record_point(plan.steps, &val, &test, &mut members);
    for member in members.iter_mut().filter(|m| m.status.is_none()) {
        member.status = Some(Status::Ok);
        member.steps_run = plan.steps;
    }
    FitOutcome { model, members }
}

/// Reads the `[k]` losses of the steps before `end` not yet read, adds them to the running
/// members' windows, and stops each member at its first step whose loss is non-finite or above
/// `diverge_factor` times its first loss.
fn check_losses(
    unread: &mut Vec<Tensor<1>>,
    end: usize,
    members: &mut [MemberOutcome],
    optim: &mut LoraPlus,
    plan: &FitPlan,
) {
    if unread.is_empty() {
        return;
    }
    let first_step = end - unread.len();
    let values: Vec<f64> = Tensor::stack::<2>(std::mem::take(unread), 0)
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("f64 losses");
    for (i, losses) in values.chunks(members.len()).enumerate() {
        let step = first_step + i;
        for (m, (member, &loss)) in members.iter_mut().zip(losses).enumerate() {
            if member.status.is_some() {
                continue;
            }
            let first = *member.first_loss.get_or_insert(loss);
            if !loss.is_finite() || loss > plan.diverge_factor * first {
                member.status = Some(Status::Diverged);
                member.message = Some(format!("loss {loss} at step {step} (first loss {first:.4})"));
                member.steps_run = step;
                optim.stop_member(m);
            } else {
                member.window.push(loss);
            }
        }
    }
}

/// Each member's mean cross-entropy over its rows of `logits`.
///
/// # Shapes
/// - `logits`: `[k * batch, n_classes]`, `labels`: `[batch]`
/// - output: `[k]`
fn member_losses(logits: Tensor<2>, labels: Tensor<1, Int>, k: usize) -> Tensor<1> {
    let rows = logits.dims()[0];
    let picked = log_softmax(logits, 1).gather(1, labels.repeat_dim(0, k).reshape([rows, 1]));
    picked.neg().reshape([k, rows / k]).mean_dim(1).flatten(0, 1)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The val and test accuracy of each of the `k` stacked members of `model`.
pub fn evaluate(model: &Classifier, data: &TaskData, k: usize, device: &Device) -> (Vec<f64>, Vec<f64>) {
    let model = model.valid();
    let device = device.clone().inner();
    (
        accuracy(&model, &data.val, k, &device),
        accuracy(&model, &data.test, k, &device),
    )
}

/// Appends an evaluation point (each member's `val` and `test` accuracy) to the curve of every
/// member still running.
fn record_point(step: usize, val: &[f64], test: &[f64], members: &mut [MemberOutcome]) {
    for (m, member) in members.iter_mut().enumerate().filter(|(_, m)| m.status.is_none()) {
        member.curve.push(CurvePoint {
            step,
            train_loss: mean(&member.window),
            val_accuracy: val[m],
            test_accuracy: test[m],
        });
        member.window.clear();
    }
}

/// The fraction of `split` that each of the `k` stacked members of `model` classifies correctly.
pub fn accuracy(model: &Classifier, split: &Split, k: usize, device: &Device) -> Vec<f64> {
    // About 256 rows per forward pass, whatever the number of members.
    let chunk = (256 / k).max(1);
    let indices: Vec<usize> = (0..split.len()).collect();
    // Counted on the device and read once.
    let correct = indices
        .chunks(chunk)
        .map(|part| {
            let batch = split.batch(part, device);
            let predicted: Tensor<1, Int> = model.forward(&batch.input.repeat(k)).argmax(1).flatten(0, 1);
            predicted
                .equal(batch.labels.repeat_dim(0, k))
                .int()
                .reshape([k, part.len()])
                .sum_dim(1)
        })
        .reduce(|a, b| a + b)
        .expect("a split is never empty");
    let correct = correct
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .expect("counts");
    correct.into_iter().map(|c| c as f64 / split.len() as f64).collect()
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
