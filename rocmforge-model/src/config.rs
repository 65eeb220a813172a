//! [`ModelConfig`]: the architecture and hyper-parameters of a llama-family model, read
//! from GGUF metadata and checked against the file's tensors.
//!
//! The architecture comes from `general.architecture` only (never from tensor names);
//! every hyper-parameter from `{arch}.*` keys as llama.cpp reads them:
//!
//! | field | key | default |
//! |---|---|---|
//! | `n_layers` | `{arch}.block_count` | required |
//! | `n_embd` | `{arch}.embedding_length` | required |
//! | `n_ff` | `{arch}.feed_forward_length` | required |
//! | `n_heads` | `{arch}.attention.head_count` | required |
//! | `n_kv_heads` | `{arch}.attention.head_count_kv` | `n_heads` |
//! | `head_dim` | `{arch}.attention.key_length` | `n_embd / n_heads` (must divide) |
//! | `rope_freq_base` | `{arch}.rope.freq_base` | 10000 |
//! | `n_rot` | `{arch}.rope.dimension_count` | `head_dim` |
//! | `rope_freq_scale` | `{arch}.rope.scale_linear` or `{arch}.rope.scaling.factor` | 1 (`1 / factor` when given) |
//! | `rms_eps` | `{arch}.attention.layer_norm_rms_epsilon` | required |
//! | `n_ctx_train` | `{arch}.context_length` | required |
//! | `n_vocab` | rows of `token_embd.weight` | — |
//!
//! `{arch}.rope.scaling.type` may be absent, `none` or `linear`; YaRN and LongRoPE are
//! rejected with an error that says so. Llama 3's frequency scaling is the optional
//! `rope_freqs.weight` tensor (`n_rot / 2` divisors of the rotation frequencies). Without an
//! `output.weight` the output projection reuses `token_embd.weight` (tied embeddings).
//!
//! [`ModelConfig::from_gguf`] also checks every tensor the forward pass will read: present,
//! with exactly the dimensions these hyper-parameters imply, and of a type rocmforge can
//! compute with. A missing tensor is an error that names it.

use rocmforge_kernels::cpu::RopeMode;
use rocmforge_kernels::quant::GgmlType;

use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, GgufMetadata, OptionalKey, TensorInfo};

/// The model architectures rocmforge implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// `llama`: Llama 2 and 3, SmolLM2, TinyLlama, Mistral-style models (optional QKV bias).
    Llama,
    /// `qwen2`: Qwen 2 and 2.5 (QKV bias, NeoX RoPE).
    Qwen2,
}

impl Architecture {
    /// Parses `general.architecture`; anything else is
    /// [`ModelError::UnsupportedArchitecture`] naming it.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "llama" => Ok(Architecture::Llama),
            "qwen2" => Ok(Architecture::Qwen2),
            other => Err(ModelError::UnsupportedArchitecture {
                arch: other.to_string(),
            }),
        }
    }

    /// The name used in `general.architecture` and as the metadata key prefix.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
        }
    }

    /// The RoPE layout llama.cpp uses for the architecture (`llama_model_rope_type`):
    /// `LLAMA_ROPE_TYPE_NORM` (adjacent pairs) for llama — the converter permutes Q and K
    /// so that this matches the Hugging Face rotation — and `LLAMA_ROPE_TYPE_NEOX` (split
    /// halves) for qwen2.
    pub fn rope_mode(self) -> RopeMode {
        match self {
            Architecture::Llama => RopeMode::Normal,
            Architecture::Qwen2 => RopeMode::Neox,
        }
    }

    /// Whether the Q/K/V projections must have biases (qwen2), rather than may (llama).
    pub fn requires_qkv_bias(self) -> bool {
        matches!(self, Architecture::Qwen2)
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a weight is used, which decides its expected dimensions and types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorRole {
    /// A `rows × cols` matrix (ggml dims `[cols, rows]`), used in matrix products or row
    /// lookups; any type rocmforge can dequantize.
    Matrix {
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
    },
    /// A vector of `len` values (norm weights, biases, RoPE frequency factors), read as
    /// `f32` (stored as F32, F16 or BF16).
    Vector {
        /// Its length.
        len: usize,
    },
}

impl TensorRole {
    /// The ggml-order dimensions of a tensor in this role.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            TensorRole::Matrix { rows, cols } => vec![cols, rows],
            TensorRole::Vector { len } => vec![len],
        }
    }
}

/// One tensor the forward pass reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// The GGUF tensor name.
    pub name: String,
    /// How it is used (and so its expected shape).
    pub role: TensorRole,
}

/// The names of one layer's tensors (`blk.N.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerTensorNames {
    /// `blk.N.attn_norm.weight`.
    pub attn_norm: String,
    /// `blk.N.attn_q.weight`.
    pub wq: String,
    /// `blk.N.attn_k.weight`.
    pub wk: String,
    /// `blk.N.attn_v.weight`.
    pub wv: String,
    /// `blk.N.attn_q.bias`.
    pub bq: String,
    /// `blk.N.attn_k.bias`.
    pub bk: String,
    /// `blk.N.attn_v.bias`.
    pub bv: String,
    /// `blk.N.attn_output.weight`.
    pub wo: String,
    /// `blk.N.ffn_norm.weight`.
    pub ffn_norm: String,
    /// `blk.N.ffn_gate.weight`.
    pub w_gate: String,
    /// `blk.N.ffn_up.weight`.
    pub w_up: String,
    /// `blk.N.ffn_down.weight`.
    pub w_down: String,
}

impl LayerTensorNames {
    /// The names of layer `i`.
    pub fn new(i: usize) -> Self {
        let n = |s: &str| format!("blk.{i}.{s}");
        LayerTensorNames {
            attn_norm: n("attn_norm.weight"),
            wq: n("attn_q.weight"),
            wk: n("attn_k.weight"),
            wv: n("attn_v.weight"),
            bq: n("attn_q.bias"),
            bk: n("attn_k.bias"),
            bv: n("attn_v.bias"),
            wo: n("attn_output.weight"),
            ffn_norm: n("ffn_norm.weight"),
            w_gate: n("ffn_gate.weight"),
            w_up: n("ffn_up.weight"),
            w_down: n("ffn_down.weight"),
        }
    }
}

/// The token embedding table.
pub const TOKEN_EMBD: &str = "token_embd.weight";
/// The final norm.
pub const OUTPUT_NORM: &str = "output_norm.weight";
/// The output projection (absent with tied embeddings).
pub const OUTPUT: &str = "output.weight";
/// Llama 3's RoPE frequency factors.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

/// Architecture and hyper-parameters of a model (see the [module documentation](self) for
/// where each comes from).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// The architecture (`general.architecture`).
    pub arch: Architecture,
    /// Transformer layers.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Width of the feed-forward hidden layer.
    pub n_ff: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Dimensions per head (queries, keys and values).
    pub head_dim: usize,
    /// Vocabulary size: rows of `token_embd.weight` (and of the output projection).
    pub n_vocab: usize,
    /// The context length the model was trained with (`{arch}.context_length`).
    pub n_ctx_train: usize,
    /// RoPE frequency base.
    pub rope_freq_base: f32,
    /// RoPE linear position scale (`1 / factor` with linear scaling, else 1).
    pub rope_freq_scale: f32,
    /// Rotated dimensions per head.
    pub n_rot: usize,
    /// RoPE pairing layout (from the architecture).
    pub rope_mode: RopeMode,
    /// Whether `rope_freqs.weight` (Llama 3 frequency factors) is present.
    pub has_rope_freqs: bool,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Whether the output projection reuses `token_embd.weight` (no `output.weight`).
    pub tied_output: bool,
    /// Whether the Q, K and V projections have biases (always for qwen2; for llama when the
    /// file has them).
    pub qkv_bias: bool,
}

impl ModelConfig {
    /// Reads the configuration from `file`'s metadata and checks every tensor the forward
    /// pass needs (presence, dimensions, type); see the [module documentation](self).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let meta = file.metadata();
        let arch = Architecture::from_name(file.architecture()?)?;
        let key = |k: &str| format!("{}.{k}", arch.name());
        let required = |k: &str| -> Result<usize> {
            let v = meta.get_usize(&key(k))?;
            if v == 0 {
                return Err(ModelError::InvalidConfig(format!("{} is 0", key(k))));
            }
            Ok(v)
        };

        if let Some(n) = meta.get_usize(&key("expert_count")).optional()? {
            if n > 0 {
                return Err(ModelError::UnsupportedFeature(format!(
                    "{} = {n}: mixture-of-experts models are not implemented",
                    key("expert_count")
                )));
            }
        }

        let n_layers = required("block_count")?;
        let n_embd = required("embedding_length")?;
        let n_ff = required("feed_forward_length")?;
        let n_heads = required("attention.head_count")?;
        let n_kv_heads = match meta.get_usize(&key("attention.head_count_kv")).optional()? {
            None => n_heads,
            Some(0) => {
                return Err(ModelError::InvalidConfig(format!(
                    "{} is 0",
                    key("attention.head_count_kv")
                )))
            }
            Some(n) => n,
        };
        if n_heads % n_kv_heads != 0 {
            return Err(ModelError::InvalidConfig(format!(
                "{} = {n_heads} is not a multiple of {} = {n_kv_heads} (grouped-query \
                 attention needs whole groups)",
                key("attention.head_count"),
                key("attention.head_count_kv")
            )));
        }
        let head_dim = head_dim(meta, &key, n_embd, n_heads)?;
        let n_rot = match meta.get_usize(&key("rope.dimension_count")).optional()? {
            None => head_dim,
            Some(n) => n,
        };
        if n_rot == 0 || n_rot % 2 != 0 || n_rot > head_dim {
            return Err(ModelError::InvalidConfig(format!(
                "{} = {n_rot} must be even, positive and at most the head dimension {head_dim}",
                key("rope.dimension_count")
            )));
        }
        let rope_freq_base = meta
            .get_f32(&key("rope.freq_base"))
            .optional()?
            .unwrap_or(10000.0);
        if !(rope_freq_base.is_finite() && rope_freq_base > 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "{} = {rope_freq_base} must be finite and positive",
                key("rope.freq_base")
            )));
        }
        let rope_freq_scale = rope_freq_scale(meta, &key)?;
        let rms_eps = meta.get_f32(&key("attention.layer_norm_rms_epsilon"))?;
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "{} = {rms_eps} must be finite and not negative",
                key("attention.layer_norm_rms_epsilon")
            )));
        }
        let n_ctx_train = required("context_length")?;

        let embd = tensor_info(file, TOKEN_EMBD, arch)?;
        let n_vocab = match embd.dims() {
            [cols, rows] if *cols == n_embd => *rows,
            dims => {
                return Err(ModelError::InvalidConfig(format!(
                    "tensor '{TOKEN_EMBD}' has dims {dims:?}, expected [{n_embd}, n_vocab] \
                     ({} = {n_embd})",
                    key("embedding_length")
                )))
            }
        };

        let layer0 = LayerTensorNames::new(0);
        let qkv_bias = arch.requires_qkv_bias() || file.contains_tensor(&layer0.bq);
        let config = ModelConfig {
            arch,
            n_layers,
            n_embd,
            n_ff,
            n_heads,
            n_kv_heads,
            head_dim,
            n_vocab,
            n_ctx_train,
            rope_freq_base,
            rope_freq_scale,
            n_rot,
            rope_mode: arch.rope_mode(),
            has_rope_freqs: file.contains_tensor(ROPE_FREQS),
            rms_eps,
            tied_output: !file.contains_tensor(OUTPUT),
            qkv_bias,
        };
        config.check_tensors(file)?;
        Ok(config)
    }

    /// Width of all query heads together (`n_heads · head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of all key (or value) heads together (`n_kv_heads · head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Every tensor the forward pass reads, with its role (and so its expected shape), in
    /// the order the model loads them.
    pub fn tensor_specs(&self) -> Vec<TensorSpec> {
        let spec = |name: &str, role| TensorSpec {
            name: name.to_string(),
            role,
        };
        let matrix = |rows, cols| TensorRole::Matrix { rows, cols };
        let vector = |len| TensorRole::Vector { len };
        let (d, q, kv, ff) = (self.n_embd, self.q_dim(), self.kv_dim(), self.n_ff);

        let mut specs = vec![spec(TOKEN_EMBD, matrix(self.n_vocab, d))];
        if self.has_rope_freqs {
            specs.push(spec(ROPE_FREQS, vector(self.n_rot / 2)));
        }
        for i in 0..self.n_layers {
            let n = LayerTensorNames::new(i);
            specs.push(spec(&n.attn_norm, vector(d)));
            specs.push(spec(&n.wq, matrix(q, d)));
            specs.push(spec(&n.wk, matrix(kv, d)));
            specs.push(spec(&n.wv, matrix(kv, d)));
            if self.qkv_bias {
                specs.push(spec(&n.bq, vector(q)));
                specs.push(spec(&n.bk, vector(kv)));
                specs.push(spec(&n.bv, vector(kv)));
            }
            specs.push(spec(&n.wo, matrix(d, q)));
            specs.push(spec(&n.ffn_norm, vector(d)));
            specs.push(spec(&n.w_gate, matrix(ff, d)));
            specs.push(spec(&n.w_up, matrix(ff, d)));
            specs.push(spec(&n.w_down, matrix(d, ff)));
        }
        specs.push(spec(OUTPUT_NORM, vector(d)));
        if !self.tied_output {
            specs.push(spec(OUTPUT, matrix(self.n_vocab, d)));
        }
        specs
    }

    /// Checks that every tensor of [`tensor_specs`](Self::tensor_specs) is in `file` with
    /// the expected dimensions and a type rocmforge can compute with.
    pub fn check_tensors(&self, file: &GgufFile) -> Result<()> {
        for spec in self.tensor_specs() {
            let info = tensor_info(file, &spec.name, self.arch)?;
            check_tensor(info, &spec)?;
        }
        Ok(())
    }
}

/// The head dimension: `key_length` when given (equal to `value_length`), else
/// `n_embd / n_heads`, which must divide exactly.
fn head_dim(
    meta: &GgufMetadata,
    key: &dyn Fn(&str) -> String,
    n_embd: usize,
    n_heads: usize,
) -> Result<usize> {
    let k_len = meta.get_usize(&key("attention.key_length")).optional()?;
    let v_len = meta.get_usize(&key("attention.value_length")).optional()?;
    let head_dim = match k_len {
        Some(k) => k,
        None => {
            if n_embd % n_heads != 0 {
                return Err(ModelError::InvalidConfig(format!(
                    "{} = {n_embd} is not a multiple of {} = {n_heads}, so the head dimension \
                     n_embd / n_head is not an integer",
                    key("embedding_length"),
                    key("attention.head_count")
                )));
            }
            n_embd / n_heads
        }
    };
    if head_dim == 0 {
        return Err(ModelError::InvalidConfig(format!(
            "{} is 0",
            key("attention.key_length")
        )));
    }
    if let Some(v) = v_len {
        if v != head_dim {
            return Err(ModelError::UnsupportedFeature(format!(
                "value heads of {v} dimensions ({}) differ from key heads of {head_dim}",
                key("attention.value_length")
            )));
        }
    }
    Ok(head_dim)
}

/// `1 / factor` from `rope.scale_linear` or `rope.scaling.factor` (llama.cpp's order), 1
/// without either; YaRN and LongRoPE are rejected.
fn rope_freq_scale(meta: &GgufMetadata, key: &dyn Fn(&str) -> String) -> Result<f32> {
    let ty_key = key("rope.scaling.type");
    if let Some(ty) = meta.get_str(&ty_key).optional()? {
        match ty {
            "none" | "linear" => {}
            other => {
                return Err(ModelError::UnsupportedFeature(format!(
                    "{ty_key} = '{other}': only linear RoPE scaling (and Llama 3 frequency \
                     factors) are implemented"
                )))
            }
        }
    }
    let mut factor = 0.0f32;
    for k in ["rope.scale_linear", "rope.scaling.factor"] {
        if factor == 0.0 {
            if let Some(f) = meta.get_f32(&key(k)).optional()? {
                if !(f.is_finite() && f >= 0.0) {
                    return Err(ModelError::InvalidConfig(format!(
                        "{} = {f} must be finite and not negative",
                        key(k)
                    )));
                }
                factor = f;
            }
        }
    }
    Ok(if factor == 0.0 { 1.0 } else { 1.0 / factor })
}

/// The tensor's info, or [`ModelError::MissingTensor`] naming it.
fn tensor_info<'f>(file: &'f GgufFile, name: &str, arch: Architecture) -> Result<&'f TensorInfo> {
    file.header()
        .tensor_info(name)
        .ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
            arch: arch.name(),
        })
}

/// Checks one tensor's dimensions and type against its spec.
fn check_tensor(info: &TensorInfo, spec: &TensorSpec) -> Result<()> {
    let expected = spec.role.dims();
    if info.dims() != expected.as_slice() {
        return Err(ModelError::TensorShape {
            name: spec.name.clone(),
            expected,
            actual: info.dims().to_vec(),
        });
    }
    let ty = info.ty();
    let ok = match spec.role {
        TensorRole::Matrix { .. } => ty.is_dequantizable(),
        TensorRole::Vector { .. } => matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16),
    };
    if !ok {
        let hint = match spec.role {
            TensorRole::Matrix { .. } => {
                " (weights must be F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 or Q2_K … Q6_K)"
            }
            TensorRole::Vector { .. } => " (norm weights and biases must be F32, F16 or BF16)",
        };
        return Err(ModelError::UnsupportedTensorType {
            name: spec.name.clone(),
            ty,
            backend: "rocmforge",
            hint: hint.to_string(),
        });
    }
    Ok(())
}
