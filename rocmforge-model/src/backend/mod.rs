//! The [`Backend`] trait: the operations the forward pass is written against, and where
//! its buffers live.
//!
//! The forward pass ([`Model::forward`](crate::model::Model::forward)) is one piece of code
//! for every device. A backend supplies four kinds of memory and a dozen operations:
//!
//! | associated type | CPU ([`cpu::CpuBackend`]) | HIP ([`hip::HipBackend`]) |
//! |---|---|---|
//! | [`Backend::Tensor`]: `f32` activations, row-major `[rows, width]` | `Vec<f32>` | `DeviceBuffer<f32>` on the backend's stream |
//! | [`Backend::Matrix`]: a weight matrix in its ggml type | bytes borrowed from the memory-mapped GGUF | `DeviceBuffer<u8>` + type and shape ([`GpuWeights`]) |
//! | [`Backend::Vector`]: `f32` vectors (norms, biases, RoPE factors) | `Vec<f32>` | `DeviceBuffer<f32>` |
//! | [`Backend::KvStorage`]: one sequence's K and V caches, every layer | `Vec`s of `f32`/`f16` | one `DeviceBuffer<T>`, sliced per layer |
//! | [`Backend::Tokens`]: the ids and positions of one forward call | `Vec<u32>`, `Vec<i32>` | uploaded once per call (`get_rows` and RoPE read them on the device) |
//!
//! Each operation maps onto one CPU reference function of [`rocmforge_kernels::cpu`] and
//! one GPU launcher of [`rocmforge_kernels::gpu`], with the same shapes:
//!
//! | operation | CPU | GPU |
//! |---|---|---|
//! | [`embedding`](Backend::embedding) | `cpu::embedding` | `QuantOps::get_rows` |
//! | [`rms_norm`](Backend::rms_norm) | `cpu::rms_norm` | `NormOps::rms_norm` |
//! | [`linear`](Backend::linear), [`linear_shared`](Backend::linear_shared) | `cpu::matvec` / `cpu::matmul` (+ bias), or llama.cpp's arithmetic (`ggml_compat`) | `QuantOps::matmul`, or for up to 8 tokens `QuantOps::quantize_activations` + `QuantOps::matvec_q8` (+ `ElementwiseOps::add_bias_rows`) |
//! | [`rope`](Backend::rope) | `cpu::rope_inplace` | `RopeOps::rope_inplace` |
//! | [`kv_write`](Backend::kv_write) | `cpu::kv_cache_write` | `AttentionOps::kv_cache_write` |
//! | [`attention`](Backend::attention) | `cpu::attention` | `AttentionOps::attention` |
//! | [`swiglu`](Backend::swiglu), [`add`](Backend::add) | `cpu::swiglu`, `cpu::add` | `ElementwiseOps::swiglu`, `ElementwiseOps::add` |
//! | [`gather_rows`](Backend::gather_rows) | row copies | device-to-device copies on the stream (`copy_from_device`) |
//! | fused: [`rms_norm_linear_shared`](Backend::rms_norm_linear_shared), [`linear_residual`](Backend::linear_residual), [`swiglu_linear_residual`](Backend::swiglu_linear_residual) | the operations they are made of (defaults) | fewer kernels where the HIP backend has fused ones |
//! | [`run_recorded`](Backend::run_recorded) | runs the step | records the step as a graph once, then replays it |
//! | [`download`](Backend::download) | copy | `copy_to_host`: a blocking read that synchronizes only the backend's stream |
//!
//! All operations are **out of place** (distinct input and output tensors), because the
//! GPU launchers take a `DeviceSlice` and a `DeviceSliceMut`, which cannot alias; only RoPE
//! works in place, as its launcher does. A HIP backend enqueues every operation on its
//! stream and returns at once; nothing waits until [`download`](Backend::download).
//!
//! # Batches
//!
//! Every call processes a batch of `n_tokens` tokens at once (`[n_tokens, width]`
//! tensors): prefill is one call with the prompt (in chunks), decode a call with one
//! token. Logits are computed for the rows the forward pass gathers — the last token of
//! each sequence, or every token.
//!
//! # Several sequences in one call
//!
//! [`kv_write`](Backend::kv_write) and [`attention`](Backend::attention) take a range of
//! rows of the batch and one sequence's [`KvStorage`](Backend::KvStorage). That is all
//! batching different sequences needs: the forward pass concatenates the tokens of every
//! sequence (each with the positions of its own cache), runs the per-token operations
//! (embedding, norms, projections, RoPE, FFN) over all rows at once — where the weights
//! are read once for the whole batch — and calls `kv_write`/`attention` once per sequence
//! on its rows. [`Model::forward_batch`](crate::model::Model::forward_batch) does exactly
//! that today. A GPU backend may later replace the per-sequence attention calls by one
//! variable-length launch; the trait would then gain a method taking every sequence's
//! cache and row range, with this loop as its default.
//!
//! [`GpuWeights`]: rocmforge_kernels::gpu::GpuWeights

pub mod cpu;
pub mod ggml_compat;
pub mod hip;
mod unoptimized_build;

use std::any::Any;
use std::ops::Range;
use std::sync::Arc;

pub use rocmforge_kernels::cpu::{AttentionParams, KvCacheShape, RopeMode};

use crate::error::Result;
use crate::gguf::GgufFile;

/// Element type of a KV cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KvDtype {
    /// 32-bit floats (exact; the default).
    #[default]
    F32,
    /// 16-bit IEEE half floats (half the memory; values rounded to nearest even).
    F16,
}

impl KvDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            KvDtype::F32 => 4,
            KvDtype::F16 => 2,
        }
    }

    /// `"f32"` or `"f16"`.
    pub fn name(self) -> &'static str {
        match self {
            KvDtype::F32 => "f32",
            KvDtype::F16 => "f16",
        }
    }
}

/// The layout of one sequence's KV cache: `n_layers` pairs of K and V tensors, each
/// `[n_ctx, n_kv_heads, head_dim]` (position-major) of `dtype`, serving `n_heads` query
/// heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KvLayout {
    /// Layers.
    pub n_layers: usize,
    /// Query heads attending to it (a backend may size attention scratch by it).
    pub n_heads: usize,
    /// Shape of each K (and V) tensor.
    pub shape: KvCacheShape,
    /// Element type.
    pub dtype: KvDtype,
}

impl KvLayout {
    /// Bytes of the whole cache (K and V of every layer), or `None` on overflow.
    pub fn bytes(&self) -> Option<usize> {
        let per_tensor = self.shape.elements().ok()?;
        per_tensor
            .checked_mul(2)?
            .checked_mul(self.n_layers)?
            .checked_mul(self.dtype.size())
    }
}

/// RoPE parameters shared by the Q and K rotations of a model (the head count is given per
/// call). Maps onto [`rocmforge_kernels::cpu::RopeParams`] and
/// [`rocmforge_kernels::gpu::RopeConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeSpec {
    /// Dimensions per head.
    pub head_dim: usize,
    /// Rotated dimensions per head.
    pub n_rot: usize,
    /// Pairing layout.
    pub mode: RopeMode,
    /// Frequency base.
    pub freq_base: f32,
    /// Linear position scale.
    pub freq_scale: f32,
}

/// The element range of rows `rows` of a tensor of rows of `row_len` elements, checked
/// against the tensor's length `len` (an error naming `what`, never an overflow).
pub(crate) fn row_range(
    rows: &Range<usize>,
    row_len: usize,
    len: usize,
    what: &str,
) -> Result<Range<usize>> {
    match (
        rows.start.checked_mul(row_len),
        rows.end.checked_mul(row_len),
    ) {
        (Some(s), Some(e)) if s <= e && e <= len => Ok(s..e),
        _ => Err(crate::error::ModelError::Compute(
            rocmforge_kernels::Error::Shape {
                op: "row range",
                message: format!(
                    "rows {rows:?} of {row_len} elements do not fit the {what} of {len} elements"
                ),
            },
        )),
    }
}

/// One projection of [`Backend::linear_shared`]: weights, optional bias, output.
pub type LinearOutput<'a, B> = (
    &'a <B as Backend>::Matrix,
    Option<&'a <B as Backend>::Vector>,
    &'a mut <B as Backend>::Tensor,
);

/// One sequence's share of [`Backend::rope_and_store`]: its cache, the position of its first
/// new token, its rows of the batch.
pub type KvStore<'a, B> = (&'a mut <B as Backend>::KvStorage, usize, Range<usize>);

/// A backend's recording of a step ([`Backend::run_recorded`]): on the HIP backend an
/// executable graph. Opaque to the model, which only keeps it with the buffers it uses.
pub type Recording = Box<dyn Any + Send>;

/// The device a forward pass runs on: its memory and its operations. See the
/// [module documentation](self) for the design and how each operation maps onto the CPU
/// reference and the GPU launchers.
///
/// Sizes: every tensor is allocated by [`alloc`](Backend::alloc) with exactly the length an
/// operation needs, and operations check lengths (an error, never a panic, on mismatch).
pub trait Backend {
    /// `f32` activations: a flat buffer, row-major `[rows, width]`.
    type Tensor;
    /// A `rows × cols` weight matrix in a ggml type.
    type Matrix;
    /// An `f32` vector (norm weights, biases, RoPE frequency factors).
    type Vector;
    /// One sequence's KV cache: K and V for every layer ([`KvLayout`]).
    type KvStorage;
    /// The token ids and positions of one forward call.
    type Tokens;

    /// A short name for messages and reports (`"cpu"`, `"hip"`).
    fn name(&self) -> &'static str;

    /// Makes the weight matrix `name` of `file` (`rows × cols`, ggml dims `[cols, rows]`,
    /// already checked by [`ModelConfig`](crate::config::ModelConfig)) usable by the
    /// operations: borrowed in place (CPU) or uploaded (GPU). Errors with
    /// [`ModelError::UnsupportedTensorType`](crate::ModelError::UnsupportedTensorType) when
    /// the backend cannot compute with its type.
    fn load_matrix(
        &self,
        file: &Arc<GgufFile>,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Self::Matrix>;

    /// Makes an `f32` vector usable by the operations.
    fn load_vector(&self, values: &[f32]) -> Result<Self::Vector>;

    /// A tensor of `len` elements (contents unspecified until written).
    fn alloc(&self, len: usize) -> Result<Self::Tensor>;

    /// The storage of one sequence's KV cache (errors, rather than aborting, when the
    /// memory is not available).
    fn alloc_kv(&self, layout: &KvLayout) -> Result<Self::KvStorage>;

    /// The ids and positions of a batch (`ids.len() == positions.len()`).
    fn upload_tokens(&self, ids: &[u32], positions: &[i32]) -> Result<Self::Tokens>;

    /// Copies a whole tensor to host memory (`out.len()` = its length). On a GPU this waits
    /// for the backend's stream only.
    fn download(&self, x: &Self::Tensor, out: &mut [f32]) -> Result<()>;

    /// `out[i] = table[ids[i]]` (`out`: `[n_tokens, table.cols]`).
    fn embedding(
        &self,
        table: &Self::Matrix,
        tokens: &Self::Tokens,
        out: &mut Self::Tensor,
    ) -> Result<()>;

    /// RMSNorm of each of `rows` rows of `x` (`[rows, weight.len]`), times `weight`.
    fn rms_norm(
        &self,
        x: &Self::Tensor,
        weight: &Self::Vector,
        eps: f32,
        rows: usize,
        out: &mut Self::Tensor,
    ) -> Result<()>;

    /// `out[t] = W · x[t] (+ bias)` for `n_tokens` rows (`x`: `[n_tokens, cols]`,
    /// `out`: `[n_tokens, rows]`).
    fn linear(
        &self,
        w: &Self::Matrix,
        bias: Option<&Self::Vector>,
        x: &Self::Tensor,
        n_tokens: usize,
        out: &mut Self::Tensor,
    ) -> Result<()>;

    /// Several projections of the same input: for each `(w, bias, out)` of `outs`,
    /// `out[t] = w · x[t] (+ bias)`, as [`linear`](Self::linear) computes it. A backend may
    /// prepare `x` once for all of them (the HIP backend quantizes it to 8 bits once for
    /// the Q/K/V or gate/up projections of a decode step). The default calls `linear`.
    fn linear_shared(
        &self,
        x: &Self::Tensor,
        n_tokens: usize,
        outs: &mut [LinearOutput<'_, Self>],
    ) -> Result<()> {
        for (w, bias, out) in outs.iter_mut() {
            self.linear(w, *bias, x, n_tokens, out)?;
        }
        Ok(())
    }

    /// Rotates `x` (`[n_tokens, n_heads, head_dim]`) in place, token `t` at the position
    /// `tokens` gives it, with optional frequency factors (`n_rot / 2` of them).
    fn rope(
        &self,
        x: &mut Self::Tensor,
        tokens: &Self::Tokens,
        n_heads: usize,
        spec: &RopeSpec,
        freq_factors: Option<&Self::Vector>,
    ) -> Result<()>;

    /// Writes rows `rows` of `k` and `v` (`[n_tokens, n_kv_heads, head_dim]`) into layer
    /// `layer` of `kv` at positions `pos0 .. pos0 + rows.len()`. `tokens` holds the same
    /// positions on the device (`pos0` at row `rows.start`): a backend that records steps
    /// reads the position from there, so that a recording serves every step.
    #[allow(clippy::too_many_arguments)]
    fn kv_write(
        &self,
        kv: &mut Self::KvStorage,
        layer: usize,
        pos0: usize,
        tokens: &Self::Tokens,
        k: &Self::Tensor,
        v: &Self::Tensor,
        rows: Range<usize>,
    ) -> Result<()>;

    /// Causal attention of the query rows `rows` of `q` (`[n_tokens, n_heads, head_dim]`),
    /// at positions `pos0 ..`, against layer `layer` of `kv` (positions `0 .. pos0 +
    /// rows.len()` written), into the same rows of `out`. `tokens` holds the positions on
    /// the device, as for [`kv_write`](Self::kv_write).
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        kv: &Self::KvStorage,
        layer: usize,
        params: &AttentionParams,
        pos0: usize,
        tokens: &Self::Tokens,
        q: &Self::Tensor,
        rows: Range<usize>,
        out: &mut Self::Tensor,
    ) -> Result<()>;

    /// `out = silu(gate) · up`, element-wise.
    fn swiglu(&self, gate: &Self::Tensor, up: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;

    /// `out = a + b`, element-wise.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;

    /// `out[i] = x[rows[i]]` for rows of `row_len` elements (`out`: `[rows.len(), row_len]`).
    fn gather_rows(
        &self,
        x: &Self::Tensor,
        row_len: usize,
        rows: &[usize],
        out: &mut Self::Tensor,
    ) -> Result<()>;

    // ---- fused operations ---------------------------------------------------------
    // Each has a default made of the operations above, and exists so that a backend can
    // do it in fewer steps (the HIP backend: fewer kernel launches per decode step).

    /// `h = rms_norm(x) · weight`, then the projections `outs` of `h`
    /// ([`linear_shared`](Self::linear_shared)). `h` may be left unwritten by a backend
    /// that feeds the projections directly.
    #[allow(clippy::too_many_arguments)]
    fn rms_norm_linear_shared(
        &self,
        x: &Self::Tensor,
        weight: &Self::Vector,
        eps: f32,
        n_tokens: usize,
        h: &mut Self::Tensor,
        outs: &mut [LinearOutput<'_, Self>],
    ) -> Result<()> {
        self.rms_norm(x, weight, eps, n_tokens, h)?;
        self.linear_shared(h, n_tokens, outs)
    }

    /// RoPE of `q` (`n_heads` per token) and `k` (`n_kv_heads`), in place, then for each
    /// `(cache, pos0, rows)` of `stores` the write of those rows of the rotated `k` and of
    /// `v` into layer `layer` of the cache ([`kv_write`](Self::kv_write)). A backend may
    /// leave `k` unrotated when the cache gets the rotated rows.
    #[allow(clippy::too_many_arguments)]
    fn rope_and_store(
        &self,
        q: &mut Self::Tensor,
        k: &mut Self::Tensor,
        v: &Self::Tensor,
        tokens: &Self::Tokens,
        n_heads: usize,
        n_kv_heads: usize,
        spec: &RopeSpec,
        freq_factors: Option<&Self::Vector>,
        layer: usize,
        stores: &mut [KvStore<'_, Self>],
    ) -> Result<()> {
        self.rope(q, tokens, n_heads, spec, freq_factors)?;
        self.rope(k, tokens, n_kv_heads, spec, freq_factors)?;
        for (cache, pos0, rows) in stores.iter_mut() {
            self.kv_write(cache, layer, *pos0, tokens, k, v, rows.clone())?;
        }
        Ok(())
    }

    /// `out = residual + w · x`, using `scratch` (`[n_tokens, w.rows]`) as needed.
    fn linear_residual(
        &self,
        w: &Self::Matrix,
        x: &Self::Tensor,
        n_tokens: usize,
        residual: &Self::Tensor,
        scratch: &mut Self::Tensor,
        out: &mut Self::Tensor,
    ) -> Result<()> {
        self.linear(w, None, x, n_tokens, scratch)?;
        self.add(residual, scratch, out)
    }

    /// `out = residual + w · (silu(gate) · up)`: the FFN's down projection with its
    /// residual. `ffn` holds `silu(gate) · up` (may be left unwritten), `scratch` the
    /// product before the residual, as needed.
    #[allow(clippy::too_many_arguments)]
    fn swiglu_linear_residual(
        &self,
        gate: &Self::Tensor,
        up: &Self::Tensor,
        ffn: &mut Self::Tensor,
        w: &Self::Matrix,
        n_tokens: usize,
        residual: &Self::Tensor,
        scratch: &mut Self::Tensor,
        out: &mut Self::Tensor,
    ) -> Result<()> {
        self.swiglu(gate, up, ffn)?;
        self.linear_residual(w, ffn, n_tokens, residual, scratch, out)
    }

    /// Overwrites the ids and positions of `tokens` (from [`upload_tokens`](Self::upload_tokens)
    /// with as many ids) in place, where a recorded step reads them. The default makes new
    /// ones.
    fn write_tokens(
        &self,
        tokens: &mut Self::Tokens,
        ids: &[u32],
        positions: &[i32],
    ) -> Result<()> {
        *tokens = self.upload_tokens(ids, positions)?;
        Ok(())
    }

    /// Runs `step`, a function that enqueues the operations of one step (a decode step of
    /// one sequence) on this backend. A backend that can record (HIP: a graph) records what
    /// `step` enqueues the first time — when `recording` is `None` — stores the recording
    /// there, and on later calls replays it instead of calling `step`: one launch instead
    /// of hundreds. So `step` must enqueue the same operations on the same buffers each
    /// time, with everything that changes between calls in device memory (the token ids
    /// and positions, updated with [`write_tokens`](Self::write_tokens)). The default
    /// calls `step` every time and records nothing.
    ///
    /// # Safety
    ///
    /// A recording holds the device addresses of every buffer `step` touched: weights,
    /// activations, token buffers, KV caches. The caller must keep all of them alive and
    /// in place while `recording` holds the recording (drop it first), and pass it to no
    /// other backend.
    unsafe fn run_recorded(
        &self,
        recording: &mut Option<Recording>,
        step: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let _ = recording;
        step()
    }

    /// Held by the model for the length of each forward pass and each new KV cache. A
    /// backend whose sequences share one queue, and which records passes by capturing
    /// that queue (the HIP backend: one stream), returns a lock here, so that passes from
    /// different threads take turns: another thread's work must neither land in a
    /// capture in progress nor be refused by it. `None` (the default) where passes may
    /// overlap, as on the CPU backend.
    fn exclusive_use(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        None
    }
}
