// Rotary position embedding on x[n_tokens, n_heads, head_dim], in place, one thread per
// rotated pair. theta follows ggml's CPU: start from (float)pos and multiply by
// theta_scale once per pair index, in f32, so the angles match llama.cpp's CPU bit for
// bit (a powf per pair drifts at long positions).

RF_DEVICE void rf_rope_pair(float* x, const rf_i32* positions, const float* freq_factors,
                            rf_u32 n_tokens, rf_u32 n_heads, rf_u32 head_dim, rf_u32 n_rot,
                            rf_u32 neox, float theta_scale, float freq_scale) {
    const rf_u32 half_rot = n_rot / 2;
    const rf_u64 idx = rf_global_index();
    const rf_u64 total = (rf_u64)n_tokens * n_heads * half_rot;
    if (idx >= total) return;
    const rf_u32 i = (rf_u32)(idx % half_rot);
    const rf_u64 head = idx / half_rot;           // token * n_heads + h
    const rf_u32 token = (rf_u32)(head / n_heads);
    float theta = (float)positions[token];
    for (rf_u32 k = 0; k < i; ++k) theta *= theta_scale;
    const float ff = freq_factors ? freq_factors[i] : 1.0f;
    const float t = freq_scale * (theta / ff);
    const float c = cosf(t);
    const float s = sinf(t);
    float* h = x + head * head_dim;
    const rf_u32 a = neox ? i : 2 * i;
    const rf_u32 b = neox ? i + half_rot : 2 * i + 1;
    const float x0 = h[a];
    const float x1 = h[b];
    h[a] = x0 * c - x1 * s;
    h[b] = x0 * s + x1 * c;
}

extern "C" __global__ void rf_rope_f32(float* x, const rf_i32* positions, rf_u32 n_tokens, rf_u32 n_heads,
                                       rf_u32 head_dim, rf_u32 n_rot, rf_u32 neox, float theta_scale,
                                       float freq_scale) {
    rf_rope_pair(x, positions, 0, n_tokens, n_heads, head_dim, n_rot, neox, theta_scale, freq_scale);
}

extern "C" __global__ void rf_rope_factors_f32(float* x, const rf_i32* positions, const float* freq_factors,
                                               rf_u32 n_tokens, rf_u32 n_heads, rf_u32 head_dim, rf_u32 n_rot,
                                               rf_u32 neox, float theta_scale, float freq_scale) {
    rf_rope_pair(x, positions, freq_factors, n_tokens, n_heads, head_dim, n_rot, neox, theta_scale, freq_scale);
}

// ---- RoPE of q and k fused with the KV-cache write -----------------------------------
// One launch per decode step (or a few tokens) for what takes four unfused: rotate q in
// place (rf_rope_f32 / rf_rope_factors_f32), rotate k the same way and write it into the
// K cache, write v into the V cache (rf_kv_write_at_*, attention.hip), at cache rows
// pos[0] + t for token t, read on the device. k itself is left as it is. The rotation is
// rf_rope_pair's arithmetic expression for expression, and the conversions to the cache
// type are attention.hip's, so q and both caches end bit for bit as after the unfused
// sequence. As rf_kv_write_at_* do, a pos[0] < 0 or pos[0] + n_new > n_ctx writes no
// cache element (the host checks positions; this keeps a wrong one inside memory); q is
// rotated anyway, as rope_inplace would.
//
// q: [n_new, n_heads, head_dim]; k, v: [n_new, n_kv_heads, head_dim]; caches:
// [n_ctx, n_kv_heads, head_dim]; pos: n_new positions (token t rotated at pos[t]).
// flags: bit 0 NeoX pairing, bit 1 freq_factors given (n_rot / 2 of them). Work items,
// grid-stride over one index range (any grid):
//   [0, nq)             q pairs (token, head, i), i < n_rot / 2;
//   [nq, nq + nk)       k items (token, kv head, u): u < n_rot / 2 a rotated pair, else
//                       dimension n_rot + (u - n_rot / 2) copied unrotated;
//   [nq + nk, + nv)     v elements;
// only [0, nq) when the cache rows do not fit.

struct rf_rope_kv_f32 {
    typedef float T;
    static RF_DEVICE float store(float x) { return x; }
};
struct rf_rope_kv_f16 {
    typedef rf_u16 T;
    static RF_DEVICE rf_u16 store(float x) { return rf_float_to_half(x); }
};
struct rf_rope_kv_bf16 {
    typedef rf_u16 T;
    static RF_DEVICE rf_u16 store(float x) { return rf_float_to_bf16(x); }
};

// (cos, sin) of pair i at position pos: rf_rope_pair's angle.
RF_DEVICE void rf_rope_cos_sin(rf_i32 pos, rf_u32 i, const float* freq_factors, float theta_scale,
                               float freq_scale, float* c, float* s) {
    float theta = (float)pos;
    for (rf_u32 k = 0; k < i; ++k) theta *= theta_scale;
    const float ff = freq_factors ? freq_factors[i] : 1.0f;
    const float t = freq_scale * (theta / ff);
    *c = cosf(t);
    *s = sinf(t);
}

template <class KV>
RF_DEVICE void rf_rope_qk_kv_write_at(float* q, const float* k, const float* v, const rf_i32* pos,
                                      const float* freq_factors, typename KV::T* k_cache,
                                      typename KV::T* v_cache, rf_u32 n_new, rf_u32 n_heads,
                                      rf_u32 n_kv_heads, rf_u32 head_dim, rf_u32 n_rot, rf_u32 flags,
                                      float theta_scale, float freq_scale, rf_u32 n_ctx) {
    const rf_u32 half_rot = n_rot / 2;
    const rf_u32 neox = flags & 1u;
    const float* ff = (flags & 2u) ? freq_factors : 0;
    const rf_u32 k_items = half_rot + (head_dim - n_rot);
    const rf_u64 nq = (rf_u64)n_new * n_heads * half_rot;
    const rf_u64 nk = (rf_u64)n_new * n_kv_heads * k_items;
    const rf_u64 row = (rf_u64)n_kv_heads * head_dim;
    const rf_u64 nv = (rf_u64)n_new * row;
    const rf_i32 p0 = pos[0];
    const bool fits = p0 >= 0 && (rf_u64)p0 + n_new <= n_ctx;
    const rf_u64 total = fits ? nq + nk + nv : nq;
    const rf_u64 stride = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 idx = rf_global_index(); idx < total; idx += stride) {
        if (idx < nq) {
            const rf_u32 i = (rf_u32)(idx % half_rot);
            const rf_u64 head = idx / half_rot;  // token * n_heads + h
            const rf_u32 token = (rf_u32)(head / n_heads);
            float c, s;
            rf_rope_cos_sin(pos[token], i, ff, theta_scale, freq_scale, &c, &s);
            float* h = q + head * head_dim;
            const rf_u32 a = neox ? i : 2 * i;
            const rf_u32 b = neox ? i + half_rot : 2 * i + 1;
            const float x0 = h[a];
            const float x1 = h[b];
            h[a] = x0 * c - x1 * s;
            h[b] = x0 * s + x1 * c;
        } else if (idx < nq + nk) {
            const rf_u64 j = idx - nq;
            const rf_u32 u = (rf_u32)(j % k_items);
            const rf_u64 head = j / k_items;  // token * n_kv_heads + h
            const rf_u32 token = (rf_u32)(head / n_kv_heads);
            const float* src = k + head * head_dim;
            // Row p0 + token of the cache, head h: p0 * row + head * head_dim.
            typename KV::T* dst = k_cache + (rf_u64)p0 * row + head * head_dim;
            if (u < half_rot) {
                const rf_u32 i = u;
                float c, s;
                rf_rope_cos_sin(pos[token], i, ff, theta_scale, freq_scale, &c, &s);
                const rf_u32 a = neox ? i : 2 * i;
                const rf_u32 b = neox ? i + half_rot : 2 * i + 1;
                const float x0 = src[a];
                const float x1 = src[b];
                const float r0 = x0 * c - x1 * s;
                const float r1 = x0 * s + x1 * c;
                dst[a] = KV::store(r0);
                dst[b] = KV::store(r1);
            } else {
                const rf_u32 d = n_rot + (u - half_rot);
                dst[d] = KV::store(src[d]);
            }
        } else {
            const rf_u64 j = idx - nq - nk;
            v_cache[(rf_u64)p0 * row + j] = KV::store(v[j]);
        }
    }
}

#define RF_ROPE_QK_KV_PARAMS(T)                                                                    \
    float *q, const float *k, const float *v, const rf_i32 *pos, const float *freq_factors,        \
        T *k_cache, T *v_cache, rf_u32 n_new, rf_u32 n_heads, rf_u32 n_kv_heads, rf_u32 head_dim, \
        rf_u32 n_rot, rf_u32 flags, float theta_scale, float freq_scale, rf_u32 n_ctx
#define RF_ROPE_QK_KV_ARGS                                                                       \
    q, k, v, pos, freq_factors, k_cache, v_cache, n_new, n_heads, n_kv_heads, head_dim, n_rot, \
        flags, theta_scale, freq_scale, n_ctx

extern "C" __global__ void rf_rope_qk_kv_write_at_f32(RF_ROPE_QK_KV_PARAMS(float)) {
    rf_rope_qk_kv_write_at<rf_rope_kv_f32>(RF_ROPE_QK_KV_ARGS);
}
extern "C" __global__ void rf_rope_qk_kv_write_at_f16(RF_ROPE_QK_KV_PARAMS(rf_u16)) {
    rf_rope_qk_kv_write_at<rf_rope_kv_f16>(RF_ROPE_QK_KV_ARGS);
}
extern "C" __global__ void rf_rope_qk_kv_write_at_bf16(RF_ROPE_QK_KV_PARAMS(rf_u16)) {
    rf_rope_qk_kv_write_at<rf_rope_kv_bf16>(RF_ROPE_QK_KV_ARGS);
}
