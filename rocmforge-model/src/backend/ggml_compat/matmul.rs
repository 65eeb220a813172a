//! Matrix products with llama.cpp's CPU arithmetic: `out[t] = W · x[t]` with each
//! activation row quantized to the weight type's 8-bit `vec_dot_type`
//! ([`quantize`](super::quantize)) and every output element one emulated dot product
//! ([`vec_dot`](super::vec_dot)).
//!
//! Each output element depends only on its weight row and its activation row — as in
//! ggml, where threads and chunks only decide who computes which elements — so the result
//! does not depend on the batch size or the thread count.

use rayon::prelude::*;
use rocmforge_kernels::cpu::WeightMatrix;

use super::quantize::{Q8Rows, QK8};
use super::shape_error;
use super::simd::has_avx2_fma;
use super::vec_dot::{dot, DecodedRow, WeightKind};
use crate::error::Result;

/// Weight rows per parallel task.
const ROWS_PER_TASK: usize = 16;

/// `out[t · rows + r] = Σ_c W[r, c] · x[t · cols + c]` for `n_tokens` rows of `x`, as
/// llama.cpp computes it, for a weight type with an emulated dot product.
///
/// Errors if the type has no emulation ([`WeightKind::of`]) or a length does not match.
pub fn matmul(w: &WeightMatrix<'_>, x: &[f32], n_tokens: usize, out: &mut [f32]) -> Result<()> {
    const OP: &str = "ggml-compatible matmul";
    let kind = WeightKind::of(w.ty())
        .ok_or_else(|| shape_error(OP, format!("no ggml-compatible dot product for {}", w.ty())))?;
    let (rows, cols) = (w.rows(), w.cols());
    if cols % QK8 != 0 {
        return Err(shape_error(
            OP,
            format!("{cols} columns is not a multiple of 32"),
        ));
    }
    if Some(x.len()) != n_tokens.checked_mul(cols) {
        return Err(shape_error(
            OP,
            format!("{} inputs for {n_tokens} tokens of {cols}", x.len()),
        ));
    }
    if Some(out.len()) != n_tokens.checked_mul(rows) {
        return Err(shape_error(
            OP,
            format!("{} outputs for {n_tokens} tokens of {rows}", out.len()),
        ));
    }
    if n_tokens == 0 {
        return Ok(());
    }
    let row_bytes = w.row_bytes();
    if row_bytes != cols / QK8 * kind.block_bytes() || w.data().len() != rows * row_bytes {
        return Err(shape_error(
            OP,
            "weight bytes do not match the type's block size",
        ));
    }

    // The activations, quantized once per token.
    let act = Q8Rows::quantize(x, cols, kind.activation());

    if n_tokens == 1 {
        out.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each_init(
            DecodedRow::default,
            |row, (i, chunk)| {
                let r0 = i * ROWS_PER_TASK;
                let bytes = &w.data()[r0 * row_bytes..][..chunk.len() * row_bytes];
                dots(kind, bytes, row_bytes, &act, 1, row, chunk);
            },
        );
        return Ok(());
    }
    // Several tokens: compute [rows, n_tokens] (weight row outer), then transpose.
    let mut tmp = vec![0.0f32; rows * n_tokens];
    tmp.par_chunks_mut(ROWS_PER_TASK * n_tokens)
        .enumerate()
        .for_each_init(DecodedRow::default, |row, (i, chunk)| {
            let r0 = i * ROWS_PER_TASK;
            let n_rows = chunk.len() / n_tokens;
            let bytes = &w.data()[r0 * row_bytes..][..n_rows * row_bytes];
            dots(kind, bytes, row_bytes, &act, n_tokens, row, chunk);
        });
    for (t, o) in out.chunks_mut(rows).enumerate() {
        for (r, v) in o.iter_mut().enumerate() {
            *v = tmp[r * n_tokens + t];
        }
    }
    Ok(())
}

/// For each weight row in `bytes` (rows of `row_bytes`), its dot products with the
/// `n_tokens` activation rows, into `dst` (`[weight rows, n_tokens]`).
#[inline(always)]
fn dots_portable(
    kind: WeightKind,
    bytes: &[u8],
    row_bytes: usize,
    act: &Q8Rows,
    n_tokens: usize,
    row: &mut DecodedRow,
    dst: &mut [f32],
) {
    for (wr, d) in bytes
        .chunks_exact(row_bytes)
        .zip(dst.chunks_exact_mut(n_tokens))
    {
        row.decode(kind, wr);
        for (t, o) in d.iter_mut().enumerate() {
            *o = dot(kind, row, act, t);
        }
    }
}

/// [`dots_portable`] compiled for AVX2 + FMA.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2_fma(
    kind: WeightKind,
    bytes: &[u8],
    row_bytes: usize,
    act: &Q8Rows,
    n_tokens: usize,
    row: &mut DecodedRow,
    dst: &mut [f32],
) {
    dots_portable(kind, bytes, row_bytes, act, n_tokens, row, dst)
}

/// [`dots_portable`], vectorized where the CPU allows (same results).
fn dots(
    kind: WeightKind,
    bytes: &[u8],
    row_bytes: usize,
    act: &Q8Rows,
    n_tokens: usize,
    row: &mut DecodedRow,
    dst: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (just checked), all `dots_avx2_fma` needs.
        unsafe { dots_avx2_fma(kind, bytes, row_bytes, act, n_tokens, row, dst) };
        return;
    }
    dots_portable(kind, bytes, row_bytes, act, n_tokens, row, dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;
    use rocmforge_kernels::quant::GgmlType;

    /// A deterministic pseudo-random sequence.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// `rows` random rows of `cols` values in `ty` (random quants, f16 scales of the
    /// usual sizes).
    fn random_weights(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
        let kind = WeightKind::of(ty).expect("emulated type");
        let mut bytes = vec![0u8; rows * cols / QK8 * kind.block_bytes()];
        for b in bytes.chunks_mut(kind.block_bytes()) {
            for x in b.iter_mut() {
                *x = rng.next() as u8;
            }
            b[0..2].copy_from_slice(&f16::from_f32(0.01 * rng.unit().abs()).to_le_bytes());
            if kind.has_min() {
                b[2..4].copy_from_slice(&f16::from_f32(-0.1 * rng.unit().abs()).to_le_bytes());
            }
        }
        bytes
    }

    #[test]
    fn vectorized_and_portable_code_agree() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let (rows, cols, n_tokens) = (19, 96, 3);
        for ty in [GgmlType::Q4_1, GgmlType::Q5_1, GgmlType::Q8_0] {
            let kind = WeightKind::of(ty).expect("emulated type");
            let bytes = random_weights(ty, rows, cols, &mut rng);
            let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.unit() * 3.0).collect();
            let act = Q8Rows::quantize(&x, cols, kind.activation());
            let row_bytes = bytes.len() / rows;
            let (mut a, mut b) = (vec![0.0; rows * n_tokens], vec![0.0; rows * n_tokens]);
            let mut row = DecodedRow::default();
            dots_portable(kind, &bytes, row_bytes, &act, n_tokens, &mut row, &mut a);
            dots(kind, &bytes, row_bytes, &act, n_tokens, &mut row, &mut b);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{ty}");

            // And the matrix product is the exact one up to the 8-bit activations: each
            // value is off by at most half its block's step `amax / 127`.
            let w = WeightMatrix::new(ty, &bytes, rows, cols).expect("matrix");
            let mut out = vec![0.0; rows * n_tokens];
            matmul(&w, &x, n_tokens, &mut out).expect("matmul");
            let mut dq = vec![0.0; cols];
            for r in 0..rows {
                w.dequantize_row(r, &mut dq).expect("dequantize");
                for t in 0..n_tokens {
                    let xt = &x[t * cols..][..cols];
                    let (mut exact, mut bound) = (0.0f64, 1e-3f64);
                    for (wb, xb) in dq.chunks(QK8).zip(xt.chunks(QK8)) {
                        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                        for (&a, &b) in wb.iter().zip(xb) {
                            exact += f64::from(a) * f64::from(b);
                            bound += f64::from(a.abs()) * f64::from(amax) / 254.0 * 1.01;
                        }
                    }
                    let got = f64::from(out[t * rows + r]);
                    assert!(
                        (got - exact).abs() < bound,
                        "{ty} row {r}: {got} vs {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_what_it_cannot_compute() {
        let bytes = vec![0u8; 2 * 34];
        let w = WeightMatrix::new(GgmlType::Q8_0, &bytes, 2, 32).expect("matrix");
        let mut out = vec![0.0; 2];
        assert!(matmul(&w, &[0.0; 31], 1, &mut out).is_err());
        assert!(matmul(&w, &[0.0; 32], 1, &mut out[..1]).is_err());
        assert!(matmul(&w, &[0.0; 32], 1, &mut out).is_ok());
        let f32_bytes = vec![0u8; 4 * 32];
        let w = WeightMatrix::new(GgmlType::F32, &f32_bytes, 1, 32).expect("matrix");
        assert!(matmul(&w, &[0.0; 32], 1, &mut out[..1]).is_err());
    }
}
