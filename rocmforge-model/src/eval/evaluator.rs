//! [`Evaluator`]: runs a model over a text's windows and scores it.

use std::path::Path;
use std::time::Instant;

use super::error::EvalError;
use super::estimate::Estimate;
use super::kl_divergence::{KlDivergence, KlDivergenceAccumulator};
use super::log_prob_file::{LogProbFileReader, LogProbFileWriter};
use super::log_prob_row::{encode_log_probs, row_len, BaseLogProbs};
use super::perplexity::{Perplexity, PerplexityAccumulator};
use super::windows::EvalWindows;
use crate::backend::{Backend, KvDtype};
use crate::kv_cache::{KvCache, KvCacheOptions};
use crate::model::{Logits, Model};
use crate::tokenizer::{TokenId, Tokenizer};

/// How a text is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalOptions {
    /// Window length in tokens (llama.cpp's `-c`; default 512). A KL-divergence run
    /// takes the base file's instead.
    pub n_ctx: usize,
    /// Evaluate at most this many windows (llama.cpp's `--chunks`); `None`: all.
    pub max_windows: Option<usize>,
    /// The KV cache's element type (default `f32`).
    pub kv_dtype: KvDtype,
    /// Run each window one token at a time, through the decode step generation uses,
    /// instead of as one batch (prefill). Measures the arithmetic of decoding, which
    /// can differ from prefill's (e.g. 8-bit activations in the GPU's `fast` decode).
    pub token_by_token: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            n_ctx: 512,
            max_windows: None,
            kv_dtype: KvDtype::F32,
            token_by_token: false,
        }
    }
}

/// Progress: one window evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowDone {
    /// Windows done (1-based count).
    pub done: usize,
    /// Windows in all.
    pub of: usize,
    /// The perplexity over the windows so far.
    pub perplexity: Perplexity,
    /// Against a base: the mean KL divergence so far.
    pub kld: Option<Estimate>,
    /// Against a base: the top-1 agreement so far.
    pub same_top: Option<Estimate>,
    /// Seconds since the run started.
    pub seconds: f64,
}

/// What an evaluation measured.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    /// Window length used.
    pub n_ctx: usize,
    /// Windows evaluated.
    pub windows: usize,
    /// The perplexity over the scored tokens.
    pub perplexity: Perplexity,
    /// Against a base file: the comparison.
    pub kl_divergence: Option<KlDivergence>,
    /// Wall time of the model passes and scoring.
    pub seconds: f64,
}

impl EvalReport {
    /// Tokens run through the model per second.
    pub fn tokens_per_second(&self) -> f64 {
        (self.windows * self.n_ctx) as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

/// Runs a model over a text's windows (see [`EvalWindows`]) and scores the second half of
/// each, as llama.cpp's `llama-perplexity`.
#[derive(Debug)]
pub struct Evaluator<'m, B: Backend> {
    model: &'m Model<B>,
    bos: Option<TokenId>,
    options: EvalOptions,
}

impl<'m, B: Backend> Evaluator<'m, B> {
    /// An evaluator of `model`; `tokenizer` says whether the model adds BOS (then each
    /// window starts with BOS, as in llama.cpp).
    pub fn new(model: &'m Model<B>, tokenizer: &Tokenizer, options: EvalOptions) -> Self {
        let bos = tokenizer.bos_id().filter(|_| tokenizer.add_bos());
        Self {
            model,
            bos,
            options,
        }
    }

    /// The windows a text of `n_tokens` tokens is cut into.
    pub fn windows(&self, n_tokens: usize) -> Result<EvalWindows, EvalError> {
        EvalWindows::new(
            n_tokens,
            self.options.n_ctx,
            self.options.max_windows,
            self.bos,
        )
    }

    /// The perplexity of `tokens` (tokenize the text with `add_special` and without
    /// parsing special tokens, as llama.cpp does). With `save_log_probs`, also writes
    /// every scored position's log-probabilities there, as a base for
    /// [`kl_divergence`](Self::kl_divergence) (or for llama.cpp's `--kl-divergence`).
    pub fn perplexity(
        &self,
        tokens: &[TokenId],
        save_log_probs: Option<&Path>,
        mut progress: impl FnMut(&WindowDone),
    ) -> Result<EvalReport, EvalError> {
        let windows = self.windows(tokens.len())?;
        let n_vocab = self.model.n_vocab();
        let mut writer = save_log_probs
            .map(|p| LogProbFileWriter::create(p, &windows, n_vocab, tokens))
            .transpose()?;
        let mut rows = vec![0u16; windows.scored_per_window() * row_len(n_vocab)];
        let mut ppl = PerplexityAccumulator::default();
        let mut cache = self.cache(&windows)?;
        let start = Instant::now();
        for i in 0..windows.len() {
            let logits = self.window_logits(&mut cache, &windows, tokens, i)?;
            let scored = scored_rows(&logits, &windows, n_vocab);
            let rows_of = rows.chunks_exact_mut(row_len(n_vocab));
            for ((row_logits, &target), row) in scored.zip(windows.targets(tokens, i)).zip(rows_of)
            {
                ppl.add(encode_log_probs(row_logits, target, row));
            }
            if let Some(w) = writer.as_mut() {
                w.write_window(&rows)?;
            }
            progress(&WindowDone {
                done: i + 1,
                of: windows.len(),
                perplexity: ppl.perplexity(),
                kld: None,
                same_top: None,
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        if let Some(w) = writer {
            w.finish()?;
        }
        Ok(EvalReport {
            n_ctx: windows.n_ctx(),
            windows: windows.len(),
            perplexity: ppl.perplexity(),
            kl_divergence: None,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Compares this model's next-token distributions with a base run's, saved in
    /// `base` (by [`perplexity`](Self::perplexity) or llama.cpp's
    /// `--kl-divergence-base`): the tokens and window length are the file's. Errors
    /// when the file was made with another vocabulary size.
    pub fn kl_divergence(
        &self,
        base: impl AsRef<Path>,
        mut progress: impl FnMut(&WindowDone),
    ) -> Result<EvalReport, EvalError> {
        let mut reader = LogProbFileReader::open(base)?;
        let header = reader.header().clone();
        let n_vocab = self.model.n_vocab();
        if header.n_vocab != n_vocab {
            return Err(EvalError::BaseMismatch {
                path: reader.path().to_string(),
                reason: format!(
                    "made with a vocabulary of {} tokens; this model has {n_vocab}",
                    header.n_vocab
                ),
            });
        }
        let max = Some(
            self.options
                .max_windows
                .map_or(header.n_windows, |m| m.min(header.n_windows)),
        );
        let windows = EvalWindows::new(header.tokens.len(), header.n_ctx, max, self.bos)?;
        let tokens = &header.tokens;
        let mut rows = Vec::new();
        let mut ppl = PerplexityAccumulator::default();
        let mut kld = KlDivergenceAccumulator::default();
        let mut cache = self.cache(&windows)?;
        let start = Instant::now();
        for i in 0..windows.len() {
            reader.read_window(&mut rows)?;
            let logits = self.window_logits(&mut cache, &windows, tokens, i)?;
            let scored = scored_rows(&logits, &windows, n_vocab);
            let base_rows = rows.chunks_exact(row_len(n_vocab));
            for ((row_logits, &target), base_row) in
                scored.zip(windows.targets(tokens, i)).zip(base_rows)
            {
                let c = BaseLogProbs::from_row(base_row, n_vocab).compare(row_logits, target);
                ppl.add(f64::from(c.nll));
                kld.add(&c);
            }
            let summary = kld.summary();
            progress(&WindowDone {
                done: i + 1,
                of: windows.len(),
                perplexity: ppl.perplexity(),
                kld: Some(summary.kld),
                same_top: Some(summary.same_top),
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        Ok(EvalReport {
            n_ctx: windows.n_ctx(),
            windows: windows.len(),
            perplexity: ppl.perplexity(),
            kl_divergence: Some(kld.summary()),
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// One cache for every window (cleared between them, as llama.cpp does).
    fn cache(&self, windows: &EvalWindows) -> Result<KvCache<B>, EvalError> {
        let options = KvCacheOptions::with_n_ctx(windows.n_ctx()).dtype(self.options.kv_dtype);
        Ok(self.model.new_cache(&options)?)
    }

    /// The logits of every position of window `i`, `[n_ctx, n_vocab]`, from an empty cache.
    fn window_logits(
        &self,
        cache: &mut KvCache<B>,
        windows: &EvalWindows,
        tokens: &[TokenId],
        i: usize,
    ) -> Result<Vec<f32>, EvalError> {
        cache.clear();
        let input = windows.input(tokens, i);
        if !self.options.token_by_token {
            return Ok(self.model.forward(cache, &input, Logits::All)?);
        }
        // Every position through the one-token decode step (its logits are kept from the
        // first scored position on; the others are computed all the same, as in
        // generation).
        let n_vocab = self.model.n_vocab();
        let mut logits = vec![0.0; input.len() * n_vocab];
        for (p, &t) in input.iter().enumerate() {
            let row = self.model.forward(cache, &[t], Logits::Last)?;
            if p >= windows.first_scored() {
                logits[p * n_vocab..(p + 1) * n_vocab].copy_from_slice(&row);
            }
        }
        Ok(logits)
    }
}

/// The logit rows of a window's scored positions.
fn scored_rows<'l>(
    logits: &'l [f32],
    windows: &EvalWindows,
    n_vocab: usize,
) -> impl Iterator<Item = &'l [f32]> {
    let first = windows.first_scored();
    logits[first * n_vocab..(windows.n_ctx() - 1) * n_vocab].chunks_exact(n_vocab)
}
