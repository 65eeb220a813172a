//! [`SyntheticModel`]: llama-family GGUF files of real shapes with random weights, for
//! benchmarks and GPU-vs-CPU tests (no download, any width, any weight type).
//!
//! The weights are uniform random numbers quantized with ggml's reference quantizers
//! ([`GgufWriter::add_random_tensor`]), scaled like trained weights (`1.7 / √cols` for
//! matrices) so that activations stay in a realistic range through the layers. The file
//! has no tokenizer: load it with [`Model::load`](crate::model::Model::load).

use super::{GgmlType, GgufWriter, Result};

/// The shape and features of a synthetic model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticModel {
    /// `general.architecture`: `"llama"` or `"qwen2"`.
    pub arch: &'static str,
    /// Layers.
    pub n_layers: usize,
    /// Hidden width.
    pub n_embd: usize,
    /// Feed-forward width.
    pub n_ff: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Rotated dimensions per head.
    pub n_rot: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// `context_length`.
    pub n_ctx: usize,
    /// Type of the layers' matrices.
    pub matrix_type: GgmlType,
    /// Type of `token_embd.weight`.
    pub embedding_type: GgmlType,
    /// Type of `output.weight`; `None` ties the output to `token_embd`.
    pub output_type: Option<GgmlType>,
    /// A Llama 3 style `rope_freqs.weight` (frequency divisors).
    pub rope_freqs: bool,
    /// Linear RoPE scaling factor.
    pub rope_scaling_linear: Option<f32>,
    /// Q/K/V biases (qwen2 needs them).
    pub qkv_bias: bool,
}

/// RoPE base of the synthetic models.
pub const SYNTHETIC_ROPE_BASE: f32 = 10000.0;
/// RMSNorm epsilon of the synthetic models.
pub const SYNTHETIC_RMS_EPS: f32 = 1e-5;

impl SyntheticModel {
    /// Llama-3-8B's shape (32 layers, 4096 wide, FFN 14336, 32 query / 8 KV heads of 128,
    /// vocabulary 128256), every matrix — `token_embd` and `output` included — in `ty`, as
    /// in the llama.cpp reference runs of `shared/reference/llamacpp_h100.md`.
    pub fn llama3_8b(ty: GgmlType) -> Self {
        SyntheticModel {
            arch: "llama",
            n_layers: 32,
            n_embd: 4096,
            n_ff: 14336,
            n_heads: 32,
            n_kv_heads: 8,
            n_rot: 128,
            n_vocab: 128256,
            n_ctx: 8192,
            matrix_type: ty,
            embedding_type: ty,
            output_type: Some(ty),
            rope_freqs: false,
            rope_scaling_linear: None,
            qkv_bias: false,
        }
    }

    /// Qwen2-7B's shape (28 layers, 3584 wide, FFN 18944, 28 query / 4 KV heads of 128,
    /// Q/K/V biases, vocabulary 152064, untied output), matrices in `ty`.
    pub fn qwen2_7b(ty: GgmlType) -> Self {
        SyntheticModel {
            arch: "qwen2",
            n_layers: 28,
            n_embd: 3584,
            n_ff: 18944,
            n_heads: 28,
            n_kv_heads: 4,
            n_rot: 128,
            n_vocab: 152064,
            n_ctx: 8192,
            matrix_type: ty,
            embedding_type: ty,
            output_type: Some(ty),
            rope_freqs: false,
            rope_scaling_linear: None,
            qkv_bias: true,
        }
    }

    /// The same model with `n` layers.
    pub fn with_layers(mut self, n: usize) -> Self {
        self.n_layers = n;
        self
    }

    /// The same model with a vocabulary of `n`.
    pub fn with_vocab(mut self, n: usize) -> Self {
        self.n_vocab = n;
        self
    }

    /// Dimensions per head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_heads.max(1)
    }

    /// A writer holding the model's metadata and tensors (quantized when written).
    pub fn writer(&self) -> Result<GgufWriter<'static>> {
        self.writer_without(None)
    }

    /// [`writer`](Self::writer), leaving out the tensor named `skip` (to test what a
    /// missing tensor does).
    pub fn writer_without(&self, skip: Option<&str>) -> Result<GgufWriter<'static>> {
        let a = self.arch;
        let hd = self.head_dim();
        let (q, kv) = (self.n_heads * hd, self.n_kv_heads * hd);
        let mut w = GgufWriter::new();
        w.add("general.architecture", a)?;
        w.add(
            "general.name",
            format!("synthetic {a} ({} layers)", self.n_layers),
        )?;
        w.add(format!("{a}.block_count"), self.n_layers as u32)?;
        w.add(format!("{a}.context_length"), self.n_ctx as u32)?;
        w.add(format!("{a}.embedding_length"), self.n_embd as u32)?;
        w.add(format!("{a}.feed_forward_length"), self.n_ff as u32)?;
        w.add(format!("{a}.attention.head_count"), self.n_heads as u32)?;
        w.add(
            format!("{a}.attention.head_count_kv"),
            self.n_kv_heads as u32,
        )?;
        w.add(format!("{a}.rope.freq_base"), SYNTHETIC_ROPE_BASE)?;
        w.add(format!("{a}.rope.dimension_count"), self.n_rot as u32)?;
        w.add(
            format!("{a}.attention.layer_norm_rms_epsilon"),
            SYNTHETIC_RMS_EPS,
        )?;
        if let Some(f) = self.rope_scaling_linear {
            w.add(format!("{a}.rope.scaling.type"), "linear")?;
            w.add(format!("{a}.rope.scaling.factor"), f)?;
        }

        let mut seed = 1u64;
        let mut add = |w: &mut GgufWriter<'static>,
                       name: String,
                       ty: GgmlType,
                       dims: &[usize],
                       scale: f32|
         -> Result<()> {
            seed += 1;
            if skip != Some(name.as_str()) {
                w.add_random_tensor(name, ty, dims, seed, scale)?;
            }
            Ok(())
        };
        let m = self.matrix_type;
        let f32 = GgmlType::F32;
        let matrix_scale = |cols: usize| 1.7 / (cols as f32).sqrt();
        add(
            &mut w,
            "token_embd.weight".into(),
            self.embedding_type,
            &[self.n_embd, self.n_vocab],
            1.0,
        )?;
        if self.rope_freqs {
            // Positive divisors in [1, 8], written by hand (random values could be 0).
            let n = self.n_rot / 2;
            let values: Vec<u8> = (0..n)
                .flat_map(|i| (1.0f32 + 7.0 * i as f32 / n as f32).to_le_bytes())
                .collect();
            if skip != Some("rope_freqs.weight") {
                w.add_tensor("rope_freqs.weight", f32, &[n], values)?;
            }
        }
        let d = self.n_embd;
        for l in 0..self.n_layers {
            let n = |t: &str| format!("blk.{l}.{t}");
            add(&mut w, n("attn_norm.weight"), f32, &[d], 1.0)?;
            add(&mut w, n("attn_q.weight"), m, &[d, q], matrix_scale(d))?;
            add(&mut w, n("attn_k.weight"), m, &[d, kv], matrix_scale(d))?;
            add(&mut w, n("attn_v.weight"), m, &[d, kv], matrix_scale(d))?;
            if self.qkv_bias {
                add(&mut w, n("attn_q.bias"), f32, &[q], 0.5)?;
                add(&mut w, n("attn_k.bias"), f32, &[kv], 0.5)?;
                add(&mut w, n("attn_v.bias"), f32, &[kv], 0.5)?;
            }
            add(&mut w, n("attn_output.weight"), m, &[q, d], matrix_scale(q))?;
            add(&mut w, n("ffn_norm.weight"), f32, &[d], 1.0)?;
            let ff = self.n_ff;
            add(&mut w, n("ffn_gate.weight"), m, &[d, ff], matrix_scale(d))?;
            add(&mut w, n("ffn_up.weight"), m, &[d, ff], matrix_scale(d))?;
            add(&mut w, n("ffn_down.weight"), m, &[ff, d], matrix_scale(ff))?;
        }
        add(&mut w, "output_norm.weight".into(), f32, &[d], 1.0)?;
        if let Some(ty) = self.output_type {
            add(
                &mut w,
                "output.weight".into(),
                ty,
                &[d, self.n_vocab],
                matrix_scale(d),
            )?;
        }
        Ok(w)
    }
}
