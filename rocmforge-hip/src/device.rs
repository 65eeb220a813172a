//! A GPU, as seen by this process.

use std::sync::Arc;

use rocmforge_sys::bindings::hip::{hipMemPoolAttr, hipMemPool_t};
use rocmforge_sys::{Platform, Runtime};

use crate::deferred_errors::DeferredErrors;
use crate::error::{check, runtime};
use crate::pinned_pool::PinnedPool;
use crate::{DeviceProperties, Error, MemoryInfo, Result, Stream};

/// One GPU. Cheap to clone: clones share one state (properties, the pinned-memory pool,
/// the record of errors met in destructors).
///
/// Every stream, buffer, event and module holds its `Device`, so the device's teardown
/// (the only place rocmforge releases pinned host memory) happens after all of them.
#[derive(Clone)]
pub struct Device {
    shared: Arc<DeviceShared>,
}

pub(crate) struct DeviceShared {
    runtime: &'static Runtime,
    ordinal: i32,
    properties: DeviceProperties,
    deferred: DeferredErrors,
    pinned: PinnedPool,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("ordinal", &self.shared.ordinal)
            .field("name", &self.shared.properties.name)
            .field("arch", &self.shared.properties.arch_name)
            .finish()
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for Device {}

impl Device {
    /// How many devices the runtime sees. No device is an error ([`Error::NoDevice`]),
    /// not zero, so that "why is nothing running on my GPU" has an answer.
    pub fn count() -> Result<usize> {
        let rt = runtime()?;
        let hip = rt.hip();
        // hipInit fails on a machine without a GPU; hipGetDeviceCount then says why
        // more precisely (hipErrorNoDevice), so its own status is not the one reported.
        // SAFETY: hipInit takes flags 0 and has no other preconditions.
        let _ = unsafe { (hip.hipInit)(0) };
        let mut count = 0;
        // SAFETY: `count` is a valid out-pointer.
        check(rt, "hipGetDeviceCount", unsafe {
            (hip.hipGetDeviceCount)(&mut count)
        })?;
        match usize::try_from(count) {
            Ok(0) | Err(_) => Err(Error::NoDevice {
                call: "hipGetDeviceCount",
            }),
            Ok(n) => Ok(n),
        }
    }

    /// Opens device `ordinal` (0-based).
    pub fn new(ordinal: usize) -> Result<Device> {
        let count = Device::count()?;
        if ordinal >= count {
            return Err(Error::InvalidDevice { ordinal, count });
        }
        let rt = runtime()?;
        let ordinal =
            i32::try_from(ordinal).map_err(|_| Error::InvalidDevice { ordinal, count })?;
        // SAFETY: the ordinal is in range.
        check(rt, "hipSetDevice", unsafe {
            (rt.hip().hipSetDevice)(ordinal)
        })?;
        let properties = rt.device_properties(ordinal).map_err(|status| {
            match check(rt, "hipGetDeviceProperties", status) {
                Err(e) => e,
                Ok(()) => Error::InvalidDevice {
                    ordinal: ordinal as usize,
                    count,
                },
            }
        })?;
        let device = Device {
            shared: Arc::new(DeviceShared {
                runtime: rt,
                ordinal,
                properties: properties.into(),
                deferred: DeferredErrors::default(),
                pinned: PinnedPool::default(),
            }),
        };
        device.keep_freed_memory_cached()?;
        Ok(device)
    }

    /// Every device the runtime sees.
    pub fn all() -> Result<Vec<Device>> {
        (0..Device::count()?).map(Device::new).collect()
    }

    /// The 0-based ordinal.
    pub fn ordinal(&self) -> usize {
        self.shared.ordinal as usize
    }

    /// Name, architecture, wave size, memory, compute units.
    pub fn properties(&self) -> &DeviceProperties {
        &self.shared.properties
    }

    /// The platform behind the runtime (AMD, or NVIDIA through rocmforge's adapter).
    pub fn platform(&self) -> Platform {
        self.shared.runtime.platform()
    }

    /// `hipRuntimeGetVersion` (on NVIDIA: the CUDA driver version).
    pub fn runtime_version(&self) -> i32 {
        self.shared.runtime.version()
    }

    /// A new non-blocking stream on this device.
    pub fn new_stream(&self) -> Result<Stream> {
        Stream::new(self)
    }

    /// Free and total device memory (`hipMemGetInfo`).
    pub fn memory_info(&self) -> Result<MemoryInfo> {
        self.make_current()?;
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: valid out-pointers; the device is current.
        self.check("hipMemGetInfo", unsafe {
            (self.hip().hipMemGetInfo)(&mut free, &mut total)
        })?;
        Ok(MemoryInfo { free, total })
    }

    /// Bytes handed out by this device's stream-ordered pool and not yet freed
    /// (`hipMemPoolAttrUsedMemCurrent`), and bytes the pool holds from the device
    /// (`hipMemPoolAttrReservedMemCurrent`).
    pub fn pool_usage(&self) -> Result<(u64, u64)> {
        let pool = self.default_pool()?;
        let mut used = 0u64;
        let mut reserved = 0u64;
        let hip = self.hip();
        // SAFETY: these attributes are u64 values; the pointers are valid.
        unsafe {
            self.check(
                "hipMemPoolGetAttribute",
                (hip.hipMemPoolGetAttribute)(
                    pool,
                    hipMemPoolAttr::hipMemPoolAttrUsedMemCurrent,
                    (&mut used as *mut u64).cast(),
                ),
            )?;
            self.check(
                "hipMemPoolGetAttribute",
                (hip.hipMemPoolGetAttribute)(
                    pool,
                    hipMemPoolAttr::hipMemPoolAttrReservedMemCurrent,
                    (&mut reserved as *mut u64).cast(),
                ),
            )?;
        }
        Ok((used, reserved))
    }

    /// Errors met while releasing this device's resources in destructors, oldest first.
    /// [`Stream::synchronize`] also reports them.
    pub fn take_deferred_errors(&self) -> Vec<Error> {
        self.shared.deferred.take()
    }

    /// The default pool of `hipMallocAsync` keeps freed memory instead of returning it
    /// to the device at each synchronization (the default release threshold, 0, would
    /// make every allocation after a sync a fresh, slow device allocation).
    fn keep_freed_memory_cached(&self) -> Result<()> {
        let pool = self.default_pool()?;
        let mut threshold = u64::MAX;
        // SAFETY: the release threshold is a u64 attribute; the pointer is valid.
        self.check("hipMemPoolSetAttribute", unsafe {
            (self.hip().hipMemPoolSetAttribute)(
                pool,
                hipMemPoolAttr::hipMemPoolAttrReleaseThreshold,
                (&mut threshold as *mut u64).cast(),
            )
        })
    }

    fn default_pool(&self) -> Result<hipMemPool_t> {
        let mut pool: hipMemPool_t = std::ptr::null_mut();
        // SAFETY: valid out-pointer and ordinal.
        self.check("hipDeviceGetDefaultMemPool", unsafe {
            (self.hip().hipDeviceGetDefaultMemPool)(&mut pool, self.shared.ordinal)
        })?;
        Ok(pool)
    }

    /// Makes this device current on the calling thread (`hipSetDevice`); HIP's
    /// allocation and module calls act on the current device.
    pub(crate) fn make_current(&self) -> Result<()> {
        // SAFETY: the ordinal was validated when the device was opened.
        self.check("hipSetDevice", unsafe {
            (self.hip().hipSetDevice)(self.shared.ordinal)
        })
    }

    pub(crate) fn hip(&self) -> &'static rocmforge_sys::HipApi {
        self.shared.runtime.hip()
    }

    pub(crate) fn runtime(&self) -> &'static Runtime {
        self.shared.runtime
    }

    pub(crate) fn check(
        &self,
        call: &'static str,
        status: rocmforge_sys::bindings::hip::hipError_t,
    ) -> Result<()> {
        check(self.shared.runtime, call, status)
    }

    pub(crate) fn deferred(&self) -> &DeferredErrors {
        &self.shared.deferred
    }

    pub(crate) fn pinned_pool(&self) -> &PinnedPool {
        &self.shared.pinned
    }

    pub(crate) fn raw_ordinal(&self) -> i32 {
        self.shared.ordinal
    }
}

impl Drop for DeviceShared {
    fn drop(&mut self) {
        // The last handle of this device: no stream, buffer, event or pinned buffer of it
        // is left (each holds the device), so releasing pinned memory here cannot stall
        // any work of ours. See docs/sync-safety.md.
        // SAFETY: the ordinal was validated at open.
        let _ = unsafe { (self.runtime.hip().hipSetDevice)(self.ordinal) };
        self.pinned.release_all(self.runtime);
    }
}
