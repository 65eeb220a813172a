//! The CUDA driver API (`libcuda.so.1`): the function table the adapter calls, where the
//! library is looked for, and the process-wide loaded instance.
//!
//! Symbol names are the ABI names that `cuda.h` maps the API names to (for example
//! `cuMemGetInfo` is `#define`d to `cuMemGetInfo_v2`, `cuStreamBeginCapture` to
//! `cuStreamBeginCapture_v2`); without `CUDA_API_PER_THREAD_DEFAULT_STREAM` the stream
//! functions keep their plain names (no `_ptsz`/`_ptds`), which gives the legacy default
//! stream semantics for a NULL stream, as HIP has. Reference:
//! <https://docs.nvidia.com/cuda/cuda-driver-api/index.html>.

use core::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};
use std::path::PathBuf;
use std::sync::OnceLock;

use super::cuda_types::*;
use super::loader::{library_table, open_first};
use crate::bindings::hip::hipError_t;
use crate::{LoadAttempt, LoadError};

/// The driver library names, in the order they are tried. `libcuda.so.1` is the name
/// the driver installs (the unversioned `libcuda.so` is a development symlink, or the
/// toolkit's stub, which answers every call with `CUDA_ERROR_STUB_LIBRARY`).
pub const DRIVER_LIBRARY_NAMES: &[&str] = &["libcuda.so.1", "libcuda.so"];

/// Where the driver is looked for: the bare names, for the dynamic loader (the driver
/// lives in the system library directories, never in the toolkit).
pub fn driver_library_candidates() -> Vec<PathBuf> {
    DRIVER_LIBRARY_NAMES.iter().map(PathBuf::from).collect()
}

library_table! {
    /// The CUDA driver functions the adapter uses. Each signature is transcribed from
    /// `cuda.h` and checked against the Driver API reference page linked on it.
    pub struct CudaDriver;
    calls DriverCall;

    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__INITIALIZE.html>
    cuInit ["cuInit"]: fn(flags: c_uint) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__VERSION.html>
    cuDriverGetVersion ["cuDriverGetVersion"]: fn(driver_version: *mut c_int) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__ERROR.html>
    cuGetErrorName ["cuGetErrorName"]: fn(error: CUresult, p_str: *mut *const c_char) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
    cuDeviceGet ["cuDeviceGet"]: fn(device: *mut CUdevice, ordinal: c_int) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
    cuDeviceGetCount ["cuDeviceGetCount"]: fn(count: *mut c_int) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
    cuDeviceGetName ["cuDeviceGetName"]: fn(name: *mut c_char, len: c_int, dev: CUdevice) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
    cuDeviceGetAttribute ["cuDeviceGetAttribute"]:
        fn(pi: *mut c_int, attrib: CUdevice_attribute, dev: CUdevice) -> CUresult;
    /// `cuDeviceTotalMem` (ABI name `cuDeviceTotalMem_v2`, `size_t` result).
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
    cuDeviceTotalMem_v2 ["cuDeviceTotalMem_v2"]: fn(bytes: *mut usize, dev: CUdevice) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
    cuDeviceGetDefaultMemPool ["cuDeviceGetDefaultMemPool"]:
        fn(pool_out: *mut CUmemoryPool, dev: CUdevice) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__PRIMARY__CTX.html>
    cuDevicePrimaryCtxRetain ["cuDevicePrimaryCtxRetain"]:
        fn(pctx: *mut CUcontext, dev: CUdevice) -> CUresult;
    /// `cuDevicePrimaryCtxRelease` (ABI name `_v2`).
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__PRIMARY__CTX.html>
    cuDevicePrimaryCtxRelease_v2 ["cuDevicePrimaryCtxRelease_v2"]: fn(dev: CUdevice) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__CTX.html>
    cuCtxGetCurrent ["cuCtxGetCurrent"]: fn(pctx: *mut CUcontext) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__CTX.html>
    cuCtxSetCurrent ["cuCtxSetCurrent"]: fn(ctx: CUcontext) -> CUresult;
    /// `cuMemGetInfo` (ABI name `_v2`).
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
    cuMemGetInfo_v2 ["cuMemGetInfo_v2"]: fn(free: *mut usize, total: *mut usize) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
    cuStreamCreate ["cuStreamCreate"]: fn(ph_stream: *mut CUstream, flags: c_uint) -> CUresult;
    /// `cuStreamDestroy` (ABI name `_v2`).
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
    cuStreamDestroy_v2 ["cuStreamDestroy_v2"]: fn(h_stream: CUstream) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
    cuStreamSynchronize ["cuStreamSynchronize"]: fn(h_stream: CUstream) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
    cuStreamQuery ["cuStreamQuery"]: fn(h_stream: CUstream) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
    cuStreamWaitEvent ["cuStreamWaitEvent"]:
        fn(h_stream: CUstream, h_event: CUevent, flags: c_uint) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
    cuEventCreate ["cuEventCreate"]: fn(ph_event: *mut CUevent, flags: c_uint) -> CUresult;
    /// `cuEventDestroy` (ABI name `_v2`).
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
    cuEventDestroy_v2 ["cuEventDestroy_v2"]: fn(h_event: CUevent) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
    cuEventRecord ["cuEventRecord"]: fn(h_event: CUevent, h_stream: CUstream) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
    cuEventSynchronize ["cuEventSynchronize"]: fn(h_event: CUevent) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
    cuEventQuery ["cuEventQuery"]: fn(h_event: CUevent) -> CUresult;
    /// CUDA 12.8 added `cuEventElapsedTime_v2` (same signature) and CUDA 13's `cuda.h`
    /// maps `cuEventElapsedTime` to it; older drivers export only the first version.
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
    cuEventElapsedTime ["cuEventElapsedTime_v2", "cuEventElapsedTime"]:
        fn(p_milliseconds: *mut f32, h_start: CUevent, h_end: CUevent) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MALLOC__ASYNC.html>
    cuMemAllocAsync ["cuMemAllocAsync"]:
        fn(dptr: *mut CUdeviceptr, bytesize: usize, h_stream: CUstream) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MALLOC__ASYNC.html>
    cuMemFreeAsync ["cuMemFreeAsync"]: fn(dptr: CUdeviceptr, h_stream: CUstream) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MALLOC__ASYNC.html>
    cuMemPoolSetAttribute ["cuMemPoolSetAttribute"]:
        fn(pool: CUmemoryPool, attr: CUmemPool_attribute, value: *mut c_void) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MALLOC__ASYNC.html>
    cuMemPoolGetAttribute ["cuMemPoolGetAttribute"]:
        fn(pool: CUmemoryPool, attr: CUmemPool_attribute, value: *mut c_void) -> CUresult;
    /// Copies between two unified addresses; the direction is inferred from the pointers.
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
    cuMemcpyAsync ["cuMemcpyAsync"]:
        fn(dst: CUdeviceptr, src: CUdeviceptr, byte_count: usize, h_stream: CUstream) -> CUresult;
    /// `cuMemcpyHtoDAsync` (ABI name `_v2`).
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
    cuMemcpyHtoDAsync_v2 ["cuMemcpyHtoDAsync_v2"]: fn(
        dst_device: CUdeviceptr,
        src_host: *const c_void,
        byte_count: usize,
        h_stream: CUstream,
    ) -> CUresult;
    /// `cuMemcpyDtoHAsync` (ABI name `_v2`).
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
    cuMemcpyDtoHAsync_v2 ["cuMemcpyDtoHAsync_v2"]: fn(
        dst_host: *mut c_void,
        src_device: CUdeviceptr,
        byte_count: usize,
        h_stream: CUstream,
    ) -> CUresult;
    /// `cuMemcpyDtoDAsync` (ABI name `_v2`).
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
    cuMemcpyDtoDAsync_v2 ["cuMemcpyDtoDAsync_v2"]: fn(
        dst_device: CUdeviceptr,
        src_device: CUdeviceptr,
        byte_count: usize,
        h_stream: CUstream,
    ) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
    cuMemsetD8Async ["cuMemsetD8Async"]:
        fn(dst_device: CUdeviceptr, uc: u8, n: usize, h_stream: CUstream) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
    cuMemHostAlloc ["cuMemHostAlloc"]: fn(pp: *mut *mut c_void, bytesize: usize, flags: c_uint) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
    cuMemFreeHost ["cuMemFreeHost"]: fn(p: *mut c_void) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MODULE.html>
    cuModuleLoadData ["cuModuleLoadData"]: fn(module: *mut CUmodule, image: *const c_void) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MODULE.html>
    cuModuleUnload ["cuModuleUnload"]: fn(hmod: CUmodule) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MODULE.html>
    cuModuleGetFunction ["cuModuleGetFunction"]:
        fn(hfunc: *mut CUfunction, hmod: CUmodule, name: *const c_char) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EXEC.html>
    cuFuncGetAttribute ["cuFuncGetAttribute"]:
        fn(pi: *mut c_int, attrib: CUfunction_attribute, hfunc: CUfunction) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EXEC.html>
    cuLaunchKernel ["cuLaunchKernel"]: fn(
        f: CUfunction,
        grid_dim_x: c_uint,
        grid_dim_y: c_uint,
        grid_dim_z: c_uint,
        block_dim_x: c_uint,
        block_dim_y: c_uint,
        block_dim_z: c_uint,
        shared_mem_bytes: c_uint,
        h_stream: CUstream,
        kernel_params: *mut *mut c_void,
        extra: *mut *mut c_void,
    ) -> CUresult;
    /// `cuStreamBeginCapture` (ABI name `_v2`, which takes the capture mode).
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
    cuStreamBeginCapture_v2 ["cuStreamBeginCapture_v2"]:
        fn(h_stream: CUstream, mode: CUstreamCaptureMode) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
    cuStreamEndCapture ["cuStreamEndCapture"]: fn(h_stream: CUstream, ph_graph: *mut CUgraph) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
    cuStreamIsCapturing ["cuStreamIsCapturing"]:
        fn(h_stream: CUstream, capture_status: *mut CUstreamCaptureStatus) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
    cuThreadExchangeStreamCaptureMode ["cuThreadExchangeStreamCaptureMode"]:
        fn(mode: *mut CUstreamCaptureMode) -> CUresult;
    /// What `cuGraphInstantiate` is `#define`d to since CUDA 12.0.
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__GRAPH.html>
    cuGraphInstantiateWithFlags ["cuGraphInstantiateWithFlags"]:
        fn(ph_graph_exec: *mut CUgraphExec, h_graph: CUgraph, flags: c_ulonglong) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__GRAPH.html>
    cuGraphLaunch ["cuGraphLaunch"]: fn(h_graph_exec: CUgraphExec, h_stream: CUstream) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__GRAPH.html>
    cuGraphExecDestroy ["cuGraphExecDestroy"]: fn(h_graph_exec: CUgraphExec) -> CUresult;
    /// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__GRAPH.html>
    cuGraphDestroy ["cuGraphDestroy"]: fn(h_graph: CUgraph) -> CUresult;
}

/// The loaded driver: the table and the library that backs it. Lives in [`DRIVER`] for
/// the rest of the process, so the function pointers never dangle.
pub(crate) struct LoadedDriver {
    pub(crate) api: CudaDriver,
    pub(crate) path: PathBuf,
    _library: libloading::Library,
}

/// The process-wide driver. Set once, by the first successful [`install`]; never changed.
static DRIVER: OnceLock<LoadedDriver> = OnceLock::new();

/// Loads the driver from the first of `candidates` that opens (unless it is already
/// loaded, in which case that one is returned). `Ok(None)` when none opens; every
/// failure is in `tried`.
pub(crate) fn install(
    candidates: &[PathBuf],
    tried: &mut Vec<LoadAttempt>,
) -> Result<Option<&'static LoadedDriver>, LoadError> {
    if let Some(loaded) = DRIVER.get() {
        return Ok(Some(loaded));
    }
    let Some((library, path)) = open_first(candidates, tried) else {
        return Ok(None);
    };
    // SAFETY: a library named libcuda is the CUDA driver, which exports these symbols
    // with the signatures of cuda.h that the table transcribes; the library is moved into
    // the process-wide `DRIVER` below and never unloaded.
    let api = unsafe { CudaDriver::load(&library, &path) }?;
    // A racing thread may have installed a driver first; then ours is dropped (which only
    // decrements the loader's reference count) and theirs is used.
    let _ = DRIVER.set(LoadedDriver {
        api,
        path,
        _library: library,
    });
    Ok(DRIVER.get())
}

/// The loaded driver table, or `hipErrorNotInitialized` if [`install`] never succeeded
/// (which cannot happen for a function reached through the adapter's tables).
pub(crate) fn driver() -> Result<&'static CudaDriver, hipError_t> {
    DRIVER
        .get()
        .map(|loaded| &loaded.api)
        .ok_or(hipError_t::hipErrorNotInitialized)
}

/// Turns a driver result into the adapter's result: `Ok` on `CUDA_SUCCESS`; otherwise
/// the matching HIP code, after recording the failure as this thread's last CUDA error
/// (for `hipGetErrorString`). `CUDA_ERROR_NOT_READY` is a status, not a failure, and is
/// not recorded.
pub(crate) fn check(call: DriverCall, result: CUresult) -> Result<(), hipError_t> {
    if result == CUresult::CUDA_SUCCESS {
        return Ok(());
    }
    if result != CUresult::CUDA_ERROR_NOT_READY {
        super::error_map::record_failure(call, result);
    }
    Err(super::error_map::map_cuda_error(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_is_looked_for_as_libcuda_so_1_first() {
        let c = driver_library_candidates();
        assert_eq!(
            c,
            vec![PathBuf::from("libcuda.so.1"), PathBuf::from("libcuda.so")]
        );
    }

    #[test]
    fn call_names_are_unique_and_indexed() {
        for (i, call) in DriverCall::ALL.iter().enumerate() {
            assert_eq!(call.index(), i);
            assert!(call.name().starts_with("cu"));
        }
        let mut names: Vec<_> = DriverCall::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DriverCall::ALL.len());
    }
}
