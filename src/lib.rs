//! # rocmforge
//!
//! Run transformer language models on AMD GPUs through HIP, from Rust.
//!
//! **Status: experimental alpha.** No AMD GPU has been available to the project: the
//! AMD path is verified by building against Debian's HIP 5.2 and compiling kernels for
//! AMD targets with hiprtc; the same code runs on NVIDIA GPUs (an H200 now, an H100 in
//! earlier runs) through rocmforge's own adapter from the HIP function table to the CUDA
//! driver API (see `docs/verification.md` in the repository).
//!
//! The crates, lowest first (each re-exported here as a module):
//! * [`sys`] — HIP/hiprtc bindings (bindgen), loaded at run time; the NVIDIA adapter.
//! * [`hip`] — the safe layer: devices, non-blocking streams, events, stream-ordered
//!   buffers, pinned memory, modules, typed launches, hiprtc, graphs. Device-wide
//!   synchronization is not reachable from it.
//! * [`kernels`] — the compute kernels (HIP C++, compiled at first use for the device
//!   and cached on disk), typed launchers, ggml quant formats and a CPU reference of
//!   every op.
//! * [`model`] — GGUF, tokenizer, chat templates, the llama-family model over a HIP or
//!   CPU backend, KV cache, sampling and generation ([`model::generate::Generator`]).
//!
//! Most programs need only [`model`] to generate text, or the [`prelude`] to run their
//! own kernels. Nothing is linked against HIP at build time: the runtime is loaded the
//! first time a GPU is asked for ([`Device::new`], [`Device::count`]).
//!
//! ```no_run
//! use rocmforge::model::chat_template::ChatMessage;
//! use rocmforge::model::generate::{GenerateOptions, Generator};
//! use rocmforge::model::kv_cache::KvCacheOptions;
//!
//! fn main() -> rocmforge::model::Result<()> {
//!     let generator = Generator::open_gpu("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//!     let prompt = generator.encode_chat(&[ChatMessage::user("Name three colours.")])?;
//!     let mut session = generator.session(&KvCacheOptions::default())?;
//!     for token in session.generate(&prompt, GenerateOptions::greedy(64))? {
//!         print!("{}", token?.text);
//!     }
//!     Ok(())
//! }
//! ```

#[doc(inline)]
pub use rocmforge_hip as hip;
#[doc(inline)]
pub use rocmforge_kernels as kernels;
#[doc(inline)]
pub use rocmforge_model as model;
#[doc(inline)]
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

/// The Rust code blocks of `README.md`, compiled as doctests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
