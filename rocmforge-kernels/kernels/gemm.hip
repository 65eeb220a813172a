// Prefill matrix x matrix over weights in ggml's block formats (the decoders rf_elem_T
// are in quant_decode.h): Y[t, r] = sum_c W[r, c] * X[t, c], X [n_tokens, cols] and
// Y [n_tokens, rows] row-major f32, W rows x cols in a ggml type, cols a multiple of 32
// (of 256 for the K-quants).
//
// A classic tiled SIMT GEMM, portable between hiprtc (AMD) and NVRTC (NVIDIA): a block
// computes a tile of BM rows x BN tokens. It walks K in steps of RF_GEMM_BK columns; each
// step its threads decode the W tile element by element to f32 and copy the X tile into
// shared memory (both stored k-major, [k][row] and [k][token], padded so that neither
// the stores nor the reads conflict), then each thread accumulates a TM x TN register
// tile with FMAs. Shared memory is double-buffered: while the block computes on one
// buffer, each thread holds the next step's values in registers (their global loads are
// in flight during the FMAs) and stores them into the other buffer after, so there is one
// barrier per step.
//
// Nothing here depends on the wave size: the thread layouts below are in groups of 32
// threads because shared memory has 32 banks of 4 bytes (on NVIDIA and on AMD's LDS),
// and every barrier is block-wide. Edges: rows and tokens past the matrix are read
// clamped to the last row/token (valid memory) and never written; K needs no edge since
// cols is a multiple of 32 and RF_GEMM_BK divides 32.

#define RF_GEMM_BK 16
#define RF_GEMM_PAD 4  // floats of padding per shared row: keeps rows 16-byte aligned

// The FMA loop over a step's BK columns: fully unrolled for NVIDIA (measured on the
// H100). AMD's compiler, fully unrolled, hoists every shared-memory read of the step
// ahead of the FMAs: 330 VGPRs on gfx90a, and about 80 spilled on gfx1030 (256 at
// most); four columns at a time leaves no spills on either (hiprtc of HIP 5.2: l 166-214
// VGPRs on gfx90a, 128-162 on gfx1030; m up to 261 and 255).
#if RF_NVIDIA
#define RF_GEMM_K_UNROLL _Pragma("unroll")
#else
#define RF_GEMM_K_UNROLL _Pragma("unroll 4")
#endif

struct alignas(16) rf_gemm_f4 {
    float x, y, z, w;
};

// One ggml type as a template argument: its decoder and block geometry.
#define RF_GEMM_TYPE(T, BLOCK_BYTES, BLOCK_ELEMS)                                    \
    struct rf_gemm_type_##T {                                                       \
        static constexpr rf_u32 block_bytes = BLOCK_BYTES;                          \
        static constexpr rf_u32 block_elems = BLOCK_ELEMS;                          \
        static RF_DEVICE float at(const rf_u8* row, rf_u32 chunk, rf_u32 l) {       \
            return rf_elem_##T(row, chunk, l);                                       \
        }                                                                           \
    };
RF_GEMM_TYPE(f32, 128, 32)
RF_GEMM_TYPE(f16, 64, 32)
RF_GEMM_TYPE(bf16, 64, 32)
RF_GEMM_TYPE(q4_0, 18, 32)
RF_GEMM_TYPE(q4_1, 20, 32)
RF_GEMM_TYPE(q5_0, 22, 32)
RF_GEMM_TYPE(q5_1, 24, 32)
RF_GEMM_TYPE(q8_0, 34, 32)
RF_GEMM_TYPE(q2_K, 84, 256)
RF_GEMM_TYPE(q3_K, 110, 256)
RF_GEMM_TYPE(q4_K, 144, 256)
RF_GEMM_TYPE(q5_K, 176, 256)
RF_GEMM_TYPE(q6_K, 210, 256)

// The tile of block (blockIdx.x: tokens, blockIdx.y: rows) for THREADS = (BM/TM)(BN/TN)
// threads. TM is a multiple of 4: a thread's rows are TM/4 runs of 4 consecutive rows,
// BM/(TM/4) apart (one 16-byte shared read each); likewise its tokens when TN is a
// multiple of 4, else TN consecutive tokens. Within each group of 32 threads, GM
// consecutive threads take consecutive runs of rows and the 32/GM groups of those take
// consecutive token runs: a shared read then touches few distinct addresses (broadcast).
template <class W, int BM, int BN, int TM, int TN, int GM, int THREADS>
RF_DEVICE void rf_gemm_tile(const rf_u8* __restrict__ w, const float* __restrict__ x,
                            float* __restrict__ y, rf_u32 rows, rf_u32 cols, rf_u32 n_tokens) {
    constexpr int BK = RF_GEMM_BK;
    constexpr int MT = BM / TM, NT = BN / TN;  // threads along rows, along tokens
    static_assert(MT * NT == THREADS, "one thread per TM x TN sub-tile");
    static_assert(TM % 4 == 0 && (TN % 4 == 0 || TN < 4), "register tile shape");
    static_assert(MT % GM == 0 && NT % (32 / GM) == 0 && THREADS % 32 == 0, "thread layout");
    // Loads: a pass of all threads covers LR rows (or tokens) x 8 columns of k; within a
    // group of 32 threads, 4 consecutive threads take 4 consecutive rows and the 8 groups
    // of those 8 consecutive k. With a row stride of BM + 4 (BM a multiple of 32) or an
    // odd multiple of 4 (BN + 4), the 32 stores of a pass hit 32 distinct banks.
    constexpr int LR = THREADS / 8;
    static_assert(BM % LR == 0 && BN % LR == 0 && BK % 8 == 0 && 32 % BK == 0, "load passes");
    static_assert(BM % 32 == 0 && ((BN + RF_GEMM_PAD) / 4) % 2 == 1, "bank-free padding");
    constexpr int WP = BM / LR, XP = BN / LR, KP = BK / 8;
    constexpr int SA = BM + RF_GEMM_PAD, SX = BN + RF_GEMM_PAD;
    // Distance between a thread's runs of 4 rows (tokens).
    constexpr int RM = BM / (TM / 4), RN = TN >= 4 ? BN / (TN / 4) : 4;

    __shared__ rf_gemm_f4 ws4[2][BK][SA / 4];
    __shared__ rf_gemm_f4 xs4[2][BK][SX / 4];

    const int tid = threadIdx.x;
    const rf_u32 tok0 = blockIdx.x * BN, row0 = blockIdx.y * BM;

    // This thread's loads: rows/tokens lr + p LR (p < WP or XP), columns lk + 8q (q < KP).
    const int lr = (tid / 32) * 4 + tid % 4;
    const int lk = (tid % 32) / 4;
    const rf_u64 row_bytes = (rf_u64)(cols / W::block_elems) * W::block_bytes;
    const rf_u8* wrow[WP];
#pragma unroll
    for (int p = 0; p < WP; ++p) {
        const rf_u32 r = min(row0 + lr + p * LR, rows - 1);
        wrow[p] = w + (rf_u64)r * row_bytes;
    }
    const float* xrow[XP];
#pragma unroll
    for (int p = 0; p < XP; ++p) {
        const rf_u32 t = min(tok0 + lr + p * LR, n_tokens - 1);
        xrow[p] = x + (rf_u64)t * cols;
    }
    float wreg[WP][KP], xreg[XP][KP];

    // This thread's register tile.
    const int tm = tid % GM + GM * ((tid / 32) % (MT / GM));
    const int tn = (tid % 32) / GM + (32 / GM) * ((tid / 32) / (MT / GM));
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
    }

    // Global loads (and decoding) of step s into registers.
    auto fetch = [&](rf_u32 s) {
        const rf_u32 k0 = s * BK;
        const rf_u32 chunk = k0 / 32, l0 = k0 % 32 + lk;
#pragma unroll
        for (int p = 0; p < WP; ++p) {
#pragma unroll
            for (int q = 0; q < KP; ++q) wreg[p][q] = W::at(wrow[p], chunk, l0 + 8 * q);
        }
#pragma unroll
        for (int p = 0; p < XP; ++p) {
#pragma unroll
            for (int q = 0; q < KP; ++q) xreg[p][q] = xrow[p][k0 + lk + 8 * q];
        }
    };
    // The registers into shared buffer `buf`.
    auto stash = [&](int buf) {
        float* ws = (float*)ws4[buf];
        float* xs = (float*)xs4[buf];
#pragma unroll
        for (int p = 0; p < WP; ++p) {
#pragma unroll
            for (int q = 0; q < KP; ++q) ws[(lk + 8 * q) * SA + lr + p * LR] = wreg[p][q];
        }
#pragma unroll
        for (int p = 0; p < XP; ++p) {
#pragma unroll
            for (int q = 0; q < KP; ++q) xs[(lk + 8 * q) * SX + lr + p * LR] = xreg[p][q];
        }
    };
    // The FMAs of the step in shared buffer `buf`.
    auto multiply = [&](int buf) {
        const float* ws = (const float*)ws4[buf];
        const float* xs = (const float*)xs4[buf];
        RF_GEMM_K_UNROLL
        for (int kk = 0; kk < BK; ++kk) {
            float a[TM], b[TN];
#pragma unroll
            for (int g = 0; g < TM / 4; ++g) {
                const rf_gemm_f4 v = *(const rf_gemm_f4*)(ws + kk * SA + g * RM + 4 * tm);
                a[4 * g] = v.x;
                a[4 * g + 1] = v.y;
                a[4 * g + 2] = v.z;
                a[4 * g + 3] = v.w;
            }
            if (TN % 4 == 0) {
#pragma unroll
                for (int g = 0; g < TN / 4; ++g) {
                    const rf_gemm_f4 v = *(const rf_gemm_f4*)(xs + kk * SX + g * RN + 4 * tn);
                    b[4 * g] = v.x;
                    b[4 * g + 1] = v.y;
                    b[4 * g + 2] = v.z;
                    b[4 * g + 3] = v.w;
                }
            } else {
#pragma unroll
                for (int j = 0; j < TN; ++j) b[j] = xs[kk * SX + TN * tn + j];
            }
#pragma unroll
            for (int i = 0; i < TM; ++i) {
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
            }
        }
    };

    // Step s is fetched while step s - 1 is multiplied, then stashed into the buffer that
    // step s - 2 used (every thread finished reading it before the previous barrier).
    const rf_u32 steps = cols / BK;
    fetch(0);
    stash(0);
    __syncthreads();
    for (rf_u32 s = 1; s < steps; ++s) {
        fetch(s);
        multiply((s - 1) & 1);
        stash(s & 1);
        __syncthreads();
    }
    multiply((steps - 1) & 1);

#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const rf_u32 r = row0 + (i / 4) * RM + 4 * tm + i % 4;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const rf_u32 n = TN % 4 == 0 ? (j / 4) * RN + 4 * tn + j % 4 : TN * tn + j;
            const rf_u32 t = tok0 + n;
            if (r < rows && t < n_tokens) y[(rf_u64)t * rows + r] = acc[i][j];
        }
    }
}

// The tile shapes (gpu/quant_ops.rs picks one by the shape of the product and the type):
//   l: 128 rows x 128 tokens, 256 threads of 8 x 8, 33 KiB of shared memory: the fewest
//      decodes and shared loads per FMA, for large products;
//   m:  64 rows x  64 tokens,  64 threads of 8 x 8, 17 KiB: four times the blocks;
//   s:  32 rows x  16 tokens,  64 threads of 4 x 2,  7 KiB: few tokens or few rows.
// On the H100 (NVRTC, sm_90) at 512 tokens, Llama-3-8B shapes: 23-34 TFLOP/s of f32
// FMAs for every type with l or m (of about 67 peak), 7-15 for 1024 rows.
#define RF_GEMM_L 128, 128, 8, 8, 4, 256
#define RF_GEMM_M 64, 64, 8, 8, 4, 64
#define RF_GEMM_S 32, 16, 4, 2, 4, 64
#define RF_GEMM_PARAMS                                                                      \
    const rf_u8* __restrict__ w, const float* __restrict__ x, float* __restrict__ y, rf_u32 rows, \
        rf_u32 cols, rf_u32 n_tokens
#define RF_GEMM_ARGS w, x, y, rows, cols, n_tokens

extern "C" __global__ __launch_bounds__(256) void rf_gemm_f32_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_f32, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_f32_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_f32, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_f32_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_f32, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_f16_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_f16, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_f16_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_f16, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_f16_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_f16, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_bf16_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_bf16, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_bf16_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_bf16, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_bf16_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_bf16, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_q4_0_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q4_0, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q4_0_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q4_0, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q4_0_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q4_0, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_q4_1_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q4_1, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q4_1_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q4_1, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q4_1_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q4_1, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_q5_0_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q5_0, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q5_0_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q5_0, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q5_0_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q5_0, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_q5_1_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q5_1, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q5_1_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q5_1, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q5_1_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q5_1, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_q8_0_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q8_0, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q8_0_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q8_0, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q8_0_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q8_0, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_q2_K_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q2_K, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q2_K_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q2_K, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q2_K_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q2_K, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_q3_K_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q3_K, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q3_K_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q3_K, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q3_K_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q3_K, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_q4_K_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q4_K, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q4_K_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q4_K, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q4_K_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q4_K, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_q5_K_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q5_K, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q5_K_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q5_K, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q5_K_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q5_K, RF_GEMM_S>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(256) void rf_gemm_q6_K_l(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q6_K, RF_GEMM_L>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q6_K_m(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q6_K, RF_GEMM_M>(RF_GEMM_ARGS);
}
extern "C" __global__ __launch_bounds__(64) void rf_gemm_q6_K_s(RF_GEMM_PARAMS) {
    rf_gemm_tile<rf_gemm_type_q6_K, RF_GEMM_S>(RF_GEMM_ARGS);
}
