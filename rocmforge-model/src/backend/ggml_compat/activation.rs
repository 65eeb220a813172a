//! ggml's vectorized exponential and the SwiGLU built on it (`ggml_v_expf`,
//! `ggml_v_silu`, `ggml_vec_swiglu_f32` in `ggml/src/ggml-cpu/vec.h`, `vec.cpp`; AVX2 +
//! FMA variant).
//!
//! `ggml_v_expf` is not the C library's `expf`: it is a polynomial approximation (ARM's
//! optimized-routines algorithm, "maximum error 1.45358 plus 0.5 ulps") whose results
//! differ from a correctly rounded `expf` in the last bits. llama.cpp evaluates the SiLU
//! of the FFN gate with it, eight values at a time, and the scalar `x / (1 + expf(-x))`
//! only for a remainder of fewer than eight values. The lanes of a vector are computed
//! independently, so the lane function below, applied per element, gives the same bits.

use rayon::prelude::*;

use super::shape_error;
use super::simd::{fma, has_avx2_fma};
use crate::error::Result;

/// One lane of ggml's AVX2 `ggml_v_expf`.
#[inline(always)]
pub fn v_expf(x: f32) -> f32 {
    let r = f32::from_bits(0x4B40_0000); // 0x1.8p23
    let z = fma(x, f32::from_bits(0x3FB8_AA3B), r); // 0x1.715476p+0 (log2 e)
    let n = z - r;
    let b = fma(
        -n,
        f32::from_bits(0x35BF_BE8E),             // 0x1.7f7d1cp-20
        fma(-n, f32::from_bits(0x3F31_7200), x), // 0x1.62e4p-1
    );
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1.0f32.to_bits()));
    let c = n.abs() > 126.0;
    let u = b * b;
    let j = fma(
        fma(
            fma(f32::from_bits(0x3C07_2010), b, f32::from_bits(0x3D2B_9F17)), // 0x1.0e4020p-7, 0x1.573e2ep-5
            u,
            fma(f32::from_bits(0x3E2A_AF33), b, f32::from_bits(0x3EFF_FEDB)), // 0x1.555e66p-3, 0x1.fffdb6p-2
        ),
        u,
        f32::from_bits(0x3F7F_FFF6) * b, // 0x1.ffffecp-1
    );
    if !c {
        return fma(j, k, k);
    }
    let g = if n <= 0.0 { 0x8200_0000u32 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7F00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        fma(s2, j, s2) * s1
    }
}

/// One lane of `ggml_v_silu`: `x / (1 + v_expf(0 - x))`.
#[inline(always)]
pub fn v_silu(x: f32) -> f32 {
    x / (1.0 + v_expf(0.0 - x))
}

/// Values per parallel task (a multiple of 8).
const CHUNK: usize = 4096;

/// `ggml_vec_swiglu_f32`: `out[i] = silu(gate[i]) · up[i]`, with [`v_silu`] for the
/// first `8 · ⌊n / 8⌋` values and the scalar `x / (1 + expf(-x))` for the rest.
///
/// ggml applies this per row (of the FFN width); the tensors here are flat, so the
/// remainder is placed at the end of the whole tensor. That is the same when the row
/// length is a multiple of 8, as every llama-family FFN width is.
///
/// Errors if the lengths differ.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<()> {
    let n = out.len();
    if gate.len() != n || up.len() != n {
        return Err(shape_error(
            "ggml-compatible swiglu",
            format!("gate {}, up {}, output {}", gate.len(), up.len(), n),
        ));
    }
    let vec_end = n - n % 8;
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        let start = c * CHUNK;
        let end = start + o.len();
        swiglu_chunk(
            &gate[start..end],
            &up[start..end],
            o,
            vec_end.saturating_sub(start),
        );
    });
    Ok(())
}

/// SwiGLU of a chunk whose first `vec_end` values take the vector SiLU.
#[inline(always)]
fn swiglu_chunk_portable(gate: &[f32], up: &[f32], out: &mut [f32], vec_end: usize) {
    for (i, ((y, &g), &u)) in out.iter_mut().zip(gate).zip(up).enumerate() {
        let silu = if i < vec_end {
            v_silu(g)
        } else {
            g / (1.0 + (-g).exp())
        };
        *y = silu * u;
    }
}

/// [`swiglu_chunk_portable`] compiled for AVX2 + FMA.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn swiglu_chunk_avx2_fma(gate: &[f32], up: &[f32], out: &mut [f32], vec_end: usize) {
    swiglu_chunk_portable(gate, up, out, vec_end)
}

/// [`swiglu_chunk_portable`], vectorized where the CPU allows (same results).
fn swiglu_chunk(gate: &[f32], up: &[f32], out: &mut [f32], vec_end: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (just checked), all
        // `swiglu_chunk_avx2_fma` needs.
        unsafe { swiglu_chunk_avx2_fma(gate, up, out, vec_end) };
        return;
    }
    swiglu_chunk_portable(gate, up, out, vec_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_expf_is_close_to_expf() {
        for i in -2000..2000 {
            let x = i as f32 * 0.0437;
            let (a, b) = (v_expf(x), x.exp());
            assert!(((a - b) / b).abs() < 4e-7, "{x}: {a} vs {b}");
        }
        assert_eq!(v_expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(v_expf(-200.0), 0.0);
        assert_eq!(v_expf(0.0), 1.0);
        assert!(v_expf(100.0).is_infinite());
    }
}
