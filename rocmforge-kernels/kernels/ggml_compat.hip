// llama.cpp's CPU arithmetic on the GPU (rocmforge's GgmlCompatible mode): the roundings
// of llama.cpp's x86 AVX2 CPU backend, as rocmforge-model's backend/ggml_compat (the CPU
// reference, bit for bit with llama.cpp) computes them. A correctness mode, not a fast
// one: the attention kernel walks the cache position by position.
//
//   rf_ggml_quantize_q8      activations -> 8 bits with llama.cpp's rounding
//                            (quantize_row_q8_0 / _q8_1, AVX2: id = 127 / amax, round half
//                            to even, d and s stored as f16), in quant_q8.hip's byte format
//                            so that its integer matvec kernels take them;
//   rf_ggml_q8_roundtrip     x -> q * d (the value those 8 bits stand for), in f32, for
//                            products through the f32 GEMM;
//   rf_ggml_round_f16        x -> f32(f16(x)) (activations of products with F16 weights);
//   rf_ggml_matvec_<type>    W x for Q4_1 / Q5_1 / Q8_0 weights with llama.cpp's AVX2 dot
//                            products over rf_ggml_quantize_q8's activations, bit for bit;
//   rf_ggml_swiglu           silu(gate) * up with ggml_v_expf (ggml_vec_swiglu_f32);
//   rf_ggml_rope             RoPE with GCC's fused multiply-adds (rotate_pairs);
//   rf_ggml_rms_norm         RMSNorm with the f64 sum of f32 squares (ggml_compute_forward_rms_norm);
//   rf_ggml_attn_{f32,f16}   flash attention over an f16 cache: the one-row path (f16
//                            query, f16 V accumulation), the split-KV path, the tiled path.
//
// Every float operation below is one IEEE operation in a fixed order: products and sums
// that llama.cpp's build keeps separate go through rf_gc_mul / rf_gc_add (never
// contracted into an FMA by the compiler), the FMAs it has are explicit fmaf; glibc's expf
// is reproduced (rf_gc_expf), and the RoPE angles' cosf / sinf come from the host.

// ---- uncontracted float operations -----------------------------------------------------

#if RF_NVIDIA
RF_DEVICE float rf_gc_mul(float a, float b) { return __fmul_rn(a, b); }
RF_DEVICE float rf_gc_add(float a, float b) { return __fadd_rn(a, b); }
#else
RF_DEVICE float rf_gc_mul(float a, float b) {
#pragma clang fp contract(off)
    return a * b;
}
RF_DEVICE float rf_gc_add(float a, float b) {
#pragma clang fp contract(off)
    return a + b;
}
#endif
RF_DEVICE float rf_gc_sub(float a, float b) { return rf_gc_add(a, -b); }

// f32 -> nearest f16 (ties to even) -> f32.
RF_DEVICE float rf_gc_f16(float x) { return rf_half_to_float(rf_float_to_half(x)); }

RF_DEVICE double rf_gc_as_double(rf_u64 u) {
#if RF_NVIDIA
    return __longlong_as_double((long long)u);
#else
    double d;
    __builtin_memcpy(&d, &u, 8);
    return d;
#endif
}
RF_DEVICE rf_u64 rf_gc_as_u64(double d) {
#if RF_NVIDIA
    return (rf_u64)__double_as_longlong(d);
#else
    rf_u64 u;
    __builtin_memcpy(&u, &d, 8);
    return u;
#endif
}
#if RF_NVIDIA
RF_DEVICE double rf_gc_dmul(double a, double b) { return __dmul_rn(a, b); }
RF_DEVICE double rf_gc_dadd(double a, double b) { return __dadd_rn(a, b); }
#else
RF_DEVICE double rf_gc_dmul(double a, double b) {
#pragma clang fp contract(off)
    return a * b;
}
RF_DEVICE double rf_gc_dadd(double a, double b) {
#pragma clang fp contract(off)
    return a + b;
}
#endif

// 2^(i/32) as bits, minus i << 47 (glibc's __exp2f_data.tab).
__constant__ rf_u64 rf_gc_exp2f_tab[32] = {
    0x3ff0000000000000ull, 0x3fefd9b0d3158574ull, 0x3fefb5586cf9890full, 0x3fef9301d0125b51ull,
    0x3fef72b83c7d517bull, 0x3fef54873168b9aaull, 0x3fef387a6e756238ull, 0x3fef1e9df51fdee1ull,
    0x3fef06fe0a31b715ull, 0x3feef1a7373aa9cbull, 0x3feedea64c123422ull, 0x3feece086061892dull,
    0x3feebfdad5362a27ull, 0x3feeb42b569d4f82ull, 0x3feeab07dd485429ull, 0x3feea47eb03a5585ull,
    0x3feea09e667f3bcdull, 0x3fee9f75e8ec5f74ull, 0x3feea11473eb0187ull, 0x3feea589994cce13ull,
    0x3feeace5422aa0dbull, 0x3feeb737b0cdc5e5ull, 0x3feec49182a3f090ull, 0x3feed503b23e255dull,
    0x3feee89f995ad3adull, 0x3feeff76f2fb5e47ull, 0x3fef199bdd85529cull, 0x3fef3720dcef9069ull,
    0x3fef5818dcfba487ull, 0x3fef7c97337b9b5full, 0x3fefa4afa2a490daull, 0x3fefd0765b6e4540ull,
};

// glibc's expf (sysdeps/ieee754/flt-32/e_expf.c; Rust's f32::exp on the CPU side), which
// is not always the correctly rounded result (about 6 in 10^4 differ from
// (float)exp((double)x)): 2^(k/32) from the table times a cubic in double. Checked against
// glibc 2.3x's x86-64 FMA build on 5M arguments in [-28, 2] with and without FMA
// contraction of its double steps (no difference either way).
RF_DEVICE float rf_gc_expf(float x) {
    const rf_u32 ux = __float_as_uint(x);
    const rf_u32 abstop = (ux >> 20) & 0x7ffu;
    if (abstop >= (0x42b00000u >> 20)) {  // |x| >= 88 or NaN
        if (ux == 0xff800000u) return 0.0f;
        if (abstop >= (0x7f800000u >> 20)) return x + x;
        if (x > __uint_as_float(0x42b17217u)) return __uint_as_float(0x7f800000u);
        if (x < __uint_as_float(0xc2cff1b4u)) return 0.0f;
    }
    const double n = 32.0;
    const double invln2n = rf_gc_dmul(rf_gc_as_double(0x3ff71547652b82feull), n);
    const double c0 = rf_gc_as_double(0x3fac6af84b912394ull) / n / n / n;
    const double c1 = rf_gc_as_double(0x3fcebfce50fac4f3ull) / n / n;
    const double c2 = rf_gc_as_double(0x3fe62e42ff0c52d6ull) / n;
    const double shift = rf_gc_as_double(0x4338000000000000ull);  // 0x1.8p52
    const double z = rf_gc_dmul(invln2n, (double)x);
    const double kd0 = rf_gc_dadd(z, shift);
    const rf_u64 ki = rf_gc_as_u64(kd0);
    const double kd = rf_gc_dadd(kd0, -shift);
    const double r = rf_gc_dadd(z, -kd);
    const double s = rf_gc_as_double(rf_gc_exp2f_tab[ki % 32] + (ki << 47));
    const double zz = fma(c0, r, c1);
    const double r2 = rf_gc_dmul(r, r);
    const double y1 = fma(c2, r, 1.0);
    const double y = fma(zz, r2, y1);
    return (float)rf_gc_dmul(y, s);
}

// Rust's f32::max: the larger, the other one when one is NaN.
RF_DEVICE float rf_gc_max(float a, float b) {
    if (a != a) return b;
    if (b != b) return a;
    return a > b ? a : b;
}

// ---- activation quantization -------------------------------------------------------------
//
// One value per thread; the 32 lanes of a block meet through shuffles (xor masks below
// 32 stay inside a 32-lane group for either wave size). Grid-stride over values with
// blocks of a multiple of 32 threads: n and the stride are multiples of 32, so a
// quantization block's lanes are all in or all out of the range.

struct alignas(8) rf_gc_f32x2 { float x, y; };

// Returns q (as float) for v; sets d16 (the f16-rounded scale) and, for Q8_1, s =
// f16(d * sum q) with the unrounded d; for Q8_0, s = d16 * sum q (exact: the offset term
// the integer kernels of the Q4_0 / Q5_0 weights need; llama.cpp's Q8_0 has no s).
RF_DEVICE float rf_gc_quantize_value(float v, rf_u32 q8_1, float* d16, float* s) {
    float amax = fmaxf(0.0f, fabsf(v));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, rf_shfl_xor(amax, o));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const float q = fminf(fmaxf(rintf(rf_gc_mul(v, id)), -128.0f), 127.0f);
    float sum = q;  // integers of magnitude <= 32 * 128: exact in f32
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum = rf_gc_add(sum, rf_shfl_xor(sum, o));
    *d16 = rf_gc_f16(d);
    *s = q8_1 ? rf_gc_f16(rf_gc_mul(d, sum)) : rf_gc_mul(*d16, sum);
    return q;
}

// x: rows of cols f32 (n = rows * cols values); out: rows of row_bytes in quant_q8.hip's
// format (qs, then per block (d, s) as f32, then 8 zero bytes when cols / 32 is odd).
// q8_1: 1 for the Q8_1 activations of Q4_1 / Q5_1 weights, 0 for Q8_0.
extern "C" __global__ void rf_ggml_quantize_q8(const float* __restrict__ x, rf_u8* __restrict__ out, rf_u64 n, rf_u32 cols, rf_u32 row_bytes, rf_u32 q8_1) {
    const rf_u64 stride = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 i = rf_global_index(); i < n; i += stride) {
        float d16, s;
        const float q = rf_gc_quantize_value(x[i], q8_1, &d16, &s);
        const rf_u64 t = i / cols;
        const rf_u32 col = (rf_u32)(i - t * cols);
        rf_u8* row = out + t * row_bytes;
        row[col] = (rf_u8)(rf_i8)(int)q;
        if (col % 32 == 0) {
            rf_gc_f32x2 ds;
            ds.x = d16;
            ds.y = s;
            ((rf_gc_f32x2*)(row + cols))[col / 32] = ds;
            if (col + 32 == cols && (cols / 32) % 2 == 1) {
                rf_gc_f32x2 zero;
                zero.x = 0.0f;
                zero.y = 0.0f;
                ((rf_gc_f32x2*)(row + cols))[cols / 32] = zero;
            }
        }
    }
}

// out[i] = q * d16 of x[i]'s block of 32 (n a multiple of 32; exact: 8-bit q times an
// 11-bit significand). May run in place (each value is read before any is written: the
// shuffles of a block complete before its lanes store).
extern "C" __global__ void rf_ggml_q8_roundtrip(const float* x, float* out, rf_u64 n) {
    const rf_u64 stride = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 i = rf_global_index(); i < n; i += stride) {
        float d16, s;
        const float q = rf_gc_quantize_value(x[i], 0, &d16, &s);
        // Through an integer, as the stored i8 is: a value rounded to -0 becomes +0.
        out[i] = rf_gc_mul((float)(int)q, d16);
    }
}

// out[i] = f32(f16(x[i])).
extern "C" __global__ void rf_ggml_round_f16(const float* x, float* out, rf_u64 n) {
    const rf_u64 stride = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 i = rf_global_index(); i < n; i += stride) out[i] = rf_gc_f16(x[i]);
}

// ---- products with llama.cpp's AVX2 dot products -------------------------------------------
//
// ggml_vec_dot_q4_1_q8_1 / _q5_1_q8_1 / _q8_0_q8_0 (ggml_compat::vec_dot::dot): per block
// of 32, lane l (elements 4l .. 4l + 3) gets the exact integer sum of its four products,
// acc[l] = fma(d_w * d_x, sum, acc[l]); for the types with a minimum also summs =
// fma(m_w, s_x, summs) block by block; the result is hsum8(acc) (+ summs). One thread per
// (token, weight row) holds the eight lanes: each output the same bits for any batch.
// xq: n_tokens rows of x_row_bytes in quant_q8.hip's format (rf_ggml_quantize_q8's
// output); y: [n_tokens, rows].

RF_DEVICE rf_u32 rf_gc_ld4(const rf_u8* p) {
    return (rf_u32)p[0] | ((rf_u32)p[1] << 8) | ((rf_u32)p[2] << 16) | ((rf_u32)p[3] << 24);
}
RF_DEVICE float rf_gc_half_at(const rf_u8* p) { return rf_half_to_float((rf_u16)((rf_u32)p[0] | ((rf_u32)p[1] << 8))); }

// Bits 0..3 of t to bit 4 of bytes 0..3.
RF_DEVICE rf_u32 rf_gc_spread4(rf_u32 t) { return ((t * 0x00204081u) & 0x01010101u) << 4; }

// Q4_1: d, m (f16), qs[16]: element j < 16 the low nibble of qs[j], 16 + j the high one.
struct rf_gc_w_q4_1 {
    enum { BLOCK_BYTES = 20, HAS_MIN = 1 };
    static RF_DEVICE rf_u32 quants(const rf_u8* b, int l) {
        const rf_u32 q = rf_gc_ld4(b + 4 + 4 * (l & 3));
        return l < 4 ? (q & 0x0f0f0f0fu) : ((q >> 4) & 0x0f0f0f0fu);
    }
};
// Q5_1: d, m (f16), qh (bit j: bit 4 of element j), qs[16] as Q4_1.
struct rf_gc_w_q5_1 {
    enum { BLOCK_BYTES = 24, HAS_MIN = 1 };
    static RF_DEVICE rf_u32 quants(const rf_u8* b, int l) {
        const rf_u32 qh = rf_gc_ld4(b + 4);
        const rf_u32 q = rf_gc_ld4(b + 8 + 4 * (l & 3));
        const rf_u32 lo = l < 4 ? (q & 0x0f0f0f0fu) : ((q >> 4) & 0x0f0f0f0fu);
        return lo | rf_gc_spread4((qh >> (4 * l)) & 15u);
    }
};
// Q8_0: d (f16), qs[32] signed.
struct rf_gc_w_q8_0 {
    enum { BLOCK_BYTES = 34, HAS_MIN = 0 };
    static RF_DEVICE rf_u32 quants(const rf_u8* b, int l) { return rf_gc_ld4(b + 2 + 4 * l); }
};

template <typename W>
RF_DEVICE void rf_gc_matvec(const rf_u8* w, const rf_u8* xq, float* y, rf_u32 rows, rf_u32 cols, rf_u32 n_tokens,
                            rf_u32 x_row_bytes) {
    const rf_u32 nb = cols / 32;
    const rf_u64 total = (rf_u64)rows * n_tokens;
    const rf_u64 stride = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 idx = rf_global_index(); idx < total; idx += stride) {
        const rf_u32 t = (rf_u32)(idx / rows);
        const rf_u32 r = (rf_u32)(idx - (rf_u64)t * rows);
        const rf_u8* wr = w + (rf_u64)r * nb * W::BLOCK_BYTES;
        const rf_u8* xr = xq + (rf_u64)t * x_row_bytes;
        const float* ds = (const float*)(xr + cols);
        float acc[8];
#pragma unroll
        for (int l = 0; l < 8; ++l) acc[l] = 0.0f;
        float summs = 0.0f;
        for (rf_u32 b = 0; b < nb; ++b) {
            const rf_u8* wb = wr + (rf_u64)b * W::BLOCK_BYTES;
            const float xd = ds[2 * b];
            if (W::HAS_MIN) summs = fmaf(rf_gc_half_at(wb + 2), ds[2 * b + 1], summs);
            const float dd = rf_gc_mul(rf_gc_half_at(wb), xd);
            const rf_u8* xb = xr + 32 * b;
#pragma unroll
            for (int l = 0; l < 8; ++l) {
                const int sum = rf_dot4_i8((int)W::quants(wb, l), (int)rf_gc_ld4(xb + 4 * l), 0);
                acc[l] = fmaf(dd, (float)sum, acc[l]);
            }
        }
        // hsum8: ((x0+x4) + (x2+x6)) + ((x1+x5) + (x3+x7))
        const float r0 = rf_gc_add(acc[4], acc[0]), r1 = rf_gc_add(acc[5], acc[1]);
        const float r2 = rf_gc_add(acc[6], acc[2]), r3 = rf_gc_add(acc[7], acc[3]);
        const float sum = rf_gc_add(rf_gc_add(r0, r2), rf_gc_add(r1, r3));
        y[idx] = W::HAS_MIN ? rf_gc_add(sum, summs) : sum;
    }
}

extern "C" __global__ void rf_ggml_matvec_q4_1(const rf_u8* w, const rf_u8* xq, float* y, rf_u32 rows, rf_u32 cols, rf_u32 n_tokens, rf_u32 x_row_bytes) {
    rf_gc_matvec<rf_gc_w_q4_1>(w, xq, y, rows, cols, n_tokens, x_row_bytes);
}
extern "C" __global__ void rf_ggml_matvec_q5_1(const rf_u8* w, const rf_u8* xq, float* y, rf_u32 rows, rf_u32 cols, rf_u32 n_tokens, rf_u32 x_row_bytes) {
    rf_gc_matvec<rf_gc_w_q5_1>(w, xq, y, rows, cols, n_tokens, x_row_bytes);
}
extern "C" __global__ void rf_ggml_matvec_q8_0(const rf_u8* w, const rf_u8* xq, float* y, rf_u32 rows, rf_u32 cols, rf_u32 n_tokens, rf_u32 x_row_bytes) {
    rf_gc_matvec<rf_gc_w_q8_0>(w, xq, y, rows, cols, n_tokens, x_row_bytes);
}

// ---- SwiGLU with ggml_v_expf ---------------------------------------------------------------

// One lane of ggml's AVX2 + FMA ggml_v_expf (ggml_compat::activation::v_expf).
RF_DEVICE float rf_gc_v_expf(float x) {
    const float r = __uint_as_float(0x4B400000u);
    const float z = fmaf(x, __uint_as_float(0x3FB8AA3Bu), r);
    const float n = rf_gc_sub(z, r);
    const float b = fmaf(-n, __uint_as_float(0x35BFBE8Eu), fmaf(-n, __uint_as_float(0x3F317200u), x));
    const rf_u32 e = __float_as_uint(z) << 23;
    const float k = __uint_as_float(e + __float_as_uint(1.0f));
    const bool c = fabsf(n) > 126.0f;
    const float u = rf_gc_mul(b, b);
    const float j = fmaf(fmaf(fmaf(__uint_as_float(0x3C072010u), b, __uint_as_float(0x3D2B9F17u)), u,
                              fmaf(__uint_as_float(0x3E2AAF33u), b, __uint_as_float(0x3EFFFEDBu))),
                         u, rf_gc_mul(__uint_as_float(0x3F7FFFF6u), b));
    if (!c) return fmaf(j, k, k);
    const rf_u32 g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = __uint_as_float(g + 0x7F000000u);
    const float s2 = __uint_as_float(e - g);
    if (fabsf(n) > 192.0f) return rf_gc_mul(s1, s1);
    return rf_gc_mul(fmaf(s2, j, s2), s1);
}

// out[i] = silu(gate[i]) * up[i]: ggml_v_silu (x / (1 + v_expf(0 - x))) for i < n_vec,
// the scalar x / (1 + expf(-x)) after (ggml_vec_swiglu_f32's remainder).
extern "C" __global__ void rf_ggml_swiglu(const float* gate, const float* up, float* out, rf_u64 n, rf_u64 n_vec) {
    const rf_u64 stride = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 i = rf_global_index(); i < n; i += stride) {
        const float g = gate[i];
        const float e = i < n_vec ? rf_gc_v_expf(rf_gc_sub(0.0f, g)) : rf_gc_expf(-g);
        const float silu = g / rf_gc_add(1.0f, e);
        out[i] = rf_gc_mul(silu, up[i]);
    }
}

// ---- RoPE with fused multiply-adds -----------------------------------------------------------
//
// x: [n_tokens, n_heads, head_dim]; cs: [n_tokens, n_rot / 2] pairs (cos, sin) of each
// token's angles, computed on the host with the C library's cosf / sinf exactly as the CPU
// does (glibc's results are not always the correctly rounded ones, which the GPU's would
// be); one thread per pair (token, head, i < n_rot / 2):
// y0 = fma(x0, cos, -(x1 * sin)), y1 = fma(x0, sin, x1 * cos) (rotate_pairs as GCC
// compiles it).
extern "C" __global__ void rf_ggml_rope(float* x, const float* cs, rf_u32 n_tokens, rf_u32 n_heads, rf_u32 head_dim, rf_u32 n_rot, rf_u32 neox) {
    const rf_u32 half_rot = n_rot / 2;
    const rf_u64 total = (rf_u64)n_tokens * n_heads * half_rot;
    const rf_u64 stride = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 idx = rf_global_index(); idx < total; idx += stride) {
        const rf_u32 i = (rf_u32)(idx % half_rot);
        const rf_u64 head = idx / half_rot;
        const rf_u32 token = (rf_u32)(head / n_heads);
        const float c = cs[2 * ((rf_u64)token * half_rot + i)];
        const float s = cs[2 * ((rf_u64)token * half_rot + i) + 1];
        float* h = x + head * head_dim;
        const rf_u32 a = neox ? i : 2 * i;
        const rf_u32 b = neox ? i + half_rot : 2 * i + 1;
        const float x0 = h[a];
        const float x1 = h[b];
        h[a] = fmaf(x0, c, -rf_gc_mul(x1, s));
        h[b] = fmaf(x0, s, rf_gc_mul(x1, c));
    }
}

// ---- RMSNorm with an f64 sum -------------------------------------------------------------
//
// One block per row (blockDim.x a power of two, at most 1024); out = x * scale * w with
// scale = 1 / sqrt(f32(sum f64(x*x) / n) + eps), as rocmforge_kernels::cpu::rms_norm.
extern "C" __global__ void rf_ggml_rms_norm(const float* x, const float* weight, float* out, rf_u32 n, float eps) {
    __shared__ double partial[1024];
    const float* xr = x + (rf_u64)blockIdx.x * n;
    float* yr = out + (rf_u64)blockIdx.x * n;
    double sum = 0.0;
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) sum += (double)rf_gc_mul(xr[i], xr[i]);
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (rf_u32 w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) partial[threadIdx.x] += partial[threadIdx.x + w];
        __syncthreads();
    }
    const float mean = (float)(partial[0] / (double)n);
    const float scale = 1.0f / sqrtf(rf_gc_add(mean, eps));
    for (rf_u32 i = threadIdx.x; i < n; i += blockDim.x) yr[i] = rf_gc_mul(rf_gc_mul(xr[i], scale), weight[i]);
}

// ---- flash attention as llama.cpp's CPU computes it ----------------------------------------
//
// q, out: [n_q, n_heads, head_dim] f32; caches [n_ctx, n_kv_heads, head_dim] (f32 values
// are rounded to f16 when read, as ggml casts an f32 cache); query t at positions[t]
// (device memory) sees cache positions 0 ..= positions[t]; query head h reads KV head
// h / group. One block of RF_GC_LANES threads per (head, query); lane l owns the output
// elements l, l + 32, ... (head_dim <= RF_GC_DMAX, a multiple of 32 is not required).
// Every lane computes the scalars of the online softmax itself, from the same values in
// the same order, so all agree without a broadcast.
//
// path (ggml_compute_forward_flash_attn_ext_f16): 0 = one query row at a time (fewer than
// 64 query tokens), 1 = tiled (64 or more), and the one-row path turns into the split
// path by itself for a single query with a padded cache of 512 or more positions when
// threads (llama.cpp's thread count) > 0.

#define RF_GC_LANES 32
#define RF_GC_DMAX 256
#define RF_GC_PER_LANE (RF_GC_DMAX / RF_GC_LANES)
#define RF_GC_TILE_KV 64
#define RF_NEG_INF_GC (-__int_as_float(0x7f800000))

struct rf_gc_kv_f32 {
    typedef float T;
    static RF_DEVICE float load(const float* p) { return rf_gc_f16(*p); }
};
struct rf_gc_kv_f16 {
    typedef rf_u16 T;
    static RF_DEVICE float load(const rf_u16* p) { return rf_half_to_float(*p); }
};

// ggml_vec_dot_f16 of the f16 query in shared memory (q16) with key row k: lane l holds
// accumulator (l / 8, l % 8), an FMA chain over elements l, l + 32, ...; the lanes meet
// in shared memory (acc) and every lane reduces them in GGML_F32x8_REDUCE's order, adds
// the remainder past the last multiple of 32 in f64, and rounds to f32.
template <typename KV>
RF_DEVICE float rf_gc_dot_f16(const float* q16, const typename KV::T* k, rf_u32 d, float* acc) {
    const rf_u32 lane = threadIdx.x;
    const rf_u32 np = d - d % 32;
    float a = 0.0f;
    for (rf_u32 i = lane; i < np; i += 32) a = fmaf(KV::load(k + i), q16[i], a);
    __syncthreads();  // the previous position's reads of acc are done
    acc[lane] = a;
    __syncthreads();
    float r[8];
#pragma unroll
    for (int l = 0; l < 8; ++l) r[l] = rf_gc_add(rf_gc_add(acc[l], acc[16 + l]), rf_gc_add(acc[8 + l], acc[24 + l]));
    const float t0 = rf_gc_add(r[0], r[4]), t1 = rf_gc_add(r[1], r[5]);
    const float t2 = rf_gc_add(r[2], r[6]), t3 = rf_gc_add(r[3], r[7]);
    double sumf = (double)rf_gc_add(rf_gc_add(t0, t1), rf_gc_add(t2, t3));
    for (rf_u32 i = np; i < d; ++i) sumf += (double)rf_gc_mul(KV::load(k + i), q16[i]);
    return (float)sumf;
}

// The one-row path over positions [start, end) (those after pos are skipped): returns M
// and S, leaves the f16 accumulator (widened) in vkq[] (this lane's elements).
template <typename KV>
RF_DEVICE void rf_gc_one_chunk(const float* q16, const typename KV::T* kh, const typename KV::T* vh, rf_u32 row, rf_u32 d, rf_u32 pos,
                               rf_u32 start, rf_u32 end, float scale, float* acc, float* m_out, float* s_out, float* vkq) {
    const rf_u32 lane = threadIdx.x;
    float m = RF_NEG_INF_GC;
    float s_sum = 0.0f;
#pragma unroll
    for (int j = 0; j < RF_GC_PER_LANE; ++j) vkq[j] = 0.0f;
    const rf_u32 last = end < pos + 1 ? end : pos + 1;
    for (rf_u32 ic = start; ic < last; ++ic) {
        const typename KV::T* k = kh + (rf_u64)ic * row;
        const typename KV::T* v = vh + (rf_u64)ic * row;
        const float s = rf_gc_add(rf_gc_mul(rf_gc_dot_f16<KV>(q16, k, d, acc), scale), 0.0f);
        const float mold = m;
        float ms = 1.0f;
        float vs = 1.0f;
        if (s > m) {
            m = s;
            ms = rf_gc_expf(rf_gc_sub(mold, m));
#pragma unroll
            for (int j = 0; j < RF_GC_PER_LANE; ++j) vkq[j] = rf_gc_f16(rf_gc_mul(vkq[j], ms));
        } else {
            vs = rf_gc_expf(rf_gc_sub(s, m));
        }
#pragma unroll
        for (int j = 0; j < RF_GC_PER_LANE; ++j) {
            const rf_u32 e = lane + RF_GC_LANES * j;
            if (e < d) vkq[j] = rf_gc_f16(fmaf(KV::load(v + e), vs, vkq[j]));
        }
        s_sum = fmaf(s_sum, ms, vs);
    }
    *m_out = m;
    *s_out = s_sum;
}

// The tiled path for one row: f32 query (shared memory qf) against f16 keys widened,
// tiles of 64 positions, ggml_v_expf weights, the softmax sum in f64 per tile, V
// accumulated in f32 with FMA chains (ggml_compat::flash_attn_tiled).
template <typename KV>
RF_DEVICE void rf_gc_tiled_row(const float* qf, const typename KV::T* kh, const typename KV::T* vh, rf_u32 row, rf_u32 d, rf_u32 pos,
                               rf_u32 n_kv_pad, float scale, float* kq, float* vkq) {
    const rf_u32 lane = threadIdx.x;
    float m = RF_NEG_INF_GC;
    float s_sum = 0.0f;
#pragma unroll
    for (int j = 0; j < RF_GC_PER_LANE; ++j) vkq[j] = 0.0f;
    for (rf_u32 ic = 0; ic < n_kv_pad && ic <= pos; ic += RF_GC_TILE_KV) {
        const rf_u32 kv_tile = n_kv_pad - ic < RF_GC_TILE_KV ? n_kv_pad - ic : RF_GC_TILE_KV;
        const rf_u32 visible = pos + 1 - ic < kv_tile ? pos + 1 - ic : kv_tile;
        __syncthreads();  // the previous tile's reads of kq are done
        for (rf_u32 jj = lane; jj < RF_GC_TILE_KV; jj += RF_GC_LANES) {
            float a = 0.0f;
            if (jj < visible) {
                const typename KV::T* k = kh + (rf_u64)(ic + jj) * row;
                for (rf_u32 e = 0; e < d; ++e) a = fmaf(KV::load(k + e), qf[e], a);
                a = rf_gc_add(rf_gc_mul(a, scale), 0.0f);
            } else {
                a = RF_NEG_INF_GC;
            }
            kq[jj] = a;
        }
        __syncthreads();
        float tile_max = RF_NEG_INF_GC;
        for (rf_u32 jj = 0; jj < RF_GC_TILE_KV; ++jj) tile_max = tile_max > kq[jj] ? tile_max : kq[jj];
        const float m_new = rf_gc_max(m, tile_max);
        if (m_new > m) {
            const float ms = rf_gc_expf(rf_gc_sub(m, m_new));
#pragma unroll
            for (int j = 0; j < RF_GC_PER_LANE; ++j) vkq[j] = rf_gc_mul(vkq[j], ms);
            s_sum = rf_gc_mul(s_sum, ms);
        }
        m = m_new;
        double sum = 0.0;
        float w[RF_GC_TILE_KV];
        for (rf_u32 g = 0; g < RF_GC_TILE_KV; g += 8) {
#pragma unroll
            for (int l = 0; l < 8; ++l) w[g + l] = rf_gc_v_expf(rf_gc_sub(kq[g + l], m_new));
            // hsum8: ((x0+x4) + (x2+x6)) + ((x1+x5) + (x3+x7))
            const float r0 = rf_gc_add(w[g + 4], w[g + 0]), r1 = rf_gc_add(w[g + 5], w[g + 1]);
            const float r2 = rf_gc_add(w[g + 6], w[g + 2]), r3 = rf_gc_add(w[g + 7], w[g + 3]);
            sum += (double)rf_gc_add(rf_gc_add(r0, r2), rf_gc_add(r1, r3));
        }
        s_sum = (float)((double)s_sum + sum);
#pragma unroll
        for (int j = 0; j < RF_GC_PER_LANE; ++j) {
            const rf_u32 e = lane + RF_GC_LANES * j;
            if (e >= d) continue;
            float a = vkq[j];
            for (rf_u32 jj = 0; jj < visible; ++jj) a = fmaf(KV::load(vh + (rf_u64)(ic + jj) * row + e), w[jj], a);
            vkq[j] = a;
        }
    }
    const float s_inv = s_sum == 0.0f ? 0.0f : 1.0f / s_sum;
#pragma unroll
    for (int j = 0; j < RF_GC_PER_LANE; ++j) vkq[j] = rf_gc_mul(vkq[j], s_inv);
}


template <typename KV>
RF_DEVICE void rf_gc_attn(const float* q, const typename KV::T* k_cache, const typename KV::T* v_cache, float* out,
                          const rf_i32* positions, rf_u32 n_q, rf_u32 n_ctx, rf_u32 n_heads, rf_u32 group,
                          rf_u32 n_kv_heads, rf_u32 head_dim, float scale, rf_u32 path, rf_u32 threads) {
    __shared__ float qs[RF_GC_DMAX];
    __shared__ float scratch[RF_GC_TILE_KV];
    const rf_u32 h = blockIdx.x;
    const rf_u32 t = blockIdx.y;
    const rf_u32 lane = threadIdx.x;
    const rf_u32 d = head_dim;
    const rf_i32 p = positions[t];
    if (p < 0 || (rf_u32)p >= n_ctx) return;  // the host checks positions; stay in memory
    const rf_u32 pos = (rf_u32)p;
    const rf_u32 row = n_kv_heads * d;
    const typename KV::T* kh = k_cache + (rf_u64)(h / group) * d;
    const typename KV::T* vh = v_cache + (rf_u64)(h / group) * d;
    const float* qr = q + ((rf_u64)t * n_heads + h) * d;
    float* orow = out + ((rf_u64)t * n_heads + h) * d;
    // The cache length ggml sees: n_kv = the last query's position + 1, padded to 256.
    const rf_i32 p_last = positions[n_q - 1];
    if (p_last < p || (rf_u32)p_last >= n_ctx) return;
    const rf_u32 n_kv = (rf_u32)p_last + 1;
    const rf_u32 n_kv_pad = n_kv < 256 ? 256 : (n_kv + 255) / 256 * 256;
    float vkq[RF_GC_PER_LANE];
    if (path == 1) {
        for (rf_u32 e = lane; e < d; e += RF_GC_LANES) qs[e] = qr[e];
        __syncthreads();
        rf_gc_tiled_row<KV>(qs, kh, vh, row, d, pos, n_kv_pad, scale, scratch, vkq);
    } else {
        for (rf_u32 e = lane; e < d; e += RF_GC_LANES) qs[e] = rf_gc_f16(qr[e]);
        __syncthreads();
        if (n_q == 1 && n_kv_pad >= 512 && threads > 0) {
            // Split: chunks of ceil(n_kv_pad / threads) positions, merged in order.
            const rf_u32 chunk = (n_kv_pad + threads - 1) / threads;
            float m_final = RF_NEG_INF_GC;
            float s_final = 0.0f;
            float o[RF_GC_PER_LANE];
#pragma unroll
            for (int j = 0; j < RF_GC_PER_LANE; ++j) o[j] = 0.0f;
            for (rf_u32 ith = 0; ith < threads; ++ith) {
                const rf_u32 start = ith * chunk;
                if (start >= n_kv_pad) continue;
                const rf_u32 end = start + chunk < n_kv_pad ? start + chunk : n_kv_pad;
                float pm, ps;
                rf_gc_one_chunk<KV>(qs, kh, vh, row, d, pos, start, end, scale, scratch, &pm, &ps, vkq);
                if (ps == 0.0f) continue;
                const float m_new = rf_gc_max(m_final, pm);
                const float scale_old = rf_gc_expf(rf_gc_sub(m_final, m_new));
                const float scale_new = rf_gc_expf(rf_gc_sub(pm, m_new));
#pragma unroll
                for (int j = 0; j < RF_GC_PER_LANE; ++j) o[j] = fmaf(o[j], scale_old, rf_gc_mul(vkq[j], scale_new));
                s_final = fmaf(s_final, scale_old, rf_gc_mul(ps, scale_new));
                m_final = m_new;
            }
            const float s_inv = s_final != 0.0f ? 1.0f / s_final : 1.0f;
#pragma unroll
            for (int j = 0; j < RF_GC_PER_LANE; ++j) vkq[j] = s_final != 0.0f ? rf_gc_mul(o[j], s_inv) : o[j];
        } else {
            float m, s;
            rf_gc_one_chunk<KV>(qs, kh, vh, row, d, pos, 0, n_kv_pad, scale, scratch, &m, &s, vkq);
            const float s_inv = s == 0.0f ? 0.0f : 1.0f / s;
#pragma unroll
            for (int j = 0; j < RF_GC_PER_LANE; ++j) vkq[j] = rf_gc_mul(vkq[j], s_inv);
        }
    }
#pragma unroll
    for (int j = 0; j < RF_GC_PER_LANE; ++j) {
        const rf_u32 e = lane + RF_GC_LANES * j;
        if (e < d) orow[e] = vkq[j];
    }
}

extern "C" __global__ __launch_bounds__(RF_GC_LANES) void rf_ggml_attn_f32(const float* q, const float* k_cache, const float* v_cache, float* out, const rf_i32* positions, rf_u32 n_q, rf_u32 n_ctx, rf_u32 n_heads, rf_u32 group, rf_u32 n_kv_heads, rf_u32 head_dim, float scale, rf_u32 path, rf_u32 threads) {
    rf_gc_attn<rf_gc_kv_f32>(q, k_cache, v_cache, out, positions, n_q, n_ctx, n_heads, group, n_kv_heads, head_dim, scale, path, threads);
}

extern "C" __global__ __launch_bounds__(RF_GC_LANES) void rf_ggml_attn_f16(const float* q, const rf_u16* k_cache, const rf_u16* v_cache, float* out, const rf_i32* positions, rf_u32 n_q, rf_u32 n_ctx, rf_u32 n_heads, rf_u32 group, rf_u32 n_kv_heads, rf_u32 head_dim, float scale, rf_u32 path, rf_u32 threads) {
    rf_gc_attn<rf_gc_kv_f16>(q, k_cache, v_cache, out, positions, n_q, n_ctx, n_heads, group, n_kv_heads, head_dim, scale, path, threads);
}
