//! Memory: `hipMemGetInfo`, stream-ordered allocation (`hipMallocAsync`, `hipFreeAsync`,
//! the default memory pool and its attributes), `hipMemcpyAsync`, `hipMemsetAsync`, and
//! pinned host memory (`hipHostMalloc`, `hipHostFree`).

use core::ffi::{c_int, c_uint, c_void};
use std::ptr;

use super::context::{cu_device, current};
use super::cuda_driver::{check, DriverCall};
use super::cuda_types::*;
use super::status;
use super::sync_counter::{count, count_if_null_stream, SyncKind};
use crate::bindings::hip::{
    hipError_t, hipHostMallocCoherent, hipHostMallocMapped, hipHostMallocNonCoherent,
    hipHostMallocNumaUser, hipHostMallocPortable, hipHostMallocWriteCombined, hipMemPoolAttr,
    hipMemPool_t, hipMemcpyKind, hipStream_t,
};

/// How a `hipMemcpyKind` is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyPlan {
    /// `cuMemcpyAsync`: the driver infers the direction from the (unified) addresses.
    /// For `hipMemcpyDefault` and `hipMemcpyHostToHost`.
    Unified,
    /// `cuMemcpyHtoDAsync_v2`.
    HostToDevice,
    /// `cuMemcpyDtoHAsync_v2`.
    DeviceToHost,
    /// `cuMemcpyDtoDAsync_v2`.
    DeviceToDevice,
}

/// The copy a `hipMemcpyKind` asks for; an undefined kind is
/// `hipErrorInvalidMemcpyDirection`.
pub fn memcpy_plan(kind: hipMemcpyKind) -> Result<CopyPlan, hipError_t> {
    match kind {
        hipMemcpyKind::hipMemcpyHostToHost | hipMemcpyKind::hipMemcpyDefault => {
            Ok(CopyPlan::Unified)
        }
        hipMemcpyKind::hipMemcpyHostToDevice => Ok(CopyPlan::HostToDevice),
        hipMemcpyKind::hipMemcpyDeviceToHost => Ok(CopyPlan::DeviceToHost),
        hipMemcpyKind::hipMemcpyDeviceToDevice => Ok(CopyPlan::DeviceToDevice),
        _ => Err(hipError_t::hipErrorInvalidMemcpyDirection),
    }
}

/// `hipHostMalloc` flags → `cuMemHostAlloc` flags. The memory is always
/// `CU_MEMHOSTALLOC_PORTABLE`: on AMD, pinned host memory is usable from every device,
/// and rocmforge relies on that. `Mapped` → `DEVICEMAP`, `WriteCombined` →
/// `WRITECOMBINED`; `Coherent`, `NonCoherent` and `NumaUser` are AMD memory-model hints
/// with no CUDA counterpart (HIP's own NVIDIA header defines the first two as 0) and are
/// accepted and dropped; `Coherent` together with `NonCoherent` contradicts itself and is refused;
/// any other bit is refused.
pub fn host_malloc_flags_to_cuda(flags: c_uint) -> Result<c_uint, hipError_t> {
    let known = hipHostMallocPortable
        | hipHostMallocMapped
        | hipHostMallocWriteCombined
        | hipHostMallocNumaUser
        | hipHostMallocCoherent
        | hipHostMallocNonCoherent;
    if flags & !known != 0 {
        return Err(hipError_t::hipErrorInvalidValue);
    }
    let both = hipHostMallocCoherent | hipHostMallocNonCoherent;
    if flags & both == both {
        return Err(hipError_t::hipErrorInvalidValue);
    }
    let mut cuda = CU_MEMHOSTALLOC_PORTABLE;
    if flags & hipHostMallocMapped != 0 {
        cuda |= CU_MEMHOSTALLOC_DEVICEMAP;
    }
    if flags & hipHostMallocWriteCombined != 0 {
        cuda |= CU_MEMHOSTALLOC_WRITECOMBINED;
    }
    Ok(cuda)
}

/// `hipMemPoolAttr` → `CUmemPool_attribute`. The eight HIP attributes have the same
/// values, meanings and value types (`int` for the three reuse flags, `uint64_t` for the
/// rest) as CUDA's; anything else is refused.
pub fn mem_pool_attr_to_cuda(attr: hipMemPoolAttr) -> Result<CUmemPool_attribute, hipError_t> {
    type H = hipMemPoolAttr;
    type C = CUmemPool_attribute;
    Ok(match attr {
        H::hipMemPoolReuseFollowEventDependencies => {
            C::CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES
        }
        H::hipMemPoolReuseAllowOpportunistic => C::CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC,
        H::hipMemPoolReuseAllowInternalDependencies => {
            C::CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES
        }
        H::hipMemPoolAttrReleaseThreshold => C::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
        H::hipMemPoolAttrReservedMemCurrent => C::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT,
        H::hipMemPoolAttrReservedMemHigh => C::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH,
        H::hipMemPoolAttrUsedMemCurrent => C::CU_MEMPOOL_ATTR_USED_MEM_CURRENT,
        H::hipMemPoolAttrUsedMemHigh => C::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
        _ => return Err(hipError_t::hipErrorInvalidValue),
    })
}

fn device_ptr(p: *const c_void) -> CUdeviceptr {
    p as usize as CUdeviceptr
}

/// `hipMemGetInfo` → `cuMemGetInfo_v2` (free and total memory of the current device).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
pub(crate) unsafe extern "C" fn hipMemGetInfo(free: *mut usize, total: *mut usize) -> hipError_t {
    if free.is_null() || total.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = current().and_then(|(d, _)| {
        // SAFETY: both pointers are non-null and point to size_t (HIP contract).
        let result = unsafe { (d.cuMemGetInfo_v2)(free, total) };
        check(DriverCall::cuMemGetInfo_v2, result)
    });
    status(result)
}

/// `hipMallocAsync` → `cuMemAllocAsync` (from the stream's device's current pool, in
/// stream order). A size of 0 gives a null pointer and success, as HIP does.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MALLOC__ASYNC.html>
pub(crate) unsafe extern "C" fn hipMallocAsync(
    dev_ptr: *mut *mut c_void,
    size: usize,
    stream: hipStream_t,
) -> hipError_t {
    if dev_ptr.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    // SAFETY: `dev_ptr` is non-null and points to a pointer (HIP contract).
    unsafe { dev_ptr.write(ptr::null_mut()) };
    if size == 0 {
        return hipError_t::hipSuccess;
    }
    count_if_null_stream(stream);
    let result = current().and_then(|(d, _)| {
        let mut p: CUdeviceptr = 0;
        // SAFETY: `p` is a valid out-pointer; `stream` is a stream handle or null.
        let result = unsafe { (d.cuMemAllocAsync)(&mut p, size, stream.cast()) };
        check(DriverCall::cuMemAllocAsync, result)?;
        // SAFETY: as above.
        unsafe { dev_ptr.write(p as usize as *mut c_void) };
        Ok(())
    });
    status(result)
}

/// `hipFreeAsync` → `cuMemFreeAsync` (the memory returns to its pool in stream order).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MALLOC__ASYNC.html>
pub(crate) unsafe extern "C" fn hipFreeAsync(
    dev_ptr: *mut c_void,
    stream: hipStream_t,
) -> hipError_t {
    count_if_null_stream(stream);
    let result = current().and_then(|(d, _)| {
        // SAFETY: `dev_ptr` was returned by hipMallocAsync (HIP contract; the driver
        // rejects other addresses); `stream` is a stream handle or null.
        let result = unsafe { (d.cuMemFreeAsync)(device_ptr(dev_ptr), stream.cast()) };
        check(DriverCall::cuMemFreeAsync, result)
    });
    status(result)
}

/// `hipDeviceGetDefaultMemPool` → `cuDeviceGet` + `cuDeviceGetDefaultMemPool`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
pub(crate) unsafe extern "C" fn hipDeviceGetDefaultMemPool(
    mem_pool: *mut hipMemPool_t,
    device: c_int,
) -> hipError_t {
    if mem_pool.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = current().and_then(|(d, _)| {
        let dev = cu_device(d, device)?;
        let mut pool: CUmemoryPool = ptr::null_mut();
        // SAFETY: `pool` is a valid out-pointer; `dev` comes from cuDeviceGet.
        let result = unsafe { (d.cuDeviceGetDefaultMemPool)(&mut pool, dev) };
        check(DriverCall::cuDeviceGetDefaultMemPool, result)?;
        // SAFETY: `mem_pool` is non-null and points to a hipMemPool_t (HIP contract).
        unsafe { mem_pool.write(pool.cast()) };
        Ok(())
    });
    status(result)
}

/// `hipMemPoolSetAttribute` → `cuMemPoolSetAttribute` (attribute through
/// [`mem_pool_attr_to_cuda`]; `value` points to an `int` or `uint64_t` as the attribute
/// requires, identical in both APIs).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MALLOC__ASYNC.html>
pub(crate) unsafe extern "C" fn hipMemPoolSetAttribute(
    mem_pool: hipMemPool_t,
    attr: hipMemPoolAttr,
    value: *mut c_void,
) -> hipError_t {
    if value.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = mem_pool_attr_to_cuda(attr).and_then(|cuda_attr| {
        let (d, _) = current()?;
        // SAFETY: `value` is non-null and points to the attribute's value type (HIP
        // contract, same types in CUDA); `mem_pool` is a pool handle.
        let result = unsafe { (d.cuMemPoolSetAttribute)(mem_pool.cast(), cuda_attr, value) };
        check(DriverCall::cuMemPoolSetAttribute, result)
    });
    status(result)
}

/// `hipMemPoolGetAttribute` → `cuMemPoolGetAttribute` (as the setter).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MALLOC__ASYNC.html>
pub(crate) unsafe extern "C" fn hipMemPoolGetAttribute(
    mem_pool: hipMemPool_t,
    attr: hipMemPoolAttr,
    value: *mut c_void,
) -> hipError_t {
    if value.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = mem_pool_attr_to_cuda(attr).and_then(|cuda_attr| {
        let (d, _) = current()?;
        // SAFETY: `value` is non-null and points to room for the attribute's value type.
        let result = unsafe { (d.cuMemPoolGetAttribute)(mem_pool.cast(), cuda_attr, value) };
        check(DriverCall::cuMemPoolGetAttribute, result)
    });
    status(result)
}

/// `hipMemcpyAsync` → the call [`memcpy_plan`] picks: `cuMemcpyHtoDAsync_v2`,
/// `cuMemcpyDtoHAsync_v2`, `cuMemcpyDtoDAsync_v2`, or `cuMemcpyAsync` for
/// `hipMemcpyDefault`/`HostToHost` (unified addressing, which every device CUDA 13
/// supports has). Host-side synchronization follows the driver's rules
/// (<https://docs.nvidia.com/cuda/cuda-driver-api/api-sync-behavior.html>): copies from or
/// to pageable memory may wait for the stream before returning.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
pub(crate) unsafe extern "C" fn hipMemcpyAsync(
    dst: *mut c_void,
    src: *const c_void,
    sizeBytes: usize,
    kind: hipMemcpyKind,
    stream: hipStream_t,
) -> hipError_t {
    let result = memcpy_plan(kind).and_then(|plan| {
        count_if_null_stream(stream);
        let (d, _) = current()?;
        let s: CUstream = stream.cast();
        let (call, result) = match plan {
            // SAFETY (this arm and the next three): `dst` and `src` address `sizeBytes`
            // bytes of the memory the kind names (HIP contract), which must stay valid
            // until the copy completes in stream order; `s` is a stream handle or null.
            CopyPlan::Unified => (DriverCall::cuMemcpyAsync, unsafe {
                (d.cuMemcpyAsync)(device_ptr(dst), device_ptr(src), sizeBytes, s)
            }),
            // SAFETY: as above; `src` is host memory, `dst` device memory.
            CopyPlan::HostToDevice => (DriverCall::cuMemcpyHtoDAsync_v2, unsafe {
                (d.cuMemcpyHtoDAsync_v2)(device_ptr(dst), src, sizeBytes, s)
            }),
            // SAFETY: as above; `src` is device memory, `dst` host memory.
            CopyPlan::DeviceToHost => (DriverCall::cuMemcpyDtoHAsync_v2, unsafe {
                (d.cuMemcpyDtoHAsync_v2)(dst, device_ptr(src), sizeBytes, s)
            }),
            // SAFETY: as above; both are device memory.
            CopyPlan::DeviceToDevice => (DriverCall::cuMemcpyDtoDAsync_v2, unsafe {
                (d.cuMemcpyDtoDAsync_v2)(device_ptr(dst), device_ptr(src), sizeBytes, s)
            }),
        };
        check(call, result)
    });
    status(result)
}

/// `hipMemsetAsync` → `cuMemsetD8Async`: every byte set to the low byte of `value`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
pub(crate) unsafe extern "C" fn hipMemsetAsync(
    dst: *mut c_void,
    value: c_int,
    sizeBytes: usize,
    stream: hipStream_t,
) -> hipError_t {
    count_if_null_stream(stream);
    let result = current().and_then(|(d, _)| {
        // Truncation to the low byte is HIP's (and cudaMemset's) definition.
        let byte = value as u8;
        // SAFETY: `dst` addresses `sizeBytes` bytes of device memory (HIP contract);
        // `stream` is a stream handle or null.
        let result =
            unsafe { (d.cuMemsetD8Async)(device_ptr(dst), byte, sizeBytes, stream.cast()) };
        check(DriverCall::cuMemsetD8Async, result)
    });
    status(result)
}

/// `hipHostMalloc` → `cuMemHostAlloc` (flags through [`host_malloc_flags_to_cuda`];
/// always portable). A size of 0 gives a null pointer and success, as HIP does. Counted
/// as a context-wide synchronization (see [`super::sync_counter`]).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
pub(crate) unsafe extern "C" fn hipHostMalloc(
    ptr: *mut *mut c_void,
    size: usize,
    flags: c_uint,
) -> hipError_t {
    if ptr.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    // SAFETY: `ptr` is non-null and points to a pointer (HIP contract).
    unsafe { ptr.write(ptr::null_mut()) };
    let result = host_malloc_flags_to_cuda(flags).and_then(|cuda_flags| {
        if size == 0 {
            return Ok(());
        }
        let (d, _) = current()?;
        count(SyncKind::MemHostAlloc);
        let mut p: *mut c_void = ptr::null_mut();
        // SAFETY: `p` is a valid out-pointer; a context is current.
        let result = unsafe { (d.cuMemHostAlloc)(&mut p, size, cuda_flags) };
        check(DriverCall::cuMemHostAlloc, result)?;
        // SAFETY: as above.
        unsafe { ptr.write(p) };
        Ok(())
    });
    status(result)
}

/// `hipHostFree` → `cuMemFreeHost`. Freeing null is a no-op. Counted as a context-wide
/// synchronization (see [`super::sync_counter`]).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html>
pub(crate) unsafe extern "C" fn hipHostFree(ptr: *mut c_void) -> hipError_t {
    if ptr.is_null() {
        return hipError_t::hipSuccess;
    }
    let result = current().and_then(|(d, _)| {
        count(SyncKind::MemFreeHost);
        // SAFETY: `ptr` was returned by hipHostMalloc (HIP contract).
        let result = unsafe { (d.cuMemFreeHost)(ptr) };
        check(DriverCall::cuMemFreeHost, result)
    });
    status(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::hip::hipHostMallocDefault;
    use proptest::prelude::*;

    #[test]
    fn copy_kinds() {
        assert_eq!(
            memcpy_plan(hipMemcpyKind::hipMemcpyHostToHost),
            Ok(CopyPlan::Unified)
        );
        assert_eq!(
            memcpy_plan(hipMemcpyKind::hipMemcpyDefault),
            Ok(CopyPlan::Unified)
        );
        assert_eq!(
            memcpy_plan(hipMemcpyKind::hipMemcpyHostToDevice),
            Ok(CopyPlan::HostToDevice)
        );
        assert_eq!(
            memcpy_plan(hipMemcpyKind::hipMemcpyDeviceToHost),
            Ok(CopyPlan::DeviceToHost)
        );
        assert_eq!(
            memcpy_plan(hipMemcpyKind::hipMemcpyDeviceToDevice),
            Ok(CopyPlan::DeviceToDevice)
        );
        assert_eq!(
            memcpy_plan(hipMemcpyKind(5)),
            Err(hipError_t::hipErrorInvalidMemcpyDirection)
        );
    }

    #[test]
    fn host_malloc_flags() {
        assert_eq!(
            host_malloc_flags_to_cuda(hipHostMallocDefault),
            Ok(CU_MEMHOSTALLOC_PORTABLE)
        );
        assert_eq!(
            host_malloc_flags_to_cuda(hipHostMallocPortable),
            Ok(CU_MEMHOSTALLOC_PORTABLE)
        );
        assert_eq!(
            host_malloc_flags_to_cuda(hipHostMallocMapped | hipHostMallocWriteCombined),
            Ok(CU_MEMHOSTALLOC_PORTABLE
                | CU_MEMHOSTALLOC_DEVICEMAP
                | CU_MEMHOSTALLOC_WRITECOMBINED)
        );
        assert_eq!(
            host_malloc_flags_to_cuda(hipHostMallocCoherent),
            Ok(CU_MEMHOSTALLOC_PORTABLE)
        );
        assert_eq!(
            host_malloc_flags_to_cuda(hipHostMallocCoherent | hipHostMallocNonCoherent),
            Err(hipError_t::hipErrorInvalidValue)
        );
        assert_eq!(
            host_malloc_flags_to_cuda(8),
            Err(hipError_t::hipErrorInvalidValue)
        );
    }

    #[test]
    fn mem_pool_attributes_keep_their_values() {
        for v in 1..=8 {
            assert_eq!(mem_pool_attr_to_cuda(hipMemPoolAttr(v)).map(|a| a.0), Ok(v));
        }
        assert!(mem_pool_attr_to_cuda(hipMemPoolAttr(0)).is_err());
        assert!(mem_pool_attr_to_cuda(hipMemPoolAttr(9)).is_err());
    }

    proptest! {
        #[test]
        fn host_memory_is_always_portable(flags in any::<u32>()) {
            if let Ok(cuda) = host_malloc_flags_to_cuda(flags) {
                prop_assert_ne!(cuda & CU_MEMHOSTALLOC_PORTABLE, 0);
                prop_assert_eq!(cuda & !(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED), 0);
            }
        }
    }
}
