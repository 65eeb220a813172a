//! ggml's reference K-quant quantizers (`quantize_row_q{2,3,4,5,6}_K_ref` of
//! ggml-quants.c) and the search helpers they use, ported operation for
//! operation.
//!
//! Bit-exactness needs the same float operations in the same order: every
//! `a * b * c` below is `(a * b) * c` as in C, integer quants are converted to
//! f32 where C converts them, and nothing is fused into an FMA (Rust never
//! contracts). The fixtures were made by ggml's C compiled with
//! `-ffp-contract=off`; a ggml build that lets the compiler fuse multiply-adds
//! can pick different quants for a few weights.
//!
//! gguf-py has no K-quant quantizers, so these are checked against ggml's C
//! only (tests/quant_fixtures.rs).

use super::blocks::*;
use super::fp16::f16_to_f32;
use super::quantize::to_f16;

/// Below this a group counts as all zeros (ggml's `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// Rounds to the nearest integer, ties to even, for |x| <= 2^22 (ggml's
/// `nearest_int`): adding 1.5 * 2^23 leaves the rounded integer in the low
/// mantissa bits. Outside that range (or for NaN) the result is meaningless,
/// as in ggml, but every caller clamps it.
#[inline]
pub(crate) fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    (val.to_bits() as i32 & 0x007F_FFFF) - 0x0040_0000
}

/// ggml's `make_qx_quants` for `rmse_type == 1` without importance weights
/// (the only form `quantize_row_q6_K_ref` uses): symmetric quants in
/// `-nmax..nmax`, stored as `l + nmax` in `ls`, with a search over 18 nearby
/// scales minimising the x²-weighted squared error. Returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], ls: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &xi in x {
        let ax = xi.abs();
        if ax > amax {
            amax = ax;
            max = xi;
        }
    }
    if amax < GROUP_MAX_EPS {
        ls.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = -nmaxf / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (l_out, &xi) in ls.iter_mut().zip(x) {
        let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *l_out = (l + nmax) as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &xi in x {
            let lf = nearest_int(iscale * xi).clamp(-nmax, nmax - 1) as f32;
            let w = xi * xi;
            sumlx += w * xi * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (l_out, &xi) in ls.iter_mut().zip(x) {
                let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
                *l_out = (nmax + l) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse = true` (as `quantize_row_q3_K_ref`
/// calls it): symmetric quants in `-nmax..nmax` refined by up to five passes of
/// coordinate descent on the x²-weighted error; stores `l + nmax` in `ls` and
/// returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], ls: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &xi in x {
        let ax = xi.abs();
        if ax > amax {
            amax = ax;
            max = xi;
        }
    }
    if amax < GROUP_MAX_EPS {
        ls.fill(0);
        return 0.0;
    }
    // C: `-nmax / max`, the int converted to float.
    let iscale = (-nmax) as f32 / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (l_out, &xi) in ls.iter_mut().zip(x) {
        let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *l_out = l as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (l_cur, &xi) in ls.iter_mut().zip(x) {
            let w = xi * xi;
            let cur = f32::from(*l_cur);
            let mut slx = sumlx - w * xi * cur;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * cur * cur;
                let new_l = nearest_int(xi * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(*l_cur) {
                    let nf = new_l as f32;
                    slx += w * xi * nf;
                    sl2 += w * nf * nf;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l_cur = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in ls.iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Parameters of one `make_qkx2_quants` call (ggml passes them positionally).
struct Qkx2 {
    /// Largest quant.
    nmax: i32,
    /// First relative scale step of the search.
    rmin: f32,
    /// Relative scale increment per step.
    rdelta: f32,
    /// Number of steps (`nstep + 1` scales are tried).
    nstep: i32,
    /// Minimise absolute (true) or squared (false) error.
    use_mad: bool,
}

/// ggml's `make_qkx2_quants`: asymmetric quants `0..=nmax` with scale and
/// (non-positive) minimum fitted by weighted least squares over a sweep of
/// candidate scales. Writes the quants to `ls`, returns `(scale, -min)`.
fn make_qkx2_quants(p: &Qkx2, x: &[f32], weights: &[f32], ls: &mut [u8]) -> (f32, f32) {
    let n = x.len();
    let nmaxf = p.nmax as f32;
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        ls.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        ls[i] = l.clamp(0, p.nmax) as u8;
        let mut diff = scale * f32::from(ls[i]) + min - x[i];
        diff = if p.use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let mut diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                diff = if p.use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                ls.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Packs 2-bit quants (0..4) as Q2_K and Q3_K store them: byte `32 * h + l` holds
/// elements `128 * h + l + 32 * k` in bits `2k..2k+2`.
fn pack_2bit(ls: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for (q, l) in qs.chunks_exact_mut(32).zip(ls.chunks_exact(128)) {
        for i in 0..32 {
            q[i] = l[i] | (l[i + 32] << 2) | (l[i + 64] << 4) | (l[i + 96] << 6);
        }
    }
}

impl BlockQ2K {
    /// Quantizes 256 values (ggml's `quantize_row_q2_K_ref`).
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        const Q4SCALE: f32 = 15.0;
        let p = Qkx2 {
            nmax: 3,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        let mut ls = [0u8; QK_K];
        let mut mins = [0.0f32; QK_K / 16];
        let mut scales = [0.0f32; QK_K / 16];
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..QK_K / 16 {
            let xg = &x[16 * j..16 * j + 16];
            let mut weights = [0.0f32; 16];
            for (w, &v) in weights.iter_mut().zip(xg) {
                *w = v.abs();
            }
            let (s, m) = make_qkx2_quants(&p, xg, &weights, &mut ls[16 * j..16 * j + 16]);
            scales[j] = s;
            mins[j] = m;
            if s > max_scale {
                max_scale = s;
            }
            if m > max_min {
                max_min = m;
            }
        }

        let mut y: BlockQ2K = bytemuck::Zeroable::zeroed();
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (sc, &s) in y.scales.iter_mut().zip(&scales) {
                *sc = nearest_int(iscale * s) as u8;
            }
            y.d = to_f16(max_scale / Q4SCALE);
        } else {
            y.scales = [0; QK_K / 16];
            y.d = to_f16(0.0);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (sc, &m) in y.scales.iter_mut().zip(&mins) {
                *sc |= (nearest_int(iscale * m) << 4) as u8;
            }
            y.dmin = to_f16(max_min / Q4SCALE);
        } else {
            y.dmin = to_f16(0.0);
        }
        let (yd, ydmin) = (f16_to_f32(y.d.to_bits()), f16_to_f32(y.dmin.to_bits()));
        for j in 0..QK_K / 16 {
            let d = yd * f32::from(y.scales[j] & 0xF);
            if d == 0.0 {
                continue;
            }
            let dm = ydmin * f32::from(y.scales[j] >> 4);
            for ii in 0..16 {
                let l = nearest_int((x[16 * j + ii] + dm) / d);
                ls[16 * j + ii] = l.clamp(0, 3) as u8;
            }
        }
        pack_2bit(&ls, &mut y.qs);
        y
    }
}

impl BlockQ3K {
    /// Quantizes 256 values (ggml's `quantize_row_q3_K_ref`).
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        let mut ls = [0i8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..QK_K / 16 {
            scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut ls[16 * j..16 * j + 16]);
            let scale = scales[j].abs();
            if scale > amax {
                amax = scale;
                max_scale = scales[j];
            }
        }

        let mut y: BlockQ3K = bytemuck::Zeroable::zeroed();
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                // C: `int8_t l = nearest_int(...)`, a wrapping conversion,
                // then clamped to -32..=31 and offset to 0..=63.
                let l = nearest_int(iscale * s) as i8;
                let l = (i32::from(l).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    y.scales[j] = l & 0xF;
                } else {
                    y.scales[j - 8] |= (l & 0xF) << 4;
                }
                y.scales[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
            }
            y.d = to_f16(1.0 / iscale);
        } else {
            y.d = to_f16(0.0);
        }

        let yd = f16_to_f32(y.d.to_bits());
        let unpacked = y.scales();
        for j in 0..QK_K / 16 {
            let sc = i32::from(unpacked[j]) - 32;
            let d = yd * sc as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let l = nearest_int(x[16 * j + ii] / d).clamp(-4, 3);
                ls[16 * j + ii] = (l + 4) as i8;
            }
        }

        // High bit of the first 32 quants into bit 0 of hmask[0..32], the next
        // 32 into bit 1, and so on.
        let mut lu = [0u8; QK_K];
        for (j, (&l, u)) in ls.iter().zip(lu.iter_mut()).enumerate() {
            let mut l = l as u8;
            if l > 3 {
                y.hmask[j % 32] |= 1 << (j / 32);
                l -= 4;
            }
            *u = l;
        }
        pack_2bit(&lu, &mut y.qs);
        y
    }
}

/// Packs the six-bit scales and mins of Q4_K/Q5_K (inverse of [`scale_min_k4`]).
fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut s = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

/// The part ggml's Q4_K and Q5_K reference quantizers share: per group of 32,
/// fit scale and min with `make_qkx2_quants`, quantize those to six bits against
/// the super-block's largest, then requantize every weight (`0..=nmax`) with the
/// rounded scales. Returns `(d, dmin, packed scales, quants)`.
fn quantize_k4(
    x: &[f32; QK_K],
    p: &Qkx2,
) -> (half::f16, half::f16, [u8; K_SCALE_SIZE], [u8; QK_K]) {
    let mut ls = [0u8; QK_K];
    let mut mins = [0.0f32; QK_K / 32];
    let mut scales = [0.0f32; QK_K / 32];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..QK_K / 32 {
        let xg = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xg {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0.0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xg) {
            *w = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(p, xg, &weights, &mut ls[32 * j..32 * j + 32]);
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut lsc, mut lmn) = ([0u8; 8], [0u8; 8]);
    for j in 0..QK_K / 32 {
        // C: `uint8_t ls = nearest_int(...)`, a wrapping conversion, then MIN(63, ..).
        lsc[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lmn[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let packed = pack_scale_min_k4(&lsc, &lmn);
    let d = to_f16(max_scale / 63.0);
    let dmin = to_f16(max_min / 63.0);

    let (df, dminf) = (f16_to_f32(d.to_bits()), f16_to_f32(dmin.to_bits()));
    for j in 0..QK_K / 32 {
        let (sc, m) = scale_min_k4(j, &packed);
        let dd = df * f32::from(sc);
        if dd == 0.0 {
            continue;
        }
        let dm = dminf * f32::from(m);
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / dd);
            ls[32 * j + ii] = l.clamp(0, p.nmax) as u8;
        }
    }
    (d, dmin, packed, ls)
}

impl BlockQ4K {
    /// Quantizes 256 values (ggml's `quantize_row_q4_K_ref`).
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        let p = Qkx2 {
            nmax: 15,
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        };
        let (d, dmin, scales, ls) = quantize_k4(x, &p);
        let mut qs = [0u8; QK_K / 2];
        for (q, l) in qs.chunks_exact_mut(32).zip(ls.chunks_exact(64)) {
            for i in 0..32 {
                q[i] = l[i] | (l[i + 32] << 4);
            }
        }
        Self {
            d,
            dmin,
            scales,
            qs,
        }
    }
}

impl BlockQ5K {
    /// Quantizes 256 values (ggml's `quantize_row_q5_K_ref`).
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        let p = Qkx2 {
            nmax: 31,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: false,
        };
        let (d, dmin, scales, ls) = quantize_k4(x, &p);
        let mut qs = [0u8; QK_K / 2];
        let mut qh = [0u8; QK_K / 8];
        for (c, (q, l)) in qs.chunks_exact_mut(32).zip(ls.chunks_exact(64)).enumerate() {
            let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for i in 0..32 {
                let mut l1 = l[i];
                if l1 > 15 {
                    l1 -= 16;
                    qh[i] |= m1;
                }
                let mut l2 = l[i + 32];
                if l2 > 15 {
                    l2 -= 16;
                    qh[i] |= m2;
                }
                q[i] = l1 | (l2 << 4);
            }
        }
        Self {
            d,
            dmin,
            scales,
            qh,
            qs,
        }
    }
}

impl BlockQ6K {
    /// Quantizes 256 values (ggml's `quantize_row_q6_K_ref`).
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        let mut ls = [0i8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for ib in 0..QK_K / 16 {
            let scale = make_qx_quants(
                32,
                &x[16 * ib..16 * ib + 16],
                &mut ls[16 * ib..16 * ib + 16],
            );
            scales[ib] = scale;
            let abs_scale = scale.abs();
            if abs_scale > max_abs_scale {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }

        let mut y: BlockQ6K = bytemuck::Zeroable::zeroed();
        if max_abs_scale < GROUP_MAX_EPS {
            y.d = to_f16(0.0);
            return y;
        }

        let iscale = -128.0 / max_scale;
        y.d = to_f16(1.0 / iscale);
        for (sc, &s) in y.scales.iter_mut().zip(&scales) {
            // C: MIN(127, nearest_int(..)) stored to int8_t (wrapping).
            *sc = nearest_int(iscale * s).min(127) as i8;
        }

        let yd = f16_to_f32(y.d.to_bits());
        for j in 0..QK_K / 16 {
            let d = yd * f32::from(y.scales[j]);
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let l = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
                ls[16 * j + ii] = (l + 32) as i8;
            }
        }

        for h in 0..2 {
            let l = &ls[128 * h..128 * h + 128];
            let ql = &mut y.ql[64 * h..64 * h + 64];
            for i in 0..32 {
                let q1 = l[i] as u8 & 0xF;
                let q2 = l[i + 32] as u8 & 0xF;
                let q3 = l[i + 64] as u8 & 0xF;
                let q4 = l[i + 96] as u8 & 0xF;
                ql[i] = q1 | (q3 << 4);
                ql[i + 32] = q2 | (q4 << 4);
            }
            let qh = &mut y.qh[32 * h..32 * h + 32];
            for i in 0..32 {
                qh[i] = (l[i] as u8 >> 4)
                    | ((l[i + 32] as u8 >> 4) << 2)
                    | ((l[i + 64] as u8 >> 4) << 4)
                    | ((l[i + 96] as u8 >> 4) << 6);
            }
        }
        y
    }
}
