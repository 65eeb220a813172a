// Row-wise normalizations: one block per row of n elements (any n), blockDim.x a
// multiple of WAVE_SIZE. Statistics are summed in f32 across the block.
//
// A decode step normalizes one row: a single block, whose time is the chain of its
// passes' loads. The loops are unrolled (the sums keep their order: the same bits) and
// the pointers restrict-qualified so that a thread's loads of a pass are in flight
// together, not one latency after another (measured on the H100: 16 us -> see
// docs/benchmarks.md for a 4096-wide RMSNorm + quantization).

// out = x / sqrt(mean(x^2) + eps) * weight
extern "C" __global__ void rf_rms_norm_f32(const float* __restrict__ x, const float* __restrict__ weight,
                                           float* __restrict__ out, rf_u32 n, float eps) {
    __shared__ float scratch[1024 / 32];
    const rf_u64 row = blockIdx.x;
    const float* xr = x + row * n;
    float* outr = out + row * n;
    float sum = 0.0f;
#pragma unroll 8
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) sum += xr[i] * xr[i];
    sum = rf_block_sum(sum, scratch);
    const float scale = 1.0f / sqrtf(sum / (float)n + eps);
#pragma unroll 8
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) outr[i] = xr[i] * scale * weight[i];
}

// out = (x - mean) / sqrt(var + eps) * weight + bias   (has_bias: 0 or 1)
extern "C" __global__ void rf_layer_norm_f32(const float* x, const float* weight, const float* bias, float* out,
                                             rf_u32 n, float eps, rf_u32 has_bias) {
    __shared__ float scratch[1024 / 32];
    const rf_u64 row = blockIdx.x;
    const float* xr = x + row * n;
    float* outr = out + row * n;
    float sum = 0.0f;
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) sum += xr[i];
    const float mean = rf_block_sum(sum, scratch) / (float)n;
    float sq = 0.0f;
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) {
        const float d = xr[i] - mean;
        sq += d * d;
    }
    const float var = rf_block_sum(sq, scratch) / (float)n;
    const float scale = 1.0f / sqrtf(var + eps);
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = (xr[i] - mean) * scale * weight[i];
        outr[i] = has_bias ? v + bias[i] : v;
    }
}

// Numerically stable softmax of (scale * x) over each row.
extern "C" __global__ void rf_softmax_f32(const float* x, float* out, rf_u32 n, float scale) {
    __shared__ float scratch[1024 / 32];
    const rf_u64 row = blockIdx.x;
    const float* xr = x + row * n;
    float* outr = out + row * n;
    float m = -__int_as_float(0x7f800000);
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, scale * xr[i]);
    m = rf_block_max(m, scratch);
    float sum = 0.0f;
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) {
        const float e = expf(scale * xr[i] - m);
        outr[i] = e;
        sum += e;
    }
    sum = rf_block_sum(sum, scratch);
    const float inv = 1.0f / sum;
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) outr[i] *= inv;
}

// rf_rms_norm_f32 fused with the 8-bit quantization of its output (q8_quantize.hip):
// with the same blockDim.x the sums run in the same order, so y is rf_rms_norm_f32's bit
// for bit, and each row of `outq` (row_bytes apart) holds what rf_quantize_q8_f32 writes
// for it. `out` gets y too when write_f32 is 1 (else it is not touched). n is a multiple
// of 32: every pass over the row covers whole 32-value blocks with whole aligned 32-lane
// groups (blockDim.x a multiple of WAVE_SIZE, hence of 32), as the quantizer needs.
extern "C" __global__ void rf_rms_norm_q8_f32(const float* __restrict__ x, const float* __restrict__ weight,
                                              float* __restrict__ out, rf_u8* __restrict__ outq, rf_u32 n,
                                              float eps, rf_u32 row_bytes, rf_u32 write_f32) {
    __shared__ float scratch[1024 / 32];
    const rf_u64 row = blockIdx.x;
    const float* xr = x + row * n;
    float sum = 0.0f;
#pragma unroll 8
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) sum += xr[i] * xr[i];
    sum = rf_block_sum(sum, scratch);
    const float scale = 1.0f / sqrtf(sum / (float)n + eps);
    rf_u8* q = outq + row * row_bytes;
#pragma unroll 8
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = xr[i] * scale * weight[i];
        if (write_f32) out[row * n + i] = v;
        rf_q8_quantize_value(v, q, i, n);
    }
}
