//! Activations quantized to 8 bits, and matrix × vector over them: the reference of the
//! GPU's integer decode path (`quant_q8.hip`).
//!
//! For quantized weights, decode multiplies each weight row with one activation vector.
//! Done in f32, decoding a 4-bit weight and multiplying it costs more instructions than
//! the memory system needs to deliver it. llama.cpp's answer, followed here: quantize the
//! activation vector once per token to blocks of 32 signed bytes with one scale each,
//! then take each block's product with a weight block as integer dot products (four byte
//! products per instruction) and apply the two blocks' scales in float.
//!
//! # The quantized activation format
//!
//! A row of `cols` values (`cols` a multiple of 32, `nb = cols / 32` blocks) takes
//! [`q8_row_bytes`]`(cols)` bytes: `cols · 5/4` rounded up to a multiple of 16, so that
//! every row of a multi-token buffer starts 16-byte aligned:
//!
//! | bytes | what |
//! |---|---|
//! | `[0, cols)` | `qs`: the values as `i8`, block `b` at `[32b, 32b + 32)` |
//! | `[cols, cols + 8·nb)` | per block, two little-endian `f32`: `d = amax / 127` (amax: the largest magnitude in the block) and `s = d · Σ qs` (what the weight types with an offset or a minimum need) |
//! | 8 bytes when `nb` is odd | zeros (padding) |
//!
//! `q = round(x · (1/d))`, rounding half away from zero and clamped to ±127 (`0` when
//! `d = 0`); the dequantized value is `q · d`, within `d / 2` of `x`. The GPU kernel
//! computes every byte the same way: [`quantize_activations`] and the GPU's
//! `quantize_activations` give identical buffers (f32 division and multiplication are
//! correctly rounded on both, and `round` is the same function).
//!
//! # The product
//!
//! [`matvec_q8`] is what the GPU's `matvec_q8` computes: for each 32-element chunk of a
//! weight row (a block, or an eighth of a K-quant super-block) the integer products of
//! the raw weight quants with the activation quants, scaled by the weight's and the
//! activation block's scales, the offset or minimum terms using the block's `s` (or the
//! exact integer sum of the activation quants, for the types whose scales change every
//! 16 elements: Q2_K, Q3_K, Q6_K). The reference evaluates these terms in `f64` and
//! rounds each row once; the GPU sums them in `f32`, in four 8-element parts per chunk,
//! so the two agree within f32 rounding of the terms' magnitudes
//! ([`matvec_q8_error_scale`]). Against the exact product of the weights with the f32
//! activations, the difference is the activation quantization error, at most
//! `Σ |w| · d / 2` per row.

use rayon::prelude::*;

use super::check_len;
use super::weights::WeightMatrix;
use crate::error::shape_error;
use crate::quant::fp16::f16_to_f32;
use crate::quant::{blocks::scale_min_k4, GgmlType, K_SCALE_SIZE};
use crate::Result;

/// Values per activation block.
pub const Q8_BLOCK: usize = 32;

/// Bytes of one quantized activation row of `cols` values (`cols` a multiple of 32):
/// `cols + 8 · cols / 32`, rounded up to a multiple of 16. Saturates at `usize::MAX`
/// (no buffer that large exists, so any size check against it fails).
pub fn q8_row_bytes(cols: usize) -> usize {
    let raw = cols.saturating_add((cols / Q8_BLOCK).saturating_mul(8));
    raw.checked_next_multiple_of(16).unwrap_or(usize::MAX)
}

/// Bytes of `n_tokens` quantized activation rows of `cols` values: `n_tokens` ×
/// [`q8_row_bytes`]`(cols)`; row `t` starts at `t · q8_row_bytes(cols)`. Saturates at
/// `usize::MAX` like [`q8_row_bytes`].
pub fn q8_activation_bytes(n_tokens: usize, cols: usize) -> usize {
    n_tokens.saturating_mul(q8_row_bytes(cols))
}

/// The weight types [`matvec_q8`] (and the GPU's integer matvec) implement: the 32-element
/// block types and the K-quants.
pub fn q8_matvec_supported(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
    )
}

fn check_cols(op: &'static str, cols: usize) -> Result<()> {
    if cols == 0 || cols % Q8_BLOCK != 0 {
        return Err(shape_error(
            op,
            format!("{cols} columns: 8-bit activations need a positive multiple of 32"),
        ));
    }
    Ok(())
}

/// Quantizes `n_tokens` rows of `cols` activations (`x`: `[n_tokens, cols]`) into `out`
/// ([`q8_activation_bytes`]`(n_tokens, cols)` bytes, every byte written, padding as
/// zeros), in the format of the [module](self).
///
/// Errors if `cols` is not a positive multiple of 32 or a length does not match.
pub fn quantize_activations(x: &[f32], n_tokens: usize, cols: usize, out: &mut [u8]) -> Result<()> {
    const OP: &str = "quantize_activations";
    check_cols(OP, cols)?;
    let n = n_tokens
        .checked_mul(cols)
        .ok_or_else(|| shape_error(OP, "n_tokens × cols overflows usize"))?;
    check_len(OP, "x", x.len(), n)?;
    check_len(OP, "out", out.len(), q8_activation_bytes(n_tokens, cols))?;
    if n_tokens == 0 {
        return Ok(());
    }
    let row_bytes = q8_row_bytes(cols);
    out.par_chunks_mut(row_bytes)
        .zip(x.par_chunks(cols))
        .for_each(|(row, xr)| quantize_row(xr, row));
    Ok(())
}

/// One row: `xr` of `cols` values into `row` of `q8_row_bytes(cols)` bytes.
fn quantize_row(xr: &[f32], row: &mut [u8]) {
    let cols = xr.len();
    let (qs, rest) = row.split_at_mut(cols);
    rest.fill(0);
    for (b, (xb, qb)) in xr
        .chunks_exact(Q8_BLOCK)
        .zip(qs.chunks_exact_mut(Q8_BLOCK))
        .enumerate()
    {
        // f32::max ignores a NaN, as the kernel's fmaxf does.
        let amax = xb.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in qb.iter_mut().zip(xb) {
            // round: half away from zero, as C's roundf. Clamped with max/min, not
            // clamp(): a NaN becomes -127, as fmaxf(NaN, -127) does on the GPU.
            #[allow(clippy::manual_clamp)]
            let qi = (v * id).round().max(-127.0).min(127.0) as i32;
            sum += qi;
            *q = qi as i8 as u8;
        }
        let s = d * sum as f32;
        rest[8 * b..8 * b + 4].copy_from_slice(&d.to_le_bytes());
        rest[8 * b + 4..8 * b + 8].copy_from_slice(&s.to_le_bytes());
    }
}

/// One quantized activation row, split into its parts.
struct Q8Row<'a> {
    qs: &'a [u8],
    ds: &'a [u8],
}

impl Q8Row<'_> {
    /// The 32 quants of block `b`.
    fn block(&self, b: usize) -> [i32; 32] {
        std::array::from_fn(|i| i32::from(self.qs[32 * b + i] as i8))
    }

    /// `(d, s)` of block `b`.
    fn scales(&self, b: usize) -> (f32, f32) {
        let f = |o: usize| f32::from_le_bytes(self.ds[o..o + 4].try_into().expect("4 bytes"));
        (f(8 * b), f(8 * b + 4))
    }
}

fn half(b: &[u8], o: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[o], b[o + 1]]))
}

/// How one 32-element weight chunk combines with an activation block: `q` are the raw
/// integer quants of the chunk as the kernel feeds them to the dot products.
enum Chunk {
    /// `d · (xd · Σ q x − offset · s)` (Q4_0: offset 8, Q5_0: 16; Q8_0: 0).
    Offset { d: f32, offset: f64, q: [i32; 32] },
    /// `d · xd · Σ q x + m · s` (Q4_1, Q5_1; Q4_K, Q5_K with `d = d·sc`, `m = −dmin·min`).
    Min { d: f32, m: f32, q: [i32; 32] },
    /// Per 16-element half `h`: `xd · (dl[h] · Σ q x − ml[h] · Σ x)` (Q2_K; Q3_K and
    /// Q6_K with their offsets already in `q` and `ml = 0`).
    Halves {
        dl: [f32; 2],
        ml: [f32; 2],
        q: [i32; 32],
    },
}

/// Whether part `p` (0..4) of a chunk pairs low/high nibbles (elements `4p..4p+4` and
/// `16+4p..16+4p+4`) rather than elements `8p..8p+8`: the element split of the GPU's
/// four lanes per chunk, which only matters for [`matvec_q8_error_scale`].
fn nibble_split(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1
    )
}

fn part_elements(split: bool, p: usize) -> [usize; 8] {
    std::array::from_fn(|k| {
        if split {
            if k < 4 {
                4 * p + k
            } else {
                16 + 4 * p + k - 4
            }
        } else {
            8 * p + k
        }
    })
}

/// Chunk `c` (32 elements) of a weight row in type `ty`. The caller guarantees that `ty`
/// is supported and `row` holds the chunk.
fn decode_chunk(ty: GgmlType, row: &[u8], c: usize) -> Chunk {
    let nib = |qs: &[u8], j: usize| -> i32 {
        i32::from(if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 })
    };
    match ty {
        GgmlType::Q4_0 => {
            let b = &row[18 * c..18 * c + 18];
            Chunk::Offset {
                d: half(b, 0),
                offset: 8.0,
                q: std::array::from_fn(|j| nib(&b[2..], j)),
            }
        }
        GgmlType::Q4_1 => {
            let b = &row[20 * c..20 * c + 20];
            Chunk::Min {
                d: half(b, 0),
                m: half(b, 2),
                q: std::array::from_fn(|j| nib(&b[4..], j)),
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let (size, qh_at) = if ty == GgmlType::Q5_0 {
                (22, 2)
            } else {
                (24, 4)
            };
            let b = &row[size * c..size * (c + 1)];
            let qh = u32::from_le_bytes(b[qh_at..qh_at + 4].try_into().expect("4 bytes"));
            let q =
                std::array::from_fn(|j| nib(&b[qh_at + 4..], j) | (((qh >> j) & 1) << 4) as i32);
            if ty == GgmlType::Q5_0 {
                Chunk::Offset {
                    d: half(b, 0),
                    offset: 16.0,
                    q,
                }
            } else {
                Chunk::Min {
                    d: half(b, 0),
                    m: half(b, 2),
                    q,
                }
            }
        }
        GgmlType::Q8_0 => {
            let b = &row[34 * c..34 * c + 34];
            Chunk::Offset {
                d: half(b, 0),
                offset: 0.0,
                q: std::array::from_fn(|j| i32::from(b[2 + j] as i8)),
            }
        }
        GgmlType::Q2_K => {
            let b = &row[84 * (c / 8)..84 * (c / 8) + 84];
            let (h, j) = (c % 8 / 4, c % 4);
            let sc = |p: usize| b[8 * h + 2 * j + p];
            let (d, dmin) = (half(b, 80), half(b, 82));
            Chunk::Halves {
                dl: [0, 1].map(|p| d * f32::from(sc(p) & 15)),
                ml: [0, 1].map(|p| dmin * f32::from(sc(p) >> 4)),
                q: std::array::from_fn(|l| i32::from((b[16 + 32 * h + l] >> (2 * j)) & 3)),
            }
        }
        GgmlType::Q3_K => {
            let b = &row[110 * (c / 8)..110 * (c / 8) + 110];
            let (h, j) = (c % 8 / 4, c % 4);
            let scales = &b[96..108];
            let scale = |is: usize| -> i32 {
                let low = if is < 8 {
                    scales[is] & 15
                } else {
                    scales[is - 8] >> 4
                };
                let high = (scales[8 + is % 4] >> (2 * (is / 4))) & 3;
                i32::from(low | (high << 4)) - 32
            };
            let d = half(b, 108);
            Chunk::Halves {
                dl: [0, 1].map(|p| d * scale(8 * h + 2 * j + p) as f32),
                ml: [0.0; 2],
                q: std::array::from_fn(|l| {
                    let low = i32::from((b[32 + 32 * h + l] >> (2 * j)) & 3);
                    let high = i32::from((b[l] >> (4 * h + j)) & 1);
                    low + 4 * high - 4
                }),
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let size = if ty == GgmlType::Q4_K { 144 } else { 176 };
            let b = &row[size * (c / 8)..size * (c / 8 + 1)];
            let s = c % 8;
            let scales: &[u8; K_SCALE_SIZE] = b[4..16].try_into().expect("12 bytes");
            let (sc, m) = scale_min_k4(s, scales);
            let q = std::array::from_fn(|l| {
                if ty == GgmlType::Q4_K {
                    i32::from((b[16 + 32 * (s / 2) + l] >> (4 * (s % 2))) & 15)
                } else {
                    i32::from((b[48 + 32 * (s / 2) + l] >> (4 * (s % 2))) & 15)
                        + 16 * i32::from((b[16 + l] >> s) & 1)
                }
            });
            Chunk::Min {
                d: half(b, 0) * f32::from(sc),
                m: -(half(b, 2) * f32::from(m)),
                q,
            }
        }
        GgmlType::Q6_K => {
            let b = &row[210 * (c / 8)..210 * (c / 8) + 210];
            let (h, k) = (c % 8 / 4, c % 4);
            let d = half(b, 208);
            Chunk::Halves {
                dl: [0, 1].map(|p| d * f32::from(b[192 + 8 * h + 2 * k + p] as i8)),
                ml: [0.0; 2],
                q: std::array::from_fn(|l| {
                    let low = i32::from((b[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15);
                    let high = i32::from((b[128 + 32 * h + l] >> (2 * k)) & 3);
                    (low | (high << 4)) - 32
                }),
            }
        }
        _ => unreachable!("decode_chunk is only called for supported types"),
    }
}

/// The chunk's product with activation block `x` (scales `xd`, `xs`) in f64, and the sum
/// of the magnitudes of the terms the GPU adds in f32 (per part of 8 elements).
fn chunk_product(chunk: &Chunk, split: bool, x: &[i32; 32], xd: f32, xs: f32) -> (f64, f64) {
    let (xd, xs) = (f64::from(xd), f64::from(xs));
    let mut value = 0.0;
    let mut magnitude = 0.0;
    for p in 0..4 {
        let e = part_elements(split, p);
        let dot = |q: &[i32; 32]| e.iter().map(|&i| q[i] * x[i]).sum::<i32>() as f64;
        let xsum = e.iter().map(|&i| x[i]).sum::<i32>() as f64;
        let (a, b) = match chunk {
            Chunk::Offset { d, offset, q } => {
                let d = f64::from(*d);
                (d * xd * dot(q), -d * offset / 4.0 * xs)
            }
            Chunk::Min { d, m, q } => (f64::from(*d) * xd * dot(q), f64::from(*m) * xs / 4.0),
            Chunk::Halves { dl, ml, q } => {
                let h = e[0] / 16;
                (
                    xd * f64::from(dl[h]) * dot(q),
                    -xd * f64::from(ml[h]) * xsum,
                )
            }
        };
        value += a + b;
        magnitude += a.abs() + b.abs();
    }
    (value, magnitude)
}

fn check_matvec(op: &'static str, w: &WeightMatrix<'_>, xq: &[u8], y: &[f32]) -> Result<()> {
    if !q8_matvec_supported(w.ty()) {
        return Err(crate::Error::UnsupportedType {
            op,
            type_name: w.ty().name().to_string(),
        });
    }
    check_cols(op, w.cols())?;
    check_len(op, "xq", xq.len(), q8_row_bytes(w.cols()))?;
    check_len(op, "y", y.len(), w.rows())
}

/// Runs `f(value, magnitude)` over the rows of `w` times the quantized row `xq`.
fn rows_q8(w: &WeightMatrix<'_>, xq: &[u8], y: &mut [f32], pick: fn(f64, f64) -> f64) {
    let cols = w.cols();
    let x = Q8Row {
        qs: &xq[..cols],
        ds: &xq[cols..],
    };
    let split = nibble_split(w.ty());
    let chunks = cols / Q8_BLOCK;
    let blocks: Vec<([i32; 32], f32, f32)> = (0..chunks)
        .map(|b| {
            let (d, s) = x.scales(b);
            (x.block(b), d, s)
        })
        .collect();
    y.par_iter_mut().enumerate().for_each(|(r, yr)| {
        let row = w.row(r);
        let mut total = 0.0f64;
        for (c, (xb, xd, xs)) in blocks.iter().enumerate() {
            let (v, m) = chunk_product(&decode_chunk(w.ty(), row, c), split, xb, *xd, *xs);
            total += pick(v, m);
        }
        *yr = total as f32;
    });
}

/// `y = W · x̂` for one token, `x̂` the quantized activations `xq`
/// ([`q8_row_bytes`]`(cols)` bytes, from [`quantize_activations`]): what the GPU's
/// integer matvec computes (see the [module](self)), each row's terms summed in f64 and
/// rounded once.
///
/// Errors if the type has no integer path ([`q8_matvec_supported`];
/// [`Error::UnsupportedType`](crate::Error::UnsupportedType)), `cols` is not a multiple
/// of 32, or a length does not match.
pub fn matvec_q8(w: &WeightMatrix<'_>, xq: &[u8], y: &mut [f32]) -> Result<()> {
    check_matvec("matvec_q8", w, xq, y)?;
    rows_q8(w, xq, y, |v, _| v);
    Ok(())
}

/// Per row, the sum of the magnitudes of the terms [`matvec_q8`] adds (per 8-element part
/// of each chunk, as the GPU splits them): a GPU result that sums them in f32 is within a
/// small multiple of `2⁻²⁴` times this of [`matvec_q8`]. For tests.
///
/// Errors as [`matvec_q8`].
pub fn matvec_q8_error_scale(w: &WeightMatrix<'_>, xq: &[u8], out: &mut [f32]) -> Result<()> {
    check_matvec("matvec_q8_error_scale", w, xq, out)?;
    rows_q8(w, xq, out, |_, m| m);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{dequantize_f32, matvec};
    use crate::quant;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    const TYPES: [GgmlType; 10] = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    #[test]
    fn sizes_round_rows_to_16_bytes() {
        assert_eq!(q8_row_bytes(32), 48); // 40 -> 48
        assert_eq!(q8_row_bytes(64), 80);
        assert_eq!(q8_row_bytes(96), 128); // 120 -> 128
        assert_eq!(q8_row_bytes(4096), 5120);
        assert_eq!(q8_activation_bytes(3, 96), 384);
        assert_eq!(q8_activation_bytes(0, 4096), 0);
        assert_eq!(q8_activation_bytes(usize::MAX, 4096), usize::MAX);
        assert_eq!(q8_row_bytes(usize::MAX - 31), usize::MAX);
    }

    /// Dequantized activations of token `t`.
    fn dequantized(xq: &[u8], t: usize, cols: usize) -> Vec<f32> {
        let rb = q8_row_bytes(cols);
        let row = &xq[t * rb..(t + 1) * rb];
        let x = Q8Row {
            qs: &row[..cols],
            ds: &row[cols..],
        };
        (0..cols / 32)
            .flat_map(|b| {
                let (d, _) = x.scales(b);
                x.block(b).map(|q| q as f32 * d)
            })
            .collect()
    }

    #[test]
    fn quantization_is_within_half_a_step_and_uses_the_full_range() {
        for (n_tokens, cols) in [(1, 32), (3, 96), (2, 4096), (5, 160)] {
            let mut x = random(n_tokens * cols, cols as u64);
            x[..32].fill(0.0); // an all-zero block
            if x.len() > 33 {
                x[33] = -3.5; // a block whose amax is negative
            }
            let mut xq = vec![0xAAu8; q8_activation_bytes(n_tokens, cols)];
            quantize_activations(&x, n_tokens, cols, &mut xq).unwrap();
            let rb = q8_row_bytes(cols);
            for t in 0..n_tokens {
                let row = &xq[t * rb..(t + 1) * rb];
                let xr = &x[t * cols..(t + 1) * cols];
                let deq = dequantized(&xq, t, cols);
                let qrow = Q8Row {
                    qs: &row[..cols],
                    ds: &row[cols..],
                };
                for b in 0..cols / 32 {
                    let (d, s) = qrow.scales(b);
                    let q = qrow.block(b);
                    let amax = xr[32 * b..32 * b + 32]
                        .iter()
                        .fold(0f32, |a, v| a.max(v.abs()));
                    assert_eq!(d, amax / 127.0);
                    assert_eq!(s, d * q.iter().sum::<i32>() as f32);
                    if amax > 0.0 {
                        assert_eq!(q.iter().map(|v| v.abs()).max(), Some(127));
                    } else {
                        assert!(q.iter().all(|&v| v == 0));
                    }
                    for i in 32 * b..32 * b + 32 {
                        assert!(
                            (deq[i] - xr[i]).abs() <= d * 0.5 * (1.0 + 1e-5),
                            "token {t} value {i}: {} vs {}",
                            deq[i],
                            xr[i]
                        );
                    }
                }
                // Padding of an odd number of blocks: zeros.
                assert!(row[cols + 8 * (cols / 32)..].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn quantization_handles_special_values() {
        let mut x = vec![0.0f32; 64];
        x[0] = f32::NAN;
        x[1] = 127.0; // d = 1: halves round away from zero
        x[2] = -127.0;
        x[3] = 0.5;
        x[4] = -2.5;
        x[5] = 2.5;
        x[32] = f32::INFINITY;
        x[33] = 1.0;
        let mut xq = vec![0u8; q8_row_bytes(64)];
        quantize_activations(&x, 1, 64, &mut xq).unwrap();
        let q = |i: usize| xq[i] as i8;
        assert_eq!((q(0), q(1), q(2)), (-127, 127, -127));
        assert_eq!((q(3), q(4), q(5)), (1, -3, 3));
        // amax = inf: d = inf, 1/d = 0; inf·0 is NaN and clamps to -127, finite x to 0.
        assert_eq!((q(32), q(33)), (-127, 0));
    }

    #[test]
    fn quantization_rejects_bad_shapes() {
        let x = vec![0f32; 96];
        let mut out = vec![0u8; q8_activation_bytes(1, 96)];
        assert!(quantize_activations(&x, 1, 96, &mut out).is_ok());
        assert!(quantize_activations(&x, 1, 95, &mut out).is_err());
        assert!(quantize_activations(&x, 2, 48, &mut out).is_err());
        assert!(quantize_activations(&x, 1, 96, &mut out[1..]).is_err());
        assert!(quantize_activations(&x[1..], 1, 96, &mut out).is_err());
        assert!(quantize_activations(&[], 0, 96, &mut []).is_ok());
        assert!(quantize_activations(&[], 0, 0, &mut []).is_err());
    }

    fn weights(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        quant::quantize(ty, &random(rows * cols, seed)).unwrap()
    }

    fn shapes(ty: GgmlType) -> Vec<(usize, usize)> {
        let k = ty.block_size();
        // Rows and block counts that are not multiples of any rows-per-block or wave size.
        vec![(1, k), (7, 3 * k), (37, 5 * k), (5, 17 * k)]
    }

    #[test]
    fn matvec_q8_is_within_the_activation_quantization_error_of_the_exact_product() {
        for ty in TYPES {
            for (seed, (rows, cols)) in shapes(ty).into_iter().enumerate() {
                let bytes = weights(ty, rows, cols, seed as u64);
                let w = WeightMatrix::new(ty, &bytes, rows, cols).unwrap();
                let x = random(cols, 50 + seed as u64);
                let mut xq = vec![0u8; q8_row_bytes(cols)];
                quantize_activations(&x, 1, cols, &mut xq).unwrap();
                let mut exact = vec![0f32; rows];
                matvec(&w, &x, &mut exact).unwrap();
                let mut approx = vec![0f32; rows];
                matvec_q8(&w, &xq, &mut approx).unwrap();
                // Exact product with the dequantized activations: only f32 rounding of
                // the reference's terms separates it from matvec_q8.
                let xd = dequantized(&xq, 0, cols);
                let mut deq_product = vec![0f32; rows];
                matvec(&w, &xd, &mut deq_product).unwrap();
                let mut scale = vec![0f32; rows];
                matvec_q8_error_scale(&w, &xq, &mut scale).unwrap();
                let mut wd = vec![0f32; rows * cols];
                dequantize_f32(&w, &mut wd).unwrap();
                let mut rel_err_sum = 0.0f64;
                let mut rel_norm = 0.0f64;
                for r in 0..rows {
                    let wr = &wd[r * cols..(r + 1) * cols];
                    // |Σ w (x - x̂)| <= Σ |w| d/2.
                    let bound: f32 = (0..cols)
                        .map(|i| wr[i].abs() * (x[i] - xd[i]).abs())
                        .sum::<f32>();
                    let half_step: f32 = (0..cols)
                        .map(|i| {
                            let b = i / 32;
                            let amax = x[32 * b..32 * b + 32]
                                .iter()
                                .fold(0f32, |a, v| a.max(v.abs()));
                            wr[i].abs() * amax / 127.0 * 0.5
                        })
                        .sum();
                    assert!(bound <= half_step * (1.0 + 1e-5) + 1e-6);
                    let abs_dot: f32 = (0..cols).map(|i| (wr[i] * xd[i]).abs()).sum();
                    let rounding = 1e-6 * (scale[r] + abs_dot) + 1e-7;
                    let what = format!("{} {rows}x{cols} row {r}", ty.name());
                    assert!(
                        (approx[r] - exact[r]).abs() <= bound * (1.0 + 1e-4) + rounding,
                        "{what}: q8 {} exact {} (bound {bound})",
                        approx[r],
                        exact[r]
                    );
                    assert!(
                        (approx[r] - deq_product[r]).abs() <= rounding,
                        "{what}: q8 {} vs dequantized-activation product {} (scale {})",
                        approx[r],
                        deq_product[r],
                        scale[r]
                    );
                    rel_err_sum += f64::from((approx[r] - exact[r]).powi(2));
                    rel_norm += f64::from(exact[r].powi(2));
                }
                // And the error is small in aggregate: 8-bit activations lose about 1%.
                if rows > 1 {
                    let rel = (rel_err_sum / rel_norm).sqrt();
                    assert!(
                        rel < 0.03,
                        "{} {rows}x{cols}: relative error {rel}",
                        ty.name()
                    );
                }
            }
        }
    }

    #[test]
    fn matvec_q8_checks_types_and_shapes() {
        let bytes = weights(GgmlType::Q4_0, 2, 64, 1);
        let w = WeightMatrix::new(GgmlType::Q4_0, &bytes, 2, 64).unwrap();
        let xq = vec![0u8; q8_row_bytes(64)];
        let mut y = vec![0f32; 2];
        assert!(matvec_q8(&w, &xq, &mut y).is_ok());
        assert!(matvec_q8(&w, &xq[1..], &mut y).is_err());
        assert!(matvec_q8(&w, &xq, &mut y[1..]).is_err());
        let f = quant::quantize(GgmlType::F16, &random(128, 2)).unwrap();
        let wf = WeightMatrix::new(GgmlType::F16, &f, 2, 64).unwrap();
        assert!(matches!(
            matvec_q8(&wf, &xq, &mut y),
            Err(crate::Error::UnsupportedType { .. })
        ));
        for ty in TYPES {
            assert!(q8_matvec_supported(ty));
        }
        assert!(!q8_matvec_supported(GgmlType::F32));
        assert!(!q8_matvec_supported(GgmlType::BF16));
    }
}
