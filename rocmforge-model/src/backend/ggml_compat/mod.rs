//! llama.cpp's CPU arithmetic, reproduced: the operations of the forward pass computed
//! with the same roundings, in the same order, as llama.cpp's x86 CPU backend built for
//! AVX2 + FMA + F16C (commit 0c1e57098, `GGML_NATIVE=OFF`), so that rocmforge's CPU
//! backend in [`CpuArithmetic::GgmlCompatible`](super::cpu::CpuArithmetic) mode gives
//! llama.cpp's logits (and its greedy tokens) rather than the exact ones.
//!
//! # Why
//!
//! llama.cpp does not compute the exact forward pass of the dequantized weights: it
//! quantizes the activations to 8 bits before every quantized matrix product, keeps the
//! KV cache in f16 and accumulates attention in f16, and evaluates the SiLU with a
//! polynomial `exp`. On a small model these roundings move the top-5 next-token
//! probabilities by several hundredths, and flip greedy choices whose margin is well above
//! any "near tie" — and a change of one bit early on (an activation rounding to the other
//! 8-bit value) propagates through every later layer and token. Agreeing with llama.cpp
//! within 0.02 therefore takes reproducing its arithmetic bit for bit, which this module
//! does for the operations a llama-family model uses. (Even llama.cpp itself, built with
//! AVX-512 instead of AVX2, differs from its AVX2 build by up to 0.09 on the demo model.)
//!
//! # What is reproduced (and from where)
//!
//! | operation | llama.cpp source | here |
//! |---|---|---|
//! | activations → Q8_1 / Q8_0 before `mul_mat` (`vec_dot_type`) | `arch/x86/quants.c`: `quantize_row_q8_1`, `quantize_row_q8_0` (AVX2: `127/amax`, round half to even) | [`quantize`] |
//! | quantized dot products | `arch/x86/quants.c`: `ggml_vec_dot_q4_1_q8_1`, `…_q5_1_q8_1`, `…_q8_0_q8_0`; `llamafile/sgemm.cpp` (same per element for Q8_0) | [`vec_dot`], [`matmul`] |
//! | attention | `ops.cpp`: `ggml_compute_forward_flash_attn_ext_f16` (one-row, tiled and split-KV paths); flash attention on by default (`llama-context.cpp`), f16 cache (`common.h`) | [`flash_attn`] |
//! | f16 vector ops | `vec.cpp` / `vec.h`: `ggml_vec_dot_f16`, `ggml_vec_mad_f16`, `ggml_vec_scale_f16` | [`vec_f16`] |
//! | SwiGLU | `vec.cpp`: `ggml_vec_swiglu_f32` with `ggml_v_expf` / `ggml_v_silu` (`vec.h`) | [`activation`] |
//! | RoPE rotation | `ops.cpp`: `rotate_pairs` as GCC compiles it | [`rope`] |
//! | FMA contraction | GCC's default `-ffp-contract=fast` on `-mfma` builds fuses scalar `a * b + c` (checked in the object code) | [`simd::fma`] |
//!
//! RMSNorm (`f64` sum of `f32` squares), the embedding lookup, residual additions and the
//! RoPE angles are already computed as ggml does by
//! [`rocmforge_kernels::cpu`]; the CPU backend uses those in both modes.
//!
//! Not reproduced: weight types other than Q4_1, Q5_1 and Q8_0 (llama.cpp's x86 build
//! repacks Q4_0/Q4_K/IQ4_NL into interleaved layouts and tiles the other K-quants, with
//! other roundings): their products stay exact in this mode. The split-KV attention path
//! (a single query token against more than 256 cached positions) depends on llama.cpp's
//! thread count, which the backend takes as a parameter.

pub mod activation;
pub mod f16;
pub mod flash_attn;
mod flash_attn_tiled;
pub mod matmul;
pub mod quantize;
pub mod rope;
pub mod simd;
pub mod vec_dot;
pub mod vec_f16;

use crate::error::ModelError;

/// A shape error of a ggml-compatible op.
fn shape_error(op: &'static str, message: impl Into<String>) -> ModelError {
    ModelError::Compute(rocmforge_kernels::Error::Shape {
        op,
        message: message.into(),
    })
}
