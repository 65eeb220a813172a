//! Causal attention as llama.cpp's CPU backend computes it: `ggml_flash_attn_ext` with an
//! f16 KV cache (`ggml_compute_forward_flash_attn_ext_f16` and its helpers in
//! `ggml/src/ggml-cpu/ops.cpp`).
//!
//! llama.cpp resolves `flash_attn = auto` to enabled on the CPU (`llama-context.cpp`:
//! the CPU backend supports the op), and its default cache types are f16
//! (`common.h`: `cache_type_k/v = GGML_TYPE_F16`); with an f32 cache the graph casts K
//! and V to f16 before the op (`llama-graph.cpp`, `build_attn_mha`), so the op always
//! reads f16 keys and values. Here, keys and values are rounded to f16 when read, which
//! gives the same numbers for either cache type.
//!
//! The op has three code paths, chosen per call:
//!
//! * **one query row at a time** (`…_f16_one_chunk`, fewer than 64 query tokens): the
//!   query is rounded to f16, each score is an f16 dot product ([`dot_f16`]) times the
//!   scale, and an online softmax accumulates `V · exp(s − M)` in an **f16** vector
//!   ([`mad_f16`], [`scale_f16`]) with `S = fma(S, ms, vs)`; at the end the f16
//!   accumulator is widened and divided by `S`;
//! * **tiled** (`…_tiled`, 64 or more query tokens, i.e. prefill of a long prompt): scores
//!   of an f32 query against f32-widened keys, 64 positions per tile, each an FMA chain;
//!   per tile `exp` with `ggml_v_expf` and the softmax sum in `f64`; `V` accumulated in
//!   `f32` with FMA chains (module `flash_attn_tiled`);
//! * **split over the cache** (one query token and a padded cache of 512 or more
//!   positions): the positions are split into one chunk per llama.cpp thread, each chunk
//!   runs the one-row path, and the partial results are merged in chunk order
//!   (`ggml_flash_attn_ext_reduce_partials`).
//!
//! Positions after a query's own are masked (skipped). llama.cpp pads the number of cache
//! positions the op sees to a multiple of 256 (`llama_kv_cache::get_n_kv`, at least 256);
//! only the split path's chunk boundaries depend on that padded length.

use rayon::prelude::*;
use rocmforge_kernels::cpu::{AttentionParams, KvElement};

use super::f16::round_f16;
use super::flash_attn_tiled::tiled_row;
use super::shape_error;
use super::simd::{fma, has_avx2_fma};
use super::vec_f16::{dot_f16, mad_f16, scale_f16};
use crate::error::Result;

/// Query tokens from which ggml takes the tiled path (`GGML_FA_TILE_Q`).
pub const TILE_Q: usize = 64;
/// Padded cache length from which a single query token takes the split path.
const SPLIT_MIN_KV: usize = 512;
/// llama.cpp's cache padding (`n_pad_cur = max(n_pad, 256)`).
const KV_PAD: usize = 256;

/// Keys and values of one KV head, rounded to f16, position-major `[n_kv, head_dim]`;
/// for the tiled path also the keys transposed, `[head_dim, n_kv]`.
pub(super) struct HeadKv {
    pub(super) n_kv: usize,
    pub(super) k: Vec<f32>,
    pub(super) v: Vec<f32>,
    pub(super) kt: Vec<f32>,
}

/// The running state of the one-row path over a range of positions.
struct Partial {
    m: f32,
    s: f32,
    /// The accumulator, widened from f16.
    vkq: Vec<f32>,
}

/// `…_f16_one_chunk` for one query row against positions `range` (those after `pos` are
/// masked): returns `M`, `S` and the widened f16 accumulator.
#[inline(always)]
fn one_chunk(
    q16: &[f32],
    kv: &HeadKv,
    d: usize,
    pos: usize,
    range: std::ops::Range<usize>,
    scale: f32,
) -> Partial {
    let mut m = f32::NEG_INFINITY;
    let mut s_sum = 0.0f32;
    let mut vkq = vec![0.0f32; d];
    let end = range.end.min(pos + 1);
    for ic in range.start..end {
        let k = &kv.k[ic * d..][..d];
        let v = &kv.v[ic * d..][..d];
        // s = dot * scale; s += mask (0 here: visible).
        let s = dot_f16(k, q16) * scale + 0.0;
        let mold = m;
        let mut ms = 1.0f32;
        let mut vs = 1.0f32;
        if s > m {
            m = s;
            ms = (mold - m).exp();
            scale_f16(&mut vkq, ms);
        } else {
            vs = (s - m).exp();
        }
        mad_f16(&mut vkq, v, vs);
        // S = S*ms + vs, contracted to an FMA by GCC.
        s_sum = fma(s_sum, ms, vs);
    }
    Partial { m, s: s_sum, vkq }
}

/// `V /= S` as the op ends (`S == 0` gives zeros).
#[inline(always)]
fn normalize(vkq: &mut [f32], s: f32) {
    let s_inv = if s == 0.0 { 0.0 } else { 1.0 / s };
    for x in vkq.iter_mut() {
        *x *= s_inv;
    }
}

/// The split path: chunks of `ceil(n_kv_pad / threads)` positions, merged in order.
#[inline(always)]
fn split_row(
    q16: &[f32],
    kv: &HeadKv,
    d: usize,
    pos: usize,
    n_kv_pad: usize,
    threads: usize,
    scale: f32,
) -> Vec<f32> {
    let chunk = n_kv_pad.div_ceil(threads);
    let mut m_final = f32::NEG_INFINITY;
    let mut s_final = 0.0f32;
    let mut out = vec![0.0f32; d];
    for ith in 0..threads {
        let start = ith * chunk;
        if start >= n_kv_pad {
            continue;
        }
        let p = one_chunk(q16, kv, d, pos, start..(start + chunk).min(n_kv_pad), scale);
        if p.s == 0.0 {
            continue;
        }
        let m_new = m_final.max(p.m);
        let scale_old = (m_final - m_new).exp();
        let scale_new = (p.m - m_new).exp();
        for (o, &c) in out.iter_mut().zip(&p.vkq) {
            *o = fma(*o, scale_old, c * scale_new);
        }
        s_final = fma(s_final, scale_old, p.s * scale_new);
        m_final = m_new;
    }
    if s_final != 0.0 {
        let s_inv = 1.0 / s_final;
        for x in out.iter_mut() {
            *x *= s_inv;
        }
    }
    out
}

/// Causal grouped-query attention of `n_q` query rows (`q`: `[n_q, n_heads, head_dim]`,
/// positions `pos0 ..`) against caches holding positions `0 .. pos0 + n_q` (`k_cache`,
/// `v_cache`: `[n_ctx, n_kv_heads, head_dim]`), into `out` (`[n_q, n_heads, head_dim]`),
/// as llama.cpp computes it (see the [module documentation](self)). `llama_threads` is
/// the thread count of the llama.cpp run to match: it only matters for the split path.
///
/// Errors if a length or the head counts do not fit.
#[allow(clippy::too_many_arguments)]
pub fn flash_attn<T: KvElement>(
    params: &AttentionParams,
    q: &[f32],
    n_q: usize,
    pos0: usize,
    k_cache: &[T],
    v_cache: &[T],
    llama_threads: usize,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "ggml-compatible attention";
    let (n_heads, n_kv_heads, d) = (params.n_heads, params.kv.n_kv_heads, params.kv.head_dim);
    if n_heads == 0 || n_kv_heads == 0 || d == 0 || n_heads % n_kv_heads != 0 {
        return Err(shape_error(
            OP,
            format!("{n_heads} query heads, {n_kv_heads} KV heads of {d} dimensions"),
        ));
    }
    let n_kv = pos0 + n_q;
    let row = n_kv_heads * d;
    let q_len = n_q.checked_mul(n_heads * d);
    if q_len != Some(q.len()) || q_len != Some(out.len()) {
        return Err(shape_error(
            OP,
            format!(
                "{} query and {} output values for {n_q} tokens",
                q.len(),
                out.len()
            ),
        ));
    }
    if n_kv > params.kv.n_ctx || k_cache.len() < n_kv * row || v_cache.len() < n_kv * row {
        return Err(shape_error(
            OP,
            format!(
                "{n_kv} positions do not fit the cache of {}",
                params.kv.n_ctx
            ),
        ));
    }
    if n_q == 0 {
        return Ok(());
    }

    // Keys and values per KV head, as the op reads them: f16.
    let tiled = n_q >= TILE_Q;
    let heads: Vec<HeadKv> = (0..n_kv_heads)
        .into_par_iter()
        .map(|h| {
            let gather = |cache: &[T]| -> Vec<f32> {
                (0..n_kv)
                    .flat_map(|p| {
                        cache[p * row + h * d..][..d]
                            .iter()
                            .map(|x| round_f16(x.to_f32()))
                    })
                    .collect()
            };
            let k = gather(k_cache);
            let mut kt = Vec::new();
            if tiled {
                kt = vec![0.0; n_kv * d];
                for (p, kp) in k.chunks_exact(d).enumerate() {
                    for (dd, &x) in kp.iter().enumerate() {
                        kt[dd * n_kv + p] = x;
                    }
                }
            }
            HeadKv {
                n_kv,
                k,
                v: gather(v_cache),
                kt,
            }
        })
        .collect();

    let group = n_heads / n_kv_heads;
    let n_kv_pad = n_kv.next_multiple_of(KV_PAD).max(KV_PAD);
    let path = if tiled {
        Path::Tiled
    } else if n_q == 1 && n_kv_pad >= SPLIT_MIN_KV {
        Path::Split(llama_threads.max(1))
    } else {
        Path::OneChunk
    };
    out.par_chunks_mut(d).enumerate().for_each(|(idx, o)| {
        let (t, h) = (idx / n_heads, idx % n_heads);
        let job = Job {
            kv: &heads[h / group],
            d,
            pos: pos0 + t,
            n_kv_pad,
            scale: params.scale,
            path,
        };
        attend(&job, &q[idx * d..][..d], o);
    });
    Ok(())
}

/// Which of ggml's code paths a call takes.
#[derive(Clone, Copy, Debug)]
enum Path {
    OneChunk,
    /// Split over the cache for this many llama.cpp threads.
    Split(usize),
    Tiled,
}

/// One query row's attention: the head's keys and values, the query's position, the
/// padded cache length, the scale and the path.
struct Job<'a> {
    kv: &'a HeadKv,
    d: usize,
    pos: usize,
    n_kv_pad: usize,
    scale: f32,
    path: Path,
}

/// One query row (`q`) into `out`.
#[inline(always)]
fn attend_portable(job: &Job<'_>, q: &[f32], out: &mut [f32]) {
    let (kv, d, pos, n_kv_pad, scale) = (job.kv, job.d, job.pos, job.n_kv_pad, job.scale);
    if let Path::Tiled = job.path {
        out.copy_from_slice(&tiled_row(q, kv, d, pos, n_kv_pad, scale));
        return;
    }
    let q16: Vec<f32> = q.iter().map(|&x| round_f16(x)).collect();
    match job.path {
        Path::Split(threads) => {
            out.copy_from_slice(&split_row(&q16, kv, d, pos, n_kv_pad, threads, scale));
        }
        _ => {
            let mut p = one_chunk(&q16, kv, d, pos, 0..n_kv_pad, scale);
            normalize(&mut p.vkq, p.s);
            out.copy_from_slice(&p.vkq);
        }
    }
}

/// [`attend_portable`] compiled for AVX2 + FMA.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2_fma(job: &Job<'_>, q: &[f32], out: &mut [f32]) {
    attend_portable(job, q, out)
}

/// [`attend_portable`], vectorized where the CPU allows (same results).
fn attend(job: &Job<'_>, q: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (just checked), all `attend_avx2_fma` needs.
        unsafe { attend_avx2_fma(job, q, out) };
        return;
    }
    attend_portable(job, q, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;
    use rocmforge_kernels::cpu::KvCacheShape;

    fn params(n_ctx: usize) -> AttentionParams {
        AttentionParams::new(
            4,
            KvCacheShape {
                n_ctx,
                n_kv_heads: 2,
                head_dim: 64,
            },
        )
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed);
                ((h >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Attention in f64 of the f16-rounded keys and values.
    fn exact(
        p: &AttentionParams,
        q: &[f32],
        n_q: usize,
        pos0: usize,
        k: &[f32],
        v: &[f32],
    ) -> Vec<f32> {
        let (nh, nkv, d) = (p.n_heads, p.kv.n_kv_heads, p.kv.head_dim);
        let mut out = vec![0.0; q.len()];
        for t in 0..n_q {
            for h in 0..nh {
                let kh = h / (nh / nkv);
                let qr = &q[(t * nh + h) * d..][..d];
                let kv_at =
                    |c: &[f32], j: usize, i: usize| f64::from(round_f16(c[(j * nkv + kh) * d + i]));
                let s: Vec<f64> = (0..=pos0 + t)
                    .map(|j| {
                        (0..d)
                            .map(|i| f64::from(qr[i]) * kv_at(k, j, i))
                            .sum::<f64>()
                            * f64::from(p.scale)
                    })
                    .collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let sum: f64 = w.iter().sum();
                for i in 0..d {
                    let o: f64 = w
                        .iter()
                        .enumerate()
                        .map(|(j, wj)| wj * kv_at(v, j, i))
                        .sum();
                    out[(t * nh + h) * d + i] = (o / sum) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn every_path_is_attention_and_f16_and_f32_caches_agree() {
        // n_q = 3 (one row at a time), 70 (tiled), 1 at 600 positions (split).
        for (n_q, pos0, n_ctx) in [(3, 5, 16), (70, 0, 80), (1, 599, 640)] {
            let p = params(n_ctx);
            let row = 2 * 64;
            let k = values(n_ctx * row, 1);
            let v = values(n_ctx * row, 2);
            let q = values(n_q * 4 * 64, 3);
            let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
            let v16: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            let mut a = vec![0.0; q.len()];
            let mut b = vec![0.0; q.len()];
            flash_attn(&p, &q, n_q, pos0, &k, &v, 2, &mut a).expect("f32 cache");
            flash_attn(&p, &q, n_q, pos0, &k16, &v16, 2, &mut b).expect("f16 cache");
            assert_eq!(a, b, "n_q {n_q}");
            let want = exact(&p, &q, n_q, pos0, &k, &v);
            let err = a
                .iter()
                .zip(&want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 2e-3, "n_q {n_q}: max error {err}");
        }
    }

    #[test]
    fn vectorized_and_portable_code_agree() {
        let p = params(700);
        let row = 2 * 64;
        let k = values(700 * row, 4);
        let v = values(700 * row, 5);
        let heads: Vec<HeadKv> = (0..2)
            .map(|h| {
                let gather = |c: &[f32]| -> Vec<f32> {
                    (0..700)
                        .flat_map(|j| c[j * row + h * 64..][..64].iter().map(|&x| round_f16(x)))
                        .collect()
                };
                let k = gather(&k);
                let mut kt = vec![0.0; 700 * 64];
                for (j, kj) in k.chunks_exact(64).enumerate() {
                    for (i, &x) in kj.iter().enumerate() {
                        kt[i * 700 + j] = x;
                    }
                }
                HeadKv {
                    n_kv: 700,
                    k,
                    v: gather(&v),
                    kt,
                }
            })
            .collect();
        let q = values(64, 6);
        for path in [Path::OneChunk, Path::Split(3), Path::Tiled] {
            let job = Job {
                kv: &heads[1],
                d: 64,
                pos: 650,
                n_kv_pad: 768,
                scale: p.scale,
                path,
            };
            let (mut a, mut b) = (vec![0.0; 64], vec![0.0; 64]);
            attend_portable(&job, &q, &mut a);
            attend(&job, &q, &mut b);
            assert_eq!(a, b, "{path:?}");
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        let p = params(8);
        let cache = vec![0.0f32; 8 * 128];
        let mut out = vec![0.0; 256];
        assert!(flash_attn(&p, &[0.0; 256], 1, 8, &cache, &cache, 2, &mut out).is_err());
        assert!(flash_attn(&p, &[0.0; 255], 1, 0, &cache, &cache, 2, &mut out).is_err());
        assert!(flash_attn(&p, &[0.0; 256], 1, 0, &cache, &cache, 2, &mut out).is_ok());
    }
}
