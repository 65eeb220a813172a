//! Greedy decoding: the index of the largest value.

use crate::error::shape_error;
use crate::Result;

/// The index of the largest value of `x`.
///
/// * Ties: the **first** (lowest) index among equal maxima wins.
/// * NaN: NaN values never win; they are skipped. `-inf` is an ordinary value (a vector
///   of only `-inf` returns 0).
///
/// Errors if `x` is empty or every value is NaN (a model that produced only NaN logits has
/// failed; an index would hide that).
pub fn argmax(x: &[f32]) -> Result<usize> {
    if x.is_empty() {
        return Err(shape_error("argmax", "empty input"));
    }
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in x.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
        .ok_or_else(|| shape_error("argmax", format!("all {} values are NaN", x.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_max_wins_and_nan_is_skipped() {
        assert_eq!(argmax(&[1.0, 3.0, 2.0, 3.0]).unwrap(), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0, f32::NAN, 0.5]).unwrap(), 3);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]).unwrap(), 0);
        assert_eq!(argmax(&[-0.0, 0.0]).unwrap(), 0);
        assert_eq!(argmax(&[f32::NAN, f32::INFINITY]).unwrap(), 1);
        assert!(argmax(&[]).is_err());
        assert!(argmax(&[f32::NAN, f32::NAN]).is_err());
    }
}
