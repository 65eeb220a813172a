//! The KV cache layout, its element types, and writing new K/V rows into it.
//!
//! A cache tensor (one for K, one for V, per layer) is `[n_ctx, n_kv_heads, head_dim]`:
//! position-major, so the `n_kv_heads · head_dim` values of one position are contiguous
//! and position `p`, head `h`, dimension `d` lives at `(p · n_kv_heads + h) · head_dim + d`.
//! Its elements are `f32`, `f16` or `bf16` ([`KvElement`]); values are converted from `f32`
//! when written (rounding to nearest even) and back to `f32` (exactly) when read.

use std::borrow::Cow;

use half::{bf16, f16};
use rayon::prelude::*;

use super::{check_len, check_nonzero, checked_product, PAR_CHUNK, PAR_MIN_ELEMENTS};
use crate::error::shape_error;
use crate::Result;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// An element type of the KV cache: `f32`, `half::f16` or `half::bf16`.
///
/// Sealed: the GPU kernels exist for exactly these types.
pub trait KvElement: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The type's name, for messages.
    const NAME: &'static str;
    /// Rounds an `f32` to this type (nearest, ties to even; identity for `f32`).
    fn from_f32(x: f32) -> Self;
    /// Widens to `f32` (exact).
    fn to_f32(self) -> f32;

    /// Widens a whole slice to `f32`: borrowed as is for `f32`, converted (in parallel for
    /// long slices) otherwise.
    fn widen_slice(src: &[Self]) -> Cow<'_, [f32]> {
        let mut out = vec![0.0f32; src.len()];
        if src.len() >= PAR_MIN_ELEMENTS {
            out.par_chunks_mut(PAR_CHUNK)
                .zip(src.par_chunks(PAR_CHUNK))
                .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, &s)| *o = s.to_f32()));
        } else {
            out.iter_mut().zip(src).for_each(|(o, &s)| *o = s.to_f32());
        }
        Cow::Owned(out)
    }
}

impl KvElement for f32 {
    const NAME: &'static str = "f32";
    #[inline]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    fn widen_slice(src: &[Self]) -> Cow<'_, [f32]> {
        Cow::Borrowed(src)
    }
}

impl KvElement for f16 {
    const NAME: &'static str = "f16";
    #[inline]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl KvElement for bf16 {
    const NAME: &'static str = "bf16";
    #[inline]
    fn from_f32(x: f32) -> Self {
        super::convert::f32_to_bf16_value(x)
    }
    #[inline]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

/// The shape of one KV cache tensor: `[n_ctx, n_kv_heads, head_dim]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KvCacheShape {
    /// Capacity in positions.
    pub n_ctx: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
}

impl KvCacheShape {
    /// Elements of one position: `n_kv_heads · head_dim`.
    ///
    /// Errors if either is 0 or the product overflows `usize`.
    pub fn row_len(&self) -> Result<usize> {
        self.row_len_for("kv_cache")
    }

    /// Elements of the whole tensor, `n_ctx · n_kv_heads · head_dim`: the length of the
    /// slice to allocate for it.
    ///
    /// Errors if `n_kv_heads` or `head_dim` is 0 or the product overflows `usize`.
    pub fn elements(&self) -> Result<usize> {
        self.elements_for("kv_cache")
    }

    pub(crate) fn row_len_for(&self, op: &'static str) -> Result<usize> {
        check_nonzero(op, "n_kv_heads", self.n_kv_heads)?;
        check_nonzero(op, "head_dim", self.head_dim)?;
        checked_product(
            op,
            "n_kv_heads × head_dim",
            &[self.n_kv_heads, self.head_dim],
        )
    }

    pub(crate) fn elements_for(&self, op: &'static str) -> Result<usize> {
        let row = self.row_len_for(op)?;
        checked_product(op, "n_ctx × n_kv_heads × head_dim", &[self.n_ctx, row])
    }
}

/// Writes `n_new` new rows `new` (`[n_new, n_kv_heads, head_dim]`, `f32`) into `cache`
/// (`[n_ctx, n_kv_heads, head_dim]`, element `T`) at positions `pos0 .. pos0 + n_new`,
/// converting each value with [`KvElement::from_f32`]. Other positions are untouched.
///
/// Errors if `cache` is not `shape.elements()` long, `new` is not `n_new · n_kv_heads ·
/// head_dim` long, or `pos0 + n_new > n_ctx`.
pub fn kv_cache_write<T: KvElement>(
    cache: &mut [T],
    shape: KvCacheShape,
    pos0: usize,
    new: &[f32],
    n_new: usize,
) -> Result<()> {
    const OP: &str = "kv_cache_write";
    let row = shape.row_len_for(OP)?;
    check_len(OP, "cache", cache.len(), shape.elements_for(OP)?)?;
    check_len(
        OP,
        "new rows",
        new.len(),
        checked_product(OP, "new rows", &[n_new, row])?,
    )?;
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
    for (dst, &src) in cache[pos0 * row..end * row].iter_mut().zip(new) {
        *dst = T::from_f32(src);
    }
    Ok(())
}
