//! RMSNorm, LayerNorm and softmax on the GPU: one block per row.

use rocmforge_hip::{
    DeviceMemory, DeviceSlice, DeviceSliceMut, In, LaunchConfig, Out, Stream, TypedKernel,
};

use super::KernelLoader;
use crate::error::shape_error;
use crate::{Result, NORM};

/// Threads per row block: a multiple of every wave size.
const ROW_BLOCK: u32 = 256;

/// The kernels of `norm.hip`.
#[derive(Debug, Clone)]
pub struct NormOps {
    rms_norm: TypedKernel<(In<f32>, In<f32>, Out<f32>, u32, f32)>,
    layer_norm: TypedKernel<(In<f32>, In<f32>, In<f32>, Out<f32>, u32, f32, u32)>,
    softmax: TypedKernel<(In<f32>, Out<f32>, u32, f32)>,
}

/// Checks `rows × n` against the operands and returns the row config.
fn rows_config(
    op: &'static str,
    rows: usize,
    n: usize,
    lens: &[(&str, usize, usize)],
) -> Result<LaunchConfig> {
    if n == 0 || u32::try_from(n).is_err() {
        return Err(shape_error(
            op,
            format!("row length {n} must be in 1..2^32"),
        ));
    }
    let total = rows
        .checked_mul(n)
        .ok_or_else(|| shape_error(op, format!("{rows} rows × {n} overflow")))?;
    for &(name, len, expected) in lens {
        let expected = if expected == usize::MAX {
            total
        } else {
            expected
        };
        if len != expected {
            return Err(shape_error(
                op,
                format!("{name} has {len} elements, expected {expected}"),
            ));
        }
    }
    Ok(LaunchConfig::per_row(rows, ROW_BLOCK)?)
}

impl NormOps {
    /// Loads the kernels.
    pub fn load(loader: &KernelLoader) -> Result<Self> {
        let module = loader.module(&NORM)?;
        // SAFETY: signatures match norm.hip; each block touches only row blockIdx.x of n
        // elements and the weight/bias vectors of n, and the launchers check rows × n
        // against every operand and launch exactly `rows` blocks.
        unsafe {
            Ok(Self {
                rms_norm: module.function("rf_rms_norm_f32")?.into_typed(),
                layer_norm: module.function("rf_layer_norm_f32")?.into_typed(),
                softmax: module.function("rf_softmax_f32")?.into_typed(),
            })
        }
    }

    /// RMSNorm of each of `rows` rows of `n`, times `weight` (length `n`).
    pub fn rms_norm(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        weight: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
        rows: usize,
        n: usize,
        eps: f32,
    ) -> Result<()> {
        let cfg = rows_config(
            "rms_norm",
            rows,
            n,
            &[
                ("x", x.len(), usize::MAX),
                ("out", out.len(), usize::MAX),
                ("weight", weight.len(), n),
            ],
        )?;
        if rows == 0 {
            return Ok(());
        }
        self.rms_norm
            .launch(stream, &cfg, (x, weight, out, n as u32, eps))?;
        Ok(())
    }

    /// LayerNorm of each row, times `weight`, plus `bias` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn layer_norm(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        weight: DeviceSlice<f32>,
        bias: Option<DeviceSlice<f32>>,
        out: DeviceSliceMut<f32>,
        rows: usize,
        n: usize,
        eps: f32,
    ) -> Result<()> {
        let bias_len = bias.as_ref().map_or(n, |b| b.len());
        let cfg = rows_config(
            "layer_norm",
            rows,
            n,
            &[
                ("x", x.len(), usize::MAX),
                ("out", out.len(), usize::MAX),
                ("weight", weight.len(), n),
                ("bias", bias_len, n),
            ],
        )?;
        if rows == 0 {
            return Ok(());
        }
        // Without a bias the kernel never reads it: pass the weight as a stand-in pointer.
        let (bias, has_bias) = match bias {
            Some(b) => (b, 1),
            None => (weight, 0),
        };
        self.layer_norm.launch(
            stream,
            &cfg,
            (x, weight, bias, out, n as u32, eps, has_bias),
        )?;
        Ok(())
    }

    /// Softmax of `scale * x` over each of `rows` rows of `n`.
    pub fn softmax(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
        rows: usize,
        n: usize,
        scale: f32,
    ) -> Result<()> {
        let cfg = rows_config(
            "softmax",
            rows,
            n,
            &[("x", x.len(), usize::MAX), ("out", out.len(), usize::MAX)],
        )?;
        if rows == 0 {
            return Ok(());
        }
        self.softmax
            .launch(stream, &cfg, (x, out, n as u32, scale))?;
        Ok(())
    }
}
