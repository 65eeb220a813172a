//! Row access into a 2-D ggml tensor: the raw bytes of a row, one row
//! dequantized, or many rows gathered (an embedding lookup).
//!
//! A tensor here is `data`: `n_rows` rows of `row_len` elements of one type,
//! stored back to back (ggml's `ne[0] = row_len`, contiguous). All arithmetic on
//! row indices and byte offsets is checked: indices come from token ids and
//! sizes from files, and neither is trusted.

use rayon::prelude::*;

use super::dequantize::{dequantize_row, unsupported};
use super::GgmlType;
use crate::error::shape_error;
use crate::{Error, Result};

/// Rows per rayon task in [`get_rows`]; a task per row is too fine for short rows.
const PAR_MIN_ELEMENTS: usize = 1 << 15;

/// Bytes per row and number of rows of the tensor `data`, checking that
/// `row_len` is a positive whole number of blocks and `data` a whole number of
/// rows.
pub fn tensor_rows(ty: GgmlType, data: &[u8], row_len: usize) -> Result<(usize, usize)> {
    if row_len == 0 {
        return Err(shape_error("get_row", "rows of 0 elements"));
    }
    let row_bytes = ty.row_bytes(row_len)?;
    if data.len() % row_bytes != 0 {
        return Err(Error::DataSize {
            what: format!(
                "{ty} tensor with rows of {row_len} elements ({row_bytes} bytes): not a whole number of rows"
            ),
            expected: data.len() / row_bytes * row_bytes,
            actual: data.len(),
        });
    }
    Ok((row_bytes, data.len() / row_bytes))
}

/// The raw bytes of row `row` (for a copy to the GPU, or a quantized matmul).
///
/// Errors when the sizes do not fit ([`tensor_rows`]) or `row` is past the last
/// row ([`Error::Shape`]).
pub fn row_bytes_of(ty: GgmlType, data: &[u8], row_len: usize, row: usize) -> Result<&[u8]> {
    let (row_bytes, n_rows) = tensor_rows(ty, data, row_len)?;
    if row >= n_rows {
        return Err(shape_error(
            "get_row",
            format!("row {row} out of range: the tensor has {n_rows} rows"),
        ));
    }
    // Cannot overflow: row < n_rows and n_rows * row_bytes == data.len().
    let start = row * row_bytes;
    Ok(&data[start..start + row_bytes])
}

/// Dequantizes row `row` of the tensor `data` into `dst` (`row_len` long).
pub fn get_row_into(
    ty: GgmlType,
    data: &[u8],
    row_len: usize,
    row: usize,
    dst: &mut [f32],
) -> Result<()> {
    if !ty.is_dequantizable() {
        return Err(unsupported("get_row", ty));
    }
    if dst.len() != row_len {
        return Err(shape_error(
            "get_row",
            format!(
                "destination holds {} elements, a row has {row_len}",
                dst.len()
            ),
        ));
    }
    dequantize_row(ty, row_bytes_of(ty, data, row_len, row)?, dst)
}

/// Dequantizes row `row` of the tensor `data` into a new vector.
pub fn get_row(ty: GgmlType, data: &[u8], row_len: usize, row: usize) -> Result<Vec<f32>> {
    if !ty.is_dequantizable() {
        return Err(unsupported("get_row", ty));
    }
    let src = row_bytes_of(ty, data, row_len, row)?;
    let mut out = vec![0.0f32; row_len];
    dequantize_row(ty, src, &mut out)?;
    Ok(out)
}

/// Gathers and dequantizes the rows `rows` of the tensor `data` (an embedding
/// lookup: `rows` are token ids), one after another: `rows.len() * row_len`
/// values. Every index is checked before anything is allocated; parallel over
/// rows when the output is large.
pub fn get_rows(ty: GgmlType, data: &[u8], row_len: usize, rows: &[usize]) -> Result<Vec<f32>> {
    if !ty.is_dequantizable() {
        return Err(unsupported("get_rows", ty));
    }
    let (row_bytes, n_rows) = tensor_rows(ty, data, row_len)?;
    if let Some(&bad) = rows.iter().find(|&&r| r >= n_rows) {
        return Err(shape_error(
            "get_rows",
            format!("row {bad} out of range: the tensor has {n_rows} rows"),
        ));
    }
    let total = rows.len().checked_mul(row_len).ok_or_else(|| {
        shape_error(
            "get_rows",
            format!("{} rows of {row_len} elements overflow usize", rows.len()),
        )
    })?;
    let mut out = vec![0.0f32; total];
    let one = |(dst, &r): (&mut [f32], &usize)| {
        let start = r * row_bytes;
        dequantize_row(ty, &data[start..start + row_bytes], dst)
    };
    if total >= PAR_MIN_ELEMENTS && rows.len() > 1 {
        out.par_chunks_mut(row_len)
            .zip(rows.par_iter())
            .try_for_each(one)?;
    } else {
        out.chunks_mut(row_len).zip(rows).try_for_each(one)?;
    }
    Ok(out)
}
