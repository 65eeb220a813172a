//! Activations quantized to 8 bits exactly as llama.cpp's x86 AVX2 build does before a
//! quantized matrix product (`quantize_row_q8_0` / `quantize_row_q8_1` in
//! `ggml/src/ggml-cpu/arch/x86/quants.c`).
//!
//! The AVX2 code differs from ggml's portable reference (`quantize_row_q8_0_ref` in
//! `ggml-quants.c`) in two roundings, and both matter for reproducing llama.cpp:
//!
//! * the multiplier is `id = 127 / amax` (one division), not `1 / d`;
//! * `x · id` is rounded to nearest **even** (`_mm256_round_ps(…, _MM_ROUND_NEAREST)`),
//!   not half away from zero (`roundf`).
//!
//! Per block of 32 values: `amax = max |x|`, `d = amax / 127` (stored as f16, rounded to
//! nearest even), `q = rne(x · id)`; Q8_1 also stores `s = f16(d · Σ q)` with the f32
//! `d` (not the rounded one).

use rayon::prelude::*;

use super::f16::round_f16;

/// Values per block.
pub const QK8: usize = 32;

/// Which 8-bit activation type a weight type's dot product takes (ggml's `vec_dot_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Q8Kind {
    /// `block_q8_0`: scale only.
    Q8_0,
    /// `block_q8_1`: scale and the scaled sum.
    Q8_1,
}

/// Rows of activations quantized to 8 bits: per block of 32 values, the scale `d` and
/// (Q8_1) `s` as the `f32` values of their f16 encodings (what ggml's
/// `GGML_CPU_FP16_TO_FP32` gives back), and the 32 quants.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Q8Rows {
    /// Quants (-127 ..= 127, as `i16`: the width the dot products multiply in),
    /// row-major.
    pub qs: Vec<i16>,
    /// Scale per block.
    pub d: Vec<f32>,
    /// `d · Σ qs` per block (Q8_1; 0 for Q8_0).
    pub s: Vec<f32>,
}

impl Q8Rows {
    /// Quantizes rows of `cols` values (`x.len()` a multiple of `cols`, `cols` a multiple
    /// of 32; the caller guarantees both).
    pub fn quantize(x: &[f32], cols: usize, kind: Q8Kind) -> Self {
        let nb = x.len() / QK8;
        let mut rows = Q8Rows {
            qs: vec![0; x.len()],
            d: vec![0.0; nb],
            s: vec![0.0; nb],
        };
        let per_row = cols / QK8;
        rows.qs
            .par_chunks_mut(cols)
            .zip(rows.d.par_chunks_mut(per_row))
            .zip(rows.s.par_chunks_mut(per_row))
            .zip(x.par_chunks(cols))
            .for_each(|(((q, d), s), xr)| {
                for (((qb, db), sb), xb) in q
                    .chunks_exact_mut(QK8)
                    .zip(d.iter_mut())
                    .zip(s.iter_mut())
                    .zip(xr.chunks_exact(QK8))
                {
                    (*db, *sb) = quantize_block(xb, kind, qb);
                }
            });
        rows
    }
}

/// Quantizes one block of 32 values into `q`; returns `(d, s)`.
fn quantize_block(x: &[f32], kind: Q8Kind, q: &mut [i16]) -> (f32, f32) {
    // max of |x|: _mm256_max_ps over the block (order does not matter for a maximum).
    let amax = x.iter().fold(0.0f32, |m, &v| {
        let a = v.abs();
        if a > m {
            a
        } else {
            m
        }
    });
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in q.iter_mut().zip(x) {
        // |v · id| ≤ 127 up to rounding; _mm256_packs saturates to the i8 range.
        let r = (v * id).round_ties_even().clamp(-128.0, 127.0) as i32;
        sum += r;
        *q = r as i16;
    }
    let s = match kind {
        Q8Kind::Q8_0 => 0.0,
        Q8Kind::Q8_1 => round_f16(d * sum as f32),
    };
    (round_f16(d), s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_halves_to_even_with_id_127_over_amax() {
        // amax = 127 → id = 1 exactly: 2.5 → 2, 3.5 → 4, -0.5 → -0.
        let mut x = [0.0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = 3.5;
        x[3] = -0.5;
        x[4] = -1.5;
        let b = Q8Rows::quantize(&x, 32, Q8Kind::Q8_1);
        assert_eq!(&b.qs[..5], &[127, 2, 4, 0, -2]);
        assert_eq!(b.d, [1.0]);
        assert_eq!(b.s, [131.0]);
    }

    #[test]
    fn zero_block() {
        let b = Q8Rows::quantize(&[0.0; 32], 32, Q8Kind::Q8_0);
        assert_eq!(b.qs, [0; 32]);
        assert_eq!((b.d[0], b.s[0]), (0.0, 0.0));
    }
}
