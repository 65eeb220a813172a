//! CPU reference implementations of every op (also the CPU backend of the model).
//!
//! Every GPU kernel of this crate has a function here that defines what it computes; the
//! GPU property tests compare against these functions. They are written to be read: one
//! concept per file, plain loops, and parallelism (rayon) only where the work is large
//! (matrix products, attention, row-wise ops over many rows, long element-wise ops).
//!
//! # Conventions
//!
//! * **Activations are `f32`**, stored **row-major** in flat slices, with every dimension
//!   passed explicitly. A shape written `[a, b, c]` means the last index varies fastest:
//!   element `(i, j, k)` lives at `(i * b + j) * c + k`.
//! * **Outputs are caller-provided** `&mut [f32]` slices of exactly the right length. Any
//!   length that does not match the dimensions, a zero where a positive size is needed, or
//!   a product of dimensions that overflows `usize` is an [`Error::Shape`](crate::Error::Shape)
//!   (or [`Error::DataSize`](crate::Error::DataSize) for raw quantized bytes), returned
//!   before anything is written. Nothing here panics on bad sizes.
//! * **Weights** ([`WeightMatrix`]) have `rows` output features × `cols` input features,
//!   stored row by row in a ggml type ([`GgmlType`](crate::quant::GgmlType)): row `r` is the
//!   `row_bytes(cols)` bytes at `r * row_bytes(cols)`, i.e. `cols / block_size` consecutive
//!   blocks exactly as ggml lays them out. This is ggml's 2-D tensor with `ne = [cols, rows]`
//!   (GGUF weights `blk.N.attn_q.weight` etc. as stored in the file). `y = W·x` means
//!   `y[r] = Σ_c W[r, c] · x[c]`.
//! * **Token-major activations**: a batch of `n_tokens` vectors of width `n` is `[n_tokens, n]`.
//!   Attention tensors are `[n_tokens, n_heads, head_dim]`; the KV cache is
//!   `[n_ctx, n_kv_heads, head_dim]` (position-major), one tensor for K and one for V.
//! * **Accumulation**: dot products and long sums (matrix products, attention scores and
//!   weighted sums, softmax denominators, norm statistics) accumulate in **`f64`**, then
//!   round once to `f32`. The product of two `f32` values is exact in `f64`, so the result
//!   is the exactly-rounded dot product of the (dequantized) inputs for every practical size
//!   and is independent of summation order and thread count. That makes this a stable
//!   reference: a GPU kernel summing in `f32` in any order should match within its *own*
//!   rounding error (about `n · 2⁻²⁴ · Σ|aᵢbᵢ|`), with nothing to attribute to the
//!   reference. Where ggml specifies a formula exactly (RMSNorm, LayerNorm, RoPE, softmax,
//!   GELU, SiLU, the casts), the functions follow ggml's CPU code, including where it
//!   rounds to `f32`; each function says so.
//! * **Determinism**: every function gives bit-identical results regardless of the number of
//!   rayon threads.
//! * **Sampling** is deterministic: randomness is a uniform number in `[0, 1)` supplied by
//!   the caller, who owns the seed.

pub mod argmax;
pub mod attention;
pub mod convert;
pub mod elementwise;
pub mod embedding;
pub mod fused;
pub mod kv_cache;
pub mod matmul;
pub mod norm;
pub mod q8_activations;
pub mod rope;
pub mod sampling;
pub mod softmax;
pub mod weights;

/// The optimization level (`opt-level`) these CPU ops were compiled at: `"0"` in a
/// dependent's plain debug build, where they run ~65x slower than at `"3"`.
pub const BUILD_OPT_LEVEL: &str = env!("ROCMFORGE_KERNELS_OPT_LEVEL");

pub use argmax::argmax;
pub use attention::{attention, default_attention_scale, AttentionParams};
pub use convert::{
    bf16_to_f16, bf16_to_f32, f16_to_bf16, f16_to_f32, f32_to_bf16, f32_to_bf16_value, f32_to_f16,
};
pub use elementwise::{
    add, add_inplace, gelu, gelu_f32, gelu_inplace, mul, mul_inplace, scale, scale_inplace, silu,
    silu_f32, silu_inplace, swiglu,
};
pub use embedding::embedding;
pub use fused::{matvec_q8_add, rms_norm_q8, rope_qk_kv_write, swiglu_q8};
pub use kv_cache::{kv_cache_write, KvCacheShape, KvElement};
pub use matmul::{matmul, matvec};
pub use norm::{layer_norm, rms_norm};
pub use q8_activations::{
    matvec_q8, matvec_q8_error_scale, q8_activation_bytes, q8_matvec_supported, q8_row_bytes,
    quantize_activations,
};
pub use rope::{rope, rope_inplace, RopeMode, RopeParams};
pub use sampling::{
    apply_penalties, apply_temperature, candidates_from_logits, min_p, sample, sample_candidates,
    softmax_candidates, sort_candidates, top_k, top_p, Candidate, Penalties, SamplerConfig,
};
pub use softmax::{softmax, softmax_inplace};
pub use weights::{dequantize_f16, dequantize_f32, WeightMatrix};

use crate::error::shape_error;
use crate::Result;

/// Element count above which element-wise and row-wise ops split their work over rayon
/// threads. Below it, thread hand-off costs more than it saves.
pub(crate) const PAR_MIN_ELEMENTS: usize = 1 << 15;

/// Elements per rayon task for element-wise ops.
pub(crate) const PAR_CHUNK: usize = 1 << 13;

/// `a * b`, or a shape error naming `what` if it overflows `usize`.
pub(crate) fn checked_mul(op: &'static str, what: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| shape_error(op, format!("{what}: {a} × {b} overflows usize")))
}

/// The product of `dims`, or a shape error naming `what` if it overflows `usize`.
pub(crate) fn checked_product(op: &'static str, what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter().try_fold(1usize, |acc, &d| {
        acc.checked_mul(d).ok_or_else(|| {
            shape_error(
                op,
                format!("{what}: the product of {dims:?} overflows usize"),
            )
        })
    })
}

/// A shape error unless `actual == expected`.
pub(crate) fn check_len(
    op: &'static str,
    what: &str,
    actual: usize,
    expected: usize,
) -> Result<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(shape_error(
            op,
            format!("{what} has {actual} elements, {expected} expected"),
        ))
    }
}

/// A shape error unless `value > 0`.
pub(crate) fn check_nonzero(op: &'static str, what: &str, value: usize) -> Result<()> {
    if value > 0 {
        Ok(())
    } else {
        Err(shape_error(op, format!("{what} must be at least 1")))
    }
}

/// `Σ a[i]·b[i]` accumulated in `f64` (each product is exact in `f64`).
///
/// Four independent partial sums, combined as `(s0 + s1) + (s2 + s3)`, then the tail
/// in order. The caller guarantees equal lengths.
pub(crate) fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let split = a.len() - a.len() % 4;
    let mut acc = [0.0f64; 4];
    for (ca, cb) in a[..split].chunks_exact(4).zip(b[..split].chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += f64::from(ca[k]) * f64::from(cb[k]);
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (&x, &y) in a[split..].iter().zip(&b[split..]) {
        sum += f64::from(x) * f64::from(y);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_f64_matches_naive_for_every_tail_length() {
        for n in 0..13 {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 2.0 - i as f32 * 0.25).collect();
            let naive: f64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            assert_eq!(dot_f64(&a, &b), naive, "n = {n}");
        }
    }

    #[test]
    fn checked_helpers_report_overflow_and_mismatch() {
        assert!(checked_mul("t", "x", usize::MAX, 2).is_err());
        assert_eq!(checked_mul("t", "x", 3, 4).unwrap(), 12);
        assert!(checked_product("t", "x", &[usize::MAX, 1, 2]).is_err());
        assert_eq!(checked_product("t", "x", &[2, 3, 4]).unwrap(), 24);
        assert!(check_len("t", "x", 3, 4).is_err());
        assert!(check_nonzero("t", "x", 0).is_err());
    }
}
