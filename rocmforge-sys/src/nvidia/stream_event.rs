//! Streams and events: `hipStreamCreateWithFlags`, `hipStreamDestroy`,
//! `hipStreamSynchronize`, `hipStreamQuery`, `hipStreamWaitEvent`,
//! `hipEventCreateWithFlags`, `hipEventDestroy`, `hipEventRecord`,
//! `hipEventSynchronize`, `hipEventQuery`, `hipEventElapsedTime`.
//!
//! HIP and CUDA handles are both opaque pointers and are passed through unchanged. A
//! null `hipStream_t` is CUDA's legacy default stream (the driver's behaviour without
//! per-thread default streams); each use is counted in [`super::sync_counter`].

use core::ffi::c_uint;
use std::ptr;

use super::context::current;
use super::cuda_driver::{check, DriverCall};
use super::cuda_types::*;
use super::status;
use super::sync_counter::count_if_null_stream;
use crate::bindings::hip::{
    hipError_t, hipEventBlockingSync, hipEventDisableTiming, hipEventInterprocess,
    hipEventReleaseToDevice, hipEventReleaseToSystem, hipEvent_t, hipStreamNonBlocking,
    hipStream_t,
};

/// `hipStreamCreateWithFlags` flags → `cuStreamCreate` flags: `hipStreamNonBlocking` is
/// `CU_STREAM_NON_BLOCKING`, `hipStreamDefault` (0) is `CU_STREAM_DEFAULT`; any other bit
/// is refused.
pub fn stream_flags_to_cuda(flags: c_uint) -> Result<c_uint, hipError_t> {
    if flags & !hipStreamNonBlocking != 0 {
        return Err(hipError_t::hipErrorInvalidValue);
    }
    Ok(if flags & hipStreamNonBlocking != 0 {
        CU_STREAM_NON_BLOCKING
    } else {
        CU_STREAM_DEFAULT
    })
}

/// `hipEventCreateWithFlags` flags → `cuEventCreate` flags: `BlockingSync`,
/// `DisableTiming` and `Interprocess` have CUDA twins with the same meaning;
/// `hipEventReleaseToDevice`/`ToSystem` (AMD cache-coherence scopes) are no-ops on
/// NVIDIA, as HIP's own NVIDIA header defines them as 0; any other bit is refused.
pub fn event_flags_to_cuda(flags: c_uint) -> Result<c_uint, hipError_t> {
    let known = hipEventBlockingSync
        | hipEventDisableTiming
        | hipEventInterprocess
        | hipEventReleaseToDevice
        | hipEventReleaseToSystem;
    if flags & !known != 0 {
        return Err(hipError_t::hipErrorInvalidValue);
    }
    let mut cuda = CU_EVENT_DEFAULT;
    if flags & hipEventBlockingSync != 0 {
        cuda |= CU_EVENT_BLOCKING_SYNC;
    }
    if flags & hipEventDisableTiming != 0 {
        cuda |= CU_EVENT_DISABLE_TIMING;
    }
    if flags & hipEventInterprocess != 0 {
        cuda |= CU_EVENT_INTERPROCESS;
    }
    Ok(cuda)
}

/// `hipStreamCreateWithFlags` → `cuStreamCreate` (flags through [`stream_flags_to_cuda`]).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
pub(crate) unsafe extern "C" fn hipStreamCreateWithFlags(
    stream: *mut hipStream_t,
    flags: c_uint,
) -> hipError_t {
    if stream.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = stream_flags_to_cuda(flags).and_then(|cuda_flags| {
        let (d, _) = current()?;
        let mut s: CUstream = ptr::null_mut();
        // SAFETY: `s` is a valid out-pointer; a context is current.
        let result = unsafe { (d.cuStreamCreate)(&mut s, cuda_flags) };
        check(DriverCall::cuStreamCreate, result)?;
        // SAFETY: `stream` is non-null and points to a hipStream_t (HIP contract).
        unsafe { stream.write(s.cast()) };
        Ok(())
    });
    status(result)
}

/// `hipStreamDestroy` → `cuStreamDestroy_v2` (returns at once; the driver releases the
/// stream when its work is done). The NULL stream cannot be destroyed.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
pub(crate) unsafe extern "C" fn hipStreamDestroy(stream: hipStream_t) -> hipError_t {
    if stream.is_null() {
        return hipError_t::hipErrorInvalidHandle;
    }
    let result = current().and_then(|(d, _)| {
        // SAFETY: `stream` is a stream handle made by hipStreamCreateWithFlags (HIP contract).
        let result = unsafe { (d.cuStreamDestroy_v2)(stream.cast()) };
        check(DriverCall::cuStreamDestroy_v2, result)
    });
    status(result)
}

/// `hipStreamSynchronize` → `cuStreamSynchronize`: waits for this stream only.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
pub(crate) unsafe extern "C" fn hipStreamSynchronize(stream: hipStream_t) -> hipError_t {
    count_if_null_stream(stream);
    let result = current().and_then(|(d, _)| {
        // SAFETY: `stream` is a stream handle or null (the legacy stream).
        let result = unsafe { (d.cuStreamSynchronize)(stream.cast()) };
        check(DriverCall::cuStreamSynchronize, result)
    });
    status(result)
}

/// `hipStreamQuery` → `cuStreamQuery`; unfinished work is `hipErrorNotReady`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
pub(crate) unsafe extern "C" fn hipStreamQuery(stream: hipStream_t) -> hipError_t {
    count_if_null_stream(stream);
    let result = current().and_then(|(d, _)| {
        // SAFETY: `stream` is a stream handle or null (the legacy stream).
        let result = unsafe { (d.cuStreamQuery)(stream.cast()) };
        check(DriverCall::cuStreamQuery, result)
    });
    status(result)
}

/// `hipStreamWaitEvent` → `cuStreamWaitEvent` (flags passed through: HIP requires 0,
/// which is `CU_EVENT_WAIT_DEFAULT`).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html>
pub(crate) unsafe extern "C" fn hipStreamWaitEvent(
    stream: hipStream_t,
    event: hipEvent_t,
    flags: c_uint,
) -> hipError_t {
    count_if_null_stream(stream);
    let result = current().and_then(|(d, _)| {
        // SAFETY: handles made by the adapter (HIP contract); no pointers are written.
        let result = unsafe { (d.cuStreamWaitEvent)(stream.cast(), event.cast(), flags) };
        check(DriverCall::cuStreamWaitEvent, result)
    });
    status(result)
}

/// `hipEventCreateWithFlags` → `cuEventCreate` (flags through [`event_flags_to_cuda`]).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
pub(crate) unsafe extern "C" fn hipEventCreateWithFlags(
    event: *mut hipEvent_t,
    flags: c_uint,
) -> hipError_t {
    if event.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = event_flags_to_cuda(flags).and_then(|cuda_flags| {
        let (d, _) = current()?;
        let mut e: CUevent = ptr::null_mut();
        // SAFETY: `e` is a valid out-pointer; a context is current.
        let result = unsafe { (d.cuEventCreate)(&mut e, cuda_flags) };
        check(DriverCall::cuEventCreate, result)?;
        // SAFETY: `event` is non-null and points to a hipEvent_t (HIP contract).
        unsafe { event.write(e.cast()) };
        Ok(())
    });
    status(result)
}

/// `hipEventDestroy` → `cuEventDestroy_v2`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
pub(crate) unsafe extern "C" fn hipEventDestroy(event: hipEvent_t) -> hipError_t {
    if event.is_null() {
        return hipError_t::hipErrorInvalidHandle;
    }
    let result = current().and_then(|(d, _)| {
        // SAFETY: `event` is an event handle made by hipEventCreateWithFlags.
        let result = unsafe { (d.cuEventDestroy_v2)(event.cast()) };
        check(DriverCall::cuEventDestroy_v2, result)
    });
    status(result)
}

/// `hipEventRecord` → `cuEventRecord`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
pub(crate) unsafe extern "C" fn hipEventRecord(
    event: hipEvent_t,
    stream: hipStream_t,
) -> hipError_t {
    count_if_null_stream(stream);
    let result = current().and_then(|(d, _)| {
        // SAFETY: handles made by the adapter (HIP contract), or a null (legacy) stream.
        let result = unsafe { (d.cuEventRecord)(event.cast(), stream.cast()) };
        check(DriverCall::cuEventRecord, result)
    });
    status(result)
}

/// `hipEventSynchronize` → `cuEventSynchronize`: waits for this event only.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
pub(crate) unsafe extern "C" fn hipEventSynchronize(event: hipEvent_t) -> hipError_t {
    let result = current().and_then(|(d, _)| {
        // SAFETY: `event` is an event handle made by the adapter (HIP contract).
        let result = unsafe { (d.cuEventSynchronize)(event.cast()) };
        check(DriverCall::cuEventSynchronize, result)
    });
    status(result)
}

/// `hipEventQuery` → `cuEventQuery`; an event not yet reached is `hipErrorNotReady`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
pub(crate) unsafe extern "C" fn hipEventQuery(event: hipEvent_t) -> hipError_t {
    let result = current().and_then(|(d, _)| {
        // SAFETY: `event` is an event handle made by the adapter (HIP contract).
        let result = unsafe { (d.cuEventQuery)(event.cast()) };
        check(DriverCall::cuEventQuery, result)
    });
    status(result)
}

/// `hipEventElapsedTime` → `cuEventElapsedTime_v2` (or the first version on drivers
/// older than CUDA 12.8): milliseconds between two completed, timing-enabled events.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EVENT.html>
pub(crate) unsafe extern "C" fn hipEventElapsedTime(
    ms: *mut f32,
    start: hipEvent_t,
    stop: hipEvent_t,
) -> hipError_t {
    if ms.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = current().and_then(|(d, _)| {
        // SAFETY: `ms` is non-null and points to a float (HIP contract); the events are
        // handles made by the adapter.
        let result = unsafe { (d.cuEventElapsedTime)(ms, start.cast(), stop.cast()) };
        check(DriverCall::cuEventElapsedTime, result)
    });
    status(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stream_flags() {
        assert_eq!(stream_flags_to_cuda(0), Ok(CU_STREAM_DEFAULT));
        assert_eq!(
            stream_flags_to_cuda(hipStreamNonBlocking),
            Ok(CU_STREAM_NON_BLOCKING)
        );
        assert_eq!(
            stream_flags_to_cuda(2),
            Err(hipError_t::hipErrorInvalidValue)
        );
    }

    #[test]
    fn event_flags() {
        assert_eq!(event_flags_to_cuda(0), Ok(CU_EVENT_DEFAULT));
        assert_eq!(
            event_flags_to_cuda(hipEventDisableTiming),
            Ok(CU_EVENT_DISABLE_TIMING)
        );
        assert_eq!(
            event_flags_to_cuda(
                hipEventBlockingSync | hipEventDisableTiming | hipEventInterprocess
            ),
            Ok(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS)
        );
        assert_eq!(
            event_flags_to_cuda(hipEventReleaseToSystem),
            Ok(CU_EVENT_DEFAULT)
        );
        assert_eq!(
            event_flags_to_cuda(hipEventReleaseToDevice | hipEventDisableTiming),
            Ok(CU_EVENT_DISABLE_TIMING)
        );
        assert_eq!(
            event_flags_to_cuda(8),
            Err(hipError_t::hipErrorInvalidValue)
        );
    }

    proptest! {
        #[test]
        fn unknown_flag_bits_are_refused(flags in any::<u32>()) {
            let stream_ok = flags & !hipStreamNonBlocking == 0;
            prop_assert_eq!(stream_flags_to_cuda(flags).is_ok(), stream_ok);
            let event_known = hipEventBlockingSync | hipEventDisableTiming | hipEventInterprocess
                | hipEventReleaseToDevice | hipEventReleaseToSystem;
            prop_assert_eq!(event_flags_to_cuda(flags).is_ok(), flags & !event_known == 0);
            if let Ok(cuda) = event_flags_to_cuda(flags) {
                prop_assert_eq!(cuda & !(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS), 0);
            }
        }
    }
}
