//! ggml's f16 vector operations as its AVX2 + F16C build computes them
//! (`ggml_vec_dot_f16` in `ggml/src/ggml-cpu/vec.cpp`, `ggml_vec_mad_f16` and
//! `ggml_vec_scale_f16` in `vec.h`, with the `GGML_F16_*` / `GGML_F32Cx8_*` mappings of
//! `simd-mappings.h`).
//!
//! Values are held as `f32` numbers that are exactly representable in f16 ("f16 values"):
//! loading is exact (`vcvtph2ps`), storing rounds to nearest even (`vcvtps2ph $0`).
//! Registers hold 8 lanes and the loops step over 32 elements (4 registers); elements
//! past the last multiple of 32 take scalar code.

use super::f16::round_f16;
use super::simd::{fma, hadd_reduce8};

/// Elements per step of the vector loops (`GGML_F16_STEP`).
const STEP: usize = 32;

/// `ggml_vec_dot_f16`: the dot product of two f16 vectors, accumulated in four
/// registers of 8 `f32` lanes with FMA, reduced with `GGML_F32x8_REDUCE`, widened to
/// `f64`; a remainder of fewer than 32 elements is added in `f64` (each product rounded to
/// `f32`); the result is rounded to `f32`. The caller guarantees equal lengths.
#[inline(always)]
pub fn dot_f16(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len();
    let np = n - n % STEP;
    let mut sum = [[0.0f32; 8]; 4];
    for i in (0..np).step_by(STEP) {
        for (j, acc) in sum.iter_mut().enumerate() {
            for (l, a) in acc.iter_mut().enumerate() {
                let k = i + 8 * j + l;
                *a = fma(x[k], y[k], *a);
            }
        }
    }
    // reduce sum0..sum3 to sum0: offset 2, then 1
    let [s0, s1, s2, s3] = sum;
    let add = |a: [f32; 8], b: [f32; 8]| -> [f32; 8] { std::array::from_fn(|l| a[l] + b[l]) };
    let s0 = add(add(s0, s2), add(s1, s3));
    let mut sumf = f64::from(hadd_reduce8(&s0));
    for k in np..n {
        sumf += f64::from(x[k] * y[k]);
    }
    sumf as f32
}

/// `ggml_vec_mad_f16`: `y = f16(y + x · v)` with one rounding to `f32` (FMA) before the
/// rounding to f16 — the vector loop uses `vfmadd`, and GCC contracts the scalar
/// remainder into an FMA too. The caller guarantees equal lengths.
#[inline(always)]
pub fn mad_f16(y: &mut [f32], x: &[f32], v: f32) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a = round_f16(fma(b, v, *a));
    }
}

/// `ggml_vec_scale_f16`: `y = f16(y · v)`.
#[inline(always)]
pub fn scale_f16(y: &mut [f32], v: f32) {
    for a in y.iter_mut() {
        *a = round_f16(*a * v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_f16_is_the_dot_product_up_to_rounding() {
        let x: Vec<f32> = (0..70).map(|i| round_f16(i as f32 * 0.37 - 5.0)).collect();
        let y: Vec<f32> = (0..70).map(|i| round_f16(1.5 - i as f32 * 0.011)).collect();
        let exact: f64 = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        assert!((f64::from(dot_f16(&x, &y)) - exact).abs() < 1e-4 * exact.abs().max(1.0));
    }
}
