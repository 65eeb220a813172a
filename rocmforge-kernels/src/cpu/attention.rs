//! Causal grouped-query attention of new query tokens against the KV cache.
//!
//! Shapes:
//!
//! * `q`: `[n_q, n_heads, head_dim]`, `f32` — query token `i` is at position `pos0 + i`;
//! * `k_cache`, `v_cache`: `[n_ctx, n_kv_heads, head_dim]` ([`KvCacheShape`]), element
//!   `f32`, `f16` or `bf16` ([`KvElement`]); positions `0 .. pos0 + n_q` must already hold
//!   the keys/values (write the new ones first with
//!   [`kv_cache_write`](super::kv_cache_write));
//! * `out`: `[n_q, n_heads, head_dim]`, `f32`.
//!
//! Query head `h` reads KV head `h / (n_heads / n_kv_heads)` (grouped-query attention;
//! `n_heads == n_kv_heads` is ordinary multi-head attention, `n_kv_heads == 1`
//! multi-query). Query `i` attends to cache positions `0 ..= pos0 + i` (causal):
//!
//! ```text
//! s_j   = scale · Σ_d q[d] · k_j[d]          j = 0 ..= pos0 + i
//! p_j   = exp(s_j − max s) / Σ_j exp(s_j − max s)
//! out   = Σ_j p_j · v_j
//! ```
//!
//! Everything after reading the inputs (dot products, the softmax, the weighted sum) is
//! computed in `f64` and rounded once to `f32`, so this is the exact attention of the
//! stored (possibly f16-rounded) values to within `f32` output rounding. An f16/bf16
//! cache's visible positions are widened to `f32` once per call. Decode is
//! `n_q = 1`; prefill is `n_q > 1` with `pos0` = tokens already in the cache. Work is split
//! over (query token, head) pairs with rayon.

use rayon::prelude::*;

use super::kv_cache::{KvCacheShape, KvElement};
use super::{check_len, check_nonzero, checked_product, dot_f64};
use crate::error::shape_error;
use crate::Result;

/// The default score scale, `1 / sqrt(head_dim)` (computed in `f32`, as llama.cpp's
/// `1.0f/sqrtf(float(n_embd_head))`).
pub fn default_attention_scale(head_dim: usize) -> f32 {
    1.0 / (head_dim as f32).sqrt()
}

/// Shape and scale of an attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionParams {
    /// Query heads.
    pub n_heads: usize,
    /// The KV cache tensors' shape (`n_kv_heads` must divide `n_heads`; `head_dim` is shared
    /// by queries, keys and values).
    pub kv: KvCacheShape,
    /// Multiplier of the scores `q·k` before the softmax.
    pub scale: f32,
}

impl AttentionParams {
    /// Parameters with the default scale `1 / sqrt(head_dim)`.
    pub fn new(n_heads: usize, kv: KvCacheShape) -> Self {
        AttentionParams {
            n_heads,
            kv,
            scale: default_attention_scale(kv.head_dim),
        }
    }

    /// The same parameters with another score scale.
    pub fn with_scale(self, scale: f32) -> Self {
        AttentionParams { scale, ..self }
    }

    /// Query heads per KV head (`n_heads / n_kv_heads`).
    pub fn group_size(&self) -> usize {
        self.n_heads / self.kv.n_kv_heads.max(1)
    }
}

/// Causal grouped-query attention of `n_q` query tokens at positions `pos0 .. pos0 + n_q`
/// against the KV cache; see the [module documentation](self) for shapes and the formula.
///
/// Errors if `n_heads`, `n_kv_heads` or `head_dim` is 0, `n_kv_heads` does not divide
/// `n_heads`, `q` or `out` is not `n_q · n_heads · head_dim` long, a cache tensor is not
/// `n_ctx · n_kv_heads · head_dim` long, or `pos0 + n_q > n_ctx`.
pub fn attention<K: KvElement, V: KvElement>(
    p: &AttentionParams,
    q: &[f32],
    n_q: usize,
    pos0: usize,
    k_cache: &[K],
    v_cache: &[V],
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "attention";
    check_nonzero(OP, "n_heads", p.n_heads)?;
    let kv_row = p.kv.row_len_for(OP)?;
    let cache_len = p.kv.elements_for(OP)?;
    if p.n_heads % p.kv.n_kv_heads != 0 {
        return Err(shape_error(
            OP,
            format!(
                "n_kv_heads = {} does not divide n_heads = {}",
                p.kv.n_kv_heads, p.n_heads
            ),
        ));
    }
    let head_dim = p.kv.head_dim;
    let q_len = checked_product(OP, "q", &[n_q, p.n_heads, head_dim])?;
    check_len(OP, "q", q.len(), q_len)?;
    check_len(OP, "output", out.len(), q_len)?;
    check_len(
        OP,
        &format!("k_cache ({})", K::NAME),
        k_cache.len(),
        cache_len,
    )?;
    check_len(
        OP,
        &format!("v_cache ({})", V::NAME),
        v_cache.len(),
        cache_len,
    )?;
    if pos0
        .checked_add(n_q)
        .filter(|&end| end <= p.kv.n_ctx)
        .is_none()
    {
        return Err(shape_error(
            OP,
            format!(
                "queries at positions {pos0}..{pos0}+{n_q} do not fit a cache of {} positions",
                p.kv.n_ctx
            ),
        ));
    }
    if q_len == 0 {
        return Ok(());
    }

    let group = p.group_size();
    let scale = f64::from(p.scale);
    // The cache positions any query can see, widened to f32 once (borrowed for f32 caches).
    let n_visible = pos0 + n_q;
    let k_all = K::widen_slice(&k_cache[..n_visible * kv_row]);
    let v_all = V::widen_slice(&v_cache[..n_visible * kv_row]);
    let kv_head = |cache: &[f32], j: usize, kv_h: usize| -> std::ops::Range<usize> {
        let start = j * kv_row + kv_h * head_dim;
        debug_assert!(start + head_dim <= cache.len());
        start..start + head_dim
    };

    // One task per (query token, head): `out` chunk `idx` is token `idx / n_heads`,
    // head `idx % n_heads`. Scratch (scores, accumulator) is reused within a thread.
    out.par_chunks_mut(head_dim).enumerate().for_each_init(
        || (Vec::<f64>::new(), vec![0.0f64; head_dim]),
        |(scores, acc), (idx, out_head)| {
            let (i, h) = (idx / p.n_heads, idx % p.n_heads);
            let kv_h = h / group;
            let q_head = &q[idx * head_dim..][..head_dim];
            let n_keys = pos0 + i + 1;

            // Scores s_j = scale · q·k_j, and their maximum.
            scores.clear();
            let mut max = f64::NEG_INFINITY;
            for j in 0..n_keys {
                let s = scale * dot_f64(q_head, &k_all[kv_head(&k_all, j, kv_h)]);
                max = max.max(s);
                scores.push(s);
            }

            // Softmax weights (unnormalized) and the weighted sum of values.
            acc.iter_mut().for_each(|a| *a = 0.0);
            let mut denom = 0.0f64;
            for (j, &s) in scores.iter().enumerate() {
                let w = (s - max).exp();
                denom += w;
                for (a, &x) in acc.iter_mut().zip(&v_all[kv_head(&v_all, j, kv_h)]) {
                    *a += w * f64::from(x);
                }
            }
            for (o, &a) in out_head.iter_mut().zip(acc.iter()) {
                *o = (a / denom) as f32;
            }
        },
    );
    Ok(())
}
