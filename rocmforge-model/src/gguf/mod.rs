//! GGUF: ggml's model file format (versions 2 and 3) — a validating,
//! memory-mapped reader and a writer.
//!
//! # Format
//!
//! A GGUF file (little-endian) is: the magic `GGUF`; a `u32` version; a `u64`
//! tensor count; a `u64` metadata count; the metadata key-value pairs (a string
//! key — `u64` length and UTF-8 bytes —, a `u32` value type, the value: one of
//! 13 types including strings and arrays, which may nest); the tensor infos (a
//! string name, a `u32` dimension count, `u64` dimensions in ggml order, a `u32`
//! ggml type id, a `u64` offset relative to the data section); zero padding to
//! `general.alignment` (a `u32`, default 32); then the tensor data, each tensor
//! at an aligned offset. Version 1 (32-bit counts) is rejected with an error
//! that says so; big-endian files likewise.
//!
//! # Reading
//!
//! ```no_run
//! use rocmforge_model::gguf::GgufFile;
//!
//! let file = GgufFile::open("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! assert_eq!(file.architecture()?, "llama");
//! let layers = file.metadata().get_u32("llama.block_count")?;
//! let tokens = file.metadata().get_str_array("tokenizer.ggml.tokens")?;
//! let embd = file.tensor("token_embd.weight")?;
//! let (ty, dims, data) = (embd.ty(), embd.dims(), embd.data()); // dims = [576, 49152]
//! # let _ = (layers, tokens, ty, dims, data);
//! # Ok::<(), rocmforge_model::gguf::GgufError>(())
//! ```
//!
//! Everything is validated when the file is opened ([`GgufHeader`] lists the
//! checks): a corrupt, truncated or hostile file gives a [`GgufError`] naming
//! what is wrong, never a panic, a hang or an allocation sized by an unchecked
//! count. See [`GgufFile`] for the usual caveat of memory-mapped files.
//!
//! # Writing
//!
//! [`GgufWriter`] writes the same format (v3) from metadata and tensors, for
//! tests and for synthetic models of real shapes: tensors from bytes (owned or
//! borrowed from another open file), from a fill function run at write time,
//! or as seeded random weights quantized with ggml's reference quantizers
//! ([`GgufWriter::add_random_tensor`]), so that only one tensor is in memory
//! at a time. Rewriting every key and tensor of the demo model gives back the
//! original file byte for byte.

mod demo;
mod error;
mod metadata;
mod reader;
mod synthetic;
mod tensor;
mod value;
mod writer;

pub use demo::{
    demo_model_path, require_demo_model, DEMO_MODEL_ENV, DEMO_MODEL_RELATIVE_PATH, DEMO_MODEL_SIZE,
};
pub use error::{GgufError, OptionalKey, Result};
pub use metadata::GgufMetadata;
pub use reader::{GgufFile, GgufHeader};
pub use rocmforge_kernels::quant::GgmlType;
pub use synthetic::{SyntheticModel, SYNTHETIC_RMS_EPS, SYNTHETIC_ROPE_BASE};
pub use tensor::{GgufTensor, TensorInfo};
pub use value::{GgufArray, GgufString, GgufValue, GgufValueType};
pub use writer::GgufWriter;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// The metadata key of the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// The data alignment when `general.alignment` is absent (ggml's `GGUF_DEFAULT_ALIGNMENT`).
pub const DEFAULT_ALIGNMENT: usize = 32;

/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// Longest tensor name in bytes (ggml's `GGML_MAX_NAME` is 64 including the NUL).
pub const MAX_TENSOR_NAME_LEN: usize = 63;

/// Deepest nesting of arrays in a metadata value that the reader accepts (an
/// array of scalars has depth 1). ggml itself writes no nested arrays; the
/// limit keeps a hostile file from recursing the stack away.
pub const MAX_ARRAY_DEPTH: usize = 32;
