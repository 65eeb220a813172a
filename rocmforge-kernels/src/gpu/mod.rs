//! GPU launchers: one struct per kernel source, holding its typed kernels, with safe
//! methods that check shapes before launching.

// Kernel signatures are tuples of parameter types by design (one type per C parameter);
// naming each would only hide them. Launchers mirror the CPU functions' parameter lists.
#![allow(clippy::type_complexity, clippy::too_many_arguments)]

mod attention;
mod elementwise;
mod ggml_compat;
mod kernel_loader;
mod norm;
mod quant_ops;
mod rope;

pub use attention::{AttentionOps, GpuKvElement, DECODE_MAX_QUERIES, MAX_HEAD_DIM};
pub use elementwise::ElementwiseOps;
pub use ggml_compat::{GgmlCompatOps, GgmlQ8Kind, GGML_ATTN_MAX_HEAD_DIM, GGML_ATTN_TILE_Q};
pub use kernel_loader::KernelLoader;
pub use norm::NormOps;
pub use quant_ops::{
    matvec_reads_q8, q8_activation_bytes, q8_activation_row_bytes, GpuWeights, QuantOps,
    GPU_WEIGHT_TYPES, MATVEC_Q8_MULTI_MAX, Q8_MATVEC_TYPES,
};
pub use rope::{RopeConfig, RopeOps};

use rocmforge_hip::LaunchConfig;

/// Threads per block of the grid-stride elementwise kernels.
pub(crate) const ELEMENTWISE_BLOCK: u32 = 256;

/// A grid for a grid-stride loop over `n` elements: enough blocks to cover `n`, at most
/// 65536 (each thread then loops).
pub(crate) fn grid_stride_config(n: usize) -> crate::Result<LaunchConfig> {
    let covered = n.min(ELEMENTWISE_BLOCK as usize * 65536);
    Ok(LaunchConfig::for_elements(covered, ELEMENTWISE_BLOCK)?)
}
