//! Rotary position embedding (RoPE), both layouts llama.cpp uses, computed as ggml's CPU
//! backend (`ggml_compute_forward_rope_flt`, `ggml_rope_cache_init`, `rope_yarn` with
//! `ext_factor = 0`, `attn_factor = 1`) does.
//!
//! Input `x` is `[n_tokens, n_heads, head_dim]`; token `t` sits at position
//! `positions[t]`. Only the first `n_rot` dimensions of each head are rotated (partial
//! rotary); dimensions `n_rot..head_dim` are copied unchanged.
//!
//! For pair index `i` in `0..n_rot/2`, the angle is
//!
//! ```text
//! theta_scale = powf(freq_base, -2.0f / n_rot)              // f32
//! theta_i     = freq_scale · ((pos · theta_scale^i) / freq_factors[i])
//! ```
//!
//! where, as in ggml, `pos · theta_scale^i` is computed by starting from `(float) pos` and
//! multiplying by `theta_scale` once per pair (`theta *= theta_scale`), all in `f32`.
//! (A GPU kernel computing `pos · powf(theta_scale, i)` directly differs from this in the
//! last bits of the angle; compare with a tolerance that grows with the position.)
//! `freq_factors` are 1 when absent; Llama 3's rope scaling stores them in the GGUF
//! (`rope_freqs.weight`) and the angle is divided by them.
//!
//! The pair `(x0, x1)` rotated by `theta_i` becomes
//! `(x0·cos θ − x1·sin θ, x0·sin θ + x1·cos θ)` (in `f32`, `cosf`/`sinf`), where
//!
//! * [`RopeMode::Normal`] (llama.cpp `LLAMA_ROPE_TYPE_NORM`, mode 0; Llama, Mistral):
//!   `x0 = x[2i]`, `x1 = x[2i + 1]` — adjacent pairs;
//! * [`RopeMode::Neox`] (`LLAMA_ROPE_TYPE_NEOX`, mode 2; GPT-NeoX, Qwen, Phi, …):
//!   `x0 = x[i]`, `x1 = x[i + n_rot/2]` — the two halves of the rotated part.
//!
//! YaRN (`ext_factor ≠ 0`) and multi-section RoPE are not implemented.

use rayon::prelude::*;

use super::{check_len, check_nonzero, checked_product, PAR_MIN_ELEMENTS};
use crate::error::shape_error;
use crate::Result;

/// Which dimensions RoPE pairs up (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopeMode {
    /// Adjacent pairs `(x[2i], x[2i+1])`: ggml's `GGML_ROPE_TYPE_NORMAL` (mode 0).
    Normal,
    /// Split halves `(x[i], x[i + n_rot/2])`: ggml's `GGML_ROPE_TYPE_NEOX` (mode 2).
    Neox,
}

/// Shape and frequency parameters of a RoPE application.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams<'a> {
    /// Heads per token.
    pub n_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
    /// Rotated dimensions per head (even, at most `head_dim`; llama.cpp's `n_rot`).
    pub n_rot: usize,
    /// Pairing layout.
    pub mode: RopeMode,
    /// Frequency base (`rope.freq_base`, 10000 for Llama 2, 500000 for Llama 3).
    pub freq_base: f32,
    /// Linear position scaling (`1 / rope.scaling.factor` for linear scaling; 1 for none).
    pub freq_scale: f32,
    /// Optional per-pair frequency divisors, `n_rot / 2` of them (Llama 3 `rope_freqs`).
    pub freq_factors: Option<&'a [f32]>,
}

impl<'a> RopeParams<'a> {
    /// Parameters rotating all of `head_dim`, with `freq_scale = 1` and no frequency factors.
    pub fn new(n_heads: usize, head_dim: usize, mode: RopeMode, freq_base: f32) -> Self {
        RopeParams {
            n_heads,
            head_dim,
            n_rot: head_dim,
            mode,
            freq_base,
            freq_scale: 1.0,
            freq_factors: None,
        }
    }

    /// The same parameters rotating only the first `n_rot` dimensions of each head.
    pub fn with_n_rot(self, n_rot: usize) -> Self {
        RopeParams { n_rot, ..self }
    }

    /// The same parameters with per-pair frequency factors (`n_rot / 2` of them).
    pub fn with_freq_factors(self, freq_factors: &'a [f32]) -> Self {
        RopeParams {
            freq_factors: Some(freq_factors),
            ..self
        }
    }

    /// The same parameters with a linear position scale.
    pub fn with_freq_scale(self, freq_scale: f32) -> Self {
        RopeParams { freq_scale, ..self }
    }

    /// Checks the parameters; returns the element count of one token (`n_heads · head_dim`).
    fn validate(&self, op: &'static str) -> Result<usize> {
        check_nonzero(op, "n_heads", self.n_heads)?;
        check_nonzero(op, "head_dim", self.head_dim)?;
        if self.n_rot % 2 != 0 || self.n_rot > self.head_dim {
            return Err(shape_error(
                op,
                format!(
                    "n_rot = {} must be even and at most head_dim = {}",
                    self.n_rot, self.head_dim
                ),
            ));
        }
        if !(self.freq_base.is_finite() && self.freq_base > 0.0) {
            return Err(shape_error(
                op,
                format!("freq_base = {} must be finite and positive", self.freq_base),
            ));
        }
        if !self.freq_scale.is_finite() {
            return Err(shape_error(
                op,
                format!("freq_scale = {} must be finite", self.freq_scale),
            ));
        }
        if let Some(ff) = self.freq_factors {
            check_len(op, "freq_factors", ff.len(), self.n_rot / 2)?;
            if let Some(bad) = ff.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
                return Err(shape_error(
                    op,
                    format!("frequency factor {bad} must be finite and positive"),
                ));
            }
        }
        checked_product(op, "n_heads × head_dim", &[self.n_heads, self.head_dim])
    }

    /// `(cos θ_i, sin θ_i)` for `i in 0..n_rot/2` at position `pos`, into `cache`.
    fn angles(&self, pos: i32, cache: &mut [(f32, f32)]) {
        let theta_scale = self.freq_base.powf(-2.0f32 / self.n_rot as f32);
        let mut theta = pos as f32;
        for (i, cs) in cache.iter_mut().enumerate() {
            let ff = self.freq_factors.map_or(1.0, |f| f[i]);
            let t = self.freq_scale * (theta / ff);
            *cs = (t.cos(), t.sin());
            theta *= theta_scale;
        }
    }

    /// Rotates one head vector in place, given the angles of its token.
    fn rotate_head(&self, head: &mut [f32], cache: &[(f32, f32)]) {
        let half = self.n_rot / 2;
        for (i, &(cos, sin)) in cache.iter().enumerate() {
            let (a, b) = match self.mode {
                RopeMode::Normal => (2 * i, 2 * i + 1),
                RopeMode::Neox => (i, i + half),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos - x1 * sin;
            head[b] = x0 * sin + x1 * cos;
        }
    }
}

/// Applies RoPE in place to `x` (`[positions.len(), n_heads, head_dim]`), token `t` at
/// position `positions[t]` (see the [module documentation](self) for the exact formula).
///
/// Errors if `x` is not `positions.len() · n_heads · head_dim` long, `n_heads` or
/// `head_dim` is 0, `n_rot` is odd or larger than `head_dim`, `freq_base` is not finite and
/// positive, `freq_scale` is not finite, or `freq_factors` is not `n_rot / 2` finite
/// positive values.
pub fn rope_inplace(x: &mut [f32], positions: &[i32], p: &RopeParams<'_>) -> Result<()> {
    const OP: &str = "rope";
    let token_len = p.validate(OP)?;
    let total = checked_product(OP, "x", &[positions.len(), token_len])?;
    check_len(OP, "x", x.len(), total)?;
    if total == 0 {
        return Ok(());
    }

    let run = |cache: &mut Vec<(f32, f32)>, token: &mut [f32], pos: i32| {
        cache.resize(p.n_rot / 2, (1.0, 0.0));
        p.angles(pos, cache);
        for head in token.chunks_mut(p.head_dim) {
            p.rotate_head(head, cache);
        }
    };
    if total >= PAR_MIN_ELEMENTS && positions.len() > 1 {
        x.par_chunks_mut(token_len)
            .zip(positions.par_iter())
            .for_each_init(Vec::new, |cache, (token, &pos)| run(cache, token, pos));
    } else {
        let mut cache = Vec::new();
        for (token, &pos) in x.chunks_mut(token_len).zip(positions) {
            run(&mut cache, token, pos);
        }
    }
    Ok(())
}

/// Applies RoPE to `x`, writing `out` (both `[positions.len(), n_heads, head_dim]`); see
/// [`rope_inplace`].
///
/// Errors as [`rope_inplace`] does, and if `out` is not as long as `x`.
pub fn rope(x: &[f32], positions: &[i32], p: &RopeParams<'_>, out: &mut [f32]) -> Result<()> {
    check_len("rope", "output", out.len(), x.len())?;
    // Validate before writing anything.
    let token_len = p.validate("rope")?;
    let total = checked_product("rope", "x", &[positions.len(), token_len])?;
    check_len("rope", "x", x.len(), total)?;
    out.copy_from_slice(x);
    rope_inplace(out, positions, p)
}
