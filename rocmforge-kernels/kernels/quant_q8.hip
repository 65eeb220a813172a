// Decode matrix x vector with 8-bit activations (llama.cpp's "mmvq" scheme): the f32
// activation vector is quantized once per token to blocks of 32 signed bytes with an f32
// scale, and the quantized weights are multiplied with it by 4-way int8 dot products
// (rf_dot4_i8), scaled in float per block. Integer arithmetic decodes a weight in a
// fraction of the instructions an f32 product needs, which leaves memory, not
// arithmetic, as the bound for most types.
//
// Quantized activations (src/cpu/q8_activations.rs is the reference, bit for bit): a
// row of `cols` values (cols a multiple of 32) takes row_bytes = cols * 5/4 rounded up
// to 16 bytes:
//   bytes [0, cols):            qs, the values as i8, block b at [32b, 32b + 32);
//   bytes [cols, cols + 8 nb):  nb = cols/32 pairs of f32 (d, s): d = amax / 127 of the
//                               block, s = d * (sum of its 32 qs);
//   then 8 zero bytes when nb is odd (padding to 16).
// A value is qs * d; q = round(x / d) as round(x * (1/d)), half away from zero.
//
// Weights: ggml's block layouts (quant_decode.h documents each). Three kernel shapes:
// rf_mvq (direct) and rf_mvqs (staged through shared memory) split each 32-element chunk
// of a weight row (a block, or an eighth of a K-quant super-block) into 4 parts of 8
// elements, one lane each: four consecutive lanes share a chunk, so a wave's loads cover
// consecutive bytes of each row. rf_mvc (the window kernel) gives each lane a whole chunk
// and aligned 16-byte loads; the launcher (quant_ops.rs, mvq_variant) picks it wherever
// it fits.

struct alignas(8) rf_i32x2 { int x, y; };
struct alignas(8) rf_u32x2 { rf_u32 x, y; };
struct alignas(8) rf_f32x2 { float x, y; };
struct alignas(16) rf_q8_word { rf_u32 x, y, z, w; };

// ---- activation quantization ------------------------------------------------------

// x: n_tokens rows of cols f32 (n = n_tokens * cols); out: n_tokens rows of row_bytes.
// One thread per value; the 32 lanes of a block meet through shuffles (xor masks below
// 32 stay inside a 32-lane group for either wave size). Grid-stride over values: n and
// the stride are multiples of 32, so a block's 32 lanes are all in or all out.
extern "C" __global__ void rf_quantize_q8_f32(const float* __restrict__ x, rf_u8* __restrict__ out,
                                              rf_u64 n, rf_u32 cols, rf_u32 row_bytes) {
    const rf_u64 stride = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 i = rf_global_index(); i < n; i += stride) {
        const float v = x[i];
        // amax from 0 with fmaxf: a NaN is ignored, as the reference's fold does.
        float amax = fmaxf(0.0f, fabsf(v));
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, rf_shfl_xor(amax, o));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const float q = fminf(fmaxf(roundf(v * id), -127.0f), 127.0f);
        float sum = q;  // integers of magnitude <= 32 * 127: exact in f32
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += rf_shfl_xor(sum, o);
        const rf_u64 t = i / cols;
        const rf_u32 col = (rf_u32)(i - t * cols);
        rf_u8* row = out + t * row_bytes;
        row[col] = (rf_u8)(rf_i8)(int)q;
        if (col % 32 == 0) {
            rf_f32x2 ds;
            ds.x = d;
            ds.y = d * sum;
            ((rf_f32x2*)(row + cols))[col / 32] = ds;
            if (col + 32 == cols && (cols / 32) % 2 == 1) {
                ((rf_f32x2*)(row + cols))[cols / 32] = rf_f32x2{0.0f, 0.0f};
            }
        }
    }
}

// ---- weight decoding: one part (8 elements) of a chunk against 8 activation values ----
//
// Each type is a struct with:
//   BLOCK_BYTES, BLOCK_CHUNKS: bytes and 32-element chunks of a ggml block;
//   X_SPLIT: 1 when part p pairs with activation ints p and p + 4 (the 4/5-bit types
//            whose low nibbles hold elements 0..15 and high nibbles 16..31), 0 when it
//            pairs with ints 2p and 2p + 1 (elements 8p..8p+7);
//   TILE_CHUNKS: chunks per shared-memory tile of the staged kernel (rf_mvqs), a
//            multiple of BLOCK_CHUNKS: about 1-2 KiB of a row;
//   X_SUM:   1 when dot() needs the integer sum of the part's 8 activation values (the
//            types whose scales or offsets change every 16 elements);
//   dot(row, c, p, xa, xb, xd, xs, xsum): part p of chunk c of a weight row times the
//            activation part (ints xa, xb, block scale xd, block s = xd * sum) as f32;
//   the 32-element types also dot_block(b, x, xd, xs): a whole block held in 32-bit
//            words b times the activation block (x[i]: elements 4i..4i+3), for rf_mvc.
// The four parts of a chunk sum to the chunk's exact product up to f32 rounding; parts
// share a block's s term as s/4 each.

RF_DEVICE rf_u32 rf_q8_ld16(const rf_u8* p) { return *(const rf_u16*)p; }
// A 32-bit value at a 2-byte-aligned address.
RF_DEVICE rf_u32 rf_q8_ld32_a2(const rf_u8* p) {
    const rf_u16* q = (const rf_u16*)p;
    return (rf_u32)q[0] | ((rf_u32)q[1] << 16);
}
RF_DEVICE rf_u32 rf_q8_ld32(const rf_u8* p) { return *(const rf_u32*)p; }
RF_DEVICE float rf_q8_half_lo(rf_u32 v) { return rf_half_to_float((rf_u16)(v & 0xffffu)); }
RF_DEVICE float rf_q8_half_hi(rf_u32 v) { return rf_half_to_float((rf_u16)(v >> 16)); }

// Bits 0..3 of t to bit 4 of bytes 0..3 (the shifted terms do not overlap: no carries).
RF_DEVICE rf_u32 rf_q8_spread4(rf_u32 t) { return ((t * 0x00204081u) & 0x01010101u) << 4; }

RF_DEVICE int rf_q8_dot2(rf_u32 a, rf_u32 b, int xa, int xb) {
    return rf_dot4_i8((int)a, xa, rf_dot4_i8((int)b, xb, 0));
}

// Fields of a block held in 32-bit words b (its first byte at byte 0 of b[0]), at a
// constant even byte offset: the window kernel (rf_mvc) decodes whole blocks this way.
RF_DEVICE rf_u32 rf_q8_u32_at(const rf_u32* b, rf_u32 off) {
    const rf_u32 i = off / 4;
    return off % 4 == 0 ? b[i] : (b[i] >> 16) | (b[i + 1] << 16);
}
RF_DEVICE float rf_q8_half_at(const rf_u32* b, rf_u32 off) {
    return rf_half_to_float((rf_u16)(b[off / 4] >> (8 * (off % 4))));
}
// The 4/5-bit types' 32 products: q[j]'s low nibbles are elements 4j..4j+3, its high
// nibbles 16+4j.. (x[i]: activation elements 4i..4i+3).
RF_DEVICE int rf_q8_dot_nibbles(const rf_u32* q, const int* x) {
    int s = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        s = rf_dot4_i8((int)(q[j] & 0x0f0f0f0fu), x[j], s);
        s = rf_dot4_i8((int)((q[j] >> 4) & 0x0f0f0f0fu), x[4 + j], s);
    }
    return s;
}
// The 5-bit types' 32 products: the qs words q with each element's 5th bit from qh.
RF_DEVICE int rf_q8_dot_q5(const rf_u32* q, rf_u32 qh, const int* x) {
    int s = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const rf_u32 lo = (q[j] & 0x0f0f0f0fu) | rf_q8_spread4((qh >> (4 * j)) & 15u);
        const rf_u32 hi = ((q[j] >> 4) & 0x0f0f0f0fu) | rf_q8_spread4((qh >> (16 + 4 * j)) & 15u);
        s = rf_dot4_i8((int)lo, x[j], s);
        s = rf_dot4_i8((int)hi, x[4 + j], s);
    }
    return s;
}

// Q4_0: f16 d; qs[16]. Part p: qs bytes 4p..4p+3, elements 4p.. (low) and 16+4p.. (high).
// w = (q - 8) d: the offset is -8 * s of the block, s/4 per part.
struct rf_q8dot_q4_0 {
    enum { BLOCK_BYTES = 18, BLOCK_CHUNKS = 1, TILE_CHUNKS = 128, X_SPLIT = 1, X_SUM = 0 };
    RF_DEVICE static float dot(const rf_u8* row, rf_u32 c, rf_u32 p, int xa, int xb, float xd,
                               float xs, int) {
        const rf_u8* b = row + 18 * c;
        const float d = rf_half_to_float((rf_u16)rf_q8_ld16(b));
        const rf_u32 q = rf_q8_ld32_a2(b + 2 + 4 * p);
        const int sumi = rf_q8_dot2(q & 0x0f0f0f0fu, (q >> 4) & 0x0f0f0f0fu, xa, xb);
        return d * (xd * (float)sumi - 2.0f * xs);
    }
    // The whole block in words b (rf_mvc).
    RF_DEVICE static float dot_block(const rf_u32* b, const int* x, float xd, float xs) {
        rf_u32 q[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) q[j] = rf_q8_u32_at(b, 2 + 4 * j);
        return rf_q8_half_at(b, 0) * (xd * (float)rf_q8_dot_nibbles(q, x) - 8.0f * xs);
    }
};

// Q4_1: f16 d, f16 m; qs[16]. w = q d + m.
struct rf_q8dot_q4_1 {
    enum { BLOCK_BYTES = 20, BLOCK_CHUNKS = 1, TILE_CHUNKS = 64, X_SPLIT = 1, X_SUM = 0 };
    RF_DEVICE static float dot(const rf_u8* row, rf_u32 c, rf_u32 p, int xa, int xb, float xd,
                               float xs, int) {
        const rf_u8* b = row + 20 * c;
        const rf_u32 dm = rf_q8_ld32(b);
        const rf_u32 q = rf_q8_ld32(b + 4 + 4 * p);
        const int sumi = rf_q8_dot2(q & 0x0f0f0f0fu, (q >> 4) & 0x0f0f0f0fu, xa, xb);
        return rf_q8_half_lo(dm) * xd * (float)sumi + rf_q8_half_hi(dm) * (0.25f * xs);
    }
    RF_DEVICE static float dot_block(const rf_u32* b, const int* x, float xd, float xs) {
        return rf_q8_half_at(b, 0) * xd * (float)rf_q8_dot_nibbles(b + 1, x) +
               rf_q8_half_at(b, 2) * xs;
    }
};

// Q5_0: f16 d; qh (u32, bit j: 5th bit of element j); qs[16]. w = (q - 16) d.
struct rf_q8dot_q5_0 {
    enum { BLOCK_BYTES = 22, BLOCK_CHUNKS = 1, TILE_CHUNKS = 64, X_SPLIT = 1, X_SUM = 0 };
    RF_DEVICE static float dot(const rf_u8* row, rf_u32 c, rf_u32 p, int xa, int xb, float xd,
                               float xs, int) {
        const rf_u8* b = row + 22 * c;
        const float d = rf_half_to_float((rf_u16)rf_q8_ld16(b));
        const rf_u32 qh = rf_q8_ld32_a2(b + 2);
        const rf_u32 q = rf_q8_ld32_a2(b + 6 + 4 * p);
        const rf_u32 lo = (q & 0x0f0f0f0fu) | rf_q8_spread4((qh >> (4 * p)) & 15u);
        const rf_u32 hi = ((q >> 4) & 0x0f0f0f0fu) | rf_q8_spread4((qh >> (16 + 4 * p)) & 15u);
        return d * (xd * (float)rf_q8_dot2(lo, hi, xa, xb) - 4.0f * xs);
    }
    RF_DEVICE static float dot_block(const rf_u32* b, const int* x, float xd, float xs) {
        rf_u32 q[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) q[j] = rf_q8_u32_at(b, 6 + 4 * j);
        const int s = rf_q8_dot_q5(q, rf_q8_u32_at(b, 2), x);
        return rf_q8_half_at(b, 0) * (xd * (float)s - 16.0f * xs);
    }
};

// Q5_1: f16 d, f16 m; qh; qs[16]. w = q d + m.
struct rf_q8dot_q5_1 {
    enum { BLOCK_BYTES = 24, BLOCK_CHUNKS = 1, TILE_CHUNKS = 64, X_SPLIT = 1, X_SUM = 0 };
    RF_DEVICE static float dot(const rf_u8* row, rf_u32 c, rf_u32 p, int xa, int xb, float xd,
                               float xs, int) {
        const rf_u8* b = row + 24 * c;
        const rf_u32 dm = rf_q8_ld32(b);
        const rf_u32 qh = rf_q8_ld32(b + 4);
        const rf_u32 q = rf_q8_ld32(b + 8 + 4 * p);
        const rf_u32 lo = (q & 0x0f0f0f0fu) | rf_q8_spread4((qh >> (4 * p)) & 15u);
        const rf_u32 hi = ((q >> 4) & 0x0f0f0f0fu) | rf_q8_spread4((qh >> (16 + 4 * p)) & 15u);
        return rf_q8_half_lo(dm) * xd * (float)rf_q8_dot2(lo, hi, xa, xb) +
               rf_q8_half_hi(dm) * (0.25f * xs);
    }
    RF_DEVICE static float dot_block(const rf_u32* b, const int* x, float xd, float xs) {
        const int s = rf_q8_dot_q5(b + 2, b[1], x);
        return rf_q8_half_at(b, 0) * xd * (float)s + rf_q8_half_at(b, 2) * xs;
    }
};

// Q8_0: f16 d; i8 qs[32]. Part p: elements 8p..8p+7.
struct rf_q8dot_q8_0 {
    enum { BLOCK_BYTES = 34, BLOCK_CHUNKS = 1, TILE_CHUNKS = 64, X_SPLIT = 0, X_SUM = 0 };
    RF_DEVICE static float dot(const rf_u8* row, rf_u32 c, rf_u32 p, int xa, int xb, float xd,
                               float, int) {
        const rf_u8* b = row + 34 * c;
        const float d = rf_half_to_float((rf_u16)rf_q8_ld16(b));
        const rf_u32 q0 = rf_q8_ld32_a2(b + 2 + 8 * p), q1 = rf_q8_ld32_a2(b + 6 + 8 * p);
        return d * xd * (float)rf_q8_dot2(q0, q1, xa, xb);
    }
    RF_DEVICE static float dot_block(const rf_u32* b, const int* x, float xd, float) {
        int s = 0;
#pragma unroll
        for (int j = 0; j < 8; ++j) s = rf_dot4_i8((int)rf_q8_u32_at(b, 2 + 4 * j), x[j], s);
        return rf_q8_half_at(b, 0) * xd * (float)s;
    }
};

// Q2_K: scales[16] (low nibble scale, high nibble min); qs[64]; f16 d; f16 dmin. Chunk
// s: half h = s/4, shift 2(s%4); part p: qs bytes 32h + 8p.., scale byte 8h + 2(s%4) + p/2.
// w = d (sc & 15) q - dmin (sc >> 4), per 16 elements: the min needs the part's x sum.
struct rf_q8dot_q2_K {
    enum { BLOCK_BYTES = 84, BLOCK_CHUNKS = 8, TILE_CHUNKS = 128, X_SPLIT = 0, X_SUM = 1 };
    RF_DEVICE static float dot(const rf_u8* row, rf_u32 c, rf_u32 p, int xa, int xb, float xd,
                               float, int xsum) {
        const rf_u8* b = row + 84 * (c / 8);
        const rf_u32 s = c % 8, h = s / 4, j = s % 4;
        const rf_u32 sc = b[8 * h + 2 * j + p / 2];
        const rf_u32 dm = rf_q8_ld32(b + 80);
        const rf_u32 q0 = rf_q8_ld32(b + 16 + 32 * h + 8 * p), q1 = rf_q8_ld32(b + 20 + 32 * h + 8 * p);
        const int sumi = rf_q8_dot2((q0 >> (2 * j)) & 0x03030303u, (q1 >> (2 * j)) & 0x03030303u, xa, xb);
        return xd * (rf_q8_half_lo(dm) * (float)(sc & 15) * (float)sumi -
                     rf_q8_half_hi(dm) * (float)(sc >> 4) * (float)xsum);
    }
};

// Q3_K: hmask[32]; qs[64]; scales[12] (16 packed 6-bit, minus 32); f16 d. Chunk s:
// h = s/4, j = s%4; element l: low bits qs[32h + l] >> 2j, high bit hmask[l] bit 4h + j;
// w = d scale (low + 4 high - 4), scale 8h + 2j + l/16.
struct rf_q8dot_q3_K {
    enum { BLOCK_BYTES = 110, BLOCK_CHUNKS = 8, TILE_CHUNKS = 128, X_SPLIT = 0, X_SUM = 1 };
    RF_DEVICE static float dot(const rf_u8* row, rf_u32 c, rf_u32 p, int xa, int xb, float xd,
                               float, int xsum) {
        const rf_u8* b = row + 110 * (c / 8);
        const rf_u32 s = c % 8, h = s / 4, j = s % 4;
        const rf_u32 q0 = rf_q8_ld32_a2(b + 32 + 32 * h + 8 * p);
        const rf_u32 q1 = rf_q8_ld32_a2(b + 36 + 32 * h + 8 * p);
        const rf_u32 m0 = rf_q8_ld32_a2(b + 8 * p), m1 = rf_q8_ld32_a2(b + 4 + 8 * p);
        const rf_u32 sh = 4 * h + j;
        const rf_u32 v0 = ((q0 >> (2 * j)) & 0x03030303u) | (((m0 >> sh) & 0x01010101u) << 2);
        const rf_u32 v1 = ((q1 >> (2 * j)) & 0x03030303u) | (((m1 >> sh) & 0x01010101u) << 2);
        const int sumi = rf_q8_dot2(v0, v1, xa, xb) - 4 * xsum;
        const float dl = rf_half_to_float((rf_u16)rf_q8_ld16(b + 108)) *
                         (float)rf_q3_K_scale(b + 96, 8 * h + 2 * j + p / 2);
        return dl * xd * (float)sumi;
    }
};

// Q4_K: f16 d, f16 dmin; scales[12] (8 6-bit scales and mins); qs[128]. Chunk s: low
// (s even) or high (s odd) nibbles of qs[32(s/2) + l]. w = d sc q - dmin m per chunk:
// the min takes the block's s, s/4 per part.
struct rf_q8dot_q4_K {
    enum { BLOCK_BYTES = 144, BLOCK_CHUNKS = 8, TILE_CHUNKS = 128, X_SPLIT = 0, X_SUM = 0 };
    RF_DEVICE static float dot(const rf_u8* row, rf_u32 c, rf_u32 p, int xa, int xb, float xd,
                               float xs, int) {
        const rf_u8* b = row + 144 * (c / 8);
        const rf_u32 s = c % 8;
        rf_u32 sc, m;
        rf_scale_min_k4(s, b + 4, &sc, &m);
        const rf_u32 dm = rf_q8_ld32(b);
        const rf_u32x2 q = *(const rf_u32x2*)(b + 16 + 32 * (s / 2) + 8 * p);
        const rf_u32 sh = 4 * (s % 2);
        const int sumi = rf_q8_dot2((q.x >> sh) & 0x0f0f0f0fu, (q.y >> sh) & 0x0f0f0f0fu, xa, xb);
        return rf_q8_half_lo(dm) * (float)sc * xd * (float)sumi -
               rf_q8_half_hi(dm) * (float)m * (0.25f * xs);
    }
};

// Q5_K: as Q4_K with qh[32] before qs: 5th bit of element l of chunk s is qh[l] bit s.
struct rf_q8dot_q5_K {
    enum { BLOCK_BYTES = 176, BLOCK_CHUNKS = 8, TILE_CHUNKS = 64, X_SPLIT = 0, X_SUM = 0 };
    RF_DEVICE static float dot(const rf_u8* row, rf_u32 c, rf_u32 p, int xa, int xb, float xd,
                               float xs, int) {
        const rf_u8* b = row + 176 * (c / 8);
        const rf_u32 s = c % 8;
        rf_u32 sc, m;
        rf_scale_min_k4(s, b + 4, &sc, &m);
        const rf_u32 dm = rf_q8_ld32(b);
        const rf_u32x2 q = *(const rf_u32x2*)(b + 48 + 32 * (s / 2) + 8 * p);
        const rf_u32x2 qh = *(const rf_u32x2*)(b + 16 + 8 * p);
        const rf_u32 sh = 4 * (s % 2);
        const rf_u32 v0 = ((q.x >> sh) & 0x0f0f0f0fu) | (((qh.x >> s) & 0x01010101u) << 4);
        const rf_u32 v1 = ((q.y >> sh) & 0x0f0f0f0fu) | (((qh.y >> s) & 0x01010101u) << 4);
        return rf_q8_half_lo(dm) * (float)sc * xd * (float)rf_q8_dot2(v0, v1, xa, xb) -
               rf_q8_half_hi(dm) * (float)m * (0.25f * xs);
    }
};

// Q6_K: ql[128]; qh[64]; i8 scales[16]; f16 d. Chunk s: h = s/4, k = s%4; element l:
// low 4 bits ql[64h + 32(k%2) + l] (high nibble when k >= 2), 2 high bits
// qh[32h + l] >> 2k; w = (d scale) (q - 32), scale 8h + 2k + l/16.
struct rf_q8dot_q6_K {
    enum { BLOCK_BYTES = 210, BLOCK_CHUNKS = 8, TILE_CHUNKS = 64, X_SPLIT = 0, X_SUM = 1 };
    RF_DEVICE static float dot(const rf_u8* row, rf_u32 c, rf_u32 p, int xa, int xb, float xd,
                               float, int xsum) {
        const rf_u8* b = row + 210 * (c / 8);
        const rf_u32 s = c % 8, h = s / 4, k = s % 4;
        const rf_u8* ql = b + 64 * h + 32 * (k % 2) + 8 * p;
        const rf_u8* qh = b + 128 + 32 * h + 8 * p;
        const rf_u32 l0 = rf_q8_ld32_a2(ql), l1 = rf_q8_ld32_a2(ql + 4);
        const rf_u32 h0 = rf_q8_ld32_a2(qh), h1 = rf_q8_ld32_a2(qh + 4);
        const rf_u32 ls = 4 * (k / 2), hs = 2 * k;
        const rf_u32 v0 = ((l0 >> ls) & 0x0f0f0f0fu) | (((h0 >> hs) & 0x03030303u) << 4);
        const rf_u32 v1 = ((l1 >> ls) & 0x0f0f0f0fu) | (((h1 >> hs) & 0x03030303u) << 4);
        const int sumi = rf_q8_dot2(v0, v1, xa, xb) - 32 * xsum;
        const float dl = rf_half_to_float((rf_u16)rf_q8_ld16(b + 208)) *
                         (float)((const rf_i8*)b)[192 + 8 * h + 2 * k + p / 2];
        return dl * xd * (float)sumi;
    }
};

// ---- the direct kernel -------------------------------------------------------------
//
// y[row] = W[row] . x for ROWS consecutive rows per block: every wave of the block runs
// over its share of the chunks of all ROWS rows, so each activation load serves ROWS
// rows; partial sums meet in shared memory. Lane l of wave v takes part l % 4 of chunks
// v * (WAVE_SIZE / 4) + l / 4, stepping by all the block's chunks per iteration.
// xq: one quantized activation row (16-byte aligned, checked by the launcher).
//
// rf_mvq_at is the body, for block `block` of the grid (rf_mvq: blockIdx.x), and with an
// optional residual epilogue: y[row] = residual[row] + dot when `residual` is not null
// (the launcher keeps it from aliasing y), else y[row] = dot. The dot product itself
// does not depend on the epilogue, the block index's origin or ROWS: the same sums in
// the same order for every row.
#define RF_MVQ_WAVES 4

template <class T, int ROWS>
RF_DEVICE void rf_mvq_at(const rf_u8* __restrict__ w, const rf_u8* __restrict__ xq,
                         float* __restrict__ y, rf_u32 rows, rf_u32 cols, rf_u32 block,
                         const float* __restrict__ residual) {
    const rf_u32 row0 = block * ROWS;
    if (row0 >= rows) return;
    const rf_u32 lane = threadIdx.x % WAVE_SIZE;
    const rf_u32 wave = threadIdx.x / WAVE_SIZE;
    const rf_u32 waves = blockDim.x / WAVE_SIZE;
    const rf_u32 p = lane % 4;
    const rf_u32 chunks = cols / 32;
    const rf_u64 row_bytes = (rf_u64)(chunks / T::BLOCK_CHUNKS) * T::BLOCK_BYTES;
    const rf_u8* wrs[ROWS];
    float sums[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        // A row past the end re-reads row0: harmless, and never written.
        wrs[r] = w + (rf_u64)(row0 + r < rows ? row0 + r : row0) * row_bytes;
        sums[r] = 0.0f;
    }
    const int* xqs = (const int*)xq;
    const rf_f32x2* xds = (const rf_f32x2*)(xq + cols);
#pragma unroll 4
    for (rf_u32 c = wave * (WAVE_SIZE / 4) + lane / 4; c < chunks; c += waves * (WAVE_SIZE / 4)) {
        int xa, xb;
        if (T::X_SPLIT) {
            xa = xqs[8 * c + p];
            xb = xqs[8 * c + 4 + p];
        } else {
            const rf_i32x2 v = ((const rf_i32x2*)xqs)[4 * c + p];
            xa = v.x;
            xb = v.y;
        }
        const rf_f32x2 ds = xds[c];
        const int xsum = T::X_SUM ? rf_dot4_i8(0x01010101, xa, rf_dot4_i8(0x01010101, xb, 0)) : 0;
#pragma unroll
        for (int r = 0; r < ROWS; ++r) sums[r] += T::dot(wrs[r], c, p, xa, xb, ds.x, ds.y, xsum);
    }
    __shared__ float partial[1024 / 32][ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        const float t = rf_wave_sum(sums[r]);
        if (lane == 0) partial[wave][r] = t;
    }
    __syncthreads();
    if (threadIdx.x < ROWS && row0 + threadIdx.x < rows) {
        float total = 0.0f;
        for (rf_u32 i = 0; i < waves; ++i) total += partial[i][threadIdx.x];
        y[row0 + threadIdx.x] = residual ? residual[row0 + threadIdx.x] + total : total;
    }
}

template <class T, int ROWS>
RF_DEVICE void rf_mvq(const rf_u8* __restrict__ w, const rf_u8* __restrict__ xq,
                      float* __restrict__ y, rf_u32 rows, rf_u32 cols) {
    rf_mvq_at<T, ROWS>(w, xq, y, rows, cols, blockIdx.x, 0);
}

// ---- the staged kernel -------------------------------------------------------------
//
// The same product, with the weights moved through shared memory: each wave owns ROWS
// rows and streams them tile by tile (T::TILE_CHUNKS chunks) with coalesced, aligned
// 16-byte loads, whatever the block size and alignment of the type (the tile starts at
// the 16-byte word holding its first byte; rows need not be 16-byte aligned). The next
// tile's loads are in flight while the lanes decode the current one from shared
// memory, four lanes per chunk as above, each activation load serving the ROWS rows.
// Each wave stages only its own rows, so waves synchronize with wave barriers
// (rf_wave_barrier); rows past the end re-read the last row and are not written.

RF_DEVICE rf_q8_word rf_q8_ld_word(const rf_u8* w, rf_u64 at, rf_u64 total) {
    if (at + 16 <= total) return *(const rf_q8_word*)(w + at);
    // The matrix's last word, partly past its end: byte by byte, no read past the end.
    rf_u32 v[4] = {0, 0, 0, 0};
    for (rf_u32 i = 0; at + i < total; ++i) v[i / 4] |= (rf_u32)w[at + i] << (8 * (i % 4));
    rf_q8_word r;
    r.x = v[0];
    r.y = v[1];
    r.z = v[2];
    r.w = v[3];
    return r;
}

// rf_mvqs_at: block `block` of the grid, with rf_mvq_at's optional residual epilogue.
template <class T, int ROWS>
RF_DEVICE void rf_mvqs_at(const rf_u8* __restrict__ w, const rf_u8* __restrict__ xq,
                          float* __restrict__ y, rf_u32 rows, rf_u32 cols, rf_u32 block,
                          const float* __restrict__ residual) {
    enum {
        TILE_BYTES = T::TILE_CHUNKS / T::BLOCK_CHUNKS * T::BLOCK_BYTES,
        // A tile starts up to 14 bytes into its first word.
        WORDS = (TILE_BYTES + 14 + 15) / 16,
        U = (WORDS + WAVE_SIZE - 1) / WAVE_SIZE,  // words per lane per row
        SLOTS = WAVE_SIZE * U,
    };
    __shared__ rf_q8_word stage[RF_MVQ_WAVES * ROWS * SLOTS];
    const rf_u32 lane = threadIdx.x % WAVE_SIZE;
    const rf_u32 wave = threadIdx.x / WAVE_SIZE;
    const rf_u32 p = lane % 4;
    const rf_u32 row0 = (block * RF_MVQ_WAVES + wave) * ROWS;
    const rf_u32 chunks = cols / 32;
    const rf_u64 row_bytes = (rf_u64)(chunks / T::BLOCK_CHUNKS) * T::BLOCK_BYTES;
    const rf_u64 total = (rf_u64)rows * row_bytes;
    rf_u64 base[ROWS];
    float sums[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        base[r] = (rf_u64)(row0 + r < rows ? row0 + r : rows - 1) * row_bytes;
        sums[r] = 0.0f;
    }
    rf_q8_word* st = stage + wave * ROWS * SLOTS;
    const int* xqs = (const int*)xq;
    const rf_f32x2* xds = (const rf_f32x2*)(xq + cols);

    rf_q8_word buf[ROWS][U];
    // Tile at chunk c0 of every row into buf.
#define RF_MVQS_LOAD(c0)                                                                    \
    {                                                                                       \
        const rf_u32 n_chunks = min((rf_u32)T::TILE_CHUNKS, chunks - (c0));                 \
        const rf_u64 n_bytes = (rf_u64)(n_chunks / T::BLOCK_CHUNKS) * T::BLOCK_BYTES;       \
        _Pragma("unroll") for (int r = 0; r < ROWS; ++r) {                                  \
            const rf_u64 start = base[r] + (rf_u64)((c0) / T::BLOCK_CHUNKS) * T::BLOCK_BYTES; \
            const rf_u64 a = start & ~(rf_u64)15;                                           \
            const rf_u32 n_words = (rf_u32)((start - a + n_bytes + 15) / 16);               \
            _Pragma("unroll") for (int j = 0; j < U; ++j) {                                 \
                const rf_u32 k = lane + WAVE_SIZE * j;                                      \
                if (k < n_words) buf[r][j] = rf_q8_ld_word(w, a + 16 * (rf_u64)k, total);   \
            }                                                                               \
        }                                                                                   \
    }
    RF_MVQS_LOAD(0)
    for (rf_u32 c0 = 0; c0 < chunks; c0 += T::TILE_CHUNKS) {
        // A wave's stage is its own: wave barriers, so that one wave's wait for its
        // loads never holds up the block's others.
        rf_wave_barrier();  // the previous tile's readers are done
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
#pragma unroll
            for (int j = 0; j < U; ++j) st[r * SLOTS + lane + WAVE_SIZE * j] = buf[r][j];
        }
        rf_wave_barrier();
        const rf_u32 n_chunks = min((rf_u32)T::TILE_CHUNKS, chunks - c0);
        if (c0 + T::TILE_CHUNKS < chunks) RF_MVQS_LOAD(c0 + T::TILE_CHUNKS)
        const rf_u8* srow[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            const rf_u64 start = base[r] + (rf_u64)(c0 / T::BLOCK_CHUNKS) * T::BLOCK_BYTES;
            srow[r] = (const rf_u8*)(st + r * SLOTS) + (start & 15);
        }
#pragma unroll 2
        for (rf_u32 cl = lane / 4; cl < n_chunks; cl += WAVE_SIZE / 4) {
            const rf_u32 c = c0 + cl;
            int xa, xb;
            if (T::X_SPLIT) {
                xa = xqs[8 * c + p];
                xb = xqs[8 * c + 4 + p];
            } else {
                const rf_i32x2 v = ((const rf_i32x2*)xqs)[4 * c + p];
                xa = v.x;
                xb = v.y;
            }
            const rf_f32x2 ds = xds[c];
            const int xsum = T::X_SUM ? rf_dot4_i8(0x01010101, xa, rf_dot4_i8(0x01010101, xb, 0)) : 0;
#pragma unroll
            for (int r = 0; r < ROWS; ++r) sums[r] += T::dot(srow[r], cl, p, xa, xb, ds.x, ds.y, xsum);
        }
    }
#undef RF_MVQS_LOAD
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        const float t = rf_wave_sum(sums[r]);
        if (lane == 0 && row0 + r < rows) y[row0 + r] = residual ? residual[row0 + r] + t : t;
    }
}

template <class T, int ROWS>
RF_DEVICE void rf_mvqs(const rf_u8* __restrict__ w, const rf_u8* __restrict__ xq,
                       float* __restrict__ y, rf_u32 rows, rf_u32 cols) {
    rf_mvqs_at<T, ROWS>(w, xq, y, rows, cols, blockIdx.x, 0);
}

// ---- the window kernel ---------------------------------------------------------------
//
// For the 32-element block types when a row is whole 16-byte words and the matrix starts
// at a 16-byte boundary (cols a multiple of 256: a span of 8 blocks is 8 * BLOCK_BYTES
// bytes, a multiple of 16), and for Q4_K and Q5_K (a span is one super-block, already
// whole 16-byte words). Eight lanes share a span, lane k decoding its chunk k: each loads
// the aligned 16-byte words its chunk lies in (the window), so a wave's load instruction
// covers consecutive words of four spans — coalesced wide loads, where rf_mvq's lanes
// read 2- and 4-byte pieces — and a 32-element block is realigned in registers (selects
// and funnel shifts: it starts at an even byte of the window's first word).
// Every wave of the block runs over its share of the spans of all ROWS rows, each
// activation load serving ROWS rows; partial sums meet in shared memory as in rf_mvq.
// Measured on the H100 (docs/benchmarks.md): Q4_0 at FFN shapes from 70-72% to 83% of
// the copy bandwidth, Q4_K from 47-52% to 75-77%. (A first try with each lane loading a
// whole span of its own was slower than rf_mvq: a wave's load then touched 16-32 lines
// at once.)

#define RF_MVC_SPAN_BLOCKS 8

// u[i + m] for m in 0..3, by selects rather than a dynamically indexed array (which
// would live in scratch memory); indices past the end read the last word (a window's
// words past its end hold none of its block's bytes).
template <int N>
RF_DEVICE rf_u32 rf_mvc_pick(const rf_u32 (&u)[N], rf_u32 m, int i) {
#define RF_MVC_AT(j) u[i + (j) < N ? i + (j) : N - 1]
    const rf_u32 a = (m & 1u) ? RF_MVC_AT(1) : RF_MVC_AT(0);
    const rf_u32 b = (m & 1u) ? RF_MVC_AT(3) : RF_MVC_AT(2);
#undef RF_MVC_AT
    return (m & 2u) ? b : a;
}

// The furthest into its first 16-byte word that one of a span's 8 blocks starts.
__host__ __device__ constexpr rf_u32 rf_mvc_max_at(rf_u32 block_bytes) {
    rf_u32 at = 0;
    for (rf_u32 k = 0; k < RF_MVC_SPAN_BLOCKS; ++k) {
        at = block_bytes * k % 16 > at ? block_bytes * k % 16 : at;
    }
    return at;
}

// 16-byte words of a span (256 elements: 8 blocks of 32, or one K-quant super-block).
template <class T>
struct rf_mvc_span {
    enum { WORDS = (RF_MVC_SPAN_BLOCKS / T::BLOCK_CHUNKS) * T::BLOCK_BYTES / 16 };
};

// Chunk k (32 elements) of the span at `span` times the activation block (x, xd, xs):
// for the 32-element types, block k through its window, realigned in registers.
template <class T>
RF_DEVICE float rf_mvc_span_dot(const rf_q8_word* __restrict__ span, rf_u32 k, const int* x,
                                float xd, float xs) {
    enum {
        BB = T::BLOCK_BYTES,
        SPAN_WORDS = rf_mvc_span<T>::WORDS,
        NB = (BB + 3) / 4,  // 32-bit words of a block
        // 16-byte words of a lane's window, from the one its block starts in.
        WIN = (rf_mvc_max_at(BB) + BB + 15) / 16,
    };
    // Block k of a span: 16-byte word `first`, byte `at` of it.
    const rf_u32 first = BB * k / 16, at = BB * k % 16;
    const rf_u32 m = at / 4, shift = 8 * (at % 4);
    rf_u32 u[4 * WIN];
#pragma unroll
    for (int j = 0; j < WIN; ++j) {
        // Past the span's end only for bytes the block does not use.
        const rf_u32 i = first + j < SPAN_WORDS ? first + j : SPAN_WORDS - 1;
        const rf_q8_word v = span[i];
        u[4 * j] = v.x;
        u[4 * j + 1] = v.y;
        u[4 * j + 2] = v.z;
        u[4 * j + 3] = v.w;
    }
    // The block's bytes as words from its first byte on.
    rf_u32 bw[NB];
    rf_u32 lo = rf_mvc_pick(u, m, 0);
#pragma unroll
    for (int i = 0; i < NB; ++i) {
        const rf_u32 hi = rf_mvc_pick(u, m, i + 1);
        bw[i] = shift == 0 ? lo : (lo >> shift) | (hi << (32 - shift));
        lo = hi;
    }
    return T::dot_block(bw, x, xd, xs);
}

// The 6-bit scale and min of chunk c (0..7) of a Q4_K/Q5_K super-block from its scale
// bytes 0..11 held in the words s0, s1, s2 (ggml's get_scale_min_k4).
RF_DEVICE void rf_mvc_scale_min_k4(rf_u32 c, rf_u32 s0, rf_u32 s1, rf_u32 s2, rf_u32* sc,
                                   rf_u32* mn) {
    const rf_u32 sh = 8 * (c % 4);
    if (c < 4) {
        *sc = (s0 >> sh) & 63u;
        *mn = (s1 >> sh) & 63u;
    } else {
        *sc = ((s2 >> sh) & 0xfu) | (((s0 >> sh) >> 6 & 3u) << 4);
        *mn = ((s2 >> sh) >> 4 & 0xfu) | (((s1 >> sh) >> 6 & 3u) << 4);
    }
}

// Q4_K: the super-block is 9 aligned 16-byte words — d, dmin and the scales in word 0,
// chunk c's 32 nibbles in words 1 + 2(c/2) and 2 + 2(c/2) (low nibbles for even c). No
// realignment: three 16-byte loads per chunk.
template <>
RF_DEVICE float rf_mvc_span_dot<rf_q8dot_q4_K>(const rf_q8_word* __restrict__ span, rf_u32 c,
                                               const int* x, float xd, float xs) {
    const rf_q8_word h = span[0], qa = span[1 + 2 * (c / 2)], qb = span[2 + 2 * (c / 2)];
    rf_u32 sc, mn;
    rf_mvc_scale_min_k4(c, h.y, h.z, h.w, &sc, &mn);
    const rf_u32 q[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
    const rf_u32 sh = 4 * (c % 2);
    int s = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) s = rf_dot4_i8((int)((q[j] >> sh) & 0x0f0f0f0fu), x[j], s);
    return rf_q8_half_lo(h.x) * (float)sc * xd * (float)s - rf_q8_half_hi(h.x) * (float)mn * xs;
}

// Q5_K: 11 aligned words — word 0 as Q4_K's, the 5th bits (bit c of each qh byte) in
// words 1-2, chunk c's nibbles in words 3 + 2(c/2) and 4 + 2(c/2).
template <>
RF_DEVICE float rf_mvc_span_dot<rf_q8dot_q5_K>(const rf_q8_word* __restrict__ span, rf_u32 c,
                                               const int* x, float xd, float xs) {
    const rf_q8_word h = span[0], ha = span[1], hb = span[2];
    const rf_q8_word qa = span[3 + 2 * (c / 2)], qb = span[4 + 2 * (c / 2)];
    rf_u32 sc, mn;
    rf_mvc_scale_min_k4(c, h.y, h.z, h.w, &sc, &mn);
    const rf_u32 q[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
    const rf_u32 qh[8] = {ha.x, ha.y, ha.z, ha.w, hb.x, hb.y, hb.z, hb.w};
    const rf_u32 sh = 4 * (c % 2);
    int s = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const rf_u32 v = ((q[j] >> sh) & 0x0f0f0f0fu) | (((qh[j] >> c) & 0x01010101u) << 4);
        s = rf_dot4_i8((int)v, x[j], s);
    }
    return rf_q8_half_lo(h.x) * (float)sc * xd * (float)s - rf_q8_half_hi(h.x) * (float)mn * xs;
}

template <class T, int ROWS>
RF_DEVICE void rf_mvc_at(const rf_u8* __restrict__ w, const rf_u8* __restrict__ xq,
                         float* __restrict__ y, rf_u32 rows, rf_u32 cols, rf_u32 block,
                         const float* __restrict__ residual) {
    enum { SPAN_WORDS = rf_mvc_span<T>::WORDS };
    const rf_u32 row0 = block * ROWS;
    if (row0 >= rows) return;
    const rf_u32 lane = threadIdx.x % WAVE_SIZE;
    const rf_u32 wave = threadIdx.x / WAVE_SIZE;
    const rf_u32 waves = blockDim.x / WAVE_SIZE;
    const rf_u32 k = threadIdx.x % RF_MVC_SPAN_BLOCKS;  // the lane's chunk of a span
    const rf_u32 group = threadIdx.x / RF_MVC_SPAN_BLOCKS;
    const rf_u32 groups = blockDim.x / RF_MVC_SPAN_BLOCKS;
    const rf_u32 spans = cols / (32 * RF_MVC_SPAN_BLOCKS);
    const rf_u64 row_words = (rf_u64)spans * SPAN_WORDS;
    const rf_q8_word* wrs[ROWS];
    float sums[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        wrs[r] = (const rf_q8_word*)w + (rf_u64)(row0 + r < rows ? row0 + r : row0) * row_words;
        sums[r] = 0.0f;
    }
    const rf_q8_word* xw = (const rf_q8_word*)xq;
    const rf_f32x2* xds = (const rf_f32x2*)(xq + cols);
#pragma unroll 2
    for (rf_u32 s = group; s < spans; s += groups) {
        const rf_u32 blk = s * RF_MVC_SPAN_BLOCKS + k;
        const rf_q8_word xa = xw[2 * blk], xb = xw[2 * blk + 1];
        const int x[8] = {(int)xa.x, (int)xa.y, (int)xa.z, (int)xa.w,
                          (int)xb.x, (int)xb.y, (int)xb.z, (int)xb.w};
        const rf_f32x2 ds = xds[blk];
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            sums[r] += rf_mvc_span_dot<T>(wrs[r] + (rf_u64)s * SPAN_WORDS, k, x, ds.x, ds.y);
        }
    }
    __shared__ float partial[1024 / 32][ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        const float t = rf_wave_sum(sums[r]);
        if (lane == 0) partial[wave][r] = t;
    }
    __syncthreads();
    if (threadIdx.x < ROWS && row0 + threadIdx.x < rows) {
        float total = 0.0f;
        for (rf_u32 i = 0; i < waves; ++i) total += partial[i][threadIdx.x];
        y[row0 + threadIdx.x] = residual ? residual[row0 + threadIdx.x] + total : total;
    }
}

template <class T, int ROWS>
RF_DEVICE void rf_mvc(const rf_u8* __restrict__ w, const rf_u8* __restrict__ xq,
                      float* __restrict__ y, rf_u32 rows, rf_u32 cols) {
    rf_mvc_at<T, ROWS>(w, xq, y, rows, cols, blockIdx.x, 0);
}

// ---- the kernels ---------------------------------------------------------------------
//
// Per type: rf_mvq_<type> (rf_mvq, RF_MVQ_ROWS_<type> rows per block), and some of
// rf_mvq_<type>_r<n> (rf_mvq, n rows per block) and rf_mvq_<type>_s<n> (rf_mvqs, n rows
// per wave, RF_MVQ_WAVES waves per block). Which one runs for a shape is the launcher's
// choice (quant_ops.rs, mvq_variant: from measurements on the H100); the others stay
// for kernel_bench --variants. The launcher's tables must agree with these lines (unit
// tests there check them).
#define RF_MVQ_ROWS_q4_0 4
#define RF_MVQ_ROWS_q4_1 4
#define RF_MVQ_ROWS_q5_0 4
#define RF_MVQ_ROWS_q5_1 4
#define RF_MVQ_ROWS_q8_0 4
#define RF_MVQ_ROWS_q2_K 4
#define RF_MVQ_ROWS_q3_K 4
#define RF_MVQ_ROWS_q4_K 4
#define RF_MVQ_ROWS_q5_K 4
#define RF_MVQ_ROWS_q6_K 4

#define RF_MVQ_PARAMS const rf_u8* w, const rf_u8* xq, float* y, rf_u32 rows, rf_u32 cols
#define RF_MVQ_CALL(T) rf_mvq<rf_q8dot_##T, RF_MVQ_ROWS_##T>(w, xq, y, rows, cols)

extern "C" __global__ void rf_mvq_q4_0(RF_MVQ_PARAMS) { RF_MVQ_CALL(q4_0); }
extern "C" __global__ void rf_mvq_q4_1(RF_MVQ_PARAMS) { RF_MVQ_CALL(q4_1); }
extern "C" __global__ void rf_mvq_q5_0(RF_MVQ_PARAMS) { RF_MVQ_CALL(q5_0); }
extern "C" __global__ void rf_mvq_q5_1(RF_MVQ_PARAMS) { RF_MVQ_CALL(q5_1); }
extern "C" __global__ void rf_mvq_q8_0(RF_MVQ_PARAMS) { RF_MVQ_CALL(q8_0); }
extern "C" __global__ void rf_mvq_q2_K(RF_MVQ_PARAMS) { RF_MVQ_CALL(q2_K); }
extern "C" __global__ void rf_mvq_q3_K(RF_MVQ_PARAMS) { RF_MVQ_CALL(q3_K); }
extern "C" __global__ void rf_mvq_q4_K(RF_MVQ_PARAMS) { RF_MVQ_CALL(q4_K); }
extern "C" __global__ void rf_mvq_q5_K(RF_MVQ_PARAMS) { RF_MVQ_CALL(q5_K); }
extern "C" __global__ void rf_mvq_q6_K(RF_MVQ_PARAMS) { RF_MVQ_CALL(q6_K); }

// rf_mvq with other rows per block.
extern "C" __global__ void rf_mvq_q4_0_r1(RF_MVQ_PARAMS) { rf_mvq<rf_q8dot_q4_0, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q4_0_r2(RF_MVQ_PARAMS) { rf_mvq<rf_q8dot_q4_0, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q8_0_r1(RF_MVQ_PARAMS) { rf_mvq<rf_q8dot_q8_0, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q8_0_r2(RF_MVQ_PARAMS) { rf_mvq<rf_q8dot_q8_0, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q4_K_r1(RF_MVQ_PARAMS) { rf_mvq<rf_q8dot_q4_K, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q4_K_r2(RF_MVQ_PARAMS) { rf_mvq<rf_q8dot_q4_K, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q6_K_r2(RF_MVQ_PARAMS) { rf_mvq<rf_q8dot_q6_K, 2>(w, xq, y, rows, cols); }

// rf_mvqs, 1 or 2 rows per wave.
extern "C" __global__ void rf_mvq_q4_0_s1(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q4_0, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q4_0_s2(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q4_0, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q4_1_s1(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q4_1, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q4_1_s2(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q4_1, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q5_0_s1(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q5_0, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q5_0_s2(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q5_0, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q5_1_s1(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q5_1, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q5_1_s2(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q5_1, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q8_0_s1(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q8_0, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q8_0_s2(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q8_0, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q2_K_s1(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q2_K, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q2_K_s2(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q2_K, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q3_K_s1(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q3_K, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q3_K_s2(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q3_K, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q4_K_s1(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q4_K, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q4_K_s2(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q4_K, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q5_K_s1(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q5_K, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q5_K_s2(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q5_K, 2>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q6_K_s1(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q6_K, 1>(w, xq, y, rows, cols); }
extern "C" __global__ void rf_mvq_q6_K_s2(RF_MVQ_PARAMS) { rf_mvqs<rf_q8dot_q6_K, 2>(w, xq, y, rows, cols); }

// rf_mvc, n rows per block. RF_MVC_BOUNDS states the launch (RF_MVQ_WAVES waves) and, on
// NVIDIA, 8 resident blocks per multiprocessor (at most 64 registers, which the window
// kernels stay under): measured on the H100 it makes the compiler's code for Q4_0 4-6%
// faster (docs/benchmarks.md); no change for the others.
#if RF_NVIDIA
#define RF_MVC_BOUNDS __launch_bounds__(RF_MVQ_WAVES * WAVE_SIZE, 8)
#else
#define RF_MVC_BOUNDS __launch_bounds__(RF_MVQ_WAVES * WAVE_SIZE)
#endif
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q4_0_c2(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q4_0, 2>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q4_0_c4(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q4_0, 4>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q4_1_c2(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q4_1, 2>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q4_1_c4(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q4_1, 4>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q5_0_c2(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q5_0, 2>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q5_0_c4(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q5_0, 4>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q5_1_c2(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q5_1, 2>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q5_1_c4(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q5_1, 4>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q8_0_c2(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q8_0, 2>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q8_0_c4(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q8_0, 4>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q4_K_c2(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q4_K, 2>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q4_K_c4(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q4_K, 4>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q5_K_c2(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q5_K, 2>(w, xq, y, rows, cols); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvq_q5_K_c4(RF_MVQ_PARAMS) { rf_mvc<rf_q8dot_q5_K, 4>(w, xq, y, rows, cols); }

// ---- several matrices in one launch, and the residual epilogue -------------------------
//
// rf_mvqx_<type><suffix> and rf_mvqx_<type>_mixed run up to three matrices of one type
// and width against the same quantized activation row in one launch (Q, K and V; gate
// and up), and optionally add a residual to the first one's output (y0 = residual + W0 x,
// the residual never aliasing y0). The grid is the concatenation of each matrix's own
// grid: blocks [0, nb0) compute matrix 0 as its own launch would, the next nb1 blocks
// matrix 1, then matrix 2, where nb_m = ceil(rows_m / rows per block of its kernel).
//
// `codes` names each matrix's kernel (bits 8m..8m+7 for matrix m) as 16 * family + rows:
// family 0 is rf_mvq with `rows` rows per block, family 1 rf_mvqs with `rows` rows per
// wave (rows * RF_MVQ_WAVES per block), family 2 rf_mvc with `rows` rows per block; bit 24 set: add `residual` to matrix 0. A matrix
// whose code is not one of the kernel's template variants gets no blocks and is not
// written (the launcher never passes one). Each matrix runs the very rf_mvq_at /
// rf_mvqs_at instance its own rf_mvq_<type><suffix> kernel runs, so its outputs are
// those of that kernel bit for bit. rf_mvqx_<type><suffix>: every matrix on that one
// variant; rf_mvqx_<type>_mixed: each on any of the variants the launcher may choose
// for the type (quant_ops.rs, mvqx_kernels). Unused slots have rows = 0.

template <int FAMILY, int ROWS>
struct rf_mvqv {
    enum { CODE = 16 * FAMILY + ROWS };
};
#define RF_MVQ_D(rows) rf_mvqv<0, rows>
#define RF_MVQ_S(rows) rf_mvqv<1, rows>
#define RF_MVQ_C(rows) rf_mvqv<2, rows>

template <class T, int ROWS>
RF_DEVICE void rf_mvq_run(rf_mvqv<0, ROWS>, const rf_u8* w, const rf_u8* xq, float* y, rf_u32 rows,
                          rf_u32 cols, rf_u32 block, const float* residual) {
    rf_mvq_at<T, ROWS>(w, xq, y, rows, cols, block, residual);
}

template <class T, int ROWS>
RF_DEVICE void rf_mvq_run(rf_mvqv<1, ROWS>, const rf_u8* w, const rf_u8* xq, float* y, rf_u32 rows,
                          rf_u32 cols, rf_u32 block, const float* residual) {
    rf_mvqs_at<T, ROWS>(w, xq, y, rows, cols, block, residual);
}

template <class T, int ROWS>
RF_DEVICE void rf_mvq_run(rf_mvqv<2, ROWS>, const rf_u8* w, const rf_u8* xq, float* y, rf_u32 rows,
                          rf_u32 cols, rf_u32 block, const float* residual) {
    rf_mvc_at<T, ROWS>(w, xq, y, rows, cols, block, residual);
}

// Rows per block of a code of the variants V0..V3 (0: not one of them).
template <class V0, class V1, class V2, class V3>
RF_DEVICE rf_u32 rf_mvq_code_rows(rf_u32 code) {
    if (code != (rf_u32)V0::CODE && code != (rf_u32)V1::CODE && code != (rf_u32)V2::CODE &&
        code != (rf_u32)V3::CODE) {
        return 0;
    }
    return code / 16 == 1 ? (code % 16) * RF_MVQ_WAVES : code % 16;
}

template <class T, class V0, class V1 = V0, class V2 = V0, class V3 = V0>
RF_DEVICE void rf_mvqx(const rf_u8* w0, const rf_u8* w1, const rf_u8* w2, const rf_u8* xq,
                       const float* residual, float* y0, float* y1, float* y2, rf_u32 rows0,
                       rf_u32 rows1, rf_u32 rows2, rf_u32 cols, rf_u32 codes) {
    const rf_u32 c0 = codes & 255u, c1 = (codes >> 8) & 255u, c2 = (codes >> 16) & 255u;
    const rf_u32 rpb0 = rf_mvq_code_rows<V0, V1, V2, V3>(c0);
    const rf_u32 rpb1 = rf_mvq_code_rows<V0, V1, V2, V3>(c1);
    const rf_u32 rpb2 = rf_mvq_code_rows<V0, V1, V2, V3>(c2);
    // Blocks per matrix, in 64 bits: rows + rpb - 1 may pass 2^32.
    const rf_u64 nb0 = rpb0 ? ((rf_u64)rows0 + rpb0 - 1) / rpb0 : 0;
    const rf_u64 nb1 = rpb1 ? ((rf_u64)rows1 + rpb1 - 1) / rpb1 : 0;
    const rf_u64 nb2 = rpb2 ? ((rf_u64)rows2 + rpb2 - 1) / rpb2 : 0;
    rf_u64 b = blockIdx.x;
    const rf_u8* w;
    float* y;
    rf_u32 rows, code;
    const float* res = 0;
    if (b < nb0) {
        w = w0, y = y0, rows = rows0, code = c0;
        if ((codes >> 24) & 1u) res = residual;
    } else if ((b -= nb0) < nb1) {
        w = w1, y = y1, rows = rows1, code = c1;
    } else if ((b -= nb1) < nb2) {
        w = w2, y = y2, rows = rows2, code = c2;
    } else {
        return;  // past the last matrix's blocks
    }
    // b < nb of the matrix: its first row, b * rows per block, is below rows (< 2^32).
    // code is one of V0..V3's (nb > 0 only for those). The conditions on the variants are
    // constant: a kernel holds one instance per distinct variant.
    const rf_u32 block = (rf_u32)b;
    const int k0 = V0::CODE, k1 = V1::CODE, k2 = V2::CODE, k3 = V3::CODE;
    if (code == (rf_u32)k0) {
        rf_mvq_run<T>(V0(), w, xq, y, rows, cols, block, res);
    } else if (k1 != k0 && code == (rf_u32)k1) {
        rf_mvq_run<T>(V1(), w, xq, y, rows, cols, block, res);
    } else if (k2 != k0 && k2 != k1 && code == (rf_u32)k2) {
        rf_mvq_run<T>(V2(), w, xq, y, rows, cols, block, res);
    } else if (k3 != k0 && k3 != k1 && k3 != k2) {
        rf_mvq_run<T>(V3(), w, xq, y, rows, cols, block, res);
    }
}

#define RF_MVQX_PARAMS                                                                       \
    const rf_u8* w0, const rf_u8* w1, const rf_u8* w2, const rf_u8* xq, const float* residual, \
        float* y0, float* y1, float* y2, rf_u32 rows0, rf_u32 rows1, rf_u32 rows2, rf_u32 cols, \
        rf_u32 codes
#define RF_MVQX_ARGS w0, w1, w2, xq, residual, y0, y1, y2, rows0, rows1, rows2, cols, codes

// One kernel per variant the launcher can choose (quant_ops.rs: mvq_variant, mvqx_kernels).
extern "C" __global__ void rf_mvqx_q4_0(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q4_0, RF_MVQ_D(RF_MVQ_ROWS_q4_0)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q4_0_r1(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q4_0, RF_MVQ_D(1)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q4_0_c2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q4_0, RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q4_1(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q4_1, RF_MVQ_D(RF_MVQ_ROWS_q4_1)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q4_1_c2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q4_1, RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q5_0_s1(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_0, RF_MVQ_S(1)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q5_0_s2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_0, RF_MVQ_S(2)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q5_0_c2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_0, RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q5_0_c4(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_0, RF_MVQ_C(4)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q5_1(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_1, RF_MVQ_D(RF_MVQ_ROWS_q5_1)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q5_1_s2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_1, RF_MVQ_S(2)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q5_1_c2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_1, RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q8_0_r1(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q8_0, RF_MVQ_D(1)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q8_0_s1(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q8_0, RF_MVQ_S(1)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q8_0_c2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q8_0, RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q2_K_s1(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q2_K, RF_MVQ_S(1)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q2_K_s2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q2_K, RF_MVQ_S(2)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q3_K_s1(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q3_K, RF_MVQ_S(1)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q3_K_s2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q3_K, RF_MVQ_S(2)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q4_K_c2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q4_K, RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q4_K_c4(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q4_K, RF_MVQ_C(4)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q5_K_c2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_K, RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q5_K_c4(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_K, RF_MVQ_C(4)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q6_K_s1(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q6_K, RF_MVQ_S(1)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q6_K_s2(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q6_K, RF_MVQ_S(2)>(RF_MVQX_ARGS); }

// Matrices on different variants of the type (e.g. Q on a staged kernel, K and V on a
// direct one): the variants in the order of mvqx_kernels.
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q4_0_mixed(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q4_0, RF_MVQ_D(RF_MVQ_ROWS_q4_0), RF_MVQ_D(1), RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q4_1_mixed(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q4_1, RF_MVQ_D(RF_MVQ_ROWS_q4_1), RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q5_0_mixed(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_0, RF_MVQ_S(1), RF_MVQ_S(2), RF_MVQ_C(2), RF_MVQ_C(4)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q5_1_mixed(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_1, RF_MVQ_D(RF_MVQ_ROWS_q5_1), RF_MVQ_S(2), RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q8_0_mixed(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q8_0, RF_MVQ_D(1), RF_MVQ_S(1), RF_MVQ_C(2)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q2_K_mixed(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q2_K, RF_MVQ_S(1), RF_MVQ_S(2)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q3_K_mixed(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q3_K, RF_MVQ_S(1), RF_MVQ_S(2)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q4_K_mixed(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q4_K, RF_MVQ_C(2), RF_MVQ_C(4)>(RF_MVQX_ARGS); }
extern "C" __global__ RF_MVC_BOUNDS void rf_mvqx_q5_K_mixed(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q5_K, RF_MVQ_C(2), RF_MVQ_C(4)>(RF_MVQX_ARGS); }
extern "C" __global__ void rf_mvqx_q6_K_mixed(RF_MVQX_PARAMS) { rf_mvqx<rf_q8dot_q6_K, RF_MVQ_S(1), RF_MVQ_S(2)>(RF_MVQX_ARGS); }
