//! Matrix × vector, matrix × matrix, row lookup and dequantization over weights stored
//! in ggml block formats, on the GPU.

use std::collections::HashMap;

use half::f16;
use rocmforge_hip::{
    DeviceBuffer, DeviceMemory, DeviceSlice, DeviceSliceMut, Dim3, In, LaunchConfig, Out, Stream,
    TypedKernel,
};

use super::{grid_stride_config, KernelLoader};
use crate::cpu::q8_activations;
use crate::error::shape_error;
use crate::kernel_source::QUANT_Q8;
use crate::quant::GgmlType;
use crate::{Error, Result, GEMM, QUANT};

/// The weight types the GPU kernels implement.
pub const GPU_WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Rows (one wave each) per block of the matvec kernels.
const ROWS_PER_BLOCK: u32 = 4;
/// Rows each block of a matvec kernel computes: `RF_MV_ROWS` in quant.hip for the
/// hand-written 32-element-block kernels (all waves of a block share those rows and each
/// x load serves all of them), else one row per wave.
fn matvec_rows_per_wave(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => 2,
        _ => 1,
    }
}

/// The weight types with an integer matrix × vector kernel over 8-bit activations
/// ([`QuantOps::matvec_q8`]).
pub const Q8_MATVEC_TYPES: [GgmlType; 10] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Whether `ty` has an integer matrix × vector kernel that reads 8-bit activations
/// ([`QuantOps::matvec_q8`]); the other types keep the f32-activation [`QuantOps::matvec`].
pub fn matvec_reads_q8(ty: GgmlType) -> bool {
    Q8_MATVEC_TYPES.contains(&ty)
}

/// Bytes of `n_tokens` rows of `cols` activations quantized by
/// [`QuantOps::quantize_activations`]: `n_tokens` × [`q8_activation_row_bytes`]`(cols)`
/// (the format is documented in [`crate::cpu::q8_activations`]). Saturates at
/// `usize::MAX`, which no buffer matches.
pub fn q8_activation_bytes(n_tokens: usize, cols: usize) -> usize {
    q8_activations::q8_activation_bytes(n_tokens, cols)
}

/// Bytes of one quantized activation row of `cols` values (a multiple of 16): token `t`
/// of a multi-token buffer is the slice `t * q8_activation_row_bytes(cols)..` of this
/// length, what [`QuantOps::matvec_q8`] takes.
pub fn q8_activation_row_bytes(cols: usize) -> usize {
    q8_activations::q8_row_bytes(cols)
}

/// Rows per block of the `rf_mvq_<type>` kernels (`RF_MVQ_ROWS_<type>` in quant_q8.hip;
/// a unit test checks that the two agree).
const MVQ_DEFAULT_ROWS: usize = 4;

/// Waves per block of the integer matvec kernels (`RF_MVQ_WAVES` in quant_q8.hip).
const MVQ_WAVES: u32 = 4;

/// Threads per block of the activation quantizer (any multiple of 32 works).
const QUANTIZE_THREADS: u32 = 256;

/// The integer matvec kernels of quant_q8.hip for `ty`, by suffix of
/// `rf_mvq_<type><suffix>`: `""` is the direct kernel (`rf_mvq`) with
/// [`MVQ_DEFAULT_ROWS`] rows per block, `_r<n>` the direct kernel with `n` rows per block
/// (its waves split each row's chunks), `_s<n>` the staged kernel (`rf_mvqs`: weights
/// through shared memory with 16-byte loads) with `n` rows per wave, `_c<n>` the window
/// kernel (`rf_mvc`: coalesced 16-byte loads realigned in registers; only for a multiple
/// of [`WINDOW_SPAN_COLS`] columns and 16-byte-aligned weights) with `n` rows per block.
fn mvq_kernels(ty: GgmlType) -> &'static [&'static str] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q8_0 => &["", "_r1", "_r2", "_s1", "_s2", "_c2", "_c4"],
        GgmlType::Q4_K => &["", "_r1", "_r2", "_s1", "_s2", "_c2", "_c4"],
        GgmlType::Q5_K => &["", "_s1", "_s2", "_c2", "_c4"],
        GgmlType::Q6_K => &["", "_r2", "_s1", "_s2"],
        GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 => &["", "_s1", "_s2", "_c2", "_c4"],
        _ => &["", "_s1", "_s2"],
    }
}

/// Columns of a span of the window kernels (`rf_mvc`: 8 blocks of 32, whose bytes are
/// whole 16-byte words for every type it decodes).
const WINDOW_SPAN_COLS: usize = 256;

/// Whether `suffix` names a window kernel (`_c<n>`: `rf_mvc` in quant_q8.hip).
fn is_window(suffix: &str) -> bool {
    suffix.starts_with("_c")
}

/// Whether the window kernels can run a matrix of `cols` columns: rows of whole spans.
/// With the 16-byte alignment [`GpuWeights::new`] checks, every row then starts on a
/// 16-byte boundary, which the kernels' loads need.
fn window_fits(cols: usize) -> bool {
    cols % WINDOW_SPAN_COLS == 0
}

/// Checks what every integer matvec launch needs of its input: a width of whole blocks
/// of `ty`, one quantized activation row of that width in `xq`, 16-byte aligned.
fn check_q8_input(op: &'static str, ty: GgmlType, cols: usize, xq: &DeviceSlice<u8>) -> Result<()> {
    let block_elems = ty.block_size().max(32);
    if cols % block_elems != 0 {
        return Err(shape_error(
            op,
            format!(
                "{cols} columns: {} needs a multiple of {block_elems}",
                ty.name()
            ),
        ));
    }
    let xq_bytes = q8_activation_row_bytes(cols);
    if xq.len() != xq_bytes {
        return Err(shape_error(
            op,
            format!(
                "xq has {} bytes, {xq_bytes} expected for {cols} columns",
                xq.len()
            ),
        ));
    }
    if xq.device_ptr() as usize % 16 != 0 {
        return Err(shape_error(
            op,
            "xq must start at a 16-byte-aligned device address",
        ));
    }
    Ok(())
}

/// Rows per block of the kernel with `suffix` (see [`mvq_kernels`]).
fn mvq_rows_per_block(suffix: &str) -> usize {
    let n = |digits: &str| digits.parse::<usize>().unwrap_or(1);
    if let Some(d) = suffix.strip_prefix("_r") {
        n(d)
    } else if let Some(d) = suffix.strip_prefix("_s") {
        n(d) * MVQ_WAVES as usize
    } else if let Some(d) = suffix.strip_prefix("_c") {
        n(d)
    } else {
        MVQ_DEFAULT_ROWS
    }
}

/// The kernel [`QuantOps::matvec_q8`] runs for `rows` rows of `ty` (a suffix of
/// [`mvq_kernels`]): per type and size class — at most 2048 rows (K/V projections), at
/// least 32768 (the output matrix), at least 8192 (FFN gate/up), the rest — the fastest
/// kernel measured on the H100 at Llama-3-8B shapes (kernel_bench --variants, replayed
/// from graphs; differences under about 5% are within that measurement's noise). Not
/// tuned for other devices.
fn mvq_variant(ty: GgmlType, rows: usize, window: bool) -> &'static str {
    let small = rows <= 2048;
    let huge = rows >= 32768;
    match ty {
        GgmlType::Q5_0 if window && huge => "_c4",
        // Every width a K-quant takes is whole spans of 256.
        GgmlType::Q4_K | GgmlType::Q5_K if small => "_c2",
        GgmlType::Q4_K | GgmlType::Q5_K => "_c4",
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0
            if window =>
        {
            "_c2"
        }
        GgmlType::Q4_0 if small => "_r1",
        GgmlType::Q4_0 | GgmlType::Q4_1 => "",
        GgmlType::Q8_0 if huge => "_s1",
        GgmlType::Q8_0 => "_r1",
        GgmlType::Q5_0 | GgmlType::Q5_1 if huge => "_s2",
        GgmlType::Q5_1 => "",
        GgmlType::Q2_K if small => "_s1",
        GgmlType::Q2_K => "_s2",
        GgmlType::Q3_K | GgmlType::Q6_K if huge => "_s2",
        _ => "_s1",
    }
}

/// A kernel of quant_q8.hip's matvec signature: weights, quantized x, y, rows, cols.
type MvqKernel = TypedKernel<(In<u8>, In<u8>, Out<f32>, u32, u32)>;

/// Most matrices one [`QuantOps::matvec_q8_multi`] launch takes (the `rf_mvqx` kernels'
/// three slots).
pub const MATVEC_Q8_MULTI_MAX: usize = 3;

/// A kernel of quant_q8.hip's `rf_mvqx` signature: three weight matrices, quantized x,
/// residual, three outputs, three row counts, cols, variant codes.
type MvqxKernel = TypedKernel<(
    In<u8>,
    In<u8>,
    In<u8>,
    In<u8>,
    In<f32>,
    Out<f32>,
    Out<f32>,
    Out<f32>,
    u32,
    u32,
    u32,
    u32,
    u32,
)>;

/// Bit of the `rf_mvqx` kernels' `codes` argument: add the residual to matrix 0.
const MVQX_RESIDUAL_BIT: u32 = 1 << 24;

/// Suffix of the `rf_mvqx_<type>_mixed` kernels.
const MVQX_MIXED: &str = "_mixed";

/// The kernels of quant_q8.hip.
#[derive(Debug, Clone)]
struct Q8Kernels {
    quantize: TypedKernel<(In<f32>, Out<u8>, u64, u32, u32)>,
    /// Every matvec kernel, by type and suffix, with its rows per block.
    matvec: HashMap<(GgmlType, &'static str), (MvqKernel, usize)>,
    /// The multi-matrix / residual kernels, by type and suffix (one of [`mvqx_kernels`],
    /// or [`MVQX_MIXED`]).
    multi: HashMap<(GgmlType, &'static str), MvqxKernel>,
}

/// The variants [`mvq_variant`] can choose for `ty` (suffixes of [`mvq_kernels`]), in the
/// order of the `rf_mvqx_<type>_mixed` kernel's template arguments: the kernels
/// `rf_mvqx_<type><suffix>` that [`QuantOps::matvec_q8_add`] and
/// [`QuantOps::matvec_q8_multi`] run (a unit test checks this table against
/// [`mvq_variant`] and quant_q8.hip).
fn mvqx_kernels(ty: GgmlType) -> &'static [&'static str] {
    match ty {
        GgmlType::Q4_0 => &["", "_r1", "_c2"],
        GgmlType::Q4_1 => &["", "_c2"],
        GgmlType::Q5_0 => &["_s1", "_s2", "_c2", "_c4"],
        GgmlType::Q5_1 => &["", "_s2", "_c2"],
        GgmlType::Q8_0 => &["_r1", "_s1", "_c2"],
        GgmlType::Q4_K | GgmlType::Q5_K => &["_c2", "_c4"],
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q6_K => &["_s1", "_s2"],
        _ => &[],
    }
}

/// The `rf_mvqx` kernels' code of the variant with `suffix` (see [`mvq_kernels`]):
/// `16 · family + rows`, family 0 for the direct kernel with `rows` rows per block, 1 for
/// the staged kernel with `rows` rows per wave, 2 for the window kernel with `rows` rows
/// per block (`rf_mvqv` in quant_q8.hip).
fn mvq_code(suffix: &str) -> u32 {
    let n = |digits: &str| digits.parse::<u32>().unwrap_or(1);
    if let Some(d) = suffix.strip_prefix("_r") {
        n(d)
    } else if let Some(d) = suffix.strip_prefix("_s") {
        16 + n(d)
    } else if let Some(d) = suffix.strip_prefix("_c") {
        32 + n(d)
    } else {
        MVQ_DEFAULT_ROWS as u32
    }
}

/// One tile shape of gemm.hip's matrix × matrix kernels (`rf_gemm_<type>_<suffix>`).
#[derive(Debug, Clone, Copy)]
struct GemmTile {
    suffix: &'static str,
    /// Weight rows per block.
    rows: usize,
    /// Tokens per block.
    tokens: usize,
    /// Threads per block.
    threads: u32,
}

/// The tiles, as `RF_GEMM_L`, `RF_GEMM_M` and `RF_GEMM_S` in gemm.hip define them.
const GEMM_TILES: [GemmTile; 3] = [
    GemmTile {
        suffix: "l",
        rows: 128,
        tokens: 128,
        threads: 256,
    },
    GemmTile {
        suffix: "m",
        rows: 64,
        tokens: 64,
        threads: 64,
    },
    GemmTile {
        suffix: "s",
        rows: 32,
        tokens: 16,
        threads: 64,
    },
];
const GEMM_L: usize = 0;
const GEMM_M: usize = 1;
const GEMM_S: usize = 2;

/// Up to how many tokens `matmul` runs the matrix × vector kernel once per token (when
/// x is 16-byte aligned) rather than a tiled product: reading the weights once per token
/// beats a tile mostly wasted on so few tokens. On the H100, for 4096 × 4096: 8 tokens
/// for the 16-bit floats and the 32-element block types, whose matvec kernels read at
/// near copy bandwidth (Q4_0: 69 µs for 8 matvecs against 164 µs for the 16-token
/// tile); 4 for F32 (twice the bytes) and the K-quants (slower generic matvec).
fn matvec_max_tokens(ty: GgmlType) -> usize {
    match ty {
        GgmlType::F16
        | GgmlType::BF16
        | GgmlType::Q4_0
        | GgmlType::Q4_1
        | GgmlType::Q5_0
        | GgmlType::Q5_1
        | GgmlType::Q8_0 => 8,
        _ => 4,
    }
}

/// Which tile `matmul` uses for `rows × n_tokens` outputs of type `ty` on a device of
/// `compute_units`, from measurements on the H100 (132 SMs, see the gemm tests and
/// kernel_bench):
///
/// * when the 128 × 128 tile fills the device (a block for 90% of the compute units or
///   more: it runs one block per SM), that tile for the types whose decoding is costly,
///   as it decodes each weight once per 128 tokens (Q8_0 at 4096 × 4096 × 512 tokens:
///   33.5 TFLOP/s against 23 for 64 × 64); 64 × 64 for F32, F16, BF16 and Q3_K, 5–15%
///   faster there (more, smaller blocks per SM);
/// * else, when the 64 × 64 tile fills it, that one, except for the types whose narrow
///   tile measured faster (F32, F16, BF16, Q8_0, Q2_K at 1024 × 4096 × 512 tokens);
/// * else the narrow 32 × 16 tile, the one with most blocks.
fn gemm_tile(ty: GgmlType, rows: usize, n_tokens: usize, compute_units: usize) -> usize {
    let fills = |tile: usize| {
        let t = GEMM_TILES[tile];
        rows.div_ceil(t.rows) * n_tokens.div_ceil(t.tokens) * 10 >= compute_units * 9
    };
    let float = matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
    if fills(GEMM_L) {
        if float || ty == GgmlType::Q3_K {
            GEMM_M
        } else {
            GEMM_L
        }
    } else if fills(GEMM_M) && !(float || ty == GgmlType::Q8_0 || ty == GgmlType::Q2_K) {
        GEMM_M
    } else {
        GEMM_S
    }
}

/// A `rows × cols` weight matrix in device memory, in a ggml type: row `r` is the
/// `row_bytes(cols)` bytes at `r * row_bytes(cols)` (as [`crate::cpu::WeightMatrix`]).
#[derive(Clone, Copy)]
pub struct GpuWeights<'a> {
    ty: GgmlType,
    data: DeviceSlice<'a, u8>,
    rows: usize,
    cols: usize,
}

impl<'a> GpuWeights<'a> {
    /// Checks that `data` holds exactly `rows × cols` elements of `ty`.
    pub fn new(ty: GgmlType, data: DeviceSlice<'a, u8>, rows: usize, cols: usize) -> Result<Self> {
        const OP: &str = "gpu weights";
        if rows == 0 || cols == 0 || u32::try_from(rows).is_err() || u32::try_from(cols).is_err() {
            return Err(shape_error(
                OP,
                format!("{rows} × {cols}: both must be in 1..2^32"),
            ));
        }
        if cols % 32 != 0 {
            return Err(shape_error(
                OP,
                format!("{cols} columns: the GPU kernels need a multiple of 32"),
            ));
        }
        let expected = ty
            .row_bytes(cols)?
            .checked_mul(rows)
            .ok_or_else(|| shape_error(OP, "rows × row bytes overflows"))?;
        if data.device_ptr() as usize % 16 != 0 {
            return Err(shape_error(OP, "weights must start at a 16-byte-aligned device address (the kernels use vector loads)"));
        }
        if data.len() != expected {
            return Err(Error::DataSize {
                what: format!("{} weights of {rows} × {cols}", ty.name()),
                expected,
                actual: data.len(),
            });
        }
        Ok(Self {
            ty,
            data,
            rows,
            cols,
        })
    }

    /// The type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

#[derive(Debug, Clone)]
struct TypeKernels {
    matvec: TypedKernel<(In<u8>, In<f32>, Out<f32>, u32, u32)>,
    /// gemm.hip's kernels, one per entry of [`GEMM_TILES`].
    gemm: [TypedKernel<(In<u8>, In<f32>, Out<f32>, u32, u32, u32)>; 3],
    get_rows: TypedKernel<(In<u8>, In<u32>, Out<f32>, u32, u32, u32)>,
    dequantize_f32: TypedKernel<(In<u8>, Out<f32>, u64)>,
    dequantize_f16: TypedKernel<(In<u8>, Out<f16>, u64)>,
}

/// The kernels of `quant.hip` and `gemm.hip`, for every type in [`GPU_WEIGHT_TYPES`].
#[derive(Debug, Clone)]
pub struct QuantOps {
    kernels: HashMap<GgmlType, TypeKernels>,
    q8: Q8Kernels,
    warp_size: u32,
    compute_units: u32,
}

impl QuantOps {
    /// Loads the kernels.
    pub fn load(loader: &KernelLoader) -> Result<Self> {
        let module = loader.module(&QUANT)?;
        let gemm_module = loader.module(&GEMM)?;
        let mut kernels = HashMap::new();
        for ty in GPU_WEIGHT_TYPES {
            let name = ty.name();
            let f = |kind: &str| module.function(&format!("rf_{kind}_{name}"));
            let gemm = |tile: usize| {
                gemm_module.function(&format!("rf_gemm_{name}_{}", GEMM_TILES[tile].suffix))
            };
            // SAFETY: the signatures match quant.hip's RF_QUANT_KERNELS instances. The
            // kernels read only rows × row_bytes(cols) weight bytes, cols (× n_tokens)
            // inputs and write rows (× n_tokens) outputs, or n_ids × cols for get_rows
            // (ids are checked against rows on the device), or n_chunks × 32 for the
            // dequantizers; the launchers check each of those sizes. The gemm kernels
            // (gemm.hip: weights, X of n_tokens × cols, Y of n_tokens × rows, rows, cols,
            // n_tokens) read and write only inside those bounds too, for any grid: rows
            // and tokens past the ends are clamped on reads and skipped on writes.
            let entry = unsafe {
                TypeKernels {
                    matvec: f("matvec")?.into_typed(),
                    gemm: [
                        gemm(GEMM_L)?.into_typed(),
                        gemm(GEMM_M)?.into_typed(),
                        gemm(GEMM_S)?.into_typed(),
                    ],
                    get_rows: f("get_rows")?.into_typed(),
                    dequantize_f32: module
                        .function(&format!("rf_dequantize_{name}_f32"))?
                        .into_typed(),
                    dequantize_f16: module
                        .function(&format!("rf_dequantize_{name}_f16"))?
                        .into_typed(),
                }
            };
            kernels.insert(ty, entry);
        }
        let q8_module = loader.module(&QUANT_Q8)?;
        // SAFETY: the signature matches rf_quantize_q8_f32 (x, out, n, cols, row_bytes);
        // it reads n values of x and writes n / cols rows of row_bytes bytes, which
        // `quantize_activations` checks against both slices.
        let quantize = unsafe { q8_module.function("rf_quantize_q8_f32")?.into_typed() };
        let mut matvec = HashMap::new();
        for ty in Q8_MATVEC_TYPES {
            for &suffix in mvq_kernels(ty) {
                // SAFETY: the signature matches quant_q8.hip's rf_mvq_<type><suffix>
                // (weights, xq, y, rows, cols). A kernel reads rows × row_bytes(cols)
                // weight bytes, one quantized activation row of
                // q8_activation_row_bytes(cols) bytes and writes rows outputs, for any
                // grid of mvq_rows_per_block(suffix) rows per block (rows past the end
                // are clamped on reads and skipped on writes); `launch_mvq` checks each
                // of those sizes.
                let k = unsafe {
                    q8_module
                        .function(&format!("rf_mvq_{}{suffix}", ty.name()))?
                        .into_typed()
                };
                matvec.insert((ty, suffix), (k, mvq_rows_per_block(suffix)));
            }
        }
        let mut multi = HashMap::new();
        for ty in Q8_MATVEC_TYPES {
            let suffixes = mvqx_kernels(ty);
            let mixed = if suffixes.len() > 1 {
                Some(MVQX_MIXED)
            } else {
                None
            };
            for suffix in suffixes.iter().copied().chain(mixed) {
                // SAFETY: the signature matches quant_q8.hip's rf_mvqx_<type><suffix>
                // (RF_MVQX_PARAMS: w0, w1, w2, xq, residual, y0, y1, y2, rows0, rows1,
                // rows2, cols, codes). For any grid, a block computes rows of at most one
                // matrix m, as rf_mvq_<type><suffix> does with its block index: it reads
                // rows_m × row_bytes(cols) bytes of w_m, one quantized activation row of
                // q8_activation_row_bytes(cols) bytes, and (only for m = 0 with the
                // residual bit of `codes`) rows_0 residual values, and writes outputs
                // below rows_m of y_m; a slot with rows_m = 0 or an unknown code gets no
                // block and is never dereferenced. `launch_mvqx` checks each of those
                // sizes and passes 0 rows for unused slots.
                let k = unsafe {
                    q8_module
                        .function(&format!("rf_mvqx_{}{suffix}", ty.name()))?
                        .into_typed()
                };
                multi.insert((ty, suffix), k);
            }
        }
        let props = loader.device().properties();
        Ok(Self {
            kernels,
            q8: Q8Kernels {
                quantize,
                matvec,
                multi,
            },
            warp_size: props.warp_size,
            compute_units: props.compute_units.max(1),
        })
    }

    fn for_type(&self, op: &'static str, ty: GgmlType) -> Result<&TypeKernels> {
        self.kernels.get(&ty).ok_or_else(|| Error::UnsupportedType {
            op,
            type_name: ty.name().to_string(),
        })
    }

    /// One wave per unit of work, `waves` waves per block, `grid_y` blocks along y.
    fn waves_config(&self, units: usize, waves: u32, grid_y: usize) -> Result<LaunchConfig> {
        let blocks = units.div_ceil(waves as usize);
        let too_big =
            |what: &str| shape_error("matrix kernel", format!("too many {what} for one launch"));
        Ok(LaunchConfig {
            grid: Dim3::xy(
                u32::try_from(blocks).map_err(|_| too_big("rows"))?,
                u32::try_from(grid_y).map_err(|_| too_big("tokens"))?,
            ),
            block: Dim3::x(waves * self.warp_size),
            shared_mem_bytes: 0,
        })
    }

    fn rows_config(&self, rows: usize, grid_y: usize) -> Result<LaunchConfig> {
        self.waves_config(rows, ROWS_PER_BLOCK, grid_y)
    }

    /// `y = W · x` (`x`: `cols`, `y`: `rows`).
    pub fn matvec(
        &self,
        stream: &Stream,
        w: &GpuWeights<'_>,
        x: DeviceSlice<f32>,
        y: DeviceSliceMut<f32>,
    ) -> Result<()> {
        const OP: &str = "matvec";
        let k = self.for_type(OP, w.ty)?;
        if x.len() != w.cols || y.len() != w.rows {
            return Err(shape_error(
                OP,
                format!(
                    "W is {} × {}, x has {}, y has {}",
                    w.rows,
                    w.cols,
                    x.len(),
                    y.len()
                ),
            ));
        }
        if x.device_ptr() as usize % 16 != 0 {
            return Err(shape_error(
                OP,
                "x must start at a 16-byte-aligned device address (the kernels use vector loads)",
            ));
        }
        let rows_per_block = matvec_rows_per_wave(w.ty);
        let cfg = if rows_per_block > 1 {
            // A block of ROWS_PER_BLOCK waves per `rows_per_block` rows.
            self.waves_config(
                w.rows.div_ceil(rows_per_block) * ROWS_PER_BLOCK as usize,
                ROWS_PER_BLOCK,
                1,
            )?
        } else {
            self.rows_config(w.rows, 1)?
        };
        k.matvec
            .launch(stream, &cfg, (w.data, x, y, w.rows as u32, w.cols as u32))?;
        Ok(())
    }

    /// Quantizes `n_tokens` rows of `cols` activations (`x`: `[n_tokens, cols]`) to the
    /// 8-bit block format that [`QuantOps::matvec_q8`] reads: `out` holds
    /// [`q8_activation_bytes`]`(n_tokens, cols)` bytes, token `t` at
    /// `t * q8_activation_row_bytes(cols)`. One launch for all tokens; it allocates
    /// nothing, so it can be captured into a graph. Byte for byte what
    /// [`crate::cpu::quantize_activations`] computes.
    ///
    /// Errors if `cols` is not a positive multiple of 32, a length does not match, or
    /// `out` does not start 16-byte aligned. Nothing is launched for zero tokens.
    pub fn quantize_activations(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        n_tokens: usize,
        cols: usize,
        out: DeviceSliceMut<u8>,
    ) -> Result<()> {
        const OP: &str = "quantize_activations";
        if cols == 0 || cols % 32 != 0 || u32::try_from(cols).is_err() {
            return Err(shape_error(
                OP,
                format!("{cols} columns: 8-bit activations need a multiple of 32 in 32..2^32"),
            ));
        }
        let n = n_tokens.checked_mul(cols);
        if n != Some(x.len()) || out.len() != q8_activation_bytes(n_tokens, cols) {
            return Err(shape_error(
                OP,
                format!(
                    "{n_tokens} tokens of {cols}: x has {} values (expected {}), out has {} bytes \
                     (expected {})",
                    x.len(),
                    n.map_or_else(|| "an overflow".to_string(), |n| n.to_string()),
                    out.len(),
                    q8_activation_bytes(n_tokens, cols)
                ),
            ));
        }
        if out.device_ptr() as usize % 16 != 0 {
            return Err(shape_error(
                OP,
                "out must start at a 16-byte-aligned device address",
            ));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        let row_bytes = u32::try_from(q8_activation_row_bytes(cols))
            .map_err(|_| shape_error(OP, "a quantized row takes 2^32 bytes or more"))?;
        // Grid-stride: whole blocks of QUANTIZE_THREADS (a multiple of 32) so that every
        // 32-value group is inside or outside the range as a whole.
        let mut cfg = grid_stride_config(x.len())?;
        cfg.block = Dim3::x(QUANTIZE_THREADS);
        self.q8.quantize.launch(
            stream,
            &cfg,
            (x, out, x.len() as u64, cols as u32, row_bytes),
        )?;
        Ok(())
    }

    /// `y = W · x̂` for one token, `x̂` its activations quantized by
    /// [`QuantOps::quantize_activations`] (`xq`: [`q8_activation_row_bytes`]`(cols)`
    /// bytes, 16-byte aligned): integer dot products of the weight and activation quants,
    /// scaled in float per 32-element block, as llama.cpp's decode does. What
    /// [`crate::cpu::matvec_q8`] computes, up to f32 rounding; it differs from
    /// [`QuantOps::matvec`] (the exact reference with f32 activations) by the activation
    /// quantization error, typically a few 1e-3 relative. One of several kernels runs,
    /// chosen by type and number of rows (tuned on the H100). Allocates nothing
    /// (graph-capturable); the same `xq` serves every matrix that reads the same
    /// activations (Q, K and V).
    ///
    /// Errors if the type has no integer kernel ([`matvec_reads_q8`];
    /// [`Error::UnsupportedType`]), or a length or the alignment of `xq` is wrong.
    pub fn matvec_q8(
        &self,
        stream: &Stream,
        w: &GpuWeights<'_>,
        xq: DeviceSlice<u8>,
        y: DeviceSliceMut<f32>,
    ) -> Result<()> {
        const OP: &str = "matvec_q8";
        let suffix = mvq_variant(w.ty, w.rows, window_fits(w.cols));
        let (k, rows_per_block) =
            self.q8
                .matvec
                .get(&(w.ty, suffix))
                .ok_or_else(|| Error::UnsupportedType {
                    op: OP,
                    type_name: w.ty.name().to_string(),
                })?;
        self.launch_mvq(OP, suffix, k, *rows_per_block, stream, w, xq, y)
    }

    /// `y = residual + W · x̂`: [`QuantOps::matvec_q8`] with the residual added in the
    /// kernel's epilogue (`y[r] = residual[r] + dot_r`), in one launch. The same kernel
    /// variant as `matvec_q8` for the type and shape, and bit for bit what `matvec_q8`
    /// followed by [`ElementwiseOps::add`](super::ElementwiseOps::add) of `residual`
    /// computes. `residual` (`rows` values) and `y` are distinct buffers (the borrows
    /// make an alias impossible). Allocates nothing (graph-capturable).
    ///
    /// Errors as [`QuantOps::matvec_q8`], and if `residual` does not hold `rows` values.
    pub fn matvec_q8_add(
        &self,
        stream: &Stream,
        w: &GpuWeights<'_>,
        xq: DeviceSlice<u8>,
        residual: DeviceSlice<f32>,
        y: DeviceSliceMut<f32>,
    ) -> Result<()> {
        self.launch_mvqx("matvec_q8_add", stream, &[w], xq, Some(residual), &mut [y])
    }

    /// `ys[m] = ws[m] · x̂` for up to [`MATVEC_Q8_MULTI_MAX`] matrices of one type and
    /// width that read the same quantized activations (Q, K and V; gate and up), in one
    /// launch: its blocks are the concatenation of each matrix's `matvec_q8` grid, each
    /// running the kernel variant `matvec_q8` would run for that matrix, so every output
    /// is bit for bit that of a separate [`QuantOps::matvec_q8`] call. Allocates nothing
    /// (graph-capturable).
    ///
    /// Errors if there are no matrices or more than [`MATVEC_Q8_MULTI_MAX`], `ys` does not
    /// have one output per matrix, the matrices differ in type or columns, or as
    /// [`QuantOps::matvec_q8`] for any of them.
    pub fn matvec_q8_multi(
        &self,
        stream: &Stream,
        ws: &[&GpuWeights<'_>],
        xq: DeviceSlice<u8>,
        ys: &mut [DeviceSliceMut<f32>],
    ) -> Result<()> {
        self.launch_mvqx("matvec_q8_multi", stream, ws, xq, None, ys)
    }

    /// The kernel [`QuantOps::matvec_q8_multi`] runs for matrices of `ty` with these row
    /// counts: `rf_mvqx_` + this name; `None` for a type without an integer kernel or no
    /// matrices.
    #[doc(hidden)]
    pub fn matvec_q8_multi_choice(ty: GgmlType, rows: &[usize], cols: usize) -> Option<String> {
        let window = window_fits(cols);
        let first = mvq_variant(ty, *rows.first()?, window);
        let same = rows.iter().all(|&r| mvq_variant(ty, r, window) == first);
        matvec_reads_q8(ty).then(|| {
            let suffix = if same { first } else { MVQX_MIXED };
            format!("{}{suffix}", ty.name())
        })
    }

    fn launch_mvqx(
        &self,
        op: &'static str,
        stream: &Stream,
        ws: &[&GpuWeights<'_>],
        xq: DeviceSlice<u8>,
        residual: Option<DeviceSlice<f32>>,
        ys: &mut [DeviceSliceMut<f32>],
    ) -> Result<()> {
        let Some(w0) = ws.first() else {
            return Err(shape_error(op, "no matrices"));
        };
        if ws.len() > MATVEC_Q8_MULTI_MAX || ys.len() != ws.len() {
            return Err(shape_error(
                op,
                format!(
                    "{} matrices and {} outputs: one output per matrix, at most \
                     {MATVEC_Q8_MULTI_MAX} matrices",
                    ws.len(),
                    ys.len()
                ),
            ));
        }
        let (ty, cols) = (w0.ty, w0.cols);
        if !matvec_reads_q8(ty) {
            return Err(Error::UnsupportedType {
                op,
                type_name: ty.name().to_string(),
            });
        }
        if let Some(w) = ws.iter().find(|w| w.ty != ty || w.cols != cols) {
            return Err(shape_error(
                op,
                format!(
                    "matrices of one type and width: {} × {cols} with {} × {}",
                    ty.name(),
                    w.ty.name(),
                    w.cols
                ),
            ));
        }
        check_q8_input(op, ty, cols, &xq)?;
        for (m, (w, y)) in ws.iter().zip(ys.iter()).enumerate() {
            if y.len() != w.rows {
                return Err(shape_error(
                    op,
                    format!(
                        "matrix {m} is {} × {cols}: its output has {} values",
                        w.rows,
                        y.len()
                    ),
                ));
            }
        }
        if let Some(r) = &residual {
            if r.len() != w0.rows {
                return Err(shape_error(
                    op,
                    format!(
                        "W is {} × {cols}: the residual has {} values",
                        w0.rows,
                        r.len()
                    ),
                ));
            }
        }
        let suffixes: Vec<&'static str> = ws
            .iter()
            .map(|w| mvq_variant(ty, w.rows, window_fits(w.cols)))
            .collect();
        let key = if suffixes.iter().all(|&s| s == suffixes[0]) {
            suffixes[0]
        } else {
            MVQX_MIXED
        };
        let unsupported = || Error::UnsupportedType {
            op,
            type_name: format!("{} (variants {suffixes:?})", ty.name()),
        };
        let k = self.q8.multi.get(&(ty, key)).ok_or_else(unsupported)?;
        // The kernel's codes (unused slots: code 0, which no kernel has, and 0 rows) and
        // its grid: the sum of the matrices' own grids.
        let mut codes = 0u32;
        let mut blocks = 0usize;
        for (m, (w, &suffix)) in ws.iter().zip(&suffixes).enumerate() {
            if !mvqx_kernels(ty).contains(&suffix) {
                return Err(unsupported());
            }
            let rows_per_block = mvq_rows_per_block(suffix);
            let padded = w.rows.div_ceil(rows_per_block) * rows_per_block;
            if u32::try_from(padded).is_err() {
                return Err(shape_error(op, "too many rows for one launch"));
            }
            codes |= mvq_code(suffix) << (8 * m);
            blocks += w.rows.div_ceil(rows_per_block);
        }
        let blocks =
            u32::try_from(blocks).map_err(|_| shape_error(op, "too many rows for one launch"))?;
        // Stand-ins for the unused slots (never dereferenced: 0 rows, or no residual bit);
        // zero-length buffers allocate nothing, so this stays graph-capturable.
        let mut spare = [
            DeviceBuffer::<f32>::alloc(stream, 0)?,
            DeviceBuffer::<f32>::alloc(stream, 0)?,
        ];
        let no_residual = DeviceBuffer::<f32>::alloc(stream, 0)?;
        let residual = match residual {
            Some(r) => {
                codes |= MVQX_RESIDUAL_BIT;
                r
            }
            None => no_residual.as_slice(),
        };
        let data = |m: usize| ws.get(m).map_or(w0.data, |w| w.data);
        let rows = |m: usize| ws.get(m).map_or(0, |w| w.rows as u32);
        let (y0, rest) = ys
            .split_first_mut()
            .ok_or_else(|| shape_error(op, "no outputs"))?;
        let (y1, y2) = match rest {
            [] => {
                let [a, b] = &mut spare;
                (a.as_slice_mut(), b.as_slice_mut())
            }
            [y1] => (y1.slice_mut(..)?, spare[0].as_slice_mut()),
            [y1, y2] => (y1.slice_mut(..)?, y2.slice_mut(..)?),
            _ => return Err(shape_error(op, "too many outputs")),
        };
        let cfg = LaunchConfig {
            grid: Dim3::x(blocks),
            block: Dim3::x(MVQ_WAVES * self.warp_size),
            shared_mem_bytes: 0,
        };
        k.launch(
            stream,
            &cfg,
            (
                data(0),
                data(1),
                data(2),
                xq,
                residual,
                y0.slice_mut(..)?,
                y1,
                y2,
                rows(0),
                rows(1),
                rows(2),
                cols as u32,
                codes,
            ),
        )?;
        Ok(())
    }

    /// [`QuantOps::matvec_q8`] through one given kernel of the type (`variant`: the
    /// kernel name without `rf_mvq_`, e.g. `q4_0_s1`; see [`QuantOps::matvec_q8_variants`])
    /// instead of the one chosen for the shape. For tuning (kernel_bench --variants)
    /// and tests. Errors for an unknown variant or one of another type than `w`.
    #[doc(hidden)]
    pub fn matvec_q8_variant(
        &self,
        variant: &str,
        stream: &Stream,
        w: &GpuWeights<'_>,
        xq: DeviceSlice<u8>,
        y: DeviceSliceMut<f32>,
    ) -> Result<()> {
        const OP: &str = "matvec_q8_variant";
        let entry = variant.strip_prefix(w.ty.name()).and_then(|suffix| {
            self.q8
                .matvec
                .iter()
                .find(|((t, s), _)| *t == w.ty && *s == suffix)
        });
        let Some(((_, suffix), (k, rows_per_block))) = entry else {
            return Err(Error::UnsupportedType {
                op: OP,
                type_name: format!("{} (variant {variant})", w.ty.name()),
            });
        };
        self.launch_mvq(OP, suffix, k, *rows_per_block, stream, w, xq, y)
    }

    /// The kernels of `ty` that [`QuantOps::matvec_q8_variant`] takes (empty for a type
    /// without an integer kernel).
    #[doc(hidden)]
    pub fn matvec_q8_variants(&self, ty: GgmlType) -> Vec<String> {
        if !matvec_reads_q8(ty) {
            return Vec::new();
        }
        mvq_kernels(ty)
            .iter()
            .map(|suffix| format!("{}{suffix}", ty.name()))
            .collect()
    }

    /// The kernel [`QuantOps::matvec_q8`] runs for `rows` rows of `ty`, as a variant name
    /// of [`QuantOps::matvec_q8_variant`]; `None` for a type without an integer kernel.
    #[doc(hidden)]
    pub fn matvec_q8_choice(ty: GgmlType, rows: usize, cols: usize) -> Option<String> {
        let window = window_fits(cols);
        matvec_reads_q8(ty).then(|| format!("{}{}", ty.name(), mvq_variant(ty, rows, window)))
    }

    #[allow(clippy::too_many_arguments)]
    fn launch_mvq(
        &self,
        op: &'static str,
        suffix: &str,
        k: &MvqKernel,
        rows_per_block: usize,
        stream: &Stream,
        w: &GpuWeights<'_>,
        xq: DeviceSlice<u8>,
        y: DeviceSliceMut<f32>,
    ) -> Result<()> {
        check_q8_input(op, w.ty, w.cols, &xq)?;
        if y.len() != w.rows {
            return Err(shape_error(
                op,
                format!("W is {} × {}: y has {}", w.rows, w.cols, y.len()),
            ));
        }
        if is_window(suffix) && !window_fits(w.cols) {
            return Err(shape_error(
                op,
                format!(
                    "kernel {}{suffix} needs a multiple of {WINDOW_SPAN_COLS} columns ({} columns)",
                    w.ty.name(),
                    w.cols
                ),
            ));
        }
        let blocks = u32::try_from(w.rows.div_ceil(rows_per_block))
            .map_err(|_| shape_error(op, "too many rows for one launch"))?;
        let cfg = LaunchConfig {
            grid: Dim3::x(blocks),
            block: Dim3::x(MVQ_WAVES * self.warp_size),
            shared_mem_bytes: 0,
        };
        k.launch(stream, &cfg, (w.data, xq, y, w.rows as u32, w.cols as u32))?;
        Ok(())
    }

    /// `Y[t] = W · X[t]` for `n_tokens` tokens (`X`: `[n_tokens, cols]`, `Y`: `[n_tokens, rows]`).
    ///
    /// A tiled product (gemm.hip) whose tile is chosen by the shape and type; for a few
    /// tokens (4 or 8, by type) with a 16-byte-aligned `X`, the matrix × vector kernel
    /// once per token. `X` may have any alignment.
    pub fn matmul(
        &self,
        stream: &Stream,
        w: &GpuWeights<'_>,
        x: DeviceSlice<f32>,
        n_tokens: usize,
        y: DeviceSliceMut<f32>,
    ) -> Result<()> {
        const OP: &str = "matmul";
        let k = self.for_type(OP, w.ty)?;
        let x_len = n_tokens.checked_mul(w.cols);
        let y_len = n_tokens.checked_mul(w.rows);
        if x_len != Some(x.len()) || y_len != Some(y.len()) || u32::try_from(n_tokens).is_err() {
            return Err(shape_error(
                OP,
                format!(
                    "W is {} × {}, {n_tokens} tokens, X has {}, Y has {}",
                    w.rows,
                    w.cols,
                    x.len(),
                    y.len()
                ),
            ));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        if n_tokens <= matvec_max_tokens(w.ty) && x.device_ptr() as usize % 16 == 0 {
            let mut y = y;
            for t in 0..n_tokens {
                let xt = x.slice(t * w.cols..(t + 1) * w.cols)?;
                let yt = y.slice_mut(t * w.rows..(t + 1) * w.rows)?;
                self.matvec(stream, w, xt, yt)?;
            }
            return Ok(());
        }
        let tile_index = gemm_tile(w.ty, w.rows, n_tokens, self.compute_units as usize);
        let tile = GEMM_TILES[tile_index];
        let too_big = |what: &str| shape_error(OP, format!("too many {what} for one launch"));
        // Tokens along x (consecutive blocks share a tile of weight rows), rows along y,
        // whose limit is 65535 blocks on NVIDIA (and at least that on AMD).
        let row_blocks = w.rows.div_ceil(tile.rows);
        if row_blocks > u16::MAX as usize {
            return Err(too_big("rows"));
        }
        let cfg = LaunchConfig {
            grid: Dim3::xy(
                u32::try_from(n_tokens.div_ceil(tile.tokens)).map_err(|_| too_big("tokens"))?,
                row_blocks as u32,
            ),
            block: Dim3::x(tile.threads),
            shared_mem_bytes: 0,
        };
        k.gemm[tile_index].launch(
            stream,
            &cfg,
            (w.data, x, y, w.rows as u32, w.cols as u32, n_tokens as u32),
        )?;
        Ok(())
    }

    /// `out[i] = W[ids[i]]` (embedding lookup). An id past the table gives a row of NaN
    /// (ids live on the device, so they are checked there).
    pub fn get_rows(
        &self,
        stream: &Stream,
        w: &GpuWeights<'_>,
        ids: DeviceSlice<u32>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        const OP: &str = "get_rows";
        let k = self.for_type(OP, w.ty)?;
        if ids.len().checked_mul(w.cols) != Some(out.len()) || u32::try_from(ids.len()).is_err() {
            return Err(shape_error(
                OP,
                format!(
                    "{} ids of {} columns, output has {}",
                    ids.len(),
                    w.cols,
                    out.len()
                ),
            ));
        }
        let threads = ids.len() * (w.cols / 32);
        if threads == 0 {
            return Ok(());
        }
        let cfg = LaunchConfig::for_elements(threads, 256)?;
        k.get_rows.launch(
            stream,
            &cfg,
            (
                w.data,
                ids,
                out,
                ids.len() as u32,
                w.rows as u32,
                w.cols as u32,
            ),
        )?;
        Ok(())
    }

    fn dequantize_chunks(w: &GpuWeights<'_>, out_len: usize) -> Result<usize> {
        let n = w.rows * w.cols;
        if out_len != n {
            return Err(shape_error(
                "dequantize",
                format!("{} × {} weights, output has {out_len}", w.rows, w.cols),
            ));
        }
        Ok(n / 32)
    }

    /// The whole matrix to f32, row-major.
    pub fn dequantize_f32(
        &self,
        stream: &Stream,
        w: &GpuWeights<'_>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        let k = self.for_type("dequantize", w.ty)?;
        let chunks = Self::dequantize_chunks(w, out.len())?;
        k.dequantize_f32.launch(
            stream,
            &LaunchConfig::for_elements(chunks, 256)?,
            (w.data, out, chunks as u64),
        )?;
        Ok(())
    }

    /// The whole matrix to f16, row-major.
    pub fn dequantize_f16(
        &self,
        stream: &Stream,
        w: &GpuWeights<'_>,
        out: DeviceSliceMut<f16>,
    ) -> Result<()> {
        let k = self.for_type("dequantize", w.ty)?;
        let chunks = Self::dequantize_chunks(w, out.len())?;
        k.dequantize_f16.launch(
            stream,
            &LaunchConfig::for_elements(chunks, 256)?,
            (w.data, out, chunks as u64),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H100_SMS: usize = 132;

    #[test]
    fn gemm_tile_follows_the_h100_measurements() {
        let tile = |ty, rows, n| GEMM_TILES[gemm_tile(ty, rows, n, H100_SMS)].suffix;
        // Llama-3-8B prefill at 512 tokens.
        assert_eq!(tile(GgmlType::Q4_K, 4096, 512), "l");
        assert_eq!(tile(GgmlType::Q8_0, 14336, 512), "l");
        assert_eq!(tile(GgmlType::F16, 4096, 512), "m");
        assert_eq!(tile(GgmlType::Q3_K, 14336, 512), "m");
        assert_eq!(tile(GgmlType::Q4_0, 1024, 512), "m");
        assert_eq!(tile(GgmlType::F32, 1024, 512), "s");
        assert_eq!(tile(GgmlType::Q8_0, 1024, 512), "s");
        // Few tokens: only the narrow tile has enough blocks.
        for ty in GPU_WEIGHT_TYPES {
            assert_eq!(tile(ty, 4096, 9), "s");
            assert_eq!(tile(ty, 4096, 64), "s");
            assert_eq!(tile(ty, 37, 512), "s");
        }
    }

    #[test]
    fn mvq_tables_match_the_kernel_source() {
        // The launch bounds of some kernels (RF_MVC_BOUNDS) do not change what they run.
        let src = QUANT_Q8
            .source
            .replace("__global__ RF_MVC_BOUNDS void", "__global__ void");
        let src = src.as_str();
        assert!(src.contains(&format!("#define RF_MVQ_WAVES {MVQ_WAVES}\n")));
        for ty in Q8_MATVEC_TYPES {
            let name = ty.name();
            let def = format!("#define RF_MVQ_ROWS_{name} {MVQ_DEFAULT_ROWS}\n");
            assert!(src.contains(&def), "quant_q8.hip defines {def}");
            for &suffix in mvq_kernels(ty) {
                let kernel = format!("rf_mvq_{name}{suffix}");
                assert!(
                    QUANT_Q8.kernels.contains(&kernel.as_str()),
                    "{kernel} is listed"
                );
                let rows = mvq_rows_per_block(suffix);
                let body = match suffix.as_bytes().get(1) {
                    None => format!("void {kernel}(RF_MVQ_PARAMS) {{ RF_MVQ_CALL({name}); }}"),
                    Some(b'r') => {
                        format!("void {kernel}(RF_MVQ_PARAMS) {{ rf_mvq<rf_q8dot_{name}, {rows}>(")
                    }
                    Some(b'c') => {
                        format!("void {kernel}(RF_MVQ_PARAMS) {{ rf_mvc<rf_q8dot_{name}, {rows}>(")
                    }
                    Some(_) => format!(
                        "void {kernel}(RF_MVQ_PARAMS) {{ rf_mvqs<rf_q8dot_{name}, {}>(",
                        rows / MVQ_WAVES as usize
                    ),
                };
                assert!(src.contains(&body), "quant_q8.hip has {body}");
            }
            for rows in [1, 1024, 2048, 4096, 14336, 32768, 128256] {
                for window in [false, true] {
                    assert!(mvq_kernels(ty).contains(&mvq_variant(ty, rows, window)));
                }
            }
        }
        // Every listed matvec kernel is in a table.
        let listed = QUANT_Q8
            .kernels
            .iter()
            .filter(|k| k.starts_with("rf_mvq_"))
            .count();
        let tabled: usize = Q8_MATVEC_TYPES.iter().map(|&t| mvq_kernels(t).len()).sum();
        assert_eq!(listed, tabled);
        for ty in GPU_WEIGHT_TYPES {
            assert_eq!(matvec_reads_q8(ty), crate::cpu::q8_matvec_supported(ty));
        }
        assert_eq!(q8_activation_row_bytes(4096), 5120);
        assert_eq!(q8_activation_bytes(2, 96), 256);
    }

    /// Row counts on both sides of every size class of [`mvq_variant`].
    const MVQ_ROW_SWEEP: [usize; 12] = [
        1, 7, 192, 576, 2048, 2049, 4096, 8191, 8192, 14336, 32767, 32768,
    ];

    #[test]
    fn mvqx_tables_match_mvq_variant_and_the_kernel_source() {
        // The launch bounds of some kernels (RF_MVC_BOUNDS) do not change what they run.
        let src = QUANT_Q8
            .source
            .replace("__global__ RF_MVC_BOUNDS void", "__global__ void");
        let src = src.as_str();
        let template_arg = |name: &str, suffix: &str| -> String {
            if let Some(n) = suffix.strip_prefix("_r") {
                format!("RF_MVQ_D({n})")
            } else if let Some(n) = suffix.strip_prefix("_s") {
                format!("RF_MVQ_S({n})")
            } else if let Some(n) = suffix.strip_prefix("_c") {
                format!("RF_MVQ_C({n})")
            } else {
                format!("RF_MVQ_D(RF_MVQ_ROWS_{name})")
            }
        };
        let mut listed = 0;
        for ty in Q8_MATVEC_TYPES {
            let name = ty.name();
            let table = mvqx_kernels(ty);
            // Every variant mvq_variant picks has a kernel, and every kernel is picked.
            for rows in MVQ_ROW_SWEEP.into_iter().chain([128_256, 1 << 20]) {
                for window in [false, true] {
                    let v = mvq_variant(ty, rows, window);
                    assert!(table.contains(&v), "{name} {rows} rows");
                    if window {
                        assert_eq!(is_window(v), table.iter().any(|s| is_window(s)));
                    }
                }
            }
            for suffix in table {
                assert!(
                    mvq_kernels(ty).contains(suffix),
                    "{name}{suffix} is a variant"
                );
                assert!(
                    MVQ_ROW_SWEEP.iter().any(|&r| {
                        [false, true]
                            .iter()
                            .any(|&win| mvq_variant(ty, r, win) == *suffix)
                    }),
                    "{name}{suffix} is chosen for some shape"
                );
                let kernel = format!("rf_mvqx_{name}{suffix}");
                let body = format!(
                    "void {kernel}(RF_MVQX_PARAMS) {{ rf_mvqx<rf_q8dot_{name}, {}>(RF_MVQX_ARGS); }}",
                    template_arg(name, suffix)
                );
                assert!(src.contains(&body), "quant_q8.hip has {body}");
                assert!(
                    QUANT_Q8.kernels.contains(&kernel.as_str()),
                    "{kernel} is listed"
                );
                listed += 1;
            }
            let mixed = format!("rf_mvqx_{name}{MVQX_MIXED}");
            if table.len() > 1 {
                let args: Vec<String> = table.iter().map(|s| template_arg(name, s)).collect();
                let body = format!(
                    "void {mixed}(RF_MVQX_PARAMS) {{ rf_mvqx<rf_q8dot_{name}, {}>(RF_MVQX_ARGS); }}",
                    args.join(", ")
                );
                assert!(src.contains(&body), "quant_q8.hip has {body}");
                assert!(
                    QUANT_Q8.kernels.contains(&mixed.as_str()),
                    "{mixed} is listed"
                );
                listed += 1;
            } else {
                assert!(!src.contains(&mixed));
            }
            // The codes agree with rf_mvqv (16 · family + rows) and the rows per block.
            for suffix in mvq_kernels(ty) {
                let code = mvq_code(suffix) as usize;
                let rows = if code / 16 == 1 {
                    (code - 16) * MVQ_WAVES as usize
                } else {
                    code % 16
                };
                assert_eq!(rows, mvq_rows_per_block(suffix), "{name}{suffix}");
                assert!(code < 48 && code % 16 > 0, "codes fit a byte and are not 0");
            }
        }
        assert_eq!(
            QUANT_Q8
                .kernels
                .iter()
                .filter(|k| k.starts_with("rf_mvqx_"))
                .count(),
            listed,
            "every listed rf_mvqx kernel is in a table"
        );
        assert!(src.contains("enum { CODE = 16 * FAMILY + ROWS };"));
        assert_eq!(MVQX_RESIDUAL_BIT, 1 << 24);
        assert!(src.contains("if ((codes >> 24) & 1u) res = residual;"));
    }

    #[test]
    fn mvqx_choice_runs_one_variant_when_the_shapes_agree() {
        let pick =
            |ty, rows: &[usize], cols| QuantOps::matvec_q8_multi_choice(ty, rows, cols).unwrap();
        // SmolLM2-135M: Q 576, K and V 192 rows over 576 columns (no window kernel).
        assert_eq!(pick(GgmlType::Q8_0, &[576, 192, 192], 576), "q8_0_r1");
        assert_eq!(pick(GgmlType::Q4_0, &[1536, 1536], 576), "q4_0_r1");
        // Q 4096 (direct, 4 rows), K and V 1024 (direct, 1 row) where the window kernel
        // does not fit; all on the window kernel where it does.
        assert_eq!(pick(GgmlType::Q4_0, &[4096, 1024, 1024], 576), "q4_0_mixed");
        assert_eq!(
            pick(GgmlType::Q4_K, &[4096, 1024, 1024], 4096),
            "q4_K_mixed"
        );
        assert_eq!(pick(GgmlType::Q5_K, &[1024, 1024], 4096), "q5_K_c2");
        assert_eq!(pick(GgmlType::Q6_K, &[14336, 14336], 4096), "q6_K_s1");
        assert_eq!(pick(GgmlType::Q4_1, &[4096, 1024, 1024], 576), "q4_1");
        assert_eq!(pick(GgmlType::Q4_1, &[4096, 1024, 1024], 4096), "q4_1_c2");
        assert_eq!(pick(GgmlType::Q4_0, &[4096, 1024, 1024], 4096), "q4_0_c2");
        assert_eq!(pick(GgmlType::Q5_0, &[128256, 1024], 4096), "q5_0_mixed");
        assert_eq!(pick(GgmlType::Q8_0, &[4096, 1024, 1024], 4096), "q8_0_c2");
        assert_eq!(
            QuantOps::matvec_q8_multi_choice(GgmlType::F16, &[4], 4096),
            None
        );
        assert_eq!(
            QuantOps::matvec_q8_multi_choice(GgmlType::Q4_0, &[], 4096),
            None
        );
    }

    #[test]
    fn mvq_choice_follows_the_h100_measurements() {
        // Widths that are not whole spans of 256 (576: SmolLM2), then Llama-3-8B's.
        let pick = |ty, rows| QuantOps::matvec_q8_choice(ty, rows, 576).unwrap();
        assert_eq!(pick(GgmlType::Q4_0, 1024), "q4_0_r1");
        assert_eq!(pick(GgmlType::Q4_0, 14336), "q4_0");
        assert_eq!(pick(GgmlType::Q8_0, 4096), "q8_0_r1");
        assert_eq!(pick(GgmlType::Q8_0, 128256), "q8_0_s1");
        assert_eq!(pick(GgmlType::Q5_0, 14336), "q5_0_s1");
        assert_eq!(pick(GgmlType::Q5_0, 4096), "q5_0_s1");
        let pick = |ty, rows| QuantOps::matvec_q8_choice(ty, rows, 4096).unwrap();
        assert_eq!(pick(GgmlType::Q4_0, 1024), "q4_0_c2");
        assert_eq!(pick(GgmlType::Q4_0, 14336), "q4_0_c2");
        assert_eq!(pick(GgmlType::Q5_0, 128256), "q5_0_c4");
        assert_eq!(pick(GgmlType::Q8_0, 128256), "q8_0_c2");
        assert_eq!(pick(GgmlType::Q4_1, 1024), "q4_1_c2");
        assert_eq!(pick(GgmlType::Q4_1, 4096), "q4_1_c2");
        assert_eq!(pick(GgmlType::Q4_K, 4096), "q4_K_c4");
        assert_eq!(pick(GgmlType::Q5_K, 1024), "q5_K_c2");
        assert_eq!(pick(GgmlType::Q6_K, 128256), "q6_K_s2");
        assert_eq!(QuantOps::matvec_q8_choice(GgmlType::F16, 4096, 4096), None);
        assert_eq!(mvq_rows_per_block(""), 4);
        assert_eq!(mvq_rows_per_block("_r1"), 1);
        assert_eq!(mvq_rows_per_block("_s2"), 8);
    }

    #[test]
    fn gemm_tiles_match_the_kernel_shapes() {
        for t in GEMM_TILES {
            assert!(t.threads % 64 == 0, "block sizes are multiples of 64");
            assert!(t.rows % 32 == 0 && t.tokens % 16 == 0);
        }
        assert_eq!(
            GEMM_TILES.map(|t| t.suffix),
            ["l", "m", "s"],
            "indices GEMM_L, GEMM_M, GEMM_S"
        );
        let src = crate::GEMM.source;
        for (t, name) in GEMM_TILES.iter().zip(["L", "M", "S"]) {
            let def = format!("#define RF_GEMM_{name} {}, {}, ", t.rows, t.tokens);
            assert!(src.contains(&def), "gemm.hip defines {def}…");
            assert!(src.contains(&format!(
                "__launch_bounds__({}) void rf_gemm_f32_{}(",
                t.threads, t.suffix
            )));
        }
    }
}
