//! Row normalizations: RMSNorm and LayerNorm, computed as ggml's CPU backend does.
//!
//! Input `x` is `[rows, n]`; each row is normalized independently and multiplied by the
//! per-feature `weight` (and plus `bias` for LayerNorm), both of length `n` — the
//! `ggml_rms_norm`/`ggml_norm` op followed by llama.cpp's `ggml_mul(…, weight)` (and
//! `ggml_add(…, bias)`). Rows run in parallel when there is enough work.

use rayon::prelude::*;

use super::{check_len, check_nonzero, checked_mul, PAR_MIN_ELEMENTS};
use crate::Result;

/// Runs `f(x_row, out_row)` for every row of width `n`, in parallel for large inputs.
fn for_each_row(x: &[f32], out: &mut [f32], n: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) {
    if x.len() >= PAR_MIN_ELEMENTS && x.len() > n {
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .for_each(|(o, r)| f(r, o));
    } else {
        for (o, r) in out.chunks_mut(n).zip(x.chunks(n)) {
            f(r, o);
        }
    }
}

/// RMSNorm: for each row of `x` (`[rows, n]`),
/// `out[j] = (x[j] · scale) · weight[j]` with `scale = 1 / sqrtf(mean + eps)`.
///
/// Exactly ggml's `ggml_compute_forward_rms_norm_f32`:
///
/// ```text
/// sum   = Σ_j f64(x[j] · x[j])   // square in f32, accumulate in f64 (ggml_float)
/// mean  = f32(sum / n)           // rounded to f32
/// scale = 1.0f / sqrtf(mean + eps)   // eps added in f32, inside the square root
/// ```
///
/// Errors if `n == 0`, or `x`, `out` are not `rows · n` long, or `weight` is not `n` long.
pub fn rms_norm(
    x: &[f32],
    weight: &[f32],
    out: &mut [f32],
    rows: usize,
    n: usize,
    eps: f32,
) -> Result<()> {
    const OP: &str = "rms_norm";
    check_nonzero(OP, "row length n", n)?;
    let total = checked_mul(OP, "rows × n", rows, n)?;
    check_len(OP, "x", x.len(), total)?;
    check_len(OP, "output", out.len(), total)?;
    check_len(OP, "weight", weight.len(), n)?;

    for_each_row(x, out, n, |x, out| {
        let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0f32 / (mean + eps).sqrt();
        for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
            *o = v * scale * w;
        }
    });
    Ok(())
}

/// LayerNorm: for each row of `x` (`[rows, n]`),
/// `out[j] = ((x[j] − mean) · scale) · weight[j] + bias[j]` with
/// `scale = 1 / sqrtf(variance + eps)` (bias omitted when `None`).
///
/// Exactly ggml's `ggml_compute_forward_norm_f32` (two-pass, centred variance):
///
/// ```text
/// sum      = f32(Σ_j f64(x[j]))            // ggml_vec_sum_f32: f64 sum, rounded to f32
/// mean     = sum / n                        // in f32
/// d[j]     = x[j] − mean                    // in f32
/// variance = f32(Σ_j f64(d[j] · d[j]) / n)  // ggml_vec_cvar_f32: square in f32, sum in f64
/// scale    = 1.0f / sqrtf(variance + eps)
/// ```
///
/// Errors if `n == 0`, or `x`, `out` are not `rows · n` long, or `weight` (or `bias`) is
/// not `n` long.
pub fn layer_norm(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    rows: usize,
    n: usize,
    eps: f32,
) -> Result<()> {
    const OP: &str = "layer_norm";
    check_nonzero(OP, "row length n", n)?;
    let total = checked_mul(OP, "rows × n", rows, n)?;
    check_len(OP, "x", x.len(), total)?;
    check_len(OP, "output", out.len(), total)?;
    check_len(OP, "weight", weight.len(), n)?;
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), n)?;
    }

    for_each_row(x, out, n, |x, out| {
        let sum = x.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
        let mean = sum / n as f32;
        let mut sum_sq = 0.0f64;
        for (o, &v) in out.iter_mut().zip(x) {
            let d = v - mean;
            *o = d;
            sum_sq += f64::from(d * d);
        }
        let variance = (sum_sq / n as f64) as f32;
        let scale = 1.0f32 / (variance + eps).sqrt();
        for (j, o) in out.iter_mut().enumerate() {
            let y = *o * scale * weight[j];
            *o = match bias {
                Some(b) => y + b[j],
                None => y,
            };
        }
    });
    Ok(())
}
