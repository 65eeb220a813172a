//! A kernel of a loaded module, and its launches.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::sync::Arc;

use rocmforge_sys::bindings::hip::hipFunction_t;

use crate::kernel_args::{ArgSlots, KernelSignature};
use crate::{Error, LaunchConfig, Module, Result, Stream};

/// A `__global__` function of a [`Module`]. Its launches are `unsafe` (nothing checks
/// the arguments against the kernel's C signature) until it is given a signature with
/// [`Kernel::into_typed`].
#[derive(Clone)]
pub struct Kernel {
    raw: hipFunction_t,
    module: Module,
    name: Arc<str>,
    max_threads_per_block: u32,
}

// SAFETY: a function handle is an immutable reference into a module that the Kernel keeps
// alive; HIP allows launching it from any thread.
unsafe impl Send for Kernel {}
// SAFETY: as above.
unsafe impl Sync for Kernel {}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("name", &self.name).finish()
    }
}

impl Kernel {
    pub(crate) fn new(raw: hipFunction_t, module: Module, name: &str, max_threads: u32) -> Self {
        Self {
            raw,
            module,
            name: name.into(),
            max_threads_per_block: max_threads,
        }
    }

    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most threads per block this kernel can be launched with (its register use
    /// may make this less than the device's limit).
    pub fn max_threads_per_block(&self) -> u32 {
        self.max_threads_per_block
    }

    /// The module the kernel lives in.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Checks `config` against the device and this kernel, and `stream` against the module.
    pub fn check_launch(&self, stream: &Stream, config: &LaunchConfig) -> Result<()> {
        let device = self.module.device();
        if stream.device().ordinal() != device.ordinal() {
            return Err(Error::DeviceMismatch {
                what: "kernel launch",
                expected: device.ordinal() as i32,
                actual: stream.device().ordinal() as i32,
            });
        }
        config.validate(device.properties())?;
        let threads = config.block.volume().unwrap_or(u64::MAX);
        if self.max_threads_per_block > 0 && threads > u64::from(self.max_threads_per_block) {
            return Err(Error::InvalidLaunch(format!(
                "{threads} threads per block exceed the {} that kernel {} supports",
                self.max_threads_per_block, self.name
            )));
        }
        Ok(())
    }

    /// Enqueues the kernel on `stream` with raw parameters.
    ///
    /// # Safety
    /// `params` must point to values matching the kernel's parameters in number, type and
    /// order; every device address among them must be valid for everything the kernel
    /// does with it under `config`, and stay valid in `stream` order until the kernel
    /// finishes (memory owned by `stream`'s buffers is).
    pub unsafe fn launch_raw(
        &self,
        stream: &Stream,
        config: &LaunchConfig,
        params: &mut [*mut c_void],
    ) -> Result<()> {
        self.check_launch(stream, config)?;
        let device = stream.device();
        let params_ptr = if params.is_empty() {
            std::ptr::null_mut()
        } else {
            params.as_mut_ptr()
        };
        // SAFETY: the configuration was validated; the caller guarantees the parameters.
        device.check("hipModuleLaunchKernel", unsafe {
            (device.hip().hipModuleLaunchKernel)(
                self.raw,
                config.grid.x,
                config.grid.y,
                config.grid.z,
                config.block.x,
                config.block.y,
                config.block.z,
                config.shared_mem_bytes,
                stream.as_raw(),
                params_ptr,
                std::ptr::null_mut(),
            )
        })?;
        self.module.note_launch(stream);
        Ok(())
    }

    /// Declares the kernel's parameter list, making its launches safe.
    ///
    /// # Safety
    /// `S` must match the kernel's C parameters in number, type and order ([`crate::In`]
    /// for `const T*`, [`crate::Out`] for `T*`, scalars as themselves), and the kernel
    /// must stay inside the memory it is given for every configuration its callers use
    /// (typically: it checks its indices against length parameters).
    pub unsafe fn into_typed<S: KernelSignature>(self) -> TypedKernel<S> {
        TypedKernel {
            kernel: self,
            _signature: PhantomData,
        }
    }
}

/// A kernel with a declared signature `S`: launches take typed arguments, check that
/// device memory belongs to the launch stream and check the grid against the device.
pub struct TypedKernel<S> {
    kernel: Kernel,
    _signature: PhantomData<fn(S)>,
}

impl<S> Clone for TypedKernel<S> {
    fn clone(&self) -> Self {
        Self {
            kernel: self.kernel.clone(),
            _signature: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for TypedKernel<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedKernel")
            .field("name", &self.kernel.name)
            .finish()
    }
}

impl<S: KernelSignature> TypedKernel<S> {
    /// Enqueues the kernel on `stream`.
    pub fn launch(&self, stream: &Stream, config: &LaunchConfig, args: S::Args<'_>) -> Result<()> {
        let mut slots = ArgSlots::with_capacity(S::ARITY);
        S::encode(&args, stream, &mut slots)?;
        let mut params = slots.pointers();
        // SAFETY: `into_typed`'s contract makes S the kernel's signature; every device
        // argument was checked to belong to `stream`, whose order keeps it alive; the
        // borrows in `args` end after enqueueing, and any later use of that memory is
        // ordered after the kernel on the same stream.
        unsafe { self.kernel.launch_raw(stream, config, &mut params) }
    }

    /// The untyped kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }
}
