//! Why a runtime could not be loaded.

use std::fmt;
use std::path::PathBuf;

use crate::Platform;

/// One place a library was looked for, and why it was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadAttempt {
    /// The platform this library would have served.
    pub platform: Platform,
    /// The path or bare file name handed to the dynamic loader.
    pub path: PathBuf,
    /// The loader's message.
    pub reason: String,
}

impl fmt::Display for LoadAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {}",
            self.platform,
            self.path.display(),
            self.reason
        )
    }
}

/// Errors of loading the HIP runtime (or the CUDA driver behind the NVIDIA adapter).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// No library could be loaded. Lists every path tried.
    #[error(
        "no GPU runtime found. Install ROCm (libamdhip64) or the NVIDIA driver, or point \
         ROCMFORGE_HIP_LIB at libamdhip64.so. Tried:\n{}",
        list(.tried)
    )]
    RuntimeNotFound {
        /// Every path tried, in order.
        tried: Vec<LoadAttempt>,
    },
    /// A library loaded but lacks a function rocmforge needs (too old a runtime?).
    #[error("{library} was loaded but has no symbol `{symbol}` ({reason}); rocmforge needs HIP 5.2 or newer on AMD, a CUDA 12 or newer driver on NVIDIA")]
    MissingSymbol {
        /// The library that was loaded.
        library: PathBuf,
        /// The missing function.
        symbol: &'static str,
        /// The loader's message.
        reason: String,
    },
    /// `ROCMFORGE_PLATFORM` holds something other than `amd`, `nvidia` or `auto`.
    #[error("ROCMFORGE_PLATFORM={0:?} is not a platform: use amd, nvidia or auto")]
    UnknownPlatform(String),
    /// The runtime loaded but a call made while loading failed.
    #[error("{call} failed with code {code} while loading the {platform} runtime from {library}")]
    InitFailed {
        /// The platform.
        platform: Platform,
        /// The library.
        library: PathBuf,
        /// The call that failed.
        call: &'static str,
        /// Its raw result code.
        code: i32,
    },
}

fn list(tried: &[LoadAttempt]) -> String {
    if tried.is_empty() {
        return "  (nothing)".to_string();
    }
    tried
        .iter()
        .map(|attempt| format!("  {attempt}"))
        .collect::<Vec<_>>()
        .join("\n")
}
