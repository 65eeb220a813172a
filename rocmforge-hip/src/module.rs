//! A loaded code object and the kernels in it.

use std::ffi::CString;
use std::sync::Arc;

use parking_lot::Mutex;
use rocmforge_sys::bindings::hip::{hipFunction_attribute, hipFunction_t, hipModule_t};

use crate::{Device, Error, Kernel, Result, Stream};

/// A code object (HSA code object on AMD, cubin on NVIDIA) loaded on a device.
/// Cheap to clone; kernels keep their module alive.
#[derive(Clone)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    raw: hipModule_t,
    device: Device,
    /// Streams this module's kernels were launched on: before unloading, their work
    /// must be finished (unloading code that is running is undefined).
    streams: Mutex<Vec<Stream>>,
}

// SAFETY: module handles may be used from any thread; the stream list is behind a mutex.
unsafe impl Send for ModuleInner {}
// SAFETY: as above.
unsafe impl Sync for ModuleInner {}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("device", &self.inner.device.ordinal())
            .finish()
    }
}

impl Module {
    /// Loads a code object (the bytes of a compiled program) on `device`.
    pub fn load(device: &Device, code: &[u8]) -> Result<Module> {
        if code.is_empty() {
            return Err(Error::InvalidArgument(
                "an empty code object cannot be loaded".into(),
            ));
        }
        device.make_current()?;
        let mut raw: hipModule_t = std::ptr::null_mut();
        // SAFETY: valid out-pointer; `code` is readable for the call (the runtime copies
        // what it needs while loading).
        device.check("hipModuleLoadData", unsafe {
            (device.hip().hipModuleLoadData)(&mut raw, code.as_ptr().cast())
        })?;
        Ok(Module {
            inner: Arc::new(ModuleInner {
                raw,
                device: device.clone(),
                streams: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The kernel `name` (its `extern "C"` name).
    pub fn function(&self, name: &str) -> Result<Kernel> {
        let c_name = CString::new(name).map_err(|_| Error::InteriorNul {
            what: "kernel name",
        })?;
        let device = &self.inner.device;
        device.make_current()?;
        let mut raw: hipFunction_t = std::ptr::null_mut();
        // SAFETY: valid out-pointer, live module, NUL-terminated name.
        device.check("hipModuleGetFunction", unsafe {
            (device.hip().hipModuleGetFunction)(&mut raw, self.inner.raw, c_name.as_ptr())
        })?;
        let mut max_threads = 0;
        // SAFETY: valid out-pointer and function handle.
        device.check("hipFuncGetAttribute", unsafe {
            (device.hip().hipFuncGetAttribute)(
                &mut max_threads,
                hipFunction_attribute::HIP_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
                raw,
            )
        })?;
        Ok(Kernel::new(
            raw,
            self.clone(),
            name,
            u32::try_from(max_threads).unwrap_or(0),
        ))
    }

    /// The device this module is loaded on.
    pub fn device(&self) -> &Device {
        &self.inner.device
    }

    /// Notes that a kernel of this module was enqueued on `stream`.
    pub(crate) fn note_launch(&self, stream: &Stream) {
        let mut streams = self.inner.streams.lock();
        if !streams.iter().any(|s| s == stream) {
            streams.push(stream.clone());
        }
    }
}

impl Drop for ModuleInner {
    fn drop(&mut self) {
        // Finish this module's kernels on the streams that ran them (per stream, never
        // device-wide), then unload.
        for stream in self.streams.get_mut().drain(..) {
            self.device.deferred().record_result(stream.wait_idle());
        }
        let _ = self.device.make_current();
        // SAFETY: we own the module; no kernel of it is running any more.
        let status = unsafe { (self.device.hip().hipModuleUnload)(self.raw) };
        self.device
            .deferred()
            .record_result(self.device.check("hipModuleUnload", status));
    }
}
