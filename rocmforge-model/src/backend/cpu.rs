//! The CPU backend: the reference ops of [`rocmforge_kernels::cpu`] (multi-threaded with
//! rayon), weights read in place from the memory-mapped GGUF file.
//!
//! * Weight matrices are not copied: a [`CpuMatrix`] keeps the file (an `Arc<GgufFile>`)
//!   and the byte range of its tensor, and each operation views it as a
//!   [`WeightMatrix`] (dequantized row by row inside the matrix products).
//! * Activations, vectors and the KV cache are `Vec`s; the KV cache is `f32` by default or
//!   `f16` ([`KvDtype`]).
//! * Work runs on rayon's global pool, or on a pool of its own
//!   ([`CpuBackend::with_threads`]). Results do not depend on the thread count: every CPU op
//!   is deterministic (see the [`rocmforge_kernels::cpu`] conventions).
//! * Two kinds of arithmetic ([`CpuArithmetic`]): llama.cpp's (the default) or the exact
//!   forward pass of the dequantized weights.

use std::ops::Range;
use std::sync::Arc;

use half::f16;
use rocmforge_kernels::cpu::{
    self, AttentionParams, KvCacheShape, KvElement, RopeParams, WeightMatrix,
};
use rocmforge_kernels::quant::GgmlType;

use super::ggml_compat;
use super::{row_range, Backend, KvDtype, KvLayout, RopeSpec};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// How the CPU backend rounds: like llama.cpp, or exactly.
///
/// The two modes compute the same forward pass; they differ in the last bits of every
/// operation, which on a quantized model adds up to differences of a few hundredths in the
/// next-token probabilities (and different greedy tokens where two candidates are close).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CpuArithmetic {
    /// llama.cpp's CPU arithmetic, bit for bit (its x86 AVX2 build, commit 0c1e57098):
    /// activations quantized to 8 bits before every Q4_1 / Q5_1 / Q8_0 matrix product
    /// with integer block dot products, attention as its flash-attention kernel computes
    /// it on an f16 cache (f16 accumulation), its polynomial `exp` in the SwiGLU, its
    /// fused multiply-adds in RoPE. Use it to get the logits and greedy tokens llama.cpp
    /// gives for the same model and prompt — the same numbers, not approximately the
    /// same: a different rounding anywhere soon changes an 8-bit activation, and the
    /// difference grows through the layers. See [`ggml_compat`] for what is reproduced
    /// and from which llama.cpp source (products with other weight types stay exact). It
    /// is also the faster mode — integer dot products instead of dequantizing every
    /// weight: on the demo model about twice as fast in prefill and 10–20 % faster in
    /// decode than [`Exact`](Self::Exact) — hence the default.
    #[default]
    GgmlCompatible,
    /// The exact forward pass of the dequantized weights: `f64` dot products of `f32`
    /// activations, attention in `f64` over the cache as stored. Agrees with an
    /// independent float64 implementation to about 1e-4, and is the reference for the GPU
    /// backend's kernels; differs from llama.cpp by its roundings.
    Exact,
}

/// The thread count assumed for the llama.cpp run being matched (only its split-KV
/// attention path, one query token against more than 256 cached positions, depends on
/// it): llama-server's default, the number of physical cores, on the 2-core machine the
/// reference data of this repository was made on.
pub const DEFAULT_LLAMA_THREADS: usize = 2;

/// The CPU backend.
#[derive(Debug)]
pub struct CpuBackend {
    pool: Option<rayon::ThreadPool>,
    arithmetic: CpuArithmetic,
    llama_threads: usize,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// A backend on rayon's global thread pool (one thread per core unless
    /// `RAYON_NUM_THREADS` says otherwise), with llama.cpp's arithmetic
    /// ([`CpuArithmetic::GgmlCompatible`], the default: it reproduces llama.cpp's results
    /// and is faster than [`CpuArithmetic::Exact`]).
    pub fn new() -> Self {
        super::unoptimized_build::warn_once_if_unoptimized();
        CpuBackend {
            pool: None,
            arithmetic: CpuArithmetic::default(),
            llama_threads: DEFAULT_LLAMA_THREADS,
        }
    }

    /// The same backend computing with `arithmetic`.
    pub fn with_arithmetic(self, arithmetic: CpuArithmetic) -> Self {
        CpuBackend { arithmetic, ..self }
    }

    /// The same backend matching a llama.cpp run with `threads` threads (at least 1;
    /// default [`DEFAULT_LLAMA_THREADS`]); only [`CpuArithmetic::GgmlCompatible`]'s
    /// attention of a single token against more than 256 cached positions depends on it.
    pub fn with_llama_threads(self, threads: usize) -> Self {
        CpuBackend {
            llama_threads: threads.max(1),
            ..self
        }
    }

    /// How this backend rounds.
    pub fn arithmetic(&self) -> CpuArithmetic {
        self.arithmetic
    }

    /// The llama.cpp thread count matched ([`with_llama_threads`](Self::with_llama_threads)).
    pub fn llama_threads(&self) -> usize {
        self.llama_threads
    }

    fn ggml(&self) -> bool {
        self.arithmetic == CpuArithmetic::GgmlCompatible
    }

    /// A backend with its own pool of `threads` threads (at least 1), with llama.cpp's
    /// arithmetic (see [`new`](Self::new)).
    pub fn with_threads(threads: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("rocmforge-cpu-{i}"))
            .build()
            .map_err(|e| ModelError::DeviceUnavailable(format!("CPU thread pool: {e}")))?;
        Ok(CpuBackend {
            pool: Some(pool),
            ..Self::new()
        })
    }

    /// Threads the operations run on.
    pub fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
    }

    /// Runs `f` on this backend's pool.
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}

/// A weight matrix read in place from a GGUF file.
#[derive(Clone)]
pub struct CpuMatrix {
    file: Arc<GgufFile>,
    range: Range<usize>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
}

impl std::fmt::Debug for CpuMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuMatrix")
            .field("ty", &self.ty)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

impl CpuMatrix {
    /// The matrix as the CPU ops take it (a view of the file's bytes).
    pub fn weights(&self) -> Result<WeightMatrix<'_>> {
        let data = self.file.bytes().get(self.range.clone()).ok_or_else(|| {
            ModelError::InvalidConfig("weight bytes outside the model file".to_string())
        })?;
        Ok(WeightMatrix::new(self.ty, data, self.rows, self.cols)?)
    }

    /// The element type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// The ids and positions of one forward call.
#[derive(Clone, Debug, Default)]
pub struct CpuTokens {
    ids: Vec<u32>,
    positions: Vec<i32>,
}

/// K and V tensors of every layer in one element type.
#[derive(Clone, Debug)]
pub struct KvLayers<T> {
    k: Vec<Vec<T>>,
    v: Vec<Vec<T>>,
}

/// One sequence's KV cache on the CPU.
#[derive(Clone, Debug)]
pub struct CpuKvStorage {
    shape: KvCacheShape,
    layers: CpuKvLayers,
}

/// The caches of every layer, `f32` or `f16`.
#[derive(Clone, Debug)]
enum CpuKvLayers {
    F32(KvLayers<f32>),
    F16(KvLayers<f16>),
}

impl CpuKvStorage {
    /// The shape of each layer's K (and V) tensor.
    pub fn shape(&self) -> KvCacheShape {
        self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> KvDtype {
        match self.layers {
            CpuKvLayers::F32(_) => KvDtype::F32,
            CpuKvLayers::F16(_) => KvDtype::F16,
        }
    }
}

/// `n` zeroed elements, or an error (not an abort) when the memory is not there.
fn try_zeroed<T: Clone + Default>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        ModelError::DeviceUnavailable(format!(
            "out of memory allocating the {what} ({n} elements of {} bytes)",
            std::mem::size_of::<T>()
        ))
    })?;
    v.resize(n, T::default());
    Ok(v)
}

fn alloc_layers<T: Clone + Default>(layout: &KvLayout, elements: usize) -> Result<KvLayers<T>> {
    let mut k = Vec::with_capacity(layout.n_layers);
    let mut v = Vec::with_capacity(layout.n_layers);
    for _ in 0..layout.n_layers {
        k.push(try_zeroed(elements, "KV cache")?);
        v.push(try_zeroed(elements, "KV cache")?);
    }
    Ok(KvLayers { k, v })
}

/// Layer `layer` of a cache, or an error.
fn layer<T>(layers: &[Vec<T>], layer: usize) -> Result<&Vec<T>> {
    layers.get(layer).ok_or_else(|| {
        ModelError::CacheMismatch(format!(
            "layer {layer} of a cache of {} layers",
            layers.len()
        ))
    })
}

fn write_layer<T: KvElement>(
    layers: &mut KvLayers<T>,
    shape: KvCacheShape,
    index: usize,
    pos0: usize,
    k: &[f32],
    v: &[f32],
    n_new: usize,
) -> Result<()> {
    let n_layers = layers.k.len();
    let mismatch = || ModelError::CacheMismatch(format!("layer {index} of {n_layers}"));
    let kc = layers.k.get_mut(index).ok_or_else(mismatch)?;
    cpu::kv_cache_write(kc, shape, pos0, k, n_new)?;
    let vc = layers.v.get_mut(index).ok_or_else(mismatch)?;
    cpu::kv_cache_write(vc, shape, pos0, v, n_new)?;
    Ok(())
}

impl Backend for CpuBackend {
    type Tensor = Vec<f32>;
    type Matrix = CpuMatrix;
    type Vector = Vec<f32>;
    type KvStorage = CpuKvStorage;
    type Tokens = CpuTokens;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn load_matrix(
        &self,
        file: &Arc<GgufFile>,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<CpuMatrix> {
        let info = file
            .header()
            .tensor_info(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                arch: "llama-family",
            })?;
        if !info.ty().is_dequantizable() {
            return Err(ModelError::UnsupportedTensorType {
                name: name.to_string(),
                ty: info.ty(),
                backend: "cpu",
                hint: String::new(),
            });
        }
        let m = CpuMatrix {
            file: Arc::clone(file),
            range: info.data_range(),
            ty: info.ty(),
            rows,
            cols,
        };
        // Check the size once here, so that a bad matrix fails at load time.
        m.weights()?;
        Ok(m)
    }

    fn load_vector(&self, values: &[f32]) -> Result<Vec<f32>> {
        Ok(values.to_vec())
    }

    fn alloc(&self, len: usize) -> Result<Vec<f32>> {
        try_zeroed(len, "activations")
    }

    fn alloc_kv(&self, layout: &KvLayout) -> Result<CpuKvStorage> {
        let elements = layout.shape.elements()?;
        let Some(bytes) = layout.bytes() else {
            return Err(ModelError::DeviceUnavailable(format!(
                "a KV cache of {} layers × {:?} overflows the address space",
                layout.n_layers, layout.shape
            )));
        };
        // Ask for the whole cache at once before touching any page: with Linux's default
        // overcommit policy one request larger than the memory fails cleanly here, where
        // many smaller ones would succeed and the zeroing below would be killed.
        let mut probe: Vec<u8> = Vec::new();
        probe.try_reserve_exact(bytes).map_err(|_| {
            ModelError::DeviceUnavailable(format!(
                "out of memory: a KV cache of {} positions × {} layers takes {:.1} GiB",
                layout.shape.n_ctx,
                layout.n_layers,
                bytes as f64 / (1u64 << 30) as f64
            ))
        })?;
        drop(probe);
        let layers = match layout.dtype {
            KvDtype::F32 => CpuKvLayers::F32(alloc_layers(layout, elements)?),
            KvDtype::F16 => CpuKvLayers::F16(alloc_layers(layout, elements)?),
        };
        Ok(CpuKvStorage {
            shape: layout.shape,
            layers,
        })
    }

    fn upload_tokens(&self, ids: &[u32], positions: &[i32]) -> Result<CpuTokens> {
        if ids.len() != positions.len() {
            return Err(ModelError::Compute(rocmforge_kernels::Error::Shape {
                op: "upload_tokens",
                message: format!("{} ids but {} positions", ids.len(), positions.len()),
            }));
        }
        Ok(CpuTokens {
            ids: ids.to_vec(),
            positions: positions.to_vec(),
        })
    }

    fn download(&self, x: &Vec<f32>, out: &mut [f32]) -> Result<()> {
        if x.len() != out.len() {
            return Err(ModelError::Compute(rocmforge_kernels::Error::Shape {
                op: "download",
                message: format!("tensor of {} into {} elements", x.len(), out.len()),
            }));
        }
        out.copy_from_slice(x);
        Ok(())
    }

    fn embedding(&self, table: &CpuMatrix, tokens: &CpuTokens, out: &mut Vec<f32>) -> Result<()> {
        let w = table.weights()?;
        self.run(|| cpu::embedding(&w, &tokens.ids, out))?;
        Ok(())
    }

    fn rms_norm(
        &self,
        x: &Vec<f32>,
        weight: &Vec<f32>,
        eps: f32,
        rows: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        self.run(|| cpu::rms_norm(x, weight, out, rows, weight.len(), eps))?;
        Ok(())
    }

    fn linear(
        &self,
        w: &CpuMatrix,
        bias: Option<&Vec<f32>>,
        x: &Vec<f32>,
        n_tokens: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let wm = w.weights()?;
        if self.ggml() && ggml_compat::vec_dot::WeightKind::of(w.ty).is_some() {
            self.run(|| ggml_compat::matmul::matmul(&wm, x, n_tokens, out))?;
        } else {
            self.run(|| cpu::matmul(&wm, x, n_tokens, out))?;
        }
        if let Some(b) = bias {
            if b.len() != w.rows {
                return Err(ModelError::Compute(rocmforge_kernels::Error::Shape {
                    op: "linear",
                    message: format!("bias of {} for {} output rows", b.len(), w.rows),
                }));
            }
            for row in out.chunks_mut(w.rows) {
                cpu::add_inplace(row, b)?;
            }
        }
        Ok(())
    }

    fn rope(
        &self,
        x: &mut Vec<f32>,
        tokens: &CpuTokens,
        n_heads: usize,
        spec: &RopeSpec,
        freq_factors: Option<&Vec<f32>>,
    ) -> Result<()> {
        if self.ggml() {
            let factors = freq_factors.map(|f| f.as_slice());
            return self.run(|| {
                ggml_compat::rope::rope_inplace(x, &tokens.positions, n_heads, spec, factors)
            });
        }
        let mut p = RopeParams::new(n_heads, spec.head_dim, spec.mode, spec.freq_base)
            .with_n_rot(spec.n_rot)
            .with_freq_scale(spec.freq_scale);
        if let Some(f) = freq_factors {
            p = p.with_freq_factors(f);
        }
        self.run(|| cpu::rope_inplace(x, &tokens.positions, &p))?;
        Ok(())
    }

    fn kv_write(
        &self,
        kv: &mut CpuKvStorage,
        layer_index: usize,
        pos0: usize,
        _tokens: &CpuTokens,
        k: &Vec<f32>,
        v: &Vec<f32>,
        rows: Range<usize>,
    ) -> Result<()> {
        let shape = kv.shape;
        let row_len = shape.row_len()?;
        let kr = row_range(&rows, row_len, k.len(), "K tensor")?;
        let vr = row_range(&rows, row_len, v.len(), "V tensor")?;
        let n_new = rows.len();
        match &mut kv.layers {
            CpuKvLayers::F32(l) => write_layer(l, shape, layer_index, pos0, &k[kr], &v[vr], n_new),
            CpuKvLayers::F16(l) => write_layer(l, shape, layer_index, pos0, &k[kr], &v[vr], n_new),
        }
    }

    fn attention(
        &self,
        kv: &CpuKvStorage,
        layer_index: usize,
        params: &AttentionParams,
        pos0: usize,
        _tokens: &CpuTokens,
        q: &Vec<f32>,
        rows: Range<usize>,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        if params.kv != kv.shape {
            return Err(ModelError::CacheMismatch(format!(
                "attention over {:?}, cache of {:?}",
                params.kv, kv.shape
            )));
        }
        let q_row = params.n_heads * params.kv.head_dim;
        let qr = row_range(&rows, q_row, q.len(), "query tensor")?;
        let or = row_range(&rows, q_row, out.len(), "attention output")?;
        let n_q = rows.len();
        let (q, out) = (&q[qr], &mut out[or]);
        if self.ggml() {
            let threads = self.llama_threads;
            return match &kv.layers {
                CpuKvLayers::F32(l) => {
                    let (kc, vc) = (layer(&l.k, layer_index)?, layer(&l.v, layer_index)?);
                    self.run(|| {
                        ggml_compat::flash_attn::flash_attn(
                            params, q, n_q, pos0, kc, vc, threads, out,
                        )
                    })
                }
                CpuKvLayers::F16(l) => {
                    let (kc, vc) = (layer(&l.k, layer_index)?, layer(&l.v, layer_index)?);
                    self.run(|| {
                        ggml_compat::flash_attn::flash_attn(
                            params, q, n_q, pos0, kc, vc, threads, out,
                        )
                    })
                }
            };
        }
        match &kv.layers {
            CpuKvLayers::F32(l) => {
                let (kc, vc) = (layer(&l.k, layer_index)?, layer(&l.v, layer_index)?);
                self.run(|| cpu::attention(params, q, n_q, pos0, kc, vc, out))?;
            }
            CpuKvLayers::F16(l) => {
                let (kc, vc) = (layer(&l.k, layer_index)?, layer(&l.v, layer_index)?);
                self.run(|| cpu::attention(params, q, n_q, pos0, kc, vc, out))?;
            }
        }
        Ok(())
    }

    fn swiglu(&self, gate: &Vec<f32>, up: &Vec<f32>, out: &mut Vec<f32>) -> Result<()> {
        if self.ggml() {
            return self.run(|| ggml_compat::activation::swiglu(gate, up, out));
        }
        self.run(|| cpu::swiglu(gate, up, out))?;
        Ok(())
    }

    fn add(&self, a: &Vec<f32>, b: &Vec<f32>, out: &mut Vec<f32>) -> Result<()> {
        self.run(|| cpu::add(a, b, out))?;
        Ok(())
    }

    fn gather_rows(
        &self,
        x: &Vec<f32>,
        row_len: usize,
        rows: &[usize],
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let shape_err = |message: String| {
            ModelError::Compute(rocmforge_kernels::Error::Shape {
                op: "gather_rows",
                message,
            })
        };
        if rows.len().checked_mul(row_len) != Some(out.len()) {
            return Err(shape_err(format!(
                "{} rows of {row_len} into {} elements",
                rows.len(),
                out.len()
            )));
        }
        for (dst, &r) in out.chunks_mut(row_len.max(1)).zip(rows) {
            let src = r
                .checked_mul(row_len)
                .and_then(|s| x.get(s..s.checked_add(row_len)?))
                .ok_or_else(|| {
                    shape_err(format!(
                        "row {r} of {row_len} is outside a tensor of {}",
                        x.len()
                    ))
                })?;
            dst.copy_from_slice(src);
        }
        Ok(())
    }
}
