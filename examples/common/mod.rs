//! Code the examples share, one concept per file. An example includes it with
//! `#[path = "common/mod.rs"] mod common;` (with `#[allow(dead_code)]` when it uses only
//! part of it). Cargo does not build this directory as an example: it has no `main.rs`.

pub mod arithmetic;
pub mod device;
pub mod model;
pub mod progress;
pub mod sampling;
pub mod values;
