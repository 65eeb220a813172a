//! The kernel sources compiled into the library, and the prelude they share.

/// The header prepended to every source: wave size, shuffles, half/bf16 conversion.
pub const PRELUDE: &str = include_str!("../kernels/prelude.h");

/// One `.hip` file: compiled into one code object holding its kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSource {
    /// File name, e.g. `elementwise.hip`.
    pub name: &'static str,
    /// The source text (without the prelude).
    pub source: &'static str,
    /// Shared headers (besides the prelude) placed before the source, in order.
    pub includes: &'static [&'static str],
    /// The `extern "C"` kernels it defines.
    pub kernels: &'static [&'static str],
}

/// Decoders of ggml's block formats (`rf_elem_*`), for sources that read quantized weights.
pub const QUANT_DECODE_H: &str = include_str!("../kernels/quant_decode.h");

/// The 8-bit activation quantizer of one value per lane (`rf_q8_quantize_value`), for
/// sources whose kernels write quantized activations as a fused epilogue.
pub const Q8_QUANTIZE_INCLUDE: &str = include_str!("../kernels/q8_quantize.hip");

impl KernelSource {
    /// The text handed to the compiler: prelude, then the source.
    pub fn full_source(&self) -> String {
        let mut text = String::from(PRELUDE);
        for include in self.includes {
            text.push('\n');
            text.push_str(include);
        }
        text.push_str(&format!("\n#line 1 \"{}\"\n{}", self.name, self.source));
        text
    }
}

/// Elementwise ops and casts, and SwiGLU fused with 8-bit activation quantization.
pub const ELEMENTWISE: KernelSource = KernelSource {
    name: "elementwise.hip",
    source: include_str!("../kernels/elementwise.hip"),
    includes: &[Q8_QUANTIZE_INCLUDE],
    kernels: &[
        "rf_add_f32",
        "rf_mul_f32",
        "rf_scale_f32",
        "rf_silu_f32",
        "rf_gelu_f32",
        "rf_swiglu_f32",
        "rf_f32_to_f16",
        "rf_f16_to_f32",
        "rf_f32_to_bf16",
        "rf_bf16_to_f32",
        "rf_add_bias_rows_f32",
        "rf_swiglu_q8_f32",
    ],
};

/// RMSNorm (also fused with 8-bit activation quantization), LayerNorm, softmax: one
/// block per row.
pub const NORM: KernelSource = KernelSource {
    name: "norm.hip",
    source: include_str!("../kernels/norm.hip"),
    includes: &[Q8_QUANTIZE_INCLUDE],
    kernels: &[
        "rf_rms_norm_f32",
        "rf_layer_norm_f32",
        "rf_softmax_f32",
        "rf_rms_norm_q8_f32",
    ],
};

/// Rotary position embedding, both layouts; RoPE of q and k fused with the KV-cache
/// write of k and v.
pub const ROPE: KernelSource = KernelSource {
    name: "rope.hip",
    source: include_str!("../kernels/rope.hip"),
    includes: &[],
    kernels: &[
        "rf_rope_f32",
        "rf_rope_factors_f32",
        "rf_rope_qk_kv_write_at_f32",
        "rf_rope_qk_kv_write_at_f16",
        "rf_rope_qk_kv_write_at_bf16",
    ],
};

/// Kernels over ggml block formats: matvec, row lookup, dequantization, for
/// F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
pub const QUANT: KernelSource = KernelSource {
    name: "quant.hip",
    source: include_str!("../kernels/quant.hip"),
    includes: &[QUANT_DECODE_H],
    kernels: &[
        "rf_matvec_f32",
        "rf_get_rows_f32",
        "rf_dequantize_f32_f32",
        "rf_dequantize_f32_f16",
        "rf_matvec_f16",
        "rf_get_rows_f16",
        "rf_dequantize_f16_f32",
        "rf_dequantize_f16_f16",
        "rf_matvec_bf16",
        "rf_get_rows_bf16",
        "rf_dequantize_bf16_f32",
        "rf_dequantize_bf16_f16",
        "rf_matvec_q4_0",
        "rf_get_rows_q4_0",
        "rf_dequantize_q4_0_f32",
        "rf_dequantize_q4_0_f16",
        "rf_matvec_q4_1",
        "rf_get_rows_q4_1",
        "rf_dequantize_q4_1_f32",
        "rf_dequantize_q4_1_f16",
        "rf_matvec_q5_0",
        "rf_get_rows_q5_0",
        "rf_dequantize_q5_0_f32",
        "rf_dequantize_q5_0_f16",
        "rf_matvec_q5_1",
        "rf_get_rows_q5_1",
        "rf_dequantize_q5_1_f32",
        "rf_dequantize_q5_1_f16",
        "rf_matvec_q8_0",
        "rf_get_rows_q8_0",
        "rf_dequantize_q8_0_f32",
        "rf_dequantize_q8_0_f16",
        "rf_matvec_q2_K",
        "rf_get_rows_q2_K",
        "rf_dequantize_q2_K_f32",
        "rf_dequantize_q2_K_f16",
        "rf_matvec_q3_K",
        "rf_get_rows_q3_K",
        "rf_dequantize_q3_K_f32",
        "rf_dequantize_q3_K_f16",
        "rf_matvec_q4_K",
        "rf_get_rows_q4_K",
        "rf_dequantize_q4_K_f32",
        "rf_dequantize_q4_K_f16",
        "rf_matvec_q5_K",
        "rf_get_rows_q5_K",
        "rf_dequantize_q5_K_f32",
        "rf_dequantize_q5_K_f16",
        "rf_matvec_q6_K",
        "rf_get_rows_q6_K",
        "rf_dequantize_q6_K_f32",
        "rf_dequantize_q6_K_f16",
    ],
};

/// Decode matrix × vector with 8-bit activations: the activation quantizer and the
/// integer-dot-product matvec kernels (a few shapes per type: `rf_mvq_<type>[_r<n>|_s<n>]`)
/// for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, and their forms with a
/// residual epilogue and up to three matrices per launch (`rf_mvqx_<type>[<variant>|_mixed]`).
/// The activation format is [`crate::cpu::q8_activations`].
pub const QUANT_Q8: KernelSource = KernelSource {
    name: "quant_q8.hip",
    source: include_str!("../kernels/quant_q8.hip"),
    includes: &[QUANT_DECODE_H],
    kernels: &[
        "rf_quantize_q8_f32",
        "rf_mvq_q4_0",
        "rf_mvq_q4_1",
        "rf_mvq_q5_0",
        "rf_mvq_q5_1",
        "rf_mvq_q8_0",
        "rf_mvq_q2_K",
        "rf_mvq_q3_K",
        "rf_mvq_q4_K",
        "rf_mvq_q5_K",
        "rf_mvq_q6_K",
        "rf_mvq_q4_0_r1",
        "rf_mvq_q4_0_r2",
        "rf_mvq_q8_0_r1",
        "rf_mvq_q8_0_r2",
        "rf_mvq_q4_K_r1",
        "rf_mvq_q4_K_r2",
        "rf_mvq_q6_K_r2",
        "rf_mvq_q4_0_s1",
        "rf_mvq_q4_0_s2",
        "rf_mvq_q4_1_s1",
        "rf_mvq_q4_1_s2",
        "rf_mvq_q5_0_s1",
        "rf_mvq_q5_0_s2",
        "rf_mvq_q5_1_s1",
        "rf_mvq_q5_1_s2",
        "rf_mvq_q8_0_s1",
        "rf_mvq_q8_0_s2",
        "rf_mvq_q2_K_s1",
        "rf_mvq_q2_K_s2",
        "rf_mvq_q3_K_s1",
        "rf_mvq_q3_K_s2",
        "rf_mvq_q4_K_s1",
        "rf_mvq_q4_K_s2",
        "rf_mvq_q5_K_s1",
        "rf_mvq_q5_K_s2",
        "rf_mvq_q6_K_s1",
        "rf_mvq_q6_K_s2",
        "rf_mvq_q4_0_c2",
        "rf_mvq_q4_0_c4",
        "rf_mvq_q4_1_c2",
        "rf_mvq_q4_1_c4",
        "rf_mvq_q5_0_c2",
        "rf_mvq_q5_0_c4",
        "rf_mvq_q5_1_c2",
        "rf_mvq_q5_1_c4",
        "rf_mvq_q8_0_c2",
        "rf_mvq_q8_0_c4",
        "rf_mvq_q4_K_c2",
        "rf_mvq_q4_K_c4",
        "rf_mvq_q5_K_c2",
        "rf_mvq_q5_K_c4",
        "rf_mvqx_q4_0",
        "rf_mvqx_q4_0_r1",
        "rf_mvqx_q4_0_c2",
        "rf_mvqx_q4_1",
        "rf_mvqx_q4_1_c2",
        "rf_mvqx_q5_0_s1",
        "rf_mvqx_q5_0_s2",
        "rf_mvqx_q5_0_c2",
        "rf_mvqx_q5_0_c4",
        "rf_mvqx_q5_1",
        "rf_mvqx_q5_1_s2",
        "rf_mvqx_q5_1_c2",
        "rf_mvqx_q8_0_r1",
        "rf_mvqx_q8_0_s1",
        "rf_mvqx_q8_0_c2",
        "rf_mvqx_q2_K_s1",
        "rf_mvqx_q2_K_s2",
        "rf_mvqx_q3_K_s1",
        "rf_mvqx_q3_K_s2",
        "rf_mvqx_q4_K_c2",
        "rf_mvqx_q4_K_c4",
        "rf_mvqx_q5_K_c2",
        "rf_mvqx_q5_K_c4",
        "rf_mvqx_q6_K_s1",
        "rf_mvqx_q6_K_s2",
        "rf_mvqx_q4_0_mixed",
        "rf_mvqx_q4_1_mixed",
        "rf_mvqx_q5_0_mixed",
        "rf_mvqx_q5_1_mixed",
        "rf_mvqx_q8_0_mixed",
        "rf_mvqx_q2_K_mixed",
        "rf_mvqx_q3_K_mixed",
        "rf_mvqx_q4_K_mixed",
        "rf_mvqx_q5_K_mixed",
        "rf_mvqx_q6_K_mixed",
    ],
};

/// Prefill matrix × matrix (tiled GEMM) over ggml block formats, for the same types as
/// [`QUANT`], in three tile shapes each (`_l`, `_m`, `_s`: see gemm.hip).
pub const GEMM: KernelSource = KernelSource {
    name: "gemm.hip",
    source: include_str!("../kernels/gemm.hip"),
    includes: &[QUANT_DECODE_H],
    kernels: &[
        "rf_gemm_f32_l",
        "rf_gemm_f32_m",
        "rf_gemm_f32_s",
        "rf_gemm_f16_l",
        "rf_gemm_f16_m",
        "rf_gemm_f16_s",
        "rf_gemm_bf16_l",
        "rf_gemm_bf16_m",
        "rf_gemm_bf16_s",
        "rf_gemm_q4_0_l",
        "rf_gemm_q4_0_m",
        "rf_gemm_q4_0_s",
        "rf_gemm_q4_1_l",
        "rf_gemm_q4_1_m",
        "rf_gemm_q4_1_s",
        "rf_gemm_q5_0_l",
        "rf_gemm_q5_0_m",
        "rf_gemm_q5_0_s",
        "rf_gemm_q5_1_l",
        "rf_gemm_q5_1_m",
        "rf_gemm_q5_1_s",
        "rf_gemm_q8_0_l",
        "rf_gemm_q8_0_m",
        "rf_gemm_q8_0_s",
        "rf_gemm_q2_K_l",
        "rf_gemm_q2_K_m",
        "rf_gemm_q2_K_s",
        "rf_gemm_q3_K_l",
        "rf_gemm_q3_K_m",
        "rf_gemm_q3_K_s",
        "rf_gemm_q4_K_l",
        "rf_gemm_q4_K_m",
        "rf_gemm_q4_K_s",
        "rf_gemm_q5_K_l",
        "rf_gemm_q5_K_m",
        "rf_gemm_q5_K_s",
        "rf_gemm_q6_K_l",
        "rf_gemm_q6_K_m",
        "rf_gemm_q6_K_s",
    ],
};

/// Attention: KV-cache writes, split-sequence decode attention and its combine step,
/// tiled causal prefill attention (head_dim up to 64, 128 and 256), argmax.
pub const ATTENTION: KernelSource = KernelSource {
    name: "attention.hip",
    source: include_str!("../kernels/attention.hip"),
    includes: &[],
    kernels: &[
        "rf_kv_write_f32",
        "rf_kv_write_f16",
        "rf_kv_write_bf16",
        "rf_attn_decode_f32",
        "rf_attn_decode_f16",
        "rf_attn_decode_bf16",
        "rf_attn_combine",
        "rf_kv_write_at_f32",
        "rf_kv_write_at_f16",
        "rf_kv_write_at_bf16",
        "rf_attn_decode_at_f32",
        "rf_attn_decode_at_f16",
        "rf_attn_decode_at_bf16",
        "rf_attn_combine_at",
        "rf_attn_prefill_d64_f32",
        "rf_attn_prefill_d64_f16",
        "rf_attn_prefill_d64_bf16",
        "rf_attn_prefill_d128_f32",
        "rf_attn_prefill_d128_f16",
        "rf_attn_prefill_d128_bf16",
        "rf_attn_prefill_d256_f32",
        "rf_attn_prefill_d256_f16",
        "rf_attn_prefill_d256_bf16",
        "rf_argmax_partial_f32",
        "rf_argmax_final",
    ],
};

/// llama.cpp's CPU arithmetic on the GPU (the HIP backend's `GgmlCompatible` mode):
/// 8-bit activations with llama.cpp's rounding (and their round trip to `f32`), products
/// with its AVX2 dot products (Q4_1, Q5_1, Q8_0), f16 rounding, SwiGLU with `ggml_v_expf`, RoPE with FMAs, RMSNorm with an `f64` sum, and
/// flash attention with f16 accumulation (see [`crate::gpu::GgmlCompatOps`]).
pub const GGML_COMPAT: KernelSource = KernelSource {
    name: "ggml_compat.hip",
    source: include_str!("../kernels/ggml_compat.hip"),
    includes: &[],
    kernels: &[
        "rf_ggml_quantize_q8",
        "rf_ggml_q8_roundtrip",
        "rf_ggml_round_f16",
        "rf_ggml_matvec_q4_1",
        "rf_ggml_matvec_q5_1",
        "rf_ggml_matvec_q8_0",
        "rf_ggml_swiglu",
        "rf_ggml_rope",
        "rf_ggml_rms_norm",
        "rf_ggml_attn_f32",
        "rf_ggml_attn_f16",
    ],
};

/// Every source of the library.
pub const ALL_SOURCES: &[KernelSource] = &[
    ELEMENTWISE,
    NORM,
    ROPE,
    QUANT,
    QUANT_Q8,
    GEMM,
    ATTENTION,
    GGML_COMPAT,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Kernels instantiated by a macro (`RF_QUANT_KERNELS(q4_0, ...)`) are matched by
    /// their type suffix.
    fn defined(source: &KernelSource, kernel: &str) -> bool {
        if source.source.contains(&format!("void {kernel}("))
            || source.source.contains(&format!("void {kernel}(const"))
        {
            return true;
        }
        ["rf_matvec_", "rf_get_rows_", "rf_dequantize_"]
            .iter()
            .any(|prefix| {
                kernel.strip_prefix(prefix).is_some_and(|rest| {
                    let ty = rest.trim_end_matches("_f32").trim_end_matches("_f16");
                    let ty = if ty.is_empty() { rest } else { ty };
                    source.source.contains(&format!("RF_QUANT_KERNELS({ty},"))
                        || source
                            .source
                            .contains(&format!("RF_QUANT_KERNELS_FAST_MATVEC({ty},"))
                })
            })
    }

    #[test]
    fn every_listed_kernel_is_defined_in_its_source() {
        for source in ALL_SOURCES {
            for kernel in source.kernels {
                assert!(
                    defined(source, kernel),
                    "{kernel} is listed for {} but not defined there",
                    source.name
                );
            }
        }
    }

    #[test]
    fn the_fused_quantizer_computes_as_rf_quantize_q8_f32() {
        // The include defines no kernel of its own (its kernels' sources list them).
        assert!(!Q8_QUANTIZE_INCLUDE.contains("__global__"));
        // Every arithmetic step of rf_q8_quantize_value is rf_quantize_q8_f32's, written
        // the same way (the GPU tests compare their bytes; this catches drift earlier).
        for line in [
            "float amax = fmaxf(0.0f, fabsf(v));",
            "for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, rf_shfl_xor(amax, o));",
            "const float d = amax / 127.0f;",
            "const float id = d != 0.0f ? 1.0f / d : 0.0f;",
            "const float q = fminf(fmaxf(roundf(v * id), -127.0f), 127.0f);",
            "for (int o = 16; o > 0; o >>= 1) sum += rf_shfl_xor(sum, o);",
            "row[col] = (rf_u8)(rf_i8)(int)q;",
            "ds.y = d * sum;",
            "if (col + 32 == cols && (cols / 32) % 2 == 1) {",
        ] {
            assert!(QUANT_Q8.source.contains(line), "quant_q8.hip: {line}");
            assert!(
                Q8_QUANTIZE_INCLUDE.contains(line),
                "q8_quantize.hip: {line}"
            );
        }
        // The fused kernels compute their f32 values as the unfused kernels do: the two
        // RMSNorm kernels through the one row function, SwiGLU by the same expression.
        for (source, line) in [
            (
                NORM,
                "rf_rms_norm_row(x + row * n, weight, n, eps, scratch, [&](rf_u32 i, float y) {",
            ),
            (ELEMENTWISE, "rf_silu(gate[i]) * up[i];"),
        ] {
            assert_eq!(
                source.source.matches(line).count(),
                2,
                "{}: {line}",
                source.name
            );
        }
        for source in [NORM, ELEMENTWISE] {
            assert!(source.includes.contains(&Q8_QUANTIZE_INCLUDE));
        }
    }

    #[test]
    fn the_fused_rope_computes_as_rope_and_the_cache_write() {
        // Angle and rotation: rf_rope_pair's expressions, in rf_rope_pair and again in
        // the fused kernel (once for q, once for k).
        for (line, count) in [
            ("for (rf_u32 k = 0; k < i; ++k) theta *= theta_scale;", 2),
            ("const float ff = freq_factors ? freq_factors[i] : 1.0f;", 2),
            ("const float t = freq_scale * (theta / ff);", 2),
            ("const rf_u32 a = neox ? i : 2 * i;", 3),
            ("const rf_u32 b = neox ? i + half_rot : 2 * i + 1;", 3),
            ("h[a] = x0 * c - x1 * s;", 2),
            ("h[b] = x0 * s + x1 * c;", 2),
            ("const float r0 = x0 * c - x1 * s;", 1),
            ("const float r1 = x0 * s + x1 * c;", 1),
        ] {
            assert_eq!(ROPE.source.matches(line).count(), count, "rope.hip: {line}");
        }
        // Conversions to the cache types: attention.hip's, and its position check.
        for line in [
            "static RF_DEVICE rf_u16 store(float x) { return rf_float_to_half(x); }",
            "static RF_DEVICE rf_u16 store(float x) { return rf_float_to_bf16(x); }",
        ] {
            assert!(ATTENTION.source.contains(line), "attention.hip: {line}");
            assert!(ROPE.source.contains(line), "rope.hip: {line}");
        }
        assert!(ATTENTION
            .source
            .contains("return p >= 0 && (rf_u64)p + n <= n_ctx;"));
        assert!(ROPE
            .source
            .contains("p0 >= 0 && (rf_u64)p0 + n_new <= n_ctx;"));
    }

    #[test]
    fn every_defined_kernel_is_listed() {
        for source in ALL_SOURCES {
            for line in source.source.lines() {
                // Launch bounds given by a macro stand between __global__ and void.
                let line = line.replace("__global__ RF_MVC_BOUNDS void", "__global__ void");
                if let Some(rest) = line.strip_prefix("extern \"C\" __global__ void ") {
                    let name = rest.split('(').next().unwrap_or_default();
                    if name.contains("##") {
                        continue; // a macro template; its instances are checked above
                    }
                    assert!(
                        source.kernels.contains(&name),
                        "{name} in {} is not listed",
                        source.name
                    );
                }
            }
        }
    }
}
