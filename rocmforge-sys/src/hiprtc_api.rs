//! The table of hiprtc (run-time compilation) functions.
//!
//! HIP 5 exports them from `libamdhip64.so.5`; HIP 6+ from `libhiprtc.so.6/.7`.
//! On NVIDIA the adapter implements them on NVRTC.

use crate::bindings::hip::*;
use crate::function_table::function_table;

function_table! {
    /// hiprtc functions, resolved at run time.
    pub struct HiprtcApi {
        required {
            hiprtcVersion: PFN_hiprtcVersion,
            hiprtcGetErrorString: PFN_hiprtcGetErrorString,
            hiprtcCreateProgram: PFN_hiprtcCreateProgram,
            hiprtcDestroyProgram: PFN_hiprtcDestroyProgram,
            hiprtcCompileProgram: PFN_hiprtcCompileProgram,
            hiprtcGetProgramLogSize: PFN_hiprtcGetProgramLogSize,
            hiprtcGetProgramLog: PFN_hiprtcGetProgramLog,
            hiprtcGetCodeSize: PFN_hiprtcGetCodeSize,
            hiprtcGetCode: PFN_hiprtcGetCode,
        }
        optional {}
    }
}
