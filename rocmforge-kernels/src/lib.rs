//! Compute kernels of rocmforge: HIP C++ compiled at first use for the device's exact
//! architecture, with typed launchers and a CPU reference for every op.
//!
//! Not written yet: this crate is the subject of the kernels issue. It exists so that
//! the workspace has its final shape and the dependency direction
//! (sys <- hip <- kernels <- model <- rocmforge) is fixed from the start.

pub use rocmforge_hip as hip;
