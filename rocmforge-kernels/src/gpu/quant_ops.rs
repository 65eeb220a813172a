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
use crate::{Error, Result, QUANT};

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

/// Rows (one wave each) per block of the matvec and matmul kernels.
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

/// Tokens per block of the matmul kernel (`RF_MATMUL_TOKENS` in quant.hip).
const MATMUL_TOKENS: usize = 8;

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
    matmul: TypedKernel<(In<u8>, In<f32>, Out<f32>, u32, u32, u32)>,
    get_rows: TypedKernel<(In<u8>, In<u32>, Out<f32>, u32, u32, u32)>,
    dequantize_f32: TypedKernel<(In<u8>, Out<f32>, u64)>,
    dequantize_f16: TypedKernel<(In<u8>, Out<f16>, u64)>,
}

/// The kernels of `quant.hip`, for every type in [`GPU_WEIGHT_TYPES`].
#[derive(Debug, Clone)]
pub struct QuantOps {
    kernels: HashMap<GgmlType, TypeKernels>,
    warp_size: u32,
}

impl QuantOps {
    /// Loads the kernels.
    pub fn load(loader: &KernelLoader) -> Result<Self> {
        let module = loader.module(&QUANT)?;
        let mut kernels = HashMap::new();
        for ty in GPU_WEIGHT_TYPES {
            let name = ty.name();
            let f = |kind: &str| module.function(&format!("rf_{kind}_{name}"));
            // SAFETY: the signatures match quant.hip's RF_QUANT_KERNELS instances. The
            // kernels read only rows × row_bytes(cols) weight bytes, cols (× n_tokens)
            // inputs and write rows (× n_tokens) outputs, or n_ids × cols for get_rows
            // (ids are checked against rows on the device), or n_chunks × 32 for the
            // dequantizers; the launchers check each of those sizes.
            let entry = unsafe {
                TypeKernels {
                    matvec: f("matvec")?.into_typed(),
                    matmul: f("matmul")?.into_typed(),
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
        Ok(Self {
            kernels,
            warp_size: loader.device().properties().warp_size,
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
        let cfg = self.rows_config(w.rows, n_tokens.div_ceil(MATMUL_TOKENS))?;
        k.matmul.launch(
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
