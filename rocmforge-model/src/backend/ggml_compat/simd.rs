//! The float operations of ggml's AVX2 kernels, one lane at a time: fused multiply-add
//! (`vfmadd…ps`, a single rounding) and the horizontal sums of a `__m256` (whose order
//! of additions changes the result).
//!
//! Rust's `+` and `*` never fuse, so every place where llama.cpp's build fuses (an
//! intrinsic, or GCC contracting `a * b + c` under its default `-ffp-contract=fast`)
//! calls [`fma`] here.
//!
//! The hot loops exist twice: portable, and compiled for AVX2 + FMA (chosen at run time
//! with [`has_avx2_fma`]). Both evaluate the same IEEE operations in the same order, so
//! they give the same bits; the second is several times faster.

/// `a · b + c` with a single rounding, as `vfmadd` computes it (`f32::mul_add`: one
/// instruction in code compiled for FMA — see [`has_avx2_fma`] — and the C library's
/// exact `fmaf` elsewhere).
#[inline(always)]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// Whether this CPU has AVX2 and FMA, so that the hot loops can run as code compiled for
/// them (`#[target_feature]` twins of the portable functions: the same operations, hence
/// the same results, in vector registers and with hardware FMA).
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// ggml's `hsum_float_8` (and tinyBLAS's `hsum`): the upper half added to the lower half,
/// then `movehl` and `movehdup` — `((x0+x4) + (x2+x6)) + ((x1+x5) + (x3+x7))`.
#[inline(always)]
pub fn hsum8(x: &[f32; 8]) -> f32 {
    let r = [x[4] + x[0], x[5] + x[1], x[6] + x[2], x[7] + x[3]];
    let r = [r[0] + r[2], r[1] + r[3]];
    r[0] + r[1]
}

/// The reduction of `GGML_F32x8_REDUCE` for one accumulator (after the accumulators are
/// summed): low half plus high half, then two `hadd`s — `((x0+x4) + (x1+x5)) +
/// ((x2+x6) + (x3+x7))`.
#[inline(always)]
pub fn hadd_reduce8(x: &[f32; 8]) -> f32 {
    let t = [x[0] + x[4], x[1] + x[5], x[2] + x[6], x[3] + x[7]];
    (t[0] + t[1]) + (t[2] + t[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizontal_sums_follow_the_register_order() {
        let x = [1e8, 1.0, -1e8, 1.0, 1.0, 3.0, 1.0, 5.0];
        assert_eq!(
            hsum8(&x),
            ((1e8f32 + 1.0) + (-1e8 + 1.0)) + ((1.0 + 3.0) + (1.0 + 5.0))
        );
        assert_eq!(
            hadd_reduce8(&x),
            ((1e8f32 + 1.0) + (1.0 + 3.0)) + ((-1e8 + 1.0) + (1.0 + 5.0))
        );
    }
}
