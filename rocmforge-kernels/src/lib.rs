//! Compute kernels of rocmforge: HIP C++ compiled at first use for the device's exact
//! architecture, with typed launchers and a CPU reference for every op.
//!
//! * [`quant`] — ggml tensor types, block layouts, CPU (de)quantization.
//! * [`cpu`] — CPU reference implementations of every op (multi-threaded).
//! * [`KernelSource`], [`KernelCompiler`], [`KernelCache`] — the kernel sources, their
//!   compilation for a [`CompileTarget`] and the on-disk cache of code objects.

mod compile_target;
pub mod cpu;
pub mod elf_symbols;
mod error;
pub mod gpu;
mod kernel_cache;
mod kernel_compiler;
mod kernel_source;
pub mod quant;

pub use compile_target::{default_wave_size, CompileTarget};
pub use error::{Error, Result};
pub use gpu::{ElementwiseOps, KernelLoader};
pub use kernel_cache::{CacheKey, KernelCache};
pub use kernel_compiler::KernelCompiler;
pub use kernel_source::{
    KernelSource, ALL_SOURCES, ATTENTION, ELEMENTWISE, GEMM, NORM, PRELUDE, QUANT, ROPE,
};
pub use rocmforge_hip as hip;
