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

// ---- 8-bit integer dot product ---------------------------------------------------

// a.b + c over the four signed bytes of a and b: a[0]b[0] + a[1]b[1] + a[2]b[2] +
// a[3]b[3] + c, exact in 32 bits. One instruction where the target has one: NVIDIA's
// dp4a (sm_61+), AMD's v_dot4_i32_i8 (the "dot1" instructions: gfx906, gfx908, CDNA 2/3,
// gfx1011/1012, RDNA 2) or v_dot4_i32_iu8 (RDNA 3/4); byte by byte elsewhere. The AMD
// arch macros are the ones hiprtc defines for the target (__gfx906__ etc.); a builtin's
// presence (__has_builtin) alone does not say whether the target can run the
// instruction. Checked with ROCm 5.2's hiprtc: v_dot4_i32_i8 on gfx906, v_dot4c_i32_i8
// on gfx90a and gfx1030, the byte loop on gfx900. (RDNA 3/4 are untested: that hiprtc
// predates them.)
#if RF_AMD && (defined(__gfx906__) || defined(__gfx908__) || defined(__gfx90a__) ||           \
               defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__) ||           \
               defined(__gfx950__) || defined(__gfx1011__) || defined(__gfx1012__) ||         \
               defined(__gfx1030__) || defined(__gfx1031__) || defined(__gfx1032__) ||        \
               defined(__gfx1033__) || defined(__gfx1034__) || defined(__gfx1035__) ||        \
               defined(__gfx1036__))
#define RF_DOT4_AMD_SDOT4 1
#elif RF_AMD && (defined(__gfx1100__) || defined(__gfx1101__) || defined(__gfx1102__) ||      \
                 defined(__gfx1103__) || defined(__gfx1150__) || defined(__gfx1151__) ||      \
                 defined(__gfx1152__) || defined(__gfx1200__) || defined(__gfx1201__))
// (Compilers old enough to lack the builtin cannot target these archs anyway.)
#if defined(__has_builtin)
#if __has_builtin(__builtin_amdgcn_sudot4)
#define RF_DOT4_AMD_SUDOT4 1
#endif
#endif
#endif

RF_DEVICE int rf_dot4_i8(int a, int b, int c) {
#if RF_NVIDIA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 610
    int r;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
#elif defined(RF_DOT4_AMD_SDOT4)
    return __builtin_amdgcn_sdot4(a, b, c, false);
#elif defined(RF_DOT4_AMD_SUDOT4)
    return __builtin_amdgcn_sudot4(true, a, true, b, c, false);
#else
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        c += (int)(rf_i8)(a >> (8 * k)) * (int)(rf_i8)(b >> (8 * k));
    }
    return c;
#endif
}

// ---- wave-level synchronization -----------------------------------------------------

// A barrier for the lanes of one wave, ordering their shared-memory accesses: what a
// lane wrote before it is visible to every lane of the wave after it. For data a wave
// shares with no other wave, where __syncthreads would also stall the block's others.
RF_DEVICE void rf_wave_barrier() {
#if RF_NVIDIA
    __syncwarp();
#else
    __builtin_amdgcn_fence(__ATOMIC_RELEASE, "wavefront");
    __builtin_amdgcn_wave_barrier();
    __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "wavefront");
#endif
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
