//! Stacked trials: `K` copies ("members") of a model's trainable part, trained side by side in
//! one pass.
//!
//! The trials of a learning-rate sweep often differ only in their rates: the same base, the same
//! initial adapters and head (the same seed), the same batches. Such trials run as one model whose
//! adapters and head hold `K` members stacked along their rows, member-major:
//!
//! | tensor | one trial | `K` members |
//! |---|---|---|
//! | adapter `A` | `[d_in, r]` | `[K * d_in, r]` |
//! | adapter `B` | `[r, d_out]` | `[K * r, d_out]` |
//! | head weight | `[d_in, n_classes]` | `[K * d_in, n_classes]` |
//! | head bias | `[n_classes]` | `[K * n_classes]` |
//!
//! The input batch is repeated `K` times along its first axis (rows `k * batch .. (k + 1) *
//! batch` belong to member `k`). Every frozen layer then applies its weight to all members'
//! activations in one large matmul, and every stacked layer applies member `k`'s slice to member
//! `k`'s rows in one batched matmul. No layer mixes rows of different examples, so the members
//! never see each other. With `K = 1` the tensors have exactly a plain model's shapes and the
//! ordinary code path runs.
//!
//! Parameter groups keep their meaning (a head bias is still 1-D, `A` and `B` are still 2-D), and
//! every stacked tensor viewed as `[K, numel / K]` has member `k` in row `k`: the optimizer uses
//! that view to give each member its own learning rates.

use burn::module::Param;
use burn::tensor::{Int, Tensor, module};

use crate::{LoraError, LoraModel, fused, param_table};

/// `x W + b`, member by member: member `k`'s rows of `x` meet member `k`'s slice of `weight` and
/// `bias`. The number of members is `weight`'s rows over `x`'s last axis.
///
/// # Shapes
/// - `x`: `[K * batch, ..., d_in]`
/// - `weight`: `[K * d_in, d_out]`, `bias`: `[K * d_out]`
/// - output: `[K * batch, ..., d_out]`
///
/// # Panics
/// If the shapes do not split into the same `K` members.
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    let mut dims = x.dims();
    let d_in = dims[D - 1];
    let [rows, d_out] = weight.dims();
    assert!(
        rows.is_multiple_of(d_in),
        "weight rows {rows} are not a multiple of the input width {d_in}"
    );
    let members = rows / d_in;
    if members == 1 {
        return fused::linear(x, weight, bias);
    }
    let n = dims[..D - 1].iter().product::<usize>();
    assert!(
        n.is_multiple_of(members),
        "{n} input rows do not split into {members} members"
    );
    let y = x
        .reshape([members, n / members, d_in])
        .matmul(weight.reshape([members, d_in, d_out]));
    let y = match bias {
        Some(bias) => y + bias.reshape([members, 1, d_out]),
        None => y,
    };
    dims[D - 1] = d_out;
    y.reshape(dims)
}

/// Row lookup, member by member: member `k`'s ids index member `k`'s `vocab` rows of `table`.
///
/// # Shapes
/// - `table`: `[K * vocab, d]`
/// - `ids`: `[K * batch, seq]`
/// - output: `[K * batch, seq, d]`
pub fn embedding(table: Tensor<2>, ids: Tensor<2, Int>, vocab: usize) -> Tensor<3> {
    let members = table.dims()[0] / vocab;
    if members == 1 {
        return module::embedding(table, ids);
    }
    let [rows, seq] = ids.dims();
    // Member k's ids move to rows k * vocab ..: an offset per row of `ids`.
    let offsets = Tensor::<1, Int>::arange(0..members as i64, &ids.device())
        .mul_scalar(vocab as i64)
        .reshape([members, 1])
        .repeat_dim(1, rows / members)
        .reshape([rows, 1]);
    module::embedding(table, ids + offsets.repeat_dim(1, seq))
}

/// `model` with `members` identical copies of its adapters and head, ready to train `members`
/// trials at once. Trainability is kept.
///
/// Fails if a trainable parameter lies outside the adapters and heads, since the members could
/// not share it.
pub fn stack<M: LoraModel>(mut model: M, members: usize) -> Result<M, LoraError> {
    assert!(members >= 1, "at least one member");
    let stacked = stacked_ids(&mut model);
    if let Some(shared) = param_table(&model)
        .into_iter()
        .find(|p| p.trainable && !stacked.contains(&p.id))
    {
        return Err(LoraError::SharedTrainable { path: shared.path });
    }
    if members == 1 {
        return Ok(model);
    }
    Ok(map_stacked(model, |t| t.repeat_dim(0, members)))
}

/// Member `k` of a model stacked with `members` members, as a plain model (for saving, merging or
/// inspecting one trial).
pub fn member<M: LoraModel>(model: M, k: usize, members: usize) -> M {
    assert!(k < members, "member {k} of {members}");
    map_stacked(model, |t| {
        let rows = t.dims()[0] / members;
        t.narrow(0, k * rows, rows)
    })
}

fn stacked_ids<M: LoraModel>(model: &mut M) -> Vec<burn::module::ParamId> {
    let mut ids = Vec::new();
    for site in model.linear_sites() {
        if let Some(adapter) = &site.layer.adapter {
            ids.extend([adapter.lora_a.id, adapter.lora_b.id]);
        }
    }
    for site in model.embedding_sites() {
        if let Some(adapter) = &site.layer.adapter {
            ids.extend([adapter.lora_a.id, adapter.lora_b.id]);
        }
    }
    for site in model.head_sites() {
        ids.push(site.layer.weight.id);
        ids.extend(site.layer.bias.as_ref().map(|b| b.id));
    }
    ids
}

/// Applies `reshape_rows` to every stacked tensor (outside autodiff), keeping ids and
/// trainability.
fn map_stacked<M: LoraModel>(mut model: M, reshape_rows: impl Fn(Tensor<2>) -> Tensor<2>) -> M {
    let rows_1d = |t: Tensor<1>| {
        let n = t.dims()[0];
        reshape_rows(t.reshape([n, 1])).flatten(0, 1)
    };
    for site in model.linear_sites() {
        if let Some(adapter) = site.layer.adapter.as_mut() {
            remap(&mut adapter.lora_a, &reshape_rows);
            remap(&mut adapter.lora_b, &reshape_rows);
        }
    }
    for site in model.embedding_sites() {
        if let Some(adapter) = site.layer.adapter.as_mut() {
            remap(&mut adapter.lora_a, &reshape_rows);
            remap(&mut adapter.lora_b, &reshape_rows);
        }
    }
    for site in model.head_sites() {
        remap(&mut site.layer.weight, &reshape_rows);
        if let Some(bias) = site.layer.bias.as_mut() {
            remap(bias, rows_1d);
        }
    }
    model
}

fn remap<const D: usize>(param: &mut Param<Tensor<D>>, f: impl Fn(Tensor<D>) -> Tensor<D>) {
    let trainable = param.val().is_require_grad();
    *param = param.clone().map(|t| {
        // On the inner backend: the result is a fresh leaf of the autodiff graph.
        let t = Tensor::from_inner(f(t.inner()));
        if trainable { t.require_grad() } else { t }
    });
}

/// The number of members of a model stacked by [`stack`]: `A`'s rows over the layer's input
/// width at the first adapter. `None` for a model without adapters.
pub fn count<M: LoraModel>(model: &mut M) -> Option<usize> {
    let site = model.linear_sites().into_iter().find(|s| s.layer.adapter.is_some())?;
    let [d_in, _] = site.layer.dims();
    Some(site.layer.adapter.as_ref()?.lora_a.dims()[0] / d_in)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{self, rng};
    use crate::models::MlpConfig;
    use crate::test_util::{assert_close, values};
    use crate::{AttachConfig, LoraConfig, attach};
    use burn::tensor::Device;

    #[test]
    fn member_linear_matches_each_slice() {
        let device = Device::flex();
        let x: Tensor<3> = init::normal([6, 2, 4], 1.0, &mut rng(0), &device);
        let w: Tensor<2> = init::normal([12, 5], 1.0, &mut rng(1), &device);
        let b: Tensor<1> = init::normal([15], 1.0, &mut rng(2), &device);
        let stacked = values(linear(x.clone(), w.clone(), Some(b.clone())));
        for k in 0..3 {
            let expected = module::linear(
                x.clone().narrow(0, 2 * k, 2),
                w.clone().narrow(0, 4 * k, 4),
                Some(b.clone().narrow(0, 5 * k, 5)),
            );
            assert_close(&stacked[20 * k..20 * (k + 1)], &values(expected), 1e-5);
        }
    }

    #[test]
    fn member_embedding_reads_each_members_table() {
        let device = Device::flex();
        let table: Tensor<2> = init::normal([2 * 7, 3], 1.0, &mut rng(0), &device);
        let ids = Tensor::<2, Int>::from_data([[0, 6], [1, 2], [0, 6], [5, 5]], &device);
        let out = values(embedding(table.clone(), ids.clone(), 7));
        for k in 0..2 {
            let expected = module::embedding(table.clone().narrow(0, 7 * k, 7), ids.clone().narrow(0, 2 * k, 2));
            assert_close(&out[12 * k..12 * (k + 1)], &values(expected), 0.0);
        }
    }

    #[test]
    fn stack_then_member_round_trips_and_shared_trainables_are_refused() {
        let device = Device::flex().autodiff();
        let model = MlpConfig::new(3, vec![4], 2).init(&mut rng(0), &device);
        let config = AttachConfig::new(LoraConfig::new(2), vec!["input".into()]);
        let adapted = attach(model.clone(), &config, &mut rng(1)).unwrap();
        let mut stacked = stack(adapted.clone(), 3).unwrap();
        assert_eq!(count(&mut stacked), Some(3));
        assert_eq!(stacked.head.weight.dims(), [12, 2]);
        assert!(stacked.head.weight.val().is_require_grad(), "trainability is kept");
        let back = member(stacked, 2, 3);
        assert_eq!(values(back.head.weight.val()), values(adapted.head.weight.val()));
        let a = |m: &crate::models::Mlp| values(m.input.adapter.as_ref().unwrap().lora_a.val());
        assert_eq!(a(&back), a(&adapted));

        let err = stack(model, 2).unwrap_err().to_string();
        assert!(err.contains("`input.base.weight`"), "{err}");
    }
}
