//! RoPE as llama.cpp's CPU backend computes it (`ggml_compute_forward_rope_flt`,
//! `ggml_rope_cache_init`, `rope_yarn` and `rotate_pairs` in `ggml/src/ggml-cpu/ops.cpp`,
//! for `ext_factor = 0`, `attn_factor = 1`).
//!
//! The angles are ggml's (and [`rocmforge_kernels::cpu::rope_inplace`]'s): `theta`
//! starts at the position and is multiplied by `powf(base, -2 / n_rot)` once per pair,
//! `cos`/`sin` of `freq_scale · theta / factor`. The rotation is where the two differ:
//! GCC contracts `x0*cos - x1*sin` and `x0*sin + x1*cos` into FMAs (its default
//! `-ffp-contract=fast`), keeping the `x1` products separate:
//!
//! ```text
//! y0 = fma(x0, cos, −(x1·sin))      y1 = fma(x0, sin, x1·cos)
//! ```
//!
//! (read from the object code of the AVX2 build's scalar loop, and checked bit for bit
//! against the rotated queries and keys llama.cpp computes for the demo model). The pair
//! is `(x[2i], x[2i+1])` for `GGML_ROPE_TYPE_NORMAL`, `(x[i], x[i + n_rot/2])` for NEOX.

use rayon::prelude::*;

use super::super::{RopeMode, RopeSpec};
use super::shape_error;
use super::simd::fma;
use crate::error::Result;

/// `(cos, sin)` of every pair at position `pos` (`ggml_rope_cache_init`).
fn angles(spec: &RopeSpec, factors: Option<&[f32]>, pos: i32, cache: &mut Vec<(f32, f32)>) {
    let n_pairs = spec.n_rot / 2;
    let theta_scale = spec.freq_base.powf(-2.0f32 / spec.n_rot as f32);
    let mut theta = pos as f32;
    cache.clear();
    for i in 0..n_pairs {
        let ff = factors.map_or(1.0, |f| f[i]);
        let t = spec.freq_scale * (theta / ff);
        cache.push((t.cos(), t.sin()));
        theta *= theta_scale;
    }
}

/// Rotates one head in place.
fn rotate(head: &mut [f32], mode: RopeMode, cache: &[(f32, f32)]) {
    let n_pairs = cache.len();
    for (i, &(cos, sin)) in cache.iter().enumerate() {
        let (a, b) = match mode {
            RopeMode::Normal => (2 * i, 2 * i + 1),
            RopeMode::Neox => (i, i + n_pairs),
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = fma(x0, cos, -(x1 * sin));
        head[b] = fma(x0, sin, x1 * cos);
    }
}

/// Rotates `x` (`[positions.len(), n_heads, head_dim]`) in place, token `t` at
/// `positions[t]`, as llama.cpp does (see the [module documentation](self)).
///
/// Errors if the shape does not fit, `n_rot` is odd or larger than `head_dim`, or the
/// factors are not `n_rot / 2` long.
pub fn rope_inplace(
    x: &mut [f32],
    positions: &[i32],
    n_heads: usize,
    spec: &RopeSpec,
    factors: Option<&[f32]>,
) -> Result<()> {
    const OP: &str = "ggml-compatible rope";
    let d = spec.head_dim;
    if d == 0 || n_heads == 0 || spec.n_rot % 2 != 0 || spec.n_rot > d {
        return Err(shape_error(
            OP,
            format!("{n_heads} heads of {d}, n_rot {}", spec.n_rot),
        ));
    }
    if factors.is_some_and(|f| f.len() != spec.n_rot / 2) {
        return Err(shape_error(OP, "frequency factors must be n_rot / 2 long"));
    }
    let token = n_heads * d;
    if Some(x.len()) != positions.len().checked_mul(token) {
        return Err(shape_error(
            OP,
            format!(
                "{} values for {} tokens of {token}",
                x.len(),
                positions.len()
            ),
        ));
    }
    x.par_chunks_mut(token)
        .zip(positions.par_iter())
        .for_each_init(Vec::new, |cache, (tok, &pos)| {
            angles(spec, factors, pos, cache);
            for head in tok.chunks_mut(d) {
                rotate(&mut head[..spec.n_rot], spec.mode, cache);
            }
        });
    Ok(())
}
