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

use super::{row_range, Backend, KvDtype, KvLayout, KvStore, LinearOutput, Recording, RopeSpec};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

mod arithmetic;
mod checks;
mod kv_storage;
mod layer_ops;
mod matrix;
mod tokens;

pub use arithmetic::{GpuArithmetic, Q8_MAX_TOKENS};
pub use kv_storage::{HipKvLayers, HipKvStorage};
pub use matrix::HipMatrix;
pub use tokens::HipTokens;

use checks::*;
use kv_storage::*;

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
    /// Forward passes take turns on the one stream ([`Backend::exclusive_use`]).
    passes: Mutex<()>,
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
            passes: Mutex::new(()),
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
    fn exclusive_use(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        // A panic in another pass leaves nothing half-done that this lock guards.
        Some(self.passes.lock().unwrap_or_else(|e| e.into_inner()))
    }

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
