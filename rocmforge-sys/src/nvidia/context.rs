//! HIP's device model on CUDA contexts: one primary context per device, retained once for
//! the life of the process; each thread has a current device (device 0 until it calls
//! `hipSetDevice`) whose primary context the adapter makes current before every call
//! that needs one.
//!
//! State: the retained contexts live in a process-wide table of `OnceLock`s (each set
//! once, never changed); the thread's device and context live in a thread-local. Both are
//! safe to use from any number of threads; the CUDA driver API itself is thread-safe.

use core::ffi::c_int;
use std::cell::Cell;
use std::ptr;
use std::sync::OnceLock;

use super::cuda_driver::{check, driver, CudaDriver, DriverCall};
use super::cuda_types::{CUcontext, CUdevice, CUresult};
use crate::bindings::hip::hipError_t;

/// The result of the process's `cuInit(0)`, made once.
static INIT: OnceLock<CUresult> = OnceLock::new();

/// One slot per device (sized by `cuDeviceGetCount` at first use): the retained primary
/// context, as an address so that the table is `Sync` without an `unsafe impl`.
static PRIMARY: OnceLock<Box<[OnceLock<usize>]>> = OnceLock::new();

#[derive(Clone, Copy)]
struct Current {
    device: c_int,
    context: usize,
}

thread_local! {
    /// The calling thread's HIP device and the primary context the adapter made current.
    static CURRENT: Cell<Option<Current>> = const { Cell::new(None) };
}

/// Initializes the driver (`cuInit(0)`) once per process.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__INITIALIZE.html>
pub(crate) fn init(d: &CudaDriver) -> Result<(), hipError_t> {
    let result = *INIT.get_or_init(|| {
        // SAFETY: cuInit takes a flags value (must be 0) and no pointers.
        unsafe { (d.cuInit)(0) }
    });
    check(DriverCall::cuInit, result)
}

/// The CUDA device handle of HIP device `ordinal`.
pub(crate) fn cu_device(d: &CudaDriver, ordinal: c_int) -> Result<CUdevice, hipError_t> {
    init(d)?;
    let mut device: CUdevice = 0;
    // SAFETY: `device` is a valid out-pointer; the ordinal is validated by the driver.
    let result = unsafe { (d.cuDeviceGet)(&mut device, ordinal) };
    check(DriverCall::cuDeviceGet, result)?;
    Ok(device)
}

/// The number of devices (`cuDeviceGetCount`, after `cuInit`).
pub(crate) fn device_count(d: &CudaDriver) -> Result<c_int, hipError_t> {
    init(d)?;
    let mut count: c_int = 0;
    // SAFETY: `count` is a valid out-pointer.
    let result = unsafe { (d.cuDeviceGetCount)(&mut count) };
    check(DriverCall::cuDeviceGetCount, result)?;
    Ok(count)
}

/// The primary context of device `ordinal`, retained on first use and kept for the rest
/// of the process (HIP has no call that would end it: rocmforge's table has no
/// `hipDeviceReset`).
fn primary_context(d: &CudaDriver, ordinal: c_int) -> Result<CUcontext, hipError_t> {
    let slots = match PRIMARY.get() {
        Some(slots) => slots,
        None => {
            let count = device_count(d)?;
            let slots: Box<[OnceLock<usize>]> =
                (0..count.max(0)).map(|_| OnceLock::new()).collect();
            // A racing thread may have set the table first; both are sized by the same count.
            let _ = PRIMARY.set(slots);
            PRIMARY.get().ok_or(hipError_t::hipErrorNotInitialized)?
        }
    };
    if slots.is_empty() {
        return Err(hipError_t::hipErrorNoDevice);
    }
    let slot = usize::try_from(ordinal)
        .ok()
        .and_then(|i| slots.get(i))
        .ok_or(hipError_t::hipErrorInvalidDevice)?;
    if let Some(&context) = slot.get() {
        return Ok(context as CUcontext);
    }
    let device = cu_device(d, ordinal)?;
    let mut context: CUcontext = ptr::null_mut();
    // SAFETY: `context` is a valid out-pointer and `device` a handle from cuDeviceGet.
    let result = unsafe { (d.cuDevicePrimaryCtxRetain)(&mut context, device) };
    check(DriverCall::cuDevicePrimaryCtxRetain, result)?;
    if slot.set(context as usize).is_err() {
        // Another thread retained it first: give our extra reference back.
        // SAFETY: we hold one retain on this device's primary context, released here.
        let result = unsafe { (d.cuDevicePrimaryCtxRelease_v2)(device) };
        check(DriverCall::cuDevicePrimaryCtxRelease_v2, result)?;
    }
    slot.get()
        .map(|&c| c as CUcontext)
        .ok_or(hipError_t::hipErrorNotInitialized)
}

/// Makes `context` the calling thread's current CUDA context unless it already is (the
/// thread's current context may have been changed by code outside the adapter).
fn make_current(d: &CudaDriver, context: CUcontext) -> Result<(), hipError_t> {
    let mut now: CUcontext = ptr::null_mut();
    // SAFETY: `now` is a valid out-pointer.
    let result = unsafe { (d.cuCtxGetCurrent)(&mut now) };
    check(DriverCall::cuCtxGetCurrent, result)?;
    if now != context {
        // SAFETY: `context` is a primary context retained for the life of the process.
        let result = unsafe { (d.cuCtxSetCurrent)(context) };
        check(DriverCall::cuCtxSetCurrent, result)?;
    }
    Ok(())
}

/// Makes sure the calling thread has the primary context of its HIP device current
/// (device 0 if it never chose one) and returns the driver and that device ordinal.
pub(crate) fn current() -> Result<(&'static CudaDriver, c_int), hipError_t> {
    let d = driver()?;
    let cached = CURRENT.try_with(Cell::get).ok().flatten();
    let current = match cached {
        Some(current) => current,
        None => Current {
            device: 0,
            context: primary_context(d, 0)? as usize,
        },
    };
    make_current(d, current.context as CUcontext)?;
    let _ = CURRENT.try_with(|c| c.set(Some(current)));
    Ok((d, current.device))
}

/// `hipSetDevice`: makes `deviceId` the calling thread's device, its primary context
/// current (`cuDevicePrimaryCtxRetain` once per device, then `cuCtxSetCurrent`).
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__CTX.html>
pub(crate) unsafe extern "C" fn hipSetDevice(deviceId: c_int) -> hipError_t {
    let result = (|| {
        let d = driver()?;
        let context = primary_context(d, deviceId)?;
        make_current(d, context)?;
        let _ = CURRENT.try_with(|c| {
            c.set(Some(Current {
                device: deviceId,
                context: context as usize,
            }))
        });
        Ok(())
    })();
    super::status(result)
}

/// `hipGetDevice`: the calling thread's device (0 until `hipSetDevice`), after making
/// sure its context is current.
/// <https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__CTX.html>
pub(crate) unsafe extern "C" fn hipGetDevice(deviceId: *mut c_int) -> hipError_t {
    if deviceId.is_null() {
        return hipError_t::hipErrorInvalidValue;
    }
    let result = current().map(|(_, device)| {
        // SAFETY: `deviceId` is non-null and, per the HIP contract, points to an int.
        unsafe { deviceId.write(device) };
    });
    super::status(result)
}
