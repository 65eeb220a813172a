//! [`ModelError`]: what can go wrong loading a model, running it or generating with it.

use rocmforge_kernels::quant::GgmlType;

use crate::chat_template::ChatTemplateError;
use crate::gguf::GgufError;
use crate::tokenizer::{TokenizerError, TokenizerLoadError};

/// Why a model could not be loaded or run.
///
/// Every message names what is wrong (the metadata key, the tensor, the sizes) so that a
/// user can tell an unsupported model from a damaged file or a prompt that is too long.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Reading the GGUF file or its metadata failed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A compute op (CPU or GPU) rejected its arguments or failed.
    #[error("compute op failed: {0}")]
    Compute(#[from] rocmforge_kernels::Error),
    /// The tokenizer could not be built from the file.
    #[error(transparent)]
    TokenizerLoad(#[from] TokenizerLoadError),
    /// The tokenizer failed (an id outside the vocabulary, a regex failure).
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    /// The chat template could not be applied.
    #[error(transparent)]
    ChatTemplate(#[from] ChatTemplateError),
    /// `general.architecture` names an architecture rocmforge does not implement.
    #[error(
        "unsupported model architecture '{arch}' (general.architecture): rocmforge implements \
         'llama' (Llama 2/3, SmolLM2, TinyLlama, Mistral-style) and 'qwen2'"
    )]
    UnsupportedArchitecture {
        /// The value of `general.architecture`.
        arch: String,
    },
    /// A hyper-parameter is missing, out of range or inconsistent with another.
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// A feature of the model that rocmforge does not implement (YaRN, experts, …).
    #[error("unsupported model feature: {0}")]
    UnsupportedFeature(String),
    /// A tensor the architecture needs is not in the file.
    #[error("tensor '{name}' is missing from the model file (a {arch} model with these hyper-parameters needs it)")]
    MissingTensor {
        /// The tensor name (`blk.3.ffn_down.weight`).
        name: String,
        /// The architecture.
        arch: &'static str,
    },
    /// A tensor has other dimensions than the hyper-parameters imply.
    #[error("tensor '{name}' has dims {actual:?} (ggml order), expected {expected:?}")]
    TensorShape {
        /// The tensor name.
        name: String,
        /// Dimensions the configuration implies (ggml order, ne0 first).
        expected: Vec<usize>,
        /// Dimensions in the file.
        actual: Vec<usize>,
    },
    /// A tensor type the backend cannot compute with.
    #[error("tensor '{name}' has type {ty}, which the {backend} backend does not support{hint}")]
    UnsupportedTensorType {
        /// The tensor name.
        name: String,
        /// Its ggml type.
        ty: GgmlType,
        /// The backend.
        backend: &'static str,
        /// More detail (possibly empty).
        hint: String,
    },
    /// The tokens do not fit in the KV cache.
    #[error(
        "context full: {needed} positions are needed ({cached} already in the KV cache + {new} new \
         tokens), but the context holds {n_ctx}; use a shorter prompt or a larger context length"
    )]
    ContextOverflow {
        /// Positions already used.
        cached: usize,
        /// Tokens being added.
        new: usize,
        /// `cached + new`.
        needed: usize,
        /// The cache's capacity.
        n_ctx: usize,
    },
    /// A token id outside the model's vocabulary.
    #[error("token id {id} (at index {index}) is outside the model's vocabulary of {n_vocab}")]
    InvalidToken {
        /// The id.
        id: u32,
        /// Where in the input.
        index: usize,
        /// Rows of the embedding table.
        n_vocab: usize,
    },
    /// A call that needs at least one token got none.
    #[error("{0}")]
    EmptyInput(&'static str),
    /// A sampling parameter is out of range.
    #[error("invalid sampling parameter: {0}")]
    InvalidSampling(String),
    /// A KV cache of another model or backend configuration was passed.
    #[error("KV cache mismatch: {0}")]
    CacheMismatch(String),
    /// The GPU has not enough free memory for an allocation (weights, KV cache or
    /// activations). Nothing is left half-allocated: the device stays usable, and a
    /// smaller model, context or batch may fit.
    #[error(
        "out of GPU memory allocating {what} ({:.1} MiB){}; try a smaller context length, \
         batch or model",
        *.bytes as f64 / 1048576.0,
        .free.map(|f| format!(", {:.1} MiB free", f as f64 / 1048576.0)).unwrap_or_default()
    )]
    OutOfDeviceMemory {
        /// What was being allocated.
        what: String,
        /// Bytes requested.
        bytes: usize,
        /// Free device memory at the time, when the runtime could tell.
        free: Option<usize>,
    },
    /// The requested device is not available.
    #[error("{0}")]
    DeviceUnavailable(String),
}

/// Result alias of the model layer.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
