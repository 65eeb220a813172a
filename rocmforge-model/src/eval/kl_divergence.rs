//! [`KlDivergence`]: how far a run's next-token distributions are from a base run's,
//! summarized as llama.cpp's `--kl-divergence` prints it.

use super::estimate::Estimate;
use super::log_prob_row::TokenComparison;

/// The per-token comparisons of a run against its base, summed as they come.
#[derive(Clone, Debug, Default)]
pub struct KlDivergenceAccumulator {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    n_same_top: usize,
    klds: Vec<f32>,
    p_diffs: Vec<f32>,
}

/// Values at fixed fractions of a sorted sample (linear interpolation between the two
/// nearest samples, as llama.cpp).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// The smallest value.
    pub min: f64,
    /// 0.1 %.
    pub p0_1: f64,
    /// 1 %.
    pub p1: f64,
    /// 5 %.
    pub p5: f64,
    /// 10 %.
    pub p10: f64,
    /// 25 %.
    pub p25: f64,
    /// The median.
    pub median: f64,
    /// 75 %.
    pub p75: f64,
    /// 90 %.
    pub p90: f64,
    /// 95 %.
    pub p95: f64,
    /// 99 %.
    pub p99: f64,
    /// 99.9 %.
    pub p99_9: f64,
    /// The largest value.
    pub max: f64,
}

impl Percentiles {
    fn of(mut values: Vec<f32>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f32::total_cmp);
        let at = |fraction: f64| {
            let p = fraction * (values.len() - 1) as f64;
            let i = p as usize;
            let t = p - i as f64;
            let next = values[(i + 1).min(values.len() - 1)];
            (1.0 - t) * f64::from(values[i]) + t * f64::from(next)
        };
        let n = values.len();
        let median = if n % 2 == 0 {
            0.5 * (f64::from(values[n / 2]) + f64::from(values[n / 2 - 1]))
        } else {
            f64::from(values[n / 2])
        };
        Self {
            min: f64::from(values[0]),
            p0_1: at(0.001),
            p1: at(0.01),
            p5: at(0.05),
            p10: at(0.1),
            p25: at(0.25),
            median,
            p75: at(0.75),
            p90: at(0.9),
            p95: at(0.95),
            p99: at(0.99),
            p99_9: at(0.999),
            max: f64::from(values[n - 1]),
        }
    }
}

/// A run compared with its base over the same tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct KlDivergence {
    /// Tokens compared.
    pub tokens: usize,
    /// The run's perplexity, PPL(Q).
    pub ppl: Estimate,
    /// The base's perplexity, from its stored log-probabilities.
    pub ppl_base: Estimate,
    /// Correlation of the two runs' per-token log-likelihoods.
    pub ln_ppl_correlation: f64,
    /// `ln(PPL(Q) / PPL(base))`.
    pub ln_ppl_ratio: Estimate,
    /// Mean KL(base ‖ run) per token, in nats.
    pub kld: Estimate,
    /// Percentiles of the per-token KL divergence.
    pub kld_percentiles: Percentiles,
    /// Mean of (run's − base's) probability of the actual next token.
    pub delta_p: Estimate,
    /// Percentiles of that difference.
    pub delta_p_percentiles: Percentiles,
    /// Root mean square of that difference.
    pub delta_p_rms: Estimate,
    /// Fraction of positions where both put the same token first (top-1 agreement).
    pub same_top: Estimate,
}

impl KlDivergenceAccumulator {
    /// Adds one position's comparison.
    pub fn add(&mut self, c: &TokenComparison) {
        let (nll, nll_base) = (f64::from(c.nll), f64::from(c.nll_base));
        self.sum_nll += nll;
        self.sum_nll2 += nll * nll;
        self.sum_nll_base += nll_base;
        self.sum_nll_base2 += nll_base * nll_base;
        self.sum_nll_nll_base += nll * nll_base;
        self.sum_kld += c.kld;
        self.sum_kld2 += c.kld * c.kld;
        let d = f64::from(c.delta_p);
        self.sum_p_diff += d;
        self.sum_p_diff2 += d * d;
        self.sum_p_diff4 += d * d * d * d;
        self.n_same_top += usize::from(c.same_top);
        self.klds.push(c.kld as f32);
        self.p_diffs.push(c.delta_p);
    }

    /// Positions added so far.
    pub fn count(&self) -> usize {
        self.klds.len()
    }

    /// The summary so far.
    pub fn summary(&self) -> KlDivergence {
        let n = self.count();
        let log_ppl = Estimate::mean(self.sum_nll, self.sum_nll2, n);
        let log_ppl_base = Estimate::mean(self.sum_nll_base, self.sum_nll_base2, n);
        let cov = if n < 10 {
            0.0
        } else {
            let nf = n as f64;
            (self.sum_nll_nll_base / nf - (self.sum_nll / nf) * (self.sum_nll_base / nf))
                / (nf - 1.0)
        };
        let ratio_unc = (log_ppl.uncertainty.powi(2) + log_ppl_base.uncertainty.powi(2)
            - 2.0 * cov)
            .max(0.0)
            .sqrt();
        let exp_of = |e: Estimate| Estimate {
            value: e.value.exp(),
            uncertainty: e.value.exp() * e.uncertainty,
        };
        let mse = Estimate::mean(self.sum_p_diff2, self.sum_p_diff4, n);
        let rms = mse.value.sqrt();
        let same = if n == 0 {
            0.0
        } else {
            self.n_same_top as f64 / n as f64
        };
        KlDivergence {
            tokens: n,
            ppl: exp_of(log_ppl),
            ppl_base: exp_of(log_ppl_base),
            ln_ppl_correlation: cov / (log_ppl.uncertainty * log_ppl_base.uncertainty),
            ln_ppl_ratio: Estimate {
                value: log_ppl.value - log_ppl_base.value,
                uncertainty: ratio_unc,
            },
            kld: Estimate::mean(self.sum_kld, self.sum_kld2, n),
            kld_percentiles: Percentiles::of(self.klds.clone()),
            delta_p: Estimate::mean(self.sum_p_diff, self.sum_p_diff2, n),
            delta_p_percentiles: Percentiles::of(self.p_diffs.clone()),
            delta_p_rms: Estimate {
                value: rms,
                uncertainty: if rms > 0.0 {
                    0.5 / rms * mse.uncertainty
                } else {
                    0.0
                },
            },
            same_top: Estimate {
                value: same,
                uncertainty: if n > 1 {
                    (same * (1.0 - same) / (n - 1) as f64).sqrt()
                } else {
                    0.0
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_as_llama_cpp() {
        let p = Percentiles::of((0..=100).rev().map(|i| i as f32).collect());
        assert_eq!((p.min, p.median, p.max), (0.0, 50.0, 100.0));
        assert!((p.p99_9 - 99.9).abs() < 1e-9 && (p.p1 - 1.0).abs() < 1e-9);
        let even = Percentiles::of(vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(even.median, 2.5);
    }

    #[test]
    fn identical_runs_agree_everywhere() {
        let mut acc = KlDivergenceAccumulator::default();
        for i in 0..50 {
            let nll = 1.0 + (i % 7) as f32 * 0.1;
            acc.add(&TokenComparison {
                nll,
                nll_base: nll,
                kld: 0.0,
                delta_p: 0.0,
                same_top: true,
            });
        }
        let s = acc.summary();
        assert_eq!(s.tokens, 50);
        assert_eq!(s.same_top.value, 1.0);
        assert_eq!(s.kld.value, 0.0);
        assert!((s.ppl.value - s.ppl_base.value).abs() < 1e-12);
        assert!(s.ln_ppl_ratio.value.abs() < 1e-12);
        assert!((s.ln_ppl_correlation - 1.0).abs() < 1e-6);
    }
}
