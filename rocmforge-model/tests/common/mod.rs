//! Helpers shared by the model tests.

#![allow(dead_code)] // each test binary uses its own part

pub mod reference;
pub mod synthetic_model;
