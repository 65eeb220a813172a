// Kernels over weights in ggml's block formats: matrix x vector (decode), row lookup
// (embeddings) and whole-tensor dequantization. Prefill matrix x matrix is in gemm.hip.
// The decoders (rf_elem_T) are in quant_decode.h.

// ---- fast matrix x vector for the types that dominate decode ----------------------
// Vector loads: the weights must start 16-byte aligned and x 16-byte aligned (checked
// by the launcher). One wave per row.

struct alignas(16) rf_u32x4 { rf_u32 x, y, z, w; };
struct alignas(16) rf_f32x4 { float x, y, z, w; };

RF_DEVICE float rf_dot4(rf_f32x4 a, float b0, float b1, float b2, float b3) {
    return a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3;
}

RF_DEVICE rf_u32 rf_ld_u32_2(const rf_u8* p) {  // 2-byte-aligned 32-bit load
    const rf_u16* q = (const rf_u16*)p;
    return (rf_u32)q[0] | ((rf_u32)q[1] << 16);
}

#define RF_MATVEC_PROLOGUE                                                                \
    const rf_u32 row = blockIdx.x * (blockDim.x / WAVE_SIZE) + threadIdx.x / WAVE_SIZE;   \
    if (row >= rows) return;                                                              \
    const rf_u32 lane = threadIdx.x % WAVE_SIZE;                                          \
    const rf_f32x4* x4 = (const rf_f32x4*)x;                                              \
    float sum = 0.0f;

#define RF_MATVEC_EPILOGUE            \
    sum = rf_wave_sum(sum);           \
    if (lane == 0) y[row] = sum;

// 16-bit floats: each lane takes 8 consecutive elements (one 16-byte load) per step.
#define RF_MATVEC_16BIT(T, CVT)                                                                   \
extern "C" __global__ void rf_matvec_##T(const rf_u8* w, const float* x, float* y, rf_u32 rows,  \
                                         rf_u32 cols) {                                          \
    RF_MATVEC_PROLOGUE                                                                           \
    const rf_u32x4* wr = (const rf_u32x4*)(w + (rf_u64)row * cols * 2);                          \
    _Pragma("unroll 4")                                                                          \
    for (rf_u32 i = lane; i < cols / 8; i += WAVE_SIZE) {                                        \
        const rf_u32x4 q = wr[i];                                                                \
        const rf_f32x4 a = x4[2 * i], b = x4[2 * i + 1];                                         \
        sum += rf_dot4(a, CVT(q.x & 0xffff), CVT(q.x >> 16), CVT(q.y & 0xffff), CVT(q.y >> 16)); \
        sum += rf_dot4(b, CVT(q.z & 0xffff), CVT(q.z >> 16), CVT(q.w & 0xffff), CVT(q.w >> 16)); \
    }                                                                                            \
    RF_MATVEC_EPILOGUE                                                                           \
}
RF_MATVEC_16BIT(f16, rf_half_to_float)
RF_MATVEC_16BIT(bf16, rf_bf16_to_float)

extern "C" __global__ void rf_matvec_f32(const rf_u8* w, const float* x, float* y, rf_u32 rows, rf_u32 cols) {
    RF_MATVEC_PROLOGUE
    const rf_f32x4* wr = (const rf_f32x4*)(w + (rf_u64)row * cols * 4);
    _Pragma("unroll 4")
    for (rf_u32 i = lane; i < cols / 4; i += WAVE_SIZE) {
        const rf_f32x4 q = wr[i];
        sum += rf_dot4(x4[i], q.x, q.y, q.z, q.w);
    }
    RF_MATVEC_EPILOGUE
}

// The block kernels below: a block of several waves computes RF_MV_ROWS rows; its waves
// split the row's chunks between them (more loads in flight for short matrices) and
// each x load serves all RF_MV_ROWS rows. Partial sums meet in shared memory.
#define RF_MV_ROWS 2

#define RF_MATVEC_BLOCK_PROLOGUE(BLOCK_BYTES)                                                      \
    const rf_u32 row0 = blockIdx.x * RF_MV_ROWS;                                                   \
    if (row0 >= rows) return;                                                                      \
    const rf_u32 lane = threadIdx.x % WAVE_SIZE;                                                   \
    const rf_u32 wave = threadIdx.x / WAVE_SIZE;                                                   \
    const rf_u32 waves = blockDim.x / WAVE_SIZE;                                                   \
    const rf_u32 p = lane % 4;                                                                     \
    const rf_f32x4* x4 = (const rf_f32x4*)x;                                                       \
    const rf_u64 row_bytes = (rf_u64)(cols / 32) * BLOCK_BYTES;                                    \
    const rf_u8* wrs[RF_MV_ROWS];                                                                  \
    float sums[RF_MV_ROWS];                                                                        \
    _Pragma("unroll") for (int r = 0; r < RF_MV_ROWS; ++r) {                                       \
        /* a row past the end re-reads row0: harmless, and never written */                       \
        wrs[r] = w + (rf_u64)(row0 + r < rows ? row0 + r : row0) * row_bytes;                      \
        sums[r] = 0.0f;                                                                            \
    }                                                                                              \
    const rf_u32 c_first = wave * (WAVE_SIZE / 4) + lane / 4;                                      \
    const rf_u32 c_step = waves * (WAVE_SIZE / 4);

#define RF_MATVEC_BLOCK_EPILOGUE                                                             \
    __shared__ float partial[1024 / 32][RF_MV_ROWS];                                         \
    _Pragma("unroll") for (int r = 0; r < RF_MV_ROWS; ++r) {                                 \
        const float t = rf_wave_sum(sums[r]);                                                \
        if (lane == 0) partial[wave][r] = t;                                                 \
    }                                                                                        \
    __syncthreads();                                                                         \
    if (threadIdx.x < RF_MV_ROWS && row0 + threadIdx.x < rows) {                             \
        float total = 0.0f;                                                                  \
        for (rf_u32 i = 0; i < waves; ++i) total += partial[i][threadIdx.x];                 \
        y[row0 + threadIdx.x] = total;                                                       \
    }

// 32-element blocks: four lanes share a block. For the 4/5-bit types lane p takes qs
// bytes [4p, 4p+4): elements 4p..4p+3 (low nibbles) and 16+4p..16+4p+3 (high nibbles).
#define RF_NIBBLES(q, k) ((float)(((q) >> (8 * (k))) & 15))
#define RF_HIGH_NIBBLES(q, k) ((float)(((q) >> (8 * (k) + 4)) & 15))

extern "C" __global__ void rf_matvec_q4_0(const rf_u8* w, const float* x, float* y, rf_u32 rows, rf_u32 cols) {
    RF_MATVEC_BLOCK_PROLOGUE(18)
    _Pragma("unroll 4")
    for (rf_u32 c = c_first; c < cols / 32; c += c_step) {
        const rf_f32x4 lo = x4[8 * c + p], hi = x4[8 * c + 4 + p];
        _Pragma("unroll") for (int r = 0; r < RF_MV_ROWS; ++r) {
            const rf_u8* b = wrs[r] + 18 * c;
            const float d = rf_half_to_float(*(const rf_u16*)b);
            const rf_u32 q = rf_ld_u32_2(b + 2 + 4 * p);
            const float s = rf_dot4(lo, RF_NIBBLES(q, 0) - 8.f, RF_NIBBLES(q, 1) - 8.f, RF_NIBBLES(q, 2) - 8.f, RF_NIBBLES(q, 3) - 8.f)
                          + rf_dot4(hi, RF_HIGH_NIBBLES(q, 0) - 8.f, RF_HIGH_NIBBLES(q, 1) - 8.f, RF_HIGH_NIBBLES(q, 2) - 8.f, RF_HIGH_NIBBLES(q, 3) - 8.f);
            sums[r] += d * s;
        }
    }
    RF_MATVEC_BLOCK_EPILOGUE
}

extern "C" __global__ void rf_matvec_q4_1(const rf_u8* w, const float* x, float* y, rf_u32 rows, rf_u32 cols) {
    RF_MATVEC_BLOCK_PROLOGUE(20)
    _Pragma("unroll 4")
    for (rf_u32 c = c_first; c < cols / 32; c += c_step) {
        const rf_f32x4 lo = x4[8 * c + p], hi = x4[8 * c + 4 + p];
        const float xs = lo.x + lo.y + lo.z + lo.w + hi.x + hi.y + hi.z + hi.w;
        _Pragma("unroll") for (int r = 0; r < RF_MV_ROWS; ++r) {
            const rf_u8* b = wrs[r] + 20 * c;
            const rf_u32 dm = *(const rf_u32*)b;
            const float d = rf_half_to_float((rf_u16)(dm & 0xffff)), m = rf_half_to_float((rf_u16)(dm >> 16));
            const rf_u32 q = *(const rf_u32*)(b + 4 + 4 * p);
            const float s = rf_dot4(lo, RF_NIBBLES(q, 0), RF_NIBBLES(q, 1), RF_NIBBLES(q, 2), RF_NIBBLES(q, 3))
                          + rf_dot4(hi, RF_HIGH_NIBBLES(q, 0), RF_HIGH_NIBBLES(q, 1), RF_HIGH_NIBBLES(q, 2), RF_HIGH_NIBBLES(q, 3));
            sums[r] += d * s + m * xs;
        }
    }
    RF_MATVEC_BLOCK_EPILOGUE
}

// 5th bits: element 4p+k uses qh bit 4p+k, element 16+4p+k bit 16+4p+k.
#define RF_Q5_LO(q, qh, p, k) ((float)((((q) >> (8 * (k))) & 15) | ((((qh) >> (4 * (p) + (k))) & 1) << 4)))
#define RF_Q5_HI(q, qh, p, k) ((float)((((q) >> (8 * (k) + 4)) & 15) | ((((qh) >> (16 + 4 * (p) + (k))) & 1) << 4)))

extern "C" __global__ void rf_matvec_q5_0(const rf_u8* w, const float* x, float* y, rf_u32 rows, rf_u32 cols) {
    RF_MATVEC_BLOCK_PROLOGUE(22)
    _Pragma("unroll 4")
    for (rf_u32 c = c_first; c < cols / 32; c += c_step) {
        const rf_f32x4 lo = x4[8 * c + p], hi = x4[8 * c + 4 + p];
        _Pragma("unroll") for (int r = 0; r < RF_MV_ROWS; ++r) {
            const rf_u8* b = wrs[r] + 22 * c;
            const float d = rf_half_to_float(*(const rf_u16*)b);
            const rf_u32 qh = rf_ld_u32_2(b + 2);
            const rf_u32 q = rf_ld_u32_2(b + 6 + 4 * p);
            const float s = rf_dot4(lo, RF_Q5_LO(q, qh, p, 0) - 16.f, RF_Q5_LO(q, qh, p, 1) - 16.f, RF_Q5_LO(q, qh, p, 2) - 16.f, RF_Q5_LO(q, qh, p, 3) - 16.f)
                          + rf_dot4(hi, RF_Q5_HI(q, qh, p, 0) - 16.f, RF_Q5_HI(q, qh, p, 1) - 16.f, RF_Q5_HI(q, qh, p, 2) - 16.f, RF_Q5_HI(q, qh, p, 3) - 16.f);
            sums[r] += d * s;
        }
    }
    RF_MATVEC_BLOCK_EPILOGUE
}

extern "C" __global__ void rf_matvec_q5_1(const rf_u8* w, const float* x, float* y, rf_u32 rows, rf_u32 cols) {
    RF_MATVEC_BLOCK_PROLOGUE(24)
    _Pragma("unroll 4")
    for (rf_u32 c = c_first; c < cols / 32; c += c_step) {
        const rf_f32x4 lo = x4[8 * c + p], hi = x4[8 * c + 4 + p];
        const float xs = lo.x + lo.y + lo.z + lo.w + hi.x + hi.y + hi.z + hi.w;
        _Pragma("unroll") for (int r = 0; r < RF_MV_ROWS; ++r) {
            const rf_u8* b = wrs[r] + 24 * c;
            const rf_u32 dm = *(const rf_u32*)b;
            const float d = rf_half_to_float((rf_u16)(dm & 0xffff)), m = rf_half_to_float((rf_u16)(dm >> 16));
            const rf_u32 qh = *(const rf_u32*)(b + 4);
            const rf_u32 q = *(const rf_u32*)(b + 8 + 4 * p);
            const float s = rf_dot4(lo, RF_Q5_LO(q, qh, p, 0), RF_Q5_LO(q, qh, p, 1), RF_Q5_LO(q, qh, p, 2), RF_Q5_LO(q, qh, p, 3))
                          + rf_dot4(hi, RF_Q5_HI(q, qh, p, 0), RF_Q5_HI(q, qh, p, 1), RF_Q5_HI(q, qh, p, 2), RF_Q5_HI(q, qh, p, 3));
            sums[r] += d * s + m * xs;
        }
    }
    RF_MATVEC_BLOCK_EPILOGUE
}

// Q8_0: lane p takes qs bytes [8p, 8p+8) (four 2-byte-aligned loads).
#define RF_I8(q, k) ((float)(rf_i8)(((q) >> (8 * (k))) & 0xff))
extern "C" __global__ void rf_matvec_q8_0(const rf_u8* w, const float* x, float* y, rf_u32 rows, rf_u32 cols) {
    RF_MATVEC_BLOCK_PROLOGUE(34)
    _Pragma("unroll 4")
    for (rf_u32 c = c_first; c < cols / 32; c += c_step) {
        const rf_f32x4 a = x4[8 * c + 2 * p], e = x4[8 * c + 2 * p + 1];
        _Pragma("unroll") for (int r = 0; r < RF_MV_ROWS; ++r) {
            const rf_u8* b = wrs[r] + 34 * c;
            const float d = rf_half_to_float(*(const rf_u16*)b);
            const rf_u32 q0 = rf_ld_u32_2(b + 2 + 8 * p), q1 = rf_ld_u32_2(b + 6 + 8 * p);
            const float s = rf_dot4(a, RF_I8(q0, 0), RF_I8(q0, 1), RF_I8(q0, 2), RF_I8(q0, 3))
                          + rf_dot4(e, RF_I8(q1, 0), RF_I8(q1, 1), RF_I8(q1, 2), RF_I8(q1, 3));
            sums[r] += d * s;
        }
    }
    RF_MATVEC_BLOCK_EPILOGUE
}

// ---- kernels, instantiated per type ------------------------------------------------

// y[row] = W[row] . x. One wave per row. Four consecutive lanes share a 32-element
// chunk, 8 contiguous elements each, so a wave reads 8 consecutive chunks of weights and
// of x at once (coalesced), and many loads are in flight per lane (unrolled loop).
#define RF_MATVEC(T, BLOCK_BYTES, BLOCK_ELEMS)                                                        \
extern "C" __global__ void rf_matvec_##T(const rf_u8* w, const float* x, float* y, rf_u32 rows,      \
                                         rf_u32 cols) {                                              \
    const rf_u32 row = blockIdx.x * (blockDim.x / WAVE_SIZE) + threadIdx.x / WAVE_SIZE;              \
    if (row >= rows) return;                                                                         \
    const rf_u32 lane = threadIdx.x % WAVE_SIZE;                                                     \
    const rf_u32 part = lane % 4;                                                                    \
    const rf_u8* wr = w + (rf_u64)row * ((rf_u64)(cols / BLOCK_ELEMS) * BLOCK_BYTES);                \
    float sum = 0.0f;                                                                                \
    _Pragma("unroll 4")                                                                              \
    for (rf_u32 c = lane / 4; c < cols / 32; c += WAVE_SIZE / 4) {                                   \
        const float* xc = x + 32 * c + 8 * part;                                                     \
        _Pragma("unroll") for (rf_u32 i = 0; i < 8; ++i)                                             \
            sum += rf_elem_##T(wr, c, 8 * part + i) * xc[i];                                         \
    }                                                                                                \
    sum = rf_wave_sum(sum);                                                                          \
    if (lane == 0) y[row] = sum;                                                                     \
}

// out[i, :] = W[ids[i], :] for each of n_ids ids. The ids live on the device (they may
// come from a sampling kernel), so the kernel checks them: an id >= rows yields a row of
// NaN instead of a read out of bounds. One thread per chunk of 32 elements.
#define RF_GET_ROWS(T, BLOCK_BYTES, BLOCK_ELEMS)                                                      \
extern "C" __global__ void rf_get_rows_##T(const rf_u8* w, const rf_u32* ids, float* out,            \
                                           rf_u32 n_ids, rf_u32 rows, rf_u32 cols) {                 \
    const rf_u64 idx = rf_global_index();                                                            \
    const rf_u32 chunks = cols / 32;                                                                 \
    if (idx >= (rf_u64)n_ids * chunks) return;                                                       \
    const rf_u32 i = (rf_u32)(idx / chunks), c = (rf_u32)(idx % chunks);                             \
    float* o = out + (rf_u64)i * cols + 32 * c;                                                      \
    const rf_u32 id = ids[i];                                                                        \
    if (id >= rows) {                                                                                \
        _Pragma("unroll") for (int j = 0; j < 32; ++j) o[j] = __int_as_float(0x7fc00000);            \
        return;                                                                                      \
    }                                                                                                \
    const rf_u8* wr = w + (rf_u64)id * ((rf_u64)(cols / BLOCK_ELEMS) * BLOCK_BYTES);                 \
    _Pragma("unroll") for (rf_u32 j = 0; j < 32; ++j) o[j] = rf_elem_##T(wr, c, j);                 \
}

// Whole tensor of n_chunks chunks (rows of `cols` laid end to end) to f32 or f16.
#define RF_DEQUANTIZE(T, BLOCK_BYTES, BLOCK_ELEMS)                                                    \
extern "C" __global__ void rf_dequantize_##T##_f32(const rf_u8* w, float* out, rf_u64 n_chunks) {   \
    const rf_u64 c = rf_global_index();                                                              \
    if (c >= n_chunks) return;                                                                       \
    const rf_u8* b = w + (c * 32 / BLOCK_ELEMS) * BLOCK_BYTES;                                       \
    const rf_u32 s = (rf_u32)(c % (BLOCK_ELEMS / 32));                                               \
    _Pragma("unroll") for (rf_u32 j = 0; j < 32; ++j) out[c * 32 + j] = rf_elem_##T(b, s, j);       \
}                                                                                                    \
extern "C" __global__ void rf_dequantize_##T##_f16(const rf_u8* w, rf_u16* out, rf_u64 n_chunks) {  \
    const rf_u64 c = rf_global_index();                                                              \
    if (c >= n_chunks) return;                                                                       \
    const rf_u8* b = w + (c * 32 / BLOCK_ELEMS) * BLOCK_BYTES;                                       \
    const rf_u32 s = (rf_u32)(c % (BLOCK_ELEMS / 32));                                               \
    _Pragma("unroll") for (rf_u32 j = 0; j < 32; ++j)                                                \
        out[c * 32 + j] = rf_float_to_half(rf_elem_##T(b, s, j));                                    \
}

// RF_QUANT_KERNELS: every kernel of a type; RF_QUANT_KERNELS_FAST_MATVEC: the same
// without matvec, for the types with a hand-written one above.
#define RF_QUANT_KERNELS_FAST_MATVEC(T, BLOCK_BYTES, BLOCK_ELEMS) \
    RF_GET_ROWS(T, BLOCK_BYTES, BLOCK_ELEMS)                      \
    RF_DEQUANTIZE(T, BLOCK_BYTES, BLOCK_ELEMS)

#define RF_QUANT_KERNELS(T, BLOCK_BYTES, BLOCK_ELEMS) \
    RF_MATVEC(T, BLOCK_BYTES, BLOCK_ELEMS)            \
    RF_GET_ROWS(T, BLOCK_BYTES, BLOCK_ELEMS)          \
    RF_DEQUANTIZE(T, BLOCK_BYTES, BLOCK_ELEMS)

RF_QUANT_KERNELS_FAST_MATVEC(f32, 128, 32)
RF_QUANT_KERNELS_FAST_MATVEC(f16, 64, 32)
RF_QUANT_KERNELS_FAST_MATVEC(bf16, 64, 32)
RF_QUANT_KERNELS_FAST_MATVEC(q4_0, 18, 32)
RF_QUANT_KERNELS_FAST_MATVEC(q4_1, 20, 32)
RF_QUANT_KERNELS_FAST_MATVEC(q5_0, 22, 32)
RF_QUANT_KERNELS_FAST_MATVEC(q5_1, 24, 32)
RF_QUANT_KERNELS_FAST_MATVEC(q8_0, 34, 32)
RF_QUANT_KERNELS(q2_K, 84, 256)
RF_QUANT_KERNELS(q3_K, 110, 256)
RF_QUANT_KERNELS(q4_K, 144, 256)
RF_QUANT_KERNELS(q5_K, 176, 256)
RF_QUANT_KERNELS(q6_K, 210, 256)
