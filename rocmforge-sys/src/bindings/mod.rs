//! bindgen output, checked in. See `rocmforge-sys/generator` for how it is made.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unknown_lints,
    unpredictable_function_pointer_comparisons,
    clippy::all,
    rustdoc::all
)]

#[rustfmt::skip]
pub mod hip;

#[rustfmt::skip]
pub mod hip_device_prop_r0600;
