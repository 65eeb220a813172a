//! NVRTC (`libnvrtc.so.13`, `.12`, or unversioned): the function table, where the
//! library is looked for, and the process-wide loaded instance. Signatures from `nvrtc.h`
//! (CUDA 13), checked against <https://docs.nvidia.com/cuda/nvrtc/index.html>.

use core::ffi::{c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::cuda_types::{nvrtcProgram, nvrtcResult};
use super::loader::{candidates_in, library_table, open_first};
use crate::LoadError;

/// The NVRTC library names, newest first. NVRTC's soname carries the CUDA major version;
/// one built for CUDA 13 produces CUBINs that a CUDA 13 driver loads, and so does 12's
/// (drivers run code from older toolkits).
pub const NVRTC_LIBRARY_NAMES: &[&str] = &["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];

/// The environment variable naming the CUDA toolkit root (`$CUDA_PATH/lib64` is searched).
pub const CUDA_PATH_ENV: &str = "CUDA_PATH";

/// Where NVRTC is looked for, in order: `$CUDA_PATH/lib64`, `/usr/local/cuda/lib64`, then
/// the bare names for the dynamic loader's path; in each place `.so.13`, `.so.12`, `.so`.
pub fn nvrtc_library_candidates(cuda_path: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(root) = cuda_path.filter(|p| !p.as_os_str().is_empty()) {
        dirs.push(root.join("lib64"));
    }
    dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
    candidates_in(&dirs, NVRTC_LIBRARY_NAMES)
}

library_table! {
    /// The NVRTC functions the adapter's hiprtc uses.
    pub struct NvrtcApi;
    calls NvrtcCall;

    /// <https://docs.nvidia.com/cuda/nvrtc/index.html>
    nvrtcGetErrorString ["nvrtcGetErrorString"]: fn(result: nvrtcResult) -> *const c_char;
    /// <https://docs.nvidia.com/cuda/nvrtc/index.html>
    nvrtcVersion ["nvrtcVersion"]: fn(major: *mut c_int, minor: *mut c_int) -> nvrtcResult;
    /// <https://docs.nvidia.com/cuda/nvrtc/index.html>
    nvrtcCreateProgram ["nvrtcCreateProgram"]: fn(
        prog: *mut nvrtcProgram,
        src: *const c_char,
        name: *const c_char,
        num_headers: c_int,
        headers: *const *const c_char,
        include_names: *const *const c_char,
    ) -> nvrtcResult;
    /// <https://docs.nvidia.com/cuda/nvrtc/index.html>
    nvrtcDestroyProgram ["nvrtcDestroyProgram"]: fn(prog: *mut nvrtcProgram) -> nvrtcResult;
    /// <https://docs.nvidia.com/cuda/nvrtc/index.html>
    nvrtcCompileProgram ["nvrtcCompileProgram"]:
        fn(prog: nvrtcProgram, num_options: c_int, options: *const *const c_char) -> nvrtcResult;
    /// <https://docs.nvidia.com/cuda/nvrtc/index.html>
    nvrtcGetProgramLogSize ["nvrtcGetProgramLogSize"]: fn(prog: nvrtcProgram, log_size_ret: *mut usize) -> nvrtcResult;
    /// <https://docs.nvidia.com/cuda/nvrtc/index.html>
    nvrtcGetProgramLog ["nvrtcGetProgramLog"]: fn(prog: nvrtcProgram, log: *mut c_char) -> nvrtcResult;
    /// Size of the CUBIN; available when compiled for a real architecture (`sm_XY`).
    /// <https://docs.nvidia.com/cuda/nvrtc/index.html>
    nvrtcGetCUBINSize ["nvrtcGetCUBINSize"]: fn(prog: nvrtcProgram, cubin_size_ret: *mut usize) -> nvrtcResult;
    /// <https://docs.nvidia.com/cuda/nvrtc/index.html>
    nvrtcGetCUBIN ["nvrtcGetCUBIN"]: fn(prog: nvrtcProgram, cubin: *mut c_char) -> nvrtcResult;
}

/// The loaded NVRTC: the table and the library behind it, kept for the rest of the process.
pub(crate) struct LoadedNvrtc {
    pub(crate) api: NvrtcApi,
    _library: libloading::Library,
}

static NVRTC: OnceLock<LoadedNvrtc> = OnceLock::new();

/// Loads NVRTC from the first of `candidates` that opens (or returns the one already
/// loaded). When none opens: `LoadError::RuntimeNotFound` listing every path tried.
pub(crate) fn install(candidates: &[PathBuf]) -> Result<&'static NvrtcApi, LoadError> {
    if let Some(loaded) = NVRTC.get() {
        return Ok(&loaded.api);
    }
    let mut tried = Vec::new();
    let Some((library, path)) = open_first(candidates, &mut tried) else {
        return Err(LoadError::RuntimeNotFound { tried });
    };
    // SAFETY: a library named libnvrtc is NVRTC, which exports these symbols with the
    // signatures of nvrtc.h that the table transcribes; the library is kept in `NVRTC`.
    let api = unsafe { NvrtcApi::load(&library, &path) }?;
    let _ = NVRTC.set(LoadedNvrtc {
        api,
        _library: library,
    });
    NVRTC
        .get()
        .map(|loaded| &loaded.api)
        .ok_or(LoadError::RuntimeNotFound { tried: Vec::new() })
}

/// The loaded NVRTC table, if [`install`] succeeded.
pub(crate) fn nvrtc() -> Option<&'static NvrtcApi> {
    NVRTC.get().map(|loaded| &loaded.api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvrtc_search_order() {
        let c = nvrtc_library_candidates(Some(Path::new("/opt/cuda")));
        let expect: Vec<PathBuf> = [
            "/opt/cuda/lib64/libnvrtc.so.13",
            "/opt/cuda/lib64/libnvrtc.so.12",
            "/opt/cuda/lib64/libnvrtc.so",
            "/usr/local/cuda/lib64/libnvrtc.so.13",
            "/usr/local/cuda/lib64/libnvrtc.so.12",
            "/usr/local/cuda/lib64/libnvrtc.so",
            "libnvrtc.so.13",
            "libnvrtc.so.12",
            "libnvrtc.so",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(c, expect);
        // CUDA_PATH=/usr/local/cuda is not searched twice; an empty one is ignored.
        assert_eq!(
            nvrtc_library_candidates(Some(Path::new("/usr/local/cuda"))).len(),
            6
        );
        assert_eq!(nvrtc_library_candidates(Some(Path::new(""))).len(), 6);
        assert_eq!(nvrtc_library_candidates(None).len(), 6);
    }

    #[test]
    fn missing_nvrtc_lists_every_path() {
        let candidates = vec![
            PathBuf::from("/nonexistent/libnvrtc.so.13"),
            PathBuf::from("/nonexistent/libnvrtc.so"),
        ];
        if NVRTC.get().is_some() {
            return; // loaded by another test of this process on a CUDA machine
        }
        let Err(LoadError::RuntimeNotFound { tried }) = install(&candidates) else {
            panic!("expected RuntimeNotFound");
        };
        let paths: Vec<_> = tried.iter().map(|t| t.path.clone()).collect();
        assert_eq!(paths, candidates);
    }
}
