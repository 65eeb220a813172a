// 8-bit quantization of activations, one value per lane, for the kernels that write
// quantized activations as a fused epilogue (norm.hip: rf_rms_norm_q8_f32;
// elementwise.hip: rf_swiglu_q8_f32). Not a kernel source by itself: kernel_source.rs
// prepends it, after the prelude, to the sources that list it (Q8_QUANTIZE_INCLUDE).
//
// The format is quant_q8.hip's (src/cpu/q8_activations.rs is the reference): a row of
// `cols` values (a multiple of 32) takes row_bytes = cols * 5/4 rounded up to 16 bytes,
//   bytes [0, cols):           the values as i8, block b at [32b, 32b + 32);
//   bytes [cols, cols + 8 nb): per block (d, s) as f32, d = amax / 127, s = d * sum(q);
//   then 8 zero bytes when nb = cols / 32 is odd.
// The arithmetic below is rf_quantize_q8_f32's (quant_q8.hip) expression for expression,
// so a fused kernel writes the bytes that quantize_activations would write for its f32
// output (the GPU tests compare them byte for byte).

struct alignas(8) rf_q8q_f32x2 { float x, y; };

// Quantizes `v`, the value at column `col` of a row of `cols` values whose quantized row
// starts at `row` (16-byte aligned). The 32 values of a block are held by 32 lanes of one
// wave with lane % 32 == col % 32, all active together: the xor shuffles with masks
// below 32 stay inside an aligned 32-lane group for either wave size.
RF_DEVICE void rf_q8_quantize_value(float v, rf_u8* row, rf_u32 col, rf_u32 cols) {
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
    row[col] = (rf_u8)(rf_i8)(int)q;
    if (col % 32 == 0) {
        rf_q8q_f32x2 ds;
        ds.x = d;
        ds.y = d * sum;
        ((rf_q8q_f32x2*)(row + cols))[col / 32] = ds;
        if (col + 32 == cols && (cols / 32) % 2 == 1) {
            rf_q8q_f32x2 zero;
            zero.x = 0.0f;
            zero.y = 0.0f;
            ((rf_q8q_f32x2*)(row + cols))[cols / 32] = zero;
        }
    }
}
