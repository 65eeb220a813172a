//! The HIP backend: every operation of the forward pass enqueued on one stream of one GPU,
//! through the typed launchers of [`rocmforge_kernels::gpu`].
//!
//! * Weights are uploaded once at load time, one device buffer per matrix in its ggml
//!   type (the kernels dequantize on the fly); vectors (norms, biases) as `f32`.
//! * Activations, token ids and positions, and the KV caches are device buffers allocated
//!   on the backend's stream (stream-ordered allocation: freeing a tensor never waits for
//!   the device).
//! * Nothing waits for the GPU until [`Backend::download`], which synchronizes the
//!   backend's stream only — never the device (see `docs/sync-safety.md`).
//! * Running out of device memory is an error ([`ModelError::OutOfDeviceMemory`]) that
//!   names what was being allocated; the device stays usable.

use std::any::Any;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use half::f16;
use rocmforge_kernels::cpu::{AttentionParams, KvCacheShape};
use rocmforge_kernels::gpu::{
    matvec_reads_q8, q8_activation_bytes, q8_activation_row_bytes, AttentionOps, ElementwiseOps,
    GpuKvElement, GpuWeights, KernelLoader, NormOps, QuantOps, RopeConfig, RopeOps,
    DECODE_MAX_QUERIES, GPU_WEIGHT_TYPES, MATVEC_Q8_MULTI_MAX,
};
use rocmforge_kernels::gpu::{GgmlCompatOps, GgmlQ8Kind};
use rocmforge_kernels::hip::{
    Device, DeviceBuffer, DeviceMemory, DeviceMemoryMut, DeviceSlice, DeviceSliceMut, GraphExec,
    Stream,
};
use rocmforge_kernels::quant::GgmlType;

use super::{Backend, KvDtype, KvLayout, KvStore, LinearOutput, Recording, RopeSpec};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// How the HIP backend computes the products with quantized weights in decode steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GpuArithmetic {
    /// Activations quantized to 8 bits (per 32 values, an `f32` scale) before every matrix
    /// × vector product with quantized weights, which then runs on integer dot products —
    /// what llama.cpp's CUDA backend does, and up to twice as fast (see
    /// `docs/benchmarks.md`). Changes results by the 8-bit rounding of the activations
    /// (about 0.4% of a product). Products with f32/f16/bf16 weights and prefill (more than
    /// [`Q8_MAX_TOKENS`] tokens) keep `f32` activations.
    #[default]
    Fast,
    /// `f32` activations everywhere: the exact product of the dequantized weights (to
    /// `f32` rounding), the reference the kernels are checked against.
    Exact,
    /// llama.cpp's CPU arithmetic (its x86 AVX2 build), as the CPU backend's
    /// [`CpuArithmetic::GgmlCompatible`](super::cpu::CpuArithmetic::GgmlCompatible)
    /// computes it (`rocmforge_kernels::gpu::GgmlCompatOps`): activations quantized to
    /// Q8_1 / Q8_0 with llama.cpp's rounding and products with its dot products, lane
    /// for lane, for Q4_1 / Q5_1 / Q8_0 weights (every batch size); f16 activations for
    /// F16 weights; flash attention with an f16 query and f16 accumulation of V (its
    /// one-row, split-KV and tiled paths); `ggml_v_expf` in the SwiGLU; RoPE with fused
    /// multiply-adds; RMSNorm with an `f64` sum. Products with other weight types stay
    /// exact, as on the CPU. For getting llama.cpp's logits and greedy tokens on the GPU:
    /// a correctness mode, much slower than [`Fast`](Self::Fast) (attention walks the cache
    /// one position at a time, decode steps are not recorded into graphs), and its kernels
    /// are compiled at first use.
    GgmlCompatible,
}

/// Most tokens of a [`Backend::linear`] call that take the 8-bit matrix × vector path
/// (one launch per token) in [`GpuArithmetic::Fast`].
pub const Q8_MAX_TOKENS: usize = 8;

/// The HIP backend: one device, one stream, the kernels loaded for the device's arch.
#[derive(Debug)]
pub struct HipBackend {
    device: Device,
    stream: Stream,
    arithmetic: GpuArithmetic,
    /// Room for [`Q8_MAX_TOKENS`] rows of 8-bit activations of the widest matrix loaded
    /// (grown while loading, never after: a recorded step keeps its address).
    q8_scratch: Mutex<DeviceBuffer<u8>>,
    elementwise: ElementwiseOps,
    norm: NormOps,
    rope: RopeOps,
    quant: QuantOps,
    attention: AttentionOps,
    /// The kernels of [`GpuArithmetic::GgmlCompatible`], loaded at first use.
    ggml: std::sync::OnceLock<GgmlCompatOps>,
    /// The llama.cpp thread count [`GpuArithmetic::GgmlCompatible`] matches (its split-KV
    /// attention path depends on it).
    llama_threads: usize,
}

impl HipBackend {
    /// A backend on GPU `ordinal` (0 = the first), compiling the kernels for its exact
    /// arch at first use (cached on disk, see [`rocmforge_kernels::KernelCache`]).
    pub fn new(ordinal: usize) -> Result<Self> {
        let device = Device::new(ordinal).map_err(|e| {
            ModelError::DeviceUnavailable(format!("GPU {ordinal} is not available: {e}"))
        })?;
        Self::on_device(&device)
    }

    /// A backend on `device`, with a new stream of its own.
    pub fn on_device(device: &Device) -> Result<Self> {
        let loader = KernelLoader::new(device);
        Self::with_loader(&loader)
    }

    /// A backend whose kernels come from `loader` (e.g. one with another cache directory).
    pub fn with_loader(loader: &KernelLoader) -> Result<Self> {
        let device = loader.device().clone();
        let stream = device.new_stream().map_err(gpu_error)?;
        let q8_scratch = Mutex::new(DeviceBuffer::alloc(&stream, 0).map_err(gpu_error)?);
        Ok(HipBackend {
            arithmetic: GpuArithmetic::default(),
            q8_scratch,
            elementwise: ElementwiseOps::load(loader)?,
            norm: NormOps::load(loader)?,
            rope: RopeOps::load(loader)?,
            quant: QuantOps::load(loader)?,
            attention: AttentionOps::load(loader)?,
            ggml: std::sync::OnceLock::new(),
            llama_threads: super::cpu::DEFAULT_LLAMA_THREADS,
            device,
            stream,
        })
    }

    /// The same backend computing in `arithmetic` (set it before loading a model).
    pub fn with_arithmetic(mut self, arithmetic: GpuArithmetic) -> Self {
        self.arithmetic = arithmetic;
        self
    }

    /// How decode steps compute products with quantized weights.
    pub fn arithmetic(&self) -> GpuArithmetic {
        self.arithmetic
    }

    /// The same backend matching a llama.cpp run with `threads` threads (at least 1;
    /// default [`DEFAULT_LLAMA_THREADS`](super::cpu::DEFAULT_LLAMA_THREADS)): only
    /// [`GpuArithmetic::GgmlCompatible`]'s attention of a single token against more than
    /// 256 cached positions depends on it.
    pub fn with_llama_threads(mut self, threads: usize) -> Self {
        self.llama_threads = threads.max(1);
        self
    }

    /// The kernels of [`GpuArithmetic::GgmlCompatible`], compiled and loaded at the first
    /// call (so that the other modes never depend on them).
    fn ggml_ops(&self) -> Result<&GgmlCompatOps> {
        if let Some(ops) = self.ggml.get() {
            return Ok(ops);
        }
        let ops = GgmlCompatOps::load(&KernelLoader::new(&self.device))?;
        Ok(self.ggml.get_or_init(|| ops))
    }

    fn ggml(&self) -> bool {
        self.arithmetic == GpuArithmetic::GgmlCompatible
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The stream every operation is enqueued on.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Allocates `len` elements of `T` on the stream; out of memory is
    /// [`ModelError::OutOfDeviceMemory`] naming `what`.
    fn alloc_buffer<T: bytemuck::Pod>(&self, len: usize, what: &str) -> Result<DeviceBuffer<T>> {
        DeviceBuffer::alloc(&self.stream, len)
            .map_err(|e| self.alloc_error(e, len * size_of::<T>(), what))
    }

    /// Bytes this backend can still allocate: the device's free memory plus what the
    /// stream-ordered pool holds but has not handed out (freed buffers stay reserved by
    /// the pool for reuse, and the device's free-memory count does not include them).
    pub fn available_memory(&self) -> Result<usize> {
        let free = self.device.memory_info().map_err(gpu_error)?.free;
        let (used, reserved) = self.device.pool_usage().map_err(gpu_error)?;
        let idle = usize::try_from(reserved.saturating_sub(used)).unwrap_or(usize::MAX);
        Ok(free.saturating_add(idle))
    }

    fn alloc_error(
        &self,
        e: rocmforge_kernels::hip::Error,
        bytes: usize,
        what: &str,
    ) -> ModelError {
        if is_out_of_memory(&e) {
            let free = self.available_memory().ok();
            ModelError::OutOfDeviceMemory {
                what: what.to_string(),
                bytes,
                free,
            }
        } else {
            gpu_error(e)
        }
    }

    /// Copies `data` into a new device buffer (waits for the copy).
    fn upload<T: bytemuck::Pod>(&self, data: &[T], what: &str) -> Result<DeviceBuffer<T>> {
        let mut buffer = self.alloc_buffer(data.len(), what)?;
        buffer.copy_from_host(data).map_err(gpu_error)?;
        Ok(buffer)
    }
}

fn is_out_of_memory(e: &rocmforge_kernels::hip::Error) -> bool {
    matches!(e, rocmforge_kernels::hip::Error::Hip { error, .. } if error.is_out_of_memory())
}

fn gpu_error(e: rocmforge_kernels::hip::Error) -> ModelError {
    ModelError::Compute(rocmforge_kernels::Error::Hip(e))
}

fn shape_error(op: &'static str, message: String) -> ModelError {
    ModelError::Compute(rocmforge_kernels::Error::Shape { op, message })
}

/// Checks `x` (`[n_tokens, cols]`), `out` (`[n_tokens, rows]`) and the bias (`rows`).
fn check_linear_shapes(
    w: &HipMatrix,
    bias: Option<&DeviceBuffer<f32>>,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &DeviceBuffer<f32>,
) -> Result<()> {
    let fits = |len: usize, width: usize| n_tokens.checked_mul(width) == Some(len);
    if !fits(x.len(), w.cols) || !fits(out.len(), w.rows) || bias.is_some_and(|b| b.len() != w.rows)
    {
        return Err(shape_error(
            "linear",
            format!(
                "W is {} × {}, {n_tokens} tokens: x has {}, out {}, bias {:?}",
                w.rows,
                w.cols,
                x.len(),
                out.len(),
                bias.map(|b| b.len())
            ),
        ));
    }
    Ok(())
}

/// A weight matrix on the device, in its ggml type.
#[derive(Debug)]
pub struct HipMatrix {
    data: DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
}

impl HipMatrix {
    /// The matrix as the kernels take it.
    pub fn weights(&self) -> Result<GpuWeights<'_>> {
        Ok(GpuWeights::new(
            self.ty,
            self.data.as_slice(),
            self.rows,
            self.cols,
        )?)
    }

    /// Its ggml type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// The ids and positions of one forward call, on the device.
#[derive(Debug)]
pub struct HipTokens {
    ids: DeviceBuffer<u32>,
    positions: DeviceBuffer<i32>,
}

/// K and V of every layer, one buffer each.
#[derive(Debug)]
pub struct HipKvLayers<T: bytemuck::Pod> {
    k: Vec<DeviceBuffer<T>>,
    v: Vec<DeviceBuffer<T>>,
}

#[derive(Debug)]
enum HipKvLayersOf {
    F32(HipKvLayers<f32>),
    F16(HipKvLayers<f16>),
}

/// One sequence's KV cache on the device.
#[derive(Debug)]
pub struct HipKvStorage {
    shape: KvCacheShape,
    layers: HipKvLayersOf,
    /// Scratch of the decode attention's splits, sized for the whole capacity (the split
    /// plan of [`AttentionOps::decode_attention_at`]). Behind a mutex because attention
    /// takes the storage shared; one lock per call.
    scratch: Mutex<DeviceBuffer<f32>>,
}

impl HipKvStorage {
    /// Shape of each layer's K (and V) tensor.
    pub fn shape(&self) -> KvCacheShape {
        self.shape
    }

    /// Element type.
    pub fn dtype(&self) -> KvDtype {
        match self.layers {
            HipKvLayersOf::F32(_) => KvDtype::F32,
            HipKvLayersOf::F16(_) => KvDtype::F16,
        }
    }
}

fn layer_of<T: bytemuck::Pod>(
    layers: &HipKvLayers<T>,
    index: usize,
) -> Result<(&DeviceBuffer<T>, &DeviceBuffer<T>)> {
    match (layers.k.get(index), layers.v.get(index)) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(ModelError::CacheMismatch(format!(
            "layer {index} of a cache of {} layers",
            layers.k.len()
        ))),
    }
}

/// Rows `rows` of a tensor of rows of `row_len` elements, checked.
fn row_range(rows: &Range<usize>, row_len: usize, len: usize, what: &str) -> Result<Range<usize>> {
    match (
        rows.start.checked_mul(row_len),
        rows.end.checked_mul(row_len),
    ) {
        (Some(s), Some(e)) if s <= e && e <= len => Ok(s..e),
        _ => Err(shape_error(
            "row range",
            format!("rows {rows:?} of {row_len} elements do not fit the {what} of {len} elements"),
        )),
    }
}

impl HipBackend {
    /// Whether `linear` over `n_tokens` tokens with these weights takes the 8-bit path.
    fn uses_q8(&self, ws: &[&HipMatrix], n_tokens: usize) -> bool {
        self.arithmetic == GpuArithmetic::Fast
            && (1..=Q8_MAX_TOKENS).contains(&n_tokens)
            && ws
                .iter()
                .all(|w| matvec_reads_q8(w.ty) && w.cols == ws[0].cols)
    }

    fn lock_q8_scratch(&self) -> Result<std::sync::MutexGuard<'_, DeviceBuffer<u8>>> {
        self.q8_scratch
            .lock()
            .map_err(|_| ModelError::DeviceUnavailable("activation scratch lock poisoned".into()))
    }

    /// The products `outs` of already quantized activations `xq` (`n_tokens` rows): the
    /// matrices of one type in one launch per token (`matvec_q8_multi`), then biases.
    fn products_q8(
        &self,
        xq: DeviceSlice<'_, u8>,
        n_tokens: usize,
        outs: &mut [LinearOutput<'_, Self>],
    ) -> Result<()> {
        let row_bytes = q8_activation_row_bytes(outs[0].0.cols);
        let same_type = outs.iter().all(|o| o.0.ty == outs[0].0.ty);
        let weights = outs
            .iter()
            .map(|o| o.0.weights())
            .collect::<Result<Vec<_>>>()?;
        for t in 0..n_tokens {
            let xt = xq
                .slice(t * row_bytes..(t + 1) * row_bytes)
                .map_err(gpu_error)?;
            if same_type && outs.len() <= MATVEC_Q8_MULTI_MAX {
                let refs: Vec<&GpuWeights<'_>> = weights.iter().collect();
                let mut ys = outs
                    .iter_mut()
                    .map(|(w, _, out)| out.slice_mut(t * w.rows..(t + 1) * w.rows))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(gpu_error)?;
                self.quant
                    .matvec_q8_multi(&self.stream, &refs, xt, &mut ys)?;
            } else {
                for ((w, _, out), weights) in outs.iter_mut().zip(&weights) {
                    let yt = out
                        .slice_mut(t * w.rows..(t + 1) * w.rows)
                        .map_err(gpu_error)?;
                    self.quant.matvec_q8(&self.stream, weights, xt, yt)?;
                }
            }
        }
        for (_, bias, out) in outs.iter_mut() {
            if let Some(b) = bias {
                self.elementwise
                    .add_bias_rows(&self.stream, out.as_slice_mut(), b.as_slice())?;
            }
        }
        Ok(())
    }

    /// `out[t] = residual[t] + w · xq[t]` over quantized activations (one launch per token).
    fn product_residual_q8(
        &self,
        w: &HipMatrix,
        xq: DeviceSlice<'_, u8>,
        n_tokens: usize,
        residual: &DeviceBuffer<f32>,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        let row_bytes = q8_activation_row_bytes(w.cols);
        let weights = w.weights()?;
        if residual.len() != n_tokens * w.rows || out.len() != n_tokens * w.rows {
            return Err(shape_error(
                "linear_residual",
                format!(
                    "{n_tokens} tokens of {} outputs: residual has {}, out {}",
                    w.rows,
                    residual.len(),
                    out.len()
                ),
            ));
        }
        for t in 0..n_tokens {
            let rows = t * w.rows..(t + 1) * w.rows;
            let xt = xq
                .slice(t * row_bytes..(t + 1) * row_bytes)
                .map_err(gpu_error)?;
            let rt = residual.slice(rows.clone()).map_err(gpu_error)?;
            let yt = out.slice_mut(rows).map_err(gpu_error)?;
            self.quant
                .matvec_q8_add(&self.stream, &weights, xt, rt, yt)?;
        }
        Ok(())
    }

    /// Quantizes `x` (`n_tokens` rows of `cols`) into the scratch once, then computes each
    /// output with the integer matrix × vector kernels, token by token, adding biases.
    fn linear_q8(
        &self,
        x: &DeviceBuffer<f32>,
        n_tokens: usize,
        outs: &mut [LinearOutput<'_, Self>],
    ) -> Result<()> {
        for (w, bias, out) in outs.iter() {
            check_linear_shapes(w, *bias, x, n_tokens, out)?;
        }
        let cols = outs[0].0.cols;
        let mut scratch = self.lock_q8_scratch()?;
        let mut xq = scratch
            .slice_mut(..q8_activation_bytes(n_tokens, cols))
            .map_err(gpu_error)?;
        self.quant.quantize_activations(
            &self.stream,
            x.as_slice(),
            n_tokens,
            cols,
            xq.slice_mut(..).map_err(gpu_error)?,
        )?;
        self.products_q8(xq.as_slice(), n_tokens, outs)
    }

    /// `out = W · x (+ bias)` with `f32` activations.
    fn linear_f32(
        &self,
        w: &HipMatrix,
        bias: Option<&DeviceBuffer<f32>>,
        x: &DeviceBuffer<f32>,
        n_tokens: usize,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        check_linear_shapes(w, bias, x, n_tokens, out)?;
        self.quant.matmul(
            &self.stream,
            &w.weights()?,
            x.as_slice(),
            n_tokens,
            out.as_slice_mut(),
        )?;
        if let Some(b) = bias {
            self.elementwise
                .add_bias_rows(&self.stream, out.as_slice_mut(), b.as_slice())?;
        }
        Ok(())
    }

    /// `out = W · x (+ bias)` in [`GpuArithmetic::GgmlCompatible`]: for Q4_1 / Q5_1 /
    /// Q8_0 weights the activations quantized as llama.cpp does and the products with its
    /// dot products (any number of tokens); for F16 weights the activations rounded to
    /// f16 first; other types as [`linear_f32`](Self::linear_f32).
    fn linear_ggml(
        &self,
        w: &HipMatrix,
        bias: Option<&DeviceBuffer<f32>>,
        x: &DeviceBuffer<f32>,
        n_tokens: usize,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        check_linear_shapes(w, bias, x, n_tokens, out)?;
        let ops = self.ggml_ops()?;
        let Some(kind) = GgmlQ8Kind::of(w.ty) else {
            if w.ty != GgmlType::F16 {
                return self.linear_f32(w, bias, x, n_tokens, out);
            }
            let mut rounded = self.alloc_buffer::<f32>(x.len(), "f16-rounded activations")?;
            ops.round_f16(&self.stream, x.as_slice(), rounded.as_slice_mut())?;
            return self.linear_f32(w, bias, &rounded, n_tokens, out);
        };
        let bytes = q8_activation_bytes(n_tokens, w.cols);
        let (rows, cols) = (w.rows, w.cols);
        if n_tokens <= Q8_MAX_TOKENS {
            // The scratch holds Q8_MAX_TOKENS rows for every matrix of these types.
            let mut scratch = self.q8_scratch.lock().map_err(|_| {
                ModelError::DeviceUnavailable("activation scratch lock poisoned".into())
            })?;
            let mut xq = scratch.slice_mut(..bytes).map_err(gpu_error)?;
            let xq_out = xq.slice_mut(..).map_err(gpu_error)?;
            ops.quantize_activations(&self.stream, x.as_slice(), n_tokens, cols, kind, xq_out)?;
            let (wd, y) = (w.data.as_slice(), out.as_slice_mut());
            ops.matvec(
                &self.stream,
                w.ty,
                wd,
                rows,
                cols,
                xq.as_slice(),
                n_tokens,
                y,
            )?;
        } else {
            let mut xq = self.alloc_buffer::<u8>(bytes, "8-bit activations")?;
            ops.quantize_activations(
                &self.stream,
                x.as_slice(),
                n_tokens,
                cols,
                kind,
                xq.as_slice_mut(),
            )?;
            let (wd, y) = (w.data.as_slice(), out.as_slice_mut());
            ops.matvec(
                &self.stream,
                w.ty,
                wd,
                rows,
                cols,
                xq.as_slice(),
                n_tokens,
                y,
            )?;
        }
        if let Some(b) = bias {
            self.elementwise
                .add_bias_rows(&self.stream, out.as_slice_mut(), b.as_slice())?;
        }
        Ok(())
    }

    /// Attention in [`GpuArithmetic::GgmlCompatible`]: llama.cpp's CPU flash attention.
    #[allow(clippy::too_many_arguments)]
    fn attention_ggml(
        &self,
        kv: &HipKvStorage,
        layer: usize,
        params: &AttentionParams,
        positions: DeviceSlice<'_, i32>,
        q: DeviceSlice<'_, f32>,
        n_q: usize,
        out: DeviceSliceMut<'_, f32>,
    ) -> Result<()> {
        let ops = self.ggml_ops()?;
        let threads = self.llama_threads;
        match &kv.layers {
            HipKvLayersOf::F32(l) => {
                let (k, v) = layer_of(l, layer)?;
                let (k, v) = (k.as_slice(), v.as_slice());
                ops.attention_f32(&self.stream, params, q, n_q, positions, k, v, out, threads)?;
            }
            HipKvLayersOf::F16(l) => {
                let (k, v) = layer_of(l, layer)?;
                let (k, v) = (k.as_slice(), v.as_slice());
                ops.attention_f16(&self.stream, params, q, n_q, positions, k, v, out, threads)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn kv_write_typed<T: GpuKvElement>(
        &self,
        layers: &mut HipKvLayers<T>,
        shape: KvCacheShape,
        index: usize,
        positions: DeviceSlice<'_, i32>,
        k: DeviceSlice<'_, f32>,
        v: DeviceSlice<'_, f32>,
        n_new: usize,
    ) -> Result<()> {
        let n_layers = layers.k.len();
        let mismatch = || ModelError::CacheMismatch(format!("layer {index} of {n_layers}"));
        let kc = layers.k.get_mut(index).ok_or_else(mismatch)?;
        self.attention.kv_cache_write_at(
            &self.stream,
            kc.as_slice_mut(),
            shape,
            positions,
            k,
            n_new,
        )?;
        let vc = layers.v.get_mut(index).ok_or_else(mismatch)?;
        self.attention.kv_cache_write_at(
            &self.stream,
            vc.as_slice_mut(),
            shape,
            positions,
            v,
            n_new,
        )?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn attention_typed<T: GpuKvElement>(
        &self,
        layers: &HipKvLayers<T>,
        index: usize,
        params: &AttentionParams,
        pos0: usize,
        positions: DeviceSlice<'_, i32>,
        q: DeviceSlice<'_, f32>,
        n_q: usize,
        out: DeviceSliceMut<'_, f32>,
        scratch: &Mutex<DeviceBuffer<f32>>,
    ) -> Result<()> {
        let (k, v) = layer_of(layers, index)?;
        if n_q > DECODE_MAX_QUERIES {
            // Prefill: never recorded, so the position may be a host value.
            self.attention.prefill_attention(
                &self.stream,
                params,
                q,
                n_q,
                pos0,
                k.as_slice(),
                v.as_slice(),
                out,
            )?;
            return Ok(());
        }
        // Decode: the position from device memory, so that a recorded step serves every
        // position.
        let mut scratch = scratch
            .lock()
            .map_err(|_| ModelError::DeviceUnavailable("attention scratch lock poisoned".into()))?;
        self.attention.decode_attention_at(
            &self.stream,
            params,
            q,
            n_q,
            positions,
            k.as_slice(),
            v.as_slice(),
            out,
            scratch.as_slice_mut(),
        )?;
        Ok(())
    }

    fn alloc_kv_layers<T: bytemuck::Pod>(
        &self,
        layout: &KvLayout,
        elements: usize,
    ) -> Result<HipKvLayers<T>> {
        let mut k = Vec::with_capacity(layout.n_layers);
        let mut v = Vec::with_capacity(layout.n_layers);
        for _ in 0..layout.n_layers {
            for list in [&mut k, &mut v] {
                let mut b = self.alloc_buffer::<T>(elements, "the KV cache")?;
                // Zeroed: positions past the written ones are never read, but a cache
                // that starts defined makes sanitizer runs and dumps meaningful.
                b.fill_zero().map_err(gpu_error)?;
                list.push(b);
            }
        }
        Ok(HipKvLayers { k, v })
    }
}

impl Backend for HipBackend {
    type Tensor = DeviceBuffer<f32>;
    type Matrix = HipMatrix;
    type Vector = DeviceBuffer<f32>;
    type KvStorage = HipKvStorage;
    type Tokens = HipTokens;

    fn name(&self) -> &'static str {
        "hip"
    }

    fn load_matrix(
        &self,
        file: &Arc<GgufFile>,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<HipMatrix> {
        let tensor = file
            .get_tensor(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                arch: "llama-family",
            })?;
        let ty = tensor.ty();
        if !GPU_WEIGHT_TYPES.contains(&ty) {
            return Err(ModelError::UnsupportedTensorType {
                name: name.to_string(),
                ty,
                backend: "hip",
                hint: format!(
                    " (the GPU kernels implement {})",
                    GPU_WEIGHT_TYPES.map(|t| t.name()).join(", ")
                ),
            });
        }
        let data = self.upload(tensor.data(), &format!("weight '{name}'"))?;
        let m = HipMatrix {
            data,
            ty,
            rows,
            cols,
        };
        m.weights()?; // checks the byte size against the shape and type
        if matvec_reads_q8(ty) {
            let need = q8_activation_bytes(Q8_MAX_TOKENS, cols);
            let mut scratch = self.q8_scratch.lock().map_err(|_| {
                ModelError::DeviceUnavailable("activation scratch lock poisoned".into())
            })?;
            if scratch.len() < need {
                *scratch = self.alloc_buffer(need, "the 8-bit activation scratch")?;
            }
        }
        Ok(m)
    }

    fn load_vector(&self, values: &[f32]) -> Result<DeviceBuffer<f32>> {
        self.upload(values, "a weight vector")
    }

    fn alloc(&self, len: usize) -> Result<DeviceBuffer<f32>> {
        self.alloc_buffer(len, "activations")
    }

    fn alloc_kv(&self, layout: &KvLayout) -> Result<HipKvStorage> {
        let elements = layout.shape.elements()?;
        let Some(bytes) = layout.bytes() else {
            return Err(ModelError::DeviceUnavailable(format!(
                "a KV cache of {} layers × {:?} overflows the address space",
                layout.n_layers, layout.shape
            )));
        };
        // Check the whole cache against free memory first: a clear message instead of
        // an allocation failing half way (which would be released anyway).
        if let Ok(available) = self.available_memory() {
            if bytes > available {
                return Err(ModelError::OutOfDeviceMemory {
                    what: format!(
                        "a KV cache of {} positions × {} layers ({})",
                        layout.shape.n_ctx,
                        layout.n_layers,
                        layout.dtype.name()
                    ),
                    bytes,
                    free: Some(available),
                });
            }
        }
        let layers = match layout.dtype {
            KvDtype::F32 => HipKvLayersOf::F32(self.alloc_kv_layers(layout, elements)?),
            KvDtype::F16 => HipKvLayersOf::F16(self.alloc_kv_layers(layout, elements)?),
        };
        let params = AttentionParams::new(layout.n_heads.max(1), layout.shape);
        let scratch_len = self
            .attention
            .decode_at_scratch_len(&params, DECODE_MAX_QUERIES)?;
        let scratch = self.alloc_buffer(scratch_len, "the decode attention scratch")?;
        Ok(HipKvStorage {
            shape: layout.shape,
            layers,
            scratch: Mutex::new(scratch),
        })
    }

    fn upload_tokens(&self, ids: &[u32], positions: &[i32]) -> Result<HipTokens> {
        if ids.len() != positions.len() {
            return Err(shape_error(
                "upload_tokens",
                format!("{} ids but {} positions", ids.len(), positions.len()),
            ));
        }
        Ok(HipTokens {
            ids: self.upload(ids, "token ids")?,
            positions: self.upload(positions, "token positions")?,
        })
    }

    fn download(&self, x: &DeviceBuffer<f32>, out: &mut [f32]) -> Result<()> {
        if x.len() != out.len() {
            return Err(shape_error(
                "download",
                format!("tensor of {} into {} elements", x.len(), out.len()),
            ));
        }
        x.copy_to_host(out).map_err(gpu_error)?;
        // Errors of earlier asynchronous work (e.g. a failed free) surface here.
        if let Some(e) = self.device.take_deferred_errors().into_iter().next() {
            return Err(gpu_error(e));
        }
        Ok(())
    }

    fn embedding(
        &self,
        table: &HipMatrix,
        tokens: &HipTokens,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        self.quant.get_rows(
            &self.stream,
            &table.weights()?,
            tokens.ids.as_slice(),
            out.as_slice_mut(),
        )?;
        Ok(())
    }

    fn rms_norm(
        &self,
        x: &DeviceBuffer<f32>,
        weight: &DeviceBuffer<f32>,
        eps: f32,
        rows: usize,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        if self.ggml() {
            let (x, wv, o) = (x.as_slice(), weight.as_slice(), out.as_slice_mut());
            self.ggml_ops()?
                .rms_norm(&self.stream, x, wv, o, rows, eps)?;
            return Ok(());
        }
        self.norm.rms_norm(
            &self.stream,
            x.as_slice(),
            weight.as_slice(),
            out.as_slice_mut(),
            rows,
            weight.len(),
            eps,
        )?;
        Ok(())
    }

    fn linear(
        &self,
        w: &HipMatrix,
        bias: Option<&DeviceBuffer<f32>>,
        x: &DeviceBuffer<f32>,
        n_tokens: usize,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        if self.ggml() {
            return self.linear_ggml(w, bias, x, n_tokens, out);
        }
        if self.uses_q8(&[w], n_tokens) {
            self.linear_q8(x, n_tokens, &mut [(w, bias, out)])
        } else {
            self.linear_f32(w, bias, x, n_tokens, out)
        }
    }

    fn linear_shared(
        &self,
        x: &DeviceBuffer<f32>,
        n_tokens: usize,
        outs: &mut [LinearOutput<'_, Self>],
    ) -> Result<()> {
        let ws: Vec<&HipMatrix> = outs.iter().map(|o| o.0).collect();
        if !outs.is_empty() && self.uses_q8(&ws, n_tokens) {
            let mut outs: Vec<_> = outs
                .iter_mut()
                .map(|(w, b, o)| (*w, *b, &mut **o))
                .collect();
            return self.linear_q8(x, n_tokens, &mut outs);
        }
        for (w, bias, out) in outs.iter_mut() {
            self.linear(w, *bias, x, n_tokens, out)?;
        }
        Ok(())
    }

    fn rope_and_store(
        &self,
        q: &mut DeviceBuffer<f32>,
        k: &mut DeviceBuffer<f32>,
        v: &DeviceBuffer<f32>,
        tokens: &HipTokens,
        n_heads: usize,
        n_kv_heads: usize,
        spec: &RopeSpec,
        freq_factors: Option<&DeviceBuffer<f32>>,
        layer: usize,
        stores: &mut [KvStore<'_, Self>],
    ) -> Result<()> {
        let n_tokens = tokens.positions.len();
        let whole_batch = matches!(stores, [(_, _, rows)] if *rows == (0..n_tokens));
        if !whole_batch || self.ggml() {
            // Several sequences (or part of the batch), or llama.cpp's RoPE: rotate all
            // rows, then write each sequence's rows into its cache.
            self.rope(q, tokens, n_heads, spec, freq_factors)?;
            self.rope(k, tokens, n_kv_heads, spec, freq_factors)?;
            for (cache, pos0, rows) in stores.iter_mut() {
                self.kv_write(cache, layer, *pos0, tokens, k, v, rows.clone())?;
            }
            return Ok(());
        }
        // One sequence: rotate q, and write rotated k and v into the cache, in one launch.
        let (cache, _, _) = &mut stores[0];
        let shape = cache.shape;
        let cfg = RopeConfig {
            n_heads,
            head_dim: spec.head_dim,
            n_rot: spec.n_rot,
            mode: spec.mode,
            freq_base: spec.freq_base,
            freq_scale: spec.freq_scale,
        };
        let n_layers = match &cache.layers {
            HipKvLayersOf::F32(l) => l.k.len(),
            HipKvLayersOf::F16(l) => l.k.len(),
        };
        let mismatch = || ModelError::CacheMismatch(format!("layer {layer} of {n_layers}"));
        macro_rules! fused {
            ($layers:expr) => {{
                let (kc, vc) = match ($layers.k.get_mut(layer), $layers.v.get_mut(layer)) {
                    (Some(kc), Some(vc)) => (kc, vc),
                    _ => return Err(mismatch()),
                };
                self.rope.rope_qk_kv_write_at(
                    &self.stream,
                    q.as_slice_mut(),
                    k.as_slice(),
                    v.as_slice(),
                    tokens.positions.as_slice(),
                    freq_factors.map(|f| f.as_slice()),
                    &cfg,
                    n_kv_heads,
                    kc.as_slice_mut(),
                    vc.as_slice_mut(),
                    shape,
                    n_tokens,
                )?
            }};
        }
        match &mut cache.layers {
            HipKvLayersOf::F32(l) => fused!(l),
            HipKvLayersOf::F16(l) => fused!(l),
        }
        Ok(())
    }

    fn rms_norm_linear_shared(
        &self,
        x: &DeviceBuffer<f32>,
        weight: &DeviceBuffer<f32>,
        eps: f32,
        n_tokens: usize,
        h: &mut DeviceBuffer<f32>,
        outs: &mut [LinearOutput<'_, Self>],
    ) -> Result<()> {
        let ws: Vec<&HipMatrix> = outs.iter().map(|o| o.0).collect();
        if outs.is_empty() || !self.uses_q8(&ws, n_tokens) {
            self.rms_norm(x, weight, eps, n_tokens, h)?;
            return self.linear_shared(h, n_tokens, outs);
        }
        // The norm writes its 8-bit quantization directly (h stays unwritten).
        for (w, bias, out) in outs.iter() {
            check_linear_shapes(w, *bias, x, n_tokens, out)?;
        }
        let cols = ws[0].cols;
        let mut scratch = self.lock_q8_scratch()?;
        let mut xq = scratch
            .slice_mut(..q8_activation_bytes(n_tokens, cols))
            .map_err(gpu_error)?;
        self.norm.rms_norm_q8(
            &self.stream,
            x.as_slice(),
            weight.as_slice(),
            n_tokens,
            cols,
            eps,
            None,
            xq.slice_mut(..).map_err(gpu_error)?,
        )?;
        self.products_q8(xq.as_slice(), n_tokens, outs)
    }

    fn linear_residual(
        &self,
        w: &HipMatrix,
        x: &DeviceBuffer<f32>,
        n_tokens: usize,
        residual: &DeviceBuffer<f32>,
        scratch: &mut DeviceBuffer<f32>,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        if !self.uses_q8(&[w], n_tokens) {
            self.linear(w, None, x, n_tokens, scratch)?;
            return self.add(residual, scratch, out);
        }
        check_linear_shapes(w, None, x, n_tokens, out)?;
        let mut q8 = self.lock_q8_scratch()?;
        let mut xq = q8
            .slice_mut(..q8_activation_bytes(n_tokens, w.cols))
            .map_err(gpu_error)?;
        self.quant.quantize_activations(
            &self.stream,
            x.as_slice(),
            n_tokens,
            w.cols,
            xq.slice_mut(..).map_err(gpu_error)?,
        )?;
        self.product_residual_q8(w, xq.as_slice(), n_tokens, residual, out)
    }

    fn swiglu_linear_residual(
        &self,
        gate: &DeviceBuffer<f32>,
        up: &DeviceBuffer<f32>,
        ffn: &mut DeviceBuffer<f32>,
        w: &HipMatrix,
        n_tokens: usize,
        residual: &DeviceBuffer<f32>,
        scratch: &mut DeviceBuffer<f32>,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        if !self.uses_q8(&[w], n_tokens) {
            self.swiglu(gate, up, ffn)?;
            return self.linear_residual(w, ffn, n_tokens, residual, scratch, out);
        }
        // SwiGLU writes its 8-bit quantization directly (ffn stays unwritten).
        check_linear_shapes(w, None, gate, n_tokens, out)?;
        let mut q8 = self.lock_q8_scratch()?;
        let mut xq = q8
            .slice_mut(..q8_activation_bytes(n_tokens, w.cols))
            .map_err(gpu_error)?;
        self.elementwise.swiglu_q8(
            &self.stream,
            gate.as_slice(),
            up.as_slice(),
            n_tokens,
            w.cols,
            xq.slice_mut(..).map_err(gpu_error)?,
        )?;
        self.product_residual_q8(w, xq.as_slice(), n_tokens, residual, out)
    }

    fn rope(
        &self,
        x: &mut DeviceBuffer<f32>,
        tokens: &HipTokens,
        n_heads: usize,
        spec: &RopeSpec,
        freq_factors: Option<&DeviceBuffer<f32>>,
    ) -> Result<()> {
        let cfg = RopeConfig {
            n_heads,
            head_dim: spec.head_dim,
            n_rot: spec.n_rot,
            mode: spec.mode,
            freq_base: spec.freq_base,
            freq_scale: spec.freq_scale,
        };
        if self.ggml() {
            // The angles are computed on the host (as the CPU does, with the C library's
            // cosf / sinf): read the positions and factors back (this mode is not
            // recorded, see `run_recorded`).
            let positions = tokens.positions.to_vec().map_err(gpu_error)?;
            let factors = match freq_factors {
                Some(f) => Some(f.to_vec().map_err(gpu_error)?),
                None => None,
            };
            self.ggml_ops()?.rope_inplace(
                &self.stream,
                x.as_slice_mut(),
                &positions,
                factors.as_deref(),
                &cfg,
            )?;
            return Ok(());
        }
        self.rope.rope_inplace(
            &self.stream,
            x.as_slice_mut(),
            tokens.positions.as_slice(),
            freq_factors.map(|f| f.as_slice()),
            &cfg,
        )?;
        Ok(())
    }

    fn kv_write(
        &self,
        kv: &mut HipKvStorage,
        layer: usize,
        _pos0: usize,
        tokens: &HipTokens,
        k: &DeviceBuffer<f32>,
        v: &DeviceBuffer<f32>,
        rows: Range<usize>,
    ) -> Result<()> {
        let shape = kv.shape;
        let row_len = shape.row_len()?;
        let kr = row_range(&rows, row_len, k.len(), "K tensor")?;
        let vr = row_range(&rows, row_len, v.len(), "V tensor")?;
        let pr = row_range(&rows, 1, tokens.positions.len(), "positions")?;
        let (ks, vs) = (
            k.slice(kr).map_err(gpu_error)?,
            v.slice(vr).map_err(gpu_error)?,
        );
        // The position from device memory (`tokens`), so that a recorded step serves
        // every position.
        let ps = tokens.positions.slice(pr).map_err(gpu_error)?;
        let n_new = rows.len();
        match &mut kv.layers {
            HipKvLayersOf::F32(l) => self.kv_write_typed(l, shape, layer, ps, ks, vs, n_new),
            HipKvLayersOf::F16(l) => self.kv_write_typed(l, shape, layer, ps, ks, vs, n_new),
        }
    }

    fn attention(
        &self,
        kv: &HipKvStorage,
        layer: usize,
        params: &AttentionParams,
        pos0: usize,
        tokens: &HipTokens,
        q: &DeviceBuffer<f32>,
        rows: Range<usize>,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        if params.kv != kv.shape {
            return Err(ModelError::CacheMismatch(format!(
                "attention over {:?}, cache of {:?}",
                params.kv, kv.shape
            )));
        }
        let row_len = params.n_heads * params.kv.head_dim;
        let qr = row_range(&rows, row_len, q.len(), "query tensor")?;
        let or = row_range(&rows, row_len, out.len(), "attention output")?;
        let pr = row_range(&rows, 1, tokens.positions.len(), "positions")?;
        let qs = q.slice(qr).map_err(gpu_error)?;
        let os = out.slice_mut(or).map_err(gpu_error)?;
        let ps = tokens.positions.slice(pr).map_err(gpu_error)?;
        let n_q = rows.len();
        if self.ggml() {
            return self.attention_ggml(kv, layer, params, ps, qs, n_q, os);
        }
        let scratch = &kv.scratch;
        match &kv.layers {
            HipKvLayersOf::F32(l) => {
                self.attention_typed(l, layer, params, pos0, ps, qs, n_q, os, scratch)
            }
            HipKvLayersOf::F16(l) => {
                self.attention_typed(l, layer, params, pos0, ps, qs, n_q, os, scratch)
            }
        }
    }

    fn swiglu(
        &self,
        gate: &DeviceBuffer<f32>,
        up: &DeviceBuffer<f32>,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        if self.ggml() {
            let (g, u, o) = (gate.as_slice(), up.as_slice(), out.as_slice_mut());
            self.ggml_ops()?.swiglu(&self.stream, g, u, o)?;
            return Ok(());
        }
        self.elementwise.swiglu(
            &self.stream,
            gate.as_slice(),
            up.as_slice(),
            out.as_slice_mut(),
        )?;
        Ok(())
    }

    fn add(
        &self,
        a: &DeviceBuffer<f32>,
        b: &DeviceBuffer<f32>,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        self.elementwise
            .add(&self.stream, a.as_slice(), b.as_slice(), out.as_slice_mut())?;
        Ok(())
    }

    fn gather_rows(
        &self,
        x: &DeviceBuffer<f32>,
        row_len: usize,
        rows: &[usize],
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        if rows.len().checked_mul(row_len) != Some(out.len()) {
            return Err(shape_error(
                "gather_rows",
                format!(
                    "{} rows of {row_len} into a tensor of {}",
                    rows.len(),
                    out.len()
                ),
            ));
        }
        for (i, &r) in rows.iter().enumerate() {
            let src = x
                .slice(row_range(&(r..r + 1), row_len, x.len(), "source tensor")?)
                .map_err(gpu_error)?;
            let mut dst = out
                .slice_mut(i * row_len..(i + 1) * row_len)
                .map_err(gpu_error)?;
            dst.copy_from_device(&src).map_err(gpu_error)?;
        }
        Ok(())
    }

    fn write_tokens(&self, tokens: &mut HipTokens, ids: &[u32], positions: &[i32]) -> Result<()> {
        if ids.len() != tokens.ids.len() || positions.len() != tokens.positions.len() {
            return Err(shape_error(
                "write_tokens",
                format!(
                    "{} ids and {} positions into buffers of {} and {}",
                    ids.len(),
                    positions.len(),
                    tokens.ids.len(),
                    tokens.positions.len()
                ),
            ));
        }
        tokens.ids.copy_from_host(ids).map_err(gpu_error)?;
        tokens
            .positions
            .copy_from_host(positions)
            .map_err(gpu_error)?;
        Ok(())
    }

    /// Records `step` into a graph on the first call (stream capture, then
    /// instantiation) and replays the graph with one launch on later calls.
    unsafe fn run_recorded(
        &self,
        recording: &mut Option<Recording>,
        step: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        if self.ggml() {
            // Not recorded: GgmlCompatible is a correctness mode whose products with F16
            // weights allocate temporaries; each step is enqueued as it comes.
            return step();
        }
        if recording
            .as_ref()
            .is_some_and(|r| !<dyn Any>::is::<GraphExec>(&**r))
        {
            return Err(ModelError::CacheMismatch(
                "a recorded step of another backend was passed to the HIP backend".into(),
            ));
        }
        if recording.is_none() {
            let capture = self.stream.begin_capture().map_err(gpu_error)?;
            let enqueued = step();
            // End the capture whether or not the step succeeded (an error discards it).
            let graph = capture.end().map_err(gpu_error);
            enqueued?;
            let exec = graph?.instantiate().map_err(gpu_error)?;
            *recording = Some(Box::new(exec));
        }
        let exec = recording
            .as_ref()
            .and_then(|r| r.downcast_ref::<GraphExec>())
            .ok_or_else(|| ModelError::DeviceUnavailable("no recorded graph to replay".into()))?;
        // SAFETY: the caller keeps every buffer the step touched alive and in place while
        // the recording exists (this method's contract); the graph was captured on this
        // backend's stream and is replayed on it.
        unsafe { exec.launch(&self.stream) }.map_err(gpu_error)
    }
}
