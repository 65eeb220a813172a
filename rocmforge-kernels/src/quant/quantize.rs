//! CPU quantization with ggml's reference quantizers (`quantize_row_*_ref` of
//! ggml-quants.c), byte-exact with them and, for the types it implements, with
//! gguf-py's numpy port (tests/quant_fixtures.rs checks both).
//!
//! These are the deterministic "make a model file" quantizers, not the
//! importance-matrix ones: the same input always gives the same bytes. The
//! K-quant quantizers live in [`super::quantize_k`].
//!
//! Non-finite input (NaN, ±inf) gives unspecified blocks, as in ggml, but never
//! a panic or undefined behaviour: every float-to-integer conversion here is
//! Rust's saturating `as`, every index is bounded by construction.

use rayon::prelude::*;

use super::blocks::*;
use super::dequantize::{check_sizes, chunk_elements, unsupported};
use super::fp16::{f32_to_bf16, f32_to_f16};
use super::GgmlType;
use crate::Result;

/// The block-level quantizer behind [`quantize_row`], one impl per block type.
pub(crate) trait Quantize: QuantBlock {
    /// Quantizes exactly `Self::ELEMENTS` values.
    fn quantize_from(x: &[f32]) -> Self;
}

/// Implements [`Quantize`] for a block by calling its inherent `quantize` on the
/// fixed-size array view of `x`.
macro_rules! quantize_impl {
    ($($block:ty),*) => {$(
        impl Quantize for $block {
            #[inline]
            fn quantize_from(x: &[f32]) -> Self {
                let x: &[f32; <$block as QuantBlock>::ELEMENTS] =
                    x.try_into().expect("callers pass one block's worth of elements");
                Self::quantize(x)
            }
        }
    )*};
}

quantize_impl!(
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K,
    BlockQ6K
);

/// f32 to f16 in the block structs' field type, with ggml's rounding.
#[inline]
pub(crate) fn to_f16(x: f32) -> half::f16 {
    half::f16::from_bits(f32_to_f16(x))
}

/// The value of largest magnitude, keeping its sign; the first one on ties
/// (ggml's `if (amax < fabsf(v))` loop).
#[inline]
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Minimum and maximum as ggml's Q4_1/Q5_1 loops compute them (from ±FLT_MAX).
#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `1 / d`, or 0 when `d` is 0 (ggml's `d ? 1.0f/d : 0.0f`).
#[inline]
fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

impl BlockQ4_0 {
    /// Quantizes 32 values (ggml's `quantize_row_q4_0_ref`): `d = max / -8` where
    /// `max` is the value of largest magnitude, `q = min(15, trunc(x / d + 8.5))`.
    pub fn quantize(x: &[f32; QK4_0]) -> Self {
        let d = signed_absmax(x) / -8.0;
        let id = inverse(d);
        let mut qs = [0u8; QK4_0 / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            let xi0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
            let xi1 = ((x[j + QK4_0 / 2] * id + 8.5) as i8).min(15) as u8;
            *q = xi0 | (xi1 << 4);
        }
        Self { d: to_f16(d), qs }
    }
}

impl BlockQ4_1 {
    /// Quantizes 32 values (ggml's `quantize_row_q4_1_ref`): `d = (max - min) / 15`,
    /// `m = min`, `q = min(15, trunc((x - min) / d + 0.5))`.
    pub fn quantize(x: &[f32; QK4_1]) -> Self {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        let mut qs = [0u8; QK4_1 / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            let xi0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
            let xi1 = (((x[j + QK4_1 / 2] - min) * id + 0.5) as i8).min(15) as u8;
            *q = xi0 | (xi1 << 4);
        }
        Self {
            d: to_f16(d),
            m: to_f16(min),
            qs,
        }
    }
}

impl BlockQ5_0 {
    /// Quantizes 32 values (ggml's `quantize_row_q5_0_ref`): `d = max / -16`,
    /// `q = min(31, trunc(x / d + 16.5))`.
    pub fn quantize(x: &[f32; QK5_0]) -> Self {
        let d = signed_absmax(x) / -16.0;
        let id = inverse(d);
        let mut qs = [0u8; QK5_0 / 2];
        let mut qh = 0u32;
        for (j, q) in qs.iter_mut().enumerate() {
            let xi0 = ((x[j] * id + 16.5) as i8).min(31) as u8;
            let xi1 = ((x[j + QK5_0 / 2] * id + 16.5) as i8).min(31) as u8;
            *q = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= u32::from((xi0 & 0x10) >> 4) << j;
            qh |= u32::from((xi1 & 0x10) >> 4) << (j + QK5_0 / 2);
        }
        Self {
            d: to_f16(d),
            qh: qh.to_le_bytes(),
            qs,
        }
    }
}

impl BlockQ5_1 {
    /// Quantizes 32 values (ggml's `quantize_row_q5_1_ref`): `d = (max - min) / 31`,
    /// `m = min`, `q = trunc((x - min) / d + 0.5)`.
    pub fn quantize(x: &[f32; QK5_1]) -> Self {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        let mut qs = [0u8; QK5_1 / 2];
        let mut qh = 0u32;
        for (j, q) in qs.iter_mut().enumerate() {
            // ggml converts straight to uint8_t (no clamp); the value cannot
            // exceed 31 for finite input, and `min(31)` keeps the 5-bit packing
            // below sound even when it is not.
            let xi0 = (((x[j] - min) * id + 0.5) as u8).min(31);
            let xi1 = (((x[j + QK5_1 / 2] - min) * id + 0.5) as u8).min(31);
            *q = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= u32::from((xi0 & 0x10) >> 4) << j;
            qh |= u32::from((xi1 & 0x10) >> 4) << (j + QK5_1 / 2);
        }
        Self {
            d: to_f16(d),
            m: to_f16(min),
            qh: qh.to_le_bytes(),
            qs,
        }
    }
}

impl BlockQ8_0 {
    /// Quantizes 32 values (ggml's `quantize_row_q8_0_ref`): `d = amax / 127`,
    /// `q = round(x / d)` (half away from zero).
    pub fn quantize(x: &[f32; QK8_0]) -> Self {
        let mut amax = 0.0f32;
        for &v in x {
            // ggml's MAX(amax, fabsf(v)): `a > b ? a : b`.
            amax = if amax > v.abs() { amax } else { v.abs() };
        }
        let d = amax / 127.0;
        let id = inverse(d);
        let mut qs = [0i8; QK8_0];
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
        }
        Self { d: to_f16(d), qs }
    }
}

/// Quantizes whole blocks; sizes were checked by the caller.
fn quantize_blocks<B: Quantize>(src: &[f32], dst: &mut [u8]) {
    for (x, out) in src
        .chunks_exact(B::ELEMENTS)
        .zip(dst.chunks_exact_mut(std::mem::size_of::<B>()))
    {
        out.copy_from_slice(bytemuck::bytes_of(&B::quantize_from(x)));
    }
}

/// Quantizes `src` to type `ty` into the raw ggml bytes `dst` with ggml's
/// reference quantizer (`quantize_row_*_ref`; for F16/BF16 ggml's rounding
/// conversions; for F32 the little-endian bytes).
///
/// `src.len()` must be a multiple of `ty.block_size()` ([`crate::Error::Shape`])
/// and `dst` exactly `ty.row_bytes(src.len())` bytes ([`crate::Error::DataSize`]).
/// Types without a quantizer ([`GgmlType::is_quantizable`] false) give
/// [`crate::Error::UnsupportedType`]. Runs on the calling thread.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    const OP: &str = "quantize";
    if !ty.is_quantizable() {
        return Err(unsupported(OP, ty));
    }
    check_sizes(OP, ty, src.len(), dst.len())?;
    match ty {
        GgmlType::F32 => {
            for (o, &x) in dst.chunks_exact_mut(4).zip(src) {
                o.copy_from_slice(&x.to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for (o, &x) in dst.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_f16(x).to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for (o, &x) in dst.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_bf16(x).to_le_bytes());
            }
        }
        GgmlType::Q4_0 => quantize_blocks::<BlockQ4_0>(src, dst),
        GgmlType::Q4_1 => quantize_blocks::<BlockQ4_1>(src, dst),
        GgmlType::Q5_0 => quantize_blocks::<BlockQ5_0>(src, dst),
        GgmlType::Q5_1 => quantize_blocks::<BlockQ5_1>(src, dst),
        GgmlType::Q8_0 => quantize_blocks::<BlockQ8_0>(src, dst),
        GgmlType::Q2_K => quantize_blocks::<BlockQ2K>(src, dst),
        GgmlType::Q3_K => quantize_blocks::<BlockQ3K>(src, dst),
        GgmlType::Q4_K => quantize_blocks::<BlockQ4K>(src, dst),
        GgmlType::Q5_K => quantize_blocks::<BlockQ5K>(src, dst),
        GgmlType::Q6_K => quantize_blocks::<BlockQ6K>(src, dst),
        _ => return Err(unsupported(OP, ty)),
    }
    Ok(())
}

/// Quantizes `src` to type `ty` into a new byte vector, in parallel over chunks
/// of whole blocks for large inputs (the result equals [`quantize_row`]'s:
/// ggml's reference quantizers treat every block independently).
pub fn quantize(ty: GgmlType, src: &[f32]) -> Result<Vec<u8>> {
    const OP: &str = "quantize";
    if !ty.is_quantizable() {
        return Err(unsupported(OP, ty));
    }
    let bytes = ty.row_bytes(src.len())?;
    let mut out = vec![0u8; bytes];
    let chunk = chunk_elements(ty);
    if src.len() < 2 * chunk {
        quantize_row(ty, src, &mut out)?;
        return Ok(out);
    }
    let chunk_bytes = chunk / ty.block_size() * ty.type_size();
    out.par_chunks_mut(chunk_bytes)
        .zip(src.par_chunks(chunk))
        .try_for_each(|(d, s)| quantize_row(ty, s, d))?;
    Ok(out)
}
