//! [`Perplexity`]: `exp` of the mean negative log-likelihood of a text's tokens.

use super::estimate::Estimate;

/// Sums of the negative log-likelihoods of scored tokens.
#[derive(Clone, Debug, Default)]
pub struct PerplexityAccumulator {
    sum_nll: f64,
    sum_nll2: f64,
    count: usize,
}

/// A perplexity and what it was computed from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Perplexity {
    /// `exp(mean NLL)`.
    pub value: f64,
    /// Its standard error, `value × stderr(mean NLL)` (llama.cpp's `±`).
    pub uncertainty: f64,
    /// The mean negative log-likelihood in nats.
    pub mean_nll: Estimate,
    /// Tokens scored.
    pub tokens: usize,
}

impl PerplexityAccumulator {
    /// Adds one scored token's negative log-likelihood (nats).
    pub fn add(&mut self, nll: f64) {
        self.sum_nll += nll;
        self.sum_nll2 += nll * nll;
        self.count += 1;
    }

    /// Tokens added so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The perplexity so far.
    pub fn perplexity(&self) -> Perplexity {
        let mean_nll = Estimate::mean(self.sum_nll, self.sum_nll2, self.count);
        let value = mean_nll.value.exp();
        Perplexity {
            value,
            uncertainty: value * mean_nll.uncertainty,
            mean_nll,
            tokens: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uniform_guess_has_the_vocabulary_size_as_perplexity() {
        let mut acc = PerplexityAccumulator::default();
        for _ in 0..100 {
            acc.add(1000f64.ln());
        }
        let p = acc.perplexity();
        assert!(
            (p.value - 1000.0).abs() < 1e-9 && p.uncertainty < 1e-4,
            "{p:?}"
        );
        assert_eq!(p.tokens, 100);
    }
}
