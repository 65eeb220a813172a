//! Stream capture and graphs: `hipStreamBeginCapture`, `hipStreamEndCapture`,
//! `hipStreamIsCapturing`, `hipThreadExchangeStreamCaptureMode`, `hipGraphInstantiate`,
//! `hipGraphLaunch`, `hipGraphExecDestroy`, `hipGraphDestroy`.

use core::ffi::c_char;
use std::ptr;

use super::context::current;
use super::cuda_driver::{check, DriverCall};
use super::cuda_types::*;
use super::error_map::{cuda_error_name, hip_error_name};
use super::status;
use super::sync_counter::count_if_null_stream;
use crate::bindings::hip::{
    hipError_t, hipGraphExec_t, hipGraphNode_t, hipGraph_t, hipStreamCaptureMode,
    hipStreamCaptureStatus, hipStream_t,
};

/// `hipStreamCaptureMode` → `CUstreamCaptureMode`: Global (0), ThreadLocal (1) and
/// Relaxed (2) have the same values and meanings; anything else is refused.
pub fn capture_mode_to_cuda(mode: hipStreamCaptureMode) -> Result<CUstreamCaptureMode, hipError_t> {
    type H = hipStreamCaptureMode;
    type C = CUstreamCaptureMode;
    Ok(match mode {
        H::hipStreamCaptureModeGlobal => C::CU_STREAM_CAPTURE_MODE_GLOBAL,
        H::hipStreamCaptureModeThreadLocal => C::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
        H::hipStreamCaptureModeRelaxed => C::CU_STREAM_CAPTURE_MODE_RELAXED,
        _ => return Err(hipError_t::hipErrorInvalidValue),
    })
}

/// `CUstreamCaptureMode` → `hipStreamCaptureMode` (for the mode handed back by
/// `cuThreadExchangeStreamCaptureMode`).
pub fn capture_mode_from_cuda(
    mode: CUstreamCaptureMode,
) -> Result<hipStreamCaptureMode, hipError_t> {
    type H = hipStreamCaptureMode;
    type C = CUstreamCaptureMode;
    Ok(match mode {
        C::CU_STREAM_CAPTURE_MODE_GLOBAL => H::hipStreamCaptureModeGlobal,
        C::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL => H::hipStreamCaptureModeThreadLocal,
        C::CU_STREAM_CAPTURE_MODE_RELAXED => H::hipStreamCaptureModeRelaxed,
        _ => return Err(hipError_t::hipErrorUnknown),
    })
}

/// `CUstreamCaptureStatus` → `hipStreamCaptureStatus` (None 0, Active 1, Invalidated 2).
pub fn capture_status_from_cuda(
    status: CUstreamCaptureStatus,
) -> Result<hipStreamCaptureStatus, hipError_t> {
    type H = hipStreamCaptureStatus;
    type C = CUstreamCaptureStatus;
    Ok(match status {
        C::CU_STREAM_CAPTURE_STATUS_NONE => H::hipStreamCaptureStatusNone,
        C::CU_STREAM_CAPTURE_STATUS_ACTIVE => H::hipStreamCaptureStatusActive,
        C::CU_STREAM_CAPTURE_STATUS_INVALIDATED => H::hipStreamCaptureStatusInvalidated,
        _ => return Err(hipError_t::hipErrorUnknown),
    })
}

/// `hipStreamBeginCapture` → `cuStreamBeginCapture_v2` (mode through
/// [`capture_mode_to_cuda`]). The legacy NULL stream cannot be captured.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
pub(crate) unsafe extern "C" fn hipStreamBeginCapture(
    stream: hipStream_t,
    mode: hipStreamCaptureMode,
) -> hipError_t {
    let result = capture_mode_to_cuda(mode).and_then(|cuda_mode| {
        count_if_null_stream(stream);
        let (d, _) = current()?;
        // SAFETY: `stream` is a stream handle (HIP contract); no pointers are written.
        let result = unsafe { (d.cuStreamBeginCapture_v2)(stream.cast(), cuda_mode) };
        check(DriverCall::cuStreamBeginCapture_v2, result)
    });
    status(result)
}

/// `hipStreamEndCapture` → `cuStreamEndCapture`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
pub(crate) unsafe extern "C" fn hipStreamEndCapture(
    stream: hipStream_t,
    pGraph: *mut hipGraph_t,
) -> hipError_t {
    if pGraph.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = current().and_then(|(d, _)| {
        let mut graph: CUgraph = ptr::null_mut();
        // SAFETY: `graph` is a valid out-pointer; `stream` a stream handle.
        let result = unsafe { (d.cuStreamEndCapture)(stream.cast(), &mut graph) };
        check(DriverCall::cuStreamEndCapture, result)?;
        // SAFETY: `pGraph` is non-null and points to a hipGraph_t (HIP contract).
        unsafe { pGraph.write(graph.cast()) };
        Ok(())
    });
    status(result)
}

/// `hipStreamIsCapturing` → `cuStreamIsCapturing`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
pub(crate) unsafe extern "C" fn hipStreamIsCapturing(
    stream: hipStream_t,
    pCaptureStatus: *mut hipStreamCaptureStatus,
) -> hipError_t {
    if pCaptureStatus.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = current().and_then(|(d, _)| {
        let mut cuda_status = CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE;
        // SAFETY: `cuda_status` is a valid out-pointer; `stream` a stream handle or null.
        let result = unsafe { (d.cuStreamIsCapturing)(stream.cast(), &mut cuda_status) };
        check(DriverCall::cuStreamIsCapturing, result)?;
        let hip_status = capture_status_from_cuda(cuda_status)?;
        // SAFETY: `pCaptureStatus` is non-null and points to a hipStreamCaptureStatus.
        unsafe { pCaptureStatus.write(hip_status) };
        Ok(())
    });
    status(result)
}

/// `hipThreadExchangeStreamCaptureMode` → `cuThreadExchangeStreamCaptureMode`: sets the
/// calling thread's capture-interaction mode and returns the previous one in `*mode`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
pub(crate) unsafe extern "C" fn hipThreadExchangeStreamCaptureMode(
    mode: *mut hipStreamCaptureMode,
) -> hipError_t {
    if mode.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    // SAFETY: `mode` is non-null and points to a hipStreamCaptureMode (HIP contract).
    let requested = unsafe { mode.read() };
    let result = capture_mode_to_cuda(requested).and_then(|cuda_mode| {
        let (d, _) = current()?;
        let mut exchanged = cuda_mode;
        // SAFETY: `exchanged` is a valid in/out pointer.
        let result = unsafe { (d.cuThreadExchangeStreamCaptureMode)(&mut exchanged) };
        check(DriverCall::cuThreadExchangeStreamCaptureMode, result)?;
        let previous = capture_mode_from_cuda(exchanged)?;
        // SAFETY: as above.
        unsafe { mode.write(previous) };
        Ok(())
    });
    status(result)
}

/// Writes `text` into a caller's log buffer of `size` bytes, truncated, NUL-terminated.
///
/// # Safety
/// `buffer` must be null or point to `size` writable bytes.
unsafe fn write_log(buffer: *mut c_char, size: usize, text: &str) {
    if buffer.is_null() || size == 0 {
        return;
    }
    let n = text.len().min(size - 1);
    // SAFETY: `n + 1 <= size` bytes are written into the caller's buffer.
    unsafe {
        ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), buffer, n);
        buffer.add(n).write(0);
    }
}

/// `hipGraphInstantiate` → `cuGraphInstantiateWithFlags(…, 0)` (what CUDA 12+'s
/// `cuGraphInstantiate` is). CUDA reports no error node this way: `*pErrorNode` is set
/// to null. The log buffer, if given, receives an empty string on success and the CUDA
/// error name and message on failure.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__GRAPH.html>
pub(crate) unsafe extern "C" fn hipGraphInstantiate(
    pGraphExec: *mut hipGraphExec_t,
    graph: hipGraph_t,
    pErrorNode: *mut hipGraphNode_t,
    pLogBuffer: *mut c_char,
    bufferSize: usize,
) -> hipError_t {
    if pGraphExec.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    if !pErrorNode.is_null() {
        // SAFETY: non-null, points to a hipGraphNode_t (HIP contract).
        unsafe { pErrorNode.write(ptr::null_mut()) };
    }
    let result = current().and_then(|(d, _)| {
        let mut exec: CUgraphExec = ptr::null_mut();
        // SAFETY: `exec` is a valid out-pointer; `graph` a graph handle (HIP contract).
        let result = unsafe { (d.cuGraphInstantiateWithFlags)(&mut exec, graph.cast(), 0) };
        let checked = check(DriverCall::cuGraphInstantiateWithFlags, result);
        let log = match checked {
            Ok(()) => String::new(),
            Err(hip) => {
                let cuda = cuda_error_name(result).unwrap_or("an unrecognized CUresult");
                let hip = hip_error_name(hip).unwrap_or("hipErrorUnknown");
                format!("cuGraphInstantiateWithFlags failed with {cuda} ({hip})")
            }
        };
        // SAFETY: `pLogBuffer` is null or points to `bufferSize` bytes (HIP contract).
        unsafe { write_log(pLogBuffer, bufferSize, &log) };
        checked?;
        // SAFETY: `pGraphExec` is non-null and points to a hipGraphExec_t.
        unsafe { pGraphExec.write(exec.cast()) };
        Ok(())
    });
    status(result)
}

/// `hipGraphLaunch` → `cuGraphLaunch`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__GRAPH.html>
pub(crate) unsafe extern "C" fn hipGraphLaunch(
    graphExec: hipGraphExec_t,
    stream: hipStream_t,
) -> hipError_t {
    count_if_null_stream(stream);
    let result = current().and_then(|(d, _)| {
        // SAFETY: handles made by the adapter (HIP contract); no pointers are written.
        let result = unsafe { (d.cuGraphLaunch)(graphExec.cast(), stream.cast()) };
        check(DriverCall::cuGraphLaunch, result)
    });
    status(result)
}

/// `hipGraphExecDestroy` → `cuGraphExecDestroy`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__GRAPH.html>
pub(crate) unsafe extern "C" fn hipGraphExecDestroy(graphExec: hipGraphExec_t) -> hipError_t {
    if graphExec.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = current().and_then(|(d, _)| {
        // SAFETY: `graphExec` was made by hipGraphInstantiate (HIP contract).
        let result = unsafe { (d.cuGraphExecDestroy)(graphExec.cast()) };
        check(DriverCall::cuGraphExecDestroy, result)
    });
    status(result)
}

/// `hipGraphDestroy` → `cuGraphDestroy`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__GRAPH.html>
pub(crate) unsafe extern "C" fn hipGraphDestroy(graph: hipGraph_t) -> hipError_t {
    if graph.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = current().and_then(|(d, _)| {
        // SAFETY: `graph` was made by hipStreamEndCapture (HIP contract).
        let result = unsafe { (d.cuGraphDestroy)(graph.cast()) };
        check(DriverCall::cuGraphDestroy, result)
    });
    status(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_modes_round_trip() {
        for v in 0..3 {
            let cuda = capture_mode_to_cuda(hipStreamCaptureMode(v)).unwrap();
            assert_eq!(cuda.0, v);
            assert_eq!(capture_mode_from_cuda(cuda).unwrap().0, v);
        }
        assert!(capture_mode_to_cuda(hipStreamCaptureMode(3)).is_err());
    }

    #[test]
    fn capture_statuses_keep_their_values() {
        for v in 0..3 {
            assert_eq!(
                capture_status_from_cuda(CUstreamCaptureStatus(v))
                    .unwrap()
                    .0,
                v
            );
        }
        assert!(capture_status_from_cuda(CUstreamCaptureStatus(3)).is_err());
    }

    #[test]
    fn log_is_truncated_and_terminated() {
        let mut buf = [1 as c_char; 8];
        // SAFETY: an 8-byte buffer.
        unsafe { write_log(buf.as_mut_ptr(), buf.len(), "CUDA_ERROR_INVALID_VALUE") };
        assert_eq!(crate::c_chars_to_string(&buf), "CUDA_ER");
        assert_eq!(buf[7], 0);
        // SAFETY: a null buffer is ignored.
        unsafe { write_log(ptr::null_mut(), 10, "x") };
    }
}
