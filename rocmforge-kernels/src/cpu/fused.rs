//! Fused ops: sequences of the reference ops that the GPU runs as one kernel each, to
//! cut the launches of a decode step. Each function here is the definition of its GPU
//! counterpart and is, by construction, the unfused sequence:
//!
//! | here | the sequence | GPU |
//! |---|---|---|
//! | [`rms_norm_q8`] | [`rms_norm`], then [`quantize_activations`] | `NormOps::rms_norm_q8` |
//! | [`swiglu_q8`] | [`swiglu`], then [`quantize_activations`] | `ElementwiseOps::swiglu_q8` |
//! | [`matvec_q8_add`] | [`matvec_q8`], then `residual + y` | `QuantOps::matvec_q8_add` |
//! | [`rope_qk_kv_write`] | [`rope_inplace`](super::rope_inplace) of q and of k, then [`kv_cache_write`] of k and v | `RopeOps::rope_qk_kv_write_at` |
//!
//! (`QuantOps::matvec_q8_multi` is several [`matvec_q8`] calls, which need no reference
//! of their own.) The GPU's fused kernels repeat the unfused kernels' arithmetic, so the
//! GPU tests compare fused and unfused GPU results bit for bit; these functions pin down
//! the semantics, shapes and errors. Every check runs before anything is written.

use super::{
    check_len, check_nonzero, checked_product, kv_cache_write, matvec_q8, q8_activation_bytes,
    quantize_activations, rms_norm, rope, swiglu, KvCacheShape, KvElement, RopeParams,
    WeightMatrix,
};
use crate::error::shape_error;
use crate::Result;

/// Checks a row length for 8-bit activations: a positive multiple of 32.
fn check_q8_width(op: &'static str, n: usize) -> Result<()> {
    if n == 0 || n % 32 != 0 {
        return Err(shape_error(
            op,
            format!("row length {n}: 8-bit activations need a positive multiple of 32"),
        ));
    }
    Ok(())
}

/// [`rms_norm`] of `rows` rows of `n` (a multiple of 32), then [`quantize_activations`]
/// of the result into `out_q8` ([`q8_activation_bytes`]`(rows, n)` bytes); the normalized
/// values also go to `out_f32` when given (`rows · n`).
///
/// Errors if `n` is not a positive multiple of 32 or a length does not match.
pub fn rms_norm_q8(
    x: &[f32],
    weight: &[f32],
    rows: usize,
    n: usize,
    eps: f32,
    out_f32: Option<&mut [f32]>,
    out_q8: &mut [u8],
) -> Result<()> {
    const OP: &str = "rms_norm_q8";
    check_q8_width(OP, n)?;
    let total = checked_product(OP, "rows × n", &[rows, n])?;
    check_len(OP, "x", x.len(), total)?;
    check_len(OP, "weight", weight.len(), n)?;
    check_len(OP, "out_q8", out_q8.len(), q8_activation_bytes(rows, n))?;
    let mut own = Vec::new();
    let y = match out_f32 {
        Some(o) => {
            check_len(OP, "out_f32", o.len(), total)?;
            o
        }
        None => {
            own.resize(total, 0.0);
            &mut own[..]
        }
    };
    rms_norm(x, weight, y, rows, n, eps)?;
    quantize_activations(y, rows, n, out_q8)
}

/// [`swiglu`] of `rows` rows of `n` values (a multiple of 32), then
/// [`quantize_activations`] of the result into `out_q8`
/// ([`q8_activation_bytes`]`(rows, n)` bytes).
///
/// Errors if `n` is not a positive multiple of 32 or a length does not match.
pub fn swiglu_q8(gate: &[f32], up: &[f32], rows: usize, n: usize, out_q8: &mut [u8]) -> Result<()> {
    const OP: &str = "swiglu_q8";
    check_q8_width(OP, n)?;
    let total = checked_product(OP, "rows × n", &[rows, n])?;
    check_len(OP, "gate", gate.len(), total)?;
    check_len(OP, "up", up.len(), total)?;
    check_len(OP, "out_q8", out_q8.len(), q8_activation_bytes(rows, n))?;
    let mut y = vec![0.0f32; total];
    swiglu(gate, up, &mut y)?;
    quantize_activations(&y, rows, n, out_q8)
}

/// `y = residual + W · x̂`: [`matvec_q8`], then `y[r] = residual[r] + y[r]` in `f32`
/// (the order the GPU's epilogue adds in; f32 addition is commutative, so this is also
/// [`add`](super::add)`(residual, y)`).
///
/// Errors as [`matvec_q8`], and if `residual` is not `rows` long.
pub fn matvec_q8_add(
    w: &WeightMatrix<'_>,
    xq: &[u8],
    residual: &[f32],
    y: &mut [f32],
) -> Result<()> {
    check_len("matvec_q8_add", "residual", residual.len(), w.rows())?;
    matvec_q8(w, xq, y)?;
    for (o, &r) in y.iter_mut().zip(residual) {
        // dot + residual: f32 addition is commutative, the GPU's residual + dot.
        *o += r;
    }
    Ok(())
}

/// RoPE of `q` and `k` fused with the KV-cache write: rotates `q`
/// (`[n_new, p.n_heads, head_dim]`, `n_new = positions.len()`) in place, and writes `k`
/// (`[n_new, n_kv_heads, head_dim]`) rotated with the same parameters, and `v` (same
/// shape), into `k_cache` and `v_cache` (`shape`) at positions
/// `positions[0] .. positions[0] + n_new` — [`rope_inplace`](super::rope_inplace) of q
/// and of k, then [`kv_cache_write`] of k and of v. `k` is not modified. Token `t` is
/// rotated at `positions[t]`; `p.n_heads` is the number of query heads.
///
/// Errors, before writing anything, as those functions do (RoPE parameters, lengths),
/// if `shape` does not have `n_kv_heads` heads of `p.head_dim`, if `positions` is empty,
/// or if `positions[0]` is negative or `positions[0] + n_new > n_ctx`.
#[allow(clippy::too_many_arguments)] // the parameters of the ops it fuses
pub fn rope_qk_kv_write<T: KvElement>(
    q: &mut [f32],
    k: &[f32],
    v: &[f32],
    positions: &[i32],
    p: &RopeParams<'_>,
    n_kv_heads: usize,
    k_cache: &mut [T],
    v_cache: &mut [T],
    shape: KvCacheShape,
) -> Result<()> {
    const OP: &str = "rope_qk_kv_write";
    check_nonzero(OP, "n_kv_heads", n_kv_heads)?;
    check_nonzero(OP, "positions", positions.len())?;
    if shape.n_kv_heads != n_kv_heads || shape.head_dim != p.head_dim {
        return Err(shape_error(
            OP,
            format!(
                "the cache has {} heads of {}, k has {n_kv_heads} of {}",
                shape.n_kv_heads, shape.head_dim, p.head_dim
            ),
        ));
    }
    let n_new = positions.len();
    let kv_len = checked_product(OP, "k and v", &[n_new, n_kv_heads, p.head_dim])?;
    check_len(OP, "v", v.len(), kv_len)?;
    let cache_len = shape.elements_for(OP)?;
    check_len(OP, "k_cache", k_cache.len(), cache_len)?;
    check_len(OP, "v_cache", v_cache.len(), cache_len)?;
    let pos0 = usize::try_from(positions[0])
        .ok()
        .filter(|&pos0| {
            pos0.checked_add(n_new)
                .is_some_and(|end| end <= shape.n_ctx)
        })
        .ok_or_else(|| {
            shape_error(
                OP,
                format!(
                    "positions {}..+{n_new} do not fit a cache of {} positions",
                    positions[0], shape.n_ctx
                ),
            )
        })?;
    // Rotated copies first: they check the RoPE parameters and the lengths of q and k.
    let mut q_rot = vec![0.0f32; q.len()];
    rope(q, positions, p, &mut q_rot)?;
    let k_params = RopeParams {
        n_heads: n_kv_heads,
        ..*p
    };
    let mut k_rot = vec![0.0f32; k.len()];
    rope(k, positions, &k_params, &mut k_rot)?;
    // Every check has passed: nothing below fails.
    kv_cache_write(k_cache, shape, pos0, &k_rot, n_new)?;
    kv_cache_write(v_cache, shape, pos0, v, n_new)?;
    q.copy_from_slice(&q_rot);
    Ok(())
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;
    use crate::cpu::{add, q8_row_bytes, rope_inplace, RopeMode};
    use crate::quant::{self, GgmlType};

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

    #[test]
    fn rms_norm_q8_is_rms_norm_then_quantization() {
        for (rows, n) in [(1, 32), (3, 576), (2, 1536), (5, 160)] {
            let x: Vec<f32> = random(rows * n, n as u64).iter().map(|v| v * 3.0).collect();
            let w = random(n, 7 + n as u64);
            let mut y = vec![0f32; rows * n];
            rms_norm(&x, &w, &mut y, rows, n, 1e-5).unwrap();
            let mut expected = vec![0u8; q8_activation_bytes(rows, n)];
            quantize_activations(&y, rows, n, &mut expected).unwrap();

            let mut q = vec![0xAAu8; expected.len()];
            let mut f = vec![f32::NAN; rows * n];
            rms_norm_q8(&x, &w, rows, n, 1e-5, Some(&mut f), &mut q).unwrap();
            assert_eq!(q, expected);
            assert_eq!(
                f.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            let mut q2 = vec![0x55u8; expected.len()];
            rms_norm_q8(&x, &w, rows, n, 1e-5, None, &mut q2).unwrap();
            assert_eq!(q2, expected);
        }
    }

    #[test]
    fn rms_norm_q8_rejects_bad_shapes_without_writing() {
        let x = random(2 * 64, 1);
        let w = random(64, 2);
        let mut q = vec![7u8; q8_activation_bytes(2, 64)];
        let mut f = vec![3f32; 2 * 64];
        assert!(rms_norm_q8(&x, &w, 2, 64, 1e-5, Some(&mut f), &mut q).is_ok());
        q.fill(7);
        f.fill(3.0);
        let bad: [(&[f32], &[f32], usize, usize); 5] = [
            (&x, &w, 4, 32),              // n = 32 but weight has 64
            (&x, &w, 3, 64),              // x too short
            (&x[..96], &w, 3, 32),        // weight length
            (&x, &w[..48], 2, 64),        // weight length
            (&x[..100], &w[..50], 2, 50), // n not a multiple of 32
        ];
        for (x, w, rows, n) in bad {
            assert!(rms_norm_q8(x, w, rows, n, 1e-5, Some(&mut f), &mut q).is_err());
        }
        // Wrong output lengths.
        assert!(rms_norm_q8(&x, &w, 2, 64, 1e-5, Some(&mut f[1..]), &mut q).is_err());
        assert!(rms_norm_q8(&x, &w, 2, 64, 1e-5, None, &mut q[16..]).is_err());
        assert!(rms_norm_q8(&[], &w, 0, 64, 1e-5, None, &mut []).is_ok());
        assert!(rms_norm_q8(&[], &[], 0, 0, 1e-5, None, &mut []).is_err());
        assert!(q.iter().all(|&b| b == 7) && f.iter().all(|&v| v == 3.0));
    }

    #[test]
    fn swiglu_q8_is_swiglu_then_quantization() {
        for (rows, n) in [(1, 32), (4, 1536), (2, 96)] {
            let gate: Vec<f32> = random(rows * n, 3).iter().map(|v| v * 6.0).collect();
            let up = random(rows * n, 4);
            let mut y = vec![0f32; rows * n];
            swiglu(&gate, &up, &mut y).unwrap();
            let mut expected = vec![0u8; q8_activation_bytes(rows, n)];
            quantize_activations(&y, rows, n, &mut expected).unwrap();
            let mut q = vec![0xAAu8; expected.len()];
            swiglu_q8(&gate, &up, rows, n, &mut q).unwrap();
            assert_eq!(q, expected);
        }
        let g = random(64, 5);
        let mut q = vec![1u8; q8_row_bytes(64)];
        assert!(swiglu_q8(&g, &g[..63], 1, 64, &mut q).is_err());
        assert!(swiglu_q8(&g, &g, 2, 32, &mut q).is_err());
        assert!(swiglu_q8(&g[..48], &g[..48], 1, 48, &mut q[..q8_row_bytes(32)]).is_err());
        assert!(swiglu_q8(&g, &g, 1, 64, &mut q[..16]).is_err());
        assert!(q.iter().all(|&b| b == 1));
    }

    #[test]
    fn matvec_q8_add_is_matvec_q8_then_add() {
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
        ] {
            let (rows, cols) = (37, 2 * ty.block_size().max(32));
            let bytes = quant::quantize(ty, &random(rows * cols, 11)).unwrap();
            let w = WeightMatrix::new(ty, &bytes, rows, cols).unwrap();
            let mut xq = vec![0u8; q8_row_bytes(cols)];
            quantize_activations(&random(cols, 12), 1, cols, &mut xq).unwrap();
            let residual = random(rows, 13);
            let mut dot = vec![0f32; rows];
            matvec_q8(&w, &xq, &mut dot).unwrap();
            let mut expected = vec![0f32; rows];
            add(&residual, &dot, &mut expected).unwrap();
            let mut y = vec![f32::NAN; rows];
            matvec_q8_add(&w, &xq, &residual, &mut y).unwrap();
            assert_eq!(y, expected, "{}", ty.name());
            assert!(matvec_q8_add(&w, &xq, &residual[1..], &mut y).is_err());
            assert!(matvec_q8_add(&w, &xq[16..], &residual, &mut y).is_err());
        }
    }

    fn rope_case<T: KvElement + PartialEq + std::fmt::Debug>(mode: RopeMode, n_rot: usize) {
        let (n_heads, n_kv_heads, head_dim, n_ctx) = (6, 2, 16, 10);
        let positions = [4i32, 5, 6];
        let n_new = positions.len();
        let factors: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + i as f32 * 0.5).collect();
        let p = RopeParams::new(n_heads, head_dim, mode, 10000.0)
            .with_n_rot(n_rot)
            .with_freq_factors(&factors);
        let q = random(n_new * n_heads * head_dim, 21);
        let k = random(n_new * n_kv_heads * head_dim, 22);
        let v = random(n_new * n_kv_heads * head_dim, 23);
        let shape = KvCacheShape {
            n_ctx,
            n_kv_heads,
            head_dim,
        };
        let cache0: Vec<T> = random(shape.elements().unwrap(), 24)
            .into_iter()
            .map(T::from_f32)
            .collect();

        // The unfused sequence.
        let mut q_ref = q.clone();
        rope_inplace(&mut q_ref, &positions, &p).unwrap();
        let mut k_ref = k.clone();
        let kp = RopeParams {
            n_heads: n_kv_heads,
            ..p
        };
        rope_inplace(&mut k_ref, &positions, &kp).unwrap();
        let (mut kc_ref, mut vc_ref) = (cache0.clone(), cache0.clone());
        kv_cache_write(&mut kc_ref, shape, 4, &k_ref, n_new).unwrap();
        kv_cache_write(&mut vc_ref, shape, 4, &v, n_new).unwrap();

        let mut q_fused = q.clone();
        let (mut kc, mut vc) = (cache0.clone(), cache0.clone());
        rope_qk_kv_write(
            &mut q_fused,
            &k,
            &v,
            &positions,
            &p,
            n_kv_heads,
            &mut kc,
            &mut vc,
            shape,
        )
        .unwrap();
        assert_eq!(q_fused, q_ref);
        assert_eq!(kc, kc_ref);
        assert_eq!(vc, vc_ref);

        // Positions that do not fit, and bad shapes: errors, nothing written.
        let mut q2 = q.clone();
        let (mut kc2, mut vc2) = (cache0.clone(), cache0.clone());
        for bad_pos in [[8i32, 9, 10], [-1, 0, 1]] {
            assert!(rope_qk_kv_write(
                &mut q2, &k, &v, &bad_pos, &p, n_kv_heads, &mut kc2, &mut vc2, shape
            )
            .is_err());
        }
        assert!(rope_qk_kv_write(
            &mut q2,
            &k,
            &v[1..],
            &positions,
            &p,
            n_kv_heads,
            &mut kc2,
            &mut vc2,
            shape
        )
        .is_err());
        assert!(rope_qk_kv_write(
            &mut q2,
            &k[1..],
            &v,
            &positions,
            &p,
            n_kv_heads,
            &mut kc2,
            &mut vc2,
            shape
        )
        .is_err());
        assert!(rope_qk_kv_write(
            &mut q2[1..],
            &k,
            &v,
            &positions,
            &p,
            n_kv_heads,
            &mut kc2,
            &mut vc2,
            shape
        )
        .is_err());
        assert!(
            rope_qk_kv_write(&mut q2, &k, &v, &positions, &p, 3, &mut kc2, &mut vc2, shape)
                .is_err()
        );
        let odd = p.with_n_rot(n_rot - 1);
        assert!(rope_qk_kv_write(
            &mut q2, &k, &v, &positions, &odd, n_kv_heads, &mut kc2, &mut vc2, shape
        )
        .is_err());
        assert_eq!(q2, q);
        assert_eq!(kc2, cache0);
        assert_eq!(vc2, cache0);
    }

    #[test]
    fn rope_qk_kv_write_is_rope_then_the_cache_writes() {
        for mode in [RopeMode::Normal, RopeMode::Neox] {
            for n_rot in [16, 8] {
                rope_case::<f32>(mode, n_rot);
                rope_case::<f16>(mode, n_rot);
                rope_case::<bf16>(mode, n_rot);
            }
        }
    }
}
