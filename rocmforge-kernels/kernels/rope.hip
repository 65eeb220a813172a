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
