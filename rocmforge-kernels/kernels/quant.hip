// Kernels over weights in ggml's block formats: matrix x vector (decode), matrix x
// matrix (prefill), row lookup (embeddings) and whole-tensor dequantization.
//
// A weight matrix has `rows` rows of `cols` elements; each row is cols / block_elems
// consecutive ggml blocks (byte layouts exactly as ggml-common.h: see each decoder).
// All work is split into "chunks" of 32 consecutive elements of a row (one block for
// the 32-element types, an eighth of a super-block for the K-quants), decoded to f32 the
// way ggml's dequantize_row_* does.

RF_DEVICE float rf_ld_half(const rf_u8* p) {
    return rf_half_to_float((rf_u16)(p[0] | (p[1] << 8)));
}

// ---- chunk decoders: fill v[0..32) with elements [32*c, 32*c + 32) of a row ----------

// F32: plain floats.
RF_DEVICE void rf_chunk_f32(const rf_u8* row, rf_u32 c, float* v) {
    const float* p = (const float*)row + 32 * c;
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = p[i];
}

RF_DEVICE void rf_chunk_f16(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u16* p = (const rf_u16*)row + 32 * c;
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = rf_half_to_float(p[i]);
}

RF_DEVICE void rf_chunk_bf16(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u16* p = (const rf_u16*)row + 32 * c;
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = rf_bf16_to_float(p[i]);
}

// Q4_0 (18 bytes): f16 d; u8 qs[16]. x[j] = ((qs[j] & 15) - 8) d, x[j+16] = ((qs[j] >> 4) - 8) d.
RF_DEVICE void rf_chunk_q4_0(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u8* b = row + 18 * c;
    const float d = rf_ld_half(b);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        const rf_u8 q = b[2 + j];
        v[j] = (float)((int)(q & 15) - 8) * d;
        v[j + 16] = (float)((int)(q >> 4) - 8) * d;
    }
}

// Q4_1 (20 bytes): f16 d, f16 m; u8 qs[16]. x = q d + m.
RF_DEVICE void rf_chunk_q4_1(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u8* b = row + 20 * c;
    const float d = rf_ld_half(b);
    const float m = rf_ld_half(b + 2);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        const rf_u8 q = b[4 + j];
        v[j] = (float)(q & 15) * d + m;
        v[j + 16] = (float)(q >> 4) * d + m;
    }
}

RF_DEVICE rf_u32 rf_ld_u32(const rf_u8* p) {
    return (rf_u32)p[0] | ((rf_u32)p[1] << 8) | ((rf_u32)p[2] << 16) | ((rf_u32)p[3] << 24);
}

// Q5_0 (22 bytes): f16 d; u8 qh[4] (the 5th bits, little-endian u32); u8 qs[16].
RF_DEVICE void rf_chunk_q5_0(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u8* b = row + 22 * c;
    const float d = rf_ld_half(b);
    const rf_u32 qh = rf_ld_u32(b + 2);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        const rf_u8 q = b[6 + j];
        const rf_u32 h0 = ((qh >> j) << 4) & 0x10;
        const rf_u32 h1 = (qh >> (j + 12)) & 0x10;
        v[j] = (float)((int)((q & 15) | h0) - 16) * d;
        v[j + 16] = (float)((int)((q >> 4) | h1) - 16) * d;
    }
}

// Q5_1 (24 bytes): f16 d, f16 m; u8 qh[4]; u8 qs[16]. x = q d + m.
RF_DEVICE void rf_chunk_q5_1(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u8* b = row + 24 * c;
    const float d = rf_ld_half(b);
    const float m = rf_ld_half(b + 2);
    const rf_u32 qh = rf_ld_u32(b + 4);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        const rf_u8 q = b[8 + j];
        const rf_u32 h0 = ((qh >> j) << 4) & 0x10;
        const rf_u32 h1 = (qh >> (j + 12)) & 0x10;
        v[j] = (float)((q & 15) | h0) * d + m;
        v[j + 16] = (float)((q >> 4) | h1) * d + m;
    }
}

// Q8_0 (34 bytes): f16 d; i8 qs[32]. x = q d.
RF_DEVICE void rf_chunk_q8_0(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u8* b = row + 34 * c;
    const float d = rf_ld_half(b);
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = (float)(rf_i8)b[2 + j] * d;
}

// Q2_K (84 bytes): u8 scales[16] (low nibble scale, high nibble min); u8 qs[64];
// f16 d; f16 dmin. Chunk c: half h = c/4, shift 2(c%4); elements 16p+l (p = 0, 1) use
// qs[32h + 16p + l] and scales[8h + 2(c%4) + p].
RF_DEVICE void rf_chunk_q2_K(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u8* b = row + 84 * (c / 8);
    const rf_u32 s = c % 8;
    const rf_u32 h = s / 4, j = s % 4;
    const float d = rf_ld_half(b + 80);
    const float dmin = rf_ld_half(b + 82);
#pragma unroll
    for (int p = 0; p < 2; ++p) {
        const rf_u8 sc = b[8 * h + 2 * j + p];
        const float dl = d * (float)(sc & 15);
        const float ml = dmin * (float)(sc >> 4);
#pragma unroll
        for (int l = 0; l < 16; ++l) {
            const rf_u8 q = b[16 + 32 * h + 16 * p + l];
            v[16 * p + l] = dl * (float)((q >> (2 * j)) & 3) - ml;
        }
    }
}

// Q3_K (110 bytes): u8 hmask[32]; u8 qs[64]; u8 scales[12] (16 6-bit scales, packed);
// f16 d. Chunk c: half h = c/4, j = c%4; element 16p+l: low bits qs[32h + 16p + l] >> 2j,
// high bit hmask[16p + l] bit (4h + j) (set: +0, clear: -4), scale 8h + 2j + p.
RF_DEVICE int rf_q3_K_scale(const rf_u8* sc, rf_u32 is) {
    // ggml's unpacking of the 12 bytes into 16 signed 6-bit scales (minus 32).
    const rf_u32 low = is < 8 ? (sc[is % 8] >> (4 * (is / 8))) & 15 : (sc[is % 8] >> 4) & 15;
    const rf_u32 high = (sc[8 + is % 4] >> (2 * (is / 4))) & 3;
    return (int)(low | (high << 4)) - 32;
}

RF_DEVICE void rf_chunk_q3_K(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u8* b = row + 110 * (c / 8);
    const rf_u32 s = c % 8;
    const rf_u32 h = s / 4, j = s % 4;
    const float d = rf_ld_half(b + 108);
    const rf_u8 mask = (rf_u8)(1u << (4 * h + j));
#pragma unroll
    for (int p = 0; p < 2; ++p) {
        const float dl = d * (float)rf_q3_K_scale(b + 96, 8 * h + 2 * j + p);
#pragma unroll
        for (int l = 0; l < 16; ++l) {
            const int q = (b[32 + 32 * h + 16 * p + l] >> (2 * j)) & 3;
            const int hb = (b[16 * p + l] & mask) ? 0 : 4;
            v[16 * p + l] = dl * (float)(q - hb);
        }
    }
}

// The 6-bit scale and min number j (0..7) of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4).
RF_DEVICE void rf_scale_min_k4(rf_u32 j, const rf_u8* q, rf_u32* sc, rf_u32* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q4_K (144 bytes): f16 d; f16 dmin; u8 scales[12]; u8 qs[128]. Chunk c: group g = c/2
// of 64 elements, low (c even) or high (c odd) nibbles of qs[32g .. 32g + 32).
RF_DEVICE void rf_chunk_q4_K(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u8* b = row + 144 * (c / 8);
    const rf_u32 s = c % 8;
    const float d = rf_ld_half(b);
    const float dmin = rf_ld_half(b + 2);
    rf_u32 sc, m;
    rf_scale_min_k4(s, b + 4, &sc, &m);
    const float d1 = d * (float)sc;
    const float m1 = dmin * (float)m;
    const rf_u8* q = b + 16 + 32 * (s / 2);
    const rf_u32 shift = 4 * (s % 2);
#pragma unroll
    for (int l = 0; l < 32; ++l) v[l] = d1 * (float)((q[l] >> shift) & 15) - m1;
}

// Q5_K (176 bytes): f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]. As Q4_K,
// plus a 5th bit from qh[l] bit c.
RF_DEVICE void rf_chunk_q5_K(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u8* b = row + 176 * (c / 8);
    const rf_u32 s = c % 8;
    const float d = rf_ld_half(b);
    const float dmin = rf_ld_half(b + 2);
    rf_u32 sc, m;
    rf_scale_min_k4(s, b + 4, &sc, &m);
    const float d1 = d * (float)sc;
    const float m1 = dmin * (float)m;
    const rf_u8* qh = b + 16;
    const rf_u8* q = b + 48 + 32 * (s / 2);
    const rf_u32 shift = 4 * (s % 2);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
        const rf_u32 hi = (qh[l] >> s) & 1;
        v[l] = d1 * (float)(((q[l] >> shift) & 15) + 16 * hi) - m1;
    }
}

// Q6_K (210 bytes): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d. Chunk c: half h = c/4,
// k = c%4; element l: low 4 bits from ql[64h + 32(k%2) + l] (high nibble when k >= 2),
// 2 high bits from qh[32h + l] >> 2k, minus 32; scale scales[8h + 2k + l/16].
RF_DEVICE void rf_chunk_q6_K(const rf_u8* row, rf_u32 c, float* v) {
    const rf_u8* b = row + 210 * (c / 8);
    const rf_u32 s = c % 8;
    const rf_u32 h = s / 4, k = s % 4;
    const float d = rf_ld_half(b + 208);
    const rf_u8* ql = b + 64 * h + 32 * (k % 2);
    const rf_u8* qh = b + 128 + 32 * h;
    const rf_i8* sc = (const rf_i8*)(b + 192) + 8 * h + 2 * k;
    const rf_u32 shift = k >= 2 ? 4 : 0;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
        const int q = (int)(((ql[l] >> shift) & 15) | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
        v[l] = d * (float)sc[l / 16] * (float)q;
    }
}

// ---- kernels, instantiated per type ------------------------------------------------

// y[row] = W[row] . x. One wave per row; lanes stride over the row's chunks.
#define RF_MATVEC(T, BLOCK_BYTES, BLOCK_ELEMS)                                                        \
extern "C" __global__ void rf_matvec_##T(const rf_u8* w, const float* x, float* y, rf_u32 rows,      \
                                         rf_u32 cols) {                                              \
    const rf_u32 row = blockIdx.x * (blockDim.x / WAVE_SIZE) + threadIdx.x / WAVE_SIZE;              \
    if (row >= rows) return;                                                                         \
    const rf_u32 lane = threadIdx.x % WAVE_SIZE;                                                     \
    const rf_u8* wr = w + (rf_u64)row * ((rf_u64)(cols / BLOCK_ELEMS) * BLOCK_BYTES);                \
    float sum = 0.0f;                                                                                \
    for (rf_u32 c = lane; c < cols / 32; c += WAVE_SIZE) {                                           \
        float v[32];                                                                                 \
        rf_chunk_##T(wr, c, v);                                                                      \
        const float* xc = x + 32 * c;                                                                \
        _Pragma("unroll") for (int i = 0; i < 32; ++i) sum += v[i] * xc[i];                          \
    }                                                                                                \
    sum = rf_wave_sum(sum);                                                                          \
    if (lane == 0) y[row] = sum;                                                                     \
}

// Y[t, row] = W[row] . X[t] for n_tokens tokens: each wave decodes its row's chunks once
// and applies them to up to RF_MATMUL_TOKENS tokens.
#define RF_MATMUL_TOKENS 8
#define RF_MATMUL(T, BLOCK_BYTES, BLOCK_ELEMS)                                                        \
extern "C" __global__ void rf_matmul_##T(const rf_u8* w, const float* x, float* y, rf_u32 rows,      \
                                         rf_u32 cols, rf_u32 n_tokens) {                             \
    const rf_u32 row = blockIdx.x * (blockDim.x / WAVE_SIZE) + threadIdx.x / WAVE_SIZE;              \
    if (row >= rows) return;                                                                         \
    const rf_u32 t0 = blockIdx.y * RF_MATMUL_TOKENS;                                                 \
    const rf_u32 nt = min((rf_u32)RF_MATMUL_TOKENS, n_tokens - t0);                                  \
    const rf_u32 lane = threadIdx.x % WAVE_SIZE;                                                     \
    const rf_u8* wr = w + (rf_u64)row * ((rf_u64)(cols / BLOCK_ELEMS) * BLOCK_BYTES);                \
    float sum[RF_MATMUL_TOKENS];                                                                     \
    _Pragma("unroll") for (int t = 0; t < RF_MATMUL_TOKENS; ++t) sum[t] = 0.0f;                      \
    for (rf_u32 c = lane; c < cols / 32; c += WAVE_SIZE) {                                           \
        float v[32];                                                                                 \
        rf_chunk_##T(wr, c, v);                                                                      \
        _Pragma("unroll") for (int t = 0; t < RF_MATMUL_TOKENS; ++t) {                               \
            if (t < nt) {                                                                            \
                const float* xc = x + (rf_u64)(t0 + t) * cols + 32 * c;                              \
                float s = 0.0f;                                                                      \
                _Pragma("unroll") for (int i = 0; i < 32; ++i) s += v[i] * xc[i];                    \
                sum[t] += s;                                                                         \
            }                                                                                        \
        }                                                                                            \
    }                                                                                                \
    _Pragma("unroll") for (int t = 0; t < RF_MATMUL_TOKENS; ++t) {                                   \
        const float s = rf_wave_sum(sum[t]);                                                         \
        if (lane == 0 && t < nt) y[(rf_u64)(t0 + t) * rows + row] = s;                               \
    }                                                                                                \
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
    float v[32];                                                                                     \
    rf_chunk_##T(wr, c, v);                                                                          \
    _Pragma("unroll") for (int j = 0; j < 32; ++j) o[j] = v[j];                                      \
}

// Whole tensor of n_chunks chunks (rows of `cols` laid end to end) to f32 or f16.
#define RF_DEQUANTIZE(T, BLOCK_BYTES, BLOCK_ELEMS)                                                    \
extern "C" __global__ void rf_dequantize_##T##_f32(const rf_u8* w, float* out, rf_u64 n_chunks) {   \
    const rf_u64 c = rf_global_index();                                                              \
    if (c >= n_chunks) return;                                                                       \
    float v[32];                                                                                     \
    rf_chunk_##T(w + (c * 32 / BLOCK_ELEMS) * BLOCK_BYTES, (rf_u32)(c % (BLOCK_ELEMS / 32)), v);     \
    _Pragma("unroll") for (int j = 0; j < 32; ++j) out[c * 32 + j] = v[j];                           \
}                                                                                                    \
extern "C" __global__ void rf_dequantize_##T##_f16(const rf_u8* w, rf_u16* out, rf_u64 n_chunks) {  \
    const rf_u64 c = rf_global_index();                                                              \
    if (c >= n_chunks) return;                                                                       \
    float v[32];                                                                                     \
    rf_chunk_##T(w + (c * 32 / BLOCK_ELEMS) * BLOCK_BYTES, (rf_u32)(c % (BLOCK_ELEMS / 32)), v);     \
    _Pragma("unroll") for (int j = 0; j < 32; ++j) out[c * 32 + j] = rf_float_to_half(v[j]);        \
}

#define RF_QUANT_KERNELS(T, BLOCK_BYTES, BLOCK_ELEMS) \
    RF_MATVEC(T, BLOCK_BYTES, BLOCK_ELEMS)            \
    RF_MATMUL(T, BLOCK_BYTES, BLOCK_ELEMS)            \
    RF_GET_ROWS(T, BLOCK_BYTES, BLOCK_ELEMS)          \
    RF_DEQUANTIZE(T, BLOCK_BYTES, BLOCK_ELEMS)

RF_QUANT_KERNELS(f32, 128, 32)
RF_QUANT_KERNELS(f16, 64, 32)
RF_QUANT_KERNELS(bf16, 64, 32)
RF_QUANT_KERNELS(q4_0, 18, 32)
RF_QUANT_KERNELS(q4_1, 20, 32)
RF_QUANT_KERNELS(q5_0, 22, 32)
RF_QUANT_KERNELS(q5_1, 24, 32)
RF_QUANT_KERNELS(q8_0, 34, 32)
RF_QUANT_KERNELS(q2_K, 84, 256)
RF_QUANT_KERNELS(q3_K, 110, 256)
RF_QUANT_KERNELS(q4_K, 144, 256)
RF_QUANT_KERNELS(q5_K, 176, 256)
RF_QUANT_KERNELS(q6_K, 210, 256)
