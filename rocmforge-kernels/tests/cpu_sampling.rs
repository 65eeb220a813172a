//! CPU reference: argmax and the sampling helpers.

use proptest::prelude::*;
use rocmforge_kernels::cpu::*;
use rocmforge_kernels::Error;

fn cands(logits: &[f32]) -> Vec<Candidate> {
    candidates_from_logits(logits).unwrap()
}

fn ids(c: &[Candidate]) -> Vec<u32> {
    c.iter().map(|c| c.id).collect()
}

fn shape<T: std::fmt::Debug>(r: rocmforge_kernels::Result<T>) -> bool {
    matches!(r, Err(Error::Shape { .. }))
}

#[test]
fn argmax_ties_and_nan() {
    assert_eq!(argmax(&[0.5, 2.0, -1.0, 2.0]).unwrap(), 1);
    assert_eq!(argmax(&[f32::NAN, 1.0, f32::NAN, 3.0, 3.0]).unwrap(), 3);
    assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]).unwrap(), 0);
    assert_eq!(argmax(&[7.0]).unwrap(), 0);
    assert!(shape(argmax(&[])));
    assert!(shape(argmax(&[f32::NAN; 4])));
}

#[test]
fn penalties_follow_llama_cpp() {
    // Token 0 appears twice, 1 and 2 once, 3 never.
    let recent = [0u32, 1, 2, 0];
    let mut l = [2.0f32, -2.0, 0.0, 1.0];
    apply_penalties(&mut l, &recent, &Penalties::repeat(2.0)).unwrap();
    // positive divided, negative multiplied, zero stays zero, absent token untouched
    assert_eq!(l, [1.0, -4.0, 0.0, 1.0]);

    let mut l = [2.0f32, -2.0, 0.0, 1.0];
    let pen = Penalties {
        repeat: 2.0,
        frequency: 0.5,
        presence: 0.25,
    };
    apply_penalties(&mut l, &recent, &pen).unwrap();
    // token 0: 2/2 − (2·0.5 + 0.25); token 1: −2·2 − 0.75; token 2: 0 − 0.75
    assert_eq!(l, [-0.25, -4.75, -0.75, 1.0]);

    // Out-of-range ids and bad penalties are errors and change nothing.
    let mut l = [1.0f32, 2.0];
    assert!(shape(apply_penalties(
        &mut l,
        &[0, 2],
        &Penalties::repeat(1.3)
    )));
    assert!(shape(apply_penalties(
        &mut l,
        &[0],
        &Penalties::repeat(0.0)
    )));
    assert!(shape(apply_penalties(
        &mut l,
        &[0],
        &Penalties::repeat(f32::NAN)
    )));
    assert!(shape(apply_penalties(
        &mut l,
        &[0],
        &Penalties {
            frequency: f32::INFINITY,
            ..Penalties::default()
        }
    )));
    assert_eq!(l, [1.0, 2.0]);
    // No penalty is a no-op.
    apply_penalties(&mut l, &[0, 1, 1], &Penalties::default()).unwrap();
    assert_eq!(l, [1.0, 2.0]);
}

#[test]
fn sorting_is_descending_with_ties_by_id_and_nan_last() {
    let mut c = cands(&[1.0, f32::NAN, 3.0, 1.0, -0.0, 0.0, 3.0]);
    sort_candidates(&mut c);
    assert_eq!(ids(&c), vec![2, 6, 0, 3, 4, 5, 1]);
}

#[test]
fn top_k_keeps_the_k_largest() {
    let mut c = cands(&[0.1, 0.9, 0.5, 0.9, -1.0]);
    top_k(&mut c, 3);
    assert_eq!(ids(&c), vec![1, 3, 2]);
    let mut all = cands(&[0.1, 0.9]);
    top_k(&mut all, 0);
    assert_eq!(ids(&all), vec![1, 0]);
    top_k(&mut all, 10);
    assert_eq!(all.len(), 2);
}

#[test]
fn top_p_keeps_the_smallest_prefix_reaching_p() {
    // Probabilities 0.5, 0.3, 0.2 (ids 2, 0, 1).
    let logits = [0.3f32.ln(), 0.2f32.ln(), 0.5f32.ln()];
    for (p, min_keep, want) in [
        (0.4, 0, vec![2]),
        (0.5, 0, vec![2]),
        (0.75, 0, vec![2, 0]),
        (0.85, 0, vec![2, 0, 1]),
        (0.1, 3, vec![2, 0, 1]),
        (0.0, 0, vec![2]),
        (1.0, 0, vec![0, 1, 2]), // disabled: not even sorted
    ] {
        let mut c = cands(&logits);
        top_p(&mut c, p, min_keep).unwrap();
        assert_eq!(ids(&c), want, "p = {p}, min_keep = {min_keep}");
    }
    assert!(shape(top_p(&mut cands(&logits), f32::NAN, 0)));
}

#[test]
fn min_p_keeps_tokens_within_a_factor_of_the_best() {
    // Probabilities 0.5, 0.3, 0.15, 0.05: min_p 0.5 keeps p ≥ 0.25.
    let logits = [0.05f32.ln(), 0.5f32.ln(), 0.15f32.ln(), 0.3f32.ln()];
    let mut c = cands(&logits);
    min_p(&mut c, 0.5, 0).unwrap();
    assert_eq!(ids(&c), vec![1, 3]);
    let mut c = cands(&logits);
    min_p(&mut c, 0.5, 3).unwrap();
    assert_eq!(ids(&c), vec![1, 3, 2]);
    let mut c = cands(&logits);
    min_p(&mut c, 1.5, 0).unwrap(); // > 1: only the best survives
    assert_eq!(ids(&c), vec![1]);
    let mut c = cands(&logits);
    min_p(&mut c, 0.0, 0).unwrap(); // disabled
    assert_eq!(c.len(), 4);
    assert!(shape(min_p(&mut c, f32::NAN, 0)));
}

#[test]
fn temperature_scales_logits_and_zero_is_greedy() {
    let mut c = cands(&[1.0, -4.0, 3.0]);
    apply_temperature(&mut c, 2.0).unwrap();
    assert_eq!(
        c.iter().map(|c| c.logit).collect::<Vec<_>>(),
        vec![0.5, -2.0, 1.5]
    );
    let mut c = cands(&[1.0, 3.0, 3.0]);
    apply_temperature(&mut c, 0.0).unwrap();
    assert_eq!(ids(&c), vec![1]);
    assert!(shape(apply_temperature(&mut c, f32::NAN)));
}

#[test]
fn softmax_candidates_normalizes_in_sorted_order() {
    let mut c = cands(&[1.0, 2.0, 3.0]);
    softmax_candidates(&mut c);
    assert_eq!(ids(&c), vec![2, 1, 0]);
    let want = [0.665_240_96, 0.244_728_47, 0.090_030_57];
    for (cand, w) in c.iter().zip(want) {
        assert!((cand.p - w).abs() < 1e-7);
    }
    softmax_candidates(&mut []); // empty is fine
}

#[test]
fn sample_candidates_walks_the_cumulative_distribution() {
    let c = [
        Candidate {
            id: 7,
            logit: 0.0,
            p: 0.5,
        },
        Candidate {
            id: 3,
            logit: 0.0,
            p: 0.3,
        },
        Candidate {
            id: 9,
            logit: 0.0,
            p: 0.2,
        },
    ];
    for (u, want) in [
        (0.0, 7),
        (0.49, 7),
        (0.5, 3),
        (0.79, 3),
        (0.81, 9),
        (0.999_999, 9),
    ] {
        assert_eq!(sample_candidates(&c, u).unwrap(), want, "u = {u}");
    }
    // Unnormalized probabilities are fine; zero-probability entries are never drawn.
    let z = [
        Candidate {
            id: 1,
            logit: 0.0,
            p: 0.0,
        },
        Candidate {
            id: 2,
            logit: 0.0,
            p: 2.0,
        },
        Candidate {
            id: 4,
            logit: 0.0,
            p: 0.0,
        },
    ];
    assert_eq!(sample_candidates(&z, 0.0).unwrap(), 2);
    assert_eq!(sample_candidates(&z, 0.999_999_9).unwrap(), 2);

    assert!(shape(sample_candidates(&c, 1.0)));
    assert!(shape(sample_candidates(&c, -0.1)));
    assert!(shape(sample_candidates(&c, f32::NAN)));
    assert!(shape(sample_candidates(&[], 0.5)));
    assert!(shape(sample_candidates(
        &[Candidate {
            id: 0,
            logit: 0.0,
            p: 0.0
        }],
        0.5
    )));
    assert!(shape(sample_candidates(
        &[Candidate {
            id: 0,
            logit: 0.0,
            p: f32::NAN
        }],
        0.5
    )));
    assert!(shape(sample_candidates(
        &[Candidate {
            id: 0,
            logit: 0.0,
            p: -1.0
        }],
        0.5
    )));
}

#[test]
fn sample_chain() {
    let logits = [0.1f32, 2.0, -1.0, 1.9, 0.0];
    // Greedy = argmax, whatever u.
    for u in [0.0, 0.5, 0.99] {
        assert_eq!(
            sample(&logits, &[], &SamplerConfig::greedy(), u).unwrap(),
            1
        );
    }
    // A repetition penalty on token 1 makes token 3 the greedy choice.
    let cfg = SamplerConfig {
        penalties: Penalties::repeat(1.5),
        ..SamplerConfig::greedy()
    };
    assert_eq!(sample(&logits, &[1], &cfg, 0.3).unwrap(), 3);
    // top_k = 1 is greedy too.
    let cfg = SamplerConfig {
        top_k: 1,
        ..SamplerConfig::default()
    };
    assert_eq!(sample(&logits, &[], &cfg, 0.99).unwrap(), 1);
    // Deterministic for a given u, and every u gives a token that survives top-k = 2.
    let cfg = SamplerConfig {
        top_k: 2,
        top_p: 1.0,
        min_p: 0.0,
        ..SamplerConfig::default()
    };
    for i in 0..100 {
        let u = i as f32 / 100.0;
        let t = sample(&logits, &[], &cfg, u).unwrap();
        assert!(t == 1 || t == 3);
        assert_eq!(t, sample(&logits, &[], &cfg, u).unwrap());
    }
    // Errors.
    assert!(shape(sample(&logits, &[], &SamplerConfig::default(), 1.0)));
    assert!(shape(sample(&logits, &[5], &SamplerConfig::default(), 0.5)));
    assert!(shape(sample(&[], &[], &SamplerConfig::default(), 0.5)));
    assert!(shape(sample(&[], &[], &SamplerConfig::greedy(), 0.5)));
    let bad = SamplerConfig {
        temperature: f32::NAN,
        ..SamplerConfig::default()
    };
    assert!(shape(sample(&logits, &[], &bad, 0.5)));
}

#[test]
fn sampling_frequencies_follow_the_distribution() {
    // Sweeping u uniformly over [0, 1) draws each token with its probability
    // (temperature 1, no truncation): the sweep is an exact quadrature.
    let logits = [0.0f32, 1.0, 2.0, -1.0];
    let cfg = SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        ..SamplerConfig::default()
    };
    let n = 100_000;
    let mut counts = [0usize; 4];
    for i in 0..n {
        counts[sample(&logits, &[], &cfg, i as f32 / n as f32).unwrap() as usize] += 1;
    }
    let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
    for (t, &count) in counts.iter().enumerate() {
        let p = f64::from(logits[t]).exp() / z;
        assert!(
            (count as f64 / n as f64 - p).abs() < 1e-4,
            "token {t}: {count}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sampled_token_survives_the_filters(
        logits in prop::collection::vec(-10.0f32..10.0, 1..300),
        top_k_ in 0usize..20,
        top_p_ in 0.0f32..1.2,
        min_p_ in 0.0f32..0.5,
        temperature in 0.0f32..2.0,
        u in 0.0f32..1.0,
    ) {
        let cfg = SamplerConfig { temperature, top_k: top_k_, top_p: top_p_, min_p: min_p_, min_keep: 0, penalties: Penalties::default() };
        let t = sample(&logits, &[], &cfg, u).unwrap();
        prop_assert!((t as usize) < logits.len());
        // Never worse than the k-th best logit.
        if top_k_ > 0 {
            let mut sorted = logits.clone();
            sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
            let kth = sorted[top_k_.min(sorted.len()) - 1];
            prop_assert!(logits[t as usize] >= kth);
        }
        // min-p: the token's probability is at least min_p times the best one's.
        if temperature > 0.0 && min_p_ > 0.0 {
            let best = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            prop_assert!(logits[t as usize] >= best + min_p_.ln() - 1e-5);
        }
    }
}

proptest::proptest! {
    /// top-k selects before sorting; it must keep exactly what a full sort would keep,
    /// in the same order, ties and NaN included.
    #[test]
    fn top_k_equals_sort_then_truncate(
        logits in proptest::collection::vec(proptest::prop_oneof![
            (-4i32..4).prop_map(|v| v as f32),
            proptest::num::f32::ANY,
        ], 1..300),
        k in 0usize..320,
    ) {
        use proptest::prelude::*;
        let mut selected = rocmforge_kernels::cpu::candidates_from_logits(&logits).unwrap();
        rocmforge_kernels::cpu::top_k(&mut selected, k);
        let mut sorted = rocmforge_kernels::cpu::candidates_from_logits(&logits).unwrap();
        rocmforge_kernels::cpu::sort_candidates(&mut sorted);
        if k > 0 {
            sorted.truncate(k);
        }
        let ids = |c: &[rocmforge_kernels::cpu::Candidate]| c.iter().map(|c| c.id).collect::<Vec<_>>();
        prop_assert_eq!(ids(&selected), ids(&sorted));
    }
}
