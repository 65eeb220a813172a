//! Rotary position embedding on the GPU, and RoPE of q and k fused with the KV-cache
//! write.

use rocmforge_hip::{
    DeviceMemory, DeviceSlice, DeviceSliceMut, In, Kernel, LaunchConfig, Out, Stream, TypedKernel,
};

use super::{grid_stride_config, GpuKvElement, KernelLoader};
use crate::cpu::{KvCacheShape, RopeMode};
use crate::error::shape_error;
use crate::{Error, Result, ROPE};

/// Shape and frequencies of a RoPE application (as [`crate::cpu::RopeParams`], with the
/// frequency factors passed separately as device memory).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeConfig {
    /// Heads per token.
    pub n_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
    /// Rotated dimensions per head (even, at most head_dim).
    pub n_rot: usize,
    /// Pairing layout.
    pub mode: RopeMode,
    /// Frequency base.
    pub freq_base: f32,
    /// Linear position scaling.
    pub freq_scale: f32,
}

impl RopeConfig {
    /// [`shape_error`] unless `n_rot` is even, positive and at most `head_dim`.
    pub(crate) fn check_n_rot(&self, op: &'static str) -> Result<()> {
        if self.n_rot == 0 || self.n_rot % 2 != 0 || self.n_rot > self.head_dim {
            return Err(shape_error(
                op,
                format!(
                    "n_rot {} must be even, positive and at most head_dim {}",
                    self.n_rot, self.head_dim
                ),
            ));
        }
        Ok(())
    }

    /// The checks of an in-place rotation of `x_len` values of `n_tokens` tokens with
    /// `n_factors` frequency factors: returns the number of rotated pairs.
    pub(crate) fn check_rotation(
        &self,
        op: &'static str,
        n_tokens: usize,
        x_len: usize,
        n_factors: Option<usize>,
    ) -> Result<usize> {
        self.check_n_rot(op)?;
        let expected = n_tokens
            .checked_mul(self.n_heads)
            .and_then(|v| v.checked_mul(self.head_dim))
            .ok_or_else(|| shape_error(op, "n_tokens × n_heads × head_dim overflows"))?;
        if x_len != expected {
            return Err(shape_error(
                op,
                format!(
                    "x has {x_len} elements, expected {n_tokens} tokens × {} heads × {}",
                    self.n_heads, self.head_dim
                ),
            ));
        }
        if let Some(f) = n_factors.filter(|&f| f != self.n_rot / 2) {
            return Err(shape_error(
                op,
                format!(
                    "{f} frequency factors, expected n_rot/2 = {}",
                    self.n_rot / 2
                ),
            ));
        }
        Ok(n_tokens * self.n_heads * (self.n_rot / 2))
    }
}

type RopeKernel = TypedKernel<(Out<f32>, In<i32>, u32, u32, u32, u32, u32, f32, f32)>;
type RopeFactorsKernel = TypedKernel<(
    Out<f32>,
    In<i32>,
    In<f32>,
    u32,
    u32,
    u32,
    u32,
    u32,
    f32,
    f32,
)>;

/// The signature of `rf_rope_qk_kv_write_at_<type>` for cache elements `T`: q, k, v,
/// positions, frequency factors, K cache, V cache, n_new, n_heads, n_kv_heads, head_dim,
/// n_rot, flags, theta_scale, freq_scale, n_ctx.
type RopeQkKvSignature<T> = (
    Out<f32>,
    In<f32>,
    In<f32>,
    In<i32>,
    In<f32>,
    Out<T>,
    Out<T>,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    f32,
    f32,
    u32,
);

/// Flag bits of `rf_rope_qk_kv_write_at_*`.
const ROPE_FLAG_NEOX: u32 = 1;
const ROPE_FLAG_FACTORS: u32 = 2;

/// The kernels of `rope.hip`.
#[derive(Debug, Clone)]
pub struct RopeOps {
    plain: RopeKernel,
    factors: RopeFactorsKernel,
    /// `rf_rope_qk_kv_write_at_{f32,f16,bf16}`, untyped: each gets its signature
    /// ([`RopeQkKvSignature`] of its cache element type) at launch.
    qk_kv_write_at: [Kernel; 3],
}

/// Names of the cache element types of `RopeOps::qk_kv_write_at`, in its order, with
/// their sizes in bytes (the [`GpuKvElement`] types).
const KV_TYPES: [(&str, usize); 3] = [("f32", 4), ("f16", 2), ("bf16", 2)];

impl RopeOps {
    /// Loads the kernels.
    pub fn load(loader: &KernelLoader) -> Result<Self> {
        let module = loader.module(&ROPE)?;
        // SAFETY: signatures match rope.hip; each thread handles one pair of one head of
        // one token, index < n_tokens × n_heads × n_rot/2, touching x[token, head, a|b] with
        // a, b < n_rot <= head_dim, positions[token] and freq_factors[i < n_rot/2]: the
        // launcher checks every one of those lengths.
        let (plain, factors) = unsafe {
            (
                module.function("rf_rope_f32")?.into_typed(),
                module.function("rf_rope_factors_f32")?.into_typed(),
            )
        };
        let qk = |ty: &str| module.function(&format!("rf_rope_qk_kv_write_at_{ty}"));
        Ok(Self {
            plain,
            factors,
            qk_kv_write_at: [qk(KV_TYPES[0].0)?, qk(KV_TYPES[1].0)?, qk(KV_TYPES[2].0)?],
        })
    }

    /// Rotates `x[n_tokens, n_heads, head_dim]` in place, token `t` at `positions[t]`.
    pub fn rope_inplace(
        &self,
        stream: &Stream,
        x: DeviceSliceMut<f32>,
        positions: DeviceSlice<i32>,
        freq_factors: Option<DeviceSlice<f32>>,
        cfg: &RopeConfig,
    ) -> Result<()> {
        const OP: &str = "rope";
        let n_tokens = positions.len();
        let pairs = cfg.check_rotation(
            OP,
            n_tokens,
            x.len(),
            freq_factors.as_ref().map(|f| f.len()),
        )?;
        let to_u32 = |v: usize, what: &str| {
            u32::try_from(v).map_err(|_| shape_error(OP, format!("{what} {v} exceeds 2^32")))
        };
        let (t, h, d, r) = (
            to_u32(n_tokens, "n_tokens")?,
            to_u32(cfg.n_heads, "n_heads")?,
            to_u32(cfg.head_dim, "head_dim")?,
            to_u32(cfg.n_rot, "n_rot")?,
        );
        if pairs == 0 {
            return Ok(());
        }
        let launch = LaunchConfig::for_elements(pairs, 256)?;
        let neox = u32::from(cfg.mode == RopeMode::Neox);
        let theta_scale = cfg.freq_base.powf(-2.0 / cfg.n_rot as f32);
        match freq_factors {
            Some(f) => self.factors.launch(
                stream,
                &launch,
                (
                    x,
                    positions,
                    f,
                    t,
                    h,
                    d,
                    r,
                    neox,
                    theta_scale,
                    cfg.freq_scale,
                ),
            )?,
            None => self.plain.launch(
                stream,
                &launch,
                (x, positions, t, h, d, r, neox, theta_scale, cfg.freq_scale),
            )?,
        }
        Ok(())
    }

    /// RoPE of `q` and `k` fused with the KV-cache write, for decode and small batches:
    /// in one launch, rotates `q` (`[n_new, cfg.n_heads, head_dim]`) in place, and writes
    /// `k` (`[n_new, n_kv_heads, head_dim]`) rotated the same way and `v` (same shape)
    /// into `k_cache` and `v_cache` (`shape`: `[n_ctx, n_kv_heads, head_dim]`) at rows
    /// `positions[0] + t` for token `t` — bit for bit what
    /// [`rope_inplace`](Self::rope_inplace) of `q` and of `k`, then
    /// [`AttentionOps::kv_cache_write_at`](super::AttentionOps::kv_cache_write_at) of the
    /// rotated `k` and of `v` leave in `q` and the caches. `k` itself is not modified.
    /// Token `t` is rotated at `positions[t]` (`positions` holds `n_new` values, on the
    /// device: one recorded launch serves every decode step). As for
    /// `kv_cache_write_at`, a `positions[0]` with `pos + n_new > n_ctx` (or negative)
    /// writes nothing to the caches — the caller checks positions on the host; the
    /// kernel's check only keeps memory safe — while `q` is still rotated. `cfg.n_heads`
    /// is the number of query heads. Allocates nothing (graph-capturable).
    ///
    /// Errors if `n_rot` is not even, positive and at most `head_dim`, `shape` disagrees
    /// with `n_kv_heads` or `cfg.head_dim`, a length does not match (`positions`: `n_new`;
    /// `freq_factors`: `n_rot / 2`; caches: `shape.elements()`), `n_new > n_ctx`, or a
    /// size exceeds 32 bits. Nothing is launched for `n_new = 0`.
    pub fn rope_qk_kv_write_at<T: GpuKvElement>(
        &self,
        stream: &Stream,
        q: DeviceSliceMut<f32>,
        k: DeviceSlice<f32>,
        v: DeviceSlice<f32>,
        positions: DeviceSlice<i32>,
        freq_factors: Option<DeviceSlice<f32>>,
        cfg: &RopeConfig,
        n_kv_heads: usize,
        k_cache: DeviceSliceMut<T>,
        v_cache: DeviceSliceMut<T>,
        shape: KvCacheShape,
        n_new: usize,
    ) -> Result<()> {
        const OP: &str = "rope_qk_kv_write_at";
        cfg.check_n_rot(OP)?;
        if cfg.n_heads == 0 || n_kv_heads == 0 {
            return Err(shape_error(
                OP,
                format!(
                    "{} query heads, {n_kv_heads} KV heads: both must be positive",
                    cfg.n_heads
                ),
            ));
        }
        if shape.n_kv_heads != n_kv_heads || shape.head_dim != cfg.head_dim {
            return Err(shape_error(
                OP,
                format!(
                    "the cache has {} heads of {}, k has {n_kv_heads} of {}",
                    shape.n_kv_heads, shape.head_dim, cfg.head_dim
                ),
            ));
        }
        let len = |what: &str, dims: &[usize]| {
            dims.iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| shape_error(OP, format!("{what}: {dims:?} overflows")))
        };
        let q_len = len("q", &[n_new, cfg.n_heads, cfg.head_dim])?;
        let kv_len = len("k and v", &[n_new, n_kv_heads, cfg.head_dim])?;
        let cache_len = len("the caches", &[shape.n_ctx, n_kv_heads, cfg.head_dim])?;
        for (what, actual, expected) in [
            ("positions", positions.len(), n_new),
            ("q", q.len(), q_len),
            ("k", k.len(), kv_len),
            ("v", v.len(), kv_len),
            ("k_cache", k_cache.len(), cache_len),
            ("v_cache", v_cache.len(), cache_len),
            (
                "freq_factors",
                freq_factors.as_ref().map_or(cfg.n_rot / 2, |f| f.len()),
                cfg.n_rot / 2,
            ),
        ] {
            if actual != expected {
                return Err(shape_error(
                    OP,
                    format!("{what} has {actual} elements, expected {expected}"),
                ));
            }
        }
        if n_new > shape.n_ctx {
            return Err(shape_error(
                OP,
                format!(
                    "{n_new} rows do not fit a cache of {} positions",
                    shape.n_ctx
                ),
            ));
        }
        let to_u32 = |v: usize, what: &str| {
            u32::try_from(v).map_err(|_| shape_error(OP, format!("{what} {v} exceeds 2^32")))
        };
        let dims = (
            to_u32(n_new, "n_new")?,
            to_u32(cfg.n_heads, "n_heads")?,
            to_u32(n_kv_heads, "n_kv_heads")?,
            to_u32(cfg.head_dim, "head_dim")?,
            to_u32(cfg.n_rot, "n_rot")?,
            to_u32(shape.n_ctx, "n_ctx")?,
        );
        if n_new == 0 {
            return Ok(());
        }
        let Some(which) = KV_TYPES
            .iter()
            .position(|&(name, size)| name == T::NAME && size == std::mem::size_of::<T>())
        else {
            return Err(Error::UnsupportedType {
                op: OP,
                type_name: T::NAME.to_string(),
            });
        };
        // SAFETY: `which` names the kernel of T's cache element type (f32: `float*`;
        // f16, bf16: `rf_u16*`, matching T's size, checked above), so the signature is
        // rf_rope_qk_kv_write_at_<T>'s (RF_ROPE_QK_KV_PARAMS in rope.hip). Bounds, for
        // any grid (grid-stride over its work items): q pairs touch q[t, h, a|b] with
        // a, b < n_rot <= head_dim, t < n_new, h < n_heads (q holds n_new × n_heads ×
        // head_dim); k items read k[t, h, d < head_dim] and write k_cache row
        // positions[0] + t, v items read v[j < n_new × n_kv_heads × head_dim] and write
        // the same rows of v_cache — only when 0 <= positions[0] and positions[0] +
        // n_new <= n_ctx, checked on the device, the caches holding n_ctx rows of
        // n_kv_heads × head_dim; positions[t] for t < n_new = positions.len(), and
        // freq_factors[i < n_rot / 2] only with the factors flag, set only when given.
        // Every length was checked above.
        let kernel: TypedKernel<RopeQkKvSignature<T>> =
            unsafe { self.qk_kv_write_at[which].clone().into_typed() };
        let mut flags = 0;
        if cfg.mode == RopeMode::Neox {
            flags |= ROPE_FLAG_NEOX;
        }
        // Without factors the kernel never reads them: k stands in for the pointer.
        let factors = match freq_factors {
            Some(f) => {
                flags |= ROPE_FLAG_FACTORS;
                f
            }
            None => k,
        };
        // The same theta_scale as rope_inplace.
        let theta_scale = cfg.freq_base.powf(-2.0 / cfg.n_rot as f32);
        let work = q_len / cfg.head_dim * (cfg.n_rot / 2)
            + kv_len / cfg.head_dim * (cfg.head_dim - cfg.n_rot / 2)
            + kv_len;
        kernel.launch(
            stream,
            &grid_stride_config(work)?,
            (
                q,
                k,
                v,
                positions,
                factors,
                k_cache,
                v_cache,
                dims.0,
                dims.1,
                dims.2,
                dims.3,
                dims.4,
                flags,
                theta_scale,
                cfg.freq_scale,
                dims.5,
            ),
        )?;
        Ok(())
    }
}
