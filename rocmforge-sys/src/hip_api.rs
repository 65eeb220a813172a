//! The table of HIP runtime functions that rocmforge uses.
//!
//! This is the only door from the safe crates to HIP. It deliberately has no entry
//! for a call that synchronizes the whole device or the null stream
//! (`hipDeviceSynchronize`, `hipDeviceReset`, `hipFree`, synchronous `hipMemcpy`
//! and `hipMemset`, `hipStreamCreate`): see `docs/sync-safety.md`.
//! On AMD it is filled from `libamdhip64`; on NVIDIA from rocmforge's adapter.

use crate::bindings::hip::*;
use crate::function_table::function_table;

function_table! {
    /// HIP runtime functions, resolved at run time.
    pub struct HipApi {
        required {
            hipInit: PFN_hipInit,
            hipRuntimeGetVersion: PFN_hipRuntimeGetVersion,
            hipDriverGetVersion: PFN_hipDriverGetVersion,
            hipGetErrorName: PFN_hipGetErrorName,
            hipGetErrorString: PFN_hipGetErrorString,
            hipGetDeviceCount: PFN_hipGetDeviceCount,
            hipSetDevice: PFN_hipSetDevice,
            hipGetDevice: PFN_hipGetDevice,
            hipDeviceGetName: PFN_hipDeviceGetName,
            hipDeviceGetAttribute: PFN_hipDeviceGetAttribute,
            /// The HIP 5 layout of `hipDeviceProp_t` (`hipDeviceProp_tR0000` in HIP 6+).
            hipGetDeviceProperties: PFN_hipGetDeviceProperties,
            hipMemGetInfo: PFN_hipMemGetInfo,
            hipStreamCreateWithFlags: PFN_hipStreamCreateWithFlags,
            hipStreamDestroy: PFN_hipStreamDestroy,
            hipStreamSynchronize: PFN_hipStreamSynchronize,
            hipStreamQuery: PFN_hipStreamQuery,
            hipStreamWaitEvent: PFN_hipStreamWaitEvent,
            hipEventCreateWithFlags: PFN_hipEventCreateWithFlags,
            hipEventDestroy: PFN_hipEventDestroy,
            hipEventRecord: PFN_hipEventRecord,
            hipEventSynchronize: PFN_hipEventSynchronize,
            hipEventQuery: PFN_hipEventQuery,
            hipEventElapsedTime: PFN_hipEventElapsedTime,
            hipMallocAsync: PFN_hipMallocAsync,
            hipFreeAsync: PFN_hipFreeAsync,
            hipDeviceGetDefaultMemPool: PFN_hipDeviceGetDefaultMemPool,
            hipMemPoolSetAttribute: PFN_hipMemPoolSetAttribute,
            hipMemPoolGetAttribute: PFN_hipMemPoolGetAttribute,
            hipMemcpyAsync: PFN_hipMemcpyAsync,
            hipMemsetAsync: PFN_hipMemsetAsync,
            hipHostMalloc: PFN_hipHostMalloc,
            /// Synchronizes the device: rocmforge calls it only when a `Device` is torn down.
            hipHostFree: PFN_hipHostFree,
            hipModuleLoadData: PFN_hipModuleLoadData,
            hipModuleUnload: PFN_hipModuleUnload,
            hipModuleGetFunction: PFN_hipModuleGetFunction,
            hipFuncGetAttribute: PFN_hipFuncGetAttribute,
            hipModuleLaunchKernel: PFN_hipModuleLaunchKernel,
            hipStreamBeginCapture: PFN_hipStreamBeginCapture,
            hipStreamEndCapture: PFN_hipStreamEndCapture,
            hipStreamIsCapturing: PFN_hipStreamIsCapturing,
            hipThreadExchangeStreamCaptureMode: PFN_hipThreadExchangeStreamCaptureMode,
            hipGraphInstantiate: PFN_hipGraphInstantiate,
            hipGraphLaunch: PFN_hipGraphLaunch,
            hipGraphExecDestroy: PFN_hipGraphExecDestroy,
            hipGraphDestroy: PFN_hipGraphDestroy,
        }
        optional {
            /// HIP 6+: the `hipDeviceProp_tR0600` layout.
            hipGetDevicePropertiesR0600: crate::bindings::hip_device_prop_r0600::PFN_hipGetDevicePropertiesR0600,
        }
    }
}
