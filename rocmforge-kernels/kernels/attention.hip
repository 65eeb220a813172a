// Attention: writing new K/V rows into the cache, causal grouped-query attention for
// decode (split over the sequence, then combined) and for prefill (query x key tiles
// with an online softmax in shared memory), and argmax for greedy decoding.
//
// Layouts (as src/cpu/attention.rs and src/cpu/kv_cache.rs):
//   q, out     [n_q, n_heads, head_dim]            f32
//   k, v cache [n_ctx, n_kv_heads, head_dim]       f32, f16 or bf16
// Query i sits at position pos0 + i and attends to cache positions 0 ..= pos0 + i.
// Query head h reads KV head h / group (group = n_heads / n_kv_heads).
//
// Every kernel here runs with blockDim.x == RF_ATTN_THREADS (a multiple of 64, hence of
// every wave size). head_dim is a multiple of 4 and at most 256 (checked by the
// launcher), so K/V rows are read 4 elements at a time: the cache pointers are aligned
// to 4 elements (checked by the launcher), and so is every row.

#define RF_ATTN_THREADS 128
#define RF_ATTN_DMAX 256
#define RF_NEG_INF (-__int_as_float(0x7f800000))

RF_DEVICE rf_u32 rf_attn_min(rf_u32 a, rf_u32 b) { return a < b ? a : b; }

RF_DEVICE rf_u32 rf_attn_shfl_xor_u32(rf_u32 v, int mask) {
#if RF_NVIDIA
    return __shfl_xor_sync(0xffffffffu, v, mask, WAVE_SIZE);
#else
    return (rf_u32)__shfl_xor((int)v, mask, WAVE_SIZE);
#endif
}

// ---- cache element types: 4 consecutive elements widened to f32 --------------------

struct alignas(16) rf_attn_f32x4 { float x, y, z, w; };
struct alignas(8) rf_attn_u32x2 { rf_u32 x, y; };

// load4 reads and widens 4 elements; raw4/widen4 split that in two, so that a run of
// loads can be issued before the first conversion waits for its data.
struct rf_kv_f32 {
    typedef float T;
    typedef rf_attn_f32x4 Raw;
    static RF_DEVICE Raw zero4() { Raw r; r.x = 0.0f; r.y = 0.0f; r.z = 0.0f; r.w = 0.0f; return r; }
    static RF_DEVICE Raw raw4(const float* p) { return *(const Raw*)p; }
    static RF_DEVICE void widen4(Raw v, float* o) { o[0] = v.x; o[1] = v.y; o[2] = v.z; o[3] = v.w; }
    static RF_DEVICE void load4(const float* p, float* o) { widen4(raw4(p), o); }
    static RF_DEVICE float store(float x) { return x; }
};

struct rf_kv_f16 {
    typedef rf_u16 T;
    typedef rf_attn_u32x2 Raw;
    static RF_DEVICE Raw zero4() { Raw r; r.x = 0u; r.y = 0u; return r; }
    static RF_DEVICE Raw raw4(const rf_u16* p) { return *(const Raw*)p; }
    static RF_DEVICE void load4(const rf_u16* p, float* o) { widen4(raw4(p), o); }
    static RF_DEVICE void widen4(Raw v, float* o) {
        o[0] = rf_half_to_float((rf_u16)(v.x & 0xffffu));
        o[1] = rf_half_to_float((rf_u16)(v.x >> 16));
        o[2] = rf_half_to_float((rf_u16)(v.y & 0xffffu));
        o[3] = rf_half_to_float((rf_u16)(v.y >> 16));
    }
    static RF_DEVICE rf_u16 store(float x) { return rf_float_to_half(x); }
};

struct rf_kv_bf16 {
    typedef rf_u16 T;
    typedef rf_attn_u32x2 Raw;
    static RF_DEVICE Raw zero4() { Raw r; r.x = 0u; r.y = 0u; return r; }
    static RF_DEVICE Raw raw4(const rf_u16* p) { return *(const Raw*)p; }
    static RF_DEVICE void load4(const rf_u16* p, float* o) { widen4(raw4(p), o); }
    static RF_DEVICE void widen4(Raw v, float* o) {
        o[0] = rf_bf16_to_float((rf_u16)(v.x & 0xffffu));
        o[1] = rf_bf16_to_float((rf_u16)(v.x >> 16));
        o[2] = rf_bf16_to_float((rf_u16)(v.y & 0xffffu));
        o[3] = rf_bf16_to_float((rf_u16)(v.y >> 16));
    }
    static RF_DEVICE rf_u16 store(float x) { return rf_float_to_bf16(x); }
};

// ---- KV-cache write ----------------------------------------------------------------
// dst[i] = convert(src[i]) for i < n (round to nearest even). The launcher passes the
// cache rows pos0 .. pos0 + n_new as dst, and n = n_new * n_kv_heads * head_dim.

template <class KV>
RF_DEVICE void rf_kv_write(const float* src, typename KV::T* dst, rf_u64 n) {
    const rf_u64 stride = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 i = rf_global_index(); i < n; i += stride) dst[i] = KV::store(src[i]);
}

extern "C" __global__ void rf_kv_write_f32(const float* src, float* dst, rf_u64 n) {
    rf_kv_write<rf_kv_f32>(src, dst, n);
}
extern "C" __global__ void rf_kv_write_f16(const float* src, rf_u16* dst, rf_u64 n) {
    rf_kv_write<rf_kv_f16>(src, dst, n);
}
extern "C" __global__ void rf_kv_write_bf16(const float* src, rf_u16* dst, rf_u64 n) {
    rf_kv_write<rf_kv_bf16>(src, dst, n);
}

// ---- decode: split over the sequence ------------------------------------------------
// Grid (n_heads, n_splits, n_q); block RF_ATTN_THREADS. Block (h, s, i) covers cache
// positions [s * chunk, min((s + 1) * chunk, pos0 + i + 1)) of query i, head h (empty
// ranges return at once; the combine kernel skips them). It walks its range in tiles of
// RF_ATTN_THREADS keys:
//   1. scores: groups of `lpk` lanes (a power of two <= WAVE_SIZE) share a key, each lane
//      a few 4-dimension slices of the row (so a group reads whole rows, coalesced), and
//      sum with shuffles; RF_DEC_UNROLL keys per group are loaded before any is used;
//   2. thread t turns score t into p_t = exp(s_t - m_new) against the tile's new running
//      maximum and rescales its state by exp(m_old - m_new);
//   3. values: `key lanes` x `4-dimension slices` add p_j * v_j to their accumulators,
//      RF_DEC_UNROLL rows loaded at a time.
// With one split (gridDim.y == 1) the block writes the normalized output to `out`;
// otherwise it writes its unnormalized sum to part[((i*n_heads + h)*n_splits + s)*head_dim
// + d] and (max, sum of weights) to ml[2*((i*n_heads + h)*n_splits + s) + {0,1}], where
// ml = part + n_q*n_heads*n_splits*head_dim.

#define RF_DEC_UNROLL 8

template <class KV>
RF_DEVICE void rf_attn_decode(const float* q, const typename KV::T* k, const typename KV::T* v, float* out,
                              float* part, rf_u32 n_q, rf_u32 pos0, rf_u32 n_heads, rf_u32 group,
                              rf_u32 n_kv_heads, rf_u32 head_dim, rf_u32 chunk, float scale) {
    typedef typename KV::T T;
    const int tid = threadIdx.x;
    __shared__ float q_s[RF_ATTN_DMAX];
    __shared__ float p_s[RF_ATTN_THREADS];  // scores, then weights, of the current tile
    __shared__ float red_s[RF_ATTN_THREADS / WAVE_SIZE];
    __shared__ float o_s[RF_ATTN_THREADS * 4];

    const rf_u32 h = blockIdx.x;
    const rf_u32 split = blockIdx.y;
    const rf_u32 i = blockIdx.z;
    const rf_u32 n_splits = gridDim.y;
    const rf_u32 n_kv = pos0 + i + 1;
    const rf_u32 start = split * chunk;
    if (start >= n_kv) return;  // the same for the whole block
    const rf_u32 end = rf_attn_min(start + chunk, n_kv);

    const rf_u64 row = (rf_u64)n_kv_heads * head_dim;
    const T* kh = k + (rf_u64)(h / group) * head_dim;
    const T* vh = v + (rf_u64)(h / group) * head_dim;
    const rf_u64 qo = ((rf_u64)i * n_heads + h) * head_dim;
    for (rf_u32 d = tid; d < head_dim; d += RF_ATTN_THREADS) q_s[d] = q[qo + d];
    __syncthreads();

    const rf_u32 n_dv = head_dim / 4;  // 4-dimension slices, 1 ..= 64

    // Score layout: lpk lanes per key (largest power of two <= min(n_dv, WAVE_SIZE), so
    // 2 * lpk >= n_dv for head_dim <= 256), kpp keys per pass. Lane `sub` of a group owns
    // slices sub and sub + lpk; q of those slices stays in registers.
    rf_u32 lpk = 1;
    while (lpk * 2 <= n_dv && lpk * 2 <= WAVE_SIZE) lpk *= 2;
    const rf_u32 kpp = RF_ATTN_THREADS / lpk;
    const rf_u32 sub = tid % lpk;
    const rf_u32 kg = tid / lpk;
    const bool has_dv1 = sub + lpk < n_dv;
    float qa[4], qb[4];
#pragma unroll
    for (int c = 0; c < 4; ++c) {
        qa[c] = q_s[4 * sub + c];
        qb[c] = has_dv1 ? q_s[4 * (sub + lpk) + c] : 0.0f;
    }

    // Value layout: n_dv slices x n_kl key lanes.
    const rf_u32 n_kl = RF_ATTN_THREADS / n_dv;
    const rf_u32 dv = tid % n_dv;
    const rf_u32 kl = tid / n_dv;
    const bool v_active = kl < n_kl;

    float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
    float m_run = RF_NEG_INF;
    float l_part = 0.0f;  // this thread's share of the sum of weights, at m_run

    for (rf_u32 t0 = start; t0 < end; t0 += RF_ATTN_THREADS) {
        const rf_u32 n = rf_attn_min(RF_ATTN_THREADS, end - t0);
        const T* kt = kh + (rf_u64)t0 * row;

        // 1. Scores of keys j = j0 + u * kpp + kg.
        for (rf_u32 j0 = 0; j0 < n; j0 += kpp * RF_DEC_UNROLL) {
            typename KV::Raw xr[RF_DEC_UNROLL], yr[RF_DEC_UNROLL];
#pragma unroll
            for (int u = 0; u < RF_DEC_UNROLL; ++u) {
                const rf_u32 j = j0 + u * kpp + kg;
                const T* kr = kt + (rf_u64)j * row;
                xr[u] = j < n ? KV::raw4(kr + 4 * sub) : KV::zero4();
                yr[u] = j < n && has_dv1 ? KV::raw4(kr + 4 * (sub + lpk)) : KV::zero4();
            }
            float dot[RF_DEC_UNROLL];
#pragma unroll
            for (int u = 0; u < RF_DEC_UNROLL; ++u) {
                const rf_u32 j = j0 + u * kpp + kg;
                float x[4], y[4];
                KV::widen4(xr[u], x);
                KV::widen4(yr[u], y);
                float a = (qa[0] * x[0] + qa[1] * x[1]) + (qa[2] * x[2] + qa[3] * x[3]);
                a += (qb[0] * y[0] + qb[1] * y[1]) + (qb[2] * y[2] + qb[3] * y[3]);
                // Slices beyond 2 * lpk (none for head_dim <= 256; kept for safety).
                if (j < n) {
                    const T* kr = kt + (rf_u64)j * row;
                    for (rf_u32 e = sub + 2 * lpk; e < n_dv; e += lpk) {
                        float z[4];
                        KV::load4(kr + 4 * e, z);
                        a += (q_s[4 * e] * z[0] + q_s[4 * e + 1] * z[1]) +
                             (q_s[4 * e + 2] * z[2] + q_s[4 * e + 3] * z[3]);
                    }
                }
                dot[u] = a;
            }
#pragma unroll
            for (int u = 0; u < RF_DEC_UNROLL; ++u) {
                for (rf_u32 off = lpk / 2; off > 0; off >>= 1) dot[u] += rf_shfl_xor(dot[u], (int)off);
                const rf_u32 j = j0 + u * kpp + kg;
                if (sub == 0 && j < n) p_s[j] = scale * dot[u];
            }
        }
        __syncthreads();

        // 2. Running maximum and weights.
        const float s = (rf_u32)tid < n ? p_s[tid] : RF_NEG_INF;
        const float m_new = fmaxf(m_run, rf_block_max(s, red_s));
        const float corr = m_run == RF_NEG_INF ? 0.0f : expf(m_run - m_new);
        const float p = s == RF_NEG_INF ? 0.0f : expf(s - m_new);
        p_s[tid] = p;
        l_part = l_part * corr + p;
        acc0 *= corr; acc1 *= corr; acc2 *= corr; acc3 *= corr;
        m_run = m_new;
        __syncthreads();

        // 3. Weighted values of keys j = j0 + u * n_kl (j0 = kl first).
        if (v_active) {
            const T* vt = vh + (rf_u64)t0 * row + 4 * dv;
            for (rf_u32 j0 = kl; j0 < n; j0 += n_kl * RF_DEC_UNROLL) {
                typename KV::Raw xr[RF_DEC_UNROLL];
#pragma unroll
                for (int u = 0; u < RF_DEC_UNROLL; ++u) {
                    const rf_u32 j = j0 + u * n_kl;
                    xr[u] = j < n ? KV::raw4(vt + (rf_u64)j * row) : KV::zero4();
                }
#pragma unroll
                for (int u = 0; u < RF_DEC_UNROLL; ++u) {
                    const rf_u32 j = j0 + u * n_kl;
                    const float pj = j < n ? p_s[j] : 0.0f;
                    float x[4];
                    KV::widen4(xr[u], x);
                    acc0 += pj * x[0];
                    acc1 += pj * x[1];
                    acc2 += pj * x[2];
                    acc3 += pj * x[3];
                }
            }
        }
        __syncthreads();  // p_s is rewritten by the next tile
    }

    const float l = rf_block_sum(l_part, red_s);
    if (v_active) {
        float* o = o_s + kl * head_dim + 4 * dv;  // < n_kl * head_dim <= 4 * RF_ATTN_THREADS
        o[0] = acc0; o[1] = acc1; o[2] = acc2; o[3] = acc3;
    }
    __syncthreads();
    const rf_u64 slot = ((rf_u64)i * n_heads + h) * n_splits + split;
    for (rf_u32 d = tid; d < head_dim; d += RF_ATTN_THREADS) {
        float o = 0.0f;
        for (rf_u32 r = 0; r < n_kl; ++r) o += o_s[r * head_dim + d];
        if (n_splits == 1) {
            out[qo + d] = o / l;
        } else {
            part[slot * head_dim + d] = o;
        }
    }
    if (n_splits > 1 && tid == 0) {
        float* ml = part + (rf_u64)n_q * n_heads * n_splits * head_dim;
        ml[2 * slot] = m_run;
        ml[2 * slot + 1] = l;
    }
}

extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_decode_f32(const float* q, const float* k, const float* v, float* out, float* part, rf_u32 n_q,
                        rf_u32 pos0, rf_u32 n_heads, rf_u32 group, rf_u32 n_kv_heads, rf_u32 head_dim,
                        rf_u32 chunk, float scale) {
    rf_attn_decode<rf_kv_f32>(q, k, v, out, part, n_q, pos0, n_heads, group, n_kv_heads, head_dim, chunk, scale);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_decode_f16(const float* q, const rf_u16* k, const rf_u16* v, float* out, float* part, rf_u32 n_q,
                        rf_u32 pos0, rf_u32 n_heads, rf_u32 group, rf_u32 n_kv_heads, rf_u32 head_dim,
                        rf_u32 chunk, float scale) {
    rf_attn_decode<rf_kv_f16>(q, k, v, out, part, n_q, pos0, n_heads, group, n_kv_heads, head_dim, chunk, scale);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_decode_bf16(const float* q, const rf_u16* k, const rf_u16* v, float* out, float* part, rf_u32 n_q,
                         rf_u32 pos0, rf_u32 n_heads, rf_u32 group, rf_u32 n_kv_heads, rf_u32 head_dim,
                         rf_u32 chunk, float scale) {
    rf_attn_decode<rf_kv_bf16>(q, k, v, out, part, n_q, pos0, n_heads, group, n_kv_heads, head_dim, chunk, scale);
}

// Combines the splits of rf_attn_decode: grid (n_heads, n_q), block RF_ATTN_THREADS.
// Query i has ceil((pos0 + i + 1) / chunk) non-empty splits s, each with (m_s, l_s, o_s):
//   M = max m_s,  out = sum_s exp(m_s - M) o_s / sum_s exp(m_s - M) l_s.
RF_DEVICE void rf_attn_combine_body(const float* part, float* out, rf_u32 n_q, rf_u32 pos0, rf_u32 n_heads,
                                    rf_u32 head_dim, rf_u32 n_splits, rf_u32 chunk) {
    __shared__ float red_s[RF_ATTN_THREADS / WAVE_SIZE];
    __shared__ float w_s[RF_ATTN_THREADS];
    const int tid = threadIdx.x;
    const rf_u32 h = blockIdx.x;
    const rf_u32 i = blockIdx.y;
    const rf_u32 n_kv = pos0 + i + 1;
    const rf_u32 ns = rf_attn_min(n_splits, (n_kv - 1) / chunk + 1);
    const rf_u64 base = ((rf_u64)i * n_heads + h) * n_splits;
    const float* ml = part + (rf_u64)n_q * n_heads * n_splits * head_dim;

    float m = RF_NEG_INF;
    for (rf_u32 s = tid; s < ns; s += RF_ATTN_THREADS) m = fmaxf(m, ml[2 * (base + s)]);
    m = rf_block_max(m, red_s);
    float l = 0.0f;
    for (rf_u32 s = tid; s < ns; s += RF_ATTN_THREADS) {
        const float ms = ml[2 * (base + s)];
        if (ms != RF_NEG_INF) l += ml[2 * (base + s) + 1] * expf(ms - m);
    }
    l = rf_block_sum(l, red_s);

    float acc[RF_ATTN_DMAX / RF_ATTN_THREADS];
#pragma unroll
    for (int c = 0; c < RF_ATTN_DMAX / RF_ATTN_THREADS; ++c) acc[c] = 0.0f;
    for (rf_u32 s0 = 0; s0 < ns; s0 += RF_ATTN_THREADS) {
        __syncthreads();
        if (s0 + tid < ns) {
            const float ms = ml[2 * (base + s0 + tid)];
            w_s[tid] = ms == RF_NEG_INF ? 0.0f : expf(ms - m);
        }
        __syncthreads();
        const rf_u32 cnt = rf_attn_min(RF_ATTN_THREADS, ns - s0);
        for (rf_u32 s = 0; s < cnt; ++s) {
            const float w = w_s[s];
            const float* o = part + (base + s0 + s) * head_dim;
#pragma unroll
            for (int c = 0; c < RF_ATTN_DMAX / RF_ATTN_THREADS; ++c) {
                const rf_u32 d = tid + c * RF_ATTN_THREADS;
                if (d < head_dim) acc[c] += w * o[d];
            }
        }
    }
    const rf_u64 oo = ((rf_u64)i * n_heads + h) * head_dim;
#pragma unroll
    for (int c = 0; c < RF_ATTN_DMAX / RF_ATTN_THREADS; ++c) {
        const rf_u32 d = tid + c * RF_ATTN_THREADS;
        if (d < head_dim) out[oo + d] = acc[c] / l;
    }
}

extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_combine(const float* part, float* out, rf_u32 n_q, rf_u32 pos0, rf_u32 n_heads, rf_u32 head_dim,
                     rf_u32 n_splits, rf_u32 chunk) {
    rf_attn_combine_body(part, out, n_q, pos0, n_heads, head_dim, n_splits, chunk);
}

// ---- decode with the position on the device -----------------------------------------
// The same KV write, decode and combine with the position of the first new row / query
// read from pos[0] instead of passed by value, so that one recorded launch (a graph)
// serves every decode step. The launcher plans the splits for the cache's capacity n_ctx;
// splits past the current length return at once. A position that does not fit the
// cache (pos < 0 or pos + n > n_ctx) writes and reads nothing: the host checks it before
// every step, this keeps a wrong value from touching memory outside the cache.

RF_DEVICE bool rf_pos_fits(rf_i32 p, rf_u32 n, rf_u32 n_ctx) {
    return p >= 0 && (rf_u64)p + n <= n_ctx;
}

extern "C" __global__ void rf_kv_write_at_f32(const float* src, float* cache, const rf_i32* pos, rf_u64 row,
                                           rf_u32 n_new, rf_u32 n_ctx) {
    const rf_i32 p = pos[0];
    if (!rf_pos_fits(p, n_new, n_ctx)) return;
    rf_kv_write<rf_kv_f32>(src, cache + (rf_u64)p * row, (rf_u64)n_new * row);
}
extern "C" __global__ void rf_kv_write_at_f16(const float* src, rf_u16* cache, const rf_i32* pos, rf_u64 row,
                                           rf_u32 n_new, rf_u32 n_ctx) {
    const rf_i32 p = pos[0];
    if (!rf_pos_fits(p, n_new, n_ctx)) return;
    rf_kv_write<rf_kv_f16>(src, cache + (rf_u64)p * row, (rf_u64)n_new * row);
}
extern "C" __global__ void rf_kv_write_at_bf16(const float* src, rf_u16* cache, const rf_i32* pos, rf_u64 row,
                                           rf_u32 n_new, rf_u32 n_ctx) {
    const rf_i32 p = pos[0];
    if (!rf_pos_fits(p, n_new, n_ctx)) return;
    rf_kv_write<rf_kv_bf16>(src, cache + (rf_u64)p * row, (rf_u64)n_new * row);
}

extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_decode_at_f32(const float* q, const float* k, const float* v, float* out, float* part, rf_u32 n_q,
                          const rf_i32* pos, rf_u32 n_ctx, rf_u32 n_heads, rf_u32 group, rf_u32 n_kv_heads,
                          rf_u32 head_dim, rf_u32 chunk, float scale) {
    const rf_i32 p = pos[0];
    if (!rf_pos_fits(p, n_q, n_ctx)) return;
    rf_attn_decode<rf_kv_f32>(q, k, v, out, part, n_q, (rf_u32)p, n_heads, group, n_kv_heads, head_dim, chunk, scale);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_decode_at_f16(const float* q, const rf_u16* k, const rf_u16* v, float* out, float* part, rf_u32 n_q,
                          const rf_i32* pos, rf_u32 n_ctx, rf_u32 n_heads, rf_u32 group, rf_u32 n_kv_heads,
                          rf_u32 head_dim, rf_u32 chunk, float scale) {
    const rf_i32 p = pos[0];
    if (!rf_pos_fits(p, n_q, n_ctx)) return;
    rf_attn_decode<rf_kv_f16>(q, k, v, out, part, n_q, (rf_u32)p, n_heads, group, n_kv_heads, head_dim, chunk, scale);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_decode_at_bf16(const float* q, const rf_u16* k, const rf_u16* v, float* out, float* part, rf_u32 n_q,
                          const rf_i32* pos, rf_u32 n_ctx, rf_u32 n_heads, rf_u32 group, rf_u32 n_kv_heads,
                          rf_u32 head_dim, rf_u32 chunk, float scale) {
    const rf_i32 p = pos[0];
    if (!rf_pos_fits(p, n_q, n_ctx)) return;
    rf_attn_decode<rf_kv_bf16>(q, k, v, out, part, n_q, (rf_u32)p, n_heads, group, n_kv_heads, head_dim, chunk, scale);
}

extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_combine_at(const float* part, float* out, rf_u32 n_q, const rf_i32* pos, rf_u32 n_ctx,
                        rf_u32 n_heads, rf_u32 head_dim, rf_u32 n_splits, rf_u32 chunk) {
    const rf_i32 p = pos[0];
    if (!rf_pos_fits(p, n_q, n_ctx)) return;
    rf_attn_combine_body(part, out, n_q, (rf_u32)p, n_heads, head_dim, n_splits, chunk);
}

// ---- prefill: tiles of queries x keys, online softmax ------------------------------
// Grid (ceil(n_q / BQ), n_heads); block RF_ATTN_THREADS. Block x takes query tile
// n_tiles - 1 - x (the longest rows first). Per key tile of BK keys:
//   1. K tile -> shared (f32); S = scale * Q K^T, each thread an S_TM x S_TN micro-tile;
//      keys after a row's position (causal) or past the visible range become -inf.
//   2. TPR = threads / BQ threads per row take the tile's row maximum, turn S into
//      P = exp(S - m_new) and update the row's running max and sum; the rescale factor
//      exp(m_old - m_new) goes to shared memory. Meanwhile the V tile replaces K.
//   3. O = O * rescale + P V, each thread an O_TM x O_TN micro-tile of [BQ, DMAX].
// The kernels for DMAX handle any head_dim <= DMAX that is a multiple of 4 (zero padded).
// Shared memory (floats): BQ*(DMAX+1) + BK*(DMAX+1) + BQ*(BK+1) + 2*BQ; at most 37.3 KiB.

template <int DMAX> struct rf_prefill_cfg;
template <> struct rf_prefill_cfg<64> { enum { BQ = 64, BK = 32, S_TM = 4, S_TN = 4, O_TM = 8, O_TN = 4 }; };
template <> struct rf_prefill_cfg<128> { enum { BQ = 32, BK = 32, S_TM = 2, S_TN = 4, O_TM = 4, O_TN = 8 }; };
template <> struct rf_prefill_cfg<256> { enum { BQ = 16, BK = 16, S_TM = 1, S_TN = 2, O_TM = 2, O_TN = 16 }; };

// Rows [0, NROWS) of a K or V tile into dst (row stride DMAX + 1), rows >= valid and
// dimensions >= head_dim as zeros. `src` points at (position row0, this KV head, dim 0).
template <class KV, int DMAX, int NROWS>
RF_DEVICE void rf_attn_load_tile(float* dst, const typename KV::T* src, rf_u64 row_stride, rf_u32 valid,
                                 rf_u32 head_dim) {
    const int ITERS = NROWS * (DMAX / 4) / RF_ATTN_THREADS;
    static_assert(ITERS * RF_ATTN_THREADS == NROWS * (DMAX / 4), "tile loads: whole iterations");
    // All loads first, then the conversions: the loads are in flight together.
    typename KV::Raw raw[ITERS];
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
        const int e = threadIdx.x + it * RF_ATTN_THREADS;
        const int r = e / (DMAX / 4);
        const int d = (e % (DMAX / 4)) * 4;
        raw[it] = (rf_u32)r < valid && (rf_u32)d < head_dim ? KV::raw4(src + (rf_u64)r * row_stride + d)
                                                            : KV::zero4();
    }
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
        const int e = threadIdx.x + it * RF_ATTN_THREADS;
        const int r = e / (DMAX / 4);
        const int d = (e % (DMAX / 4)) * 4;
        float x[4];
        KV::widen4(raw[it], x);
        float* o = dst + r * (DMAX + 1) + d;
        o[0] = x[0]; o[1] = x[1]; o[2] = x[2]; o[3] = x[3];
    }
}

template <class KV, int DMAX>
RF_DEVICE void rf_attn_prefill(const float* q, const typename KV::T* k, const typename KV::T* v, float* out,
                               rf_u32 n_q, rf_u32 pos0, rf_u32 n_heads, rf_u32 group, rf_u32 n_kv_heads,
                               rf_u32 head_dim, float scale) {
    typedef typename KV::T T;
    typedef rf_prefill_cfg<DMAX> C;
    const int BQ = C::BQ, BK = C::BK;
    const int S_TM = C::S_TM, S_TN = C::S_TN, O_TM = C::O_TM, O_TN = C::O_TN;
    const int QS = DMAX + 1, KS = DMAX + 1, PS = BK + 1;
    const int TPR = RF_ATTN_THREADS / BQ;
    static_assert((BQ / S_TM) * (BK / S_TN) == RF_ATTN_THREADS, "S micro-tiles must cover the tile");
    static_assert((BQ / O_TM) * (DMAX / O_TN) == RF_ATTN_THREADS, "O micro-tiles must cover the tile");
    static_assert(RF_ATTN_THREADS % BQ == 0 && TPR <= WAVE_SIZE, "row statistics: threads per row within a wave");

    __shared__ float q_s[BQ * QS];
    __shared__ float kv_s[BK * KS];
    __shared__ float p_s[BQ * PS];
    __shared__ float corr_s[BQ];
    __shared__ float l_s[BQ];

    const int tid = threadIdx.x;
    const rf_u32 n_tiles = (n_q + BQ - 1) / BQ;
    const rf_u32 q0 = (n_tiles - 1 - blockIdx.x) * BQ;
    const rf_u32 h = blockIdx.y;
    const rf_u32 rows = rf_attn_min(BQ, n_q - q0);
    const rf_u32 n_keys = pos0 + q0 + rows;  // keys any row of this tile can see
    const rf_u64 row_stride = (rf_u64)n_kv_heads * head_dim;
    const T* kh = k + (rf_u64)(h / group) * head_dim;
    const T* vh = v + (rf_u64)(h / group) * head_dim;

    for (int e = tid; e < BQ * DMAX; e += RF_ATTN_THREADS) {
        const int r = e / DMAX;
        const int d = e % DMAX;
        float x = 0.0f;
        if ((rf_u32)r < rows && (rf_u32)d < head_dim) x = q[((rf_u64)(q0 + r) * n_heads + h) * head_dim + d];
        q_s[r * QS + d] = x;
    }

    // Thread roles.
    const int s_col = tid % (BK / S_TN), s_row = tid / (BK / S_TN);
    const int st_row = tid / TPR, st_lane = tid % TPR;
    const int o_dim = tid % (DMAX / O_TN), o_row = tid / (DMAX / O_TN);

    float m_row = RF_NEG_INF;  // running max and sum of row st_row (same in its TPR threads)
    float l_row = 0.0f;
    float acc[O_TM][O_TN];
#pragma unroll
    for (int a = 0; a < O_TM; ++a)
#pragma unroll
        for (int b = 0; b < O_TN; ++b) acc[a][b] = 0.0f;

    for (rf_u32 kt0 = 0; kt0 < n_keys; kt0 += BK) {
        const rf_u32 valid = rf_attn_min(BK, n_keys - kt0);
        __syncthreads();  // the previous tile's P V is done with kv_s and p_s
        rf_attn_load_tile<KV, DMAX, BK>(kv_s, kh + (rf_u64)kt0 * row_stride, row_stride, valid, head_dim);
        __syncthreads();

        // 1. S = scale * Q K^T, masked.
        float s[S_TM][S_TN];
#pragma unroll
        for (int a = 0; a < S_TM; ++a)
#pragma unroll
            for (int b = 0; b < S_TN; ++b) s[a][b] = 0.0f;
        for (rf_u32 d0 = 0; d0 < head_dim; d0 += 4) {
#pragma unroll
            for (int dd = 0; dd < 4; ++dd) {
                const rf_u32 d = d0 + dd;
                float qa[S_TM], kb[S_TN];
#pragma unroll
                for (int a = 0; a < S_TM; ++a) qa[a] = q_s[(s_row + a * (BQ / S_TM)) * QS + d];
#pragma unroll
                for (int b = 0; b < S_TN; ++b) kb[b] = kv_s[(s_col + b * (BK / S_TN)) * KS + d];
#pragma unroll
                for (int a = 0; a < S_TM; ++a)
#pragma unroll
                    for (int b = 0; b < S_TN; ++b) s[a][b] += qa[a] * kb[b];
            }
        }
#pragma unroll
        for (int a = 0; a < S_TM; ++a) {
            const int r = s_row + a * (BQ / S_TM);
            const rf_u32 qpos = pos0 + q0 + r;
#pragma unroll
            for (int b = 0; b < S_TN; ++b) {
                const int c = s_col + b * (BK / S_TN);
                const rf_u32 key = kt0 + c;
                p_s[r * PS + c] = (key <= qpos && key < n_keys) ? scale * s[a][b] : RF_NEG_INF;
            }
        }
        __syncthreads();

        // 2. Row statistics and P (the V tile loads at the same time).
        float mx = RF_NEG_INF;
        for (int c = st_lane; c < BK; c += TPR) mx = fmaxf(mx, p_s[st_row * PS + c]);
#pragma unroll
        for (int off = TPR / 2; off > 0; off >>= 1) mx = fmaxf(mx, rf_shfl_xor(mx, off));
        const float m_new = fmaxf(m_row, mx);
        const float corr = m_row == RF_NEG_INF ? 0.0f : expf(m_row - m_new);
        float sum = 0.0f;
        for (int c = st_lane; c < BK; c += TPR) {
            const float x = p_s[st_row * PS + c];
            const float p = x == RF_NEG_INF ? 0.0f : expf(x - m_new);
            p_s[st_row * PS + c] = p;
            sum += p;
        }
#pragma unroll
        for (int off = TPR / 2; off > 0; off >>= 1) sum += rf_shfl_xor(sum, off);
        l_row = l_row * corr + sum;
        m_row = m_new;
        if (st_lane == 0) corr_s[st_row] = corr;
        rf_attn_load_tile<KV, DMAX, BK>(kv_s, vh + (rf_u64)kt0 * row_stride, row_stride, valid, head_dim);
        __syncthreads();

        // 3. O = O * corr + P V.
#pragma unroll
        for (int a = 0; a < O_TM; ++a) {
            const float c = corr_s[o_row + a * (BQ / O_TM)];
#pragma unroll
            for (int b = 0; b < O_TN; ++b) acc[a][b] *= c;
        }
        for (rf_u32 j = 0; j < valid; ++j) {
            float pa[O_TM], vb[O_TN];
#pragma unroll
            for (int a = 0; a < O_TM; ++a) pa[a] = p_s[(o_row + a * (BQ / O_TM)) * PS + j];
#pragma unroll
            for (int b = 0; b < O_TN; ++b) vb[b] = kv_s[j * KS + o_dim + b * (DMAX / O_TN)];
#pragma unroll
            for (int a = 0; a < O_TM; ++a)
#pragma unroll
                for (int b = 0; b < O_TN; ++b) acc[a][b] += pa[a] * vb[b];
        }
    }

    if (st_lane == 0) l_s[st_row] = l_row;
    __syncthreads();
#pragma unroll
    for (int a = 0; a < O_TM; ++a) {
        const int r = o_row + a * (BQ / O_TM);
        if ((rf_u32)r >= rows) continue;
        const float inv = 1.0f / l_s[r];
        float* o = out + ((rf_u64)(q0 + r) * n_heads + h) * head_dim;
#pragma unroll
        for (int b = 0; b < O_TN; ++b) {
            const rf_u32 d = o_dim + b * (DMAX / O_TN);
            if (d < head_dim) o[d] = acc[a][b] * inv;
        }
    }
}

#define RF_ATTN_PREFILL_ARGS                                                                          \
    rf_u32 n_q, rf_u32 pos0, rf_u32 n_heads, rf_u32 group, rf_u32 n_kv_heads, rf_u32 head_dim, float scale
#define RF_ATTN_PREFILL_PASS n_q, pos0, n_heads, group, n_kv_heads, head_dim, scale

extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_prefill_d64_f32(const float* q, const float* k, const float* v, float* out, RF_ATTN_PREFILL_ARGS) {
    rf_attn_prefill<rf_kv_f32, 64>(q, k, v, out, RF_ATTN_PREFILL_PASS);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_prefill_d64_f16(const float* q, const rf_u16* k, const rf_u16* v, float* out, RF_ATTN_PREFILL_ARGS) {
    rf_attn_prefill<rf_kv_f16, 64>(q, k, v, out, RF_ATTN_PREFILL_PASS);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_prefill_d64_bf16(const float* q, const rf_u16* k, const rf_u16* v, float* out, RF_ATTN_PREFILL_ARGS) {
    rf_attn_prefill<rf_kv_bf16, 64>(q, k, v, out, RF_ATTN_PREFILL_PASS);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_prefill_d128_f32(const float* q, const float* k, const float* v, float* out, RF_ATTN_PREFILL_ARGS) {
    rf_attn_prefill<rf_kv_f32, 128>(q, k, v, out, RF_ATTN_PREFILL_PASS);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_prefill_d128_f16(const float* q, const rf_u16* k, const rf_u16* v, float* out, RF_ATTN_PREFILL_ARGS) {
    rf_attn_prefill<rf_kv_f16, 128>(q, k, v, out, RF_ATTN_PREFILL_PASS);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_prefill_d128_bf16(const float* q, const rf_u16* k, const rf_u16* v, float* out, RF_ATTN_PREFILL_ARGS) {
    rf_attn_prefill<rf_kv_bf16, 128>(q, k, v, out, RF_ATTN_PREFILL_PASS);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_prefill_d256_f32(const float* q, const float* k, const float* v, float* out, RF_ATTN_PREFILL_ARGS) {
    rf_attn_prefill<rf_kv_f32, 256>(q, k, v, out, RF_ATTN_PREFILL_PASS);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_prefill_d256_f16(const float* q, const rf_u16* k, const rf_u16* v, float* out, RF_ATTN_PREFILL_ARGS) {
    rf_attn_prefill<rf_kv_f16, 256>(q, k, v, out, RF_ATTN_PREFILL_PASS);
}
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_attn_prefill_d256_bf16(const float* q, const rf_u16* k, const rf_u16* v, float* out, RF_ATTN_PREFILL_ARGS) {
    rf_attn_prefill<rf_kv_bf16, 256>(q, k, v, out, RF_ATTN_PREFILL_PASS);
}

// ---- argmax ------------------------------------------------------------------------
// The first index of the largest non-NaN value (as cpu::argmax). Candidates are
// (value, index) pairs; "better" is a larger value, or an equal value at a lower index.
// The empty candidate is (-inf, 0xffffffff): any real element beats it, -inf included.
// All-NaN input yields 0xffffffff.

RF_DEVICE bool rf_argmax_better(float v, rf_u32 i, float bv, rf_u32 bi) {
    return v > bv || (v == bv && i < bi);
}

RF_DEVICE void rf_argmax_block(float& v, rf_u32& i, float* v_s, rf_u32* i_s) {
    const int lane = threadIdx.x % WAVE_SIZE;
    const int wave = threadIdx.x / WAVE_SIZE;
    const int waves = blockDim.x / WAVE_SIZE;
#pragma unroll
    for (int off = WAVE_SIZE / 2; off > 0; off >>= 1) {
        const float ov = rf_shfl_xor(v, off);
        const rf_u32 oi = rf_attn_shfl_xor_u32(i, off);
        if (rf_argmax_better(ov, oi, v, i)) { v = ov; i = oi; }
    }
    __syncthreads();
    if (lane == 0) { v_s[wave] = v; i_s[wave] = i; }
    __syncthreads();
    v = lane < waves ? v_s[lane] : RF_NEG_INF;
    i = lane < waves ? i_s[lane] : 0xffffffffu;
#pragma unroll
    for (int off = WAVE_SIZE / 2; off > 0; off >>= 1) {
        const float ov = rf_shfl_xor(v, off);
        const rf_u32 oi = rf_attn_shfl_xor_u32(i, off);
        if (rf_argmax_better(ov, oi, v, i)) { v = ov; i = oi; }
    }
}

// Grid G blocks of RF_ATTN_THREADS over x[0, n): block b's best candidate goes to
// part[b] (value bits) and part[G + b] (index); with one block, its index goes to out[0].
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_argmax_partial_f32(const float* x, rf_u32* part, rf_u32* out, rf_u32 n) {
    __shared__ float v_s[RF_ATTN_THREADS / WAVE_SIZE];
    __shared__ rf_u32 i_s[RF_ATTN_THREADS / WAVE_SIZE];
    float bv = RF_NEG_INF;
    rf_u32 bi = 0xffffffffu;
    const rf_u64 stride = (rf_u64)gridDim.x * RF_ATTN_THREADS;
    for (rf_u64 i = rf_global_index(); i < n; i += stride) {
        const float xv = x[i];
        const bool nan = (__float_as_uint(xv) & 0x7fffffffu) > 0x7f800000u;
        if (!nan && rf_argmax_better(xv, (rf_u32)i, bv, bi)) { bv = xv; bi = (rf_u32)i; }
    }
    rf_argmax_block(bv, bi, v_s, i_s);
    if (threadIdx.x == 0) {
        if (gridDim.x == 1) {
            out[0] = bi;
        } else {
            part[blockIdx.x] = __float_as_uint(bv);
            part[gridDim.x + blockIdx.x] = bi;
        }
    }
}

// One block: reduces the n_parts candidates of rf_argmax_partial_f32 into out[0].
extern "C" __global__ __launch_bounds__(RF_ATTN_THREADS)
void rf_argmax_final(const rf_u32* part, rf_u32* out, rf_u32 n_parts) {
    __shared__ float v_s[RF_ATTN_THREADS / WAVE_SIZE];
    __shared__ rf_u32 i_s[RF_ATTN_THREADS / WAVE_SIZE];
    float bv = RF_NEG_INF;
    rf_u32 bi = 0xffffffffu;
    for (rf_u32 p = threadIdx.x; p < n_parts; p += RF_ATTN_THREADS) {
        const float v = __uint_as_float(part[p]);
        const rf_u32 i = part[n_parts + p];
        if (rf_argmax_better(v, i, bv, bi)) { bv = v; bi = i; }
    }
    rf_argmax_block(bv, bi, v_s, i_s);
    if (threadIdx.x == 0) out[0] = bi;
}
