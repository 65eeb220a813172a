//! Attention on the GPU: writing new K/V rows into the KV cache, causal grouped-query
//! attention (split-sequence decode and tiled prefill), and argmax for greedy decoding.
//!
//! Shapes and semantics are those of the CPU reference ([`crate::cpu::attention`],
//! [`crate::cpu::kv_cache_write`], [`crate::cpu::argmax`]):
//!
//! * `q`, `out`: `[n_q, n_heads, head_dim]`, `f32`; query `i` is at position `pos0 + i` and
//!   attends to cache positions `0 ..= pos0 + i`;
//! * K and V caches: `[n_ctx, n_kv_heads, head_dim]` in `f32`, `f16` or `bf16`
//!   ([`GpuKvElement`]; K and V of one call have the same element type);
//! * query head `h` reads KV head `h / (n_heads / n_kv_heads)`.
//!
//! The GPU kernels take `head_dim` a multiple of 4, at most 256 (64, 80, 96, 128, 256 …),
//! caches whose device address is aligned to 4 elements (any whole cache buffer, or a
//! view starting at a multiple of 4 elements), and `n_ctx < 2^31`.
//!
//! # Paths
//!
//! * **Decode** ([`AttentionOps::decode_attention`], chosen by
//!   [`AttentionOps::attention`] for `n_q <= DECODE_MAX_QUERIES`): the visible positions
//!   are cut into `n_splits` chunks (a multiple of 128 positions each), one block per
//!   (head, chunk, query) computes a partial result with a running maximum, and a second
//!   kernel combines the partials. With one chunk the first kernel writes the output
//!   itself. The chunk count targets about eight blocks per compute unit.
//! * **Prefill** ([`AttentionOps::prefill_attention`]): one block per (tile of 64, 32 or 16
//!   queries for `head_dim` up to 64, 128 or 256, head); key tiles stream through shared
//!   memory with an online softmax. No score matrix touches global memory.
//!
//! Both accumulate in `f32`; the GPU tests compare them with the CPU's `f64` reference.

use half::{bf16, f16};
use rocmforge_hip::{
    DeviceBuffer, DeviceMemory, DeviceSlice, DeviceSliceMut, Dim3, In, LaunchConfig, Module, Out,
    Stream, TypedKernel,
};

use super::{grid_stride_config, KernelLoader};
use crate::cpu::{
    check_len, check_nonzero, checked_product, AttentionParams, KvCacheShape, KvElement,
};
use crate::error::shape_error;
use crate::{Result, ATTENTION};

/// Threads per block of every attention kernel (`RF_ATTN_THREADS`): a multiple of 64.
const THREADS: u32 = 128;
/// The largest head dimension the kernels take (`RF_ATTN_DMAX`).
pub const MAX_HEAD_DIM: usize = 256;
/// Positions per decode tile (one per thread); decode chunks are multiples of it.
const DECODE_TILE: usize = THREADS as usize;
/// [`AttentionOps::attention`] takes the decode path for at most this many queries.
pub const DECODE_MAX_QUERIES: usize = 8;
/// Decode and combine grids put the queries on grid z / y: at most this many per call.
const DECODE_QUERY_LIMIT: usize = 65535;
/// Grid y of the prefill kernel is the head count.
const HEAD_LIMIT: usize = 65535;
/// Cache capacity limit (positions are 32-bit in the kernels, with room for a chunk).
const MAX_CTX: usize = 1 << 31;
/// Elements per argmax block before another block is added, and the block limit.
const ARGMAX_PER_BLOCK: usize = THREADS as usize * 8;
const ARGMAX_MAX_BLOCKS: usize = 256;
/// Query rows per prefill tile for head_dim up to 64, 128, 256 (`rf_prefill_cfg::BQ`).
const PREFILL_TILES: [(usize, usize); 3] = [(64, 64), (128, 32), (256, 16)];

type WriteKernel<T> = TypedKernel<(In<f32>, Out<T>, u64)>;
type DecodeKernel<T> = TypedKernel<(
    In<f32>,
    In<T>,
    In<T>,
    Out<f32>,
    Out<f32>,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    f32,
)>;
type WriteAtKernel<T> = TypedKernel<(In<f32>, Out<T>, In<i32>, u64, u32, u32)>;
type DecodeAtKernel<T> = TypedKernel<(
    In<f32>,
    In<T>,
    In<T>,
    Out<f32>,
    Out<f32>,
    u32,
    In<i32>,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    f32,
)>;
type CombineAtKernel = TypedKernel<(In<f32>, Out<f32>, u32, In<i32>, u32, u32, u32, u32, u32)>;
type PrefillKernel<T> = TypedKernel<(
    In<f32>,
    In<T>,
    In<T>,
    Out<f32>,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    f32,
)>;

/// The kernels of one cache element type.
#[derive(Debug, Clone)]
pub struct KvKernels<T: bytemuck::Pod> {
    write: WriteKernel<T>,
    decode: DecodeKernel<T>,
    write_at: WriteAtKernel<T>,
    decode_at: DecodeAtKernel<T>,
    /// For head_dim up to 64, 128, 256 (the order of [`PREFILL_TILES`]).
    prefill: [PrefillKernel<T>; 3],
}

mod sealed {
    pub trait Sealed: bytemuck::Pod {
        fn kernels(ops: &super::AttentionOps) -> &super::KvKernels<Self>;
    }
}

/// A KV-cache element type with GPU attention kernels: `f32`, `half::f16`, `half::bf16`.
pub trait GpuKvElement: KvElement + bytemuck::Pod + sealed::Sealed {}

impl GpuKvElement for f32 {}
impl GpuKvElement for f16 {}
impl GpuKvElement for bf16 {}

impl sealed::Sealed for f32 {
    fn kernels(ops: &AttentionOps) -> &KvKernels<Self> {
        &ops.f32
    }
}
impl sealed::Sealed for f16 {
    fn kernels(ops: &AttentionOps) -> &KvKernels<Self> {
        &ops.f16
    }
}
impl sealed::Sealed for bf16 {
    fn kernels(ops: &AttentionOps) -> &KvKernels<Self> {
        &ops.bf16
    }
}

/// The kernels of `attention.hip`.
#[derive(Debug, Clone)]
pub struct AttentionOps {
    f32: KvKernels<f32>,
    f16: KvKernels<f16>,
    bf16: KvKernels<bf16>,
    combine: TypedKernel<(In<f32>, Out<f32>, u32, u32, u32, u32, u32, u32)>,
    combine_at: CombineAtKernel,
    argmax_partial: TypedKernel<(In<f32>, Out<u32>, Out<u32>, u32)>,
    argmax_final: TypedKernel<(In<u32>, Out<u32>, u32)>,
    compute_units: usize,
}

/// How a decode call is split over the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DecodePlan {
    /// Chunks of the longest query's visible positions (grid y).
    n_splits: usize,
    /// Positions per chunk: a multiple of [`DECODE_TILE`].
    chunk: usize,
}

/// The most chunks [`decode_plan`] makes for `n_q` queries, `n_heads` heads and at most
/// `n_kv` visible positions: about eight blocks per compute unit, at least one tile each.
fn max_splits(n_kv: usize, n_heads: usize, n_q: usize, compute_units: usize) -> usize {
    let target_blocks = 8 * compute_units.max(1);
    let wanted = target_blocks.div_ceil(n_heads.saturating_mul(n_q).max(1));
    wanted.min(n_kv.div_ceil(DECODE_TILE)).max(1)
}

/// The split of `n_kv` (= pos0 + n_q, the longest query's visible positions, ≥ 1).
/// `n_splits` never exceeds `max_splits` of any larger `n_kv` (both grow with `n_kv`).
fn decode_plan(n_kv: usize, n_heads: usize, n_q: usize, compute_units: usize) -> DecodePlan {
    let splits = max_splits(n_kv, n_heads, n_q, compute_units);
    let chunk = n_kv.div_ceil(splits).next_multiple_of(DECODE_TILE);
    DecodePlan {
        n_splits: n_kv.div_ceil(chunk),
        chunk,
    }
}

/// Scratch floats for `n_splits` partials of `n_q × n_heads` heads of `head_dim`:
/// the unnormalized outputs, then (max, sum) pairs. None with a single split.
fn scratch_floats(n_splits: usize, n_q: usize, n_heads: usize, head_dim: usize) -> usize {
    if n_splits <= 1 {
        0
    } else {
        n_q * n_heads * n_splits * (head_dim + 2)
    }
}

/// Scratch floats for every decode call of `1..=max_q` queries over a cache of
/// `p.kv.n_ctx` positions, planned by either decode path (both plan at most
/// [`max_splits`] chunks). The bound is a maximum over the query counts, not the value at
/// `max_q`: fewer queries get more chunks each, and not in proportion, so a smaller call
/// can need more scratch than a larger one (on 132 compute units, 9 heads: 7 queries ×
/// 16 chunks against 8 × 11).
fn scratch_len_up_to(
    op: &'static str,
    p: &AttentionParams,
    max_q: usize,
    compute_units: usize,
) -> Result<usize> {
    let mut most = 0;
    for n_q in 1..=max_q.min(DECODE_QUERY_LIMIT) {
        let splits = max_splits(p.kv.n_ctx, p.n_heads, n_q, compute_units);
        checked_product(op, "scratch", &[n_q, p.n_heads, splits, p.kv.head_dim + 2])?;
        most = most.max(scratch_floats(splits, n_q, p.n_heads, p.kv.head_dim));
    }
    Ok(most)
}

/// Validated attention sizes, as the kernels take them.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n_q: u32,
    pos0: u32,
    n_heads: u32,
    group: u32,
    n_kv_heads: u32,
    head_dim: u32,
}

fn to_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| shape_error(op, format!("{what} = {v} exceeds 2^32 - 1")))
}

/// The parameter checks the kernels rely on (everything but the operands).
fn check_params(op: &'static str, p: &AttentionParams) -> Result<()> {
    check_nonzero(op, "n_heads", p.n_heads)?;
    p.kv.elements_for(op)?;
    let hd = p.kv.head_dim;
    if hd % 4 != 0 || hd > MAX_HEAD_DIM {
        return Err(shape_error(
            op,
            format!("head_dim = {hd}: the GPU kernels take a multiple of 4 up to {MAX_HEAD_DIM}"),
        ));
    }
    if p.n_heads % p.kv.n_kv_heads != 0 {
        return Err(shape_error(
            op,
            format!(
                "n_kv_heads = {} does not divide n_heads = {}",
                p.kv.n_kv_heads, p.n_heads
            ),
        ));
    }
    if p.n_heads > HEAD_LIMIT {
        return Err(shape_error(
            op,
            format!("n_heads = {} exceeds {HEAD_LIMIT}", p.n_heads),
        ));
    }
    if p.kv.n_ctx >= MAX_CTX {
        return Err(shape_error(
            op,
            format!(
                "n_ctx = {}: the GPU kernels take fewer than 2^31 positions",
                p.kv.n_ctx
            ),
        ));
    }
    Ok(())
}

/// A shape error unless `slice` starts at a multiple of `align` bytes.
fn check_aligned<T: bytemuck::Pod>(
    op: &'static str,
    what: &str,
    slice: &impl DeviceMemory<T>,
    align: usize,
) -> Result<()> {
    if slice.len() > 0 && slice.device_ptr() as usize % align != 0 {
        return Err(shape_error(
            op,
            format!(
                "{what} starts at a device address that is not a multiple of {align} bytes \
                 (the kernels read 4 elements at a time)"
            ),
        ));
    }
    Ok(())
}

/// Checks every operand of an attention call against `p`, `n_q` and `pos0`.
fn check_attention<T: GpuKvElement>(
    op: &'static str,
    p: &AttentionParams,
    q: &DeviceSlice<f32>,
    n_q: usize,
    pos0: usize,
    k_cache: &DeviceSlice<T>,
    v_cache: &DeviceSlice<T>,
    out: &DeviceSliceMut<f32>,
) -> Result<Dims> {
    check_params(op, p)?;
    let head_dim = p.kv.head_dim;
    let q_len = checked_product(op, "q", &[n_q, p.n_heads, head_dim])?;
    check_len(op, "q", q.len(), q_len)?;
    check_len(op, "output", out.len(), q_len)?;
    let cache_len = p.kv.elements_for(op)?;
    check_len(
        op,
        &format!("k_cache ({})", T::NAME),
        k_cache.len(),
        cache_len,
    )?;
    check_len(
        op,
        &format!("v_cache ({})", T::NAME),
        v_cache.len(),
        cache_len,
    )?;
    if pos0
        .checked_add(n_q)
        .filter(|&end| end <= p.kv.n_ctx)
        .is_none()
    {
        return Err(shape_error(
            op,
            format!(
                "queries at positions {pos0}..{pos0}+{n_q} do not fit a cache of {} positions",
                p.kv.n_ctx
            ),
        ));
    }
    let align = 4 * std::mem::size_of::<T>();
    check_aligned(op, "k_cache", k_cache, align)?;
    check_aligned(op, "v_cache", v_cache, align)?;
    Ok(Dims {
        n_q: to_u32(op, "n_q", n_q)?,
        pos0: to_u32(op, "pos0", pos0)?,
        n_heads: to_u32(op, "n_heads", p.n_heads)?,
        group: to_u32(op, "group", p.n_heads / p.kv.n_kv_heads)?,
        n_kv_heads: to_u32(op, "n_kv_heads", p.kv.n_kv_heads)?,
        head_dim: to_u32(op, "head_dim", head_dim)?,
    })
}

/// Loads the kernels of one element type.
///
/// # Safety
/// As [`AttentionOps::load`]'s SAFETY comment: the signatures are those of attention.hip.
unsafe fn load_kv<T: bytemuck::Pod>(module: &Module, suffix: &str) -> Result<KvKernels<T>> {
    let f = |name: String| module.function(&name);
    // SAFETY: the caller's contract (signatures and bounds as documented in `load`).
    unsafe {
        Ok(KvKernels {
            write: f(format!("rf_kv_write_{suffix}"))?.into_typed(),
            decode: f(format!("rf_attn_decode_{suffix}"))?.into_typed(),
            write_at: f(format!("rf_kv_write_at_{suffix}"))?.into_typed(),
            decode_at: f(format!("rf_attn_decode_at_{suffix}"))?.into_typed(),
            prefill: [
                f(format!("rf_attn_prefill_d64_{suffix}"))?.into_typed(),
                f(format!("rf_attn_prefill_d128_{suffix}"))?.into_typed(),
                f(format!("rf_attn_prefill_d256_{suffix}"))?.into_typed(),
            ],
        })
    }
}

impl AttentionOps {
    /// Loads the kernels (compiling them at first use).
    pub fn load(loader: &KernelLoader) -> Result<Self> {
        let module = loader.module(&ATTENTION)?;
        // SAFETY: the signatures match attention.hip (`In` for const pointers, `Out` for
        // written ones, u32/u64/f32 scalars in order). Bounds, as the launchers establish
        // them before every launch:
        // * rf_kv_write_*: n = the length of both `src` and `dst` (dst is the cache rows
        //   pos0 .. pos0 + n_new, sliced by the launcher); grid-stride over i < n.
        // * rf_attn_decode_* / rf_attn_prefill_*: q and out hold n_q·n_heads·head_dim, the
        //   caches n_ctx·n_kv_heads·head_dim with pos0 + n_q <= n_ctx < 2^31; the kernels read
        //   cache rows < pos0 + n_q only, head h / group < n_kv_heads (group = n_heads /
        //   n_kv_heads exactly), dims < head_dim; head_dim % 4 == 0, head_dim <= 256 (the
        //   size of the shared q / accumulator arrays and of the prefill tiles' DMAX, which
        //   the launcher picks >= head_dim), and the caches are 4-element aligned for the
        //   vector loads. Decode grids are (n_heads, n_splits, n_q) with n_splits =
        //   ceil((pos0 + n_q) / chunk); with n_splits > 1 `part` holds at least
        //   n_q·n_heads·n_splits·(head_dim + 2) floats, with one split `part` is unused.
        //   Prefill grids are (ceil(n_q / BQ), n_heads) for the kernel's BQ.
        // * rf_attn_combine: the same `part`, n_splits, chunk and sizes as the decode
        //   launch before it; grid (n_heads, n_q); writes out[n_q·n_heads·head_dim].
        // * rf_kv_write_at_* / rf_attn_decode_at_* / rf_attn_combine_at: as the kernels
        //   above with pos0 read from pos[0] on the device, where the launcher checks that
        //   `pos` holds at least one element; the kernels themselves return without any
        //   access when pos[0] < 0 or pos[0] + n > n_ctx, so every cache row they touch is
        //   < n_ctx (the caches hold n_ctx rows, checked by the launchers). Decode grids
        //   are planned for n_ctx (`part` sized for that plan).
        // * rf_argmax_partial_f32: x holds n elements; with G > 1 blocks `part` holds 2G
        //   u32, with one block out[0] is written. rf_argmax_final: part holds 2·n_parts.
        unsafe {
            Ok(Self {
                f32: load_kv(&module, "f32")?,
                f16: load_kv(&module, "f16")?,
                bf16: load_kv(&module, "bf16")?,
                combine: module.function("rf_attn_combine")?.into_typed(),
                combine_at: module.function("rf_attn_combine_at")?.into_typed(),
                argmax_partial: module.function("rf_argmax_partial_f32")?.into_typed(),
                argmax_final: module.function("rf_argmax_final")?.into_typed(),
                compute_units: loader.device().properties().compute_units as usize,
            })
        }
    }

    /// Writes `n_new` rows `new` (`[n_new, n_kv_heads, head_dim]`, `f32`) into `cache`
    /// (`[n_ctx, n_kv_heads, head_dim]`) at positions `pos0 .. pos0 + n_new`, rounding to
    /// nearest even for 16-bit caches (as [`crate::cpu::kv_cache_write`]).
    pub fn kv_cache_write<T: GpuKvElement>(
        &self,
        stream: &Stream,
        mut cache: DeviceSliceMut<T>,
        shape: KvCacheShape,
        pos0: usize,
        new: DeviceSlice<f32>,
        n_new: usize,
    ) -> Result<()> {
        const OP: &str = "kv_cache_write";
        let row = shape.row_len_for(OP)?;
        check_len(OP, "cache", cache.len(), shape.elements_for(OP)?)?;
        let n = checked_product(OP, "new rows", &[n_new, row])?;
        check_len(OP, "new rows", new.len(), n)?;
        let end = pos0
            .checked_add(n_new)
            .filter(|&end| end <= shape.n_ctx)
            .ok_or_else(|| {
                shape_error(
                    OP,
                    format!(
                        "positions {pos0}..{pos0}+{n_new} do not fit a cache of {} positions",
                        shape.n_ctx
                    ),
                )
            })?;
        if n == 0 {
            return Ok(());
        }
        let dst = cache.slice_mut(pos0 * row..end * row)?;
        T::kernels(self)
            .write
            .launch(stream, &grid_stride_config(n)?, (new, dst, n as u64))?;
        Ok(())
    }

    /// Causal grouped-query attention of `n_q` queries at positions `pos0 ..` against the
    /// caches: the decode path ([`decode_attention`](Self::decode_attention)) for
    /// `n_q <= DECODE_MAX_QUERIES`, else the prefill path
    /// ([`prefill_attention`](Self::prefill_attention)). Decode scratch, when needed, is
    /// allocated on `stream` (use [`attention_with_scratch`](Self::attention_with_scratch)
    /// inside a graph capture).
    pub fn attention<T: GpuKvElement>(
        &self,
        stream: &Stream,
        p: &AttentionParams,
        q: DeviceSlice<f32>,
        n_q: usize,
        pos0: usize,
        k_cache: DeviceSlice<T>,
        v_cache: DeviceSlice<T>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        if n_q <= DECODE_MAX_QUERIES {
            self.decode_attention(stream, p, q, n_q, pos0, k_cache, v_cache, out, None)
        } else {
            self.prefill_attention(stream, p, q, n_q, pos0, k_cache, v_cache, out)
        }
    }

    /// [`attention`](Self::attention) with caller-provided decode scratch of at least
    /// [`decode_scratch_len`](Self::decode_scratch_len)`(p, n_q)` floats (the prefill path
    /// ignores it): allocates nothing.
    pub fn attention_with_scratch<T: GpuKvElement>(
        &self,
        stream: &Stream,
        p: &AttentionParams,
        q: DeviceSlice<f32>,
        n_q: usize,
        pos0: usize,
        k_cache: DeviceSlice<T>,
        v_cache: DeviceSlice<T>,
        out: DeviceSliceMut<f32>,
        scratch: DeviceSliceMut<f32>,
    ) -> Result<()> {
        if n_q <= DECODE_MAX_QUERIES {
            self.decode_attention(
                stream,
                p,
                q,
                n_q,
                pos0,
                k_cache,
                v_cache,
                out,
                Some(scratch),
            )
        } else {
            self.prefill_attention(stream, p, q, n_q, pos0, k_cache, v_cache, out)
        }
    }

    /// Floats of scratch that serve every [`decode_attention`](Self::decode_attention)
    /// call of up to `n_q` queries at any `pos0` (0 when none of them splits).
    pub fn decode_scratch_len(&self, p: &AttentionParams, n_q: usize) -> Result<usize> {
        const OP: &str = "decode_scratch_len";
        check_params(OP, p)?;
        scratch_len_up_to(OP, p, n_q, self.compute_units)
    }

    /// The decode path for any `n_q` up to 65535: split over the sequence, then combined.
    /// `scratch`: at least the floats this call needs (at most
    /// [`decode_scratch_len`](Self::decode_scratch_len)); `None` allocates them on `stream`
    /// when the call splits.
    pub fn decode_attention<T: GpuKvElement>(
        &self,
        stream: &Stream,
        p: &AttentionParams,
        q: DeviceSlice<f32>,
        n_q: usize,
        pos0: usize,
        k_cache: DeviceSlice<T>,
        v_cache: DeviceSlice<T>,
        mut out: DeviceSliceMut<f32>,
        scratch: Option<DeviceSliceMut<f32>>,
    ) -> Result<()> {
        const OP: &str = "decode_attention";
        let d = check_attention(OP, p, &q, n_q, pos0, &k_cache, &v_cache, &out)?;
        if n_q == 0 {
            return Ok(());
        }
        if n_q > DECODE_QUERY_LIMIT {
            return Err(shape_error(
                OP,
                format!("{n_q} queries: the decode path takes at most {DECODE_QUERY_LIMIT}"),
            ));
        }
        let plan = decode_plan(pos0 + n_q, p.n_heads, n_q, self.compute_units);
        let cfg = LaunchConfig {
            grid: Dim3 {
                x: d.n_heads,
                y: plan.n_splits as u32,
                z: d.n_q,
            },
            block: Dim3::x(THREADS),
            shared_mem_bytes: 0,
        };
        let kernels = T::kernels(self);
        let chunk = plan.chunk as u32;
        let mut empty = DeviceBuffer::<f32>::alloc(stream, 0)?;
        let (dims, scale) = (
            (d.n_q, d.pos0, d.n_heads, d.group, d.n_kv_heads, d.head_dim),
            p.scale,
        );
        if plan.n_splits == 1 {
            kernels.decode.launch(
                stream,
                &cfg,
                (
                    q,
                    k_cache,
                    v_cache,
                    out,
                    empty.as_slice_mut(),
                    dims.0,
                    dims.1,
                    dims.2,
                    dims.3,
                    dims.4,
                    dims.5,
                    chunk,
                    scale,
                ),
            )?;
            return Ok(());
        }

        let need = scratch_floats(plan.n_splits, n_q, p.n_heads, p.kv.head_dim);
        let mut owned = None;
        let mut scratch = match scratch {
            Some(s) => {
                if s.len() < need {
                    return Err(shape_error(
                        OP,
                        format!(
                            "scratch has {} floats, this call needs {need} ({} splits)",
                            s.len(),
                            plan.n_splits
                        ),
                    ));
                }
                s
            }
            None => owned
                .insert(DeviceBuffer::<f32>::alloc(stream, need)?)
                .as_slice_mut(),
        };
        let mut part = scratch.slice_mut(..need)?;
        kernels.decode.launch(
            stream,
            &cfg,
            (
                q,
                k_cache,
                v_cache,
                empty.as_slice_mut(),
                part.slice_mut(..)?,
                dims.0,
                dims.1,
                dims.2,
                dims.3,
                dims.4,
                dims.5,
                chunk,
                scale,
            ),
        )?;
        let combine_cfg = LaunchConfig {
            grid: Dim3::xy(d.n_heads, d.n_q),
            block: Dim3::x(THREADS),
            shared_mem_bytes: 0,
        };
        self.combine.launch(
            stream,
            &combine_cfg,
            (
                part.as_slice(),
                out.slice_mut(..)?,
                d.n_q,
                d.pos0,
                d.n_heads,
                d.head_dim,
                plan.n_splits as u32,
                chunk,
            ),
        )?;
        Ok(())
    }

    /// [`kv_cache_write`](Self::kv_cache_write) at the position in `positions[0]` on the
    /// device rather than a host value: one recorded launch (a graph) then serves every
    /// decode step, the position being updated in device memory between replays. A
    /// position with `pos + n_new > n_ctx` writes nothing (the caller checks it on the
    /// host; the kernel's check only keeps memory safe).
    pub fn kv_cache_write_at<T: GpuKvElement>(
        &self,
        stream: &Stream,
        cache: DeviceSliceMut<T>,
        shape: KvCacheShape,
        positions: DeviceSlice<i32>,
        new: DeviceSlice<f32>,
        n_new: usize,
    ) -> Result<()> {
        const OP: &str = "kv_cache_write_at";
        let row = shape.row_len_for(OP)?;
        check_len(OP, "cache", cache.len(), shape.elements_for(OP)?)?;
        let n = checked_product(OP, "new rows", &[n_new, row])?;
        check_len(OP, "new rows", new.len(), n)?;
        check_nonzero(OP, "positions", positions.len())?;
        if n_new > shape.n_ctx {
            return Err(shape_error(
                OP,
                format!(
                    "{n_new} rows do not fit a cache of {} positions",
                    shape.n_ctx
                ),
            ));
        }
        if n == 0 {
            return Ok(());
        }
        T::kernels(self).write_at.launch(
            stream,
            &grid_stride_config(n)?,
            (
                new,
                cache,
                positions,
                row as u64,
                n_new as u32,
                to_u32(OP, "n_ctx", shape.n_ctx)?,
            ),
        )?;
        Ok(())
    }

    /// Floats of scratch that serve every [`decode_attention_at`](Self::decode_attention_at)
    /// call of up to `n_q` queries (its split plan is for the whole capacity `n_ctx`; 0
    /// when none of them splits).
    pub fn decode_at_scratch_len(&self, p: &AttentionParams, n_q: usize) -> Result<usize> {
        const OP: &str = "decode_at_scratch_len";
        check_params(OP, p)?;
        scratch_len_up_to(OP, p, n_q, self.compute_units)
    }

    /// [`decode_attention`](Self::decode_attention) of `n_q` queries whose first sits at
    /// the position in `positions[0]` on the device, so that one recorded launch serves
    /// every decode step. The split over the sequence is planned for the cache's capacity
    /// (splits past the current length return at once). `scratch`: at least
    /// [`decode_at_scratch_len`](Self::decode_at_scratch_len) floats. A position with
    /// `pos + n_q > n_ctx` computes nothing (checked by the caller on the host).
    pub fn decode_attention_at<T: GpuKvElement>(
        &self,
        stream: &Stream,
        p: &AttentionParams,
        q: DeviceSlice<f32>,
        n_q: usize,
        positions: DeviceSlice<i32>,
        k_cache: DeviceSlice<T>,
        v_cache: DeviceSlice<T>,
        mut out: DeviceSliceMut<f32>,
        mut scratch: DeviceSliceMut<f32>,
    ) -> Result<()> {
        const OP: &str = "decode_attention_at";
        // The shape checks of the host-position path, with the first query at 0.
        let d = check_attention(OP, p, &q, n_q, 0, &k_cache, &v_cache, &out)?;
        check_nonzero(OP, "positions", positions.len())?;
        if n_q == 0 {
            return Ok(());
        }
        if n_q > DECODE_QUERY_LIMIT {
            return Err(shape_error(
                OP,
                format!("{n_q} queries: the decode path takes at most {DECODE_QUERY_LIMIT}"),
            ));
        }
        let plan = decode_plan(p.kv.n_ctx, p.n_heads, n_q, self.compute_units);
        let need = scratch_floats(plan.n_splits, n_q, p.n_heads, p.kv.head_dim);
        if scratch.len() < need {
            return Err(shape_error(
                OP,
                format!(
                    "scratch has {} floats, this call needs {need} ({} splits)",
                    scratch.len(),
                    plan.n_splits
                ),
            ));
        }
        let n_ctx = to_u32(OP, "n_ctx", p.kv.n_ctx)?;
        let cfg = LaunchConfig {
            grid: Dim3 {
                x: d.n_heads,
                y: plan.n_splits as u32,
                z: d.n_q,
            },
            block: Dim3::x(THREADS),
            shared_mem_bytes: 0,
        };
        let chunk = plan.chunk as u32;
        let kernels = T::kernels(self);
        let mut empty = DeviceBuffer::<f32>::alloc(stream, 0)?;
        let single = plan.n_splits == 1;
        let (direct_out, part) = if single {
            (out.slice_mut(..)?, empty.as_slice_mut())
        } else {
            (empty.as_slice_mut(), scratch.slice_mut(..need)?)
        };
        kernels.decode_at.launch(
            stream,
            &cfg,
            (
                q,
                k_cache,
                v_cache,
                direct_out,
                part,
                d.n_q,
                positions,
                n_ctx,
                d.n_heads,
                d.group,
                d.n_kv_heads,
                d.head_dim,
                chunk,
                p.scale,
            ),
        )?;
        if single {
            return Ok(());
        }
        let combine_cfg = LaunchConfig {
            grid: Dim3::xy(d.n_heads, d.n_q),
            block: Dim3::x(THREADS),
            shared_mem_bytes: 0,
        };
        self.combine_at.launch(
            stream,
            &combine_cfg,
            (
                scratch.as_slice().slice(..need)?,
                out,
                d.n_q,
                positions,
                n_ctx,
                d.n_heads,
                d.head_dim,
                plan.n_splits as u32,
                chunk,
            ),
        )?;
        Ok(())
    }

    /// The prefill path for any `n_q`: query tiles × key tiles with an online softmax.
    pub fn prefill_attention<T: GpuKvElement>(
        &self,
        stream: &Stream,
        p: &AttentionParams,
        q: DeviceSlice<f32>,
        n_q: usize,
        pos0: usize,
        k_cache: DeviceSlice<T>,
        v_cache: DeviceSlice<T>,
        out: DeviceSliceMut<f32>,
    ) -> Result<()> {
        const OP: &str = "prefill_attention";
        let d = check_attention(OP, p, &q, n_q, pos0, &k_cache, &v_cache, &out)?;
        if n_q == 0 {
            return Ok(());
        }
        let Some(variant) = PREFILL_TILES
            .iter()
            .position(|&(dmax, _)| p.kv.head_dim <= dmax)
        else {
            // check_params bounds head_dim by MAX_HEAD_DIM, the last tile's DMAX.
            return Err(shape_error(OP, "head_dim too large"));
        };
        let bq = PREFILL_TILES[variant].1;
        let cfg = LaunchConfig {
            grid: Dim3::xy(to_u32(OP, "query tiles", n_q.div_ceil(bq))?, d.n_heads),
            block: Dim3::x(THREADS),
            shared_mem_bytes: 0,
        };
        T::kernels(self).prefill[variant].launch(
            stream,
            &cfg,
            (
                q,
                k_cache,
                v_cache,
                out,
                d.n_q,
                d.pos0,
                d.n_heads,
                d.group,
                d.n_kv_heads,
                d.head_dim,
                p.scale,
            ),
        )?;
        Ok(())
    }

    /// `u32` scratch that [`argmax_with_scratch`](Self::argmax_with_scratch) needs for `n`
    /// values (0 when one block does it all).
    pub fn argmax_scratch_len(n: usize) -> usize {
        let blocks = argmax_blocks(n);
        if blocks > 1 {
            2 * blocks
        } else {
            0
        }
    }

    /// Writes to `out[0]` the index of the largest value of `x`: the first one among
    /// equal maxima; NaN never wins (as [`crate::cpu::argmax()`]). If every value is NaN,
    /// `out[0]` becomes `u32::MAX`. Scratch, when needed, is allocated on `stream`.
    ///
    /// Errors if `x` is empty or has `u32::MAX` or more values, or `out` is not 1 long.
    pub fn argmax(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        out: DeviceSliceMut<u32>,
    ) -> Result<()> {
        self.argmax_impl(stream, x, out, None)
    }

    /// [`argmax`](Self::argmax) with caller-provided scratch of at least
    /// [`argmax_scratch_len`](Self::argmax_scratch_len)`(x.len())` elements.
    pub fn argmax_with_scratch(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        out: DeviceSliceMut<u32>,
        scratch: DeviceSliceMut<u32>,
    ) -> Result<()> {
        self.argmax_impl(stream, x, out, Some(scratch))
    }

    fn argmax_impl(
        &self,
        stream: &Stream,
        x: DeviceSlice<f32>,
        mut out: DeviceSliceMut<u32>,
        scratch: Option<DeviceSliceMut<u32>>,
    ) -> Result<()> {
        const OP: &str = "argmax";
        let n = x.len();
        if n == 0 {
            return Err(shape_error(OP, "empty input"));
        }
        let n32 = u32::try_from(n)
            .ok()
            .filter(|&n| n < u32::MAX)
            .ok_or_else(|| shape_error(OP, format!("{n} values: at most 2^32 - 2")))?;
        check_len(OP, "output", out.len(), 1)?;
        let blocks = argmax_blocks(n);
        let cfg = LaunchConfig {
            grid: Dim3::x(blocks as u32),
            block: Dim3::x(THREADS),
            shared_mem_bytes: 0,
        };
        let need = Self::argmax_scratch_len(n);
        let mut owned = None;
        let mut scratch = match scratch {
            Some(s) => {
                if s.len() < need {
                    return Err(shape_error(
                        OP,
                        format!("scratch has {} elements, {need} needed", s.len()),
                    ));
                }
                s
            }
            None => owned
                .insert(DeviceBuffer::<u32>::alloc(stream, need)?)
                .as_slice_mut(),
        };
        let mut part = scratch.slice_mut(..need)?;
        if blocks == 1 {
            self.argmax_partial
                .launch(stream, &cfg, (x, part, out, n32))?;
            return Ok(());
        }
        self.argmax_partial.launch(
            stream,
            &cfg,
            (x, part.slice_mut(..)?, out.slice_mut(..)?, n32),
        )?;
        self.argmax_final.launch(
            stream,
            &LaunchConfig::per_row(1, THREADS)?,
            (part.as_slice(), out, blocks as u32),
        )?;
        Ok(())
    }
}

/// Blocks of the argmax partial kernel for `n` values.
fn argmax_blocks(n: usize) -> usize {
    n.div_ceil(ARGMAX_PER_BLOCK).clamp(1, ARGMAX_MAX_BLOCKS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_plan_covers_every_position_with_nonempty_splits(
            n_kv in 1usize..200_000,
            n_heads in 1usize..64,
            n_q in 1usize..9,
            cus in 0usize..400,
        ) {
            let plan = decode_plan(n_kv, n_heads, n_q, cus);
            prop_assert!(plan.chunk % DECODE_TILE == 0 && plan.chunk > 0);
            prop_assert!(plan.n_splits * plan.chunk >= n_kv);
            prop_assert!((plan.n_splits - 1) * plan.chunk < n_kv);
            // Never more than the scratch bound of a larger cache.
            for n_ctx in [n_kv, n_kv + 1, n_kv + 1000, 4 * n_kv] {
                prop_assert!(plan.n_splits <= max_splits(n_ctx, n_heads, n_q, cus));
            }
        }
    }

    proptest! {
        /// The scratch bound serves every call with fewer queries and a shorter visible
        /// length, on both decode paths (the device-position path plans for `n_ctx`).
        #[test]
        fn scratch_bound_covers_every_smaller_call(
            n_ctx in 1usize..70_000,
            kv_heads_and_group in (1usize..9, 1usize..8),
            head_dim in prop::sample::select(vec![64usize, 128, 256]),
            max_q in 1usize..=DECODE_MAX_QUERIES,
            cus in 0usize..400,
            n_kv_fraction in 0.0f64..=1.0,
        ) {
            let (n_kv_heads, group) = kv_heads_and_group;
            let p = AttentionParams::new(
                n_kv_heads * group,
                KvCacheShape { n_ctx, n_kv_heads, head_dim },
            );
            let bound = scratch_len_up_to("t", &p, max_q, cus).unwrap();
            for n_q in 1..=max_q.min(n_ctx) {
                let at = decode_plan(n_ctx, p.n_heads, n_q, cus);
                prop_assert!(scratch_floats(at.n_splits, n_q, p.n_heads, head_dim) <= bound);
                let n_kv = n_q + ((n_ctx - n_q) as f64 * n_kv_fraction) as usize;
                let host = decode_plan(n_kv, p.n_heads, n_q, cus);
                prop_assert!(scratch_floats(host.n_splits, n_q, p.n_heads, head_dim) <= bound);
            }
        }
    }

    #[test]
    fn fewer_queries_can_need_more_scratch() {
        // The case seen on the H200 (132 SMs): the demo model's 9 heads, a 4096 context.
        let p = AttentionParams::new(
            9,
            KvCacheShape {
                n_ctx: 4096,
                n_kv_heads: 3,
                head_dim: 64,
            },
        );
        let at_max = scratch_floats(decode_plan(4096, 9, 8, 132).n_splits, 8, 9, 64);
        let at_seven = scratch_floats(decode_plan(4096, 9, 7, 132).n_splits, 7, 9, 64);
        assert!(at_seven > at_max, "{at_seven} vs {at_max}");
        assert!(scratch_len_up_to("t", &p, 8, 132).unwrap() >= at_seven);
    }

    #[test]
    fn short_contexts_do_not_split() {
        for n_kv in 1..=DECODE_TILE {
            assert_eq!(decode_plan(n_kv, 9, 1, 132).n_splits, 1);
        }
        assert_eq!(scratch_floats(1, 3, 9, 64), 0);
        assert!(decode_plan(16384, 9, 1, 132).n_splits > 1);
    }

    #[test]
    fn argmax_blocks_are_bounded() {
        assert_eq!(argmax_blocks(1), 1);
        assert_eq!(argmax_blocks(ARGMAX_PER_BLOCK), 1);
        assert_eq!(argmax_blocks(ARGMAX_PER_BLOCK + 1), 2);
        assert_eq!(argmax_blocks(usize::MAX / 2), ARGMAX_MAX_BLOCKS);
        assert_eq!(AttentionOps::argmax_scratch_len(10), 0);
        assert_eq!(AttentionOps::argmax_scratch_len(152_064), 2 * 149);
    }

    #[test]
    fn params_are_checked() {
        let kv = |n_ctx, n_kv_heads, head_dim| KvCacheShape {
            n_ctx,
            n_kv_heads,
            head_dim,
        };
        assert!(check_params("t", &AttentionParams::new(9, kv(100, 3, 64))).is_ok());
        assert!(check_params("t", &AttentionParams::new(32, kv(100, 8, 128))).is_ok());
        assert!(check_params("t", &AttentionParams::new(4, kv(1, 1, 256))).is_ok());
        assert!(check_params("t", &AttentionParams::new(9, kv(100, 2, 64))).is_err());
        assert!(check_params("t", &AttentionParams::new(9, kv(100, 3, 66))).is_err());
        assert!(check_params("t", &AttentionParams::new(9, kv(100, 3, 260))).is_err());
        assert!(check_params("t", &AttentionParams::new(0, kv(100, 1, 64))).is_err());
        assert!(check_params("t", &AttentionParams::new(4, kv(100, 0, 64))).is_err());
        assert!(check_params("t", &AttentionParams::new(4, kv(100, 1, 0))).is_err());
        assert!(check_params("t", &AttentionParams::new(4, kv(1 << 31, 1, 64))).is_err());
        assert!(check_params("t", &AttentionParams::new(70000, kv(10, 1, 64))).is_err());
    }
}
