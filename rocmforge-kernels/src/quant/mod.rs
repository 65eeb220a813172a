//! ggml tensor types and their block layouts, with CPU (de)quantization.
//!
//! * [`GgmlType`] — every ggml tensor type with its GGUF id, name and sizes.
//! * [`blocks`] — `#[repr(C)]` mirrors of ggml's quantization blocks (Q4_0 … Q6_K),
//!   with their byte offsets: the layout the HIP kernels read.
//! * [`dequantize_row`], [`dequantize`], [`dequantize_into`], [`dequantize_to_f16`] —
//!   CPU dequantization, bit-exact with ggml's reference and gguf-py.
//! * [`quantize_row`], [`quantize`] — ggml's reference quantizers (Q8_0, Q4_0,
//!   Q4_1, Q5_0, Q5_1, Q2_K … Q6_K, F16, BF16), byte-exact with ggml.
//! * [`get_row`], [`get_rows`], [`row_bytes_of`] — row access with checked indices.
//! * [`fp16`] — ggml's f16/bf16 conversions.
//!
//! Exactness is checked against fixtures made by llama.cpp's own code (gguf-py
//! and ggml's C, see `scripts/make_quant_fixtures.py` and
//! `tests/quant_fixtures.rs`): every supported type dequantizes bit for bit
//! like gguf-py, and quantizes byte for byte like ggml's reference quantizer.

pub mod blocks;
mod dequantize;
pub mod fp16;
mod ggml_type;
mod quantize;
mod quantize_k;
mod rows;

#[cfg(test)]
mod tests;

pub use blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, QuantBlock, K_SCALE_SIZE, QK_K,
};
pub use dequantize::{dequantize, dequantize_into, dequantize_row, dequantize_to_f16};
pub use ggml_type::GgmlType;
pub use quantize::{quantize, quantize_row};
pub use rows::{get_row, get_row_into, get_rows, row_bytes_of, tensor_rows};
