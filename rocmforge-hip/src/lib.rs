//! The safe HIP layer of rocmforge.
//!
//! Devices, non-blocking streams, events, stream-ordered device buffers and their
//! views, pinned host memory, modules, typed kernel launches, run-time compilation and
//! graphs — with device-wide synchronization unrepresentable:
//!
//! 1. Nothing here waits for the whole device: waiting exists only per stream
//!    ([`Stream::synchronize`]), per event ([`Event::synchronize`]), or inside a blocking
//!    copy that synchronizes the buffer's own stream. All streams are non-blocking.
//! 2. Device memory lives and dies in stream order ([`DeviceBuffer`]); views borrow
//!    their parent and never free.
//! 3. Async copies cannot outlive their host memory ([`PinnedHostBuffer`]).
//! 4. Launches are typed ([`TypedKernel`]); the raw launch is `unsafe`.
//! 5. Every HIP result is checked; errors in destructors are kept and surfaced
//!    ([`Stream::synchronize`], [`Device::take_deferred_errors`]).
//!
//! See `docs/sync-safety.md` for every implicitly synchronizing HIP call and how this
//! crate avoids it.
//!
//! ```no_run
//! use rocmforge_hip::{compile, CompileOptions, Device, DeviceBuffer, DeviceMemory, In, Out, LaunchConfig, Module};
//!
//! # fn main() -> rocmforge_hip::Result<()> {
//! let device = Device::new(0)?;
//! let stream = device.new_stream()?;
//! let source = r#"extern "C" __global__ void scale(const float* x, float* y, float a, unsigned n) {
//!     unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
//!     if (i < n) y[i] = a * x[i];
//! }"#;
//! let code = compile(source, "scale.hip", &CompileOptions::for_arch(&device.properties().arch_name))?;
//! let module = Module::load(&device, &code.code)?;
//! // SAFETY: the signature matches the kernel, which checks i < n.
//! let scale = unsafe { module.function("scale")?.into_typed::<(In<f32>, Out<f32>, f32, u32)>() };
//! let x = DeviceBuffer::from_slice(&stream, &[1.0f32, 2.0, 3.0])?;
//! let mut y = DeviceBuffer::<f32>::zeroed(&stream, 3)?;
//! scale.launch(&stream, &LaunchConfig::for_elements(3, 256)?, (x.as_slice(), y.as_slice_mut(), 2.0, 3))?;
//! assert_eq!(y.to_vec()?, vec![2.0, 4.0, 6.0]);
//! # Ok(())
//! # }
//! ```

mod compiler;
mod deferred_errors;
mod device;
mod device_buffer;
mod device_memory;
mod device_properties;
mod device_slice;
mod error;
mod event;
mod graph;
mod kernel;
mod kernel_args;
mod launch_config;
mod memory_info;
mod module;
mod pinned_host_buffer;
mod pinned_pool;
mod stream;

pub use compiler::{compile, compile_with, compiler_version, CodeObject, CompileOptions};
pub use device::Device;
pub use device_buffer::DeviceBuffer;
pub use device_memory::{DeviceMemory, DeviceMemoryMut};
pub use device_properties::DeviceProperties;
pub use device_slice::{DeviceSlice, DeviceSliceMut};
pub use error::{Error, HipErrorCode, Result};
pub use event::Event;
pub use graph::{Graph, GraphExec, StreamCapture};
pub use kernel::{Kernel, TypedKernel};
pub use kernel_args::{ArgSlots, In, KernelParam, KernelSignature, Out};
pub use launch_config::{Dim3, LaunchConfig};
pub use memory_info::MemoryInfo;
pub use module::Module;
pub use pinned_host_buffer::PinnedHostBuffer;
pub use rocmforge_sys::{LoadError, Platform};
pub use stream::Stream;
