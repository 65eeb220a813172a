// Elementwise ops over f32 vectors of n elements (grid-stride loops: any n, any grid).

#define RF_ELEMENTWISE_LOOP(i, n) \
    for (rf_u64 i = rf_global_index(); i < (n); i += (rf_u64)gridDim.x * blockDim.x)

extern "C" __global__ void rf_add_f32(const float* a, const float* b, float* out, rf_u64 n) {
    RF_ELEMENTWISE_LOOP(i, n) out[i] = a[i] + b[i];
}

extern "C" __global__ void rf_mul_f32(const float* a, const float* b, float* out, rf_u64 n) {
    RF_ELEMENTWISE_LOOP(i, n) out[i] = a[i] * b[i];
}

extern "C" __global__ void rf_scale_f32(const float* x, float* out, float s, rf_u64 n) {
    RF_ELEMENTWISE_LOOP(i, n) out[i] = s * x[i];
}

RF_DEVICE float rf_silu(float x) {
    return x / (1.0f + expf(-x));
}

extern "C" __global__ void rf_silu_f32(const float* x, float* out, rf_u64 n) {
    RF_ELEMENTWISE_LOOP(i, n) out[i] = rf_silu(x[i]);
}

// ggml's tanh approximation of GELU.
extern "C" __global__ void rf_gelu_f32(const float* x, float* out, rf_u64 n) {
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    const float coef_a = 0.044715f;
    RF_ELEMENTWISE_LOOP(i, n) {
        const float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanhf(sqrt_2_over_pi * v * (1.0f + coef_a * v * v)));
    }
}

// silu(gate) * up: the gated FFN of llama-family models, fused.
extern "C" __global__ void rf_swiglu_f32(const float* gate, const float* up, float* out, rf_u64 n) {
    RF_ELEMENTWISE_LOOP(i, n) out[i] = rf_silu(gate[i]) * up[i];
}

extern "C" __global__ void rf_f32_to_f16(const float* x, rf_u16* out, rf_u64 n) {
    RF_ELEMENTWISE_LOOP(i, n) out[i] = rf_float_to_half(x[i]);
}

extern "C" __global__ void rf_f16_to_f32(const rf_u16* x, float* out, rf_u64 n) {
    RF_ELEMENTWISE_LOOP(i, n) out[i] = rf_half_to_float(x[i]);
}

extern "C" __global__ void rf_f32_to_bf16(const float* x, rf_u16* out, rf_u64 n) {
    RF_ELEMENTWISE_LOOP(i, n) out[i] = rf_float_to_bf16(x[i]);
}

extern "C" __global__ void rf_bf16_to_f32(const rf_u16* x, float* out, rf_u64 n) {
    RF_ELEMENTWISE_LOOP(i, n) out[i] = rf_bf16_to_float(x[i]);
}

// x[r, i] += bias[i] for rows of `width` elements (a linear layer's bias, broadcast over
// the tokens of a batch). n = rows * width.
extern "C" __global__ void rf_add_bias_rows_f32(float* x, const float* bias, rf_u64 width, rf_u64 n) {
    RF_ELEMENTWISE_LOOP(i, n) x[i] += bias[i % width];
}

// rf_swiglu_f32 fused with the 8-bit quantization of its output (q8_quantize.hip): the
// n = rows * cols values of silu(gate) * up (cols a multiple of 32), quantized into rows
// of row_bytes. Blocks and the grid stride are multiples of 32 (the launcher's), so the
// 32 values of a quantization block are one aligned 32-lane group, all in or all out of
// the range.
extern "C" __global__ void rf_swiglu_q8_f32(const float* gate, const float* up, rf_u8* out, rf_u64 n, rf_u32 cols,
                                            rf_u32 row_bytes) {
    RF_ELEMENTWISE_LOOP(i, n) {
        const float v = rf_silu(gate[i]) * up[i];
        const rf_u64 t = i / cols;
        const rf_u32 col = (rf_u32)(i - t * cols);
        rf_q8_quantize_value(v, out + t * row_bytes, col, cols);
    }
}
