//! Initialization, versions and device queries: `hipInit`, `hipRuntimeGetVersion`,
//! `hipDriverGetVersion`, `hipGetDeviceCount`, `hipDeviceGetName`,
//! `hipDeviceGetAttribute`, `hipGetDeviceProperties`.
//!
//! Device queries need an initialized driver but no context: they call `cuInit` (once)
//! and never create a context, so asking about device 1 does not make a context on
//! device 0.

use core::ffi::{c_char, c_int, c_uint};

use super::context::{cu_device, current, device_count, init};
use super::cuda_driver::{check, driver, CudaDriver, DriverCall};
use super::cuda_types::{CUdevice, CUdevice_attribute, CUresult};
use super::status;
use crate::bindings::hip::{hipDeviceAttribute_t, hipDeviceProp_t, hipDevice_t, hipError_t};

/// The compiler target name of a compute capability: `sm_90` for 9.0, `sm_100` for 10.0,
/// `sm_121` for 12.1. This is what `gcnArchName` holds on NVIDIA and what NVRTC takes as
/// `--gpu-architecture`.
pub fn arch_name(major: i32, minor: i32) -> String {
    format!("sm_{major}{minor}")
}

/// The CUDA attribute behind a HIP device attribute, or `None` for one that CUDA has no
/// integer for (names, UUIDs, AMD-only attributes, multi-dimensional texture limits):
/// `hipDeviceGetAttribute` answers those with `hipErrorInvalidValue`, as HIP on NVIDIA does.
/// Covers every attribute HIP's own NVIDIA mapping covers, and more.
pub fn device_attribute_to_cuda(attr: hipDeviceAttribute_t) -> Option<CUdevice_attribute> {
    type A = hipDeviceAttribute_t;
    type C = CUdevice_attribute;
    Some(match attr {
        A::hipDeviceAttributeEccEnabled => C::CU_DEVICE_ATTRIBUTE_ECC_ENABLED,
        A::hipDeviceAttributeAccessPolicyMaxWindowSize => {
            C::CU_DEVICE_ATTRIBUTE_MAX_ACCESS_POLICY_WINDOW_SIZE
        }
        A::hipDeviceAttributeAsyncEngineCount => C::CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT,
        A::hipDeviceAttributeCanMapHostMemory => C::CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY,
        A::hipDeviceAttributeCanUseHostPointerForRegisteredMem => {
            C::CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM
        }
        A::hipDeviceAttributeClockRate => C::CU_DEVICE_ATTRIBUTE_CLOCK_RATE,
        A::hipDeviceAttributeComputeMode => C::CU_DEVICE_ATTRIBUTE_COMPUTE_MODE,
        A::hipDeviceAttributeComputePreemptionSupported => {
            C::CU_DEVICE_ATTRIBUTE_COMPUTE_PREEMPTION_SUPPORTED
        }
        A::hipDeviceAttributeConcurrentKernels => C::CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS,
        A::hipDeviceAttributeConcurrentManagedAccess => {
            C::CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS
        }
        A::hipDeviceAttributeCooperativeLaunch => C::CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH,
        A::hipDeviceAttributeCooperativeMultiDeviceLaunch => {
            C::CU_DEVICE_ATTRIBUTE_COOPERATIVE_MULTI_DEVICE_LAUNCH
        }
        A::hipDeviceAttributeDeviceOverlap => C::CU_DEVICE_ATTRIBUTE_GPU_OVERLAP,
        A::hipDeviceAttributeDirectManagedMemAccessFromHost => {
            C::CU_DEVICE_ATTRIBUTE_DIRECT_MANAGED_MEM_ACCESS_FROM_HOST
        }
        A::hipDeviceAttributeGlobalL1CacheSupported => {
            C::CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED
        }
        A::hipDeviceAttributeHostNativeAtomicSupported => {
            C::CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED
        }
        A::hipDeviceAttributeIntegrated => C::CU_DEVICE_ATTRIBUTE_INTEGRATED,
        A::hipDeviceAttributeIsMultiGpuBoard => C::CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD,
        A::hipDeviceAttributeKernelExecTimeout => C::CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT,
        A::hipDeviceAttributeL2CacheSize => C::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE,
        A::hipDeviceAttributeLocalL1CacheSupported => {
            C::CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED
        }
        A::hipDeviceAttributeComputeCapabilityMajor => {
            C::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
        }
        A::hipDeviceAttributeManagedMemory => C::CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY,
        A::hipDeviceAttributeMaxBlocksPerMultiProcessor => {
            C::CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR
        }
        A::hipDeviceAttributeMaxBlockDimX => C::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X,
        A::hipDeviceAttributeMaxBlockDimY => C::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y,
        A::hipDeviceAttributeMaxBlockDimZ => C::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z,
        A::hipDeviceAttributeMaxGridDimX => C::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X,
        A::hipDeviceAttributeMaxGridDimY => C::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y,
        A::hipDeviceAttributeMaxGridDimZ => C::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z,
        A::hipDeviceAttributeMaxSurface1D => C::CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_WIDTH,
        A::hipDeviceAttributeMaxTexture1DWidth => C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_WIDTH,
        A::hipDeviceAttributeMaxTexture1DLinear => {
            C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LINEAR_WIDTH
        }
        A::hipDeviceAttributeMaxTexture1DMipmap => {
            C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_MIPMAPPED_WIDTH
        }
        A::hipDeviceAttributeMaxTexture2DWidth => C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_WIDTH,
        A::hipDeviceAttributeMaxTexture2DHeight => C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_HEIGHT,
        A::hipDeviceAttributeMaxTexture3DWidth => C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH,
        A::hipDeviceAttributeMaxTexture3DHeight => C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT,
        A::hipDeviceAttributeMaxTexture3DDepth => C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH,
        A::hipDeviceAttributeMaxTextureCubemap => {
            C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_WIDTH
        }
        A::hipDeviceAttributeMaxThreadsPerBlock => C::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
        A::hipDeviceAttributeMaxThreadsPerMultiProcessor => {
            C::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR
        }
        A::hipDeviceAttributeMaxPitch => C::CU_DEVICE_ATTRIBUTE_MAX_PITCH,
        A::hipDeviceAttributeMemoryBusWidth => C::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH,
        A::hipDeviceAttributeMemoryClockRate => C::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE,
        A::hipDeviceAttributeComputeCapabilityMinor => {
            C::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
        }
        A::hipDeviceAttributeMultiGpuBoardGroupID => {
            C::CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD_GROUP_ID
        }
        A::hipDeviceAttributeMultiprocessorCount => C::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        A::hipDeviceAttributePageableMemoryAccess => C::CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS,
        A::hipDeviceAttributePageableMemoryAccessUsesHostPageTables => {
            C::CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES
        }
        A::hipDeviceAttributePciBusId => C::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID,
        A::hipDeviceAttributePciDeviceId => C::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID,
        A::hipDeviceAttributePciDomainID => C::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID,
        A::hipDeviceAttributePersistingL2CacheMaxSize => {
            C::CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE
        }
        A::hipDeviceAttributeMaxRegistersPerBlock => C::CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK,
        A::hipDeviceAttributeMaxRegistersPerMultiprocessor => {
            C::CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR
        }
        A::hipDeviceAttributeReservedSharedMemPerBlock => {
            C::CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK
        }
        A::hipDeviceAttributeMaxSharedMemoryPerBlock => {
            C::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK
        }
        A::hipDeviceAttributeSharedMemPerBlockOptin => {
            C::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        }
        A::hipDeviceAttributeSharedMemPerMultiprocessor
        | A::hipDeviceAttributeMaxSharedMemoryPerMultiprocessor => {
            C::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        }
        A::hipDeviceAttributeSingleToDoublePrecisionPerfRatio => {
            C::CU_DEVICE_ATTRIBUTE_SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO
        }
        A::hipDeviceAttributeStreamPrioritiesSupported => {
            C::CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED
        }
        A::hipDeviceAttributeSurfaceAlignment => C::CU_DEVICE_ATTRIBUTE_SURFACE_ALIGNMENT,
        A::hipDeviceAttributeTccDriver => C::CU_DEVICE_ATTRIBUTE_TCC_DRIVER,
        A::hipDeviceAttributeTextureAlignment => C::CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT,
        A::hipDeviceAttributeTexturePitchAlignment => {
            C::CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT
        }
        A::hipDeviceAttributeTotalConstantMemory => C::CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY,
        A::hipDeviceAttributeUnifiedAddressing => C::CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING,
        A::hipDeviceAttributeWarpSize => C::CU_DEVICE_ATTRIBUTE_WARP_SIZE,
        A::hipDeviceAttributeMemoryPoolsSupported => C::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED,
        // AMD-specific attributes with an NVIDIA meaning: the SM clock drives clock64(),
        // and every SM is a "physical" multiprocessor.
        A::hipDeviceAttributeClockInstructionRate => C::CU_DEVICE_ATTRIBUTE_CLOCK_RATE,
        A::hipDeviceAttributePhysicalMultiProcessorCount => {
            C::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
        }
        _ => return None,
    })
}

/// The `sm_XY` target of the calling thread's device (for hiprtc's default architecture).
pub(crate) fn current_device_arch() -> Result<String, hipError_t> {
    type C = CUdevice_attribute;
    let (d, ordinal) = current()?;
    let dev = cu_device(d, ordinal)?;
    let major = attribute(d, dev, C::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attribute(d, dev, C::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    Ok(arch_name(major, minor))
}

/// One `cuDeviceGetAttribute`; a failure is the caller's error.
fn attribute(
    d: &CudaDriver,
    device: CUdevice,
    attr: CUdevice_attribute,
) -> Result<c_int, hipError_t> {
    let mut value: c_int = 0;
    // SAFETY: `value` is a valid out-pointer; `device` comes from cuDeviceGet.
    let result = unsafe { (d.cuDeviceGetAttribute)(&mut value, attr, device) };
    check(DriverCall::cuDeviceGetAttribute, result)?;
    Ok(value)
}

/// One `cuDeviceGetAttribute` for a property that newer drivers may no longer report
/// (deprecated attributes): 0 when the driver refuses, and the refusal is not recorded
/// as the thread's last error.
fn attribute_or_zero(d: &CudaDriver, device: CUdevice, attr: CUdevice_attribute) -> c_int {
    let mut value: c_int = 0;
    // SAFETY: `value` is a valid out-pointer; `device` comes from cuDeviceGet.
    let result = unsafe { (d.cuDeviceGetAttribute)(&mut value, attr, device) };
    if result == CUresult::CUDA_SUCCESS {
        value
    } else {
        0
    }
}

/// `hipInit` → `cuInit(flags)`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__INITIALIZE.html>
pub(crate) unsafe extern "C" fn hipInit(flags: c_uint) -> hipError_t {
    let result = driver().and_then(|d| {
        // SAFETY: cuInit takes a flags value (must be 0; the driver validates it).
        let result = unsafe { (d.cuInit)(flags) };
        check(DriverCall::cuInit, result)
    });
    status(result)
}

fn driver_version(version: *mut c_int) -> hipError_t {
    if version.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = driver().and_then(|d| {
        // SAFETY: `version` is non-null and points to an int (HIP contract).
        let result = unsafe { (d.cuDriverGetVersion)(version) };
        check(DriverCall::cuDriverGetVersion, result)
    });
    status(result)
}

/// `hipRuntimeGetVersion` → `cuDriverGetVersion`: the adapter has no runtime of its own,
/// so the version is the CUDA driver's (`1000 * major + 10 * minor`, e.g. 13000).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__VERSION.html>
pub(crate) unsafe extern "C" fn hipRuntimeGetVersion(runtimeVersion: *mut c_int) -> hipError_t {
    driver_version(runtimeVersion)
}

/// `hipDriverGetVersion` → `cuDriverGetVersion`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__VERSION.html>
pub(crate) unsafe extern "C" fn hipDriverGetVersion(driverVersion: *mut c_int) -> hipError_t {
    driver_version(driverVersion)
}

/// `hipGetDeviceCount` → `cuInit` + `cuDeviceGetCount`; no device is `hipErrorNoDevice`
/// (with `*count` set to 0).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
pub(crate) unsafe extern "C" fn hipGetDeviceCount(count: *mut c_int) -> hipError_t {
    if count.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    // SAFETY: `count` is non-null and points to an int (HIP contract).
    unsafe { count.write(0) };
    let result = driver().and_then(device_count).and_then(|n| {
        if n <= 0 {
            return Err(hipError_t::hipErrorNoDevice);
        }
        // SAFETY: as above.
        unsafe { count.write(n) };
        Ok(())
    });
    status(result)
}

/// `hipDeviceGetName` → `cuDeviceGet` + `cuDeviceGetName`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
pub(crate) unsafe extern "C" fn hipDeviceGetName(
    name: *mut c_char,
    len: c_int,
    device: hipDevice_t,
) -> hipError_t {
    if name.is_null() || len <= 0 {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = driver().and_then(|d| {
        let dev = cu_device(d, device)?;
        // SAFETY: `name` points to `len` writable bytes (HIP contract); the driver writes
        // at most `len` bytes including the terminating NUL.
        let result = unsafe { (d.cuDeviceGetName)(name, len, dev) };
        check(DriverCall::cuDeviceGetName, result)
    });
    status(result)
}

/// `hipDeviceGetAttribute` → `cuDeviceGetAttribute` through
/// [`device_attribute_to_cuda`]; an attribute without a CUDA equivalent is
/// `hipErrorInvalidValue`.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
pub(crate) unsafe extern "C" fn hipDeviceGetAttribute(
    pi: *mut c_int,
    attr: hipDeviceAttribute_t,
    deviceId: c_int,
) -> hipError_t {
    if pi.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let Some(cuda_attr) = device_attribute_to_cuda(attr) else {
        return hipError_t::hipErrorInvalidValue;
    };
    let result = driver().and_then(|d| {
        let dev = cu_device(d, deviceId)?;
        let value = attribute(d, dev, cuda_attr)?;
        // SAFETY: `pi` is non-null and points to an int (HIP contract).
        unsafe { pi.write(value) };
        Ok(())
    });
    status(result)
}

/// Copies `text` into a fixed C string field, truncating, always NUL-terminated.
fn write_c_chars(field: &mut [c_char], text: &str) {
    let Some(room) = field.len().checked_sub(1) else {
        return;
    };
    let bytes = &text.as_bytes()[..text.len().min(room)];
    for (dst, &src) in field.iter_mut().zip(bytes) {
        *dst = src as c_char;
    }
    field[bytes.len()] = 0;
}

/// Fills the HIP 5 `hipDeviceProp_t` of `ordinal` from the driver.
fn properties(d: &CudaDriver, ordinal: c_int) -> Result<hipDeviceProp_t, hipError_t> {
    type C = CUdevice_attribute;
    init(d)?;
    let dev = cu_device(d, ordinal)?;
    let mut p = hipDeviceProp_t::default();

    let len = c_int::try_from(p.name.len()).unwrap_or(c_int::MAX);
    // SAFETY: `p.name` is a writable array of `len` chars; the driver NUL-terminates.
    let result = unsafe { (d.cuDeviceGetName)(p.name.as_mut_ptr(), len, dev) };
    check(DriverCall::cuDeviceGetName, result)?;
    if let Some(last) = p.name.last_mut() {
        *last = 0;
    }
    let mut total: usize = 0;
    // SAFETY: `total` is a valid out-pointer.
    let result = unsafe { (d.cuDeviceTotalMem_v2)(&mut total, dev) };
    check(DriverCall::cuDeviceTotalMem_v2, result)?;
    p.totalGlobalMem = total;

    let get = |attr| attribute(d, dev, attr);
    let lenient = |attr| attribute_or_zero(d, dev, attr);
    let to_usize = |v: c_int| usize::try_from(v).unwrap_or(0);

    p.major = get(C::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    p.minor = get(C::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    p.warpSize = get(C::CU_DEVICE_ATTRIBUTE_WARP_SIZE)?;
    p.multiProcessorCount = get(C::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    p.maxThreadsPerBlock = get(C::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?;
    p.maxThreadsDim = [
        get(C::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X)?,
        get(C::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y)?,
        get(C::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z)?,
    ];
    p.maxGridSize = [
        get(C::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)?,
        get(C::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y)?,
        get(C::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z)?,
    ];
    p.sharedMemPerBlock = to_usize(get(C::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK)?);

    p.regsPerBlock = lenient(C::CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK);
    p.clockRate = lenient(C::CU_DEVICE_ATTRIBUTE_CLOCK_RATE);
    p.memoryClockRate = lenient(C::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
    p.memoryBusWidth = lenient(C::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
    p.totalConstMem = to_usize(lenient(C::CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY));
    p.l2CacheSize = lenient(C::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
    p.maxThreadsPerMultiProcessor = lenient(C::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR);
    p.computeMode = lenient(C::CU_DEVICE_ATTRIBUTE_COMPUTE_MODE);
    // As HIP's own NVIDIA header: the instruction clock is the SM clock.
    p.clockInstructionRate = p.clockRate;
    p.concurrentKernels = lenient(C::CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS);
    p.pciDomainID = lenient(C::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID);
    p.pciBusID = lenient(C::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID);
    p.pciDeviceID = lenient(C::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID);
    p.maxSharedMemoryPerMultiProcessor = to_usize(lenient(
        C::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
    ));
    p.isMultiGpuBoard = lenient(C::CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD);
    p.canMapHostMemory = lenient(C::CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY);
    p.gcnArch = 0; // not a GCN architecture (as HIP's NVIDIA header sets it)
    write_c_chars(&mut p.gcnArchName, &arch_name(p.major, p.minor));
    p.integrated = lenient(C::CU_DEVICE_ATTRIBUTE_INTEGRATED);
    p.cooperativeLaunch = lenient(C::CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH);
    p.cooperativeMultiDeviceLaunch =
        lenient(C::CU_DEVICE_ATTRIBUTE_COOPERATIVE_MULTI_DEVICE_LAUNCH);
    p.maxTexture1DLinear = lenient(C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LINEAR_WIDTH);
    p.maxTexture1D = lenient(C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_WIDTH);
    p.maxTexture2D = [
        lenient(C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_WIDTH),
        lenient(C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_HEIGHT),
    ];
    p.maxTexture3D = [
        lenient(C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH),
        lenient(C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT),
        lenient(C::CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH),
    ];
    p.memPitch = to_usize(lenient(C::CU_DEVICE_ATTRIBUTE_MAX_PITCH));
    p.textureAlignment = to_usize(lenient(C::CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT));
    p.texturePitchAlignment = to_usize(lenient(C::CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT));
    p.kernelExecTimeoutEnabled = lenient(C::CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT);
    p.ECCEnabled = lenient(C::CU_DEVICE_ATTRIBUTE_ECC_ENABLED);
    p.tccDriver = lenient(C::CU_DEVICE_ATTRIBUTE_TCC_DRIVER);
    p.managedMemory = lenient(C::CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY);
    p.directManagedMemAccessFromHost =
        lenient(C::CU_DEVICE_ATTRIBUTE_DIRECT_MANAGED_MEM_ACCESS_FROM_HOST);
    p.concurrentManagedAccess = lenient(C::CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS);
    p.pageableMemoryAccess = lenient(C::CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS);
    p.pageableMemoryAccessUsesHostPageTables =
        lenient(C::CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES);
    // AMD-only fields (hdp registers, unmatched cooperative launch checks, large BAR,
    // ASIC revision) stay zero.

    // The capability bits, with the thresholds of HIP's own NVIDIA header.
    let cc = p.major * 100 + p.minor * 10;
    let bit = |on: bool| c_uint::from(on);
    let a = &mut p.arch;
    a.set_hasGlobalInt32Atomics(bit(cc >= 110));
    a.set_hasGlobalFloatAtomicExch(bit(cc >= 110));
    a.set_hasSharedInt32Atomics(bit(cc >= 120));
    a.set_hasSharedFloatAtomicExch(bit(cc >= 120));
    a.set_hasFloatAtomicAdd(bit(cc >= 200));
    a.set_hasGlobalInt64Atomics(bit(cc >= 120));
    a.set_hasSharedInt64Atomics(bit(cc >= 110));
    a.set_hasDoubles(bit(cc >= 130));
    a.set_hasWarpVote(bit(cc >= 120));
    a.set_hasWarpBallot(bit(cc >= 200));
    a.set_hasWarpShuffle(bit(cc >= 300));
    a.set_hasFunnelShift(bit(cc >= 350));
    a.set_hasThreadFenceSystem(bit(cc >= 200));
    a.set_hasSyncThreadsExt(bit(cc >= 200));
    a.set_hasSurfaceFuncs(bit(cc >= 200));
    a.set_has3dGrid(bit(cc >= 200));
    a.set_hasDynamicParallelism(bit(cc >= 350));
    Ok(p)
}

/// `hipGetDeviceProperties` (HIP 5 layout) from `cuDeviceGetName`, `cuDeviceTotalMem_v2`
/// and `cuDeviceGetAttribute`; `gcnArchName` is the `sm_XY` target, `warpSize` the
/// device's (32). Properties newer drivers no longer report read as 0.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__DEVICE.html>
pub(crate) unsafe extern "C" fn hipGetDeviceProperties(
    prop: *mut hipDeviceProp_t,
    deviceId: c_int,
) -> hipError_t {
    if prop.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = driver().and_then(|d| properties(d, deviceId)).map(|p| {
        // SAFETY: `prop` is non-null and points to a hipDeviceProp_t of the HIP 5 layout
        // (the contract of this table entry); it may be uninitialized, so write, not assign.
        unsafe { prop.write(p) };
    });
    status(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        assert_eq!(arch_name(9, 0), "sm_90");
        assert_eq!(arch_name(8, 6), "sm_86");
        assert_eq!(arch_name(7, 5), "sm_75");
        assert_eq!(arch_name(10, 0), "sm_100");
        assert_eq!(arch_name(12, 1), "sm_121");
    }

    #[test]
    fn the_properties_api_attributes_are_mapped() {
        type A = hipDeviceAttribute_t;
        type C = CUdevice_attribute;
        let expect = [
            (
                A::hipDeviceAttributeWarpSize,
                C::CU_DEVICE_ATTRIBUTE_WARP_SIZE,
            ),
            (
                A::hipDeviceAttributeMaxThreadsPerBlock,
                C::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
            ),
            (
                A::hipDeviceAttributeMultiprocessorCount,
                C::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            ),
            (
                A::hipDeviceAttributeComputeCapabilityMajor,
                C::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
            ),
            (
                A::hipDeviceAttributeComputeCapabilityMinor,
                C::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
            ),
            (
                A::hipDeviceAttributeMaxSharedMemoryPerBlock,
                C::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK,
            ),
            (
                A::hipDeviceAttributeL2CacheSize,
                C::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE,
            ),
            (
                A::hipDeviceAttributeMemoryBusWidth,
                C::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH,
            ),
            (
                A::hipDeviceAttributeMemoryClockRate,
                C::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE,
            ),
            (
                A::hipDeviceAttributeClockRate,
                C::CU_DEVICE_ATTRIBUTE_CLOCK_RATE,
            ),
            (
                A::hipDeviceAttributeMaxGridDimX,
                C::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X,
            ),
            (
                A::hipDeviceAttributeMaxBlockDimZ,
                C::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z,
            ),
            (
                A::hipDeviceAttributePciBusId,
                C::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID,
            ),
            (
                A::hipDeviceAttributeMemoryPoolsSupported,
                C::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED,
            ),
            (
                A::hipDeviceAttributeSharedMemPerBlockOptin,
                C::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            ),
            (
                A::hipDeviceAttributeMaxSharedMemoryPerMultiprocessor,
                C::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
            ),
        ];
        for (hip, cuda) in expect {
            assert_eq!(device_attribute_to_cuda(hip), Some(cuda), "{hip:?}");
        }
    }

    #[test]
    fn attributes_without_a_cuda_integer_are_refused() {
        type A = hipDeviceAttribute_t;
        for attr in [
            A::hipDeviceAttributeName,
            A::hipDeviceAttributeUuid,
            A::hipDeviceAttributeLuid,
            A::hipDeviceAttributeGcnArchName,
            A::hipDeviceAttributeHdpMemFlushCntl,
            A::hipDeviceAttributeIsLargeBar,
            A::hipDeviceAttributeMaxThreadsDim,
            A::hipDeviceAttributeTotalGlobalMem,
            A::hipDeviceAttributeCudaCompatibleEnd,
            hipDeviceAttribute_t(123_456),
        ] {
            assert_eq!(device_attribute_to_cuda(attr), None, "{attr:?}");
        }
    }

    #[test]
    fn every_mapped_attribute_is_a_defined_cuda_attribute() {
        for v in 0..20_100u32 {
            if let Some(c) = device_attribute_to_cuda(hipDeviceAttribute_t(v)) {
                assert!((1..=121).contains(&c.0), "{v} -> {c:?}");
            }
        }
    }

    #[test]
    fn c_strings_are_truncated_and_terminated() {
        let mut field = [1 as c_char; 6];
        write_c_chars(&mut field, "sm_90");
        assert_eq!(crate::c_chars_to_string(&field), "sm_90");
        let mut small = [1 as c_char; 4];
        write_c_chars(&mut small, "sm_100");
        assert_eq!(crate::c_chars_to_string(&small), "sm_");
        assert_eq!(small[3], 0);
    }
}
