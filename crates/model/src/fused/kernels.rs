//! The fused ops' arithmetic on plain row-major `f32` slices, run in parallel over blocks of rows.
//!
//! Blocks have a fixed size, not one per thread, and partial sums over rows are added in block
//! order, so every result is bit-for-bit the same on any number of threads.

use rayon::prelude::*;

/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
const BLOCK_ELEMENTS: usize = 1 << 14;

/// Whole rows per task for rows of `width` elements.
fn block_rows(width: usize) -> usize {
    (BLOCK_ELEMENTS / width.max(1)).max(1)
}

/// `1 / sqrt(2)` and `1 / sqrt(2 pi)`.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `erf(x)` as a rational function, branch-free so that loops over it vectorise; absolute error
/// below 5e-7 (checked against libm in the tests). The coefficients are the minimax fit on
/// `[-4, 4]` that Eigen uses for `erf` in `float`; beyond that range `erf` is `+-1` in `f32`.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_6e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329_2e-3;
    q = q * x2 - 1.426_473_9e-2;
    x * p / q
}

/// `Phi(x)`, the standard normal CDF.
#[inline(always)]
fn normal_cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * FRAC_1_SQRT_2))
}

/// `x * Phi(x)`, elementwise.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    out.par_chunks_mut(BLOCK_ELEMENTS)
        .zip(x.par_chunks(BLOCK_ELEMENTS))
        .for_each(|(out, x)| {
            for (o, &x) in out.iter_mut().zip(x) {
                *o = x * normal_cdf(x);
            }
        });
    out
}

/// `grad * d gelu / dx = grad * (Phi(x) + x phi(x))`, elementwise.
pub fn gelu_backward(x: &[f32], grad: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    out.par_chunks_mut(BLOCK_ELEMENTS)
        .zip(x.par_chunks(BLOCK_ELEMENTS).zip(grad.par_chunks(BLOCK_ELEMENTS)))
        .for_each(|(out, (x, grad))| {
            for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad) {
                let pdf = FRAC_1_SQRT_2PI * (-0.5 * x * x).exp();
                *o = g * (normal_cdf(x) + x * pdf);
            }
        });
    out
}

/// Attention probabilities: `softmax(scores * scale + key_bias)` over each row of `keys` scores,
/// and the same probabilities times a dropout mask when one is given.
///
/// `scores` holds `key_bias.len() / keys` sequences of `rows_per_sequence` rows each; row `i`
/// takes its bias from sequence `i / rows_per_sequence`. Returns `(probs, dropped)`, `dropped`
/// empty without a mask.
pub fn attention_softmax(
    scores: &[f32],
    keys: usize,
    rows_per_sequence: usize,
    key_bias: &[f32],
    scale: f32,
    dropout: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let mut probs = vec![0.0; scores.len()];
    let rows = block_rows(keys);
    probs
        .par_chunks_mut(rows * keys)
        .enumerate()
        .for_each(|(block, probs)| {
            let first = block * rows;
            for (r, p) in probs.chunks_mut(keys).enumerate() {
                let row = first + r;
                let s = &scores[row * keys..(row + 1) * keys];
                let sequence = row / rows_per_sequence;
                let bias = &key_bias[sequence * keys..(sequence + 1) * keys];
                let mut max = f32::NEG_INFINITY;
                for ((p, &s), &b) in p.iter_mut().zip(s).zip(bias) {
                    *p = s * scale + b;
                    max = max.max(*p);
                }
                let mut sum = 0.0;
                for p in p.iter_mut() {
                    *p = (*p - max).exp();
                    sum += *p;
                }
                let inv = 1.0 / sum;
                p.iter_mut().for_each(|p| *p *= inv);
            }
        });
    let dropped = dropout.map_or_else(Vec::new, |mask| multiply(&probs, mask));
    (probs, dropped)
}

/// The gradient of [`attention_softmax`] with respect to the scores:
/// `scale * p * (g - sum(g * p))` per row, where `g` is the incoming gradient times the dropout
/// mask.
pub fn attention_softmax_backward(
    probs: &[f32],
    keys: usize,
    scale: f32,
    grad: &[f32],
    dropout: Option<&[f32]>,
) -> Vec<f32> {
    let mut out = vec![0.0; probs.len()];
    let rows = block_rows(keys);
    out.par_chunks_mut(rows * keys).enumerate().for_each(|(block, out)| {
        let first = block * rows * keys;
        for (r, o) in out.chunks_mut(keys).enumerate() {
            let at = first + r * keys;
            let p = &probs[at..at + keys];
            let g = &grad[at..at + keys];
            match dropout {
                Some(mask) => {
                    for ((o, &g), &m) in o.iter_mut().zip(g).zip(&mask[at..at + keys]) {
                        *o = g * m;
                    }
                }
                None => o.copy_from_slice(g),
            }
            let dot: f32 = o.iter().zip(p).map(|(g, p)| g * p).sum();
            for (o, &p) in o.iter_mut().zip(p) {
                *o = scale * p * (*o - dot);
            }
        }
    });
    out
}

/// A matrix operand: row-major storage read through `(row, column)` strides, so a transpose is
/// the same buffer with the strides swapped.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "{rows} x {cols} matrix from {} values",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// Matrix products at least this many multiply-adds are split over threads by `gemm` (smaller
/// ones lose more to scheduling than they gain).
const PARALLEL_MULTIPLY_ADDS: usize = 192 * 192 * 192;

/// `out = out + a b` (or `a b` with `accumulate = false`), `out` row-major `a.rows x b.cols`, on
/// the `gemm` crate's kernels (the ones flex's matmul uses).
pub fn matmul_into(out: &mut [f32], accumulate: bool, a: Matrix, b: Matrix) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert_eq!(out.len(), m * n, "output is not {m} x {n}");
    for x in [a, b] {
        // The last element read is within the buffer.
        let last = (x.rows.max(1) - 1) * x.row_stride + (x.cols.max(1) - 1) * x.col_stride;
        assert!(
            x.rows * x.cols == 0 || last < x.data.len(),
            "matrix strides run past its buffer"
        );
    }
    if m * n == 0 {
        return;
    }
    let parallelism = if m * n * k >= PARALLEL_MULTIPLY_ADDS {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element gemm reads inside `a.data` and `b.data` and
    // every element it writes inside `out`, which nothing else borrows.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `x W + b` for `x` of `rows x d_in`, `W` of `d_in x d_out`: the bias is written first and the
/// product added onto it, so the bias costs no extra pass.
pub fn linear(x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let d_out = bias.len();
    let d_in = weight.len() / d_out;
    let rows = x.len() / d_in;
    let mut out = vec![0.0; rows * d_out];
    out.par_chunks_mut(block_rows(d_out) * d_out)
        .for_each(|block| block.chunks_mut(d_out).for_each(|row| row.copy_from_slice(bias)));
    matmul_into(
        &mut out,
        true,
        Matrix::new(x, rows, d_in),
        Matrix::new(weight, d_in, d_out),
    );
    out
}

/// `sum over rows r of add(r)`, where `add(r, sums)` adds row `r`'s contribution to a `width`-long
/// accumulator. Blocks of rows are summed in parallel and the partial sums added in block order:
/// the same result on any thread count.
fn sum_over_rows(n_rows: usize, width: usize, add: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let rows = block_rows(width);
    let partials: Vec<Vec<f32>> = (0..n_rows.div_ceil(rows))
        .into_par_iter()
        .map(|block| {
            let mut sums = vec![0.0f32; width];
            (block * rows..((block + 1) * rows).min(n_rows)).for_each(|r| add(r, &mut sums));
            sums
        })
        .collect();
    let mut sums = vec![0.0f32; width];
    for partial in partials {
        sums.iter_mut().zip(partial).for_each(|(s, p)| *s += p);
    }
    sums
}

/// Column sums of a row-major matrix with `width` columns (a bias's gradient).
pub fn column_sums(values: &[f32], width: usize) -> Vec<f32> {
    sum_over_rows(values.len() / width, width, |r, sums| {
        sums.iter_mut()
            .zip(&values[r * width..(r + 1) * width])
            .for_each(|(s, v)| *s += v);
    })
}

/// `a * b`, elementwise.
pub fn multiply(a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; a.len()];
    out.par_chunks_mut(BLOCK_ELEMENTS)
        .zip(a.par_chunks(BLOCK_ELEMENTS).zip(b.par_chunks(BLOCK_ELEMENTS)))
        .for_each(|(out, (a, b))| {
            for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                *o = a * b;
            }
        });
    out
}

/// What [`residual_layer_norm`] keeps for its backward pass.
#[derive(Debug)]
pub struct LayerNormSaved {
    /// The normalised input `(v - mean) / std`, row-major like the input.
    pub normalized: Vec<f32>,
    /// `1 / std` per row.
    pub inv_std: Vec<f32>,
}

/// `LayerNorm(x * mask + residual)` over rows of `width`: `gamma * (v - mean) / sqrt(var + eps)
/// + beta` with the biased variance, as `torch.nn.LayerNorm`.
pub fn residual_layer_norm(
    x: &[f32],
    residual: &[f32],
    dropout: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f32,
) -> (Vec<f32>, LayerNormSaved) {
    let width = gamma.len();
    let n_rows = x.len() / width;
    let mut out = vec![0.0; x.len()];
    let mut normalized = vec![0.0; x.len()];
    let mut inv_std = vec![0.0; n_rows];
    let rows = block_rows(width);
    out.par_chunks_mut(rows * width)
        .zip(normalized.par_chunks_mut(rows * width))
        .zip(inv_std.par_chunks_mut(rows))
        .enumerate()
        .for_each(|(block, ((out, normalized), inv_std))| {
            let first = block * rows * width;
            for (r, ((y, v), inv)) in out
                .chunks_mut(width)
                .zip(normalized.chunks_mut(width))
                .zip(inv_std.iter_mut())
                .enumerate()
            {
                let at = first + r * width;
                let (x, res) = (&x[at..at + width], &residual[at..at + width]);
                match dropout {
                    Some(mask) => {
                        for (((v, &x), &m), &res) in v.iter_mut().zip(x).zip(&mask[at..at + width]).zip(res) {
                            *v = x * m + res;
                        }
                    }
                    None => {
                        for ((v, &x), &res) in v.iter_mut().zip(x).zip(res) {
                            *v = x + res;
                        }
                    }
                }
                let mean = v.iter().sum::<f32>() / width as f32;
                let var = v.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
                *inv = 1.0 / (var + epsilon).sqrt();
                for (((y, v), &g), &b) in y.iter_mut().zip(v.iter_mut()).zip(gamma).zip(beta) {
                    *v = (*v - mean) * *inv;
                    *y = *v * g + b;
                }
            }
        });
    (out, LayerNormSaved { normalized, inv_std })
}

/// `(d gamma, d beta)`.
pub type GammaBeta = (Vec<f32>, Vec<f32>);

/// Gradients of [`residual_layer_norm`]: `(d v, d gamma, d beta)`, where `d v` is the residual's
/// gradient (the input's is `d v * mask`). The parameters' gradients are computed only when
/// asked for.
pub fn residual_layer_norm_backward(
    saved: &LayerNormSaved,
    gamma: &[f32],
    grad: &[f32],
    parameter_grads: bool,
) -> (Vec<f32>, Option<GammaBeta>) {
    let width = gamma.len();
    let mut dv = vec![0.0; grad.len()];
    let rows = block_rows(width);
    dv.par_chunks_mut(rows * width).enumerate().for_each(|(block, dv)| {
        let first = block * rows;
        for (r, dv) in dv.chunks_mut(width).enumerate() {
            let row = first + r;
            let at = row * width;
            let (g, xhat) = (&grad[at..at + width], &saved.normalized[at..at + width]);
            // d xhat = g * gamma; d v = inv_std * (d xhat - mean(d xhat) - xhat * mean(d xhat * xhat)).
            let (mut sum, mut sum_xhat) = (0.0f32, 0.0f32);
            for ((&g, &gamma), &xhat) in g.iter().zip(gamma).zip(xhat) {
                let d = g * gamma;
                sum += d;
                sum_xhat += d * xhat;
            }
            let (mean, mean_xhat) = (sum / width as f32, sum_xhat / width as f32);
            let inv = saved.inv_std[row];
            for (((dv, &g), &gamma), &xhat) in dv.iter_mut().zip(g).zip(gamma).zip(xhat) {
                *dv = inv * (g * gamma - mean - xhat * mean_xhat);
            }
        }
    });
    let parameters = parameter_grads.then(|| {
        let d_gamma = sum_over_rows(grad.len() / width, width, |r, sums| {
            let (g, xhat) = (
                &grad[r * width..(r + 1) * width],
                &saved.normalized[r * width..(r + 1) * width],
            );
            for ((s, &g), &xhat) in sums.iter_mut().zip(g).zip(xhat) {
                *s += g * xhat;
            }
        });
        (d_gamma, column_sums(grad, width))
    });
    (dv, parameters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_libm() {
        let worst = (-60_000..=60_000)
            .map(|i| i as f32 * 1e-4)
            .map(|x| (erf(x) as f64 - libm::erf(x as f64)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 5e-7, "max |erf error| = {worst}");
    }

    #[test]
    fn gelu_backward_matches_central_differences() {
        let x: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.1).collect();
        let ones = vec![1.0; x.len()];
        let analytic = gelu_backward(&x, &ones);
        for (i, &x) in x.iter().enumerate() {
            let h = 1e-3f64;
            let gelu64 = |x: f64| x * 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
            let numeric = (gelu64(x as f64 + h) - gelu64(x as f64 - h)) / (2.0 * h);
            assert!(
                (analytic[i] as f64 - numeric).abs() < 1e-5,
                "x = {x}: {} vs {numeric}",
                analytic[i]
            );
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let width = 384;
        let x: Vec<f32> = (0..width * 300)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let gamma: Vec<f32> = (0..width).map(|i| 1.0 + i as f32 / width as f32).collect();
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let (_, saved) = residual_layer_norm(&x, &x, None, &gamma, &gamma, 1e-12);
                residual_layer_norm_backward(&saved, &gamma, &x, true).1.unwrap()
            })
        };
        assert_eq!(run(1), run(3));
    }
}
