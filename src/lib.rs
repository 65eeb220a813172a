//! # rocmforge
//!
//! Run transformer language models on AMD GPUs through HIP, from Rust.
//!
//! **Status: experimental alpha.** No AMD GPU has been available to the project: the
//! AMD path is verified by building against Debian's HIP 5.2 and compiling kernels for
//! AMD targets with hiprtc; the same code runs on an NVIDIA H100 through rocmforge's own
//! adapter (see `docs/verification.md`).
//!
//! The crates, lowest first:
//! * [`sys`] — HIP/hiprtc bindings (bindgen), loaded at run time; the NVIDIA adapter.
//! * [`hip`] — the safe layer: devices, non-blocking streams, events, stream-ordered
//!   buffers, pinned memory, modules, typed launches, hiprtc, graphs. Device-wide
//!   synchronization is not reachable from it.
//! * [`kernels`] — the compute kernels (in progress).
//! * [`model`] — GGUF, tokenizer and the llama-family model (in progress).
//!
//! Most programs need only the [`prelude`].

pub use rocmforge_hip as hip;
pub use rocmforge_kernels as kernels;
pub use rocmforge_model as model;
pub use rocmforge_sys as sys;

pub use rocmforge_hip::{
    compile, CodeObject, CompileOptions, Device, DeviceBuffer, DeviceMemory, DeviceMemoryMut,
    DeviceProperties, DeviceSlice, DeviceSliceMut, Error, Event, Graph, GraphExec, In, Kernel,
    LaunchConfig, MemoryInfo, Module, Out, PinnedHostBuffer, Platform, Result, Stream,
    StreamCapture, TypedKernel,
};

/// The types and traits most programs use.
pub mod prelude {
    pub use rocmforge_hip::{
        compile, CompileOptions, Device, DeviceBuffer, DeviceMemory, DeviceMemoryMut, Error, Event,
        In, LaunchConfig, Module, Out, PinnedHostBuffer, Result, Stream, TypedKernel,
    };
}
