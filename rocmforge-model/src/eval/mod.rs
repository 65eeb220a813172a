//! Measuring a model's output quality on a text: perplexity, and the KL divergence of its
//! next-token distributions from a base run's — the measures the field uses to judge a
//! quantization or an arithmetic change — computed as llama.cpp's `llama-perplexity` does.
//!
//! * [`EvalWindows`] — the text's tokens cut into windows of `n_ctx` tokens; each window is
//!   evaluated from an empty cache and only its second half is scored (every scored token
//!   has at least `n_ctx / 2` tokens of context).
//! * [`Evaluator`] — runs a [`Model`](crate::model::Model) over the windows and gives the
//!   [`Perplexity`]; with a base file it gives the [`KlDivergence`] too, and it can save
//!   the run's log-probabilities as a base file for later runs.
//! * [`LogProbFileReader`] / [`LogProbFileWriter`] — llama.cpp's `_logits_` file (what
//!   `llama-perplexity --kl-divergence-base FILE` writes and `--kl-divergence` reads), so a
//!   base saved by either program can be compared against by the other.
//!
//! ```no_run
//! use rocmforge_model::eval::{EvalOptions, Evaluator};
//! use rocmforge_model::generate::Generator;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let generator = Generator::open_cpu("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let text = std::fs::read_to_string("models/jargon-4.4.7.txt")?;
//! let tokens = generator.tokenizer().encode(&text, true, false)?;
//! let options = EvalOptions { n_ctx: 512, max_windows: Some(8), ..EvalOptions::default() };
//! let report = Evaluator::new(generator.model(), generator.tokenizer(), options)
//!     .perplexity(&tokens, None, |_| {})?;
//! println!("PPL = {:.4} ± {:.4}", report.perplexity.value, report.perplexity.uncertainty);
//! # Ok(())
//! # }
//! ```

mod error;
mod estimate;
mod evaluator;
mod kl_divergence;
mod log_prob_file;
mod log_prob_row;
mod perplexity;
mod windows;

pub use error::EvalError;
pub use estimate::Estimate;
pub use evaluator::{EvalOptions, EvalReport, Evaluator, WindowDone};
pub use kl_divergence::{KlDivergence, KlDivergenceAccumulator, Percentiles};
pub use log_prob_file::{LogProbFileHeader, LogProbFileReader, LogProbFileWriter};
pub use log_prob_row::{encode_log_probs, BaseLogProbs, TokenComparison};
pub use perplexity::{Perplexity, PerplexityAccumulator};
pub use windows::EvalWindows;
