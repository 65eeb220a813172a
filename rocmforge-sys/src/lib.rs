//! Raw HIP and hiprtc bindings for rocmforge, loaded at run time.
//!
//! * [`bindings`]: bindgen output (types, constants, `PFN_*` function-pointer types)
//!   from the HIP headers, checked in; see `generator/README.md` to regenerate.
//! * [`HipApi`], [`HiprtcApi`]: the tables of functions rocmforge calls.
//! * [`Runtime`]: finds the runtime (`libamdhip64` on AMD, or rocmforge's adapter on
//!   the CUDA driver for NVIDIA) and holds the tables. Nothing is linked at build time:
//!   a program that embeds rocmforge builds and starts on any machine and gets
//!   [`LoadError::RuntimeNotFound`] when it asks for a GPU that has no runtime.
//!
//! Everything here is `unsafe` to call; the safe layer is `rocmforge-hip`.
//! Environment: `ROCMFORGE_PLATFORM=amd|nvidia|auto`, `ROCMFORGE_HIP_LIB=/path/libamdhip64.so`,
//! `ROCM_PATH`.

pub mod bindings;

mod amd_loader;
mod device_properties;
mod function_table;
mod hip_api;
mod hiprtc_api;
mod load_error;
pub mod nvidia;
mod platform;
mod runtime;

pub use amd_loader::{
    hip_library_candidates, hiprtc_library_candidates, HIP_LIBRARY_NAMES, HIP_LIB_ENV,
};
pub use device_properties::{c_chars_to_string, RawDeviceProperties, HIP_VERSION_6_0};
pub use hip_api::HipApi;
pub use hiprtc_api::HiprtcApi;
pub use load_error::{LoadAttempt, LoadError};
pub use platform::{Platform, PlatformChoice, PLATFORM_ENV};
pub use runtime::{LoadOptions, Runtime};
