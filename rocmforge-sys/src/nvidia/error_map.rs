//! CUDA driver errors mapped to HIP errors, the HIP error names and messages, and the
//! per-thread record of the last failing CUDA call that `hipGetErrorString` reports.
//!
//! The mapping follows HIP's own `hipCUResultTohipError` (HIP 5.2,
//! `hip/nvidia_detail/nvidia_hip_runtime_api.h`) for every code it lists; codes it sends to
//! `hipErrorUnknown` but that have a clear HIP equivalent are mapped to it (kernel
//! exceptions to `hipErrorLaunchFailure`, driver-version problems to
//! `hipErrorInsufficientDriver`, JIT/PTX image problems to `hipErrorInvalidKernelFile`, ...).
//! The CUDA name always travels in the message, so nothing is lost.

use core::ffi::c_char;
use std::cell::Cell;
use std::sync::OnceLock;

use super::cuda_driver::DriverCall;
use super::cuda_types::CUresult;
use crate::bindings::hip::hipError_t;

/// Maps a CUDA driver result to the HIP error code with the same meaning. Total: every
/// value maps to a defined `hipError_t` (unlisted values to `hipErrorUnknown`), and only
/// `CUDA_SUCCESS` maps to `hipSuccess`.
pub fn map_cuda_error(result: CUresult) -> hipError_t {
    type H = hipError_t;
    type C = CUresult;
    match result {
        C::CUDA_SUCCESS => H::hipSuccess,
        C::CUDA_ERROR_INVALID_VALUE => H::hipErrorInvalidValue,
        C::CUDA_ERROR_OUT_OF_MEMORY => H::hipErrorOutOfMemory,
        C::CUDA_ERROR_NOT_INITIALIZED => H::hipErrorNotInitialized,
        C::CUDA_ERROR_DEINITIALIZED => H::hipErrorDeinitialized,
        C::CUDA_ERROR_PROFILER_DISABLED => H::hipErrorProfilerDisabled,
        C::CUDA_ERROR_PROFILER_NOT_INITIALIZED => H::hipErrorProfilerNotInitialized,
        C::CUDA_ERROR_PROFILER_ALREADY_STARTED => H::hipErrorProfilerAlreadyStarted,
        C::CUDA_ERROR_PROFILER_ALREADY_STOPPED => H::hipErrorProfilerAlreadyStopped,
        // The driver is a stub, too old, or mismatched with the kernel module.
        C::CUDA_ERROR_STUB_LIBRARY
        | C::CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER
        | C::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
        | C::CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE => H::hipErrorInsufficientDriver,
        C::CUDA_ERROR_NO_DEVICE => H::hipErrorNoDevice,
        C::CUDA_ERROR_INVALID_DEVICE => H::hipErrorInvalidDevice,
        C::CUDA_ERROR_INVALID_IMAGE => H::hipErrorInvalidImage,
        C::CUDA_ERROR_INVALID_CONTEXT => H::hipErrorInvalidContext,
        C::CUDA_ERROR_CONTEXT_ALREADY_CURRENT => H::hipErrorContextAlreadyCurrent,
        C::CUDA_ERROR_MAP_FAILED => H::hipErrorMapFailed,
        C::CUDA_ERROR_UNMAP_FAILED => H::hipErrorUnmapFailed,
        C::CUDA_ERROR_ARRAY_IS_MAPPED => H::hipErrorArrayIsMapped,
        C::CUDA_ERROR_ALREADY_MAPPED => H::hipErrorAlreadyMapped,
        C::CUDA_ERROR_NO_BINARY_FOR_GPU => H::hipErrorNoBinaryForGpu,
        C::CUDA_ERROR_ALREADY_ACQUIRED => H::hipErrorAlreadyAcquired,
        C::CUDA_ERROR_NOT_MAPPED => H::hipErrorNotMapped,
        C::CUDA_ERROR_NOT_MAPPED_AS_ARRAY => H::hipErrorNotMappedAsArray,
        C::CUDA_ERROR_NOT_MAPPED_AS_POINTER => H::hipErrorNotMappedAsPointer,
        C::CUDA_ERROR_ECC_UNCORRECTABLE | C::CUDA_ERROR_NVLINK_UNCORRECTABLE => {
            H::hipErrorECCNotCorrectable
        }
        C::CUDA_ERROR_UNSUPPORTED_LIMIT => H::hipErrorUnsupportedLimit,
        C::CUDA_ERROR_CONTEXT_ALREADY_IN_USE => H::hipErrorContextAlreadyInUse,
        C::CUDA_ERROR_PEER_ACCESS_UNSUPPORTED => H::hipErrorPeerAccessUnsupported,
        // HIP documents hipErrorInvalidKernelFile as "in CUDA DRV, it is CUDA_ERROR_INVALID_PTX";
        // the JIT failures are the same class: the image cannot be made into code.
        C::CUDA_ERROR_INVALID_PTX
        | C::CUDA_ERROR_JIT_COMPILER_NOT_FOUND
        | C::CUDA_ERROR_UNSUPPORTED_PTX_VERSION
        | C::CUDA_ERROR_JIT_COMPILATION_DISABLED => H::hipErrorInvalidKernelFile,
        C::CUDA_ERROR_INVALID_GRAPHICS_CONTEXT => H::hipErrorInvalidGraphicsContext,
        C::CUDA_ERROR_INVALID_SOURCE => H::hipErrorInvalidSource,
        C::CUDA_ERROR_FILE_NOT_FOUND => H::hipErrorFileNotFound,
        C::CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND => H::hipErrorSharedObjectSymbolNotFound,
        C::CUDA_ERROR_SHARED_OBJECT_INIT_FAILED => H::hipErrorSharedObjectInitFailed,
        C::CUDA_ERROR_OPERATING_SYSTEM => H::hipErrorOperatingSystem,
        C::CUDA_ERROR_INVALID_HANDLE => H::hipErrorInvalidHandle,
        C::CUDA_ERROR_ILLEGAL_STATE => H::hipErrorIllegalState,
        C::CUDA_ERROR_NOT_FOUND => H::hipErrorNotFound,
        C::CUDA_ERROR_NOT_READY => H::hipErrorNotReady,
        C::CUDA_ERROR_ILLEGAL_ADDRESS => H::hipErrorIllegalAddress,
        C::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES => H::hipErrorLaunchOutOfResources,
        C::CUDA_ERROR_LAUNCH_TIMEOUT => H::hipErrorLaunchTimeOut,
        C::CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED => H::hipErrorPeerAccessAlreadyEnabled,
        C::CUDA_ERROR_PEER_ACCESS_NOT_ENABLED => H::hipErrorPeerAccessNotEnabled,
        C::CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE => H::hipErrorSetOnActiveProcess,
        C::CUDA_ERROR_CONTEXT_IS_DESTROYED => H::hipErrorContextIsDestroyed,
        C::CUDA_ERROR_ASSERT => H::hipErrorAssert,
        C::CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED => H::hipErrorHostMemoryAlreadyRegistered,
        C::CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED => H::hipErrorHostMemoryNotRegistered,
        // An exception while a kernel ran: the context is unusable, as with LAUNCH_FAILED.
        C::CUDA_ERROR_LAUNCH_FAILED
        | C::CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING
        | C::CUDA_ERROR_HARDWARE_STACK_ERROR
        | C::CUDA_ERROR_ILLEGAL_INSTRUCTION
        | C::CUDA_ERROR_MISALIGNED_ADDRESS
        | C::CUDA_ERROR_INVALID_ADDRESS_SPACE
        | C::CUDA_ERROR_INVALID_PC
        | C::CUDA_ERROR_CONTAINED
        | C::CUDA_ERROR_TENSOR_MEMORY_LEAK => H::hipErrorLaunchFailure,
        C::CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE => H::hipErrorCooperativeLaunchTooLarge,
        C::CUDA_ERROR_NOT_SUPPORTED
        | C::CUDA_ERROR_NOT_PERMITTED
        | C::CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY
        | C::CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC
        | C::CUDA_ERROR_CDP_NOT_SUPPORTED
        | C::CUDA_ERROR_CDP_VERSION_MISMATCH => H::hipErrorNotSupported,
        C::CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED => H::hipErrorStreamCaptureUnsupported,
        C::CUDA_ERROR_STREAM_CAPTURE_INVALIDATED => H::hipErrorStreamCaptureInvalidated,
        C::CUDA_ERROR_STREAM_CAPTURE_MERGE => H::hipErrorStreamCaptureMerge,
        C::CUDA_ERROR_STREAM_CAPTURE_UNMATCHED => H::hipErrorStreamCaptureUnmatched,
        C::CUDA_ERROR_STREAM_CAPTURE_UNJOINED => H::hipErrorStreamCaptureUnjoined,
        C::CUDA_ERROR_STREAM_CAPTURE_ISOLATION => H::hipErrorStreamCaptureIsolation,
        C::CUDA_ERROR_STREAM_CAPTURE_IMPLICIT => H::hipErrorStreamCaptureImplicit,
        C::CUDA_ERROR_CAPTURED_EVENT => H::hipErrorCapturedEvent,
        C::CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD => H::hipErrorStreamCaptureWrongThread,
        C::CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE => H::hipErrorGraphExecUpdateFailure,
        C::CUDA_ERROR_INVALID_CLUSTER_SIZE => H::hipErrorInvalidConfiguration,
        C::CUDA_ERROR_FUNCTION_NOT_LOADED => H::hipErrorInvalidDeviceFunction,
        // No HIP equivalent (as in HIP's own mapping): DEVICE_UNAVAILABLE, DEVICE_NOT_LICENSED,
        // LOSSY_QUERY, TOO_MANY_PEERS, SYSTEM_NOT_READY, MPS_*, TIMEOUT, EXTERNAL_DEVICE,
        // INVALID_RESOURCE_*, KEY_ROTATION, STREAM_DETACHED, UNKNOWN, and any future code.
        _ => H::hipErrorUnknown,
    }
}

/// Every `CUresult` of [`CUresult`]'s constants with its `cuda.h` name, in value order.
pub const CUDA_ERROR_NAMES: &[(CUresult, &str)] = &[
    (CUresult::CUDA_SUCCESS, "CUDA_SUCCESS"),
    (
        CUresult::CUDA_ERROR_INVALID_VALUE,
        "CUDA_ERROR_INVALID_VALUE",
    ),
    (
        CUresult::CUDA_ERROR_OUT_OF_MEMORY,
        "CUDA_ERROR_OUT_OF_MEMORY",
    ),
    (
        CUresult::CUDA_ERROR_NOT_INITIALIZED,
        "CUDA_ERROR_NOT_INITIALIZED",
    ),
    (
        CUresult::CUDA_ERROR_DEINITIALIZED,
        "CUDA_ERROR_DEINITIALIZED",
    ),
    (
        CUresult::CUDA_ERROR_PROFILER_DISABLED,
        "CUDA_ERROR_PROFILER_DISABLED",
    ),
    (
        CUresult::CUDA_ERROR_PROFILER_NOT_INITIALIZED,
        "CUDA_ERROR_PROFILER_NOT_INITIALIZED",
    ),
    (
        CUresult::CUDA_ERROR_PROFILER_ALREADY_STARTED,
        "CUDA_ERROR_PROFILER_ALREADY_STARTED",
    ),
    (
        CUresult::CUDA_ERROR_PROFILER_ALREADY_STOPPED,
        "CUDA_ERROR_PROFILER_ALREADY_STOPPED",
    ),
    (CUresult::CUDA_ERROR_STUB_LIBRARY, "CUDA_ERROR_STUB_LIBRARY"),
    (
        CUresult::CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER,
        "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER",
    ),
    (
        CUresult::CUDA_ERROR_DEVICE_UNAVAILABLE,
        "CUDA_ERROR_DEVICE_UNAVAILABLE",
    ),
    (CUresult::CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE"),
    (
        CUresult::CUDA_ERROR_INVALID_DEVICE,
        "CUDA_ERROR_INVALID_DEVICE",
    ),
    (
        CUresult::CUDA_ERROR_DEVICE_NOT_LICENSED,
        "CUDA_ERROR_DEVICE_NOT_LICENSED",
    ),
    (
        CUresult::CUDA_ERROR_INVALID_IMAGE,
        "CUDA_ERROR_INVALID_IMAGE",
    ),
    (
        CUresult::CUDA_ERROR_INVALID_CONTEXT,
        "CUDA_ERROR_INVALID_CONTEXT",
    ),
    (
        CUresult::CUDA_ERROR_CONTEXT_ALREADY_CURRENT,
        "CUDA_ERROR_CONTEXT_ALREADY_CURRENT",
    ),
    (CUresult::CUDA_ERROR_MAP_FAILED, "CUDA_ERROR_MAP_FAILED"),
    (CUresult::CUDA_ERROR_UNMAP_FAILED, "CUDA_ERROR_UNMAP_FAILED"),
    (
        CUresult::CUDA_ERROR_ARRAY_IS_MAPPED,
        "CUDA_ERROR_ARRAY_IS_MAPPED",
    ),
    (
        CUresult::CUDA_ERROR_ALREADY_MAPPED,
        "CUDA_ERROR_ALREADY_MAPPED",
    ),
    (
        CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU,
        "CUDA_ERROR_NO_BINARY_FOR_GPU",
    ),
    (
        CUresult::CUDA_ERROR_ALREADY_ACQUIRED,
        "CUDA_ERROR_ALREADY_ACQUIRED",
    ),
    (CUresult::CUDA_ERROR_NOT_MAPPED, "CUDA_ERROR_NOT_MAPPED"),
    (
        CUresult::CUDA_ERROR_NOT_MAPPED_AS_ARRAY,
        "CUDA_ERROR_NOT_MAPPED_AS_ARRAY",
    ),
    (
        CUresult::CUDA_ERROR_NOT_MAPPED_AS_POINTER,
        "CUDA_ERROR_NOT_MAPPED_AS_POINTER",
    ),
    (
        CUresult::CUDA_ERROR_ECC_UNCORRECTABLE,
        "CUDA_ERROR_ECC_UNCORRECTABLE",
    ),
    (
        CUresult::CUDA_ERROR_UNSUPPORTED_LIMIT,
        "CUDA_ERROR_UNSUPPORTED_LIMIT",
    ),
    (
        CUresult::CUDA_ERROR_CONTEXT_ALREADY_IN_USE,
        "CUDA_ERROR_CONTEXT_ALREADY_IN_USE",
    ),
    (
        CUresult::CUDA_ERROR_PEER_ACCESS_UNSUPPORTED,
        "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED",
    ),
    (CUresult::CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX"),
    (
        CUresult::CUDA_ERROR_INVALID_GRAPHICS_CONTEXT,
        "CUDA_ERROR_INVALID_GRAPHICS_CONTEXT",
    ),
    (
        CUresult::CUDA_ERROR_NVLINK_UNCORRECTABLE,
        "CUDA_ERROR_NVLINK_UNCORRECTABLE",
    ),
    (
        CUresult::CUDA_ERROR_JIT_COMPILER_NOT_FOUND,
        "CUDA_ERROR_JIT_COMPILER_NOT_FOUND",
    ),
    (
        CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
        "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
    ),
    (
        CUresult::CUDA_ERROR_JIT_COMPILATION_DISABLED,
        "CUDA_ERROR_JIT_COMPILATION_DISABLED",
    ),
    (
        CUresult::CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY,
        "CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY",
    ),
    (
        CUresult::CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC,
        "CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC",
    ),
    (CUresult::CUDA_ERROR_CONTAINED, "CUDA_ERROR_CONTAINED"),
    (
        CUresult::CUDA_ERROR_INVALID_SOURCE,
        "CUDA_ERROR_INVALID_SOURCE",
    ),
    (
        CUresult::CUDA_ERROR_FILE_NOT_FOUND,
        "CUDA_ERROR_FILE_NOT_FOUND",
    ),
    (
        CUresult::CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND,
        "CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND",
    ),
    (
        CUresult::CUDA_ERROR_SHARED_OBJECT_INIT_FAILED,
        "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED",
    ),
    (
        CUresult::CUDA_ERROR_OPERATING_SYSTEM,
        "CUDA_ERROR_OPERATING_SYSTEM",
    ),
    (
        CUresult::CUDA_ERROR_INVALID_HANDLE,
        "CUDA_ERROR_INVALID_HANDLE",
    ),
    (
        CUresult::CUDA_ERROR_ILLEGAL_STATE,
        "CUDA_ERROR_ILLEGAL_STATE",
    ),
    (CUresult::CUDA_ERROR_LOSSY_QUERY, "CUDA_ERROR_LOSSY_QUERY"),
    (CUresult::CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND"),
    (CUresult::CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY"),
    (
        CUresult::CUDA_ERROR_ILLEGAL_ADDRESS,
        "CUDA_ERROR_ILLEGAL_ADDRESS",
    ),
    (
        CUresult::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
        "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
    ),
    (
        CUresult::CUDA_ERROR_LAUNCH_TIMEOUT,
        "CUDA_ERROR_LAUNCH_TIMEOUT",
    ),
    (
        CUresult::CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING,
        "CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING",
    ),
    (
        CUresult::CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED,
        "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED",
    ),
    (
        CUresult::CUDA_ERROR_PEER_ACCESS_NOT_ENABLED,
        "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED",
    ),
    (
        CUresult::CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE,
        "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE",
    ),
    (
        CUresult::CUDA_ERROR_CONTEXT_IS_DESTROYED,
        "CUDA_ERROR_CONTEXT_IS_DESTROYED",
    ),
    (CUresult::CUDA_ERROR_ASSERT, "CUDA_ERROR_ASSERT"),
    (
        CUresult::CUDA_ERROR_TOO_MANY_PEERS,
        "CUDA_ERROR_TOO_MANY_PEERS",
    ),
    (
        CUresult::CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED,
        "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
    ),
    (
        CUresult::CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED,
        "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
    ),
    (
        CUresult::CUDA_ERROR_HARDWARE_STACK_ERROR,
        "CUDA_ERROR_HARDWARE_STACK_ERROR",
    ),
    (
        CUresult::CUDA_ERROR_ILLEGAL_INSTRUCTION,
        "CUDA_ERROR_ILLEGAL_INSTRUCTION",
    ),
    (
        CUresult::CUDA_ERROR_MISALIGNED_ADDRESS,
        "CUDA_ERROR_MISALIGNED_ADDRESS",
    ),
    (
        CUresult::CUDA_ERROR_INVALID_ADDRESS_SPACE,
        "CUDA_ERROR_INVALID_ADDRESS_SPACE",
    ),
    (CUresult::CUDA_ERROR_INVALID_PC, "CUDA_ERROR_INVALID_PC"),
    (
        CUresult::CUDA_ERROR_LAUNCH_FAILED,
        "CUDA_ERROR_LAUNCH_FAILED",
    ),
    (
        CUresult::CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE,
        "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE",
    ),
    (
        CUresult::CUDA_ERROR_TENSOR_MEMORY_LEAK,
        "CUDA_ERROR_TENSOR_MEMORY_LEAK",
    ),
    (
        CUresult::CUDA_ERROR_NOT_PERMITTED,
        "CUDA_ERROR_NOT_PERMITTED",
    ),
    (
        CUresult::CUDA_ERROR_NOT_SUPPORTED,
        "CUDA_ERROR_NOT_SUPPORTED",
    ),
    (
        CUresult::CUDA_ERROR_SYSTEM_NOT_READY,
        "CUDA_ERROR_SYSTEM_NOT_READY",
    ),
    (
        CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH,
        "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
    ),
    (
        CUresult::CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE,
        "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
    ),
    (
        CUresult::CUDA_ERROR_MPS_CONNECTION_FAILED,
        "CUDA_ERROR_MPS_CONNECTION_FAILED",
    ),
    (
        CUresult::CUDA_ERROR_MPS_RPC_FAILURE,
        "CUDA_ERROR_MPS_RPC_FAILURE",
    ),
    (
        CUresult::CUDA_ERROR_MPS_SERVER_NOT_READY,
        "CUDA_ERROR_MPS_SERVER_NOT_READY",
    ),
    (
        CUresult::CUDA_ERROR_MPS_MAX_CLIENTS_REACHED,
        "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED",
    ),
    (
        CUresult::CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED,
        "CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED",
    ),
    (
        CUresult::CUDA_ERROR_MPS_CLIENT_TERMINATED,
        "CUDA_ERROR_MPS_CLIENT_TERMINATED",
    ),
    (
        CUresult::CUDA_ERROR_CDP_NOT_SUPPORTED,
        "CUDA_ERROR_CDP_NOT_SUPPORTED",
    ),
    (
        CUresult::CUDA_ERROR_CDP_VERSION_MISMATCH,
        "CUDA_ERROR_CDP_VERSION_MISMATCH",
    ),
    (
        CUresult::CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
        "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
    ),
    (
        CUresult::CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
        "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
    ),
    (
        CUresult::CUDA_ERROR_STREAM_CAPTURE_MERGE,
        "CUDA_ERROR_STREAM_CAPTURE_MERGE",
    ),
    (
        CUresult::CUDA_ERROR_STREAM_CAPTURE_UNMATCHED,
        "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED",
    ),
    (
        CUresult::CUDA_ERROR_STREAM_CAPTURE_UNJOINED,
        "CUDA_ERROR_STREAM_CAPTURE_UNJOINED",
    ),
    (
        CUresult::CUDA_ERROR_STREAM_CAPTURE_ISOLATION,
        "CUDA_ERROR_STREAM_CAPTURE_ISOLATION",
    ),
    (
        CUresult::CUDA_ERROR_STREAM_CAPTURE_IMPLICIT,
        "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
    ),
    (
        CUresult::CUDA_ERROR_CAPTURED_EVENT,
        "CUDA_ERROR_CAPTURED_EVENT",
    ),
    (
        CUresult::CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD,
        "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD",
    ),
    (CUresult::CUDA_ERROR_TIMEOUT, "CUDA_ERROR_TIMEOUT"),
    (
        CUresult::CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE,
        "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE",
    ),
    (
        CUresult::CUDA_ERROR_EXTERNAL_DEVICE,
        "CUDA_ERROR_EXTERNAL_DEVICE",
    ),
    (
        CUresult::CUDA_ERROR_INVALID_CLUSTER_SIZE,
        "CUDA_ERROR_INVALID_CLUSTER_SIZE",
    ),
    (
        CUresult::CUDA_ERROR_FUNCTION_NOT_LOADED,
        "CUDA_ERROR_FUNCTION_NOT_LOADED",
    ),
    (
        CUresult::CUDA_ERROR_INVALID_RESOURCE_TYPE,
        "CUDA_ERROR_INVALID_RESOURCE_TYPE",
    ),
    (
        CUresult::CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION,
        "CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION",
    ),
    (CUresult::CUDA_ERROR_KEY_ROTATION, "CUDA_ERROR_KEY_ROTATION"),
    (
        CUresult::CUDA_ERROR_STREAM_DETACHED,
        "CUDA_ERROR_STREAM_DETACHED",
    ),
    (CUresult::CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN"),
];

/// The `cuda.h` name of a driver result, if it is one of CUDA 13.0's codes.
pub fn cuda_error_name(result: CUresult) -> Option<&'static str> {
    cuda_error_index(result).map(|i| CUDA_ERROR_NAMES[i].1)
}

fn cuda_error_index(result: CUresult) -> Option<usize> {
    CUDA_ERROR_NAMES
        .binary_search_by_key(&result.0, |(code, _)| code.0)
        .ok()
}

/// One row per HIP error value: the name `hipGetErrorName` returns and the message
/// `hipGetErrorString` returns, both NUL-terminated. Built from the bindgen constants, so
/// a renamed or removed constant fails to compile. Aliases (`hipErrorMemoryAllocation`,
/// `hipErrorInitializationError`, `hipErrorMapBufferObjectFailed`,
/// `hipErrorInvalidResourceHandle`) share the row of their primary name.
macro_rules! hip_errors {
    ($($name:ident => $message:literal,)*) => {
        /// `(code, name, message)`, names and messages NUL-terminated, in value order.
        pub const HIP_ERRORS: &[(hipError_t, &str, &str)] = &[
            $((hipError_t::$name, concat!(stringify!($name), "\0"), concat!($message, "\0")),)*
        ];
    };
}

hip_errors! {
    hipSuccess => "no error",
    hipErrorInvalidValue => "invalid argument",
    hipErrorOutOfMemory => "out of memory",
    hipErrorNotInitialized => "initialization error",
    hipErrorDeinitialized => "driver shutting down",
    hipErrorProfilerDisabled => "profiler disabled while using external profiling tool",
    hipErrorProfilerNotInitialized => "profiler is not initialized",
    hipErrorProfilerAlreadyStarted => "profiler already started",
    hipErrorProfilerAlreadyStopped => "profiler already stopped",
    hipErrorInvalidConfiguration => "invalid configuration argument",
    hipErrorInvalidPitchValue => "invalid pitch argument",
    hipErrorInvalidSymbol => "invalid device symbol",
    hipErrorInvalidDevicePointer => "invalid device pointer",
    hipErrorInvalidMemcpyDirection => "invalid copy direction for memcpy",
    hipErrorInsufficientDriver => "driver version is insufficient for runtime version",
    hipErrorMissingConfiguration => "__global__ function call is not configured",
    hipErrorPriorLaunchFailure => "unspecified launch failure in prior launch",
    hipErrorInvalidDeviceFunction => "invalid device function",
    hipErrorNoDevice => "no GPU device is detected",
    hipErrorInvalidDevice => "invalid device ordinal",
    hipErrorInvalidImage => "device kernel image is invalid",
    hipErrorInvalidContext => "invalid device context",
    hipErrorContextAlreadyCurrent => "context is already current context",
    hipErrorMapFailed => "mapping of buffer object failed",
    hipErrorUnmapFailed => "unmapping of buffer object failed",
    hipErrorArrayIsMapped => "array is mapped",
    hipErrorAlreadyMapped => "resource already mapped",
    hipErrorNoBinaryForGpu => "no kernel image is available for execution on the device",
    hipErrorAlreadyAcquired => "resource already acquired",
    hipErrorNotMapped => "resource not mapped",
    hipErrorNotMappedAsArray => "resource not mapped as array",
    hipErrorNotMappedAsPointer => "resource not mapped as pointer",
    hipErrorECCNotCorrectable => "uncorrectable ECC error encountered",
    hipErrorUnsupportedLimit => "limit is not supported on this architecture",
    hipErrorContextAlreadyInUse => "exclusive-thread device already in use by a different thread",
    hipErrorPeerAccessUnsupported => "peer access is not supported between these two devices",
    hipErrorInvalidKernelFile => "a PTX JIT compilation failed",
    hipErrorInvalidGraphicsContext => "invalid OpenGL or DirectX context",
    hipErrorInvalidSource => "device kernel image is invalid",
    hipErrorFileNotFound => "file not found",
    hipErrorSharedObjectSymbolNotFound => "shared object symbol not found",
    hipErrorSharedObjectInitFailed => "shared object initialization failed",
    hipErrorOperatingSystem => "OS call failed or operation not supported on this OS",
    hipErrorInvalidHandle => "invalid resource handle",
    hipErrorIllegalState => "the operation cannot be performed in the present state",
    hipErrorNotFound => "named symbol not found",
    hipErrorNotReady => "device not ready",
    hipErrorIllegalAddress => "an illegal memory access was encountered",
    hipErrorLaunchOutOfResources => "too many resources requested for launch",
    hipErrorLaunchTimeOut => "the launch timed out and was terminated",
    hipErrorPeerAccessAlreadyEnabled => "peer access is already enabled",
    hipErrorPeerAccessNotEnabled => "peer access has not been enabled",
    hipErrorSetOnActiveProcess => "cannot set while device is active in this process",
    hipErrorContextIsDestroyed => "context is destroyed",
    hipErrorAssert => "device-side assert triggered",
    hipErrorHostMemoryAlreadyRegistered => "part or all of the requested memory range is already mapped",
    hipErrorHostMemoryNotRegistered => "pointer does not correspond to a registered memory region",
    hipErrorLaunchFailure => "unspecified launch failure",
    hipErrorCooperativeLaunchTooLarge => "too many blocks in cooperative launch",
    hipErrorNotSupported => "operation not supported",
    hipErrorStreamCaptureUnsupported => "operation not permitted when stream is capturing",
    hipErrorStreamCaptureInvalidated => "operation failed due to a previous error during capture",
    hipErrorStreamCaptureMerge => "operation would result in a merge of separate capture sequences",
    hipErrorStreamCaptureUnmatched => "capture was not ended in the same stream as it began",
    hipErrorStreamCaptureUnjoined => "capturing stream has unjoined work",
    hipErrorStreamCaptureIsolation => "dependency created on uncaptured work in another stream",
    hipErrorStreamCaptureImplicit => "operation would make the legacy stream depend on a capturing blocking stream",
    hipErrorCapturedEvent => "operation not permitted on an event last recorded in a capturing stream",
    hipErrorStreamCaptureWrongThread => "attempt to terminate a thread-local capture sequence from another thread",
    hipErrorGraphExecUpdateFailure => "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update",
    hipErrorUnknown => "unknown error",
    hipErrorRuntimeMemory => "runtime memory call returned error",
    hipErrorRuntimeOther => "runtime call other than memory returned error",
    hipErrorTbd => "marker: more error codes are needed",
}

fn hip_error_row(error: hipError_t) -> Option<&'static (hipError_t, &'static str, &'static str)> {
    HIP_ERRORS
        .binary_search_by_key(&error.0, |(code, _, _)| code.0)
        .ok()
        .map(|i| &HIP_ERRORS[i])
}

/// The HIP name of `error` (`"hipErrorOutOfMemory"`), or `None` for a value that is not a
/// HIP error code.
pub fn hip_error_name(error: hipError_t) -> Option<&'static str> {
    hip_error_row(error).map(|row| row.1.trim_end_matches('\0'))
}

thread_local! {
    /// The last failing driver call of this thread and its result.
    static LAST_FAILURE: Cell<Option<(DriverCall, CUresult)>> = const { Cell::new(None) };
}

/// Records `result` as this thread's most recent failing CUDA call.
pub(crate) fn record_failure(call: DriverCall, result: CUresult) {
    let _ = LAST_FAILURE.try_with(|last| last.set(Some((call, result))));
}

/// This thread's most recent failing CUDA call, if any.
pub(crate) fn last_failure() -> Option<(DriverCall, CUresult)> {
    LAST_FAILURE.try_with(Cell::get).ok().flatten()
}

/// The strings made for `(CUDA code, call)` pairs: one slot per pair (the known codes,
/// plus one for codes outside the table), each filled at most once and never freed. The
/// memory this leaks is bounded by the number of slots.
static ANNOTATED: OnceLock<Box<[OnceLock<Box<str>>]>> = OnceLock::new();

fn annotated_message(call: DriverCall, result: CUresult) -> *const c_char {
    let slots = ANNOTATED.get_or_init(|| {
        (0..(CUDA_ERROR_NAMES.len() + 1) * DriverCall::ALL.len())
            .map(|_| OnceLock::new())
            .collect()
    });
    let code_index = cuda_error_index(result).unwrap_or(CUDA_ERROR_NAMES.len());
    let slot = &slots[code_index * DriverCall::ALL.len() + call.index()];
    let text = slot.get_or_init(|| {
        let hip = map_cuda_error(result);
        let message = hip_error_row(hip).map_or("unknown error\0", |row| row.2);
        let message = message.trim_end_matches('\0');
        let cuda = cuda_error_name(result).unwrap_or("an unrecognized CUresult");
        format!("{message} ({cuda} from {})\0", call.name()).into_boxed_str()
    });
    text.as_ptr().cast()
}

/// `hipGetErrorName`: the HIP name of `hip_error`, `"hipErrorUnknown"` for a value that
/// is not a HIP error code. The string is static.
/// HIP reference: `hipGetErrorName` in `hip_runtime_api.h`.
pub(crate) unsafe extern "C" fn hipGetErrorName(hip_error: hipError_t) -> *const c_char {
    hip_error_row(hip_error)
        .or_else(|| hip_error_row(hipError_t::hipErrorUnknown))
        .map_or(c"hipErrorUnknown".as_ptr(), |row| row.1.as_ptr().cast())
}

/// `hipGetErrorString`: the message of `hipError`. When the calling thread's most recent
/// failing CUDA call mapped to this code, the message also names the CUDA error and the
/// call, e.g. `"out of memory (CUDA_ERROR_OUT_OF_MEMORY from cuMemAllocAsync)"`. The
/// string is static (interned, see [`ANNOTATED`]).
/// HIP reference: `hipGetErrorString` in `hip_runtime_api.h`.
pub(crate) unsafe extern "C" fn hipGetErrorString(hipError: hipError_t) -> *const c_char {
    if let Some((call, result)) = last_failure() {
        if map_cuda_error(result) == hipError {
            return annotated_message(call, result);
        }
    }
    hip_error_row(hipError)
        .or_else(|| hip_error_row(hipError_t::hipErrorUnknown))
        .map_or(c"unknown error".as_ptr(), |row| row.2.as_ptr().cast())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::ffi::CStr;

    fn c_str(ptr: *const c_char) -> String {
        assert!(!ptr.is_null());
        // SAFETY: the functions under test return NUL-terminated static strings.
        unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_string()
    }

    fn name_of(error: hipError_t) -> String {
        // SAFETY: hipGetErrorName takes any value and returns a static string.
        c_str(unsafe { hipGetErrorName(error) })
    }

    fn message_of(error: hipError_t) -> String {
        // SAFETY: hipGetErrorString takes any value and returns a static string.
        c_str(unsafe { hipGetErrorString(error) })
    }

    fn message_ptr(error: hipError_t) -> *const c_char {
        // SAFETY: as above.
        unsafe { hipGetErrorString(error) }
    }

    /// Every `hipError_t` constant of the checked-in bindings, as `(name, value)`.
    fn bindgen_hip_errors() -> Vec<(String, u32)> {
        let text = include_str!("../bindings/hip.rs");
        text.lines()
            .filter_map(|line| {
                let rest = line.trim().strip_prefix("pub const hipError")?;
                let (name, rest) = rest.split_once(": hipError_t = hipError_t(")?;
                let value = rest.strip_suffix(");")?.parse().ok()?;
                Some((format!("hipError{name}"), value))
            })
            .collect()
    }

    #[test]
    fn tables_are_sorted_unique_and_nul_terminated() {
        assert!(CUDA_ERROR_NAMES.windows(2).all(|w| w[0].0 .0 < w[1].0 .0));
        assert!(HIP_ERRORS.windows(2).all(|w| w[0].0 .0 < w[1].0 .0));
        for (_, name, message) in HIP_ERRORS {
            assert!(name.ends_with('\0') && message.ends_with('\0'));
            assert_eq!(name.matches('\0').count(), 1);
            assert_eq!(message.matches('\0').count(), 1);
        }
        for (_, name) in CUDA_ERROR_NAMES {
            assert!(name.starts_with("CUDA_"));
        }
    }

    #[test]
    fn every_bindgen_hip_error_has_a_name_and_message() {
        let constants = bindgen_hip_errors();
        assert!(
            constants.len() >= 70,
            "parsed only {} constants",
            constants.len()
        );
        for (name, value) in &constants {
            let got = name_of(hipError_t(*value));
            // The returned name is one of the constants with this value (aliases share).
            assert!(
                constants.iter().any(|(n, v)| v == value && *n == got),
                "{name} ({value}) named {got}"
            );
            let message = message_of(hipError_t(*value));
            assert!(!message.is_empty());
        }
    }

    #[test]
    fn known_mappings_are_stable() {
        let cases = [
            (CUresult::CUDA_SUCCESS, hipError_t::hipSuccess),
            (
                CUresult::CUDA_ERROR_OUT_OF_MEMORY,
                hipError_t::hipErrorOutOfMemory,
            ),
            (CUresult::CUDA_ERROR_NOT_READY, hipError_t::hipErrorNotReady),
            (
                CUresult::CUDA_ERROR_INVALID_VALUE,
                hipError_t::hipErrorInvalidValue,
            ),
            (CUresult::CUDA_ERROR_NO_DEVICE, hipError_t::hipErrorNoDevice),
            (
                CUresult::CUDA_ERROR_INVALID_DEVICE,
                hipError_t::hipErrorInvalidDevice,
            ),
            (
                CUresult::CUDA_ERROR_INVALID_HANDLE,
                hipError_t::hipErrorInvalidHandle,
            ),
            (
                CUresult::CUDA_ERROR_INVALID_CONTEXT,
                hipError_t::hipErrorInvalidContext,
            ),
            (
                CUresult::CUDA_ERROR_LAUNCH_FAILED,
                hipError_t::hipErrorLaunchFailure,
            ),
            (
                CUresult::CUDA_ERROR_ILLEGAL_ADDRESS,
                hipError_t::hipErrorIllegalAddress,
            ),
            (
                CUresult::CUDA_ERROR_NOT_SUPPORTED,
                hipError_t::hipErrorNotSupported,
            ),
            (
                CUresult::CUDA_ERROR_INVALID_IMAGE,
                hipError_t::hipErrorInvalidImage,
            ),
            (
                CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU,
                hipError_t::hipErrorNoBinaryForGpu,
            ),
            (CUresult::CUDA_ERROR_NOT_FOUND, hipError_t::hipErrorNotFound),
            (
                CUresult::CUDA_ERROR_NOT_INITIALIZED,
                hipError_t::hipErrorNotInitialized,
            ),
            (
                CUresult::CUDA_ERROR_DEINITIALIZED,
                hipError_t::hipErrorDeinitialized,
            ),
            (
                CUresult::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
                hipError_t::hipErrorLaunchOutOfResources,
            ),
            (
                CUresult::CUDA_ERROR_INVALID_PTX,
                hipError_t::hipErrorInvalidKernelFile,
            ),
            (
                CUresult::CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE,
                hipError_t::hipErrorSetOnActiveProcess,
            ),
            (
                CUresult::CUDA_ERROR_MISALIGNED_ADDRESS,
                hipError_t::hipErrorLaunchFailure,
            ),
            (
                CUresult::CUDA_ERROR_STUB_LIBRARY,
                hipError_t::hipErrorInsufficientDriver,
            ),
            (
                CUresult::CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
                hipError_t::hipErrorStreamCaptureUnsupported,
            ),
            (
                CUresult::CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                hipError_t::hipErrorStreamCaptureInvalidated,
            ),
            (
                CUresult::CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD,
                hipError_t::hipErrorStreamCaptureWrongThread,
            ),
            (
                CUresult::CUDA_ERROR_CAPTURED_EVENT,
                hipError_t::hipErrorCapturedEvent,
            ),
            (
                CUresult::CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE,
                hipError_t::hipErrorGraphExecUpdateFailure,
            ),
            (CUresult::CUDA_ERROR_UNKNOWN, hipError_t::hipErrorUnknown),
            (CUresult(12345), hipError_t::hipErrorUnknown),
        ];
        for (cuda, hip) in cases {
            assert_eq!(map_cuda_error(cuda), hip, "{cuda:?}");
        }
    }

    #[test]
    fn capture_codes_keep_their_numbers() {
        // HIP copied CUDA's numbering for these; the mapping must be the identity.
        for code in 900..=908 {
            assert_eq!(map_cuda_error(CUresult(code)).0, code);
        }
    }

    #[test]
    fn failure_message_names_the_cuda_error_and_call_on_this_thread_only() {
        record_failure(
            DriverCall::cuMemAllocAsync,
            CUresult::CUDA_ERROR_OUT_OF_MEMORY,
        );
        let here = message_of(hipError_t::hipErrorOutOfMemory);
        assert_eq!(
            here,
            "out of memory (CUDA_ERROR_OUT_OF_MEMORY from cuMemAllocAsync)"
        );
        // The same pointer every time: interned.
        let a = message_ptr(hipError_t::hipErrorOutOfMemory);
        let b = message_ptr(hipError_t::hipErrorOutOfMemory);
        assert_eq!(a, b);
        // Another code gets the plain message.
        let other = message_of(hipError_t::hipErrorInvalidValue);
        assert_eq!(other, "invalid argument");
        // Another thread has its own record.
        let there = std::thread::spawn(|| message_of(hipError_t::hipErrorOutOfMemory))
            .join()
            .unwrap();
        assert_eq!(there, "out of memory");
        record_failure(DriverCall::cuLaunchKernel, CUresult(4242));
        let odd = message_of(hipError_t::hipErrorUnknown);
        assert_eq!(
            odd,
            "unknown error (an unrecognized CUresult from cuLaunchKernel)"
        );
    }

    proptest! {
        #[test]
        fn mapping_is_total_and_lands_on_a_named_hip_code(code in any::<u32>()) {
            let hip = map_cuda_error(CUresult(code));
            prop_assert!(hip_error_name(hip).is_some(), "{code} -> {hip:?}");
            prop_assert_eq!(hip == hipError_t::hipSuccess, code == 0);
            // Deterministic.
            prop_assert_eq!(map_cuda_error(CUresult(code)), hip);
        }

        #[test]
        fn name_and_string_never_fail(code in any::<u32>()) {
            let name = name_of(hipError_t(code));
            prop_assert!(name.starts_with("hip"));
            let message = message_of(hipError_t(code));
            prop_assert!(!message.is_empty());
        }
    }

    #[test]
    fn unlisted_cuda_codes_are_unknown_and_listed_ones_named() {
        for (code, name) in CUDA_ERROR_NAMES {
            assert_eq!(cuda_error_name(*code), Some(*name));
        }
        assert_eq!(
            cuda_error_name(CUresult(3)),
            Some("CUDA_ERROR_NOT_INITIALIZED")
        );
        assert_eq!(cuda_error_name(CUresult(9)), None);
    }
}
