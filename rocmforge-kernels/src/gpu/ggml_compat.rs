//! llama.cpp's CPU arithmetic on the GPU: the kernels of `ggml_compat.hip`, which the HIP
//! backend's `GgmlCompatible` mode runs so that the GPU rounds as llama.cpp's x86 AVX2
//! CPU backend does (the CPU reference is `rocmforge_model::backend::ggml_compat`).
//!
//! * [`GgmlCompatOps::quantize_activations`]: 8-bit activations with llama.cpp's rounding
//!   (`127 / amax`, round half to even, `d` and `s` rounded to f16), written in the byte
//!   format of [`QuantOps::quantize_activations`](super::QuantOps::quantize_activations) so
//!   that [`QuantOps::matvec_q8`](super::QuantOps::matvec_q8) computes the products;
//! * [`GgmlCompatOps::q8_roundtrip`]: each value replaced by the value its 8 bits stand
//!   for (`q · d`), for products through the `f32` GEMM; [`GgmlCompatOps::round_f16`]:
//!   the f16 activations of products with F16 weights;
//! * [`GgmlCompatOps::swiglu`] (`ggml_v_expf`), [`GgmlCompatOps::rope_inplace`] (fused
//!   multiply-adds), [`GgmlCompatOps::rms_norm`] (`f64` sum);
//! * [`GgmlCompatOps::attention_f16`] / [`attention_f32`](GgmlCompatOps::attention_f32):
//!   flash attention over an f16 cache as `ggml_compute_forward_flash_attn_ext_f16`
//!   computes it (f16 query, f16 accumulation of V; its split-KV and tiled paths too),
//!   one block per query row: slow, and exact.

use half::f16;
use rocmforge_hip::{
    DeviceBuffer, DeviceMemory, DeviceSlice, DeviceSliceMut, Dim3, In, LaunchConfig, Out, Stream,
    TypedKernel,
};

use super::{grid_stride_config, KernelLoader, RopeConfig};
use crate::cpu::q8_activations::{q8_activation_bytes, q8_row_bytes};
use crate::cpu::{AttentionParams, RopeMode};
use crate::error::shape_error;
use crate::kernel_source::GGML_COMPAT;
use crate::quant::GgmlType;
use crate::Result;

/// Threads per block of the grid-stride kernels (a multiple of 32: quantization blocks
/// of 32 values stay inside one block).
const THREADS: u32 = 256;
/// Threads per block of the attention kernel (`RF_GC_LANES`).
const ATTN_LANES: u32 = 32;
/// The largest head dimension of the attention kernel (`RF_GC_DMAX`).
pub const GGML_ATTN_MAX_HEAD_DIM: usize = 256;
/// Query tokens from which llama.cpp's CPU flash attention takes its tiled path.
pub const GGML_ATTN_TILE_Q: usize = 64;
/// Threads per block of the RMSNorm kernel (a power of two, at most 1024).
const NORM_THREADS: u32 = 256;
/// Grid y (the queries of an attention call) is at most this.
const QUERY_LIMIT: usize = 65535;

/// Which 8-bit activation type a weight type's llama.cpp dot product takes (ggml's
/// `vec_dot_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlQ8Kind {
    /// `block_q8_0` (scale only): the activations of Q8_0 weights.
    Q8_0,
    /// `block_q8_1` (scale and `s = f16(d · Σq)`): the activations of Q4_1 and Q5_1.
    Q8_1,
}

impl GgmlQ8Kind {
    /// The kind `ty`'s products quantize their activations to in the emulation (the
    /// types whose llama.cpp x86 dot product rocmforge reproduces: Q4_1, Q5_1, Q8_0), or
    /// `None`.
    pub fn of(ty: GgmlType) -> Option<Self> {
        match ty {
            GgmlType::Q4_1 | GgmlType::Q5_1 => Some(GgmlQ8Kind::Q8_1),
            GgmlType::Q8_0 => Some(GgmlQ8Kind::Q8_0),
            _ => None,
        }
    }
}

/// rf_ggml_matvec_<type>: weights, quantized x, y, rows, cols, n_tokens, x row bytes.
type MatvecKernel = TypedKernel<(In<u8>, In<u8>, Out<f32>, u32, u32, u32, u32)>;

/// The slot of `ty` in [`GgmlCompatOps`]'s matvec kernels.
fn matvec_index(ty: GgmlType) -> Option<usize> {
    match ty {
        GgmlType::Q4_1 => Some(0),
        GgmlType::Q5_1 => Some(1),
        GgmlType::Q8_0 => Some(2),
        _ => None,
    }
}

type AttnKernel<T> = TypedKernel<(
    In<f32>,
    In<T>,
    In<T>,
    Out<f32>,
    In<i32>,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    f32,
    u32,
    u32,
)>;

/// The kernels of `ggml_compat.hip`.
#[derive(Debug, Clone)]
pub struct GgmlCompatOps {
    quantize: TypedKernel<(In<f32>, Out<u8>, u64, u32, u32, u32)>,
    roundtrip: TypedKernel<(In<f32>, Out<f32>, u64)>,
    round_f16: TypedKernel<(In<f32>, Out<f32>, u64)>,
    swiglu: TypedKernel<(In<f32>, In<f32>, Out<f32>, u64, u64)>,
    rope: TypedKernel<(Out<f32>, In<f32>, u32, u32, u32, u32, u32)>,
    rms_norm: TypedKernel<(In<f32>, In<f32>, Out<f32>, u32, f32)>,
    /// For Q4_1, Q5_1, Q8_0 (the order of [`GgmlQ8Kind::of`]'s types in [`matvec_index`]).
    matvec: [MatvecKernel; 3],
    attn_f32: AttnKernel<f32>,
    attn_f16: AttnKernel<f16>,
}

fn to_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| shape_error(op, format!("{what} = {v} exceeds 2^32 - 1")))
}

/// A grid-stride launch over `n` values in blocks of [`THREADS`].
fn stride_config(n: usize) -> Result<LaunchConfig> {
    let mut cfg = grid_stride_config(n)?;
    cfg.block = Dim3::x(THREADS);
    Ok(cfg)
}

/// Checks that `n` values are whole blocks of 32 (the quantization blocks).
fn check_blocks(op: &'static str, n: usize) -> Result<()> {
    if n % 32 != 0 {
        return Err(shape_error(
            op,
            format!("{n} values are not whole blocks of 32"),
        ));
    }
    Ok(())
}

impl GgmlCompatOps {
    /// Loads the kernels (compiling them at first use).
    pub fn load(loader: &KernelLoader) -> Result<Self> {
        let module = loader.module(&GGML_COMPAT)?;
        // SAFETY: the signatures match ggml_compat.hip (`In` for const pointers, `Out` for
        // written ones, scalars in order). Bounds, as the launchers establish them:
        // * rf_ggml_quantize_q8 (x, out, n, cols, row_bytes, q8_1): reads x[i < n], writes
        //   bytes [t · row_bytes, (t + 1) · row_bytes) of out for t < n / cols; the
        //   launcher passes n = x.len() = rows · cols (cols a positive multiple of 32),
        //   row_bytes = q8_row_bytes(cols), an out of rows · row_bytes bytes, 16-byte
        //   aligned, and blocks of THREADS (a multiple of 32) threads.
        // * rf_ggml_q8_roundtrip / rf_ggml_round_f16 (x, out, n): i < n = both lengths
        //   (a multiple of 32 for the round trip; blocks of THREADS threads).
        // * rf_ggml_swiglu (gate, up, out, n, n_vec): i < n = all three lengths.
        // * rf_ggml_rope (x, cs, n_tokens, n_heads, head_dim, n_rot, neox): pairs (token <
        //   n_tokens, head < n_heads, i < n_rot / 2) of x (n_tokens · n_heads · head_dim
        //   values, n_rot <= head_dim, checked) and cs[2 (token · n_rot / 2 + i) + 0|1]
        //   (the launcher uploads n_tokens · n_rot values).
        // * rf_ggml_rms_norm (x, weight, out, n, eps): one block of NORM_THREADS (a power
        //   of two <= 1024, the size of its shared array) per row, row blockIdx.x of n
        //   values of x and out, weight[i < n]; grid = rows = x.len() / n.
        // * rf_ggml_matvec_<type> (w, xq, y, rows, cols, n_tokens, x_row_bytes): one
        //   thread per (token, row) < n_tokens · rows = y.len(); reads weight row r
        //   (cols / 32 blocks of the type's size: the launcher checks w holds rows of
        //   them, cols a multiple of 32) and bytes [t · x_row_bytes, (t + 1) · x_row_bytes)
        //   of xq (x_row_bytes = q8_row_bytes(cols), xq checked to hold n_tokens rows,
        //   16-byte aligned, so the f32 pairs after the quants are 4-byte aligned).
        // * rf_ggml_attn_* (q, k, v, out, positions, n_q, n_ctx, n_heads, group,
        //   n_kv_heads, head_dim, ...): grid (n_heads, n_q), RF_GC_LANES threads; reads
        //   positions[t < n_q] (the launcher checks n_q of them) and returns unless 0 <=
        //   pos < n_ctx (and the last query's too); cache rows <= pos < n_ctx of KV head
        //   h / group < n_kv_heads (group = n_heads / n_kv_heads exactly), elements <
        //   head_dim <= RF_GC_DMAX (its local and shared arrays); the caches hold n_ctx ·
        //   n_kv_heads · head_dim and q, out n_q · n_heads · head_dim (checked).
        unsafe {
            Ok(Self {
                quantize: module.function("rf_ggml_quantize_q8")?.into_typed(),
                roundtrip: module.function("rf_ggml_q8_roundtrip")?.into_typed(),
                round_f16: module.function("rf_ggml_round_f16")?.into_typed(),
                swiglu: module.function("rf_ggml_swiglu")?.into_typed(),
                rope: module.function("rf_ggml_rope")?.into_typed(),
                rms_norm: module.function("rf_ggml_rms_norm")?.into_typed(),
                matvec: [
                    module.function("rf_ggml_matvec_q4_1")?.into_typed(),
                    module.function("rf_ggml_matvec_q5_1")?.into_typed(),
                    module.function("rf_ggml_matvec_q8_0")?.into_typed(),
                ],
                attn_f32: module.function("rf_ggml_attn_f32")?.into_typed(),
                attn_f16: module.function("rf_ggml_attn_f16")?.into_typed(),
            })
        }
    }

    /// Quantizes `n_tokens` rows of `cols` activations (`cols` a positive multiple of 32)
    /// as llama.cpp's AVX2 `quantize_row_q8_0` / `quantize_row_q8_1` do, into `out`
    /// ([`q8_activation_bytes`]`(n_tokens, cols)` bytes, 16-byte aligned) in the format of
    /// [`QuantOps::quantize_activations`](super::QuantOps::quantize_activations): per
    /// block of 32, `q = round_half_even(x · (127 / amax))` as `i8`, then `d` = f16(amax /
    /// 127) and, for [`GgmlQ8Kind::Q8_1`], `s` = f16(`amax / 127 · Σq`) (for
    /// [`GgmlQ8Kind::Q8_0`], `s = d · Σq`, which llama.cpp does not use), both as `f32`
    /// values. `rocmforge_model`'s `ggml_compat::quantize::Q8Rows` gives the same `q`,
    /// `d` and `s`. Allocates nothing (graph-capturable).
    ///
    /// Errors if `cols` is not a positive multiple of 32, a length does not match, or
    /// `out` is not 16-byte aligned.
    pub fn quantize_activations(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        n_tokens: usize,
        cols: usize,
        kind: GgmlQ8Kind,
        out: DeviceSliceMut<u8>,
    ) -> Result<()> {
        const OP: &str = "ggml quantize_activations";
        if cols == 0 || cols % 32 != 0 {
            return Err(shape_error(
                OP,
                format!("{cols} columns: 8-bit activations need a positive multiple of 32"),
            ));
        }
        let cols32 = to_u32(OP, "cols", cols)?;
        let n = n_tokens
            .checked_mul(cols)
            .ok_or_else(|| shape_error(OP, format!("{n_tokens} tokens × {cols} overflow")))?;
        let bytes = q8_activation_bytes(n_tokens, cols);
        if x.len() != n || out.len() != bytes {
            return Err(shape_error(
                OP,
                format!(
                    "{n_tokens} tokens of {cols}: x has {} values (expected {n}), out {} bytes \
                     (expected {bytes})",
                    x.len(),
                    out.len()
                ),
            ));
        }
        if out.device_ptr() as usize % 16 != 0 {
            return Err(shape_error(
                OP,
                "out must start at a 16-byte-aligned device address",
            ));
        }
        let row_bytes = to_u32(OP, "bytes per quantized row", q8_row_bytes(cols))?;
        if n == 0 {
            return Ok(());
        }
        let q8_1 = u32::from(kind == GgmlQ8Kind::Q8_1);
        self.quantize.launch(
            stream,
            &stride_config(n)?,
            (x, out, n as u64, cols32, row_bytes, q8_1),
        )?;
        Ok(())
    }

    /// `y = W · x̂` for `n_tokens` rows of activations `xq` quantized by
    /// [`quantize_activations`](Self::quantize_activations) with the kind of `ty`
    /// ([`GgmlQ8Kind::of`]), as llama.cpp's AVX2 `ggml_vec_dot_q4_1_q8_1`,
    /// `…_q5_1_q8_1`, `…_q8_0_q8_0` compute each element (`ggml_compat::vec_dot::dot`:
    /// exact integer sums of four products per lane, `fma(d_w · d_x, sum, lane)` block by
    /// block, the lanes summed in `hsum8`'s order, plus the `fma` chain of `m · s`), bit
    /// for bit; `y`: `[n_tokens, rows]`. `weights`: `rows` rows of `cols` values of `ty`
    /// (Q4_1, Q5_1 or Q8_0). One thread per output element: each element the same for
    /// any batch size. Allocates nothing (graph-capturable).
    ///
    /// Errors if `ty` is another type, `cols` is not a positive multiple of 32, a length
    /// does not match, or `xq` is not 16-byte aligned.
    #[allow(clippy::too_many_arguments)]
    pub fn matvec(
        &self,
        stream: &Stream,
        ty: GgmlType,
        weights: DeviceSlice<u8>,
        rows: usize,
        cols: usize,
        xq: DeviceSlice<u8>,
        n_tokens: usize,
        y: DeviceSliceMut<f32>,
    ) -> Result<()> {
        const OP: &str = "ggml matvec";
        let index = matvec_index(ty).ok_or_else(|| {
            shape_error(
                OP,
                format!("{}: only Q4_1, Q5_1 and Q8_0 are emulated", ty.name()),
            )
        })?;
        if cols == 0 || cols % 32 != 0 {
            return Err(shape_error(
                OP,
                format!("{cols} columns: a positive multiple of 32 is needed"),
            ));
        }
        let w_len = ty
            .row_bytes(cols)?
            .checked_mul(rows)
            .ok_or_else(|| shape_error(OP, "rows × row bytes overflows"))?;
        let x_len = q8_activation_bytes(n_tokens, cols);
        let y_len = n_tokens
            .checked_mul(rows)
            .ok_or_else(|| shape_error(OP, "n_tokens × rows overflows"))?;
        if weights.len() != w_len || xq.len() != x_len || y.len() != y_len {
            return Err(shape_error(
                OP,
                format!(
                    "{rows} × {cols} {} for {n_tokens} tokens: weights {} bytes (expected                      {w_len}), xq {} bytes (expected {x_len}), y {} (expected {y_len})",
                    ty.name(),
                    weights.len(),
                    xq.len(),
                    y.len()
                ),
            ));
        }
        if xq.device_ptr() as usize % 16 != 0 {
            return Err(shape_error(
                OP,
                "xq must start at a 16-byte-aligned device address",
            ));
        }
        if y_len == 0 {
            return Ok(());
        }
        self.matvec[index].launch(
            stream,
            &stride_config(y_len)?,
            (
                weights,
                xq,
                y,
                to_u32(OP, "rows", rows)?,
                to_u32(OP, "cols", cols)?,
                to_u32(OP, "n_tokens", n_tokens)?,
                to_u32(OP, "bytes per quantized row", q8_row_bytes(cols))?,
            ),
        )?;
        Ok(())
    }

    /// `out[i] = q · d` for the 8-bit quantization of `x` that
    /// [`quantize_activations`](Self::quantize_activations) computes (per block of 32
    /// consecutive values; `q · d` is exact in `f32`): the activations llama.cpp's
    /// quantized products see, for a product through the `f32` GEMM. Equal to the
    /// integer dot products up to `f32` rounding, and, for Q8_1 types, up to the f16
    /// rounding of `s` (relative 2⁻¹¹ of the minimum term).
    ///
    /// Errors unless `x` and `out` have the same length, a multiple of 32.
    pub fn q8_roundtrip(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        const OP: &str = "ggml q8_roundtrip";
        let n = x.len();
        if out.len() != n {
            return Err(shape_error(
                OP,
                format!("x has {n} values, out {}", out.len()),
            ));
        }
        check_blocks(OP, n)?;
        if n == 0 {
            return Ok(());
        }
        self.roundtrip
            .launch(stream, &stride_config(n)?, (x, out, n as u64))?;
        Ok(())
    }

    /// `out[i] = f32(f16(x[i]))` (round to nearest even): the activations of llama.cpp's
    /// products with F16 weights (`vec_dot_type` F16).
    ///
    /// Errors unless `x` and `out` have the same length.
    pub fn round_f16(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        let n = x.len();
        if out.len() != n {
            return Err(shape_error(
                "ggml round_f16",
                format!("x has {n} values, out {}", out.len()),
            ));
        }
        if n == 0 {
            return Ok(());
        }
        self.round_f16
            .launch(stream, &stride_config(n)?, (x, out, n as u64))?;
        Ok(())
    }

    /// `out = silu(gate) · up` as `ggml_vec_swiglu_f32` computes it: `ggml_v_expf` for
    /// the first `8 · ⌊n / 8⌋` values, `expf` for the rest (as
    /// `ggml_compat::activation::swiglu`, which treats the tensor as one row).
    ///
    /// Errors unless the three lengths are equal.
    pub fn swiglu(
        &self,
        stream: &Stream,
        gate: DeviceSlice<f32>,
        up: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        let n = out.len();
        if gate.len() != n || up.len() != n {
            return Err(shape_error(
                "ggml swiglu",
                format!("gate {}, up {}, output {n}", gate.len(), up.len()),
            ));
        }
        if n == 0 {
            return Ok(());
        }
        let n_vec = n - n % 8;
        self.swiglu.launch(
            stream,
            &stride_config(n)?,
            (gate, up, out, n as u64, n_vec as u64),
        )?;
        Ok(())
    }

    /// RoPE in place as llama.cpp's CPU computes it (`ggml_compat::rope::rope_inplace`,
    /// bit for bit): the angles of each token on the host, exactly as the CPU computes
    /// them (`theta` by repeated `f32` products of `freq_base^(-2 / n_rot)`, `t =
    /// freq_scale · (theta / factor)`, the C library's `cosf` / `sinf`: glibc's, which are
    /// not always correctly rounded), then on the GPU the rotation `fma(x0, cos, -(x1 ·
    /// sin))`, `fma(x0, sin, x1 · cos)`. `x`: `[positions.len(), n_heads, head_dim]`, token
    /// `t` at `positions[t]` (host values). Uploads the angles: not graph-capturable.
    ///
    /// Errors if the shape does not fit, `n_rot` is odd, zero or larger than `head_dim`,
    /// or the factors are not `n_rot / 2` long.
    pub fn rope_inplace(
        &self,
        stream: &Stream,
        x: DeviceSliceMut<f32>,
        positions: &[i32],
        freq_factors: Option<&[f32]>,
        cfg: &RopeConfig,
    ) -> Result<()> {
        const OP: &str = "ggml rope";
        let n_tokens = positions.len();
        let pairs = cfg.check_rotation(OP, n_tokens, x.len(), freq_factors.map(|f| f.len()))?;
        if pairs == 0 {
            return Ok(());
        }
        let cs = rope_angles(positions, freq_factors, cfg);
        let cs = DeviceBuffer::from_slice(stream, &cs)?;
        let neox = u32::from(cfg.mode == RopeMode::Neox);
        self.rope.launch(
            stream,
            &stride_config(pairs)?,
            (
                x,
                cs.as_slice(),
                to_u32(OP, "n_tokens", n_tokens)?,
                to_u32(OP, "n_heads", cfg.n_heads)?,
                to_u32(OP, "head_dim", cfg.head_dim)?,
                to_u32(OP, "n_rot", cfg.n_rot)?,
                neox,
            ),
        )?;
        Ok(())
    }

    /// RMSNorm of `rows` rows of `weight.len()` values with the `f64` sum of the `f32`
    /// squares (as `rocmforge_kernels::cpu::rms_norm` and ggml compute it; the sum's
    /// order differs, which changes the `f64` sum in its last bits only).
    ///
    /// Errors if a length does not match or the row length is 0 or 2^32 or more.
    pub fn rms_norm(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        weight: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
        rows: usize,
        eps: f32,
    ) -> Result<()> {
        const OP: &str = "ggml rms_norm";
        let n = weight.len();
        let n32 = to_u32(OP, "row length", n)?;
        let total = rows.checked_mul(n);
        if n == 0 || total != Some(x.len()) || total != Some(out.len()) {
            return Err(shape_error(
                OP,
                format!("{rows} rows of {n}: x has {}, out {}", x.len(), out.len()),
            ));
        }
        if rows == 0 {
            return Ok(());
        }
        self.rms_norm.launch(
            stream,
            &LaunchConfig::per_row(rows, NORM_THREADS)?,
            (x, weight, out, n32, eps),
        )?;
        Ok(())
    }

    /// Causal grouped-query attention of `n_q` queries (`q`, `out`: `[n_q, n_heads,
    /// head_dim]`; query `t` at the position `positions[t]` in device memory, which sees
    /// cache positions `0 ..= positions[t]`) over an f16 cache (`[n_ctx, n_kv_heads,
    /// head_dim]`), as llama.cpp's CPU flash attention computes it
    /// (`ggml_compat::flash_attn::flash_attn`): the one-row path (f16 query, f16 dot
    /// products, f16 accumulation of V) for fewer than [`GGML_ATTN_TILE_Q`] queries, the
    /// split-KV path for one query against a padded cache of 512 positions or more
    /// (chunks for `llama_threads` threads), the tiled path for more queries. The
    /// positions must be consecutive (`positions[t] = positions[0] + t`, as the forward
    /// pass makes them); a position outside the cache computes nothing for its row.
    /// Allocates nothing (graph-capturable).
    ///
    /// Errors if a length or the head counts do not fit, `head_dim` exceeds
    /// [`GGML_ATTN_MAX_HEAD_DIM`], or `n_q` exceeds 65535.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_f16(
        &self,
        stream: &Stream,
        p: &AttentionParams,
        q: DeviceSlice<f32>,
        n_q: usize,
        positions: DeviceSlice<i32>,
        k_cache: DeviceSlice<f16>,
        v_cache: DeviceSlice<f16>,
        out: DeviceSliceMut<f32>,
        llama_threads: usize,
    ) -> Result<()> {
        let args = Self::attention_args(
            p,
            &q,
            n_q,
            &positions,
            k_cache.len(),
            v_cache.len(),
            &out,
            llama_threads,
        )?;
        let Some((cfg, s)) = args else {
            return Ok(());
        };
        self.attn_f16.launch(
            stream,
            &cfg,
            (
                q, k_cache, v_cache, out, positions, s[0], s[1], s[2], s[3], s[4], s[5], p.scale,
                s[6], s[7],
            ),
        )?;
        Ok(())
    }

    /// [`attention_f16`](Self::attention_f16) over an `f32` cache, whose values are
    /// rounded to f16 when read (as llama.cpp casts an f32 cache before the op).
    #[allow(clippy::too_many_arguments)]
    pub fn attention_f32(
        &self,
        stream: &Stream,
        p: &AttentionParams,
        q: DeviceSlice<f32>,
        n_q: usize,
        positions: DeviceSlice<i32>,
        k_cache: DeviceSlice<f32>,
        v_cache: DeviceSlice<f32>,
        out: DeviceSliceMut<f32>,
        llama_threads: usize,
    ) -> Result<()> {
        let args = Self::attention_args(
            p,
            &q,
            n_q,
            &positions,
            k_cache.len(),
            v_cache.len(),
            &out,
            llama_threads,
        )?;
        let Some((cfg, s)) = args else {
            return Ok(());
        };
        self.attn_f32.launch(
            stream,
            &cfg,
            (
                q, k_cache, v_cache, out, positions, s[0], s[1], s[2], s[3], s[4], s[5], p.scale,
                s[6], s[7],
            ),
        )?;
        Ok(())
    }

    /// The checks of an attention call, and its launch: the grid and the scalars `n_q,
    /// n_ctx, n_heads, group, n_kv_heads, head_dim, path, threads`; `None` for no queries.
    #[allow(clippy::too_many_arguments)]
    fn attention_args(
        p: &AttentionParams,
        q: &DeviceSlice<f32>,
        n_q: usize,
        positions: &DeviceSlice<i32>,
        k_len: usize,
        v_len: usize,
        out: &DeviceSliceMut<f32>,
        llama_threads: usize,
    ) -> Result<Option<(LaunchConfig, [u32; 8])>> {
        const OP: &str = "ggml attention";
        let (n_heads, n_kv_heads, d, n_ctx) =
            (p.n_heads, p.kv.n_kv_heads, p.kv.head_dim, p.kv.n_ctx);
        if n_heads == 0
            || n_kv_heads == 0
            || d == 0
            || d > GGML_ATTN_MAX_HEAD_DIM
            || n_heads % n_kv_heads != 0
        {
            return Err(shape_error(
                OP,
                format!(
                    "{n_heads} query heads, {n_kv_heads} KV heads of {d} dimensions (at most \
                     {GGML_ATTN_MAX_HEAD_DIM}, KV heads dividing query heads)"
                ),
            ));
        }
        let q_len = n_q
            .checked_mul(n_heads)
            .and_then(|v| v.checked_mul(d))
            .ok_or_else(|| shape_error(OP, "n_q × n_heads × head_dim overflows"))?;
        let cache_len = n_ctx
            .checked_mul(n_kv_heads)
            .and_then(|v| v.checked_mul(d))
            .ok_or_else(|| shape_error(OP, "n_ctx × n_kv_heads × head_dim overflows"))?;
        if q.len() != q_len || out.len() != q_len || k_len != cache_len || v_len != cache_len {
            return Err(shape_error(
                OP,
                format!(
                    "{n_q} queries: q has {}, out {} (expected {q_len}); caches {k_len} and \
                     {v_len} (expected {cache_len})",
                    q.len(),
                    out.len()
                ),
            ));
        }
        if positions.len() != n_q {
            return Err(shape_error(
                OP,
                format!("{} positions for {n_q} queries", positions.len()),
            ));
        }
        if n_q > QUERY_LIMIT || n_ctx >= 1 << 31 {
            return Err(shape_error(
                OP,
                format!("{n_q} queries (at most {QUERY_LIMIT}), n_ctx {n_ctx} (below 2^31)"),
            ));
        }
        if n_q == 0 {
            return Ok(None);
        }
        let path = u32::from(n_q >= GGML_ATTN_TILE_Q);
        let threads = to_u32(OP, "llama_threads", llama_threads.clamp(1, 1 << 16))?;
        let cfg = LaunchConfig {
            grid: Dim3 {
                x: to_u32(OP, "n_heads", n_heads)?,
                y: n_q as u32,
                z: 1,
            },
            block: Dim3::x(ATTN_LANES),
            shared_mem_bytes: 0,
        };
        Ok(Some((
            cfg,
            [
                n_q as u32,
                n_ctx as u32,
                n_heads as u32,
                (n_heads / n_kv_heads) as u32,
                n_kv_heads as u32,
                d as u32,
                path,
                threads,
            ],
        )))
    }
}

/// `(cos, sin)` of every pair of every token, `[positions.len(), n_rot / 2]` flattened, as
/// `ggml_rope_cache_init` (and `rocmforge_model`'s `ggml_compat::rope`) computes them.
fn rope_angles(positions: &[i32], factors: Option<&[f32]>, cfg: &RopeConfig) -> Vec<f32> {
    let n_pairs = cfg.n_rot / 2;
    let theta_scale = cfg.freq_base.powf(-2.0f32 / cfg.n_rot as f32);
    let mut cs = Vec::with_capacity(positions.len() * n_pairs * 2);
    for &pos in positions {
        let mut theta = pos as f32;
        for i in 0..n_pairs {
            let ff = factors.map_or(1.0, |f| f[i]);
            let t = cfg.freq_scale * (theta / ff);
            cs.push(t.cos());
            cs.push(t.sin());
            theta *= theta_scale;
        }
    }
    cs
}
