//! Compute kernels of rocmforge: HIP C++ compiled at first use for the device's exact
//! architecture, with typed launchers and a CPU reference for every op.
//!
//! * [`quant`] — ggml tensor types, block layouts, CPU dequantization.
//! * [`cpu`] — CPU reference implementations of every op (multi-threaded).

pub mod cpu;
mod error;
pub mod quant;

pub use error::{Error, Result};
pub use rocmforge_hip as hip;
