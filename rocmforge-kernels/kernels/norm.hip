// Row-wise normalizations: one block per row of n elements (any n), blockDim.x a
// multiple of WAVE_SIZE. Statistics are summed in f32 across the block.
//
// A decode step normalizes one row: a single block, whose time is the chain of its
// memory accesses. RMSNorm therefore holds a row of up to RF_NORM_HELD values per thread
// in registers: x and the weight are loaded once, all at the start, and the output
// computed from the registers after the block's sum (measured on the H100, a 4096-wide
// RMSNorm + quantization: 16.5 us with a loop per pass and 256 threads; see
// docs/benchmarks.md). Longer rows take the loops, unrolled so that a thread's loads are
// in flight together. Both ways sum in the same order: the same bits.

#define RF_NORM_HELD 8

// y = x / sqrt(mean(x^2) + eps) * weight for one row, emit(i, y_i) for each i < n (when
// n and blockDim.x are multiples of 32, the lanes of an aligned 32-lane group call it
// together, as the quantizing caller needs). `scratch`: shared, blockDim.x / WAVE_SIZE
// floats.
template <class Emit>
RF_DEVICE void rf_rms_norm_row(const float* __restrict__ xr, const float* __restrict__ weight,
                               rf_u32 n, float eps, float* scratch, Emit emit) {
    if (n <= RF_NORM_HELD * blockDim.x) {
        float v[RF_NORM_HELD], wv[RF_NORM_HELD];
#pragma unroll
        for (int j = 0; j < RF_NORM_HELD; ++j) {
            const rf_u32 i = threadIdx.x + j * blockDim.x;
            v[j] = i < n ? xr[i] : 0.0f;
            wv[j] = i < n ? weight[i] : 0.0f;
        }
        // Past n, 0 * 0 adds nothing: the loop's sum below, bit for bit.
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < RF_NORM_HELD; ++j) sum += v[j] * v[j];
        sum = rf_block_sum(sum, scratch);
        const float scale = 1.0f / sqrtf(sum / (float)n + eps);
#pragma unroll
        for (int j = 0; j < RF_NORM_HELD; ++j) {
            const rf_u32 i = threadIdx.x + j * blockDim.x;
            if (i < n) emit(i, v[j] * scale * wv[j]);
        }
        return;
    }
    float sum = 0.0f;
#pragma unroll 8
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) sum += xr[i] * xr[i];
    sum = rf_block_sum(sum, scratch);
    const float scale = 1.0f / sqrtf(sum / (float)n + eps);
#pragma unroll 8
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) emit(i, xr[i] * scale * weight[i]);
}

// out = x / sqrt(mean(x^2) + eps) * weight
extern "C" __global__ void rf_rms_norm_f32(const float* __restrict__ x, const float* __restrict__ weight,
                                           float* __restrict__ out, rf_u32 n, float eps) {
    __shared__ float scratch[1024 / 32];
    const rf_u64 row = blockIdx.x;
    float* outr = out + row * n;
    rf_rms_norm_row(x + row * n, weight, n, eps, scratch, [&](rf_u32 i, float y) {
        outr[i] = y;
    });
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
    rf_u8* q = outq + row * row_bytes;
    rf_rms_norm_row(x + row * n, weight, n, eps, scratch, [&](rf_u32 i, float y) {
        if (write_f32) out[row * n + i] = y;
        rf_q8_quantize_value(y, q, i, n);
    });
}
