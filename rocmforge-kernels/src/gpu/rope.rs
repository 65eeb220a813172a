//! Rotary position embedding on the GPU.

use rocmforge_hip::{
    DeviceMemory, DeviceSlice, DeviceSliceMut, In, LaunchConfig, Out, Stream, TypedKernel,
};

use super::KernelLoader;
use crate::cpu::RopeMode;
use crate::error::shape_error;
use crate::{Result, ROPE};

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

/// The kernels of `rope.hip`.
#[derive(Debug, Clone)]
pub struct RopeOps {
    plain: RopeKernel,
    factors: RopeFactorsKernel,
}

impl RopeOps {
    /// Loads the kernels.
    pub fn load(loader: &KernelLoader) -> Result<Self> {
        let module = loader.module(&ROPE)?;
        // SAFETY: signatures match rope.hip; each thread handles one pair of one head of
        // one token, index < n_tokens × n_heads × n_rot/2, touching x[token, head, a|b] with
        // a, b < n_rot <= head_dim, positions[token] and freq_factors[i < n_rot/2]: the
        // launcher checks every one of those lengths.
        unsafe {
            Ok(Self {
                plain: module.function("rf_rope_f32")?.into_typed(),
                factors: module.function("rf_rope_factors_f32")?.into_typed(),
            })
        }
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
        if cfg.n_rot == 0 || cfg.n_rot % 2 != 0 || cfg.n_rot > cfg.head_dim {
            return Err(shape_error(
                OP,
                format!(
                    "n_rot {} must be even, positive and at most head_dim {}",
                    cfg.n_rot, cfg.head_dim
                ),
            ));
        }
        let expected = n_tokens
            .checked_mul(cfg.n_heads)
            .and_then(|v| v.checked_mul(cfg.head_dim))
            .ok_or_else(|| shape_error(OP, "n_tokens × n_heads × head_dim overflows"))?;
        if x.len() != expected {
            return Err(shape_error(
                OP,
                format!(
                    "x has {} elements, expected {n_tokens} tokens × {} heads × {}",
                    x.len(),
                    cfg.n_heads,
                    cfg.head_dim
                ),
            ));
        }
        if let Some(f) = &freq_factors {
            if f.len() != cfg.n_rot / 2 {
                return Err(shape_error(
                    OP,
                    format!(
                        "{} frequency factors, expected n_rot/2 = {}",
                        f.len(),
                        cfg.n_rot / 2
                    ),
                ));
            }
        }
        let to_u32 = |v: usize, what: &str| {
            u32::try_from(v).map_err(|_| shape_error(OP, format!("{what} {v} exceeds 2^32")))
        };
        let (t, h, d, r) = (
            to_u32(n_tokens, "n_tokens")?,
            to_u32(cfg.n_heads, "n_heads")?,
            to_u32(cfg.head_dim, "head_dim")?,
            to_u32(cfg.n_rot, "n_rot")?,
        );
        let pairs = expected / cfg.head_dim * (cfg.n_rot / 2);
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
}
