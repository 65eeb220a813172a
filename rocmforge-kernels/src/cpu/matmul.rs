//! Matrix × vector (decode) and matrix × matrix (prefill) with quantized weights and `f32`
//! activations.
//!
//! With `W` a [`WeightMatrix`] of `rows × cols`:
//!
//! * [`matvec`]: `y[r] = Σ_c W[r, c] · x[c]`, `x` of `cols`, `y` of `rows` values;
//! * [`matmul`]: `Y[t, r] = Σ_c W[r, c] · X[t, c]` for `n_tokens` tokens, `X` is
//!   `[n_tokens, cols]` and `Y` is `[n_tokens, rows]` (one `matvec` per token).
//!
//! `W[r, c]` is the value ggml's dequantization gives
//! ([`dequantize_row`]). Each dot product accumulates in
//! `f64` and is rounded once to `f32` (see the [`cpu`](super) conventions), so the result
//! is the correctly rounded product of the dequantized weights and the activations, for
//! every weight type and independent of thread count. (ggml itself quantizes the
//! activations to Q8 for quantized weights; this reference does not.)
//!
//! Work is split over blocks of rows with rayon; each block of rows is dequantized once
//! and reused for every token.

use rayon::prelude::*;

use super::weights::WeightMatrix;
use super::{check_len, checked_mul, dot_f64};
use crate::quant::dequantize_row;
use crate::Result;

/// Rows per rayon task: enough that one block's dequantized rows fill about 128 KiB, at
/// least 1 and at most 64.
fn rows_per_task(cols: usize) -> usize {
    (32 * 1024 / cols.max(1)).clamp(1, 64)
}

/// `y = W·x`: `y[r] = Σ_c W[r, c] · x[c]`, accumulated in `f64`.
///
/// Errors if `x` is not `cols` long, `y` is not `rows` long, or the weight type cannot be
/// dequantized ([`Error::UnsupportedType`](crate::Error::UnsupportedType)).
pub fn matvec(w: &WeightMatrix<'_>, x: &[f32], y: &mut [f32]) -> Result<()> {
    const OP: &str = "matvec";
    check_len(OP, "x", x.len(), w.cols())?;
    check_len(OP, "y", y.len(), w.rows())?;
    let per_task = rows_per_task(w.cols());
    y.par_chunks_mut(per_task).enumerate().try_for_each_init(
        || vec![0.0f32; w.cols()],
        |row, (block, ys)| {
            for (k, yr) in ys.iter_mut().enumerate() {
                dequantize_row(w.ty(), w.row(block * per_task + k), row)?;
                *yr = dot_f64(row, x) as f32;
            }
            Ok(())
        },
    )
}

/// `Y[t] = W·X[t]` for `n_tokens` tokens: `X` is `[n_tokens, cols]`, `Y` is
/// `[n_tokens, rows]`; every dot product accumulates in `f64`. Token `t` of the result is
/// bit-identical to [`matvec`] of `X[t]`.
///
/// Errors if `x` is not `n_tokens · cols` long, `y` is not `n_tokens · rows` long, or the
/// weight type cannot be dequantized
/// ([`Error::UnsupportedType`](crate::Error::UnsupportedType)).
pub fn matmul(w: &WeightMatrix<'_>, x: &[f32], n_tokens: usize, y: &mut [f32]) -> Result<()> {
    const OP: &str = "matmul";
    let (rows, cols) = (w.rows(), w.cols());
    check_len(
        OP,
        "x",
        x.len(),
        checked_mul(OP, "n_tokens × cols", n_tokens, cols)?,
    )?;
    check_len(
        OP,
        "y",
        y.len(),
        checked_mul(OP, "n_tokens × rows", n_tokens, rows)?,
    )?;
    if n_tokens == 0 {
        return Ok(());
    }
    if n_tokens == 1 {
        return matvec(w, x, y);
    }

    // Each task dequantizes a block of rows once and multiplies it with every token,
    // returning its results token-major (`[n_tokens, block rows]`); they are then scattered
    // into `y`.
    let per_task = rows_per_task(cols);
    let n_blocks = rows.div_ceil(per_task);
    let blocks: Vec<Vec<f32>> = (0..n_blocks)
        .into_par_iter()
        .map(|block| -> Result<Vec<f32>> {
            let r0 = block * per_task;
            let n = per_task.min(rows - r0);
            let mut wrows = vec![0.0f32; n * cols];
            for (k, dst) in wrows.chunks_mut(cols).enumerate() {
                dequantize_row(w.ty(), w.row(r0 + k), dst)?;
            }
            let mut out = Vec::with_capacity(n_tokens * n);
            for xt in x.chunks(cols) {
                out.extend(wrows.chunks(cols).map(|wr| dot_f64(wr, xt) as f32));
            }
            Ok(out)
        })
        .collect::<Result<_>>()?;

    for (block, vals) in blocks.iter().enumerate() {
        let r0 = block * per_task;
        let n = vals.len() / n_tokens;
        for (t, chunk) in vals.chunks(n).enumerate() {
            y[t * rows + r0..][..n].copy_from_slice(chunk);
        }
    }
    Ok(())
}
