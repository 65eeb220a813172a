//! Text generation: sampling ([`Sampler`], seeded and deterministic), a loaded model with
//! its tokenizer ([`Generator`]), per-sequence state ([`Session`]) and a streaming token
//! iterator ([`TokenStream`]) with stop conditions.
//!
//! ```no_run
//! use rocmforge_model::generate::{GenerateOptions, Generator, SamplingParams};
//! use rocmforge_model::kv_cache::KvCacheOptions;
//!
//! let generator = Generator::open_cpu("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let prompt = generator.encode("The capital of France is")?;
//! let mut session = generator.session(&KvCacheOptions::with_n_ctx(2048))?;
//! let options = GenerateOptions {
//!     max_tokens: 32,
//!     sampling: SamplingParams { seed: 42, ..SamplingParams::default() },
//!     stop_strings: vec!["\n\n".into()],
//!     ..GenerateOptions::default()
//! };
//! for token in session.generate(&prompt, options)? {
//!     print!("{}", token?.text);
//! }
//! # Ok::<(), rocmforge_model::ModelError>(())
//! ```
//!
//! Every [`Session`] has its own KV cache and shares the [`Generator`]'s weights, so any
//! number of independent sequences run on one loaded model (from several threads, too:
//! a `Generator` on the CPU backend is `Sync`).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocmforge_kernels::cpu::{self, Penalties, SamplerConfig};

use crate::backend::cpu::CpuBackend;
use crate::backend::hip::HipBackend;
use crate::backend::Backend;
use crate::chat_template::{apply_chat_template, ChatMessage};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::kv_cache::{KvCache, KvCacheOptions};
use crate::model::{LoadProgress, Logits, Model, ModelOptions};
use crate::tokenizer::{StreamDecoder, TokenId, Tokenizer};

pub use crate::sampling_defaults::SamplingDefaults;

// ------------------------------------------------------------------------------ sampling

/// A small seeded pseudo-random generator: SplitMix64 (Steele, Lea and Flood, 2014). The
/// same seed gives the same sequence on every platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)` with 24 random bits (every value exact in `f32`).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
}

/// Sampling parameters. The defaults are llama.cpp's (temperature 0.8, top-k 40, top-p
/// 0.95, min-p 0.05, no repetition penalty over the last 64 tokens), with seed 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// Temperature; `<= 0` is greedy decoding (the most likely token).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `top_p`
    /// (1: all).
    pub top_p: f32,
    /// Keep tokens at least `min_p` times as likely as the most likely one (0: all).
    pub min_p: f32,
    /// Repetition penalty over the last `repeat_last_n` tokens (1: none).
    pub repeat_penalty: f32,
    /// Frequency penalty (per occurrence, 0: none).
    pub frequency_penalty: f32,
    /// Presence penalty (once per token present, 0: none).
    pub presence_penalty: f32,
    /// How many of the most recent tokens (prompt included) the penalties look at.
    pub repeat_last_n: usize,
    /// The seed of the random draws: the same seed gives the same tokens.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        let d = SamplerConfig::default();
        SamplingParams {
            temperature: d.temperature,
            top_k: d.top_k,
            top_p: d.top_p,
            min_p: d.min_p,
            repeat_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding: always the most likely token, no penalties.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        }
    }

    /// Checks the ranges: finite temperature, `top_p` and `min_p` in `[0, 1]`, a finite
    /// positive repetition penalty and finite frequency/presence penalties.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(ModelError::InvalidSampling(what));
        if !self.temperature.is_finite() {
            return bad(format!("temperature {} is not finite", self.temperature));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return bad(format!("top_p {} is not in [0, 1]", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p {} is not in [0, 1]", self.min_p));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad(format!(
                "repeat_penalty {} must be finite and positive",
                self.repeat_penalty
            ));
        }
        if !(self.frequency_penalty.is_finite() && self.presence_penalty.is_finite()) {
            return bad("frequency and presence penalties must be finite".to_string());
        }
        Ok(())
    }

    fn config(&self) -> SamplerConfig {
        SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            min_keep: 0,
            penalties: Penalties {
                repeat: self.repeat_penalty,
                frequency: self.frequency_penalty,
                presence: self.presence_penalty,
            },
        }
    }
}

/// Picks tokens from logits with [`SamplingParams`] and its own seeded [`Rng`], through
/// llama.cpp's sampler chain ([`rocmforge_kernels::cpu::sample`]: penalties → top-k →
/// top-p → min-p → temperature → draw).
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplingParams,
    config: SamplerConfig,
    rng: Rng,
}

impl Sampler {
    /// A sampler; errors if a parameter is out of range ([`SamplingParams::validate`]).
    pub fn new(params: SamplingParams) -> Result<Self> {
        params.validate()?;
        Ok(Sampler {
            params,
            config: params.config(),
            rng: Rng::new(params.seed),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token from `logits` (one row, `n_vocab` values); `history` is the
    /// sequence so far (its last `repeat_last_n` tokens are penalized). Greedy sampling
    /// draws no random number.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        let recent = &history[history.len().saturating_sub(self.params.repeat_last_n)..];
        let u = if self.config.temperature <= 0.0 {
            0.0
        } else {
            self.rng.next_f32()
        };
        Ok(cpu::sample(logits, recent, &self.config, u)?)
    }
}

/// `log(Σ exp(logits))` (in `f64`; NaN logits count as `-inf`).
pub fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits
        .iter()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if !max.is_finite() {
        return f64::from(max);
    }
    let max = f64::from(max);
    let sum: f64 = logits
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| (f64::from(v) - max).exp())
        .sum();
    max + sum.ln()
}

/// The `k` most likely tokens of `logits` with their log-probabilities (log-softmax of the
/// raw logits over the whole vocabulary), most likely first; ties go to the lower id.
pub fn top_logprobs(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let lse = log_sum_exp(logits);
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    let order = |a: &(u32, f32), b: &(u32, f32)| {
        key(b.1)
            .partial_cmp(&key(a.1))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.cmp(&b.0))
    };
    let mut all: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u32, v))
        .collect();
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    if k < all.len() {
        all.select_nth_unstable_by(k - 1, order);
        all.truncate(k);
    }
    all.sort_by(order);
    all.into_iter()
        .map(|(id, v)| (id, (f64::from(key(v)) - lse) as f32))
        .collect()
}

// ---------------------------------------------------------------------------- generation

/// What a generation call stops on, and what it reports.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Most tokens to generate (the end-of-generation token included). Default 256.
    pub max_tokens: usize,
    /// How tokens are picked.
    pub sampling: SamplingParams,
    /// Stop when the generated text contains one of these; the text is cut before it (the
    /// token that completed it is still reported). Default none.
    pub stop_strings: Vec<String>,
    /// Stop after an end-of-generation token (EOS, EOT, `<|im_end|>` …; it is reported,
    /// with empty text). Default true.
    pub stop_on_eog: bool,
    /// Report the this many most likely tokens with their log-probabilities at each step
    /// ([`GeneratedToken::top_logprobs`]). Default 0.
    pub top_logprobs: usize,
    /// Stop (before the next token) once this flag is set, from any thread.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop_strings: Vec::new(),
            stop_on_eog: true,
            top_logprobs: 0,
            cancel: None,
        }
    }
}

impl GenerateOptions {
    /// Greedy decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        GenerateOptions {
            max_tokens,
            sampling: SamplingParams::greedy(),
            ..GenerateOptions::default()
        }
    }
}

/// One generated token.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedToken {
    /// The token id.
    pub id: TokenId,
    /// The text it completes: possibly empty (a control token, part of a UTF-8 character,
    /// or text held back because it may start a stop string), possibly more than its own
    /// piece (text held back before).
    pub text: String,
    /// Its log-probability under the model (log-softmax of the raw logits).
    pub logprob: f32,
    /// The [`GenerateOptions::top_logprobs`] most likely tokens with their
    /// log-probabilities, most likely first.
    pub top_logprobs: Vec<(TokenId, f32)>,
}

/// Why generation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// [`GenerateOptions::max_tokens`] tokens were generated.
    MaxTokens,
    /// An end-of-generation token was generated (its id).
    EndOfGeneration(TokenId),
    /// The text reached a stop string (which one).
    StopString(String),
    /// The cancel flag was set, or the consumer stopped.
    Cancelled,
    /// The KV cache is full.
    ContextFull,
}

/// Times and counts of one generation call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenerationStats {
    /// Tokens run through the model before the first sampled token (the prompt, plus a
    /// token left from an earlier call).
    pub prefill_tokens: usize,
    /// Time of that prefill.
    pub prefill_time: Duration,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Forward passes of one token during generation (one fewer than the tokens
    /// generated, or equal when the last token was fed too).
    pub decode_steps: usize,
    /// Time of those forward passes and of sampling.
    pub decode_time: Duration,
}

impl GenerationStats {
    /// Prefill speed in tokens per second (0 when nothing was prefilled).
    pub fn prefill_tokens_per_s(&self) -> f64 {
        rate(self.prefill_tokens, self.prefill_time)
    }

    /// Decode speed in tokens per second (forward passes of one token).
    pub fn decode_tokens_per_s(&self) -> f64 {
        rate(self.decode_steps, self.decode_time)
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    if n == 0 || t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

/// The result of [`Session::generate_with`] (or [`TokenStream::finish`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The generated ids (an end-of-generation token included).
    pub ids: Vec<TokenId>,
    /// The generated text (cut before a stop string).
    pub text: String,
    /// Per generated token, its top log-probabilities (empty lists unless asked for).
    pub top_logprobs: Vec<Vec<(TokenId, f32)>>,
    /// Why generation ended.
    pub finish: FinishReason,
    /// Times and counts.
    pub stats: GenerationStats,
}

/// A loaded model with its tokenizer: the handle to generate text with. Make a
/// [`Session`] per sequence.
pub struct Generator<B: Backend> {
    model: Model<B>,
    tokenizer: Tokenizer,
}

impl<B: Backend> std::fmt::Debug for Generator<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("model", &self.model)
            .field("tokenizer", &self.tokenizer)
            .finish()
    }
}

impl Generator<CpuBackend> {
    /// Memory-maps the GGUF file at `path` and loads it on the CPU backend.
    pub fn open_cpu(path: impl AsRef<Path>) -> Result<Self> {
        Self::load(GgufFile::open(path)?, CpuBackend::new())
    }
}

impl Generator<HipBackend> {
    /// Memory-maps the GGUF file at `path` and loads it on the first GPU (HIP backend;
    /// kernels compiled for its arch at first use and cached on disk).
    pub fn open_gpu(path: impl AsRef<Path>) -> Result<Self> {
        Self::load(GgufFile::open(path)?, HipBackend::new(0)?)
    }
}

impl<B: Backend> Generator<B> {
    /// Loads the model in `file` onto `backend`, with the tokenizer from the same file.
    pub fn load(file: impl Into<Arc<GgufFile>>, backend: B) -> Result<Self> {
        Self::load_with(file, backend, ModelOptions::default(), &mut |_| {})
    }

    /// [`load`](Self::load) with model options and a progress callback.
    pub fn load_with(
        file: impl Into<Arc<GgufFile>>,
        backend: B,
        options: ModelOptions,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Self> {
        let file = file.into();
        let tokenizer = Tokenizer::from_gguf(&file)?;
        let model = Model::load_with(file, backend, options, progress)?;
        Ok(Generator { model, tokenizer })
    }

    /// A generator from a loaded model and a tokenizer.
    pub fn new(model: Model<B>, tokenizer: Tokenizer) -> Self {
        Generator { model, tokenizer }
    }

    /// The model.
    pub fn model(&self) -> &Model<B> {
        &self.model
    }

    /// The sampling settings the model file recommends (its `general.sampling.*` keys);
    /// empty when it has none. An error names a key that holds a bad value.
    pub fn sampling_defaults(&self) -> Result<SamplingDefaults> {
        SamplingDefaults::from_metadata(self.model.file().metadata())
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokenizes a raw prompt as llama.cpp's server does: BOS/EOS added where the
    /// vocabulary asks for them, special-token text (`<|im_start|>`) mapped to its id.
    pub fn encode(&self, text: &str) -> Result<Vec<TokenId>> {
        Ok(self.tokenizer.encode(text, true, true)?)
    }

    /// Applies the model's chat template to `messages` (opening the assistant's turn) and
    /// tokenizes the result as [`encode`](Self::encode) does.
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<TokenId>> {
        let prompt = apply_chat_template(&self.tokenizer, messages, true)?;
        self.encode(&prompt)
    }

    /// A new sequence with its own KV cache.
    pub fn session(&self, cache: &KvCacheOptions) -> Result<Session<'_, B>> {
        Ok(Session {
            generator: self,
            cache: self.model.new_cache(cache)?,
            history: Vec::new(),
            unfed: 0,
            logits: None,
        })
    }
}

/// One sequence: its KV cache and its tokens so far, on a shared [`Generator`].
///
/// Consecutive [`generate`](Session::generate) calls continue the sequence (a multi-turn
/// chat appends each new user turn as the next prompt).
pub struct Session<'g, B: Backend> {
    generator: &'g Generator<B>,
    cache: KvCache<B>,
    /// Every token of the sequence; the last `unfed` are not in the cache yet.
    history: Vec<TokenId>,
    unfed: usize,
    /// The logits after the last fed token, when not consumed yet.
    logits: Option<Vec<f32>>,
}

impl<B: Backend> std::fmt::Debug for Session<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cache", &self.cache)
            .field("tokens", &self.history.len())
            .field("unfed", &self.unfed)
            .finish()
    }
}

impl<'g, B: Backend> Session<'g, B> {
    /// The generator this session runs on.
    pub fn generator(&self) -> &'g Generator<B> {
        self.generator
    }

    /// Every token of the sequence so far (prompts and generated tokens).
    pub fn tokens(&self) -> &[TokenId] {
        &self.history
    }

    /// The KV cache.
    pub fn cache(&self) -> &KvCache<B> {
        &self.cache
    }

    /// Empties the sequence (the cache's memory is kept).
    pub fn reset(&mut self) {
        self.cache.clear();
        self.history.clear();
        self.unfed = 0;
        self.logits = None;
    }

    /// Runs `tokens` (after any token of an earlier call not yet in the cache) through
    /// the model and keeps the logits of the last one for the next sampled token.
    ///
    /// Errors, changing nothing, with [`ModelError::ContextOverflow`] when they do not fit
    /// in the context, or [`ModelError::InvalidToken`] for an id outside the vocabulary.
    pub fn feed(&mut self, tokens: &[TokenId]) -> Result<()> {
        let start = self.history.len() - self.unfed;
        let mut input = self.history[start..].to_vec();
        input.extend_from_slice(tokens);
        if input.is_empty() {
            return Ok(());
        }
        let logits = self
            .generator
            .model
            .forward(&mut self.cache, &input, Logits::Last)?;
        self.history.extend_from_slice(tokens);
        self.unfed = 0;
        self.logits = Some(logits);
        Ok(())
    }

    /// Appends `prompt` to the sequence, runs it through the model and returns an
    /// iterator over the generated tokens. The prompt may be empty when the sequence
    /// already has tokens (generation then continues it).
    ///
    /// Errors before generating if the prompt does not fit in the context
    /// ([`ModelError::ContextOverflow`]), the sequence is empty, or a sampling parameter is
    /// out of range.
    pub fn generate(
        &mut self,
        prompt: &[TokenId],
        options: GenerateOptions,
    ) -> Result<TokenStream<'_, 'g, B>> {
        let sampler = Sampler::new(options.sampling)?;
        let mut stats = GenerationStats::default();
        let pending = self.unfed + prompt.len();
        if pending > 0 {
            let t0 = Instant::now();
            self.feed(prompt)?;
            stats.prefill_tokens = pending;
            stats.prefill_time = t0.elapsed();
        } else if self.logits.is_none() {
            return Err(ModelError::EmptyInput(
                "generate: the prompt is empty and the sequence has no tokens",
            ));
        }
        let generator = self.generator;
        let stop_strings = options
            .stop_strings
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        Ok(TokenStream {
            session: self,
            sampler,
            decoder: generator.tokenizer.stream_decoder(false),
            stop_strings,
            options,
            held: String::new(),
            ids: Vec::new(),
            text: String::new(),
            top: Vec::new(),
            finish: None,
            stats,
        })
    }

    /// [`generate`](Self::generate), calling `on_token` for each token until it returns
    /// [`ControlFlow::Break`] (which ends generation as [`FinishReason::Cancelled`]) or a
    /// stop condition holds.
    pub fn generate_with(
        &mut self,
        prompt: &[TokenId],
        options: GenerateOptions,
        mut on_token: impl FnMut(&GeneratedToken) -> ControlFlow<()>,
    ) -> Result<Completion> {
        let mut stream = self.generate(prompt, options)?;
        while let Some(token) = stream.next() {
            if on_token(&token?).is_break() {
                stream.stop(FinishReason::Cancelled);
                break;
            }
        }
        Ok(stream.finish())
    }
}

/// The tokens of one generation call, as an iterator of [`GeneratedToken`]s. Made by
/// [`Session::generate`].
///
/// Each `next()` runs one forward pass (the previous token) and samples one token, so
/// dropping the iterator or setting the cancel flag stops generation between tokens.
/// After the iterator ends, [`finish_reason`](Self::finish_reason) says why, and
/// [`finish`](Self::finish) gives the whole [`Completion`].
pub struct TokenStream<'s, 'g, B: Backend> {
    session: &'s mut Session<'g, B>,
    sampler: Sampler,
    decoder: StreamDecoder<'g>,
    stop_strings: Vec<String>,
    options: GenerateOptions,
    /// Decoded text not yielded yet: it might be the start of a stop string.
    held: String,
    ids: Vec<TokenId>,
    text: String,
    top: Vec<Vec<(TokenId, f32)>>,
    finish: Option<FinishReason>,
    stats: GenerationStats,
}

impl<B: Backend> TokenStream<'_, '_, B> {
    /// Why generation ended (`None` while it goes on).
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.finish.as_ref()
    }

    /// The ids generated so far.
    pub fn ids(&self) -> &[TokenId] {
        &self.ids
    }

    /// The text yielded so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Times and counts so far.
    pub fn stats(&self) -> &GenerationStats {
        &self.stats
    }

    /// Ends generation now with `reason` (the iterator yields nothing more).
    pub fn stop(&mut self, reason: FinishReason) {
        if self.finish.is_none() {
            self.finish = Some(reason);
        }
    }

    /// Runs the iterator to its end (unless it ended already) and returns what it made.
    pub fn finish(mut self) -> Completion {
        for item in self.by_ref() {
            if item.is_err() {
                break;
            }
        }
        Completion {
            ids: self.ids,
            text: self.text,
            top_logprobs: self.top,
            finish: self.finish.unwrap_or(FinishReason::Cancelled),
            stats: self.stats,
        }
    }

    fn cancelled(&self) -> bool {
        self.options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// One step: the logits of the last token (running it through the model when it is
    /// not in the cache yet), a sampled token, its text and the stop checks.
    fn step(&mut self) -> Result<Option<GeneratedToken>> {
        if self.finish.is_some() {
            return Ok(None);
        }
        if self.cancelled() {
            self.finish = Some(FinishReason::Cancelled);
            return Ok(None);
        }
        if self.ids.len() >= self.options.max_tokens {
            self.finish = Some(FinishReason::MaxTokens);
            return Ok(None);
        }
        let t0 = Instant::now();
        let logits = match self.session.logits.take() {
            Some(l) => l,
            None => {
                if self.session.cache.remaining() < self.session.unfed {
                    self.finish = Some(FinishReason::ContextFull);
                    return Ok(None);
                }
                self.session.feed(&[])?;
                self.stats.decode_steps += 1;
                self.session.logits.take().unwrap_or_default()
            }
        };

        let id = self.sampler.sample(&logits, &self.session.history)?;
        let lse = log_sum_exp(&logits);
        let logprob = logits
            .get(id as usize)
            .map_or(f32::NEG_INFINITY, |&l| (f64::from(l) - lse) as f32);
        let top = top_logprobs(&logits, self.options.top_logprobs);
        self.session.history.push(id);
        self.session.unfed += 1;
        self.ids.push(id);
        self.top.push(top.clone());
        self.stats.generated_tokens += 1;

        let tokenizer = &self.session.generator.tokenizer;
        let is_eog = self.options.stop_on_eog && tokenizer.is_eog(id);
        let piece = self.decoder.push(id)?;
        self.held.push_str(&piece);

        let text = if let Some((pos, stop)) = self.find_stop() {
            self.finish = Some(FinishReason::StopString(stop));
            let mut held = std::mem::take(&mut self.held);
            held.truncate(pos);
            held
        } else if is_eog || self.ids.len() >= self.options.max_tokens {
            self.finish = Some(if is_eog {
                FinishReason::EndOfGeneration(id)
            } else {
                FinishReason::MaxTokens
            });
            let mut held = std::mem::take(&mut self.held);
            held.push_str(&self.decoder.finish());
            held
        } else {
            let keep = self.partial_stop_len();
            let emit = self.held.len() - keep;
            let rest = self.held.split_off(emit);
            std::mem::replace(&mut self.held, rest)
        };
        self.text.push_str(&text);
        self.stats.decode_time += t0.elapsed();
        Ok(Some(GeneratedToken {
            id,
            text,
            logprob,
            top_logprobs: top,
        }))
    }

    /// The earliest stop string in the held text: its byte position and the string.
    fn find_stop(&self) -> Option<(usize, String)> {
        self.stop_strings
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|pos| (pos, s.clone())))
            .min_by_key(|(pos, _)| *pos)
    }

    /// Bytes at the end of the held text that are the beginning of a stop string (and so
    /// must wait for the next token).
    fn partial_stop_len(&self) -> usize {
        self.stop_strings
            .iter()
            .filter_map(|s| {
                (1..s.len())
                    .rev()
                    .filter(|&n| s.is_char_boundary(n))
                    .find(|&n| self.held.ends_with(&s[..n]))
            })
            .max()
            .unwrap_or(0)
    }
}

impl<B: Backend> Iterator for TokenStream<'_, '_, B> {
    type Item = Result<GeneratedToken>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(token) => token.map(Ok),
            Err(e) => {
                // An error ends generation; the sequence keeps what was fed.
                self.finish.get_or_insert(FinishReason::Cancelled);
                Some(Err(e))
            }
        }
    }
}

/// Generates from a raw text prompt in a fresh session and returns the [`Completion`]: the
/// shortest way to run a model.
pub fn generate_text<B: Backend>(
    generator: &Generator<B>,
    prompt: &str,
    cache: &KvCacheOptions,
    options: GenerateOptions,
) -> Result<Completion> {
    let ids = generator.encode(prompt)?;
    let mut session = generator.session(cache)?;
    session.generate_with(&ids, options, |_| ControlFlow::Continue(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_splitmix64() {
        // SplitMix64 from seed 0: the published first outputs.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            let u = r.next_f32();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn top_logprobs_are_sorted_log_softmax() {
        let logits = [1.0f32, 3.0, 2.0, 3.0, f32::NAN];
        let top = top_logprobs(&logits, 3);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 3, 2]);
        let z: f64 = [1.0f64, 3.0, 2.0, 3.0].iter().map(|v| v.exp()).sum();
        assert!((f64::from(top[0].1) - (3.0 - z.ln())).abs() < 1e-6);
        assert_eq!(top_logprobs(&logits, 0), vec![]);
        assert_eq!(top_logprobs(&logits, 10).len(), 5);
    }

    #[test]
    fn sampling_params_are_checked() {
        assert!(Sampler::new(SamplingParams::default()).is_ok());
        for bad in [
            SamplingParams {
                temperature: f32::NAN,
                ..SamplingParams::default()
            },
            SamplingParams {
                top_p: 1.5,
                ..SamplingParams::default()
            },
            SamplingParams {
                min_p: -0.1,
                ..SamplingParams::default()
            },
            SamplingParams {
                repeat_penalty: 0.0,
                ..SamplingParams::default()
            },
        ] {
            assert!(matches!(
                Sampler::new(bad),
                Err(ModelError::InvalidSampling(_))
            ));
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 1234,
            ..SamplingParams::default()
        };
        let draw = |p: SamplingParams| -> Vec<u32> {
            let mut s = Sampler::new(p).unwrap();
            (0..50).map(|_| s.sample(&logits, &[]).unwrap()).collect()
        };
        assert_eq!(draw(params), draw(params));
        assert_ne!(
            draw(params),
            draw(SamplingParams {
                seed: 4321,
                ..params
            })
        );
        let mut greedy = Sampler::new(SamplingParams::greedy()).unwrap();
        // The largest value, 10 · 0.3, is at i = 8 (8 · 37 = 296 = 26 · 11 + 10).
        assert_eq!(greedy.sample(&logits, &[]).unwrap(), 8);
    }
}
