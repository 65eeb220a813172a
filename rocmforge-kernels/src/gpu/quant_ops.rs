//! Matrix × vector, matrix × matrix, row lookup and dequantization over weights stored
//! in ggml block formats, on the GPU.

use std::collections::HashMap;

use half::f16;
use rocmforge_hip::{
    DeviceMemory, DeviceSlice, DeviceSliceMut, Dim3, In, LaunchConfig, Out, Stream, TypedKernel,
};

use super::KernelLoader;
use crate::error::shape_error;
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
        let props = loader.device().properties();
        Ok(Self {
            kernels,
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
