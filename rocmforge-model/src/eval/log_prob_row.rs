//! One position's next-token log-probabilities, compressed as llama.cpp's perplexity tool
//! stores them, and the comparison of a run's logits with such a base row.
//!
//! A row holds `2 * ceil(n_vocab / 2) + 4` `u16`s: two `f32`s (`scale`, `min_log_prob`),
//! then one level per vocabulary entry, where `log p = scale * level + min_log_prob`.
//! Levels span the 16 nats below the most likely token (less when the logits span less);
//! anything below that range is stored as level 0. The arithmetic follows
//! `tools/perplexity/perplexity.cpp` (`log_softmax`) in `f32` with an `f64` sum of
//! exponentials, so a row written here equals llama.cpp's for the same logits.

use crate::tokenizer::TokenId;

/// `u16`s per row for a vocabulary of `n_vocab`.
pub(crate) fn row_len(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// The most likely token (the first of equal maxima), its logit, and
/// `ln Σ exp(logit - max)` (as `f32`, from an `f64` sum as llama.cpp).
fn softmax_terms(logits: &[f32]) -> (usize, f32, f32) {
    let mut imax = 0;
    let mut max = logits[0];
    for (i, &l) in logits.iter().enumerate().skip(1) {
        if l > max {
            max = l;
            imax = i;
        }
    }
    let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    (imax, max, sum_exp.ln() as f32)
}

/// llama.cpp's `nearest_int`: round to nearest, ties to even.
fn nearest_int(x: f32) -> u16 {
    x.round_ties_even() as u16
}

/// Writes `logits`' log-probabilities into `row` (`row_len(logits.len())` `u16`s) and
/// returns the negative log-likelihood of `target`.
///
/// # Panics
/// If `logits` is empty, `row` has the wrong length or `target` is out of range.
pub fn encode_log_probs(logits: &[f32], target: TokenId, row: &mut [u16]) -> f64 {
    assert_eq!(row.len(), row_len(logits.len()), "row length");
    let (_, max_logit, log_sum_exp) = softmax_terms(logits);
    let min_logit = logits
        .iter()
        .copied()
        .fold(logits[0], f32::min)
        .max(max_logit - 16.0);
    let min_log_prob = min_logit - max_logit - log_sum_exp;
    let scale = (max_logit - min_logit) / 65535.0;
    let (head, levels) = row.split_at_mut(4);
    write_f32(&mut head[0..2], scale);
    write_f32(&mut head[2..4], min_log_prob);
    if scale != 0.0 {
        let inv_scale = 1.0 / scale;
        for (level, &l) in levels.iter_mut().zip(logits) {
            *level = if l > min_logit {
                nearest_int(inv_scale * (l - min_logit))
            } else {
                0
            };
        }
    } else {
        levels.fill(0);
    }
    f64::from(max_logit + log_sum_exp - logits[target as usize])
}

/// A base run's log-probabilities at one position (a row of a `_logits_` file).
#[derive(Clone, Copy, Debug)]
pub struct BaseLogProbs<'a> {
    scale: f32,
    min_log_prob: f32,
    levels: &'a [u16],
}

/// How a run's distribution at one position compares with the base's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenComparison {
    /// The run's negative log-likelihood of the actual next token.
    pub nll: f32,
    /// The base's.
    pub nll_base: f32,
    /// KL(base ‖ run) in nats, over the tokens the base gives more than e⁻¹⁶.
    pub kld: f64,
    /// The run's probability of the actual next token minus the base's.
    pub delta_p: f32,
    /// Whether both put the same token first.
    pub same_top: bool,
}

impl<'a> BaseLogProbs<'a> {
    /// A row as stored (`row_len(n_vocab)` `u16`s), for a vocabulary of `n_vocab`.
    ///
    /// # Panics
    /// If the row is shorter than `4 + n_vocab`.
    pub fn from_row(row: &'a [u16], n_vocab: usize) -> Self {
        Self {
            scale: read_f32(&row[0..2]),
            min_log_prob: read_f32(&row[2..4]),
            levels: &row[4..4 + n_vocab],
        }
    }

    /// The base's log-probability of token `i`.
    pub fn log_prob(&self, i: usize) -> f32 {
        self.scale * f32::from(self.levels[i]) + self.min_log_prob
    }

    /// Compares the run's `logits` (same vocabulary) at this position, where the actual
    /// next token is `target`, as llama.cpp's `--kl-divergence` does.
    ///
    /// # Panics
    /// If `logits` is not of the row's vocabulary size or `target` is out of range.
    pub fn compare(&self, logits: &[f32], target: TokenId) -> TokenComparison {
        assert_eq!(logits.len(), self.levels.len(), "vocabulary size");
        let t = target as usize;
        let (imax, max_logit, log_sum_exp) = softmax_terms(logits);
        let nll = max_logit + log_sum_exp - logits[t];
        let nll_base = -self.log_prob(t);
        let log_z = max_logit + log_sum_exp;
        let mut kld = 0.0f64;
        let mut imax_base = 0;
        let mut max_base = 0.0f32;
        for (i, &l) in logits.iter().enumerate() {
            let p_log_base = self.log_prob(i);
            if i == 0 || p_log_base > max_base {
                max_base = p_log_base;
                imax_base = i;
            }
            if p_log_base > -16.0 {
                kld += f64::from(p_log_base.exp() * (p_log_base - l + log_z));
            }
        }
        TokenComparison {
            nll,
            nll_base,
            kld,
            delta_p: (-nll).exp() - (-nll_base).exp(),
            same_top: imax == imax_base,
        }
    }
}

fn write_f32(dst: &mut [u16], v: f32) {
    let b = v.to_le_bytes();
    dst[0] = u16::from_le_bytes([b[0], b[1]]);
    dst[1] = u16::from_le_bytes([b[2], b[3]]);
}

fn read_f32(src: &[u16]) -> f32 {
    let (a, b) = (src[0].to_le_bytes(), src[1].to_le_bytes());
    f32::from_le_bytes([a[0], a[1], b[0], b[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_softmax(logits: &[f32]) -> Vec<f64> {
        let m = logits.iter().copied().fold(f32::MIN, f32::max) as f64;
        let z = logits
            .iter()
            .map(|&l| (l as f64 - m).exp())
            .sum::<f64>()
            .ln()
            + m;
        logits.iter().map(|&l| l as f64 - z).collect()
    }

    #[test]
    fn a_row_keeps_log_probabilities_within_its_step() {
        let logits: Vec<f32> = (0..1001)
            .map(|i| ((i * 37 % 101) as f32) * 0.2 - 7.0)
            .collect();
        let mut row = vec![0u16; row_len(logits.len())];
        let nll = encode_log_probs(&logits, 5, &mut row);
        let exact = log_softmax(&logits);
        assert!((nll + exact[5]).abs() < 1e-4, "{nll} vs {}", -exact[5]);
        let base = BaseLogProbs::from_row(&row, logits.len());
        let step = base.scale as f64;
        for (i, &e) in exact.iter().enumerate() {
            if e > exact.iter().copied().fold(f64::MIN, f64::max) - 16.0 {
                assert!((base.log_prob(i) as f64 - e).abs() <= step, "{i}");
            }
        }
        // The same logits against their own row: no divergence, same top, Δp ≈ 0.
        let c = base.compare(&logits, 5);
        assert!(c.kld.abs() < 1e-3, "{c:?}");
        assert!(c.same_top && c.delta_p.abs() < 1e-3, "{c:?}");
    }

    #[test]
    fn a_shifted_distribution_has_the_exact_divergence() {
        let base_logits = [2.0f32, 1.0, 0.0, -1.0];
        let run_logits = [1.0f32, 2.0, 0.0, -1.0];
        let mut row = vec![0u16; row_len(4)];
        encode_log_probs(&base_logits, 0, &mut row);
        let c = BaseLogProbs::from_row(&row, 4).compare(&run_logits, 0);
        let (p, q) = (log_softmax(&base_logits), log_softmax(&run_logits));
        let exact: f64 = p.iter().zip(&q).map(|(a, b)| a.exp() * (a - b)).sum();
        assert!((c.kld - exact).abs() < 1e-3, "{} vs {exact}", c.kld);
        assert!(!c.same_top);
        assert!((c.delta_p as f64 - (q[0].exp() - p[0].exp())).abs() < 1e-3);
    }

    #[test]
    fn flat_logits_give_a_zero_scale_row() {
        let mut row = vec![7u16; row_len(3)];
        let nll = encode_log_probs(&[1.0, 1.0, 1.0], 2, &mut row);
        assert!((nll - 3f64.ln()).abs() < 1e-6);
        assert!(row[4..].iter().all(|&l| l == 0));
        let base = BaseLogProbs::from_row(&row, 3);
        assert!((base.log_prob(1) as f64 + 3f64.ln()).abs() < 1e-6);
    }
}
