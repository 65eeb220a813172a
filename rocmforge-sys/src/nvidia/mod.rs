//! The NVIDIA adapter: the HIP function table implemented on the CUDA driver API and
//! NVRTC, both loaded at run time. (Being written; until then it reports itself missing.)

use std::path::PathBuf;

use crate::{HipApi, HiprtcApi, LoadAttempt, LoadError, Platform};

/// What loading the adapter produced.
pub(crate) struct NvidiaRuntime {
    pub hip: HipApi,
    pub hiprtc: Result<HiprtcApi, LoadError>,
    pub library: PathBuf,
}

/// Loads the CUDA driver and builds the tables; records failures in `tried`.
pub(crate) fn load(tried: &mut Vec<LoadAttempt>) -> Result<Option<NvidiaRuntime>, LoadError> {
    tried.push(LoadAttempt {
        platform: Platform::Nvidia,
        path: PathBuf::from("libcuda.so.1"),
        reason: "the NVIDIA adapter is not built into this version".to_string(),
    });
    Ok(None)
}

/// How many context- or device-wide synchronizations the adapter has performed.
pub fn context_synchronizations() -> u64 {
    0
}
