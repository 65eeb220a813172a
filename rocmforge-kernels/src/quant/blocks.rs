//! ggml's quantization blocks, byte for byte (ggml-common.h).
//!
//! Each struct is `#[repr(C)]`, `bytemuck::Pod`, 2-byte aligned (its f16 fields),
//! without padding, and has compile-time assertions of its size and of every
//! field offset. The HIP C++ kernels declare the same structs; the byte offsets
//! in each doc comment are the contract between the two.
//!
//! Conventions used in the docs below:
//! * "f16" is IEEE binary16, little-endian (ggml's `ggml_half`), held here as
//!   [`half::f16`]; convert it with [`f16_to_f32`](super::fp16::f16_to_f32).
//! * Element `i` of a block is the `i`-th value of the row that the block covers.
//! * Multi-byte integers are little-endian: GGUF files are, and so are the hosts
//!   and GPUs rocmforge runs on (a big-endian target does not compile).

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::GgmlType;

#[cfg(target_endian = "big")]
compile_error!("rocmforge reads ggml's little-endian block layouts in place");

/// Elements per Q4_0 block.
pub const QK4_0: usize = 32;
/// Elements per Q4_1 block.
pub const QK4_1: usize = 32;
/// Elements per Q5_0 block.
pub const QK5_0: usize = 32;
/// Elements per Q5_1 block.
pub const QK5_1: usize = 32;
/// Elements per Q8_0 block.
pub const QK8_0: usize = 32;
/// Elements per K-quant super-block (Q2_K … Q6_K).
pub const QK_K: usize = 256;
/// Bytes of the packed 6-bit scales and mins of Q4_K and Q5_K (and of Q3_K's scales).
pub const K_SCALE_SIZE: usize = 12;

/// A ggml block type: its [`GgmlType`] and element count.
///
/// Lets generic code (launchers, loaders) get sizes from the struct; the byte
/// size is `size_of::<Self>()`, equal to `Self::TYPE.type_size()`.
pub trait QuantBlock: Pod {
    /// The ggml type whose blocks these are.
    const TYPE: GgmlType;
    /// Elements per block (`Self::TYPE.block_size()`).
    const ELEMENTS: usize;
}

/// Q4_0: 32 weights, `w = d * (q - 8)`, 18 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 2 | `d` | f16 scale |
/// | 2 | 16 | `qs` | 4-bit quants: element `j` (0..16) is `qs[j] & 0xF`, element `j + 16` is `qs[j] >> 4` |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale (f16).
    pub d: f16,
    /// Quants, low nibbles first half, high nibbles second half.
    pub qs: [u8; QK4_0 / 2],
}

/// Q4_1: 32 weights, `w = d * q + m`, 20 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 2 | `d` | f16 scale |
/// | 2 | 2 | `m` | f16 minimum (offset) |
/// | 4 | 16 | `qs` | 4-bit quants, as in Q4_0 (element `j` low nibble of `qs[j]`, `j + 16` high nibble) |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale (f16).
    pub d: f16,
    /// Minimum (f16).
    pub m: f16,
    /// Quants.
    pub qs: [u8; QK4_1 / 2],
}

/// Q5_0: 32 weights, `w = d * (q - 16)` with 5-bit `q`, 22 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 2 | `d` | f16 scale |
/// | 2 | 4 | `qh` | fifth bits: read as a little-endian u32, bit `j` is bit 4 of element `j` (0..32) |
/// | 6 | 16 | `qs` | low 4 bits: element `j` (0..16) `qs[j] & 0xF`, element `j + 16` `qs[j] >> 4` |
///
/// `qh` is a byte array, not a u32, so the struct is 2-aligned like ggml's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale (f16).
    pub d: f16,
    /// Fifth bits, little-endian u32.
    pub qh: [u8; 4],
    /// Low four bits.
    pub qs: [u8; QK5_0 / 2],
}

/// Q5_1: 32 weights, `w = d * q + m` with 5-bit `q`, 24 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 2 | `d` | f16 scale |
/// | 2 | 2 | `m` | f16 minimum |
/// | 4 | 4 | `qh` | fifth bits, as in Q5_0 |
/// | 8 | 16 | `qs` | low 4 bits, as in Q5_0 |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale (f16).
    pub d: f16,
    /// Minimum (f16).
    pub m: f16,
    /// Fifth bits, little-endian u32.
    pub qh: [u8; 4],
    /// Low four bits.
    pub qs: [u8; QK5_1 / 2],
}

/// Q8_0: 32 weights, `w = d * q` with signed 8-bit `q`, 34 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 2 | `d` | f16 scale |
/// | 2 | 32 | `qs` | i8 quants, element `j` is `qs[j]` |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale (f16).
    pub d: f16,
    /// Quants.
    pub qs: [i8; QK8_0],
}

/// Q2_K: 256 weights in 16 groups of 16, `w = d * sc * q - dmin * m`, 84 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 16 | `scales` | per group `g`: `scales[g] & 0xF` is the 4-bit scale `sc`, `scales[g] >> 4` the 4-bit min `m` |
/// | 16 | 64 | `qs` | 2-bit quants |
/// | 80 | 2 | `d` | f16 super-scale of the scales |
/// | 82 | 2 | `dmin` | f16 super-scale of the mins |
///
/// Element `e` (0..256): half `h = e / 128`, `r = e % 128`, shift `s = 2 * (r / 32)`,
/// `l = r % 32`; `q = (qs[32 * h + l] >> s) & 3`; group `g = e / 16`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ2K {
    /// 4-bit scales (low nibble) and mins (high nibble) of the 16 groups.
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale of the scales (f16).
    pub d: f16,
    /// Super-block scale of the mins (f16).
    pub dmin: f16,
}

/// Q3_K: 256 weights in 16 groups of 16, `w = d * (sc - 32) * (q - 4 * !hbit)`, 110 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 32 | `hmask` | high bits: for element `e`, bit `e / 32` of `hmask[e % 32]`; a **clear** bit subtracts 4 |
/// | 32 | 64 | `qs` | low 2 bits, packed as in Q2_K |
/// | 96 | 12 | `scales` | 16 six-bit scales, see [`BlockQ3K::scales`] |
/// | 108 | 2 | `d` | f16 super-scale |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ3K {
    /// High bit of each quant.
    pub hmask: [u8; QK_K / 8],
    /// Low two bits of each quant.
    pub qs: [u8; QK_K / 4],
    /// Packed 6-bit scales.
    pub scales: [u8; K_SCALE_SIZE],
    /// Super-block scale (f16).
    pub d: f16,
}

/// Q4_K: 256 weights in 8 groups of 32, `w = d * sc * q - dmin * m`, 144 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 2 | `d` | f16 super-scale of the scales |
/// | 2 | 2 | `dmin` | f16 super-scale of the mins |
/// | 4 | 12 | `scales` | 8 six-bit scales and 8 six-bit mins, see [`scale_min_k4`] |
/// | 16 | 128 | `qs` | 4-bit quants: element `e`, chunk `c = e / 64`, `l = e % 32`: `qs[32 * c + l] & 0xF` if `e % 64 < 32`, else `>> 4` |
///
/// Group `g = e / 32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale of the scales (f16).
    pub d: f16,
    /// Super-block scale of the mins (f16).
    pub dmin: f16,
    /// Packed 6-bit scales and mins.
    pub scales: [u8; K_SCALE_SIZE],
    /// 4-bit quants.
    pub qs: [u8; QK_K / 2],
}

/// Q5_K: 256 weights in 8 groups of 32, `w = d * sc * q - dmin * m` with 5-bit `q`, 176 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 2 | `d` | f16 super-scale of the scales |
/// | 2 | 2 | `dmin` | f16 super-scale of the mins |
/// | 4 | 12 | `scales` | as in Q4_K ([`scale_min_k4`]) |
/// | 16 | 32 | `qh` | fifth bits: for element `e`, bit `e / 32` of `qh[e % 32]` |
/// | 48 | 128 | `qs` | low 4 bits, packed as in Q4_K |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale of the scales (f16).
    pub d: f16,
    /// Super-block scale of the mins (f16).
    pub dmin: f16,
    /// Packed 6-bit scales and mins.
    pub scales: [u8; K_SCALE_SIZE],
    /// Fifth bits.
    pub qh: [u8; QK_K / 8],
    /// Low four bits.
    pub qs: [u8; QK_K / 2],
}

/// Q6_K: 256 weights in 16 groups of 16, `w = d * sc * (q - 32)` with 6-bit `q`, 210 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 128 | `ql` | low 4 bits |
/// | 128 | 64 | `qh` | high 2 bits |
/// | 192 | 16 | `scales` | i8 scale per group of 16 |
/// | 208 | 2 | `d` | f16 super-scale |
///
/// Element `e`: half `h = e / 128`, `r = e % 128`, quarter `k = r / 32`, `l = r % 32`:
/// low bits `(ql[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xF`,
/// high bits `(qh[32 * h + l] >> (2 * k)) & 3`; group `g = e / 16`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low four bits of the quants.
    pub ql: [u8; QK_K / 2],
    /// High two bits of the quants.
    pub qh: [u8; QK_K / 4],
    /// 8-bit group scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale (f16).
    pub d: f16,
}

/// Implements [`QuantBlock`] and asserts the size against [`GgmlType::type_size`].
macro_rules! quant_block {
    ($block:ty, $ty:expr, $n:expr) => {
        impl QuantBlock for $block {
            const TYPE: GgmlType = $ty;
            const ELEMENTS: usize = $n;
        }
        const _: () = assert!(core::mem::size_of::<$block>() == $ty.type_size());
        const _: () = assert!($n == $ty.block_size());
        const _: () = assert!(core::mem::align_of::<$block>() == 2);
    };
}

quant_block!(BlockQ4_0, GgmlType::Q4_0, QK4_0);
quant_block!(BlockQ4_1, GgmlType::Q4_1, QK4_1);
quant_block!(BlockQ5_0, GgmlType::Q5_0, QK5_0);
quant_block!(BlockQ5_1, GgmlType::Q5_1, QK5_1);
quant_block!(BlockQ8_0, GgmlType::Q8_0, QK8_0);
quant_block!(BlockQ2K, GgmlType::Q2_K, QK_K);
quant_block!(BlockQ3K, GgmlType::Q3_K, QK_K);
quant_block!(BlockQ4K, GgmlType::Q4_K, QK_K);
quant_block!(BlockQ5K, GgmlType::Q5_K, QK_K);
quant_block!(BlockQ6K, GgmlType::Q6_K, QK_K);

/// Asserts at compile time that `$field` of `$block` sits at byte `$offset`.
macro_rules! offsets {
    ($block:ty { $($field:ident : $offset:expr),* $(,)? }) => {
        $(const _: () = assert!(core::mem::offset_of!($block, $field) == $offset);)*
    };
}

// The sizes ggml-common.h asserts, spelled as offsets (the HIP mirror's contract).
offsets!(BlockQ4_0 { d: 0, qs: 2 });
offsets!(BlockQ4_1 { d: 0, m: 2, qs: 4 });
offsets!(BlockQ5_0 { d: 0, qh: 2, qs: 6 });
offsets!(BlockQ5_1 {
    d: 0,
    m: 2,
    qh: 4,
    qs: 8
});
offsets!(BlockQ8_0 { d: 0, qs: 2 });
offsets!(BlockQ2K {
    scales: 0,
    qs: 16,
    d: 80,
    dmin: 82
});
offsets!(BlockQ3K {
    hmask: 0,
    qs: 32,
    scales: 96,
    d: 108
});
offsets!(BlockQ4K {
    d: 0,
    dmin: 2,
    scales: 4,
    qs: 16
});
offsets!(BlockQ5K {
    d: 0,
    dmin: 2,
    scales: 4,
    qh: 16,
    qs: 48
});
offsets!(BlockQ6K {
    ql: 0,
    qh: 128,
    scales: 192,
    d: 208
});

/// Scale and min of group `j` (0..8) of a Q4_K/Q5_K block (ggml's `get_scale_min_k4`).
///
/// The 12 bytes hold eight 6-bit scales and eight 6-bit mins:
/// for `j < 4`, scale = `q[j] & 63`, min = `q[j + 4] & 63`;
/// for `j >= 4`, scale = `(q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)`,
/// min = `(q[j + 4] >> 4) | ((q[j] >> 6) << 4)`.
#[inline]
pub fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

impl BlockQ3K {
    /// The 16 six-bit group scales, unpacked (0..64; the weight uses `sc - 32`).
    ///
    /// Group `g < 8` has its low nibble in `scales[g] & 0xF`, group `g >= 8` in
    /// `scales[g - 8] >> 4`; the two high bits of group `g` are bits
    /// `2 * (g / 4)` and up of `scales[8 + g % 4]`.
    #[inline]
    pub fn scales(&self) -> [u8; 16] {
        let s = &self.scales;
        let mut out = [0u8; 16];
        for (g, o) in out.iter_mut().enumerate() {
            let low = if g < 8 { s[g] & 0xF } else { s[g - 8] >> 4 };
            let high = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
            *o = low | (high << 4);
        }
        out
    }
}
