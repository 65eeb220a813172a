//! Token embedding: rows of a (possibly quantized) table, dequantized on the fly.

use rayon::prelude::*;

use super::weights::WeightMatrix;
use super::{check_len, checked_mul, PAR_MIN_ELEMENTS};
use crate::error::shape_error;
use crate::quant::dequantize_row;
use crate::Result;

/// Looks up token embeddings: `out[i] = table[ids[i]]` dequantized to `f32`, where `table`
/// is `[n_vocab, dim]` (`rows = n_vocab`, `cols = dim`; GGUF's `token_embd.weight`) and
/// `out` is `[ids.len(), dim]`.
///
/// Errors, before writing anything, if an id is `>= n_vocab`, `out` is not
/// `ids.len() · dim` long, or the table's type cannot be dequantized
/// ([`Error::UnsupportedType`](crate::Error::UnsupportedType)).
pub fn embedding(table: &WeightMatrix<'_>, ids: &[u32], out: &mut [f32]) -> Result<()> {
    const OP: &str = "embedding";
    let dim = table.cols();
    check_len(
        OP,
        "output",
        out.len(),
        checked_mul(OP, "ids × dim", ids.len(), dim)?,
    )?;
    if let Some((i, &id)) = ids
        .iter()
        .enumerate()
        .find(|(_, &id)| id as usize >= table.rows())
    {
        return Err(shape_error(
            OP,
            format!(
                "token id {id} (at index {i}) is outside a vocabulary of {}",
                table.rows()
            ),
        ));
    }
    if ids.is_empty() {
        return Ok(());
    }
    // Surface an unsupported type before any row is written.
    dequantize_row(table.ty(), table.row(ids[0] as usize), &mut out[..dim])?;

    let run =
        |(row, &id): (&mut [f32], &u32)| dequantize_row(table.ty(), table.row(id as usize), row);
    if out.len() >= PAR_MIN_ELEMENTS && ids.len() > 1 {
        out.par_chunks_mut(dim)
            .zip(ids.par_iter())
            .try_for_each(run)
    } else {
        out.chunks_mut(dim).zip(ids).try_for_each(run)
    }
}
