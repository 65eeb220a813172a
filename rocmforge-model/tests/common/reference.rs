//! llama.cpp's reference generations of the demo model (`generate_public.jsonl`) and the
//! comparison every backend's reference test makes against them (see
//! `tests/model_reference.rs` for what is checked and why).

use rocmforge_model::backend::{Backend, KvDtype};
use rocmforge_model::generate::{
    log_sum_exp, top_logprobs, FinishReason, GenerateOptions, Generator,
};
use rocmforge_model::kv_cache::KvCacheOptions;
use rocmforge_model::model::Logits;
use serde_json::Value;

/// Largest allowed difference of a top-5 probability (see the module documentation).
pub const MAX_PROB_DIFF: f64 = 0.1;
/// Largest allowed mean difference of the top-5 probabilities of a case.
pub const MEAN_PROB_DIFF: f64 = 0.015;
/// A top-1/top-2 log-probability margin at least this large is a clear decision that
/// arithmetic noise cannot flip (the largest margin flipped between implementations on these
/// cases is 0.36; see the module documentation).
pub const CLEAR_MARGIN: f64 = 0.5;

pub struct Case {
    pub prompt: String,
    pub prompt_ids: Vec<u32>,
    pub generated_ids: Vec<u32>,
    /// Per step, llama.cpp's five most likely tokens and their probabilities.
    pub top5: Vec<Vec<(u32, f64)>>,
    /// llama.cpp's top-1/top-2 log-probability margin per step.
    pub margins: Vec<f64>,
    /// `first_step_margin_below_0.05` (all steps when null).
    pub compare_until: usize,
}

pub fn cases() -> Vec<Case> {
    // Embedded, so that a test binary carried to the GPU host needs no source tree.
    let text = include_str!("../fixtures/generate_public.jsonl");
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .expect("id array")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect()
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("JSON line");
            let generated_ids = ids(&v["generated_ids"]);
            let top5 = v["top5"]
                .as_array()
                .expect("top5")
                .iter()
                .map(|step| {
                    step.as_array()
                        .expect("step")
                        .iter()
                        .map(|pair| {
                            (
                                pair[0].as_u64().expect("id") as u32,
                                pair[1].as_f64().expect("prob"),
                            )
                        })
                        .collect()
                })
                .collect();
            let compare_until = v["first_step_margin_below_0.05"]
                .as_u64()
                .map_or(generated_ids.len(), |s| s as usize);
            let margins = v["top1_top2_logprob_margin"]
                .as_array()
                .expect("margins")
                .iter()
                .map(|m| m.as_f64().expect("margin"))
                .collect();
            Case {
                prompt: v["prompt"].as_str().expect("prompt").to_string(),
                margins,
                prompt_ids: ids(&v["prompt_ids"]),
                generated_ids,
                top5,
                compare_until,
            }
        })
        .collect()
}

/// llama.cpp's tokens as the context, fed as llama-server fed them: the prompt in one
/// batch, then one token per step, over an f16 cache (llama.cpp's default). Returns the
/// logits of every step, `[steps, n_vocab]` (the same computation as
/// `tests/model_reference.rs`'s teacher forcing: llama.cpp's arithmetic differs between
/// a batch and single tokens, e.g. its attention's tiled path for 64 or more).
pub fn teacher_forced<B: Backend>(gen: &Generator<B>, case: &Case) -> Vec<f32> {
    let model = gen.model();
    let mut cache = model
        .new_cache(&KvCacheOptions::with_n_ctx(256).dtype(KvDtype::F16))
        .expect("cache");
    let mut rows = model
        .forward(&mut cache, &case.prompt_ids, Logits::Last)
        .expect("prefill");
    for &id in &case.generated_ids[..case.generated_ids.len() - 1] {
        let row = model
            .forward(&mut cache, &[id], Logits::Last)
            .expect("decode");
        rows.extend_from_slice(&row);
    }
    rows
}

/// What one case gave.
pub struct Outcome {
    /// Free-running greedy ids equal to llama.cpp's for this many steps.
    pub ids_matched: usize,
    /// Teacher-forced steps whose argmax is llama.cpp's token.
    pub argmax_agree: usize,
    pub max_diff: f64,
    pub mean_diff: f64,
}

pub fn run_case<B: Backend>(
    gen: &Generator<B>,
    n: usize,
    case: &Case,
    failures: &mut Vec<String>,
) -> Outcome {
    let model = gen.model();
    let n_vocab = model.n_vocab();
    let steps = case.generated_ids.len();

    let prompt_ids = gen.encode(&case.prompt).expect("tokenize");
    assert_eq!(
        prompt_ids, case.prompt_ids,
        "case {n}: prompt ids differ from llama.cpp's"
    );

    // Teacher forcing: llama.cpp's tokens as the context of every step, fed as
    // llama-server fed them ([`teacher_forced`]).
    let logits = teacher_forced(gen, case);
    let mut diffs = Vec::new();
    let mut argmax_agree = 0;
    let mut first_disagreement = steps;
    for (step, top5) in case.top5.iter().enumerate() {
        let row = &logits[step * n_vocab..][..n_vocab];
        let lse = log_sum_exp(row);
        let logprob = |id: u32| f64::from(row[id as usize]) - lse;
        for &(id, p_ref) in top5 {
            diffs.push((logprob(id).exp() - p_ref).abs());
        }
        let ours = top_logprobs(row, 1)[0].0;
        let theirs = case.generated_ids[step];
        if ours == theirs {
            argmax_agree += 1;
            continue;
        }
        first_disagreement = first_disagreement.min(step);
        let gap = logprob(ours) - logprob(theirs);
        if case.margins[step] >= CLEAR_MARGIN || gap > CLEAR_MARGIN {
            failures.push(format!(
                "case {n} step {step}: our argmax is token {ours}, llama.cpp's {theirs} \
                 (llama.cpp's margin {:.3}, ours {gap:.3}): not a near-tie",
                case.margins[step]
            ));
        }
    }
    let max_diff = diffs.iter().copied().fold(0.0, f64::max);
    let mean_diff = diffs.iter().sum::<f64>() / diffs.len() as f64;
    if max_diff > MAX_PROB_DIFF || mean_diff > MEAN_PROB_DIFF {
        failures.push(format!(
            "case {n}: top-5 probabilities differ by up to {max_diff:.4} (mean {mean_diff:.4}), \
             allowed {MAX_PROB_DIFF} (mean {MEAN_PROB_DIFF})"
        ));
    }

    // Free-running greedy generation through the session API (decode one token at a time).
    let mut session = gen
        .session(&KvCacheOptions::with_n_ctx(256))
        .expect("session");
    let completion = session
        .generate_with(&prompt_ids, GenerateOptions::greedy(48), |_| {
            std::ops::ControlFlow::Continue(())
        })
        .expect("generate");
    let ours = &completion.ids;
    let ids_matched = ours
        .iter()
        .zip(&case.generated_ids)
        .take_while(|(a, b)| a == b)
        .count();
    if ids_matched < first_disagreement.min(ours.len()) || ours.len() > steps {
        failures.push(format!(
            "case {n} ({:?}): generated ids differ at step {ids_matched}, before any near-tie \
             (first at step {first_disagreement}): ours {ours:?}, llama.cpp {:?}",
            case.prompt, case.generated_ids
        ));
    }
    if ours == &case.generated_ids && case.generated_ids.last() == Some(&2) {
        assert_eq!(
            completion.finish,
            FinishReason::EndOfGeneration(2),
            "case {n}: stops on <|im_end|> as llama.cpp does"
        );
    }
    Outcome {
        ids_matched,
        argmax_agree,
        max_diff,
        mean_diff,
    }
}
