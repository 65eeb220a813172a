//! Element-wise ops on `f32` vectors: residual add, multiply, scale, SiLU, GELU, SwiGLU.
//!
//! All operands of one call have the same length (no broadcasting); a mismatch is an
//! [`Error::Shape`](crate::Error::Shape). Each output element depends only on the input
//! elements at the same index, computed in `f32` exactly as written below, so a GPU kernel
//! using the same libm-quality `expf`/`tanhf` should agree to within a few ulps.
//! Long vectors are split over rayon threads.

use rayon::prelude::*;

use super::{check_len, PAR_CHUNK, PAR_MIN_ELEMENTS};
use crate::Result;

/// `sqrt(2/π)`, ggml's `SQRT_2_OVER_PI` literal verbatim (it rounds to the same `f32`).
#[allow(clippy::excessive_precision)]
const SQRT_2_OVER_PI: f32 = 0.79788456080286535587989211986876;
/// The cubic coefficient of the tanh approximation of GELU (ggml's `GELU_COEF_A`).
const GELU_COEF_A: f32 = 0.044_715;

/// SiLU of one value: `x / (1 + e^(-x))`, in `f32` (ggml's `ggml_silu_f32`).
#[inline]
pub fn silu_f32(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU of one value, ggml's tanh approximation (`ggml_gelu_f32`), in `f32`:
/// `0.5·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²)))`.
///
/// ggml's CPU backend may instead read a table of this function sampled at every f16
/// value (`GGML_GELU_FP16`); that table is an approximation of this formula, which is the
/// reference.
#[inline]
pub fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// Applies `f` to each `(a[i], b[i])`, writing `out[i]`; parallel for long vectors.
fn map2(
    op: &'static str,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<()> {
    check_len(op, "second operand", b.len(), a.len())?;
    check_len(op, "output", out.len(), a.len())?;
    let run = |out: &mut [f32], a: &[f32], b: &[f32]| {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    };
    if out.len() >= PAR_MIN_ELEMENTS {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(a.par_chunks(PAR_CHUNK))
            .zip(b.par_chunks(PAR_CHUNK))
            .for_each(|((o, a), b)| run(o, a, b));
    } else {
        run(out, a, b);
    }
    Ok(())
}

/// Applies `f` to each `(acc[i], b[i])`, writing `acc[i]`; parallel for long vectors.
fn update2(
    op: &'static str,
    acc: &mut [f32],
    b: &[f32],
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<()> {
    check_len(op, "second operand", b.len(), acc.len())?;
    let run = |acc: &mut [f32], b: &[f32]| {
        for (o, &y) in acc.iter_mut().zip(b) {
            *o = f(*o, y);
        }
    };
    if acc.len() >= PAR_MIN_ELEMENTS {
        acc.par_chunks_mut(PAR_CHUNK)
            .zip(b.par_chunks(PAR_CHUNK))
            .for_each(|(o, b)| run(o, b));
    } else {
        run(acc, b);
    }
    Ok(())
}

/// Applies `f` to each `x[i]`, writing `out[i]`; parallel for long vectors.
fn map1(op: &'static str, x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Sync) -> Result<()> {
    check_len(op, "output", out.len(), x.len())?;
    let run = |out: &mut [f32], x: &[f32]| {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f(v);
        }
    };
    if out.len() >= PAR_MIN_ELEMENTS {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .for_each(|(o, x)| run(o, x));
    } else {
        run(out, x);
    }
    Ok(())
}

/// Applies `f` to each `x[i]` in place; parallel for long vectors.
fn update1(x: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    let run = |x: &mut [f32]| {
        for v in x.iter_mut() {
            *v = f(*v);
        }
    };
    if x.len() >= PAR_MIN_ELEMENTS {
        x.par_chunks_mut(PAR_CHUNK).for_each(run);
    } else {
        run(x);
    }
}

/// `out[i] = a[i] + b[i]`.
///
/// Errors if `b` or `out` is not as long as `a`.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) -> Result<()> {
    map2("add", a, b, out, |x, y| x + y)
}

/// `acc[i] += b[i]` (the residual connection).
///
/// Errors if `b` is not as long as `acc`.
pub fn add_inplace(acc: &mut [f32], b: &[f32]) -> Result<()> {
    update2("add_inplace", acc, b, |x, y| x + y)
}

/// `out[i] = a[i] · b[i]`.
///
/// Errors if `b` or `out` is not as long as `a`.
pub fn mul(a: &[f32], b: &[f32], out: &mut [f32]) -> Result<()> {
    map2("mul", a, b, out, |x, y| x * y)
}

/// `acc[i] *= b[i]`.
///
/// Errors if `b` is not as long as `acc`.
pub fn mul_inplace(acc: &mut [f32], b: &[f32]) -> Result<()> {
    update2("mul_inplace", acc, b, |x, y| x * y)
}

/// `out[i] = x[i] · s`.
///
/// Errors if `out` is not as long as `x`.
pub fn scale(x: &[f32], s: f32, out: &mut [f32]) -> Result<()> {
    map1("scale", x, out, |v| v * s)
}

/// `x[i] *= s`.
pub fn scale_inplace(x: &mut [f32], s: f32) {
    update1(x, |v| v * s)
}

/// `out[i] = silu(x[i]) = x[i] / (1 + e^(-x[i]))` (see [`silu_f32`]).
///
/// Errors if `out` is not as long as `x`.
pub fn silu(x: &[f32], out: &mut [f32]) -> Result<()> {
    map1("silu", x, out, silu_f32)
}

/// `x[i] = silu(x[i])` (see [`silu_f32`]).
pub fn silu_inplace(x: &mut [f32]) {
    update1(x, silu_f32)
}

/// `out[i] = gelu(x[i])`, ggml's tanh approximation (see [`gelu_f32`]).
///
/// Errors if `out` is not as long as `x`.
pub fn gelu(x: &[f32], out: &mut [f32]) -> Result<()> {
    map1("gelu", x, out, gelu_f32)
}

/// `x[i] = gelu(x[i])`, ggml's tanh approximation (see [`gelu_f32`]).
pub fn gelu_inplace(x: &mut [f32]) {
    update1(x, gelu_f32)
}

/// SwiGLU, the gated feed-forward activation: `out[i] = silu(gate[i]) · up[i]`
/// (ggml's `ggml_swiglu_split(gate, up)`; in llama-family models `gate` is `ffn_gate·x`
/// and `up` is `ffn_up·x`).
///
/// Errors if `up` or `out` is not as long as `gate`.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<()> {
    map2("swiglu", gate, up, out, |g, u| silu_f32(g) * u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_ggml_s() {
        // ggml: SQRT_2_OVER_PI = 0.79788456080286535587989211986876f, GELU_COEF_A = 0.044715f.
        assert_eq!(
            SQRT_2_OVER_PI,
            (2.0f64 / std::f64::consts::PI).sqrt() as f32
        );
        assert_eq!(GELU_COEF_A, 0.044715f32);
    }

    #[test]
    fn scalar_functions_at_known_points() {
        assert_eq!(silu_f32(0.0), 0.0);
        assert!((silu_f32(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((silu_f32(-1.0) + 0.268_941_42).abs() < 1e-6);
        assert_eq!(gelu_f32(0.0), 0.0);
        // tanh-GELU(1) = 0.5 * (1 + tanh(0.7978845608 * 1.044715)) = 0.8411919906
        assert!((gelu_f32(1.0) - 0.841_192).abs() < 1e-6);
        assert!((gelu_f32(-1.0) + 0.158_808).abs() < 1e-6);
        // Saturation: no NaN for large magnitudes.
        assert_eq!(gelu_f32(100.0), 100.0);
        assert_eq!(gelu_f32(-100.0), -0.0);
        assert_eq!(silu_f32(-200.0), -0.0);
        assert_eq!(silu_f32(200.0), 200.0);
    }

    #[test]
    fn parallel_and_serial_paths_agree() {
        let n = PAR_MIN_ELEMENTS + 77;
        let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.001).sin()).collect();
        let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.003).cos()).collect();
        let mut out = vec![0.0; n];
        swiglu(&a, &b, &mut out).unwrap();
        for i in 0..n {
            assert_eq!(out[i], silu_f32(a[i]) * b[i]);
        }
        let mut acc = a.clone();
        add_inplace(&mut acc, &b).unwrap();
        for i in 0..n {
            assert_eq!(acc[i], a[i] + b[i]);
        }
    }
}
