//! The NVIDIA adapter: rocmforge's HIP function tables ([`HipApi`], [`HiprtcApi`])
//! implemented in Rust on the CUDA driver API (`libcuda.so.1`) and NVRTC
//! (`libnvrtc.so.13`/`.12`), both loaded at run time. Nothing CUDA-related is needed to
//! build.
//!
//! HIP's own NVIDIA path is header-only inline C++ over the CUDA runtime, which cannot be
//! loaded at run time (and HIP 5.2's headers do not compile against CUDA 13). Each table
//! entry here is an `unsafe extern "C" fn` with exactly the HIP signature (the compiler
//! checks it against the bindgen `PFN_*` type), and behaves as HIP on NVIDIA does:
//!
//! * `context`: one primary context per device, retained once; each thread's device
//!   (0 by default, `hipSetDevice`) has its primary context made current before a call.
//! * `device`: `hipGetDeviceProperties` and `hipDeviceGetAttribute` from
//!   `cuDeviceGetAttribute` (`warpSize` 32, `gcnArchName` `sm_XY`).
//! * `stream_event`, `memory`, `module_launch`, `graph`: streams (NULL is the
//!   legacy stream), events, stream-ordered allocation, copies, pinned memory, modules,
//!   launches, capture and graphs.
//! * [`error_map`]: CUDA errors → HIP errors; `hipGetErrorString` names the CUDA error and
//!   call that failed last on the calling thread.
//! * `rtc`, [`rtc_options`]: hiprtc on NVRTC, compiling to a CUBIN for `sm_XY`.
//! * `sync_counter`: every context-wide synchronization the adapter causes is counted.
//!
//! State: the loaded driver and NVRTC and the retained contexts are process-wide
//! `OnceLock`s, set once and then read-only; the current device and the last CUDA error
//! are thread-locals; the counters are atomics. Everything is safe to use from any
//! thread (the CUDA driver API is thread-safe).

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_snake_case)] // the HIP parameter names, as in the bindings

use std::path::PathBuf;

use crate::bindings::hip::hipError_t;
use crate::{HipApi, HiprtcApi, LoadAttempt, LoadError};

mod context;
pub mod cuda_driver;
pub mod cuda_types;
mod device;
pub mod error_map;
mod graph;
mod loader;
mod memory;
mod module_launch;
pub mod nvrtc;
mod rtc;
pub mod rtc_options;
mod stream_event;
mod sync_counter;

pub use cuda_driver::{driver_library_candidates, DRIVER_LIBRARY_NAMES};
pub use device::{arch_name, device_attribute_to_cuda};
pub use error_map::{cuda_error_name, hip_error_name, map_cuda_error};
pub use graph::{capture_mode_from_cuda, capture_mode_to_cuda, capture_status_from_cuda};
pub use memory::{host_malloc_flags_to_cuda, mem_pool_attr_to_cuda, memcpy_plan, CopyPlan};
pub use module_launch::{function_attribute_to_cuda, translate_launch_extra};
pub use nvrtc::{nvrtc_library_candidates, CUDA_PATH_ENV, NVRTC_LIBRARY_NAMES};
pub use rtc::map_nvrtc_result;
pub use rtc_options::{translate_options, OptionError, TranslatedOptions};
pub use stream_event::{event_flags_to_cuda, stream_flags_to_cuda};
pub use sync_counter::{context_synchronizations, sync_counts, SyncCounts};

/// What loading the adapter produced.
pub(crate) struct NvidiaRuntime {
    pub hip: HipApi,
    pub hiprtc: Result<HiprtcApi, LoadError>,
    pub library: PathBuf,
}

/// Loads the CUDA driver (`libcuda.so.1`, then `libcuda.so`) and NVRTC (`$CUDA_PATH/lib64`,
/// `/usr/local/cuda/lib64`, then the loader path) and builds the tables; records failures
/// in `tried`. `Ok(None)` when no driver loads.
pub(crate) fn load(tried: &mut Vec<LoadAttempt>) -> Result<Option<NvidiaRuntime>, LoadError> {
    let cuda_path = std::env::var_os(CUDA_PATH_ENV).map(PathBuf::from);
    load_from(
        &driver_library_candidates(),
        &nvrtc_library_candidates(cuda_path.as_deref()),
        tried,
    )
}

/// [`load`] with explicit candidate lists. Once a driver has loaded in this process, it
/// is the one used (the `extern "C"` functions reach it through a process-wide cell).
pub(crate) fn load_from(
    driver_candidates: &[PathBuf],
    nvrtc_candidates: &[PathBuf],
    tried: &mut Vec<LoadAttempt>,
) -> Result<Option<NvidiaRuntime>, LoadError> {
    let Some(driver) = cuda_driver::install(driver_candidates, tried)? else {
        return Ok(None);
    };
    let hiprtc = nvrtc::install(nvrtc_candidates).map(|_| hiprtc_table());
    Ok(Some(NvidiaRuntime {
        hip: hip_table(),
        hiprtc,
        library: driver.path.clone(),
    }))
}

/// Tries to open and resolve the CUDA driver from `candidates` without changing any
/// process state, e.g. to check that a machine without NVIDIA's driver gives a clear
/// error. `Ok(path)` for the first that loads; otherwise `LoadError::RuntimeNotFound`
/// listing every path tried, or `LoadError::MissingSymbol`.
pub fn probe_driver(candidates: &[PathBuf]) -> Result<PathBuf, LoadError> {
    let mut tried = Vec::new();
    let Some((library, path)) = loader::open_first(candidates, &mut tried) else {
        return Err(LoadError::RuntimeNotFound { tried });
    };
    // SAFETY: a library named libcuda exports the driver API with cuda.h's signatures;
    // the table is only resolved, never called.
    unsafe { cuda_driver::CudaDriver::load(&library, &path) }?;
    // Unloading the driver again is not something it is made for: keep it loaded.
    std::mem::forget(library);
    Ok(path)
}

/// `Ok(())` → `hipSuccess`, `Err(e)` → `e`.
pub(crate) fn status(result: Result<(), hipError_t>) -> hipError_t {
    match result {
        Ok(()) => hipError_t::hipSuccess,
        Err(e) => e,
    }
}

/// The HIP table, every entry an adapter function.
fn hip_table() -> HipApi {
    HipApi {
        hipInit: device::hipInit,
        hipRuntimeGetVersion: device::hipRuntimeGetVersion,
        hipDriverGetVersion: device::hipDriverGetVersion,
        hipGetErrorName: error_map::hipGetErrorName,
        hipGetErrorString: error_map::hipGetErrorString,
        hipGetDeviceCount: device::hipGetDeviceCount,
        hipSetDevice: context::hipSetDevice,
        hipGetDevice: context::hipGetDevice,
        hipDeviceGetName: device::hipDeviceGetName,
        hipDeviceGetAttribute: device::hipDeviceGetAttribute,
        hipGetDeviceProperties: device::hipGetDeviceProperties,
        hipMemGetInfo: memory::hipMemGetInfo,
        hipStreamCreateWithFlags: stream_event::hipStreamCreateWithFlags,
        hipStreamDestroy: stream_event::hipStreamDestroy,
        hipStreamSynchronize: stream_event::hipStreamSynchronize,
        hipStreamQuery: stream_event::hipStreamQuery,
        hipStreamWaitEvent: stream_event::hipStreamWaitEvent,
        hipEventCreateWithFlags: stream_event::hipEventCreateWithFlags,
        hipEventDestroy: stream_event::hipEventDestroy,
        hipEventRecord: stream_event::hipEventRecord,
        hipEventSynchronize: stream_event::hipEventSynchronize,
        hipEventQuery: stream_event::hipEventQuery,
        hipEventElapsedTime: stream_event::hipEventElapsedTime,
        hipMallocAsync: memory::hipMallocAsync,
        hipFreeAsync: memory::hipFreeAsync,
        hipDeviceGetDefaultMemPool: memory::hipDeviceGetDefaultMemPool,
        hipMemPoolSetAttribute: memory::hipMemPoolSetAttribute,
        hipMemPoolGetAttribute: memory::hipMemPoolGetAttribute,
        hipMemcpyAsync: memory::hipMemcpyAsync,
        hipMemsetAsync: memory::hipMemsetAsync,
        hipHostMalloc: memory::hipHostMalloc,
        hipHostFree: memory::hipHostFree,
        hipModuleLoadData: module_launch::hipModuleLoadData,
        hipModuleUnload: module_launch::hipModuleUnload,
        hipModuleGetFunction: module_launch::hipModuleGetFunction,
        hipFuncGetAttribute: module_launch::hipFuncGetAttribute,
        hipModuleLaunchKernel: module_launch::hipModuleLaunchKernel,
        hipStreamBeginCapture: graph::hipStreamBeginCapture,
        hipStreamEndCapture: graph::hipStreamEndCapture,
        hipStreamIsCapturing: graph::hipStreamIsCapturing,
        hipThreadExchangeStreamCaptureMode: graph::hipThreadExchangeStreamCaptureMode,
        hipGraphInstantiate: graph::hipGraphInstantiate,
        hipGraphLaunch: graph::hipGraphLaunch,
        hipGraphExecDestroy: graph::hipGraphExecDestroy,
        hipGraphDestroy: graph::hipGraphDestroy,
        // The adapter fills the HIP 5 layout; `Runtime::device_properties` uses the HIP 6
        // one only on AMD.
        hipGetDevicePropertiesR0600: None,
    }
}

/// The hiprtc table, every entry an adapter function on NVRTC.
fn hiprtc_table() -> HiprtcApi {
    HiprtcApi {
        hiprtcVersion: rtc::hiprtcVersion,
        hiprtcGetErrorString: rtc::hiprtcGetErrorString,
        hiprtcCreateProgram: rtc::hiprtcCreateProgram,
        hiprtcDestroyProgram: rtc::hiprtcDestroyProgram,
        hiprtcCompileProgram: rtc::hiprtcCompileProgram,
        hiprtcGetProgramLogSize: rtc::hiprtcGetProgramLogSize,
        hiprtcGetProgramLog: rtc::hiprtcGetProgramLog,
        hiprtcGetCodeSize: rtc::hiprtcGetCodeSize,
        hiprtcGetCode: rtc::hiprtcGetCode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Platform;

    #[test]
    fn no_driver_gives_runtime_not_found_naming_every_path() {
        let candidates = vec![
            PathBuf::from("/nonexistent/rocmforge/libcuda.so.1"),
            PathBuf::from("/nonexistent/rocmforge/libcuda.so"),
        ];
        let err = probe_driver(&candidates).unwrap_err();
        let LoadError::RuntimeNotFound { tried } = &err else {
            panic!("expected RuntimeNotFound, got {err}");
        };
        assert_eq!(tried.len(), 2);
        assert!(tried.iter().all(|t| t.platform == Platform::Nvidia));
        let message = err.to_string();
        assert!(
            message.contains("/nonexistent/rocmforge/libcuda.so.1"),
            "{message}"
        );
        assert!(message.contains("[nvidia]"), "{message}");
    }

    #[test]
    fn tables_build_without_a_driver() {
        // Building the tables touches no library; calling an entry without a loaded
        // driver is a clean error, not a crash.
        let hip = hip_table();
        let mut count = -1;
        if cuda_driver::driver().is_err() {
            // SAFETY: `count` is a valid out-pointer.
            let status = unsafe { (hip.hipGetDeviceCount)(&mut count) };
            assert_eq!(status, hipError_t::hipErrorNotInitialized);
            assert_eq!(count, 0);
            let mut stream = std::ptr::null_mut();
            // SAFETY: `stream` is a valid out-pointer.
            let status = unsafe { (hip.hipStreamCreateWithFlags)(&mut stream, 1) };
            assert_eq!(status, hipError_t::hipErrorNotInitialized);
        }
        let _ = hiprtc_table();
    }
}
