//! Weight matrices in ggml types, and dequantizing them whole.
//!
//! A [`WeightMatrix`] is `rows` output features × `cols` input features stored row by row
//! in a [`GgmlType`]: row `r` is the `row_bytes = ty.row_bytes(cols)` bytes starting at
//! `r · row_bytes`, i.e. `cols / block_size` consecutive ggml blocks. This is exactly a 2-D
//! ggml tensor with `ne = [cols, rows]` as GGUF stores it (`ne[0]` is the contiguous
//! dimension), so a GGUF tensor's bytes can be used as they are.

use half::f16;
use rayon::prelude::*;

use super::{check_len, check_nonzero, checked_mul, PAR_MIN_ELEMENTS};
use crate::error::shape_error;
use crate::quant::{dequantize_into, dequantize_row, GgmlType};
use crate::{Error, Result};

/// A borrowed, size-checked weight matrix: `rows × cols` values in a ggml type.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    ty: GgmlType,
    data: &'a [u8],
    rows: usize,
    cols: usize,
    row_bytes: usize,
}

impl<'a> WeightMatrix<'a> {
    /// Wraps `data` as a `rows × cols` matrix of type `ty`.
    ///
    /// Errors if `rows` or `cols` is 0 or `cols` is not a multiple of the type's block size
    /// ([`Error::Shape`]), or `data` is not exactly `rows · ty.row_bytes(cols)` bytes
    /// ([`Error::DataSize`]).
    pub fn new(ty: GgmlType, data: &'a [u8], rows: usize, cols: usize) -> Result<Self> {
        const OP: &str = "weight matrix";
        check_nonzero(OP, "rows", rows)?;
        check_nonzero(OP, "cols", cols)?;
        let row_bytes = ty.row_bytes(cols)?;
        let expected = checked_mul(OP, "rows × row bytes", rows, row_bytes)?;
        if data.len() != expected {
            return Err(Error::DataSize {
                what: format!("{ty} weight matrix of {rows} rows × {cols} columns"),
                expected,
                actual: data.len(),
            });
        }
        Ok(WeightMatrix {
            ty,
            data,
            rows,
            cols,
            row_bytes,
        })
    }

    /// The element type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Output features (rows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features (columns, values per row).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// The raw bytes, `rows · row_bytes` of them.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The raw bytes of row `r`. The caller guarantees `r < rows`.
    pub(crate) fn row(&self, r: usize) -> &'a [u8] {
        &self.data[r * self.row_bytes..][..self.row_bytes]
    }

    /// Dequantizes row `r` into `out` (`cols` values).
    ///
    /// Errors if `r >= rows`, `out` is not `cols` long, or the type cannot be dequantized.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        const OP: &str = "dequantize_row";
        if r >= self.rows {
            return Err(shape_error(
                OP,
                format!("row {r} of a matrix with {} rows", self.rows),
            ));
        }
        check_len(OP, "output", out.len(), self.cols)?;
        dequantize_row(self.ty, self.row(r), out)
    }
}

/// Dequantizes the whole matrix to `f32`, row-major `[rows, cols]`, with
/// [`quant::dequantize_into`](crate::quant::dequantize_into) (parallel for large matrices).
///
/// Errors if `out` is not `rows · cols` long or the type cannot be dequantized.
pub fn dequantize_f32(w: &WeightMatrix<'_>, out: &mut [f32]) -> Result<()> {
    check_len("dequantize_f32", "output", out.len(), w.rows * w.cols)?;
    dequantize_into(w.ty, w.data, out)
}

/// Dequantizes the whole matrix to `f16`, row-major `[rows, cols]`: each value is
/// dequantized to `f32` and rounded to nearest even (so F16 weights come back bit for bit).
/// Parallel over rows.
///
/// Errors if `out` is not `rows · cols` long or the type cannot be dequantized.
pub fn dequantize_f16(w: &WeightMatrix<'_>, out: &mut [f16]) -> Result<()> {
    check_len("dequantize_f16", "output", out.len(), w.rows * w.cols)?;
    let run = |buf: &mut Vec<f32>, (r, row): (usize, &mut [f16])| -> Result<()> {
        buf.resize(w.cols, 0.0);
        dequantize_row(w.ty, w.row(r), buf)?;
        for (o, &v) in row.iter_mut().zip(buf.iter()) {
            *o = f16::from_f32(v);
        }
        Ok(())
    };
    if out.len() >= PAR_MIN_ELEMENTS && w.rows > 1 {
        out.par_chunks_mut(w.cols)
            .enumerate()
            .try_for_each_init(Vec::new, run)
    } else {
        let mut buf = Vec::new();
        out.chunks_mut(w.cols)
            .enumerate()
            .try_for_each(|item| run(&mut buf, item))
    }
}
