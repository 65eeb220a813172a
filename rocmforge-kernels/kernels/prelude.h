// rocmforge kernel prelude: prepended to every kernel source before compilation.
// The same source compiles under hiprtc (AMD) and NVRTC (NVIDIA, through rocmforge's
// adapter). WAVE_SIZE is the device's wavefront/warp size (64 on GCN/CDNA, 32 on RDNA
// and NVIDIA), passed as -DWAVE_SIZE by the compiler driver: never assume 32 or 64.

#ifndef WAVE_SIZE
#error "WAVE_SIZE must be defined (-DWAVE_SIZE=32 or 64)"
#endif

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define RF_NVIDIA 1
#else
#define RF_AMD 1
#endif

// Fixed-width integers without <stdint.h> (NVRTC has no standard headers).
typedef signed char rf_i8;
typedef unsigned char rf_u8;
typedef short rf_i16;
typedef unsigned short rf_u16;
typedef int rf_i32;
typedef unsigned int rf_u32;
typedef long long rf_i64;
typedef unsigned long long rf_u64;

#define RF_DEVICE __device__ __forceinline__

// ---- half and bfloat16, stored as 16-bit integers --------------------------------

RF_DEVICE float rf_half_to_float(rf_u16 h) {
#if RF_NVIDIA
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    _Float16 v;
    __builtin_memcpy(&v, &h, 2);
    return (float)v;
#endif
}

// Round to nearest even, like ggml's conversion.
RF_DEVICE rf_u16 rf_float_to_half(float f) {
#if RF_NVIDIA
    rf_u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#else
    _Float16 v = (_Float16)f;
    rf_u16 h;
    __builtin_memcpy(&h, &v, 2);
    return h;
#endif
}

RF_DEVICE float rf_bf16_to_float(rf_u16 b) {
    return __uint_as_float(((rf_u32)b) << 16);
}

// Round to nearest even; NaN stays NaN (quiet), as ggml_compute_fp32_to_bf16 does.
RF_DEVICE rf_u16 rf_float_to_bf16(float f) {
    rf_u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (rf_u16)((u >> 16) | 64u);
    }
    return (rf_u16)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

// ---- wave-level reductions ---------------------------------------------------------

RF_DEVICE float rf_shfl_xor(float v, int mask) {
#if RF_NVIDIA
    return __shfl_xor_sync(0xffffffffu, v, mask, WAVE_SIZE);
#else
    return __shfl_xor(v, mask, WAVE_SIZE);
#endif
}

RF_DEVICE float rf_wave_sum(float v) {
#pragma unroll
    for (int offset = WAVE_SIZE / 2; offset > 0; offset >>= 1) {
        v += rf_shfl_xor(v, offset);
    }
    return v;
}

RF_DEVICE float rf_wave_max(float v) {
#pragma unroll
    for (int offset = WAVE_SIZE / 2; offset > 0; offset >>= 1) {
        v = fmaxf(v, rf_shfl_xor(v, offset));
    }
    return v;
}

// Sum over a whole block (blockDim.x a multiple of WAVE_SIZE, at most 1024 threads).
// `scratch` holds at least blockDim.x / WAVE_SIZE floats of shared memory. Every
// thread gets the result.
RF_DEVICE float rf_block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % WAVE_SIZE;
    const int wave = threadIdx.x / WAVE_SIZE;
    const int waves = blockDim.x / WAVE_SIZE;
    v = rf_wave_sum(v);
    __syncthreads();
    if (lane == 0) scratch[wave] = v;
    __syncthreads();
    v = lane < waves ? scratch[lane] : 0.0f;
    return rf_wave_sum(v);
}

RF_DEVICE float rf_block_max(float v, float* scratch) {
    const int lane = threadIdx.x % WAVE_SIZE;
    const int wave = threadIdx.x / WAVE_SIZE;
    const int waves = blockDim.x / WAVE_SIZE;
    v = rf_wave_max(v);
    __syncthreads();
    if (lane == 0) scratch[wave] = v;
    __syncthreads();
    v = lane < waves ? scratch[lane] : -__int_as_float(0x7f800000);
    return rf_wave_max(v);
}

// Global index of this thread in a 1-D launch, as 64-bit.
RF_DEVICE rf_u64 rf_global_index() {
    return (rf_u64)blockIdx.x * blockDim.x + threadIdx.x;
}
