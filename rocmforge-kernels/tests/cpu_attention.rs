//! CPU reference: causal grouped-query attention and KV-cache writes.

use half::{bf16, f16};
use proptest::prelude::*;
use rocmforge_kernels::cpu::{
    attention, default_attention_scale, kv_cache_write, AttentionParams, KvCacheShape, KvElement,
};
use rocmforge_kernels::Error;

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi)).collect()
    }
}

/// Naive double-precision attention with explicit 4-D indexing.
#[allow(clippy::too_many_arguments)]
fn naive_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_q: usize,
    pos0: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    scale: f64,
) -> Vec<f64> {
    let group = n_heads / n_kv_heads;
    let qi = |t: usize, h: usize, d: usize| q[(t * n_heads + h) * head_dim + d];
    let ki = |p: usize, h: usize, d: usize| k[(p * n_kv_heads + h) * head_dim + d];
    let vi = |p: usize, h: usize, d: usize| v[(p * n_kv_heads + h) * head_dim + d];
    let mut out = vec![0.0f64; n_q * n_heads * head_dim];
    for t in 0..n_q {
        for h in 0..n_heads {
            let kh = h / group;
            let scores: Vec<f64> = (0..=pos0 + t)
                .map(|p| {
                    scale
                        * (0..head_dim)
                            .map(|d| f64::from(qi(t, h, d)) * f64::from(ki(p, kh, d)))
                            .sum::<f64>()
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let z: f64 = w.iter().sum();
            for d in 0..head_dim {
                out[(t * n_heads + h) * head_dim + d] = (0..=pos0 + t)
                    .map(|p| w[p] / z * f64::from(vi(p, kh, d)))
                    .sum();
            }
        }
    }
    out
}

fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w}"
        );
    }
}

fn round_trip<T: KvElement>(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| T::from_f32(v).to_f32()).collect()
}

#[test]
fn hand_computed_two_positions() {
    // One head, head_dim 2, scale 1: q = (1, 0); k0 = (1, 0), k1 = (0, 1) → scores (1, 0);
    // weights (e, 1)/(e + 1); v0 = (1, 2), v1 = (3, 4).
    let kv = KvCacheShape {
        n_ctx: 2,
        n_kv_heads: 1,
        head_dim: 2,
    };
    let p = AttentionParams::new(1, kv).with_scale(1.0);
    let k = [1.0f32, 0.0, 0.0, 1.0];
    let v = [1.0f32, 2.0, 3.0, 4.0];
    let mut out = [0.0f32; 2];
    attention(&p, &[1.0, 0.0], 1, 1, &k, &v, &mut out).unwrap();
    let e = std::f64::consts::E;
    let (w0, w1) = (e / (e + 1.0), 1.0 / (e + 1.0));
    assert_close(&out, &[w0 + 3.0 * w1, 2.0 * w0 + 4.0 * w1], 1e-7);

    // At position 0 only k0/v0 are visible: the output is v0 exactly.
    attention(&p, &[5.0, -3.0], 1, 0, &k, &v, &mut out).unwrap();
    assert_eq!(out, [1.0, 2.0]);
}

#[test]
fn default_scale_is_inverse_sqrt_head_dim() {
    assert_eq!(default_attention_scale(64), 0.125);
    assert_eq!(default_attention_scale(128), 1.0 / 128f32.sqrt());
    let kv = KvCacheShape {
        n_ctx: 1,
        n_kv_heads: 1,
        head_dim: 64,
    };
    assert_eq!(AttentionParams::new(1, kv).scale, 0.125);
}

#[test]
fn matches_naive_f64_for_head_dims_64_and_128_with_gqa() {
    for &(n_heads, n_kv_heads, head_dim) in &[(9, 3, 64), (8, 2, 128), (4, 4, 64), (6, 1, 128)] {
        let mut rng = Rng(head_dim as u64 * 31 + n_heads as u64);
        let (n_ctx, pos0, n_q) = (40, 11, 7);
        let kv = KvCacheShape {
            n_ctx,
            n_kv_heads,
            head_dim,
        };
        let p = AttentionParams::new(n_heads, kv);
        let q = rng.vec(n_q * n_heads * head_dim, -1.0, 1.0);
        let k = rng.vec(n_ctx * n_kv_heads * head_dim, -1.0, 1.0);
        let v = rng.vec(n_ctx * n_kv_heads * head_dim, -1.0, 1.0);
        let mut out = vec![0.0f32; q.len()];
        attention(&p, &q, n_q, pos0, &k, &v, &mut out).unwrap();
        let want = naive_attention(
            &q,
            &k,
            &v,
            n_q,
            pos0,
            n_heads,
            n_kv_heads,
            head_dim,
            f64::from(p.scale),
        );
        assert_close(&out, &want, 1e-6);
    }
}

#[test]
fn gqa_equals_attention_with_repeated_kv_heads() {
    // 9 query heads on 3 KV heads == 9 query heads on 9 KV heads where KV head h is a copy
    // of original head h / 3.
    let (n_heads, n_kv, d, n_ctx) = (9, 3, 64, 20);
    let mut rng = Rng(5);
    let q = rng.vec(4 * n_heads * d, -1.0, 1.0);
    let k = rng.vec(n_ctx * n_kv * d, -1.0, 1.0);
    let v = rng.vec(n_ctx * n_kv * d, -1.0, 1.0);
    let repeat = |c: &[f32]| -> Vec<f32> {
        let mut r = Vec::with_capacity(c.len() * 3);
        for p in 0..n_ctx {
            for h in 0..n_heads {
                r.extend_from_slice(&c[(p * n_kv + h / 3) * d..][..d]);
            }
        }
        r
    };
    let (k9, v9) = (repeat(&k), repeat(&v));
    let p3 = AttentionParams::new(
        n_heads,
        KvCacheShape {
            n_ctx,
            n_kv_heads: n_kv,
            head_dim: d,
        },
    );
    let p9 = AttentionParams::new(
        n_heads,
        KvCacheShape {
            n_ctx,
            n_kv_heads: n_heads,
            head_dim: d,
        },
    );
    let mut o3 = vec![0.0f32; q.len()];
    let mut o9 = vec![0.0f32; q.len()];
    attention(&p3, &q, 4, 10, &k, &v, &mut o3).unwrap();
    attention(&p9, &q, 4, 10, &k9, &v9, &mut o9).unwrap();
    assert_eq!(o3, o9);
}

#[test]
fn causal_mask_and_prefill_equals_decode() {
    let (n_heads, n_kv, d, n_ctx) = (4, 2, 16, 32);
    let kv = KvCacheShape {
        n_ctx,
        n_kv_heads: n_kv,
        head_dim: d,
    };
    let p = AttentionParams::new(n_heads, kv);
    let mut rng = Rng(6);
    let (pos0, n_q) = (5, 6);
    let q = rng.vec(n_q * n_heads * d, -1.0, 1.0);
    let mut k = rng.vec(n_ctx * n_kv * d, -1.0, 1.0);
    let mut v = rng.vec(n_ctx * n_kv * d, -1.0, 1.0);
    // Positions after the last query are never read: poison them.
    for x in k[(pos0 + n_q) * n_kv * d..].iter_mut() {
        *x = f32::NAN;
    }
    for x in v[(pos0 + n_q) * n_kv * d..].iter_mut() {
        *x = f32::NAN;
    }
    let mut prefill = vec![0.0f32; q.len()];
    attention(&p, &q, n_q, pos0, &k, &v, &mut prefill).unwrap();
    assert!(prefill.iter().all(|x| x.is_finite()));

    // Query i of the prefill equals a decode step at position pos0 + i whose cache has
    // everything after that position poisoned.
    let row = n_heads * d;
    for i in 0..n_q {
        let (mut kk, mut vv) = (k.clone(), v.clone());
        for x in kk[(pos0 + i + 1) * n_kv * d..].iter_mut() {
            *x = f32::NAN;
        }
        for x in vv[(pos0 + i + 1) * n_kv * d..].iter_mut() {
            *x = f32::NAN;
        }
        let mut one = vec![0.0f32; row];
        attention(&p, &q[i * row..][..row], 1, pos0 + i, &kk, &vv, &mut one).unwrap();
        assert_eq!(&prefill[i * row..][..row], &one[..], "query {i}");
    }
}

#[test]
fn f16_and_bf16_caches_match_f32_within_rounding() {
    let (n_heads, n_kv, d, n_ctx, n_q, pos0) = (8, 4, 128, 24, 3, 20);
    let kv = KvCacheShape {
        n_ctx,
        n_kv_heads: n_kv,
        head_dim: d,
    };
    let p = AttentionParams::new(n_heads, kv);
    let mut rng = Rng(8);
    let q = rng.vec(n_q * n_heads * d, -2.0, 2.0);
    let k32 = rng.vec(n_ctx * n_kv * d, -2.0, 2.0);
    let v32 = rng.vec(n_ctx * n_kv * d, -2.0, 2.0);

    // Fill the f16 cache through kv_cache_write, in two chunks.
    let mut k16 = vec![f16::ZERO; k32.len()];
    let mut v16 = vec![f16::ZERO; v32.len()];
    let split = 13 * n_kv * d;
    kv_cache_write(&mut k16, kv, 0, &k32[..split], 13).unwrap();
    kv_cache_write(&mut k16, kv, 13, &k32[split..], n_ctx - 13).unwrap();
    kv_cache_write(&mut v16, kv, 0, &v32, n_ctx).unwrap();

    let mut o32 = vec![0.0f32; q.len()];
    let mut o16 = vec![0.0f32; q.len()];
    attention(&p, &q, n_q, pos0, &k32, &v32, &mut o32).unwrap();
    attention(&p, &q, n_q, pos0, &k16, &v16, &mut o16).unwrap();
    // f16 keeps 11 significant bits: relative input error ≤ 2^-11, outputs of size ~1.
    for (a, b) in o32.iter().zip(&o16) {
        assert!((a - b).abs() < 4e-3, "{a} vs {b}");
    }
    // And the f16 result is exactly the f32 computation on the f16-rounded values.
    let (kr, vr) = (round_trip::<f16>(&k32), round_trip::<f16>(&v32));
    let mut oref = vec![0.0f32; q.len()];
    attention(&p, &q, n_q, pos0, &kr, &vr, &mut oref).unwrap();
    assert_eq!(o16, oref);

    // bf16 (8 significant bits), and mixed K/V element types.
    let kb: Vec<bf16> = k32.iter().map(|&x| bf16::from_f32(x)).collect();
    let mut ob = vec![0.0f32; q.len()];
    attention(&p, &q, n_q, pos0, &kb, &v16, &mut ob).unwrap();
    for (a, b) in o32.iter().zip(&ob) {
        assert!((a - b).abs() < 3e-2, "{a} vs {b}");
    }
}

#[test]
fn kv_cache_write_places_rows_and_checks_bounds() {
    let kv = KvCacheShape {
        n_ctx: 4,
        n_kv_heads: 2,
        head_dim: 3,
    };
    assert_eq!(kv.row_len().unwrap(), 6);
    assert_eq!(kv.elements().unwrap(), 24);
    let mut cache = vec![-1.0f32; 24];
    let new: Vec<f32> = (0..12).map(|i| i as f32).collect();
    kv_cache_write(&mut cache, kv, 1, &new, 2).unwrap();
    assert_eq!(&cache[..6], &[-1.0; 6]);
    assert_eq!(&cache[6..18], &new[..]);
    assert_eq!(&cache[18..], &[-1.0; 6]);

    // f16 cache: values are rounded to nearest even.
    let mut c16 = vec![f16::ZERO; 24];
    let vals = vec![1.0 + 1.0 / 2048.0; 6]; // halfway: rounds to 1.0
    kv_cache_write(&mut c16, kv, 3, &vals, 1).unwrap();
    assert!(c16[18..].iter().all(|h| h.to_f32() == 1.0));

    let shape = |r: rocmforge_kernels::Result<()>| matches!(r, Err(Error::Shape { .. }));
    assert!(shape(kv_cache_write(&mut cache, kv, 3, &new, 2))); // past n_ctx
    assert!(shape(kv_cache_write(&mut cache, kv, usize::MAX, &new, 2))); // overflow
    assert!(shape(kv_cache_write(&mut cache, kv, 0, &new[..11], 2)));
    assert!(shape(kv_cache_write(&mut cache[..23], kv, 0, &new, 2)));
    let zero_heads = KvCacheShape {
        n_kv_heads: 0,
        ..kv
    };
    assert!(shape(kv_cache_write(&mut cache, zero_heads, 0, &[], 0)));
    assert_eq!(&cache[..6], &[-1.0; 6], "nothing written on error");
    // Writing nothing at the end is fine.
    kv_cache_write(&mut cache, kv, 4, &[], 0).unwrap();
}

#[test]
fn attention_shape_errors() {
    let shape = |r: rocmforge_kernels::Result<()>| matches!(r, Err(Error::Shape { .. }));
    let kv = KvCacheShape {
        n_ctx: 4,
        n_kv_heads: 2,
        head_dim: 8,
    };
    let cache = vec![0.0f32; 4 * 2 * 8];
    let q = vec![0.0f32; 2 * 4 * 8];
    let mut out = vec![0.0f32; 2 * 4 * 8];
    let p = AttentionParams::new(4, kv);
    attention(&p, &q, 2, 2, &cache, &cache, &mut out).unwrap();
    assert!(shape(attention(&p, &q, 2, 3, &cache, &cache, &mut out))); // 3 + 2 > 4
    assert!(shape(attention(
        &p,
        &q,
        2,
        usize::MAX,
        &cache,
        &cache,
        &mut out
    )));
    assert!(shape(attention(
        &p,
        &q[1..],
        2,
        0,
        &cache,
        &cache,
        &mut out
    )));
    assert!(shape(attention(
        &p,
        &q,
        2,
        0,
        &cache,
        &cache,
        &mut out[1..]
    )));
    assert!(shape(attention(
        &p,
        &q,
        2,
        0,
        &cache[1..],
        &cache,
        &mut out
    )));
    assert!(shape(attention(
        &p,
        &q,
        2,
        0,
        &cache,
        &cache[1..],
        &mut out
    )));
    let p3 = AttentionParams::new(
        3,
        KvCacheShape {
            n_kv_heads: 2,
            ..kv
        },
    );
    assert!(shape(attention(
        &p3,
        &q[..48],
        2,
        0,
        &cache,
        &cache,
        &mut out[..48]
    )));
    let p0 = AttentionParams::new(0, kv);
    assert!(shape(attention(&p0, &[], 2, 0, &cache, &cache, &mut [])));
    let pz = AttentionParams::new(4, KvCacheShape { head_dim: 0, ..kv });
    let empty: &[f32] = &[];
    assert!(shape(attention(&pz, empty, 2, 0, empty, empty, &mut [])));
    // No queries is fine.
    attention(&p, &[], 0, 4, &cache, &cache, &mut []).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random shapes (head dims that are not multiples of 32/64 included) against the naive
    /// f64 implementation, for f32 and f16 caches.
    #[test]
    fn random_shapes_match_naive(
        n_kv in 1usize..4,
        group in 1usize..4,
        head_dim in 1usize..150,
        pos0 in 0usize..40,
        n_q in 1usize..6,
        extra in 0usize..5,
        scale in prop_oneof![Just(None), (0.01f32..1.0).prop_map(Some)],
        seed: u64,
    ) {
        let n_heads = n_kv * group;
        let n_ctx = pos0 + n_q + extra;
        let kv = KvCacheShape { n_ctx, n_kv_heads: n_kv, head_dim };
        let mut p = AttentionParams::new(n_heads, kv);
        if let Some(s) = scale {
            p = p.with_scale(s);
        }
        let mut rng = Rng(seed);
        let q = rng.vec(n_q * n_heads * head_dim, -2.0, 2.0);
        let k = rng.vec(n_ctx * n_kv * head_dim, -2.0, 2.0);
        let v = rng.vec(n_ctx * n_kv * head_dim, -2.0, 2.0);
        let mut out = vec![0.0f32; q.len()];
        attention(&p, &q, n_q, pos0, &k, &v, &mut out).unwrap();
        let want = naive_attention(&q, &k, &v, n_q, pos0, n_heads, n_kv, head_dim, f64::from(p.scale));
        for (&g, &w) in out.iter().zip(&want) {
            prop_assert!((f64::from(g) - w).abs() <= 1e-6 * (1.0 + w.abs()));
        }

        let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
        let v16: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        attention(&p, &q, n_q, pos0, &k16, &v16, &mut out).unwrap();
        let want16 = naive_attention(
            &q, &round_trip::<f16>(&k), &round_trip::<f16>(&v), n_q, pos0, n_heads, n_kv, head_dim,
            f64::from(p.scale),
        );
        for (&g, &w) in out.iter().zip(&want16) {
            prop_assert!((f64::from(g) - w).abs() <= 1e-6 * (1.0 + w.abs()));
        }
    }
}
