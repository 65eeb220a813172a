//! Modules and launches: `hipModuleLoadData`, `hipModuleUnload`, `hipModuleGetFunction`,
//! `hipFuncGetAttribute`, `hipModuleLaunchKernel`.
//!
//! The module image is what the adapter's hiprtc returns: a CUBIN for the device's exact
//! `sm_XY` (a PTX or fatbin image also loads; the driver JIT-compiles PTX).

use core::ffi::{c_char, c_int, c_uint, c_void};
use std::ptr;

use super::context::current;
use super::cuda_driver::{check, DriverCall};
use super::cuda_types::*;
use super::status;
use super::sync_counter::count_if_null_stream;
use crate::bindings::hip::{
    hipError_t, hipFunction_attribute, hipFunction_t, hipModule_t, hipStream_t,
};

/// `hipFunction_attribute` → `CUfunction_attribute`. The ten HIP attributes
/// (`HIP_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK` = 0 … `PREFERRED_SHARED_MEMORY_CARVEOUT`
/// = 9) have the values and meanings of CUDA's 0…9; `HIP_FUNC_ATTRIBUTE_MAX` and
/// anything else is refused.
pub fn function_attribute_to_cuda(
    attr: hipFunction_attribute,
) -> Result<CUfunction_attribute, hipError_t> {
    type H = hipFunction_attribute;
    type C = CUfunction_attribute;
    Ok(match attr {
        H::HIP_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK => C::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
        H::HIP_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES => C::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
        H::HIP_FUNC_ATTRIBUTE_CONST_SIZE_BYTES => C::CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES,
        H::HIP_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES => C::CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES,
        H::HIP_FUNC_ATTRIBUTE_NUM_REGS => C::CU_FUNC_ATTRIBUTE_NUM_REGS,
        H::HIP_FUNC_ATTRIBUTE_PTX_VERSION => C::CU_FUNC_ATTRIBUTE_PTX_VERSION,
        H::HIP_FUNC_ATTRIBUTE_BINARY_VERSION => C::CU_FUNC_ATTRIBUTE_BINARY_VERSION,
        H::HIP_FUNC_ATTRIBUTE_CACHE_MODE_CA => C::CU_FUNC_ATTRIBUTE_CACHE_MODE_CA,
        H::HIP_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES => {
            C::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        }
        H::HIP_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT => {
            C::CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT
        }
        _ => return Err(hipError_t::hipErrorInvalidValue),
    })
}

/// AMD HIP's `HIP_LAUNCH_PARAM_BUFFER_POINTER` (`((void*)0x01)`, `hip_runtime_api.h`).
pub const HIP_LAUNCH_PARAM_BUFFER_POINTER: usize = 0x01;
/// AMD HIP's `HIP_LAUNCH_PARAM_BUFFER_SIZE` (`((void*)0x02)`).
pub const HIP_LAUNCH_PARAM_BUFFER_SIZE: usize = 0x02;
/// AMD HIP's `HIP_LAUNCH_PARAM_END` (`((void*)0x03)`), where CUDA's is `0x00`.
pub const HIP_LAUNCH_PARAM_END: usize = 0x03;

/// The most entries an `extra` array is read for (two keys with values and an end).
const EXTRA_MAX_ENTRIES: usize = 5;

/// Rewrites a `hipModuleLaunchKernel` `extra` array (read from `entries`, which must
/// reach its end marker) into CUDA's form: the same buffer pointer and size, ended by
/// `CU_LAUNCH_PARAM_END`. Accepts either end marker (AMD's 0x03, or CUDA's 0x00 from
/// code written for HIP's NVIDIA headers). Both the pointer and the size must be given.
pub fn translate_launch_extra(entries: &[usize]) -> Result<[usize; 5], hipError_t> {
    let mut buffer = None;
    let mut size = None;
    let mut i = 0;
    loop {
        let key = *entries.get(i).ok_or(hipError_t::hipErrorInvalidValue)?;
        match key {
            HIP_LAUNCH_PARAM_END | CU_LAUNCH_PARAM_END => break,
            HIP_LAUNCH_PARAM_BUFFER_POINTER => {
                buffer = Some(*entries.get(i + 1).ok_or(hipError_t::hipErrorInvalidValue)?)
            }
            HIP_LAUNCH_PARAM_BUFFER_SIZE => {
                size = Some(*entries.get(i + 1).ok_or(hipError_t::hipErrorInvalidValue)?)
            }
            _ => return Err(hipError_t::hipErrorInvalidValue),
        }
        i += 2;
    }
    match (buffer, size) {
        (Some(buffer), Some(size)) => Ok([
            CU_LAUNCH_PARAM_BUFFER_POINTER,
            buffer,
            CU_LAUNCH_PARAM_BUFFER_SIZE,
            size,
            CU_LAUNCH_PARAM_END,
        ]),
        _ => Err(hipError_t::hipErrorInvalidValue),
    }
}

/// Reads a caller's `extra` array up to its end marker (at most [`EXTRA_MAX_ENTRIES`]).
///
/// # Safety
/// `extra` must point to a HIP `extra` array: key/value pairs ended by an end marker.
unsafe fn read_extra(extra: *mut *mut c_void) -> Vec<usize> {
    let mut entries = Vec::with_capacity(EXTRA_MAX_ENTRIES);
    for i in 0..EXTRA_MAX_ENTRIES {
        // SAFETY: the caller guarantees the array holds entries up to its end marker; we
        // stop reading at the first end marker, or after a key's value.
        let entry = unsafe { extra.add(i).read() } as usize;
        entries.push(entry);
        if i % 2 == 0 && (entry == HIP_LAUNCH_PARAM_END || entry == CU_LAUNCH_PARAM_END) {
            break;
        }
    }
    entries
}

/// `hipModuleLoadData` → `cuModuleLoadData` (into the current device's primary context).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MODULE.html>
pub(crate) unsafe extern "C" fn hipModuleLoadData(
    module: *mut hipModule_t,
    image: *const c_void,
) -> hipError_t {
    if module.is_null() || image.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = current().and_then(|(d, _)| {
        let mut m: CUmodule = ptr::null_mut();
        // SAFETY: `m` is a valid out-pointer; `image` points to a complete CUBIN, PTX or
        // fatbin image (HIP contract), which the driver only reads during the call.
        let result = unsafe { (d.cuModuleLoadData)(&mut m, image) };
        check(DriverCall::cuModuleLoadData, result)?;
        // SAFETY: `module` is non-null and points to a hipModule_t (HIP contract).
        unsafe { module.write(m.cast()) };
        Ok(())
    });
    status(result)
}

/// `hipModuleUnload` → `cuModuleUnload`. The driver documents no synchronization here:
/// the caller must make sure no kernel of the module is still queued or running.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MODULE.html>
pub(crate) unsafe extern "C" fn hipModuleUnload(module: hipModule_t) -> hipError_t {
    if module.is_null() {
        return hipError_t::hipErrorInvalidHandle;
    }
    let result = current().and_then(|(d, _)| {
        // SAFETY: `module` was made by hipModuleLoadData (HIP contract).
        let result = unsafe { (d.cuModuleUnload)(module.cast()) };
        check(DriverCall::cuModuleUnload, result)
    });
    status(result)
}

/// `hipModuleGetFunction` → `cuModuleGetFunction`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MODULE.html>
pub(crate) unsafe extern "C" fn hipModuleGetFunction(
    function: *mut hipFunction_t,
    module: hipModule_t,
    kname: *const c_char,
) -> hipError_t {
    if function.is_null() || kname.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = current().and_then(|(d, _)| {
        let mut f: CUfunction = ptr::null_mut();
        // SAFETY: `f` is a valid out-pointer; `kname` is a NUL-terminated string and
        // `module` a module handle (HIP contract).
        let result = unsafe { (d.cuModuleGetFunction)(&mut f, module.cast(), kname) };
        check(DriverCall::cuModuleGetFunction, result)?;
        // SAFETY: `function` is non-null and points to a hipFunction_t (HIP contract).
        unsafe { function.write(f.cast()) };
        Ok(())
    });
    status(result)
}

/// `hipFuncGetAttribute` → `cuFuncGetAttribute` (attribute through
/// [`function_attribute_to_cuda`]).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EXEC.html>
pub(crate) unsafe extern "C" fn hipFuncGetAttribute(
    value: *mut c_int,
    attrib: hipFunction_attribute,
    hfunc: hipFunction_t,
) -> hipError_t {
    if value.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = function_attribute_to_cuda(attrib).and_then(|cuda_attr| {
        let (d, _) = current()?;
        // SAFETY: `value` is non-null and points to an int; `hfunc` is a function handle.
        let result = unsafe { (d.cuFuncGetAttribute)(value, cuda_attr, hfunc.cast()) };
        check(DriverCall::cuFuncGetAttribute, result)
    });
    status(result)
}

/// `hipModuleLaunchKernel` → `cuLaunchKernel`. `kernelParams` is passed through as is;
/// an `extra` array is rewritten with [`translate_launch_extra`] (AMD HIP ends it with
/// 0x03, CUDA with 0x00).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EXEC.html>
pub(crate) unsafe extern "C" fn hipModuleLaunchKernel(
    f: hipFunction_t,
    gridDimX: c_uint,
    gridDimY: c_uint,
    gridDimZ: c_uint,
    blockDimX: c_uint,
    blockDimY: c_uint,
    blockDimZ: c_uint,
    sharedMemBytes: c_uint,
    stream: hipStream_t,
    kernelParams: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> hipError_t {
    let mut cuda_extra = if extra.is_null() {
        None
    } else {
        // SAFETY: a non-null `extra` is a HIP launch-parameter array (HIP contract).
        let entries = unsafe { read_extra(extra) };
        match translate_launch_extra(&entries) {
            Ok(translated) => Some(translated),
            Err(e) => return e,
        }
    };
    let extra_ptr: *mut *mut c_void = cuda_extra
        .as_mut()
        .map_or(ptr::null_mut(), |entries| entries.as_mut_ptr().cast());
    count_if_null_stream(stream);
    let result = current().and_then(|(d, _)| {
        // SAFETY: `f` is a function handle of a loaded module; `kernelParams` points to
        // one pointer per kernel parameter (HIP contract), or `extra_ptr` to a CUDA
        // launch-parameter array that lives until this call returns (the driver copies
        // the arguments before returning).
        let result = unsafe {
            (d.cuLaunchKernel)(
                f.cast(),
                gridDimX,
                gridDimY,
                gridDimZ,
                blockDimX,
                blockDimY,
                blockDimZ,
                sharedMemBytes,
                stream.cast(),
                kernelParams,
                extra_ptr,
            )
        };
        check(DriverCall::cuLaunchKernel, result)
    });
    status(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_attributes_keep_their_values() {
        for v in 0..=9 {
            assert_eq!(
                function_attribute_to_cuda(hipFunction_attribute(v)).map(|a| a.0),
                Ok(v)
            );
        }
        assert!(function_attribute_to_cuda(hipFunction_attribute::HIP_FUNC_ATTRIBUTE_MAX).is_err());
        assert!(function_attribute_to_cuda(hipFunction_attribute(77)).is_err());
    }

    #[test]
    fn amd_extra_is_rewritten_for_cuda() {
        let buf = 0x1000usize;
        let size = 0x2000usize;
        let amd = [
            HIP_LAUNCH_PARAM_BUFFER_POINTER,
            buf,
            HIP_LAUNCH_PARAM_BUFFER_SIZE,
            size,
            HIP_LAUNCH_PARAM_END,
        ];
        let cuda = translate_launch_extra(&amd).unwrap();
        assert_eq!(
            cuda,
            [
                CU_LAUNCH_PARAM_BUFFER_POINTER,
                buf,
                CU_LAUNCH_PARAM_BUFFER_SIZE,
                size,
                CU_LAUNCH_PARAM_END
            ]
        );
        // Size first, CUDA's end marker: the same result.
        let swapped = [
            HIP_LAUNCH_PARAM_BUFFER_SIZE,
            size,
            HIP_LAUNCH_PARAM_BUFFER_POINTER,
            buf,
            CU_LAUNCH_PARAM_END,
        ];
        assert_eq!(translate_launch_extra(&swapped).unwrap(), cuda);
    }

    #[test]
    fn malformed_extra_is_refused() {
        let e = Err(hipError_t::hipErrorInvalidValue);
        assert_eq!(translate_launch_extra(&[HIP_LAUNCH_PARAM_END]), e);
        assert_eq!(
            translate_launch_extra(&[HIP_LAUNCH_PARAM_BUFFER_POINTER, 1, HIP_LAUNCH_PARAM_END]),
            e
        );
        assert_eq!(translate_launch_extra(&[7, 1, HIP_LAUNCH_PARAM_END]), e);
        assert_eq!(
            translate_launch_extra(&[HIP_LAUNCH_PARAM_BUFFER_POINTER, 1]),
            e
        );
    }

    #[test]
    fn extra_is_read_up_to_its_end() {
        let mut storage: [*mut c_void; 5] = [
            HIP_LAUNCH_PARAM_BUFFER_POINTER as *mut c_void,
            16 as *mut c_void,
            HIP_LAUNCH_PARAM_END as *mut c_void,
            99 as *mut c_void,
            99 as *mut c_void,
        ];
        // SAFETY: a five-entry array with an end marker.
        let read = unsafe { read_extra(storage.as_mut_ptr()) };
        assert_eq!(
            read,
            vec![HIP_LAUNCH_PARAM_BUFFER_POINTER, 16, HIP_LAUNCH_PARAM_END]
        );
    }
}
