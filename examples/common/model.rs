//! Opening the GGUF file named by `--model`.

use std::path::Path;

use rocmforge::model::gguf::{GgufFile, DEMO_MODEL_RELATIVE_PATH};

/// Opens (memory-maps and validates) the GGUF file at `path`. The error is the message to
/// print; for the demo model it adds how to fetch it.
pub fn open(path: &str) -> Result<GgufFile, String> {
    GgufFile::open(path).map_err(|e| {
        if Path::new(path).file_name() == Path::new(DEMO_MODEL_RELATIVE_PATH).file_name() {
            format!("{e}\n(fetch the demo model with: bash scripts/fetch-demo-model.sh)")
        } else {
            e.to_string()
        }
    })
}

/// The file name of `path`, for reports (`SmolLM2-135M-Instruct.Q4_1.gguf`).
pub fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}
