//! [`GpuArithmetic`]: how the HIP backend rounds.

/// How the HIP backend computes the products with quantized weights in decode steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GpuArithmetic {
    /// Activations quantized to 8 bits (per 32 values, an `f32` scale) before every matrix
    /// × vector product with quantized weights, which then runs on integer dot products —
    /// what llama.cpp's CUDA backend does, and up to twice as fast (see
    /// `docs/benchmarks.md`). Changes results by the 8-bit rounding of the activations
    /// (about 0.4% of a product). Products with f32/f16/bf16 weights and prefill (more than
    /// [`Q8_MAX_TOKENS`] tokens) keep `f32` activations.
    #[default]
    Fast,
    /// `f32` activations everywhere: the exact product of the dequantized weights (to
    /// `f32` rounding), the reference the kernels are checked against.
    Exact,
    /// llama.cpp's CPU arithmetic (its x86 AVX2 build), as the CPU backend's
    /// [`CpuArithmetic::GgmlCompatible`](crate::backend::cpu::CpuArithmetic::GgmlCompatible)
    /// computes it (`rocmforge_kernels::gpu::GgmlCompatOps`): activations quantized to
    /// Q8_1 / Q8_0 with llama.cpp's rounding and products with its dot products, lane
    /// for lane, for Q4_1 / Q5_1 / Q8_0 weights (every batch size); f16 activations for
    /// F16 weights; flash attention with an f16 query and f16 accumulation of V (its
    /// one-row, split-KV and tiled paths); `ggml_v_expf` in the SwiGLU; RoPE with fused
    /// multiply-adds; RMSNorm with an `f64` sum. Products with other weight types stay
    /// exact, as on the CPU. For getting llama.cpp's logits and greedy tokens on the GPU:
    /// a correctness mode, much slower than [`Fast`](Self::Fast) (attention walks the cache
    /// one position at a time, decode steps are not recorded into graphs), and its kernels
    /// are compiled at first use.
    GgmlCompatible,
}

/// Most tokens of a [`Backend::linear`](crate::backend::Backend::linear) call that take the 8-bit matrix × vector path
/// (one launch per token) in [`GpuArithmetic::Fast`].
pub const Q8_MAX_TOKENS: usize = 8;
