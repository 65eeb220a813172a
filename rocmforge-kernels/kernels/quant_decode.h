// Decoders of ggml's block formats, shared by the kernels that read quantized weights
// (quant.hip, gemm.hip). Prepended after the prelude to the sources that list it.
//
// A weight matrix has `rows` rows of `cols` elements; each row is cols / block_elems
// consecutive ggml blocks (byte layouts exactly as ggml-common.h: see each decoder).
// Work is split into "chunks" of 32 consecutive elements of a row (one block for the
// 32-element types, an eighth of a super-block for the K-quants); rf_elem_T(row, c, l)
// decodes element l of chunk c to f32 the way ggml's dequantize_row_* does.

RF_DEVICE float rf_ld_half(const rf_u8* p) {
    return rf_half_to_float((rf_u16)(p[0] | (p[1] << 8)));
}

// ---- element decoders: element l (0..32) of chunk c of a row ----------------------
// Each decoder reads only what element l needs; called in unrolled loops over l, the
// compiler keeps the shared scale loads once per chunk.

RF_DEVICE rf_u32 rf_ld_u32(const rf_u8* p) {
    return (rf_u32)p[0] | ((rf_u32)p[1] << 8) | ((rf_u32)p[2] << 16) | ((rf_u32)p[3] << 24);
}

// F32 / F16 / BF16: plain elements.
RF_DEVICE float rf_elem_f32(const rf_u8* row, rf_u32 c, rf_u32 l) {
    return ((const float*)row)[32 * c + l];
}
RF_DEVICE float rf_elem_f16(const rf_u8* row, rf_u32 c, rf_u32 l) {
    return rf_half_to_float(((const rf_u16*)row)[32 * c + l]);
}
RF_DEVICE float rf_elem_bf16(const rf_u8* row, rf_u32 c, rf_u32 l) {
    return rf_bf16_to_float(((const rf_u16*)row)[32 * c + l]);
}

// Q4_0 (18 bytes): f16 d; u8 qs[16]. x[j] = ((qs[j] & 15) - 8) d, x[j+16] = ((qs[j] >> 4) - 8) d.
RF_DEVICE float rf_elem_q4_0(const rf_u8* row, rf_u32 c, rf_u32 l) {
    const rf_u8* b = row + 18 * c;
    const rf_u8 q = b[2 + (l & 15)];
    return (float)((int)(l < 16 ? q & 15 : q >> 4) - 8) * rf_ld_half(b);
}

// Q4_1 (20 bytes): f16 d, f16 m; u8 qs[16]. x = q d + m.
RF_DEVICE float rf_elem_q4_1(const rf_u8* row, rf_u32 c, rf_u32 l) {
    const rf_u8* b = row + 20 * c;
    const rf_u8 q = b[4 + (l & 15)];
    return (float)(l < 16 ? q & 15 : q >> 4) * rf_ld_half(b) + rf_ld_half(b + 2);
}

// Q5_0 (22 bytes): f16 d; u8 qh[4] (5th bits, little-endian u32); u8 qs[16]; q - 16.
RF_DEVICE rf_u32 rf_q5_value(const rf_u8* qs, rf_u32 qh, rf_u32 l) {
    const rf_u32 j = l & 15;
    const rf_u8 q = qs[j];
    return l < 16 ? ((q & 15) | (((qh >> j) << 4) & 0x10)) : ((q >> 4) | ((qh >> (j + 12)) & 0x10));
}
RF_DEVICE float rf_elem_q5_0(const rf_u8* row, rf_u32 c, rf_u32 l) {
    const rf_u8* b = row + 22 * c;
    return (float)((int)rf_q5_value(b + 6, rf_ld_u32(b + 2), l) - 16) * rf_ld_half(b);
}

// Q5_1 (24 bytes): f16 d, f16 m; u8 qh[4]; u8 qs[16]. x = q d + m.
RF_DEVICE float rf_elem_q5_1(const rf_u8* row, rf_u32 c, rf_u32 l) {
    const rf_u8* b = row + 24 * c;
    return (float)rf_q5_value(b + 8, rf_ld_u32(b + 4), l) * rf_ld_half(b) + rf_ld_half(b + 2);
}

// Q8_0 (34 bytes): f16 d; i8 qs[32]. x = q d.
RF_DEVICE float rf_elem_q8_0(const rf_u8* row, rf_u32 c, rf_u32 l) {
    const rf_u8* b = row + 34 * c;
    return (float)(rf_i8)b[2 + l] * rf_ld_half(b);
}

// Q2_K (84 bytes): u8 scales[16] (low nibble scale, high nibble min); u8 qs[64];
// f16 d; f16 dmin. Chunk s of a super-block: half h = s/4, shift 2(s%4); element
// 16p + ll uses qs[32h + 16p + ll] and scales[8h + 2(s%4) + p].
RF_DEVICE float rf_elem_q2_K(const rf_u8* row, rf_u32 c, rf_u32 l) {
    const rf_u8* b = row + 84 * (c / 8);
    const rf_u32 s = c % 8, h = s / 4, j = s % 4, p = l / 16;
    const rf_u8 sc = b[8 * h + 2 * j + p];
    const float dl = rf_ld_half(b + 80) * (float)(sc & 15);
    const float ml = rf_ld_half(b + 82) * (float)(sc >> 4);
    return dl * (float)((b[16 + 32 * h + l] >> (2 * j)) & 3) - ml;
}

// Q3_K (110 bytes): u8 hmask[32]; u8 qs[64]; u8 scales[12] (16 packed 6-bit scales);
// f16 d. Chunk s: half h = s/4, j = s%4; element 16p + ll: low bits qs[32h + l] >> 2j,
// high bit hmask[l] bit (4h + j) (set: +0, clear: -4), scale 8h + 2j + p.
RF_DEVICE int rf_q3_K_scale(const rf_u8* sc, rf_u32 is) {
    // ggml's unpacking of the 12 bytes into 16 6-bit scales, minus 32.
    const rf_u32 low = is < 8 ? sc[is] & 15 : sc[is - 8] >> 4;
    const rf_u32 high = (sc[8 + is % 4] >> (2 * (is / 4))) & 3;
    return (int)(low | (high << 4)) - 32;
}
RF_DEVICE float rf_elem_q3_K(const rf_u8* row, rf_u32 c, rf_u32 l) {
    const rf_u8* b = row + 110 * (c / 8);
    const rf_u32 s = c % 8, h = s / 4, j = s % 4, p = l / 16;
    const float dl = rf_ld_half(b + 108) * (float)rf_q3_K_scale(b + 96, 8 * h + 2 * j + p);
    const int q = (b[32 + 32 * h + l] >> (2 * j)) & 3;
    const int hb = (b[l] >> (4 * h + j)) & 1 ? 0 : 4;
    return dl * (float)(q - hb);
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

// Q4_K (144 bytes): f16 d; f16 dmin; u8 scales[12]; u8 qs[128]. Chunk s: group s/2 of
// 64 elements, low (s even) or high (s odd) nibbles of qs[32(s/2) + l].
RF_DEVICE float rf_elem_q4_K(const rf_u8* row, rf_u32 c, rf_u32 l) {
    const rf_u8* b = row + 144 * (c / 8);
    const rf_u32 s = c % 8;
    rf_u32 sc, m;
    rf_scale_min_k4(s, b + 4, &sc, &m);
    const float d1 = rf_ld_half(b) * (float)sc;
    const float m1 = rf_ld_half(b + 2) * (float)m;
    return d1 * (float)((b[16 + 32 * (s / 2) + l] >> (4 * (s % 2))) & 15) - m1;
}

// Q5_K (176 bytes): f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]. As Q4_K,
// plus a 5th bit: qh[l] bit s.
RF_DEVICE float rf_elem_q5_K(const rf_u8* row, rf_u32 c, rf_u32 l) {
    const rf_u8* b = row + 176 * (c / 8);
    const rf_u32 s = c % 8;
    rf_u32 sc, m;
    rf_scale_min_k4(s, b + 4, &sc, &m);
    const float d1 = rf_ld_half(b) * (float)sc;
    const float m1 = rf_ld_half(b + 2) * (float)m;
    const rf_u32 q = ((b[48 + 32 * (s / 2) + l] >> (4 * (s % 2))) & 15) + 16 * ((b[16 + l] >> s) & 1);
    return d1 * (float)q - m1;
}

// Q6_K (210 bytes): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d. Chunk s: half h = s/4,
// k = s%4; element l: low 4 bits ql[64h + 32(k%2) + l] (high nibble when k >= 2), 2 high
// bits qh[32h + l] >> 2k, minus 32; scale scales[8h + 2k + l/16]. (d * scale) first, as ggml.
RF_DEVICE float rf_elem_q6_K(const rf_u8* row, rf_u32 c, rf_u32 l) {
    const rf_u8* b = row + 210 * (c / 8);
    const rf_u32 s = c % 8, h = s / 4, k = s % 4;
    const int q = (int)(((b[64 * h + 32 * (k % 2) + l] >> (k >= 2 ? 4 : 0)) & 15) |
                        (((b[128 + 32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
    const float scale = (float)((const rf_i8*)(b + 192))[8 * h + 2 * k + l / 16];
    return rf_ld_half(b + 208) * scale * (float)q;
}


