//! RMSNorm, LayerNorm and softmax on the GPU: one block per row. RMSNorm also fused
//! with the 8-bit activation quantization that the integer matvec reads.

use rocmforge_hip::{
    DeviceBuffer, DeviceMemory, DeviceSlice, DeviceSliceMut, In, LaunchConfig, Out, Stream,
    TypedKernel,
};

use super::KernelLoader;
use crate::cpu::q8_activations::{q8_activation_bytes, q8_row_bytes};
use crate::error::shape_error;
use crate::{Result, NORM};

/// Threads per row block: a multiple of every wave size, and the most a block takes, so
/// that a decode step's single row is spread over as many lanes as one block has (4
/// values each for a 4096-wide row: one batch of loads per pass).
const ROW_BLOCK: u32 = 1024;

/// The kernels of `norm.hip`.
#[derive(Debug, Clone)]
pub struct NormOps {
    rms_norm: TypedKernel<(In<f32>, In<f32>, Out<f32>, u32, f32)>,
    layer_norm: TypedKernel<(In<f32>, In<f32>, In<f32>, Out<f32>, u32, f32, u32)>,
    softmax: TypedKernel<(In<f32>, Out<f32>, u32, f32)>,
    rms_norm_q8: TypedKernel<(In<f32>, In<f32>, Out<f32>, Out<u8>, u32, f32, u32, u32)>,
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
        // against every operand and launch exactly `rows` blocks. rf_rms_norm_q8_f32
        // (x, weight, out, outq, n, eps, row_bytes, write_f32) also writes bytes
        // [row · row_bytes, (row + 1) · row_bytes) of outq (row_bytes =
        // q8_row_bytes(n), n a multiple of 32, outq 16-byte aligned: the launcher checks
        // outq's length rows × row_bytes and its alignment), and touches `out` only when
        // write_f32 is 1, where the launcher checks it holds rows × n values.
        unsafe {
            Ok(Self {
                rms_norm: module.function("rf_rms_norm_f32")?.into_typed(),
                layer_norm: module.function("rf_layer_norm_f32")?.into_typed(),
                softmax: module.function("rf_softmax_f32")?.into_typed(),
                rms_norm_q8: module.function("rf_rms_norm_q8_f32")?.into_typed(),
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

    /// [`rms_norm`](Self::rms_norm) fused with
    /// [`QuantOps::quantize_activations`](super::QuantOps::quantize_activations), in one
    /// launch: `out_q8` gets the 8-bit quantization of `y = rmsnorm(x) · weight`
    /// ([`q8_activation_bytes`](super::q8_activation_bytes)`(rows, n)` bytes, 16-byte
    /// aligned), byte for byte what `quantize_activations` writes for the output of
    /// `rms_norm`, and `out_f32`, when given, `y` itself, bit for bit `rms_norm`'s output.
    /// Allocates nothing (graph-capturable).
    ///
    /// Errors if `n` is not a positive multiple of 32 (the quantization blocks), a length
    /// does not match, or `out_q8` is not 16-byte aligned. Nothing is launched for 0 rows.
    pub fn rms_norm_q8(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        weight: DeviceSlice<f32>,
        rows: usize,
        n: usize,
        eps: f32,
        out_f32: Option<DeviceSliceMut<f32>>,
        out_q8: DeviceSliceMut<u8>,
    ) -> Result<()> {
        const OP: &str = "rms_norm_q8";
        if n % 32 != 0 {
            return Err(shape_error(
                OP,
                format!("row length {n}: 8-bit activations need a multiple of 32"),
            ));
        }
        // Without an f32 output, x's length stands in for it (checked against rows × n
        // all the same).
        let out_len = out_f32.as_ref().map_or(x.len(), |o| o.len());
        let cfg = rows_config(
            OP,
            rows,
            n,
            &[
                ("x", x.len(), usize::MAX),
                ("out_f32", out_len, usize::MAX),
                ("weight", weight.len(), n),
            ],
        )?;
        // (q8_activation_bytes saturates at usize::MAX, which no buffer matches.)
        let q8_len = q8_activation_bytes(rows, n);
        if out_q8.len() != q8_len {
            return Err(shape_error(
                OP,
                format!("out_q8 has {} bytes, expected {q8_len}", out_q8.len()),
            ));
        }
        if out_q8.device_ptr() as usize % 16 != 0 {
            return Err(shape_error(
                OP,
                "out_q8 must start at a 16-byte-aligned device address",
            ));
        }
        let row_bytes = u32::try_from(q8_row_bytes(n))
            .map_err(|_| shape_error(OP, "a quantized row takes 2^32 bytes or more"))?;
        if rows == 0 {
            return Ok(());
        }
        // Without an f32 output the kernel never touches `out`: an empty stand-in
        // (zero-length buffers allocate nothing).
        let mut none = DeviceBuffer::<f32>::alloc(stream, 0)?;
        let (out, write_f32) = match out_f32 {
            Some(o) => (o, 1),
            None => (none.as_slice_mut(), 0),
        };
        self.rms_norm_q8.launch(
            stream,
            &cfg,
            (x, weight, out, out_q8, n as u32, eps, row_bytes, write_f32),
        )?;
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
