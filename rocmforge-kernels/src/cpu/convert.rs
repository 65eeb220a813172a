//! Casts between `f32`, IEEE half (`f16`) and bfloat16 (`bf16`).
//!
//! Narrowing rounds to nearest, ties to even, as ggml does:
//!
//! * `f32 → f16`: [`half::f16::from_f32`], the IEEE 754 conversion (what F16C's
//!   `vcvtps2ph` with rounding mode 0 and ggml's bit-twiddling fallback compute).
//!   Values beyond the f16 range become ±infinity; values below it become subnormals or
//!   ±0. A NaN stays a NaN (its payload is not specified).
//! * `f32 → bf16`: exactly ggml's `ggml_compute_fp32_to_bf16` (see [`f32_to_bf16_value`]):
//!   NaN becomes a quiet NaN keeping the top payload bits, everything else rounds to nearest
//!   even on the upper 16 bits (subnormals are kept, not flushed, as in current ggml).
//! * Widening (`f16 → f32`, `bf16 → f32`) is exact.
//! * `f16 ↔ bf16` go through `f32` (exact widening, then the rounding above).
//!
//! Slices of one call have equal lengths; a mismatch is an
//! [`Error::Shape`](crate::Error::Shape).

use half::{bf16, f16};
use rayon::prelude::*;

use super::{check_len, PAR_CHUNK, PAR_MIN_ELEMENTS};
use crate::Result;

/// Rounds one `f32` to `bf16` exactly as ggml's `ggml_compute_fp32_to_bf16`:
///
/// ```text
/// if (bits & 0x7fffffff) > 0x7f800000 { return (bits >> 16) | 0x40 }  // NaN → quiet NaN
/// return (bits + 0x7fff + ((bits >> 16) & 1)) >> 16                    // nearest, ties even
/// ```
#[inline]
pub fn f32_to_bf16_value(x: f32) -> bf16 {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return bf16::from_bits(((bits >> 16) | 0x40) as u16);
    }
    // Cannot overflow: the largest non-NaN `bits` is 0xff80_0000, plus at most 0x8000.
    bf16::from_bits(((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16)
}

/// Converts `src[i]` into `dst[i]` with `f`; parallel for long slices.
fn convert<S: Copy + Sync, D: Send>(
    op: &'static str,
    src: &[S],
    dst: &mut [D],
    f: impl Fn(S) -> D + Sync,
) -> Result<()> {
    check_len(op, "destination", dst.len(), src.len())?;
    let run = |dst: &mut [D], src: &[S]| {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f(s);
        }
    };
    if src.len() >= PAR_MIN_ELEMENTS {
        dst.par_chunks_mut(PAR_CHUNK)
            .zip(src.par_chunks(PAR_CHUNK))
            .for_each(|(d, s)| run(d, s));
    } else {
        run(dst, src);
    }
    Ok(())
}

/// `dst[i] = f16(src[i])`, rounding to nearest even.
///
/// Errors if the lengths differ.
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) -> Result<()> {
    convert("f32_to_f16", src, dst, f16::from_f32)
}

/// `dst[i] = f32(src[i])` (exact).
///
/// Errors if the lengths differ.
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) -> Result<()> {
    convert("f16_to_f32", src, dst, f16::to_f32)
}

/// `dst[i] = bf16(src[i])`, rounding to nearest even as ggml does ([`f32_to_bf16_value`]).
///
/// Errors if the lengths differ.
pub fn f32_to_bf16(src: &[f32], dst: &mut [bf16]) -> Result<()> {
    convert("f32_to_bf16", src, dst, f32_to_bf16_value)
}

/// `dst[i] = f32(src[i])` (exact: the bf16 bits become the upper half of the f32).
///
/// Errors if the lengths differ.
pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) -> Result<()> {
    convert("bf16_to_f32", src, dst, bf16::to_f32)
}

/// `dst[i] = bf16(f32(src[i]))`: exact widening, then ggml's bf16 rounding.
///
/// Errors if the lengths differ.
pub fn f16_to_bf16(src: &[f16], dst: &mut [bf16]) -> Result<()> {
    convert("f16_to_bf16", src, dst, |h| f32_to_bf16_value(h.to_f32()))
}

/// `dst[i] = f16(f32(src[i]))`: exact widening, then rounding to nearest even.
///
/// Errors if the lengths differ.
pub fn bf16_to_f16(src: &[bf16], dst: &mut [f16]) -> Result<()> {
    convert("bf16_to_f16", src, dst, |b| f16::from_f32(b.to_f32()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_matches_ggml_formula_and_half() {
        // Ties to even: 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125; even is 1.0.
        assert_eq!(f32_to_bf16_value(1.0 + 1.0 / 256.0).to_f32(), 1.0);
        // 1 + 3·2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even).
        assert_eq!(f32_to_bf16_value(1.0 + 3.0 / 256.0).to_f32(), 1.015625);
        // Above halfway rounds up.
        assert_eq!(
            f32_to_bf16_value(1.0 + 1.0 / 256.0 + 1.0 / 65536.0).to_f32(),
            1.0078125
        );
        // Overflow to infinity, infinities and NaN.
        assert_eq!(f32_to_bf16_value(f32::MAX).to_f32(), f32::INFINITY);
        assert_eq!(
            f32_to_bf16_value(f32::NEG_INFINITY).to_f32(),
            f32::NEG_INFINITY
        );
        let nan = f32_to_bf16_value(f32::from_bits(0x7f80_0001));
        assert!(nan.is_nan());
        assert_eq!(nan.to_bits(), 0x7fc0);
        // Subnormals are rounded, not flushed.
        let tiny = f32::from_bits(0x0001_8000); // subnormal, halfway → even (0x0002)
        assert_eq!(f32_to_bf16_value(tiny).to_bits(), 0x0002);
        // Agrees with the `half` crate on a sweep of finite values.
        for i in 0..100_000u32 {
            let bits = i.wrapping_mul(2_654_435_761);
            let x = f32::from_bits(bits);
            if x.is_nan() {
                continue;
            }
            assert_eq!(
                f32_to_bf16_value(x).to_bits(),
                bf16::from_f32(x).to_bits(),
                "{x:e}"
            );
        }
    }
}
