//! CPU dequantization, bit-exact with ggml's `dequantize_row_*` (ggml-quants.c)
//! and with gguf-py's numpy port of them.
//!
//! Every weight is computed with the same single-precision operations in the
//! same order as ggml's reference (for Q4_1 `q * d + m`; for Q6_K
//! `(d * sc) * q`). Fusing a multiply-add into an FMA cannot change a result
//! here: every product that feeds an addition is exact in f32 (an f16 scale has
//! 11 significant bits, the integer factors at most 6 more), which the fixture
//! test also confirms. Association does matter: in Q6_K `d * sc * q` may need
//! 25 bits, so a GPU kernel that wants the same bits must multiply `d * sc`
//! first, as ggml does.

use std::borrow::Cow;

use rayon::prelude::*;

use super::blocks::*;
use super::fp16::{bf16_to_f32, f16_to_f32, f32_to_f16_slice};
use super::GgmlType;
use crate::error::shape_error;
use crate::{Error, Result};

/// Elements per rayon task; below twice this, work stays on the calling thread
/// (dequantizing a few thousand weights is faster than waking a thread pool).
const PAR_CHUNK_ELEMENTS: usize = 1 << 16;

/// The block-level dequantizer behind [`dequantize_row`], one impl per block type.
pub(crate) trait Dequantize: QuantBlock {
    /// Writes the block's `Self::ELEMENTS` weights to `y` (exactly that long).
    fn dequantize_into(&self, y: &mut [f32]);
}

/// Implements [`Dequantize`] for a block by calling its inherent `dequantize`
/// on the fixed-size array view of `y`.
macro_rules! dequantize_impl {
    ($($block:ty),*) => {$(
        impl Dequantize for $block {
            #[inline]
            fn dequantize_into(&self, y: &mut [f32]) {
                let y: &mut [f32; <$block as QuantBlock>::ELEMENTS] =
                    y.try_into().expect("callers pass one block's worth of elements");
                self.dequantize(y);
            }
        }
    )*};
}

dequantize_impl!(
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K,
    BlockQ6K
);

impl BlockQ4_0 {
    /// Dequantizes the block (ggml's `dequantize_row_q4_0`).
    pub fn dequantize(&self, y: &mut [f32; QK4_0]) {
        let d = f16_to_f32(self.d.to_bits());
        for (j, &q) in self.qs.iter().enumerate() {
            y[j] = (i32::from(q & 0x0F) - 8) as f32 * d;
            y[j + QK4_0 / 2] = (i32::from(q >> 4) - 8) as f32 * d;
        }
    }
}

impl BlockQ4_1 {
    /// Dequantizes the block (ggml's `dequantize_row_q4_1`).
    pub fn dequantize(&self, y: &mut [f32; QK4_1]) {
        let d = f16_to_f32(self.d.to_bits());
        let m = f16_to_f32(self.m.to_bits());
        for (j, &q) in self.qs.iter().enumerate() {
            y[j] = f32::from(q & 0x0F) * d + m;
            y[j + QK4_1 / 2] = f32::from(q >> 4) * d + m;
        }
    }
}

impl BlockQ5_0 {
    /// Dequantizes the block (ggml's `dequantize_row_q5_0`).
    pub fn dequantize(&self, y: &mut [f32; QK5_0]) {
        let d = f16_to_f32(self.d.to_bits());
        let qh = u32::from_le_bytes(self.qh);
        for (j, &q) in self.qs.iter().enumerate() {
            let xh0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
            y[j] = (i32::from((q & 0x0F) | xh0) - 16) as f32 * d;
            y[j + QK5_0 / 2] = (i32::from((q >> 4) | xh1) - 16) as f32 * d;
        }
    }
}

impl BlockQ5_1 {
    /// Dequantizes the block (ggml's `dequantize_row_q5_1`).
    pub fn dequantize(&self, y: &mut [f32; QK5_1]) {
        let d = f16_to_f32(self.d.to_bits());
        let m = f16_to_f32(self.m.to_bits());
        let qh = u32::from_le_bytes(self.qh);
        for (j, &q) in self.qs.iter().enumerate() {
            let xh0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
            y[j] = f32::from((q & 0x0F) | xh0) * d + m;
            y[j + QK5_1 / 2] = f32::from((q >> 4) | xh1) * d + m;
        }
    }
}

impl BlockQ8_0 {
    /// Dequantizes the block (ggml's `dequantize_row_q8_0`).
    pub fn dequantize(&self, y: &mut [f32; QK8_0]) {
        let d = f16_to_f32(self.d.to_bits());
        for (o, &q) in y.iter_mut().zip(&self.qs) {
            *o = f32::from(q) * d;
        }
    }
}

impl BlockQ2K {
    /// Dequantizes the super-block (ggml's `dequantize_row_q2_K`).
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        let d = f16_to_f32(self.d.to_bits());
        let min = f16_to_f32(self.dmin.to_bits());
        let mut out = y.chunks_exact_mut(16);
        let mut is = 0;
        for half in 0..2 {
            let q = &self.qs[32 * half..32 * half + 32];
            for shift in [0, 2, 4, 6] {
                for part in 0..2 {
                    let sc = self.scales[is];
                    is += 1;
                    let dl = d * f32::from(sc & 0xF);
                    let ml = min * f32::from(sc >> 4);
                    let Some(chunk) = out.next() else { return };
                    for (o, &qb) in chunk.iter_mut().zip(&q[16 * part..16 * part + 16]) {
                        *o = dl * f32::from((qb >> shift) & 3) - ml;
                    }
                }
            }
        }
    }
}

impl BlockQ3K {
    /// Dequantizes the super-block (ggml's `dequantize_row_q3_K`).
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        let d_all = f16_to_f32(self.d.to_bits());
        let scales = self.scales();
        let mut out = y.chunks_exact_mut(16);
        let mut is = 0;
        let mut m: u8 = 1;
        for half in 0..2 {
            let q = &self.qs[32 * half..32 * half + 32];
            for shift in [0, 2, 4, 6] {
                for part in 0..2 {
                    let dl = d_all * (i32::from(scales[is]) - 32) as f32;
                    is += 1;
                    let Some(chunk) = out.next() else { return };
                    let r = 16 * part..16 * part + 16;
                    for ((o, &qb), &hb) in chunk.iter_mut().zip(&q[r.clone()]).zip(&self.hmask[r]) {
                        let low = i32::from((qb >> shift) & 3);
                        let sub = if hb & m != 0 { 0 } else { 4 };
                        *o = dl * (low - sub) as f32;
                    }
                }
                m = m.wrapping_shl(1);
            }
        }
    }
}

impl BlockQ4K {
    /// Dequantizes the super-block (ggml's `dequantize_row_q4_K`).
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        let d = f16_to_f32(self.d.to_bits());
        let min = f16_to_f32(self.dmin.to_bits());
        for (c, (q, out)) in self
            .qs
            .chunks_exact(32)
            .zip(y.chunks_exact_mut(64))
            .enumerate()
        {
            let (sc1, m1) = scale_min_k4(2 * c, &self.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &self.scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            let (lo, hi) = out.split_at_mut(32);
            for ((a, b), &qb) in lo.iter_mut().zip(hi.iter_mut()).zip(q) {
                *a = d1 * f32::from(qb & 0xF) - m1;
                *b = d2 * f32::from(qb >> 4) - m2;
            }
        }
    }
}

impl BlockQ5K {
    /// Dequantizes the super-block (ggml's `dequantize_row_q5_K`).
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        let d = f16_to_f32(self.d.to_bits());
        let min = f16_to_f32(self.dmin.to_bits());
        for (c, (ql, out)) in self
            .qs
            .chunks_exact(32)
            .zip(y.chunks_exact_mut(64))
            .enumerate()
        {
            let (sc1, m1) = scale_min_k4(2 * c, &self.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &self.scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            let (lo, hi) = out.split_at_mut(32);
            for (((a, b), &qb), &hb) in lo.iter_mut().zip(hi.iter_mut()).zip(ql).zip(&self.qh) {
                let h1 = if hb & u1 != 0 { 16 } else { 0 };
                let h2 = if hb & u2 != 0 { 16 } else { 0 };
                *a = d1 * f32::from((qb & 0xF) + h1) - m1;
                *b = d2 * f32::from((qb >> 4) + h2) - m2;
            }
        }
    }
}

impl BlockQ6K {
    /// Dequantizes the super-block (ggml's `dequantize_row_q6_K`).
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        let d = f16_to_f32(self.d.to_bits());
        for half in 0..2 {
            let ql = &self.ql[64 * half..64 * half + 64];
            let qh = &self.qh[32 * half..32 * half + 32];
            let sc = &self.scales[8 * half..8 * half + 8];
            let y = &mut y[128 * half..128 * half + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                // ggml: d * sc * q, evaluated left to right.
                y[l] = d * f32::from(sc[is]) * f32::from(q1);
                y[l + 32] = d * f32::from(sc[is + 2]) * f32::from(q2);
                y[l + 64] = d * f32::from(sc[is + 4]) * f32::from(q3);
                y[l + 96] = d * f32::from(sc[is + 6]) * f32::from(q4);
            }
        }
    }
}

/// The blocks of `src` as a slice of `B`: borrowed when `src` is suitably
/// aligned (the usual case), else copied — raw tensor bytes may start anywhere.
pub(crate) fn blocks_of<B: bytemuck::Pod>(src: &[u8]) -> Cow<'_, [B]> {
    match bytemuck::try_cast_slice::<u8, B>(src) {
        Ok(blocks) => Cow::Borrowed(blocks),
        Err(_) => Cow::Owned(
            src.chunks_exact(std::mem::size_of::<B>())
                .map(bytemuck::pod_read_unaligned)
                .collect(),
        ),
    }
}

/// Dequantizes whole blocks; sizes were checked by the caller.
fn dequantize_blocks<B: Dequantize>(src: &[u8], dst: &mut [f32]) {
    let blocks = blocks_of::<B>(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(B::ELEMENTS)) {
        b.dequantize_into(y);
    }
}

/// The error for a type that an operation does not implement.
pub(crate) fn unsupported(op: &'static str, ty: GgmlType) -> Error {
    Error::UnsupportedType {
        op,
        type_name: ty.name().to_string(),
    }
}

/// Checks that `n` elements of `ty` are `bytes` bytes long: `n` a whole number
/// of blocks (else [`Error::Shape`]) and `bytes` exactly their size (else
/// [`Error::DataSize`]).
pub(crate) fn check_sizes(op: &'static str, ty: GgmlType, n: usize, bytes: usize) -> Result<()> {
    let expected = ty.row_bytes(n).map_err(|_| {
        shape_error(
            op,
            format!(
                "{n} elements of {ty} are not a multiple of its block size {} (or overflow usize)",
                ty.block_size()
            ),
        )
    })?;
    if bytes != expected {
        return Err(Error::DataSize {
            what: format!("{op}: {n} elements of {ty}"),
            expected,
            actual: bytes,
        });
    }
    Ok(())
}

/// Dequantizes one row (or any whole number of blocks) of type `ty` from the raw
/// ggml bytes `src` into `dst`, bit-exact with ggml's reference.
///
/// `dst.len()` is the element count: it must be a multiple of `ty.block_size()`
/// ([`Error::Shape`]) and `src` exactly `ty.row_bytes(dst.len())` bytes
/// ([`Error::DataSize`]). Types without a CPU dequantizer
/// ([`GgmlType::is_dequantizable`] false) give [`Error::UnsupportedType`].
/// Runs on the calling thread; see [`dequantize_into`] for the parallel version.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    const OP: &str = "dequantize";
    if !ty.is_dequantizable() {
        return Err(unsupported(OP, ty));
    }
    check_sizes(OP, ty, dst.len(), src.len())?;
    match ty {
        GgmlType::F32 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        GgmlType::BF16 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        GgmlType::Q4_0 => dequantize_blocks::<BlockQ4_0>(src, dst),
        GgmlType::Q4_1 => dequantize_blocks::<BlockQ4_1>(src, dst),
        GgmlType::Q5_0 => dequantize_blocks::<BlockQ5_0>(src, dst),
        GgmlType::Q5_1 => dequantize_blocks::<BlockQ5_1>(src, dst),
        GgmlType::Q8_0 => dequantize_blocks::<BlockQ8_0>(src, dst),
        GgmlType::Q2_K => dequantize_blocks::<BlockQ2K>(src, dst),
        GgmlType::Q3_K => dequantize_blocks::<BlockQ3K>(src, dst),
        GgmlType::Q4_K => dequantize_blocks::<BlockQ4K>(src, dst),
        GgmlType::Q5_K => dequantize_blocks::<BlockQ5K>(src, dst),
        GgmlType::Q6_K => dequantize_blocks::<BlockQ6K>(src, dst),
        _ => return Err(unsupported(OP, ty)),
    }
    Ok(())
}

/// Elements per parallel chunk for `ty`: a whole number of blocks near
/// [`PAR_CHUNK_ELEMENTS`].
pub(crate) fn chunk_elements(ty: GgmlType) -> usize {
    let bs = ty.block_size();
    (PAR_CHUNK_ELEMENTS / bs).max(1) * bs
}

/// [`dequantize_row`] for large inputs: splits `dst` into chunks of whole blocks
/// and dequantizes them on rayon's thread pool (results are identical: every
/// block is independent). Same size checks and errors.
pub fn dequantize_into(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    if !ty.is_dequantizable() {
        return Err(unsupported("dequantize", ty));
    }
    check_sizes("dequantize", ty, dst.len(), src.len())?;
    let chunk = chunk_elements(ty);
    if dst.len() < 2 * chunk {
        return dequantize_row(ty, src, dst);
    }
    // Exact: `chunk` is a whole number of blocks, so byte chunks line up.
    let chunk_bytes = chunk / ty.block_size() * ty.type_size();
    dst.par_chunks_mut(chunk)
        .zip(src.par_chunks(chunk_bytes))
        .try_for_each(|(d, s)| dequantize_row(ty, s, d))
}

/// Dequantizes `n` elements of `ty` from `src` into a new vector (parallel for
/// large `n`).
///
/// Sizes are checked before anything is allocated, so a wrong `n` from a
/// corrupt file is an error, not a huge allocation.
pub fn dequantize(ty: GgmlType, src: &[u8], n: usize) -> Result<Vec<f32>> {
    if !ty.is_dequantizable() {
        return Err(unsupported("dequantize", ty));
    }
    check_sizes("dequantize", ty, n, src.len())?;
    let mut out = vec![0.0f32; n];
    dequantize_into(ty, src, &mut out)?;
    Ok(out)
}

/// Dequantizes `n` elements of `ty` to f16 (e.g. for an f16 GPU buffer).
///
/// Each weight is dequantized to f32 exactly as [`dequantize`] does, then
/// rounded to the nearest f16 (ties to even, as ggml's `GGML_FP32_TO_FP16`);
/// F16 input is copied bit for bit. Parallel for large `n`; sizes checked first.
pub fn dequantize_to_f16(ty: GgmlType, src: &[u8], n: usize) -> Result<Vec<half::f16>> {
    const OP: &str = "dequantize_to_f16";
    if !ty.is_dequantizable() {
        return Err(unsupported(OP, ty));
    }
    check_sizes(OP, ty, n, src.len())?;
    if ty == GgmlType::F16 {
        return Ok(src
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
            .collect());
    }
    let mut out = vec![half::f16::ZERO; n];
    let chunk = chunk_elements(ty);
    let chunk_bytes = chunk / ty.block_size() * ty.type_size();
    // One f32 scratch chunk per task, so the f32 copy never exists in full.
    out.par_chunks_mut(chunk)
        .zip(src.par_chunks(chunk_bytes))
        .try_for_each(|(d, s)| {
            let mut tmp = vec![0.0f32; d.len()];
            dequantize_row(ty, s, &mut tmp)?;
            f32_to_f16_slice(&tmp, d);
            Ok::<(), Error>(())
        })?;
    Ok(out)
}
