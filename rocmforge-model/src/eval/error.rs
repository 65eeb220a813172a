//! [`EvalError`]: why an evaluation could not run.

use crate::error::ModelError;

/// Why a perplexity or KL-divergence run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model failed (or the text has a token it does not know).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Reading or writing a log-probability file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The window length is too small to score anything.
    #[error(
        "a window of {n_ctx} tokens scores nothing; use at least 4 (llama.cpp's default is 512)"
    )]
    WindowTooSmall {
        /// The window length asked for.
        n_ctx: usize,
    },
    /// The text has fewer tokens than two windows.
    #[error(
        "the text has {tokens} tokens; a window of {n_ctx} needs at least {needed} \
         (use a longer text or a smaller window)"
    )]
    TextTooShort {
        /// Tokens in the text.
        tokens: usize,
        /// The window length.
        n_ctx: usize,
        /// `2 * n_ctx`, as llama.cpp requires.
        needed: usize,
    },
    /// The file is not a llama.cpp log-probability file, or is damaged.
    #[error("{path}: not a log-probability file: {reason}")]
    BadLogProbFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The base file was made with another vocabulary or window.
    #[error("{path}: {reason}")]
    BaseMismatch {
        /// The file.
        path: String,
        /// Which property differs.
        reason: String,
    },
}
