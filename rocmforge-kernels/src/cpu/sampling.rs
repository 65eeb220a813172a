//! Sampling helpers with llama.cpp's semantics, made deterministic: the caller supplies the
//! uniform random number, so the caller owns the seed.
//!
//! The pieces work on a candidate list ([`Candidate`]: token id, logit, probability), as
//! llama.cpp's samplers work on `llama_token_data_array`:
//!
//! 1. [`apply_penalties`] on the full logits vector (repetition, frequency and presence
//!    penalties over the recent tokens — llama.cpp's `penalties` sampler);
//! 2. [`candidates_from_logits`], then any of [`top_k`], [`top_p`], [`min_p`];
//! 3. [`apply_temperature`], [`softmax_candidates`], and [`sample_candidates`] with a
//!    uniform number `u ∈ [0, 1)`.
//!
//! [`sample`] runs that chain in llama.cpp's default order (penalties → top-k → top-p →
//! min-p → temperature → distribution), from a [`SamplerConfig`].
//!
//! **Order.** Every function that truncates or normalizes leaves the list sorted by
//! [`sort_candidates`]: descending logit, ties broken by ascending token id, NaN logits
//! last. The sampler walks the list in that order, so a given `u` always picks the same
//! token. (llama.cpp leaves ties in an unspecified order.)

use std::cmp::Ordering;

use super::argmax::argmax;
use crate::error::shape_error;
use crate::Result;

/// One entry of a candidate list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Token id (index into the logits vector).
    pub id: u32,
    /// Logit (log-probability up to a constant).
    pub logit: f32,
    /// Probability, filled by [`softmax_candidates`] (0 until then).
    pub p: f32,
}

/// Penalties on recently generated tokens (llama.cpp's `penalties` sampler).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Penalties {
    /// Repetition penalty (`repeat_penalty`): positive logits are divided by it, zero and
    /// negative ones multiplied. 1 disables it.
    pub repeat: f32,
    /// Frequency penalty: subtracted once per occurrence. 0 disables it.
    pub frequency: f32,
    /// Presence penalty: subtracted once if the token occurs at all. 0 disables it.
    pub presence: f32,
}

impl Default for Penalties {
    /// No penalty: `repeat = 1`, `frequency = presence = 0`.
    fn default() -> Self {
        Penalties {
            repeat: 1.0,
            frequency: 0.0,
            presence: 0.0,
        }
    }
}

impl Penalties {
    /// Only a repetition penalty.
    pub fn repeat(repeat: f32) -> Self {
        Penalties {
            repeat,
            ..Penalties::default()
        }
    }

    /// Whether applying these penalties changes nothing.
    pub fn is_noop(&self) -> bool {
        self.repeat == 1.0 && self.frequency == 0.0 && self.presence == 0.0
    }
}

/// Parameters of [`sample`]; the defaults are llama.cpp's (`common_params_sampling`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// Temperature; `<= 0` means greedy (the argmax of the penalized logits). Default 0.8.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 disables it. Default 40.
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest prefix whose probability reaches `top_p`;
    /// `>= 1` disables it. Default 0.95.
    pub top_p: f32,
    /// Keep tokens whose probability is at least `min_p` times the largest; `<= 0`
    /// disables it. Default 0.05.
    pub min_p: f32,
    /// Top-p and min-p keep at least this many tokens (and always at least one). Default 0.
    pub min_keep: usize,
    /// Penalties on the recent tokens passed to [`sample`]. Default: none.
    pub penalties: Penalties,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            min_keep: 0,
            penalties: Penalties::default(),
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding (temperature 0), no penalties.
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        }
    }

    /// Checks that no parameter is NaN and the repetition penalty is positive and finite.
    pub fn validate(&self) -> Result<()> {
        check_not_nan("sample", "temperature", self.temperature)?;
        check_not_nan("sample", "top_p", self.top_p)?;
        check_not_nan("sample", "min_p", self.min_p)?;
        check_penalties("sample", &self.penalties)
    }
}

fn check_not_nan(op: &'static str, what: &str, v: f32) -> Result<()> {
    if v.is_nan() {
        Err(shape_error(op, format!("{what} is NaN")))
    } else {
        Ok(())
    }
}

fn check_penalties(op: &'static str, p: &Penalties) -> Result<()> {
    if !(p.repeat.is_finite() && p.repeat > 0.0) {
        return Err(shape_error(
            op,
            format!(
                "repetition penalty {} must be finite and positive",
                p.repeat
            ),
        ));
    }
    if !(p.frequency.is_finite() && p.presence.is_finite()) {
        return Err(shape_error(
            op,
            format!(
                "frequency ({}) and presence ({}) penalties must be finite",
                p.frequency, p.presence
            ),
        ));
    }
    Ok(())
}

/// The candidate list of a logits vector: `(id = i, logit = logits[i], p = 0)`, in id order.
///
/// Errors if there are more logits than `u32` ids.
pub fn candidates_from_logits(logits: &[f32]) -> Result<Vec<Candidate>> {
    if logits.len() > u32::MAX as usize + 1 {
        return Err(shape_error(
            "candidates_from_logits",
            format!("{} logits exceed the u32 token id range", logits.len()),
        ));
    }
    Ok(logits
        .iter()
        .enumerate()
        .map(|(i, &logit)| Candidate {
            id: i as u32,
            logit,
            p: 0.0,
        })
        .collect())
}

/// The logit as the sort order sees it: NaN as `-inf`, `-0` as `+0`.
fn order_key(logit: f32) -> f32 {
    if logit.is_nan() {
        f32::NEG_INFINITY
    } else if logit == 0.0 {
        0.0
    } else {
        logit
    }
}

/// Sorts by descending logit, ties by ascending id, NaN logits last (stable, so sorting a
/// sorted list is cheap and changes nothing).
pub fn sort_candidates(c: &mut [Candidate]) {
    c.sort_by(candidate_order);
}

/// The candidate order: descending logit (NaN as `-inf`), then ascending id. A total
/// order (ids are distinct), so any selection by it agrees with a full sort.
fn candidate_order(a: &Candidate, b: &Candidate) -> Ordering {
    order_key(b.logit)
        .partial_cmp(&order_key(a.logit))
        .unwrap_or(Ordering::Equal)
        .then(a.id.cmp(&b.id))
}

/// Applies repetition, frequency and presence penalties to `logits` for the tokens in
/// `recent` (the last `penalty_last_n` tokens, llama.cpp default 64), as llama.cpp does:
/// for each distinct token `t` occurring `count` times in `recent`,
///
/// ```text
/// if logit <= 0 { logit *= repeat } else { logit /= repeat }
/// logit -= count · frequency + presence
/// ```
///
/// Errors if a recent token id is not an index of `logits`, the repetition penalty is not
/// finite and positive, or another penalty is not finite. Nothing is changed on error.
pub fn apply_penalties(logits: &mut [f32], recent: &[u32], penalties: &Penalties) -> Result<()> {
    const OP: &str = "apply_penalties";
    check_penalties(OP, penalties)?;
    if let Some((i, &id)) = recent
        .iter()
        .enumerate()
        .find(|(_, &id)| id as usize >= logits.len())
    {
        return Err(shape_error(
            OP,
            format!(
                "recent token {i} has id {id}, outside a vocabulary of {}",
                logits.len()
            ),
        ));
    }
    if penalties.is_noop() {
        return Ok(());
    }
    let mut ids = recent.to_vec();
    ids.sort_unstable();
    for run in ids.chunk_by(|a, b| a == b) {
        let count = run.len() as f32;
        let logit = &mut logits[run[0] as usize];
        if *logit <= 0.0 {
            *logit *= penalties.repeat;
        } else {
            *logit /= penalties.repeat;
        }
        *logit -= count * penalties.frequency + penalties.presence;
    }
    Ok(())
}

/// Divides every logit by `temperature`. A temperature `<= 0` is greedy: only the best
/// candidate (first in [`sort_candidates`] order) is kept, as llama.cpp's `temp` sampler
/// leaves only the maximum finite.
///
/// Errors if `temperature` is NaN.
pub fn apply_temperature(c: &mut Vec<Candidate>, temperature: f32) -> Result<()> {
    check_not_nan("apply_temperature", "temperature", temperature)?;
    if temperature <= 0.0 {
        sort_candidates(c);
        c.truncate(1);
    } else {
        for cand in c.iter_mut() {
            cand.logit /= temperature;
        }
    }
    Ok(())
}

/// Keeps the `k` candidates with the largest logits (sorted); `k == 0` keeps all (and only
/// sorts).
pub fn top_k(c: &mut Vec<Candidate>, k: usize) {
    // Select the k best first (linear time), then sort only those: the same result as
    // sorting everything, because the order is total, at a fraction of the cost for a
    // vocabulary of 10^5 tokens.
    if k > 0 && k < c.len() {
        c.select_nth_unstable_by(k - 1, candidate_order);
        c.truncate(k);
    }
    sort_candidates(c);
}

/// Nucleus (top-p) filtering, as llama.cpp: computes the probabilities of the current
/// candidates ([`softmax_candidates`]), then keeps the shortest prefix whose cumulative
/// probability (summed in `f64`) is at least `p` and which has at least `min_keep` entries.
/// `p >= 1` keeps everything (and does nothing else).
///
/// Errors if `p` is NaN.
pub fn top_p(c: &mut Vec<Candidate>, p: f32, min_keep: usize) -> Result<()> {
    check_not_nan("top_p", "p", p)?;
    if p >= 1.0 || c.is_empty() {
        return Ok(());
    }
    softmax_candidates(c);
    let mut cum = 0.0f64;
    let mut keep = c.len();
    for (i, cand) in c.iter().enumerate() {
        cum += f64::from(cand.p);
        if cum >= f64::from(p) && i + 1 >= min_keep {
            keep = i + 1;
            break;
        }
    }
    c.truncate(keep);
    Ok(())
}

/// Min-p filtering, as llama.cpp: keeps (sorted) the candidates whose logit is at least
/// `max_logit + ln(p)` — whose probability is at least `p` times the largest — and at least
/// `min_keep` of them (always at least one). `p <= 0` keeps everything.
///
/// Errors if `p` is NaN.
pub fn min_p(c: &mut Vec<Candidate>, p: f32, min_keep: usize) -> Result<()> {
    check_not_nan("min_p", "p", p)?;
    if p <= 0.0 || c.is_empty() {
        return Ok(());
    }
    sort_candidates(c);
    let min_logit = c[0].logit + p.ln();
    let keep = 1 + c[1..]
        .iter()
        .enumerate()
        .take_while(|(i, cand)| cand.logit >= min_logit || i + 1 < min_keep)
        .count();
    c.truncate(keep);
    Ok(())
}

/// Sorts the candidates and sets `p` to the softmax of their logits:
/// `p_i = expf(l_i − l_max) / Σ_j expf(l_j − l_max)`, the sum in `f64`.
pub fn softmax_candidates(c: &mut [Candidate]) {
    sort_candidates(c);
    let Some(max) = c.first().map(|c| c.logit) else {
        return;
    };
    let mut sum = 0.0f64;
    for cand in c.iter_mut() {
        cand.p = (cand.logit - max).exp();
        sum += f64::from(cand.p);
    }
    for cand in c.iter_mut() {
        cand.p = (f64::from(cand.p) / sum) as f32;
    }
}

/// Draws a token from the candidates' probabilities `p` (which need not sum to 1) with the
/// uniform number `u ∈ [0, 1)`: walking the list in order, the first candidate whose
/// cumulative probability exceeds `u · Σp` (sums in `f64`). Candidates with `p = 0` are
/// never chosen.
///
/// Errors if the list is empty, `u` is not in `[0, 1)`, or the probabilities are not
/// finite, non-negative and of positive sum.
pub fn sample_candidates(c: &[Candidate], u: f32) -> Result<u32> {
    const OP: &str = "sample_candidates";
    if c.is_empty() {
        return Err(shape_error(OP, "no candidates"));
    }
    if !(0.0..1.0).contains(&u) {
        return Err(shape_error(OP, format!("u = {u} is not in [0, 1)")));
    }
    if let Some(bad) = c.iter().find(|c| !(c.p.is_finite() && c.p >= 0.0)) {
        return Err(shape_error(
            OP,
            format!("token {} has probability {}", bad.id, bad.p),
        ));
    }
    let total: f64 = c.iter().map(|c| f64::from(c.p)).sum();
    if total <= 0.0 {
        return Err(shape_error(OP, "probabilities sum to 0"));
    }
    let target = f64::from(u) * total;
    let mut cum = 0.0f64;
    for cand in c {
        cum += f64::from(cand.p);
        if cum > target {
            return Ok(cand.id);
        }
    }
    // Rounding left `cum` at or below `target`: take the last candidate that can be drawn.
    let last = c.iter().rev().find(|c| c.p > 0.0).map_or(c[0].id, |c| c.id);
    Ok(last)
}

/// Samples one token from `logits` with llama.cpp's default chain: penalties over `recent`
/// → top-k → top-p → min-p → temperature → softmax → draw with `u ∈ [0, 1)`. With
/// `temperature <= 0` it returns the [`argmax`] of the penalized logits (first max wins).
///
/// Errors if `logits` is empty or all NaN, a `recent` id is out of range, a parameter is
/// invalid ([`SamplerConfig::validate`]), or `u` is not in `[0, 1)`; also if the surviving
/// candidates have no valid distribution (e.g. NaN logits).
pub fn sample(logits: &[f32], recent: &[u32], cfg: &SamplerConfig, u: f32) -> Result<u32> {
    cfg.validate()?;
    if !(0.0..1.0).contains(&u) {
        return Err(shape_error("sample", format!("u = {u} is not in [0, 1)")));
    }
    let mut logits = logits.to_vec();
    apply_penalties(&mut logits, recent, &cfg.penalties)?;
    if cfg.temperature <= 0.0 {
        // Token ids are u32: an index beyond that range cannot be returned.
        let best = argmax(&logits)?;
        return u32::try_from(best).map_err(|_| {
            shape_error(
                "sample",
                format!("token index {best} exceeds the u32 range"),
            )
        });
    }
    let mut c = candidates_from_logits(&logits)?;
    top_k(&mut c, cfg.top_k);
    top_p(&mut c, cfg.top_p, cfg.min_keep)?;
    min_p(&mut c, cfg.min_p, cfg.min_keep)?;
    apply_temperature(&mut c, cfg.temperature)?;
    softmax_candidates(&mut c);
    sample_candidates(&c, u)
}
