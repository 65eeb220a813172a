//! Perplexity and KL divergence (`rocmforge_model::eval`) on the demo model, on the CPU:
//! the perplexity equals an independent f64 computation from the model's logits, a run
//! compared with its own saved base shows no divergence, exact and llama.cpp-compatible
//! arithmetic differ a little, and damaged or mismatched base files are errors.
//!
//! Needs the demo model: run `scripts/fetch-demo-model.sh` (or set `ROCMFORGE_DEMO_MODEL`).

use std::path::PathBuf;
use std::sync::OnceLock;

use rocmforge_model::backend::cpu::{CpuArithmetic, CpuBackend};
use rocmforge_model::eval::{EvalError, EvalOptions, EvalReport, Evaluator};
use rocmforge_model::generate::Generator;
use rocmforge_model::gguf::{require_demo_model, GgufFile};
use rocmforge_model::kv_cache::KvCacheOptions;
use rocmforge_model::model::Logits;

/// About 240 tokens of plain English: 3 windows of 64 (plus a tail left out).
const TEXT: &str = "The lighthouse keeper climbed the narrow stairs every evening at dusk. \
He carried a small lamp, a notebook and a flask of tea, and he wrote down the weather, the \
ships he saw and the time the great light was lit. In winter the wind came from the north \
and the sea was grey and rough; in summer the water was calm and the evenings were long. \
Children from the village sometimes followed him up the hill and asked him questions about \
the ships, the stars and the storms. He answered patiently and showed them how the lens \
turned, how the clockwork had to be wound, and why the light flashed twice and then waited. \
When he grew old, one of those children took over the lighthouse, and she kept the same \
notebook, writing the weather, the ships and the time, just as he had taught her to do. \
Years later the light was automated and the keeper's house became a small museum, where \
visitors can still read the notebooks and climb the narrow stairs to watch the sunset.";

const N_CTX: usize = 64;

fn load(arithmetic: CpuArithmetic) -> Generator<CpuBackend> {
    let path = require_demo_model().unwrap_or_else(|e| panic!("{e}"));
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Generator::load(file, CpuBackend::new().with_arithmetic(arithmetic))
        .unwrap_or_else(|e| panic!("loading: {e}"))
}

fn exact() -> &'static Generator<CpuBackend> {
    static GEN: OnceLock<Generator<CpuBackend>> = OnceLock::new();
    GEN.get_or_init(|| load(CpuArithmetic::Exact))
}

fn llama() -> &'static Generator<CpuBackend> {
    static GEN: OnceLock<Generator<CpuBackend>> = OnceLock::new();
    GEN.get_or_init(|| load(CpuArithmetic::GgmlCompatible))
}

fn options() -> EvalOptions {
    EvalOptions {
        n_ctx: N_CTX,
        ..EvalOptions::default()
    }
}

fn tokens(gen: &Generator<CpuBackend>) -> Vec<u32> {
    gen.tokenizer().encode(TEXT, true, false).unwrap()
}

/// A file in the target's temporary directory, unique per test.
fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rocmforge-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn save_base(gen: &Generator<CpuBackend>, name: &str) -> (PathBuf, EvalReport) {
    let path = temp_file(name);
    let ev = Evaluator::new(gen.model(), gen.tokenizer(), options());
    let report = ev.perplexity(&tokens(gen), Some(&path), |_| {}).unwrap();
    (path, report)
}

#[test]
fn perplexity_is_exp_of_the_mean_nll_of_the_scored_tokens() {
    let gen = exact();
    let tokens = tokens(gen);
    assert!(tokens.len() >= 3 * N_CTX, "{} tokens", tokens.len());
    let mut windows = 0;
    let report = Evaluator::new(gen.model(), gen.tokenizer(), options())
        .perplexity(&tokens, None, |w| windows = w.done)
        .unwrap();
    assert_eq!((report.windows, windows, report.n_ctx), (3, 3, N_CTX));
    assert_eq!(report.perplexity.tokens, 3 * (N_CTX - 1 - N_CTX / 2));

    // Independently: each window from an empty cache, positions n_ctx/2 ..= n_ctx-2
    // scored against the next token, log-softmax in f64.
    let n_vocab = gen.model().n_vocab();
    let mut nll = Vec::new();
    for w in tokens.chunks_exact(N_CTX).take(3) {
        let mut cache = gen
            .model()
            .new_cache(&KvCacheOptions::with_n_ctx(N_CTX))
            .unwrap();
        let logits = gen.model().forward(&mut cache, w, Logits::All).unwrap();
        for j in N_CTX / 2..N_CTX - 1 {
            let row = &logits[j * n_vocab..(j + 1) * n_vocab];
            let max = row.iter().copied().fold(f32::MIN, f32::max) as f64;
            let z = row
                .iter()
                .map(|&l| (l as f64 - max).exp())
                .sum::<f64>()
                .ln()
                + max;
            nll.push(z - row[w[j + 1] as usize] as f64);
        }
    }
    let expected = (nll.iter().sum::<f64>() / nll.len() as f64).exp();
    let got = report.perplexity.value;
    assert!(
        (got - expected).abs() / expected < 1e-5,
        "{got} vs {expected}"
    );
    // A small model on plain English: a plausible perplexity, not a broken one.
    assert!((2.0..60.0).contains(&got), "PPL {got}");
    assert!(report.perplexity.uncertainty > 0.0);
}

#[test]
fn a_run_against_its_own_saved_base_has_no_divergence() {
    let gen = llama();
    let (base, saved) = save_base(gen, "self.bin");
    let ev = Evaluator::new(gen.model(), gen.tokenizer(), options());
    let report = ev.kl_divergence(&base, |_| {}).unwrap();
    let k = report.kl_divergence.expect("a comparison");
    assert_eq!(k.tokens, saved.perplexity.tokens);
    assert!(k.kld.value.abs() < 1e-5, "{:?}", k.kld);
    assert!(k.kld_percentiles.max < 1e-4, "{:?}", k.kld_percentiles);
    assert_eq!(k.same_top.value, 1.0);
    assert!(k.ln_ppl_ratio.value.abs() < 1e-3, "{:?}", k.ln_ppl_ratio);
    assert!(k.delta_p_rms.value < 1e-3, "{:?}", k.delta_p_rms);
    let rel = (report.perplexity.value - saved.perplexity.value).abs() / saved.perplexity.value;
    assert!(rel < 1e-6, "{rel}");
    // At most as many windows as asked.
    let one = Evaluator::new(
        gen.model(),
        gen.tokenizer(),
        EvalOptions {
            max_windows: Some(1),
            ..options()
        },
    )
    .kl_divergence(&base, |_| {})
    .unwrap();
    assert_eq!(one.windows, 1);
}

#[test]
fn exact_and_llama_arithmetic_differ_a_little() {
    let (base, _) = save_base(exact(), "exact.bin");
    let gen = llama();
    let report = Evaluator::new(gen.model(), gen.tokenizer(), options())
        .kl_divergence(&base, |_| {})
        .unwrap();
    let k = report.kl_divergence.unwrap();
    // 8-bit activations and an f16 attention accumulator: a real but small divergence.
    assert!(k.kld.value > 1e-5 && k.kld.value < 0.05, "{:?}", k.kld);
    assert!(k.same_top.value > 0.85, "{:?}", k.same_top);
    assert!(k.ln_ppl_ratio.value.abs() < 0.05, "{:?}", k.ln_ppl_ratio);
}

#[test]
fn damaged_or_mismatched_base_files_are_errors() {
    let gen = llama();
    let (base, _) = save_base(gen, "good.bin");
    let bytes = std::fs::read(&base).unwrap();
    let ev = Evaluator::new(gen.model(), gen.tokenizer(), options());
    let check = |name: &str, content: &[u8]| {
        let path = temp_file(name);
        std::fs::write(&path, content).unwrap();
        ev.kl_divergence(&path, |_| {}).unwrap_err()
    };
    let with_word = |at: usize, v: u32| {
        let mut b = bytes.clone();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        b
    };

    for (name, content) in [
        ("empty", Vec::new()),
        ("short", bytes[..10].to_vec()),
        ("truncated", bytes[..bytes.len() - 1].to_vec()),
        ("longer", [bytes.as_slice(), &[0]].concat()),
        ("magic", [b"_LOGITS_".as_slice(), &bytes[8..]].concat()),
        ("n_ctx", with_word(8, 3)),
        ("windows", with_word(16, u32::MAX / 2)),
        ("negative vocab", with_word(12, u32::MAX)),
        ("token", with_word(20, 1 << 30)),
    ] {
        let e = check(name, &content);
        assert!(matches!(e, EvalError::BadLogProbFile { .. }), "{name}: {e}");
        assert!(!e.to_string().is_empty());
    }
    // A vocabulary of another size (the file's length adjusted to match its header).
    let n_vocab = gen.model().n_vocab() as u32;
    let e = check("vocab", &with_word(12, n_vocab - 2)[..]);
    assert!(matches!(e, EvalError::BadLogProbFile { .. }), "{e}");
    let missing = ev.kl_divergence(temp_file("missing.bin"), |_| {});
    assert!(matches!(missing, Err(EvalError::Io { .. })));
}

#[test]
fn a_base_of_another_vocabulary_is_a_mismatch() {
    // A well-formed file whose vocabulary differs from the model's.
    let gen = llama();
    let n_ctx = 8usize;
    let n_vocab = 10usize;
    let rows = (n_ctx - 1 - n_ctx / 2) * (2 * n_vocab.div_ceil(2) + 4);
    let mut b = b"_logits_".to_vec();
    b.extend_from_slice(&(n_ctx as u32).to_le_bytes());
    b.extend_from_slice(&(n_vocab as i32).to_le_bytes());
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend(std::iter::repeat_n(0u8, n_ctx * 4 + rows * 2));
    let path = temp_file("other-vocab.bin");
    std::fs::write(&path, &b).unwrap();
    let e = Evaluator::new(gen.model(), gen.tokenizer(), options())
        .kl_divergence(&path, |_| {})
        .unwrap_err();
    assert!(matches!(e, EvalError::BaseMismatch { .. }), "{e}");
    assert!(e.to_string().contains("vocabulary of 10"), "{e}");
}

#[test]
fn a_text_shorter_than_two_windows_is_an_error() {
    let gen = llama();
    let tokens = tokens(gen);
    let ev = Evaluator::new(
        gen.model(),
        gen.tokenizer(),
        EvalOptions {
            n_ctx: 512,
            ..EvalOptions::default()
        },
    );
    let e = ev.perplexity(&tokens, None, |_| {}).unwrap_err();
    assert!(
        matches!(e, EvalError::TextTooShort { needed: 1024, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("smaller window"), "{e}");
}

#[test]
fn token_by_token_agrees_with_the_batch() {
    // Exact arithmetic: the decode step and the batched pass compute the same sums in
    // another order, so the distributions agree to rounding.
    let gen = exact();
    let (base, saved) = save_base(gen, "batch.bin");
    let report = Evaluator::new(
        gen.model(),
        gen.tokenizer(),
        EvalOptions {
            token_by_token: true,
            ..options()
        },
    )
    .kl_divergence(&base, |_| {})
    .unwrap();
    let k = report.kl_divergence.unwrap();
    assert!(k.kld.value.abs() < 1e-5, "{:?}", k.kld);
    assert_eq!(k.same_top.value, 1.0);
    let rel = (report.perplexity.value - saved.perplexity.value).abs() / saved.perplexity.value;
    assert!(rel < 1e-4, "{rel}");
}
