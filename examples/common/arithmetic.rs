//! `--arithmetic llama|fast|exact`: which arithmetic the backend computes with.

use rocmforge::model::backend::cpu::CpuArithmetic;
use rocmforge::model::backend::hip::GpuArithmetic;

/// `--arithmetic`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arithmetic {
    /// llama.cpp's CPU arithmetic reproduced bit for bit (slow on the GPU)
    Llama,
    /// The fastest: on the GPU, 8-bit activations in decode steps; on the CPU, llama's
    /// (its fastest)
    Fast,
    /// Exact f32/f64
    Exact,
}

impl Arithmetic {
    /// The CPU backend's mode.
    pub fn cpu(self) -> CpuArithmetic {
        match self {
            Arithmetic::Llama | Arithmetic::Fast => CpuArithmetic::GgmlCompatible,
            Arithmetic::Exact => CpuArithmetic::Exact,
        }
    }

    /// The GPU backend's mode.
    pub fn gpu(self) -> GpuArithmetic {
        match self {
            Arithmetic::Llama => GpuArithmetic::GgmlCompatible,
            Arithmetic::Fast => GpuArithmetic::Fast,
            Arithmetic::Exact => GpuArithmetic::Exact,
        }
    }
}
