//! Dot products of a quantized weight row with 8-bit activations, as llama.cpp's AVX2
//! build computes them (`ggml_vec_dot_q4_1_q8_1`, `ggml_vec_dot_q5_1_q8_1`,
//! `ggml_vec_dot_q8_0_q8_0` in `ggml/src/ggml-cpu/arch/x86/quants.c`; tinyBLAS's
//! `tinyBLAS_Q0_AVX` in `llamafile/sgemm.cpp`, used for Q8_0 when two or more tokens are
//! multiplied at once, computes each element in exactly the same way).
//!
//! Per 32-element block, the integer products are summed exactly into eight lanes (lane
//! `l` holds elements `4l .. 4l + 4`: `maddubs` then `madd` with ones), converted to
//! float, and accumulated as `acc[l] = fma(dx · dy, lane[l], acc[l])`; the result is
//! `hsum8(acc)` ([`hsum8`]), plus for the types with a minimum (Q4_1, Q5_1)
//! `summs = fma(m, s, summs)` summed block by block (GCC contracts that line).
//!
//! Weight types other than these three have no emulation here (llama.cpp's x86 build
//! repacks Q4_0, IQ4_NL and Q4_K into interleaved layouts, tiles the other K-quants, and
//! uses other kernels for F16); see [`WeightKind::of`].

use rocmforge_kernels::quant::GgmlType;

use super::f16::f16_to_f32;
use super::quantize::{Q8Kind, Q8Rows, QK8};
use super::simd::{fma, hsum8};

/// The weight types with an emulated dot product, and their block layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightKind {
    /// `block_q4_1`: d, m (f16), 16 bytes of nibbles; 20 bytes.
    Q4_1,
    /// `block_q5_1`: d, m (f16), 32 high bits, 16 bytes of nibbles; 24 bytes.
    Q5_1,
    /// `block_q8_0`: d (f16), 32 signed bytes; 34 bytes.
    Q8_0,
}

impl WeightKind {
    /// The emulated kind of `ty`, or `None`.
    pub fn of(ty: GgmlType) -> Option<Self> {
        match ty {
            GgmlType::Q4_1 => Some(WeightKind::Q4_1),
            GgmlType::Q5_1 => Some(WeightKind::Q5_1),
            GgmlType::Q8_0 => Some(WeightKind::Q8_0),
            _ => None,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            WeightKind::Q4_1 => 20,
            WeightKind::Q5_1 => 24,
            WeightKind::Q8_0 => 34,
        }
    }

    /// The activation type the dot product takes (ggml's `vec_dot_type`).
    pub fn activation(self) -> Q8Kind {
        match self {
            WeightKind::Q4_1 | WeightKind::Q5_1 => Q8Kind::Q8_1,
            WeightKind::Q8_0 => Q8Kind::Q8_0,
        }
    }

    /// Whether the type has a minimum term (`m · s`).
    pub fn has_min(self) -> bool {
        matches!(self, WeightKind::Q4_1 | WeightKind::Q5_1)
    }
}

/// A weight row decoded for the dot products: per block the scale and minimum as `f32`
/// (exact from f16), and the 32 integer quants (unsigned nibbles or 5-bit values, or
/// signed bytes) as `i16` (the width the vector code multiplies in).
#[derive(Clone, Debug, Default)]
pub struct DecodedRow {
    /// Quants, 32 per block.
    pub q: Vec<i16>,
    /// Scale per block.
    pub d: Vec<f32>,
    /// Minimum per block (Q4_1, Q5_1; 0 otherwise).
    pub m: Vec<f32>,
}

#[inline(always)]
fn half(b: &[u8], o: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[o], b[o + 1]]))
}

impl DecodedRow {
    /// Decodes the row `bytes` (whole blocks of `kind`), reusing the buffers.
    #[inline(always)]
    pub fn decode(&mut self, kind: WeightKind, bytes: &[u8]) {
        let nb = bytes.len() / kind.block_bytes();
        self.q.resize(nb * QK8, 0);
        self.d.resize(nb, 0.0);
        self.m.resize(nb, 0.0);
        let blocks = bytes.chunks_exact(kind.block_bytes());
        // The scales first, then the quants (a loop of byte operations alone vectorizes).
        for ((b, d), m) in blocks.clone().zip(self.d.iter_mut()).zip(self.m.iter_mut()) {
            *d = half(b, 0);
            *m = if kind.has_min() { half(b, 2) } else { 0.0 };
        }
        let quants = blocks.zip(self.q.chunks_exact_mut(QK8));
        match kind {
            WeightKind::Q4_1 => {
                for (b, q) in quants {
                    let qs: &[u8; 16] = b[4..20].try_into().expect("16 bytes");
                    let q: &mut [i16; QK8] = q.try_into().expect("32 quants");
                    for j in 0..16 {
                        // (widened first: word shifts vectorize, byte shifts do not)
                        let v = i16::from(qs[j]);
                        q[j] = v & 0x0F;
                        q[j + 16] = v >> 4;
                    }
                }
            }
            WeightKind::Q5_1 => {
                for (b, q) in quants {
                    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                    let qs: &[u8; 16] = b[8..24].try_into().expect("16 bytes");
                    let q: &mut [i16; QK8] = q.try_into().expect("32 quants");
                    for j in 0..16 {
                        let hi = |k: usize| (((qh >> k) & 1) << 4) as i16;
                        let v = i16::from(qs[j]);
                        q[j] = (v & 0x0F) | hi(j);
                        q[j + 16] = (v >> 4) | hi(j + 16);
                    }
                }
            }
            WeightKind::Q8_0 => {
                for (b, q) in quants {
                    let qs: &[u8; QK8] = b[2..34].try_into().expect("32 bytes");
                    let q: &mut [i16; QK8] = q.try_into().expect("32 quants");
                    for j in 0..QK8 {
                        q[j] = i16::from(qs[j] as i8);
                    }
                }
            }
        }
    }
}

/// The dot product of decoded weight row `w` with activation row `t` of `a` (same number
/// of blocks).
#[inline(always)]
pub fn dot(kind: WeightKind, w: &DecodedRow, a: &Q8Rows, t: usize) -> f32 {
    let nb = w.d.len();
    let aq = &a.qs[t * nb * QK8..][..nb * QK8];
    let ad = &a.d[t * nb..][..nb];
    let as_ = &a.s[t * nb..][..nb];
    let mut lanes = [0.0f32; 8];
    let mut summs = 0.0f32;
    for b in 0..nb {
        let x: &[i16; QK8] = w.q[b * QK8..][..QK8].try_into().expect("32 quants");
        let y: &[i16; QK8] = aq[b * QK8..][..QK8].try_into().expect("32 quants");
        if kind.has_min() {
            // summs += m * s, contracted to an FMA by GCC.
            summs = fma(w.m[b], as_[b], summs);
        }
        // Q4_1: d0*d1; Q5_1: dx*dy; Q8_0: x.d*y.d — one f32 product either way.
        let dd = w.d[b] * ad[b];
        // maddubs + madd: exact integer sums of four products per lane.
        let mut pairs = [0i32; 16];
        for (p, (xp, yp)) in pairs
            .iter_mut()
            .zip(x.chunks_exact(2).zip(y.chunks_exact(2)))
        {
            *p = i32::from(xp[0]) * i32::from(yp[0]) + i32::from(xp[1]) * i32::from(yp[1]);
        }
        let mut sums = [0i32; 8];
        for (sum, p) in sums.iter_mut().zip(pairs.chunks_exact(2)) {
            *sum = p[0] + p[1];
        }
        for (lane, &sum) in lanes.iter_mut().zip(&sums) {
            *lane = fma(dd, sum as f32, *lane);
        }
    }
    let s = hsum8(&lanes);
    if kind.has_min() {
        s + summs
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    /// The dot product of a weight row with quantized activations equals the product of
    /// the dequantized weights with the activations up to the activation rounding.
    #[test]
    fn q4_1_dot_is_close_to_the_dequantized_product() {
        let mut bytes = vec![0u8; 20 * 2];
        for (b, blk) in bytes.chunks_mut(20).enumerate() {
            blk[0..2].copy_from_slice(&f16::from_f32(0.01 * (b + 1) as f32).to_le_bytes());
            blk[2..4].copy_from_slice(&f16::from_f32(-0.05).to_le_bytes());
            for (j, q) in blk[4..].iter_mut().enumerate() {
                *q = (j * 7 + b) as u8;
            }
        }
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 19) as f32 - 9.0) * 0.1)
            .collect();
        let a = Q8Rows::quantize(&x, 64, Q8Kind::Q8_1);
        let mut w = DecodedRow::default();
        w.decode(WeightKind::Q4_1, &bytes);
        let mut exact = 0.0f64;
        for b in 0..2 {
            for j in 0..32 {
                let wv = w.d[b] * f32::from(w.q[32 * b + j]) + w.m[b];
                exact += f64::from(wv) * f64::from(x[32 * b + j]);
            }
        }
        let got = f64::from(dot(WeightKind::Q4_1, &w, &a, 0));
        assert!((got - exact).abs() < 0.02, "{got} vs {exact}");
    }
}
