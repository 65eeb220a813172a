//! f16 and bf16 conversions exactly as ggml performs them.
//!
//! ggml's CPU reference converts with the portable bit-manipulation routines
//! of ggml-impl.h (`ggml_compute_fp16_to_fp32`, `ggml_compute_fp32_to_fp16`,
//! `ggml_compute_fp32_to_bf16`). These are ports of them, so that rocmforge and
//! ggml agree on every input, NaNs included — `half`'s conversions agree on every
//! non-NaN value (the unit tests check that) but keep NaN payloads where ggml
//! returns one canonical quiet NaN.

/// Converts f16 bits to f32 as ggml's `ggml_compute_fp16_to_fp32` does.
///
/// Exact for every finite value and infinity (f32 represents every f16). A NaN
/// becomes the f32 quiet NaN with the same sign and the payload shifted into the
/// top of the f32 mantissa, which is what ggml's multiply by 2^-112 yields on
/// IEEE hardware; it is spelled out here because Rust does not promise NaN bits
/// from arithmetic.
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    if h & 0x7C00 == 0x7C00 {
        // Infinity or NaN.
        let sign = u32::from(h & 0x8000) << 16;
        let mant = u32::from(h & 0x03FF) << 13;
        let quiet = if mant != 0 { 0x0040_0000 } else { 0 };
        return f32::from_bits(sign | 0x7F80_0000 | mant | quiet);
    }
    let w = u32::from(h) << 16;
    let sign = w & 0x8000_0000;
    let two_w = w.wrapping_add(w);

    // Normal numbers: move exponent and mantissa into place, rebias by 2^-112.
    let exp_offset = 0xE0u32 << 23;
    let exp_scale = f32::from_bits(0x0780_0000); // 2^-112
    let normalized = f32::from_bits((two_w >> 4) + exp_offset) * exp_scale;

    // Subnormals: the mantissa as the low bits of 0.5's mantissa, minus 0.5.
    let magic_mask = 126u32 << 23;
    let magic_bias = 0.5f32;
    let denormalized = f32::from_bits((two_w >> 17) | magic_mask) - magic_bias;

    let denormalized_cutoff = 1u32 << 27;
    let bits = if two_w < denormalized_cutoff {
        denormalized.to_bits()
    } else {
        normalized.to_bits()
    };
    f32::from_bits(sign | bits)
}

/// Converts f32 to f16 bits as ggml's `ggml_compute_fp32_to_fp16` does: round to
/// nearest, ties to even; too large → infinity; NaN → 0x7E00 with the sign.
#[inline]
pub fn f32_to_f16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
                                                     // The float unit does the rounding: scaling by 2^112 then 2^-110 leaves the
                                                     // value where adding the bias below rounds it at f16's precision.
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;

    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let mut bias = shl1_w & 0xFF00_0000;
    if bias < 0x7100_0000 {
        bias = 0x7100_0000;
    }

    // (IEEE addition is commutative, so this is ggml's `bias + base` exactly.)
    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    // C truncates the 32-bit sum to uint16_t on return; so does `as u16`.
    ((sign >> 16)
        | if shl1_w > 0xFF00_0000 {
            0x7E00
        } else {
            nonsign
        }) as u16
}

/// Converts bf16 bits to f32 (ggml's `ggml_compute_bf16_to_fp32`): the bits are
/// the upper half of the f32, so this is exact for every input, NaNs included.
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Converts f32 to bf16 bits as ggml's `ggml_compute_fp32_to_bf16` does: round to
/// nearest, ties to even; subnormals kept; a NaN keeps its upper bits and is
/// made quiet (bit 6 set).
#[inline]
pub fn f32_to_bf16(f: f32) -> u16 {
    let u = f.to_bits();
    if u & 0x7FFF_FFFF > 0x7F80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    // Cannot overflow: the largest finite f32 plus 0x8000 stays below 2^32.
    ((u + (0x7FFF + ((u >> 16) & 1))) >> 16) as u16
}

/// Converts a slice of f32 to f16 bits with [`f32_to_f16`]; `dst` must be as long as `src`.
pub(crate) fn f32_to_f16_slice(src: &[f32], dst: &mut [half::f16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = half::f16::from_bits(f32_to_f16(s));
    }
}
