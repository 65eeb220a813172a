//! Conversions between `f32` and IEEE half precision, exact and inlinable: ggml's F16C
//! build converts with `vcvtph2ps` (exact) and `vcvtps2ph $0` (round to nearest, ties to
//! even), and its portable `ggml_compute_fp32_to_fp16` rounds the same way. The hot loops
//! call these per element, where a call into a crate that detects the CPU on every
//! conversion would dominate.

/// The value of the f16 with bits `h` (exact).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1F);
    let man = u32::from(h & 0x3FF);
    if exp == 0x1F {
        // infinity or NaN
        f32::from_bits(sign | 0x7F80_0000 | (man << 13))
    } else if exp != 0 {
        f32::from_bits(sign | ((exp + 112) << 23) | (man << 13))
    } else {
        // zero or subnormal: man · 2^-24, exact
        let v = man as f32 * (1.0 / 16_777_216.0);
        f32::from_bits(sign | v.to_bits())
    }
}

/// `x` rounded to the nearest f16 value (ties to even; ±∞ from 65520 up), as an `f32`.
#[inline(always)]
pub fn round_f16(x: f32) -> f32 {
    let bits = x.to_bits();
    let sign = bits & 0x8000_0000;
    let a = f32::from_bits(bits & 0x7FFF_FFFF);
    let r = if a.is_nan() {
        return x;
    } else if a >= 65520.0 {
        f32::INFINITY
    } else if a < 1.0 / 16384.0 {
        // f16 subnormals (and below): multiples of 2^-24; the scaling is exact.
        (a * 16_777_216.0).round_ties_even() * (1.0 / 16_777_216.0)
    } else {
        // normal: keep 10 fraction bits, round to nearest even (a carry moves into the
        // exponent, as it should)
        let b = a.to_bits();
        let lsb = (b >> 13) & 1;
        f32::from_bits((b + 0x0FFF + lsb) & !0x1FFF)
    };
    f32::from_bits(sign | r.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn conversions_match_ieee() {
        for h in 0..=u16::MAX {
            let want = f16::from_bits(h).to_f32();
            let got = f16_to_f32(h);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{h:#x}"
            );
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..2_000_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // half the samples near the f16 range, half anywhere
            let bits = if i % 2 == 0 {
                (state as u32 & 0x83FF_FFFF) | (((state >> 32) as u32 % 40 + 96) << 23)
            } else {
                state as u32
            };
            let x = f32::from_bits(bits);
            let want = f16::from_f32(x).to_f32();
            let got = round_f16(x);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{x:e}"
            );
        }
        for x in [
            65504.0f32,
            65519.99,
            65520.0,
            -65520.0,
            6.1035156e-5,
            5.9604645e-8,
            2.9802322e-8,
            2.9802326e-8,
            0.0,
            -0.0,
        ] {
            assert_eq!(
                round_f16(x).to_bits(),
                f16::from_f32(x).to_f32().to_bits(),
                "{x:e}"
            );
        }
    }
}
