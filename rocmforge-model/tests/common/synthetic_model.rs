//! Synthetic llama/qwen2 models with random weights, written with the GGUF writer: the
//! shapes and features a test asks for, at any width (tests share this module).

use rocmforge_model::gguf::{
    GgmlType, GgufFile, SyntheticModel, SYNTHETIC_RMS_EPS, SYNTHETIC_ROPE_BASE,
};

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub arch: &'static str,
    pub n_layers: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub n_rot: usize,
    pub n_vocab: usize,
    pub matrix_type: GgmlType,
    pub tied: bool,
    pub rope_freqs: bool,
    pub scaling_factor: Option<f32>,
    pub bias: bool,
}

pub const BASE: f32 = SYNTHETIC_ROPE_BASE;
pub const EPS: f32 = SYNTHETIC_RMS_EPS;

pub fn head_dim(s: &Spec) -> usize {
    s.n_embd / s.n_heads
}

/// The file of `s` (through the library's [`SyntheticModel`]), without the tensor `drop`.
pub fn write_model(s: &Spec, drop: Option<&str>) -> GgufFile {
    let model = SyntheticModel {
        arch: s.arch,
        n_layers: s.n_layers,
        n_embd: s.n_embd,
        n_ff: s.n_ff,
        n_heads: s.n_heads,
        n_kv_heads: s.n_kv_heads,
        n_rot: s.n_rot,
        n_vocab: s.n_vocab,
        n_ctx: 64,
        matrix_type: s.matrix_type,
        embedding_type: s.matrix_type,
        output_type: (!s.tied).then_some(GgmlType::F16),
        rope_freqs: s.rope_freqs,
        rope_scaling_linear: s.scaling_factor,
        qkv_bias: s.bias,
    };
    let writer = model.writer_without(drop).unwrap();
    GgufFile::from_vec(writer.to_vec().unwrap()).unwrap()
}
