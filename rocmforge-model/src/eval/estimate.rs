//! [`Estimate`]: a mean and its uncertainty.

/// A value estimated from samples, with its standard uncertainty (one standard error),
/// as llama.cpp's perplexity tool prints them (`value ± uncertainty`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    /// The estimate.
    pub value: f64,
    /// One standard error.
    pub uncertainty: f64,
}

impl Estimate {
    /// The mean of `count` samples with sum `sum` and sum of squares `sum2`, and the
    /// standard error of that mean (0 with 10 samples or fewer, as llama.cpp).
    pub(crate) fn mean(sum: f64, sum2: f64, count: usize) -> Self {
        if count == 0 {
            return Self::default();
        }
        let n = count as f64;
        let value = sum / n;
        let var = sum2 / n - value * value;
        let uncertainty = if var > 0.0 && count > 10 {
            (var / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Self { value, uncertainty }
    }
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = f.precision().unwrap_or(6);
        write!(f, "{:.p$} ± {:.p$}", self.value, self.uncertainty)
    }
}
