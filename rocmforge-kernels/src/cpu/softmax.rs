//! Row-wise softmax with an optional input scale, numerically stable (max subtracted),
//! computed as ggml's `ggml_compute_forward_soft_max_f32` (without mask/ALiBi):
//!
//! ```text
//! w[j]  = x[j] · scale                       // f32
//! m     = max_j w[j]
//! e[j]  = expf(w[j] − m)                     // f32
//! sum   = Σ_j f64(e[j])                      // accumulated in f64 (ggml_float)
//! y[j]  = e[j] · f32(1 / sum)                // the reciprocal is taken in f64, rounded once
//! ```
//!
//! Entries equal to `-inf` get probability 0 (masking). A row whose entries are all
//! `-inf` (or that contains a NaN) has no distribution and comes out as NaN, as in ggml.

use rayon::prelude::*;

use super::{check_len, check_nonzero, checked_mul, PAR_MIN_ELEMENTS};
use crate::Result;

/// Softmax of one row in place.
pub(crate) fn softmax_row(row: &mut [f32], scale: f32) {
    let mut max = f32::NEG_INFINITY;
    for v in row.iter_mut() {
        *v *= scale;
        max = max.max(*v);
    }
    let mut sum = 0.0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Softmax of each row of `x` (`[rows, n]`) in place, after multiplying by `scale`
/// (pass `1.0` for a plain softmax); see the [module documentation](self).
///
/// Errors if `n == 0` or `x` is not `rows · n` long.
pub fn softmax_inplace(x: &mut [f32], rows: usize, n: usize, scale: f32) -> Result<()> {
    const OP: &str = "softmax";
    check_nonzero(OP, "row length n", n)?;
    let total = checked_mul(OP, "rows × n", rows, n)?;
    check_len(OP, "x", x.len(), total)?;
    if total >= PAR_MIN_ELEMENTS && rows > 1 {
        x.par_chunks_mut(n).for_each(|row| softmax_row(row, scale));
    } else {
        x.chunks_mut(n).for_each(|row| softmax_row(row, scale));
    }
    Ok(())
}

/// Softmax of each row of `x` (`[rows, n]`) into `out`, after multiplying by `scale`
/// (pass `1.0` for a plain softmax); see the [module documentation](self).
///
/// Errors if `n == 0` or `x` or `out` is not `rows · n` long.
pub fn softmax(x: &[f32], out: &mut [f32], rows: usize, n: usize, scale: f32) -> Result<()> {
    const OP: &str = "softmax";
    check_nonzero(OP, "row length n", n)?;
    let total = checked_mul(OP, "rows × n", rows, n)?;
    check_len(OP, "x", x.len(), total)?;
    check_len(OP, "output", out.len(), total)?;
    out.copy_from_slice(x);
    softmax_inplace(out, rows, n, scale)
}
