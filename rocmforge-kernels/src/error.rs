//! Errors of rocmforge-kernels.

/// What can go wrong in a kernel, a launcher, the CPU reference or the compile cache.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A HIP call, compilation or launch failed.
    #[error(transparent)]
    Hip(#[from] rocmforge_hip::Error),
    /// Tensor shapes or lengths that do not fit the operation.
    #[error("{op}: {message}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// What does not fit.
        message: String,
    },
    /// A weight type the operation does not implement.
    #[error("{op} does not support tensor type {type_name}")]
    UnsupportedType {
        /// The operation.
        op: &'static str,
        /// The ggml type's name.
        type_name: String,
    },
    /// Raw quantized data of the wrong size.
    #[error("{what}: {actual} bytes given, {expected} expected")]
    DataSize {
        /// What was being read.
        what: String,
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The on-disk kernel cache could not be used.
    #[error("kernel cache at {path}: {message}")]
    Cache {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Result alias of rocmforge-kernels.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for a shape error.
#[allow(dead_code)]
pub(crate) fn shape_error(op: &'static str, message: impl Into<String>) -> Error {
    Error::Shape {
        op,
        message: message.into(),
    }
}
