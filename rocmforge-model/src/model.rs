//! [`Model`]: the weights of a llama-family model on a [`Backend`], and its forward pass.
//!
//! The forward pass is written once, top to bottom, against the [`Backend`] trait (the
//! order of llama.cpp's `llm_build_llama` / `llm_build_qwen2`):
//!
//! ```text
//! x = token_embd[ids]
//! for each layer:
//!     h  = rms_norm(x) · attn_norm
//!     q  = Wq·h (+ bq),  k = Wk·h (+ bk),  v = Wv·h (+ bv)
//!     q, k = rope(q), rope(k)                       (llama: adjacent pairs, qwen2: NeoX)
//!     cache[layer][pos] = k, v
//!     a  = attention(q, cache[layer])               (causal, grouped-query, 1/sqrt(head_dim))
//!     x  = x + Wo·a
//!     h  = rms_norm(x) · ffn_norm
//!     x  = x + W_down·(silu(W_gate·h) · W_up·h)
//! logits = output · (rms_norm(x) · output_norm)     (output = token_embd when tied)
//! ```

use std::sync::Arc;

use rocmforge_kernels::cpu::{AttentionParams, KvCacheShape};

use crate::activations::{Activations, SequenceRows};
use crate::backend::{Backend, KvLayout, KvStore, RopeSpec};
use crate::config::{LayerTensorNames, ModelConfig, OUTPUT, OUTPUT_NORM, ROPE_FREQS, TOKEN_EMBD};
use crate::decode_step::DecodeStep;
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::kv_cache::{KvCache, KvCacheOptions};

/// Which positions of a forward call get logits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token (generation).
    #[default]
    Last,
    /// Every token (scoring a text, checking against a reference).
    All,
    /// None (filling the cache only).
    None,
}

/// Options of [`Model::load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelOptions {
    /// Most tokens [`Model::forward`] processes in one pass; longer inputs are split into
    /// chunks of this size (bounding the activation memory of a long prompt). Default 512.
    pub max_batch: usize,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { max_batch: 512 }
    }
}

/// How far loading has come, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadProgress {
    /// Tensors loaded so far.
    pub tensors_done: usize,
    /// Tensors to load.
    pub tensors_total: usize,
    /// Bytes of tensor data loaded so far.
    pub bytes_done: usize,
    /// Bytes of tensor data to load.
    pub bytes_total: usize,
}

/// The weights of one transformer layer.
pub struct LayerWeights<B: Backend> {
    /// RMSNorm weight before attention.
    pub attn_norm: B::Vector,
    /// Query projection (`q_dim × n_embd`).
    pub wq: B::Matrix,
    /// Key projection (`kv_dim × n_embd`).
    pub wk: B::Matrix,
    /// Value projection (`kv_dim × n_embd`).
    pub wv: B::Matrix,
    /// Query bias (qwen2).
    pub bq: Option<B::Vector>,
    /// Key bias (qwen2).
    pub bk: Option<B::Vector>,
    /// Value bias (qwen2).
    pub bv: Option<B::Vector>,
    /// Attention output projection (`n_embd × q_dim`).
    pub wo: B::Matrix,
    /// RMSNorm weight before the feed-forward network.
    pub ffn_norm: B::Vector,
    /// FFN gate projection (`n_ff × n_embd`).
    pub w_gate: B::Matrix,
    /// FFN up projection (`n_ff × n_embd`).
    pub w_up: B::Matrix,
    /// FFN down projection (`n_embd × n_ff`).
    pub w_down: B::Matrix,
}

/// One sequence of a batched forward call ([`Model::forward_batch`]).
pub struct BatchSequence<'a, B: Backend> {
    /// The sequence's cache; the tokens go at the positions after its [`KvCache::len`].
    pub cache: &'a mut KvCache<B>,
    /// The new tokens (at least one).
    pub tokens: &'a [u32],
    /// Which of them get logits.
    pub logits: Logits,
}

/// A loaded model: configuration, weights on a backend, and the forward pass.
///
/// The model holds no per-sequence state: any number of [`KvCache`]s (one per sequence)
/// can run against one loaded model, sharing its weights.
pub struct Model<B: Backend> {
    backend: B,
    /// Identifies this model to the decode steps recorded with its weights.
    identity: Arc<()>,
    config: ModelConfig,
    file: Arc<GgufFile>,
    options: ModelOptions,
    token_embd: B::Matrix,
    rope_freqs: Option<B::Vector>,
    layers: Vec<LayerWeights<B>>,
    output_norm: B::Vector,
    /// `None` with tied embeddings (the output projection is `token_embd`).
    output: Option<B::Matrix>,
}

impl<B: Backend> std::fmt::Debug for Model<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("backend", &self.backend.name())
            .field("config", &self.config)
            .field("options", &self.options)
            .finish()
    }
}

/// Loads tensors through the backend, counting progress.
struct Loader<'a, B: Backend> {
    backend: &'a B,
    file: &'a Arc<GgufFile>,
    config: &'a ModelConfig,
    progress: LoadProgress,
    report: &'a mut dyn FnMut(LoadProgress),
}

impl<B: Backend> Loader<'_, B> {
    fn advance(&mut self, name: &str) {
        self.progress.tensors_done += 1;
        if let Some(info) = self.file.header().tensor_info(name) {
            self.progress.bytes_done += info.n_bytes();
        }
        (self.report)(self.progress);
    }

    fn missing(&self, name: &str) -> ModelError {
        ModelError::MissingTensor {
            name: name.to_string(),
            arch: self.config.arch.name(),
        }
    }

    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<B::Matrix> {
        if !self.file.contains_tensor(name) {
            return Err(self.missing(name));
        }
        let m = self.backend.load_matrix(self.file, name, rows, cols)?;
        self.advance(name);
        Ok(m)
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<B::Vector> {
        let t = self
            .file
            .get_tensor(name)
            .ok_or_else(|| self.missing(name))?;
        let values = rocmforge_kernels::quant::dequantize(t.ty(), t.data(), len)?;
        let v = self.backend.load_vector(&values)?;
        self.advance(name);
        Ok(v)
    }
}

impl<B: Backend> Model<B> {
    /// Loads the model in `file` onto `backend` with default options: reads and checks the
    /// configuration ([`ModelConfig::from_gguf`]), then loads every weight.
    pub fn load(file: impl Into<Arc<GgufFile>>, backend: B) -> Result<Self> {
        Self::load_with(file, backend, ModelOptions::default(), &mut |_| {})
    }

    /// [`load`](Self::load) with options and a progress callback (called after each
    /// tensor).
    pub fn load_with(
        file: impl Into<Arc<GgufFile>>,
        backend: B,
        options: ModelOptions,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Self> {
        let file = file.into();
        let config = ModelConfig::from_gguf(&file)?;
        if options.max_batch == 0 {
            return Err(ModelError::InvalidConfig(
                "max_batch must be at least 1".to_string(),
            ));
        }
        let specs = config.tensor_specs();
        let bytes_total = specs
            .iter()
            .filter_map(|s| file.header().tensor_info(&s.name))
            .map(|i| i.n_bytes())
            .sum();
        let mut loader = Loader {
            backend: &backend,
            file: &file,
            config: &config,
            progress: LoadProgress {
                tensors_done: 0,
                tensors_total: specs.len(),
                bytes_done: 0,
                bytes_total,
            },
            report: progress,
        };

        let c = &config;
        let (d, q, kv, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let token_embd = loader.matrix(TOKEN_EMBD, c.n_vocab, d)?;
        let rope_freqs = match c.has_rope_freqs {
            true => Some(loader.vector(ROPE_FREQS, c.n_rot / 2)?),
            false => None,
        };
        let mut layers = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let n = LayerTensorNames::new(i);
            let attn_norm = loader.vector(&n.attn_norm, d)?;
            let wq = loader.matrix(&n.wq, q, d)?;
            let wk = loader.matrix(&n.wk, kv, d)?;
            let wv = loader.matrix(&n.wv, kv, d)?;
            let (bq, bk, bv) = match c.qkv_bias {
                true => (
                    Some(loader.vector(&n.bq, q)?),
                    Some(loader.vector(&n.bk, kv)?),
                    Some(loader.vector(&n.bv, kv)?),
                ),
                false => (None, None, None),
            };
            layers.push(LayerWeights {
                attn_norm,
                wq,
                wk,
                wv,
                bq,
                bk,
                bv,
                wo: loader.matrix(&n.wo, d, q)?,
                ffn_norm: loader.vector(&n.ffn_norm, d)?,
                w_gate: loader.matrix(&n.w_gate, ff, d)?,
                w_up: loader.matrix(&n.w_up, ff, d)?,
                w_down: loader.matrix(&n.w_down, d, ff)?,
            });
        }
        let output_norm = loader.vector(OUTPUT_NORM, d)?;
        let output = match c.tied_output {
            true => None,
            false => Some(loader.matrix(OUTPUT, c.n_vocab, d)?),
        };
        Ok(Model {
            backend,
            identity: Arc::new(()),
            config,
            file,
            options,
            token_embd,
            rope_freqs,
            layers,
            output_norm,
            output,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The GGUF file the model was loaded from.
    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// The options it was loaded with.
    pub fn options(&self) -> &ModelOptions {
        &self.options
    }

    /// The weights of each layer.
    pub fn layers(&self) -> &[LayerWeights<B>] {
        &self.layers
    }

    /// Vocabulary size (length of a logits row).
    pub fn n_vocab(&self) -> usize {
        self.config.n_vocab
    }

    /// The KV cache layout of a sequence of `options`.
    pub fn kv_layout(&self, options: &KvCacheOptions) -> KvLayout {
        let n_ctx = options
            .n_ctx
            .unwrap_or_else(|| self.config.n_ctx_train.min(KvCacheOptions::DEFAULT_MAX_CTX));
        KvLayout {
            n_layers: self.config.n_layers,
            n_heads: self.config.n_heads,
            shape: KvCacheShape {
                n_ctx,
                n_kv_heads: self.config.n_kv_heads,
                head_dim: self.config.head_dim,
            },
            dtype: options.dtype,
        }
    }

    /// A new, empty KV cache for one sequence.
    pub fn new_cache(&self, options: &KvCacheOptions) -> Result<KvCache<B>> {
        let _turn = self.backend.exclusive_use();
        KvCache::new(&self.backend, self.kv_layout(options))
    }

    /// Runs `tokens` through the model, appending them to `cache`, and returns the logits
    /// `logits` asks for, row-major `[n, n_vocab]` (`n` = 1 for [`Logits::Last`],
    /// `tokens.len()` for [`Logits::All`], 0 for [`Logits::None`]).
    ///
    /// Inputs longer than [`ModelOptions::max_batch`] run in chunks. Errors before
    /// computing anything if `tokens` is empty, an id is outside the vocabulary, or the
    /// tokens do not fit the cache ([`ModelError::ContextOverflow`]).
    pub fn forward(
        &self,
        cache: &mut KvCache<B>,
        tokens: &[u32],
        logits: Logits,
    ) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput("forward: no tokens to process"));
        }
        if let ([id], Logits::Last) = (tokens, logits) {
            return self.decode_step(cache, *id);
        }
        self.check_tokens(tokens)?;
        cache.check_fits(tokens.len())?;
        let n_chunks = tokens.len().div_ceil(self.options.max_batch);
        let mut out = Vec::new();
        for (i, chunk) in tokens.chunks(self.options.max_batch).enumerate() {
            let mode = match logits {
                Logits::All => Logits::All,
                Logits::Last if i + 1 == n_chunks => Logits::Last,
                _ => Logits::None,
            };
            let mut seq = [BatchSequence {
                cache: &mut *cache,
                tokens: chunk,
                logits: mode,
            }];
            if let Some(mut logits) = self.forward_batch(&mut seq)?.pop() {
                out.append(&mut logits);
            }
        }
        Ok(out)
    }

    /// One forward pass over several sequences at once: the tokens of every sequence are
    /// processed together (each at the positions of its own cache), and each sequence
    /// gets its logits, `[n_s, n_vocab]` as [`forward`](Self::forward) returns them.
    ///
    /// The result for each sequence equals what [`forward`](Self::forward) gives for it
    /// alone (bit for bit on the CPU backend). No chunking: the caller bounds the total
    /// number of tokens. Errors before computing anything if a sequence has no tokens, an
    /// id is out of range, a cache belongs to another layout, or a sequence does not fit
    /// its cache.
    pub fn forward_batch(&self, seqs: &mut [BatchSequence<'_, B>]) -> Result<Vec<Vec<f32>>> {
        let c = &self.config;
        let b = &self.backend;
        let _turn = b.exclusive_use();

        // The batch: each sequence's tokens are consecutive rows, at the positions that
        // follow what its cache holds.
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        let mut spans = Vec::with_capacity(seqs.len());
        for s in seqs.iter() {
            if s.tokens.is_empty() {
                return Err(ModelError::EmptyInput("forward: a sequence has no tokens"));
            }
            self.check_tokens(s.tokens)?;
            self.check_cache(s.cache)?;
            s.cache.check_fits(s.tokens.len())?;
            let start = ids.len();
            ids.extend_from_slice(s.tokens);
            positions.extend((s.cache.len..s.cache.len + s.tokens.len()).map(|p| p as i32));
            spans.push(start..ids.len());
        }
        let n = ids.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let tokens = b.upload_tokens(&ids, &positions)?;

        // The rows that get logits.
        let mut out_rows = Vec::new();
        let mut out_counts = Vec::with_capacity(seqs.len());
        for (s, rows) in seqs.iter().zip(&spans) {
            let before = out_rows.len();
            match s.logits {
                Logits::Last => out_rows.push(rows.end - 1),
                Logits::All => out_rows.extend(rows.clone()),
                Logits::None => {}
            }
            out_counts.push(out_rows.len() - before);
        }

        let mut acts = Activations::new(b, c, n, out_rows.len())?;
        let mut caches: Vec<SequenceRows<'_, B>> = seqs
            .iter_mut()
            .zip(&spans)
            .map(|(s, rows)| SequenceRows {
                storage: &mut s.cache.storage,
                shape: s.cache.layout.shape,
                pos0: s.cache.len,
                rows: rows.clone(),
            })
            .collect();
        self.run(&mut acts, &tokens, &mut caches, &out_rows)?;
        drop(caches);
        for (s, rows) in seqs.iter_mut().zip(&spans) {
            s.cache.len += rows.len();
        }

        let mut result: Vec<Vec<f32>> = Vec::with_capacity(seqs.len());
        let Some(logits) = &acts.logits else {
            result.resize_with(seqs.len(), Vec::new);
            return Ok(result);
        };
        let mut host = vec![0.0f32; out_rows.len() * c.n_vocab];
        b.download(logits, &mut host)?;
        let mut rest = host.as_slice();
        for count in out_counts {
            let (mine, tail) = rest.split_at(count * c.n_vocab);
            result.push(mine.to_vec());
            rest = tail;
        }
        Ok(result)
    }

    /// One decode step of one sequence: `id` at the next position of `cache`, the logits
    /// of it returned. The activations, the token buffer and the backend's recording of
    /// the step live with the cache ([`DecodeStep`]), so that every step after the first
    /// replays the recording (one HIP graph launch) instead of enqueueing each operation.
    fn decode_step(&self, cache: &mut KvCache<B>, id: u32) -> Result<Vec<f32>> {
        let b = &self.backend;
        let _turn = b.exclusive_use();
        self.check_tokens(&[id])?;
        self.check_cache(cache)?;
        cache.check_fits(1)?;
        let pos0 = cache.len;
        let position = [pos0 as i32];
        let KvCache {
            storage,
            layout,
            len,
            decode,
        } = cache;
        if decode
            .as_ref()
            .is_some_and(|d| !Arc::ptr_eq(&d.model, &self.identity))
        {
            // Made for another model (whose weights the recording would read): start over.
            *decode = None;
        }
        let step_state = match decode {
            Some(d) => {
                b.write_tokens(&mut d.tokens, &[id], &position)?;
                d
            }
            None => decode.insert(Box::new(DecodeStep {
                recording: None,
                model: Arc::clone(&self.identity),
                acts: Activations::new(b, &self.config, 1, 1)?,
                tokens: b.upload_tokens(&[id], &position)?,
            })),
        };
        let DecodeStep {
            recording,
            acts,
            tokens,
            ..
        } = &mut **step_state;
        let shape = layout.shape;
        let mut step = || {
            let mut seq = [SequenceRows {
                storage: &mut *storage,
                shape,
                pos0,
                rows: 0..1,
            }];
            self.run(acts, tokens, &mut seq, &[0])
        };
        // SAFETY: the recording (kept in `DecodeStep::recording`) refers to this model's
        // weights, the step's activations and token buffer, and this cache's storage.
        // The weights live as long as `self`, and a recording made for another model is
        // dropped above (`model` identity) before it could be replayed; the activations
        // and tokens are owned by the same `DecodeStep`, which drops the recording first
        // (field order) and never replaces a buffer while keeping it; the storage is owned
        // by the same cache and never reallocated. The recording never leaves the cache,
        // and this backend is the only one the model's caches are used with
        // (`check_cache` plus the identity check).
        unsafe { b.run_recorded(recording, &mut step)? };
        *len += 1;
        let logits = acts
            .logits
            .as_ref()
            .ok_or(ModelError::EmptyInput("decode step without logits"))?;
        let mut host = vec![0.0f32; self.config.n_vocab];
        b.download(logits, &mut host)?;
        Ok(host)
    }

    /// The forward pass proper: enqueues every operation for the batch in `tokens` (each
    /// sequence's rows and cache in `seqs`), leaving the logits of `out_rows` in
    /// `acts.logits`. Reads no host state but its arguments, so that a backend can record
    /// it ([`Backend::run_recorded`]).
    fn run(
        &self,
        acts: &mut Activations<B>,
        tokens: &B::Tokens,
        seqs: &mut [SequenceRows<'_, B>],
        out_rows: &[usize],
    ) -> Result<()> {
        let c = &self.config;
        let b = &self.backend;
        let n = acts.n_tokens;
        let rope = RopeSpec {
            head_dim: c.head_dim,
            n_rot: c.n_rot,
            mode: c.rope_mode,
            freq_base: c.rope_freq_base,
            freq_scale: c.rope_freq_scale,
        };
        let freq_factors = self.rope_freqs.as_ref();
        let eps = c.rms_eps;
        let Activations {
            x,
            x_next,
            h,
            q,
            k,
            v,
            att,
            gate,
            up,
            ffn,
            ..
        } = acts;

        b.embedding(&self.token_embd, tokens, x)?;

        for (l, w) in self.layers.iter().enumerate() {
            // Attention.
            b.rms_norm_linear_shared(
                x,
                &w.attn_norm,
                eps,
                n,
                h,
                &mut [
                    (&w.wq, w.bq.as_ref(), &mut *q),
                    (&w.wk, w.bk.as_ref(), &mut *k),
                    (&w.wv, w.bv.as_ref(), &mut *v),
                ],
            )?;
            let mut stores: Vec<KvStore<'_, B>> = seqs
                .iter_mut()
                .map(|s| (&mut *s.storage, s.pos0, s.rows.clone()))
                .collect();
            b.rope_and_store(
                q,
                k,
                v,
                tokens,
                c.n_heads,
                c.n_kv_heads,
                &rope,
                freq_factors,
                l,
                &mut stores,
            )?;
            drop(stores);
            for s in seqs.iter_mut() {
                let attn = AttentionParams::new(c.n_heads, s.shape);
                b.attention(s.storage, l, &attn, s.pos0, tokens, q, s.rows.clone(), att)?;
            }
            b.linear_residual(&w.wo, att, n, x, h, x_next)?;
            std::mem::swap(x, x_next);

            // Feed-forward (SwiGLU).
            b.rms_norm_linear_shared(
                x,
                &w.ffn_norm,
                eps,
                n,
                h,
                &mut [(&w.w_gate, None, &mut *gate), (&w.w_up, None, &mut *up)],
            )?;
            b.swiglu_linear_residual(gate, up, ffn, &w.w_down, n, x, h, x_next)?;
            std::mem::swap(x, x_next);
        }
        // An even number of swaps per layer: `x` is again the buffer it was at the start,
        // which a recorded step relies on (the same buffers every time).

        // Logits of the rows asked for: final norm, then the output projection.
        if let (Some(xo), Some(xo_norm), Some(logits)) =
            (&mut acts.xo, &mut acts.xo_norm, &mut acts.logits)
        {
            let n_out = out_rows.len();
            b.gather_rows(&acts.x, c.n_embd, out_rows, xo)?;
            let output = self.output.as_ref().unwrap_or(&self.token_embd);
            // Fused where the backend has it (the GPU: norm + activation quantization).
            b.rms_norm_linear_shared(
                xo,
                &self.output_norm,
                eps,
                n_out,
                xo_norm,
                &mut [(output, None, &mut *logits)],
            )?;
        }
        Ok(())
    }

    /// [`ModelError::InvalidToken`] for the first id outside the vocabulary.
    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        match tokens
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= self.config.n_vocab)
        {
            Some((index, &id)) => Err(ModelError::InvalidToken {
                id,
                index,
                n_vocab: self.config.n_vocab,
            }),
            None => Ok(()),
        }
    }

    /// [`ModelError::CacheMismatch`] unless `cache` has this model's layers and heads.
    fn check_cache(&self, cache: &KvCache<B>) -> Result<()> {
        let l = &cache.layout;
        if l.n_layers != self.config.n_layers
            || l.shape.n_kv_heads != self.config.n_kv_heads
            || l.shape.head_dim != self.config.head_dim
        {
            return Err(ModelError::CacheMismatch(format!(
                "a cache of {} layers × {} KV heads × {} dims, the model has {} × {} × {}",
                l.n_layers,
                l.shape.n_kv_heads,
                l.shape.head_dim,
                self.config.n_layers,
                self.config.n_kv_heads,
                self.config.head_dim
            )));
        }
        Ok(())
    }
}
