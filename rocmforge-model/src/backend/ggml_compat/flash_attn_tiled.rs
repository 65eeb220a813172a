//! The tiled path of llama.cpp's CPU flash attention (`ggml_compute_forward_flash_attn_ext_tiled`
//! in `ggml/src/ggml-cpu/ops.cpp`, with `simd_gemm` from `simd-gemm.h` and
//! `ggml_vec_soft_max_f32` from `vec.cpp`), taken when a call has 64 or more query tokens.
//!
//! For one query row, over tiles of 64 cache positions starting at 0:
//!
//! ```text
//! KQ[j]  = fma-chain over d of Q[d] · K[j][d]      (f32 query, f16 keys widened; from 0)
//! KQ[j]  = KQ[j] · scale + mask[j]                  (mask 0 or −∞)
//! M'     = max(M, max_j KQ[j]);  if M' > M: VKQ *= e^(M−M'), S *= e^(M−M')
//! KQ[j]  = v_expf(KQ[j] − M'),   S = f32(f64(S) + Σ_groups f64(hsum8(KQ[8g..8g+8])))
//! VKQ[d] = fma-chain over j of KQ[j] · V[j][d]      (starting from VKQ[d])
//! ```
//!
//! then `VKQ / S`. A tile with no visible position for the row changes nothing (ggml
//! either skips it or zeroes the row's weights), so each row is computed on its own.

use super::activation::v_expf;
use super::flash_attn::HeadKv;
use super::simd::{fma, hsum8};

/// Cache positions per tile (`GGML_FA_TILE_KV`).
const TILE_KV: usize = 64;

/// One query row (`q`, f32) at position `pos`, against a head's keys and values (cache
/// positions `0 .. n_kv_pad` as ggml sees them; those after `pos` are masked).
#[inline(always)]
pub(super) fn tiled_row(
    q: &[f32],
    kv: &HeadKv,
    d: usize,
    pos: usize,
    n_kv_pad: usize,
    scale: f32,
) -> Vec<f32> {
    let mut m = f32::NEG_INFINITY;
    let mut s_sum = 0.0f32;
    let mut vkq = vec![0.0f32; d];
    let mut ic = 0;
    while ic < n_kv_pad && ic <= pos {
        let kv_tile = TILE_KV.min(n_kv_pad - ic);
        // Visible positions of this tile: ic ..= pos (and within the written cache).
        let visible = (pos + 1 - ic).min(kv_tile);
        // KQ = Q · K_tile: per position an FMA chain over d (positions side by side).
        let mut kq = [0.0f32; TILE_KV];
        for (dd, &qd) in q.iter().enumerate() {
            let kt = &kv.kt[dd * kv.n_kv + ic..][..visible];
            for (acc, &kd) in kq.iter_mut().zip(kt) {
                *acc = fma(kd, qd, *acc);
            }
        }
        for (j, x) in kq.iter_mut().enumerate() {
            *x = if j < visible {
                *x * scale + 0.0
            } else {
                f32::NEG_INFINITY
            };
        }
        let tile_max = kq
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| if a > b { a } else { b });
        let m_new = m.max(tile_max);
        if m_new > m {
            let ms = (m - m_new).exp();
            for x in vkq.iter_mut() {
                *x *= ms;
            }
            s_sum *= ms;
        }
        m = m_new;
        let mut sum = 0.0f64;
        for group in kq.chunks_exact_mut(8) {
            for x in group.iter_mut() {
                *x = v_expf(*x - m_new);
            }
            let g: &[f32; 8] = (&*group).try_into().expect("8 lanes");
            sum += f64::from(hsum8(g));
        }
        s_sum = (f64::from(s_sum) + sum) as f32;
        // VKQ += KQ · V_tile: per element an FMA chain over the positions.
        for (j, &w) in kq.iter().enumerate().take(visible) {
            let v = &kv.v[(ic + j) * d..][..d];
            for (acc, &vd) in vkq.iter_mut().zip(v) {
                *acc = fma(vd, w, *acc);
            }
        }
        ic += TILE_KV;
    }
    let s_inv = if s_sum == 0.0 { 0.0 } else { 1.0 / s_sum };
    for x in vkq.iter_mut() {
        *x *= s_inv;
    }
    vkq
}
