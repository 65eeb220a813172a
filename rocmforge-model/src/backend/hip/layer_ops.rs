//! The HIP backend's operations behind the [`Backend`] methods: the 8-bit and `f32`
//! products, llama.cpp-compatible routing, typed KV-cache writes and attention.

use super::*;

impl HipBackend {
    /// Whether `linear` over `n_tokens` tokens with these weights takes the 8-bit path.
    pub(super) fn uses_q8(&self, ws: &[&HipMatrix], n_tokens: usize) -> bool {
        self.arithmetic == GpuArithmetic::Fast
            && (1..=Q8_MAX_TOKENS).contains(&n_tokens)
            && ws
                .iter()
                .all(|w| matvec_reads_q8(w.ty) && w.cols == ws[0].cols)
    }

    pub(super) fn lock_q8_scratch(&self) -> Result<std::sync::MutexGuard<'_, DeviceBuffer<u8>>> {
        self.q8_scratch
            .lock()
            .map_err(|_| ModelError::DeviceUnavailable("activation scratch lock poisoned".into()))
    }

    /// The products `outs` of already quantized activations `xq` (`n_tokens` rows): the
    /// matrices of one type in one launch per token (`matvec_q8_multi`), then biases.
    pub(super) fn products_q8(
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
    pub(super) fn product_residual_q8(
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
    pub(super) fn linear_q8(
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
    pub(super) fn linear_f32(
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
    pub(super) fn linear_ggml(
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
    pub(super) fn attention_ggml(
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
    pub(super) fn kv_write_typed<T: GpuKvElement>(
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
    pub(super) fn attention_typed<T: GpuKvElement>(
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

    pub(super) fn alloc_kv_layers<T: bytemuck::Pod>(
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
