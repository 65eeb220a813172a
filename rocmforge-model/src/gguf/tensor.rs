//! Tensor descriptions: [`TensorInfo`], [`GgufTensor`] and the shape checks that
//! the reader and the writer share.

use std::ops::Range;

use rocmforge_kernels::quant::GgmlType;

use super::error::{GgufError, Result};
use super::{MAX_DIMS, MAX_TENSOR_NAME_LEN};

/// One tensor of a GGUF file, as its tensor-info entry describes it (validated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub(crate) name: String,
    pub(crate) ty: GgmlType,
    pub(crate) dims: Vec<usize>,
    pub(crate) n_elements: usize,
    pub(crate) n_bytes: usize,
    pub(crate) offset: u64,
    pub(crate) data_start: usize,
}

impl TensorInfo {
    /// The name (`blk.0.attn_q.weight`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ggml type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Dimensions in ggml order: `dims()[0]` (ne0) is the row length, the
    /// contiguous dimension; a matrix of `rows × cols` is `[cols, rows]`.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// ne0, the row length (elements per row).
    pub fn row_len(&self) -> usize {
        self.dims[0]
    }

    /// Number of rows: the product of every dimension but ne0.
    pub fn n_rows(&self) -> usize {
        self.n_elements / self.dims[0]
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.n_elements
    }

    /// Bytes of data (`ggml_nbytes`).
    pub fn n_bytes(&self) -> usize {
        self.n_bytes
    }

    /// Offset of the data relative to the start of the data section, as stored.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Absolute byte range of the data in the file.
    pub fn data_range(&self) -> Range<usize> {
        self.data_start..self.data_start + self.n_bytes
    }
}

/// A tensor of an open file: its description and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct GgufTensor<'a> {
    pub(crate) info: &'a TensorInfo,
    pub(crate) data: &'a [u8],
}

impl<'a> GgufTensor<'a> {
    /// The description (name, type, dims, offsets).
    pub fn info(&self) -> &'a TensorInfo {
        self.info
    }

    /// The name.
    pub fn name(&self) -> &'a str {
        &self.info.name
    }

    /// The ggml type.
    pub fn ty(&self) -> GgmlType {
        self.info.ty
    }

    /// Dimensions in ggml order (ne0, the row length, first).
    pub fn dims(&self) -> &'a [usize] {
        &self.info.dims
    }

    /// ne0, the row length.
    pub fn row_len(&self) -> usize {
        self.info.row_len()
    }

    /// Number of rows (product of the dimensions after ne0).
    pub fn n_rows(&self) -> usize {
        self.info.n_rows()
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.info.n_elements
    }

    /// The raw data (`n_bytes()` bytes in the tensor's ggml type). In a
    /// memory-mapped file it is aligned to `general.alignment` in memory too (the
    /// map starts on a page); in a file read into a `Vec` it may not be: read
    /// numbers with `from_le_bytes` or `bytemuck::pod_read_unaligned`, or copy.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// Checks a tensor's name, dimensions and type the way ggml does, returning
/// `(dims as usize, element count, byte size)`.
///
/// Dimensions: 1 to [`MAX_DIMS`], each at least 1, element count within `i64`
/// (ggml's `int64_t ne`) and `usize`; ne0 a multiple of the type's block size;
/// byte size within `usize`.
pub(crate) fn check_tensor_shape(
    name: &str,
    ty: GgmlType,
    dims: &[u64],
) -> Result<(Vec<usize>, usize, usize)> {
    if name.len() > MAX_TENSOR_NAME_LEN {
        return Err(GgufError::TensorNameTooLong {
            name: name.to_string(),
            len: name.len(),
            max: MAX_TENSOR_NAME_LEN,
        });
    }
    if dims.is_empty() || dims.len() > MAX_DIMS {
        return Err(GgufError::InvalidDimCount {
            name: name.to_string(),
            n_dims: dims.len() as u64,
            max: MAX_DIMS,
        });
    }
    if let Some(axis) = dims.iter().position(|&d| d == 0) {
        return Err(GgufError::ZeroDim {
            name: name.to_string(),
            axis,
            dims: dims.to_vec(),
        });
    }
    let max_elements = (i64::MAX as u64).min(usize::MAX as u64);
    let too_large = |what: &'static str, max: u64| GgufError::TensorTooLarge {
        name: name.to_string(),
        dims: dims.to_vec(),
        what,
        max,
    };
    let mut n: u64 = 1;
    for &d in dims {
        n = n
            .checked_mul(d)
            .filter(|&n| n <= max_elements)
            .ok_or_else(|| too_large("elements", max_elements))?;
    }
    // Every product fits in usize now.
    let dims_usize: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let n_elements = n as usize;
    let row_len = dims_usize[0];
    if row_len % ty.block_size() != 0 {
        return Err(GgufError::RowNotBlockMultiple {
            name: name.to_string(),
            ty,
            row_len: dims[0],
            block_size: ty.block_size(),
        });
    }
    // ggml's row size; with the multiple checked above it can only fail by overflow.
    let row_bytes = ty
        .row_bytes(row_len)
        .map_err(|_| too_large("bytes", usize::MAX as u64))?;
    let n_bytes = row_bytes
        .checked_mul(n_elements / row_len)
        .ok_or_else(|| too_large("bytes", usize::MAX as u64))?;
    Ok((dims_usize, n_elements, n_bytes))
}
