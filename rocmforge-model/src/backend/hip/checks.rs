//! Error mapping and shape checks shared by the HIP backend's operations.

use super::*;

pub(super) fn is_out_of_memory(e: &rocmforge_kernels::hip::Error) -> bool {
    matches!(e, rocmforge_kernels::hip::Error::Hip { error, .. } if error.is_out_of_memory())
}

pub(super) fn gpu_error(e: rocmforge_kernels::hip::Error) -> ModelError {
    ModelError::Compute(rocmforge_kernels::Error::Hip(e))
}

pub(super) fn shape_error(op: &'static str, message: String) -> ModelError {
    ModelError::Compute(rocmforge_kernels::Error::Shape { op, message })
}

/// Checks `x` (`[n_tokens, cols]`), `out` (`[n_tokens, rows]`) and the bias (`rows`).
pub(super) fn check_linear_shapes(
    w: &HipMatrix,
    bias: Option<&DeviceBuffer<f32>>,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &DeviceBuffer<f32>,
) -> Result<()> {
    let fits = |len: usize, width: usize| n_tokens.checked_mul(width) == Some(len);
    if !fits(x.len(), w.cols) || !fits(out.len(), w.rows) || bias.is_some_and(|b| b.len() != w.rows)
    {
        return Err(shape_error(
            "linear",
            format!(
                "W is {} × {}, {n_tokens} tokens: x has {}, out {}, bias {:?}",
                w.rows,
                w.cols,
                x.len(),
                out.len(),
                bias.map(|b| b.len())
            ),
        ));
    }
    Ok(())
}
