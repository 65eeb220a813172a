//! Elementwise ops and casts on the GPU.

use bytemuck::Pod;
use half::{bf16, f16};
use rocmforge_hip::{DeviceMemory, DeviceSlice, DeviceSliceMut, In, Out, Stream, TypedKernel};

use super::{grid_stride_config, KernelLoader};
use crate::cpu::q8_activations::{q8_activation_bytes, q8_row_bytes};
use crate::error::shape_error;
use crate::{Result, ELEMENTWISE};

type Binary = TypedKernel<(In<f32>, In<f32>, Out<f32>, u64)>;

// rf_swiglu_q8_f32 needs every 32-value quantization block in one aligned 32-lane group:
// blocks (and so the grid stride) of a multiple of 32 threads.
const _: () = assert!(super::ELEMENTWISE_BLOCK % 32 == 0);
type Unary = TypedKernel<(In<f32>, Out<f32>, u64)>;

/// The kernels of `elementwise.hip`.
#[derive(Debug, Clone)]
pub struct ElementwiseOps {
    add: Binary,
    mul: Binary,
    swiglu: Binary,
    scale: TypedKernel<(In<f32>, Out<f32>, f32, u64)>,
    silu: Unary,
    gelu: Unary,
    f32_to_f16: TypedKernel<(In<f32>, Out<f16>, u64)>,
    f16_to_f32: TypedKernel<(In<f16>, Out<f32>, u64)>,
    f32_to_bf16: TypedKernel<(In<f32>, Out<bf16>, u64)>,
    bf16_to_f32: TypedKernel<(In<bf16>, Out<f32>, u64)>,
    add_bias_rows: TypedKernel<(Out<f32>, In<f32>, u64, u64)>,
    swiglu_q8: TypedKernel<(In<f32>, In<f32>, Out<u8>, u64, u32, u32)>,
}

fn same_len(op: &'static str, lens: &[usize]) -> Result<usize> {
    let n = lens[0];
    if lens.iter().any(|&l| l != n) {
        return Err(shape_error(
            op,
            format!("all operands must have the same length, got {lens:?}"),
        ));
    }
    Ok(n)
}

impl ElementwiseOps {
    /// Loads the kernels (compiling them at first use).
    pub fn load(loader: &KernelLoader) -> Result<Self> {
        let module = loader.module(&ELEMENTWISE)?;
        // SAFETY (every into_typed below): the signatures match elementwise.hip, where each
        // kernel reads and writes only indices < n (grid-stride loops bounded by n), and
        // the launchers pass n = the common length of all operands — except the output of
        // rf_swiglu_q8_f32, quantized rows of bytes, bounded as its line says.
        unsafe {
            Ok(Self {
                add: module.function("rf_add_f32")?.into_typed(),
                mul: module.function("rf_mul_f32")?.into_typed(),
                swiglu: module.function("rf_swiglu_f32")?.into_typed(),
                scale: module.function("rf_scale_f32")?.into_typed(),
                silu: module.function("rf_silu_f32")?.into_typed(),
                gelu: module.function("rf_gelu_f32")?.into_typed(),
                f32_to_f16: module.function("rf_f32_to_f16")?.into_typed(),
                f16_to_f32: module.function("rf_f16_to_f32")?.into_typed(),
                f32_to_bf16: module.function("rf_f32_to_bf16")?.into_typed(),
                bf16_to_f32: module.function("rf_bf16_to_f32")?.into_typed(),
                add_bias_rows: module.function("rf_add_bias_rows_f32")?.into_typed(),
                // rf_swiglu_q8_f32 (gate, up, out, n, cols, row_bytes): reads gate and up
                // below n and writes bytes [t · row_bytes, (t + 1) · row_bytes) of out
                // for t < n / cols; the launcher passes n = rows × cols = both inputs'
                // length, row_bytes = q8_row_bytes(cols) and an out of rows × row_bytes
                // bytes, 16-byte aligned.
                swiglu_q8: module.function("rf_swiglu_q8_f32")?.into_typed(),
            })
        }
    }

    fn binary(
        &self,
        kernel: &Binary,
        op: &'static str,
        stream: &Stream,
        a: DeviceSlice<f32>,
        b: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        let n = same_len(op, &[a.len(), b.len(), out.len()])?;
        if n == 0 {
            return Ok(());
        }
        kernel.launch(stream, &grid_stride_config(n)?, (a, b, out, n as u64))?;
        Ok(())
    }

    /// One input, one output of the same length: any element types.
    fn map<A: Pod, B: Pod>(
        kernel: &TypedKernel<(In<A>, Out<B>, u64)>,
        op: &'static str,
        stream: &Stream,
        x: DeviceSlice<A>,
        out: DeviceSliceMut<B>,
    ) -> Result<()> {
        let n = same_len(op, &[x.len(), out.len()])?;
        if n == 0 {
            return Ok(());
        }
        kernel.launch(stream, &grid_stride_config(n)?, (x, out, n as u64))?;
        Ok(())
    }

    /// `x[r, i] += bias[i]` for every row `r` of `x` (rows of `bias.len()` elements): the
    /// bias of a linear layer, broadcast over the tokens of a batch.
    pub fn add_bias_rows(
        &self,
        stream: &Stream,
        x: DeviceSliceMut<f32>,
        bias: DeviceSlice<f32>,
    ) -> Result<()> {
        let (n, width) = (x.len(), bias.len());
        if width == 0 || n % width != 0 {
            return Err(shape_error(
                "add_bias_rows",
                format!("x of {n} elements is not a whole number of rows of the bias's {width}"),
            ));
        }
        self.add_bias_rows.launch(
            stream,
            &grid_stride_config(n)?,
            (x, bias, width as u64, n as u64),
        )?;
        Ok(())
    }

    /// `out = a + b`.
    pub fn add(
        &self,
        stream: &Stream,
        a: DeviceSlice<f32>,
        b: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        self.binary(&self.add, "add", stream, a, b, out)
    }

    /// `out = a * b`.
    pub fn mul(
        &self,
        stream: &Stream,
        a: DeviceSlice<f32>,
        b: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        self.binary(&self.mul, "mul", stream, a, b, out)
    }

    /// `out = silu(gate) * up`.
    pub fn swiglu(
        &self,
        stream: &Stream,
        gate: DeviceSlice<f32>,
        up: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        self.binary(&self.swiglu, "swiglu", stream, gate, up, out)
    }

    /// [`swiglu`](Self::swiglu) fused with
    /// [`QuantOps::quantize_activations`](super::QuantOps::quantize_activations), in one
    /// launch: `out_q8` gets the 8-bit quantization of the `rows` rows of `n` values
    /// `silu(gate) · up` ([`q8_activation_bytes`](super::q8_activation_bytes)`(rows, n)`
    /// bytes, 16-byte aligned), byte for byte what `quantize_activations` writes for the
    /// output of `swiglu`. Allocates nothing (graph-capturable).
    ///
    /// Errors if `n` is not a positive multiple of 32 (the quantization blocks), a length
    /// does not match, or `out_q8` is not 16-byte aligned. Nothing is launched for 0 rows.
    pub fn swiglu_q8(
        &self,
        stream: &Stream,
        gate: DeviceSlice<f32>,
        up: DeviceSlice<f32>,
        rows: usize,
        n: usize,
        out_q8: DeviceSliceMut<u8>,
    ) -> Result<()> {
        const OP: &str = "swiglu_q8";
        if n == 0 || n % 32 != 0 || u32::try_from(n).is_err() {
            return Err(shape_error(
                OP,
                format!("row length {n}: 8-bit activations need a multiple of 32 in 32..2^32"),
            ));
        }
        let total = rows
            .checked_mul(n)
            .ok_or_else(|| shape_error(OP, format!("{rows} rows × {n} overflow")))?;
        let q8_len = q8_activation_bytes(rows, n);
        if gate.len() != total || up.len() != total || out_q8.len() != q8_len {
            return Err(shape_error(
                OP,
                format!(
                    "{rows} rows of {n}: gate has {}, up {} (expected {total}), out_q8 {} bytes \
                     (expected {q8_len})",
                    gate.len(),
                    up.len(),
                    out_q8.len()
                ),
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
        if total == 0 {
            return Ok(());
        }
        // Blocks of ELEMENTWISE_BLOCK threads (a multiple of 32) and a stride of whole
        // blocks: every 32-value group is inside or outside the range as a whole.
        self.swiglu_q8.launch(
            stream,
            &grid_stride_config(total)?,
            (gate, up, out_q8, total as u64, n as u32, row_bytes),
        )?;
        Ok(())
    }

    /// `out = s * x`.
    pub fn scale(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        s: f32,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        let n = same_len("scale", &[x.len(), out.len()])?;
        if n == 0 {
            return Ok(());
        }
        self.scale
            .launch(stream, &grid_stride_config(n)?, (x, out, s, n as u64))?;
        Ok(())
    }

    /// `out = x * sigmoid(x)`.
    pub fn silu(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        Self::map(&self.silu, "silu", stream, x, out)
    }

    /// GELU, ggml's tanh approximation.
    pub fn gelu(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        Self::map(&self.gelu, "gelu", stream, x, out)
    }

    /// f32 → f16, round to nearest even.
    pub fn f32_to_f16(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        out: DeviceSliceMut<f16>,
    ) -> Result<()> {
        Self::map(&self.f32_to_f16, "f32_to_f16", stream, x, out)
    }

    /// f16 → f32 (exact).
    pub fn f16_to_f32(
        &self,
        stream: &Stream,
        x: DeviceSlice<f16>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        Self::map(&self.f16_to_f32, "f16_to_f32", stream, x, out)
    }

    /// f32 → bf16, round to nearest even (NaN stays NaN).
    pub fn f32_to_bf16(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        out: DeviceSliceMut<bf16>,
    ) -> Result<()> {
        Self::map(&self.f32_to_bf16, "f32_to_bf16", stream, x, out)
    }

    /// bf16 → f32 (exact).
    pub fn bf16_to_f32(
        &self,
        stream: &Stream,
        x: DeviceSlice<bf16>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        Self::map(&self.bf16_to_f32, "bf16_to_f32", stream, x, out)
    }
}
