//! The model and generation API on the CPU backend: bad input is a clear error (an
//! unsupported architecture, a missing tensor, inconsistent hyper-parameters, a prompt
//! longer than the context), generation is reproducible (same seed, same tokens), stops
//! where asked (stop strings, end of generation, cancellation, max tokens), and sequences
//! are independent (batched = one at a time, threads = sequential).
//!
//! Most tests use a copy of the demo model cut to its first 2 layers, written at test time
//! with the GGUF writer (the tensors are borrowed from the mapped demo model, so it costs
//! one copy of the 32 MB that remain). Needs the demo model: run
//! `scripts/fetch-demo-model.sh` (or set `ROCMFORGE_DEMO_MODEL`).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use rocmforge_model::backend::cpu::{CpuArithmetic, CpuBackend};
use rocmforge_model::backend::KvDtype;
use rocmforge_model::config::{Architecture, ModelConfig};
use rocmforge_model::generate::{
    FinishReason, GenerateOptions, Generator, SamplingParams, TokenStream,
};
use rocmforge_model::gguf::{require_demo_model, GgufFile, GgufValue, GgufWriter};
use rocmforge_model::kv_cache::KvCacheOptions;
use rocmforge_model::model::{BatchSequence, Logits, Model};
use rocmforge_model::ModelError;

fn demo_file() -> Arc<GgufFile> {
    static FILE: OnceLock<Arc<GgufFile>> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = require_demo_model().unwrap_or_else(|e| panic!("{e}"));
        Arc::new(GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    })
    .clone()
}

/// The demo model cut to its first `n_layers` layers, with `edit` applied to the writer
/// (metadata changes) and the tensors named in `drop` left out.
fn cut_model(n_layers: usize, drop: &[&str], edit: impl FnOnce(&mut GgufWriter<'_>)) -> GgufFile {
    let demo = demo_file();
    let mut w = GgufWriter::new();
    w.add_all(demo.metadata()).unwrap();
    w.set("llama.block_count", n_layers as u32).unwrap();
    for t in demo.tensors() {
        let layer = t
            .name()
            .strip_prefix("blk.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse::<usize>().ok());
        if layer.is_some_and(|l| l >= n_layers) || drop.contains(&t.name()) {
            continue;
        }
        w.add_tensor(t.name(), t.ty(), t.dims(), t.data()).unwrap();
    }
    edit(&mut w);
    GgufFile::from_vec(w.to_vec().unwrap()).unwrap()
}

/// The 2-layer model, loaded once.
fn small() -> &'static Generator<CpuBackend> {
    static GEN: OnceLock<Generator<CpuBackend>> = OnceLock::new();
    GEN.get_or_init(|| Generator::load(cut_model(2, &[], |_| {}), CpuBackend::new()).unwrap())
}

/// The full demo model, loaded once.
fn full() -> &'static Generator<CpuBackend> {
    static GEN: OnceLock<Generator<CpuBackend>> = OnceLock::new();
    GEN.get_or_init(|| Generator::load(demo_file(), CpuBackend::new()).unwrap())
}

fn ctx(n: usize) -> KvCacheOptions {
    KvCacheOptions::with_n_ctx(n)
}

fn collect(stream: TokenStream<'_, '_, CpuBackend>) -> (Vec<u32>, String, FinishReason) {
    let c = stream.finish();
    (c.ids, c.text, c.finish)
}

// ------------------------------------------------------------------------- bad input

#[test]
fn config_of_the_demo_model() {
    let c = ModelConfig::from_gguf(&demo_file()).unwrap();
    assert_eq!(c.arch, Architecture::Llama);
    assert_eq!(
        (
            c.n_layers,
            c.n_embd,
            c.n_ff,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim
        ),
        (30, 576, 1536, 9, 3, 64)
    );
    assert_eq!((c.n_vocab, c.n_ctx_train, c.n_rot), (49152, 8192, 64));
    assert_eq!(
        (c.rope_freq_base, c.rope_freq_scale, c.rms_eps),
        (100000.0, 1.0, 1e-5)
    );
    assert!(c.tied_output && !c.qkv_bias && !c.has_rope_freqs);
}

#[test]
fn unsupported_architecture_is_an_error_naming_it() {
    let file = cut_model(2, &[], |w| {
        w.set("general.architecture", "gpt2").unwrap();
    });
    let err = Model::load(file, CpuBackend::new()).unwrap_err();
    assert!(
        matches!(&err, ModelError::UnsupportedArchitecture { arch } if arch == "gpt2"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("'gpt2'") && msg.contains("general.architecture"),
        "{msg}"
    );
}

#[test]
fn missing_tensor_is_an_error_naming_it() {
    for name in [
        "blk.1.ffn_down.weight",
        "blk.0.attn_norm.weight",
        "output_norm.weight",
        "token_embd.weight",
    ] {
        let file = cut_model(2, &[name], |_| {});
        let err = Model::load(file, CpuBackend::new()).unwrap_err();
        assert!(
            matches!(&err, ModelError::MissingTensor { name: n, .. } if n == name),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    // A layer the block count promises but the file lacks.
    let file = cut_model(2, &[], |w| {
        w.set("llama.block_count", 3u32).unwrap();
    });
    let err = Model::load(file, CpuBackend::new()).unwrap_err();
    assert!(err.to_string().contains("blk.2."), "{err}");
}

#[test]
fn inconsistent_hyper_parameters_are_errors() {
    // 576 / 7 is not an integer head dimension.
    let file = cut_model(2, &[], |w| {
        w.set("llama.attention.head_count", 7u32).unwrap();
    });
    let err = Model::load(file, CpuBackend::new()).unwrap_err();
    assert!(matches!(err, ModelError::InvalidConfig(_)), "{err:?}");
    assert!(err.to_string().contains("head_count"), "{err}");

    // 9 query heads cannot share 4 KV heads evenly.
    let file = cut_model(2, &[], |w| {
        w.set("llama.attention.head_count_kv", 4u32).unwrap();
    });
    let err = Model::load(file, CpuBackend::new()).unwrap_err();
    assert!(err.to_string().contains("head_count_kv"), "{err}");

    // 8 heads of 72: attn_k should be [576, 216] but is [576, 192].
    let file = cut_model(2, &[], |w| {
        w.set("llama.attention.head_count", 8u32).unwrap();
        w.set("llama.attention.head_count_kv", 4u32).unwrap();
        w.set("llama.rope.dimension_count", 72u32).unwrap();
    });
    let err = Model::load(file, CpuBackend::new()).unwrap_err();
    assert!(
        matches!(&err, ModelError::TensorShape { name, .. } if name == "blk.0.attn_k.weight"),
        "{err:?}"
    );

    // A missing required key names the key.
    let file = cut_model(2, &[], |w| {
        w.remove("llama.attention.layer_norm_rms_epsilon");
    });
    let err = Model::load(file, CpuBackend::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("llama.attention.layer_norm_rms_epsilon"),
        "{err}"
    );

    // YaRN is not implemented: said so, not ignored.
    let file = cut_model(2, &[], |w| {
        w.add("llama.rope.scaling.type", GgufValue::from("yarn"))
            .unwrap();
    });
    let err = Model::load(file, CpuBackend::new()).unwrap_err();
    assert!(
        matches!(err, ModelError::UnsupportedFeature(ref m) if m.contains("yarn")),
        "{err:?}"
    );
}

#[test]
fn prompt_longer_than_the_context_is_an_error_and_the_session_stays_usable() {
    let gen = small();
    let prompt = gen
        .encode("one two three four five six seven eight nine ten eleven twelve")
        .unwrap();
    assert!(prompt.len() > 8);
    let mut session = gen.session(&ctx(8)).unwrap();
    let err = session
        .generate(&prompt, GenerateOptions::greedy(4))
        .err()
        .expect("a prompt longer than the context is an error");
    assert!(
        matches!(
            err,
            ModelError::ContextOverflow {
                cached: 0,
                n_ctx: 8,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("context"), "{err}");
    assert!(session.tokens().is_empty() && session.cache().is_empty());

    // A prompt that fits still works; generation stops when the context is full.
    let (ids, _, finish) = collect(
        session
            .generate(&prompt[..5], GenerateOptions::greedy(100))
            .unwrap(),
    );
    assert_eq!(finish, FinishReason::ContextFull);
    assert_eq!(
        ids.len(),
        4,
        "8 positions: 5 prompt + 3 fed + the last sampled"
    );
    assert_eq!(session.cache().len(), 8);

    // An empty prompt on an empty sequence, and out-of-vocabulary ids, are errors too.
    let mut fresh = gen.session(&ctx(8)).unwrap();
    assert!(matches!(
        fresh.generate(&[], GenerateOptions::greedy(1)).err(),
        Some(ModelError::EmptyInput(_))
    ));
    assert!(matches!(
        fresh.feed(&[1, 49152]),
        Err(ModelError::InvalidToken {
            id: 49152,
            index: 1,
            ..
        })
    ));
}

#[test]
fn absurd_context_length_is_an_error_not_an_abort() {
    let gen = small();
    assert!(gen.session(&ctx(0)).is_err());
    let err = gen.session(&ctx(usize::MAX / 4)).unwrap_err();
    assert!(!err.to_string().is_empty());
}

// ---------------------------------------------------------------------------- generation

fn sampled(seed: u64) -> GenerateOptions {
    GenerateOptions {
        max_tokens: 24,
        sampling: SamplingParams {
            temperature: 0.9,
            top_k: 50,
            top_p: 0.95,
            min_p: 0.02,
            repeat_penalty: 1.1,
            seed,
            ..SamplingParams::default()
        },
        stop_on_eog: false,
        ..GenerateOptions::default()
    }
}

#[test]
fn same_seed_same_output() {
    let gen = small();
    let prompt = gen.encode("Once upon a time").unwrap();
    let run = |seed| {
        let mut s = gen.session(&ctx(64)).unwrap();
        collect(s.generate(&prompt, sampled(seed)).unwrap())
    };
    let (a, text_a, _) = run(7);
    let (b, text_b, _) = run(7);
    assert_eq!(a, b);
    assert_eq!(text_a, text_b);
    assert_eq!(a.len(), 24);
    let others: Vec<_> = (8..12).map(|s| run(s).0).collect();
    assert!(
        others.iter().any(|o| o != &a),
        "different seeds should give different samples"
    );
}

#[test]
fn stop_strings_cut_the_text_and_stream_it_whole() {
    let gen = full();
    // Greedy continuation of case 0 of the reference: " there was a wise old woman named
    // Elara. She was ..." (its first 5 tokens are margin-safe).
    let prompt = gen
        .encode("Once upon a time, in a small village by the sea,")
        .unwrap();
    let mut session = gen.session(&ctx(128)).unwrap();
    let options = GenerateOptions {
        stop_strings: vec!["old".into(), "zzz".into()],
        ..GenerateOptions::greedy(20)
    };
    let mut streamed = String::new();
    let completion = session
        .generate_with(&prompt, options, |t| {
            streamed.push_str(&t.text);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(completion.finish, FinishReason::StopString("old".into()));
    assert_eq!(completion.text, " there was a wise ");
    assert_eq!(streamed, completion.text);
    // " there", " was", " a", " wise", " old": the token completing the stop string is
    // still reported.
    assert_eq!(completion.ids, vec![665, 436, 253, 9357, 1573]);

    // A stop string spanning tokens, and held-back text released when it does not match.
    let mut session = gen.session(&ctx(128)).unwrap();
    let options = GenerateOptions {
        stop_strings: vec!["a wise".into(), " there was the".into()],
        ..GenerateOptions::greedy(20)
    };
    let mut pieces = Vec::new();
    let completion = session
        .generate_with(&prompt, options, |t| {
            pieces.push(t.text.clone());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(completion.finish, FinishReason::StopString("a wise".into()));
    assert_eq!(completion.text, " there was ");
    assert_eq!(pieces.concat(), completion.text);
    // " there" and " was" wait for " there was the" to be ruled out.
    assert_eq!(pieces[0], "");
}

#[test]
fn cancellation_and_max_tokens() {
    let gen = small();
    let prompt = gen.encode("The capital of France is").unwrap();

    // A flag set after 3 tokens stops before the 4th.
    let cancel = Arc::new(AtomicBool::new(false));
    let options = GenerateOptions {
        cancel: Some(cancel.clone()),
        stop_on_eog: false,
        ..GenerateOptions::greedy(50)
    };
    let mut session = gen.session(&ctx(64)).unwrap();
    let mut stream = session.generate(&prompt, options).unwrap();
    let mut n = 0;
    for token in stream.by_ref() {
        token.unwrap();
        n += 1;
        if n == 3 {
            cancel.store(true, Ordering::Relaxed);
        }
    }
    assert_eq!(n, 3);
    assert_eq!(stream.finish_reason(), Some(&FinishReason::Cancelled));

    // The callback form.
    let mut session = gen.session(&ctx(64)).unwrap();
    let mut n = 0;
    let c = session
        .generate_with(
            &prompt,
            GenerateOptions {
                stop_on_eog: false,
                ..GenerateOptions::greedy(50)
            },
            |_| {
                n += 1;
                if n == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
    assert_eq!((c.ids.len(), c.finish), (5, FinishReason::Cancelled));

    // max_tokens, and 0 tokens.
    let mut session = gen.session(&ctx(64)).unwrap();
    let c = session
        .generate_with(&prompt, GenerateOptions::greedy(0), |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!((c.ids.len(), c.finish), (0, FinishReason::MaxTokens));
    let c = session
        .generate_with(
            &[],
            GenerateOptions {
                stop_on_eog: false,
                ..GenerateOptions::greedy(6)
            },
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
    assert_eq!((c.ids.len(), c.finish), (6, FinishReason::MaxTokens));
    assert_eq!(c.stats.generated_tokens, 6);
    assert_eq!(c.stats.decode_steps, 5);
}

#[test]
fn stops_on_end_of_generation_and_reports_it() {
    let gen = full();
    // Case 3 of the reference stops on <|im_end|> (id 2) after 23 tokens.
    let prompt = gen.encode("Here is a list of three fruits:\n1.").unwrap();
    let mut session = gen.session(&ctx(128)).unwrap();
    let c = session
        .generate_with(&prompt, GenerateOptions::greedy(48), |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(c.finish, FinishReason::EndOfGeneration(2));
    assert_eq!(c.ids.last(), Some(&2));
    assert!(!c.text.contains("<|im_end|>"));
}

#[test]
fn continuing_a_sequence_equals_generating_at_once() {
    let gen = small();
    let prompt = gen.encode("The best way to learn").unwrap();
    let opts = |n| GenerateOptions {
        stop_on_eog: false,
        ..GenerateOptions::greedy(n)
    };
    let mut once = gen.session(&ctx(64)).unwrap();
    let (all, _, _) = collect(once.generate(&prompt, opts(10)).unwrap());

    let mut split = gen.session(&ctx(64)).unwrap();
    let (mut first, _, _) = collect(split.generate(&prompt, opts(4)).unwrap());
    let (second, _, _) = collect(split.generate(&[], opts(6)).unwrap());
    first.extend(second);
    assert_eq!(first, all);
    assert_eq!(split.tokens().len(), prompt.len() + 10);
}

#[test]
fn top_logprobs_are_reported_per_step() {
    let gen = small();
    let prompt = gen.encode("Hello").unwrap();
    let mut session = gen.session(&ctx(32)).unwrap();
    let options = GenerateOptions {
        top_logprobs: 5,
        ..GenerateOptions::greedy(3)
    };
    for token in session.generate(&prompt, options).unwrap() {
        let t = token.unwrap();
        assert_eq!(t.top_logprobs.len(), 5);
        assert_eq!(t.top_logprobs[0].0, t.id, "greedy picks the most likely");
        assert_eq!(t.top_logprobs[0].1, t.logprob);
        assert!(t.top_logprobs.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(t.logprob <= 0.0);
    }
}

// ----------------------------------------------------------------------- several sequences

#[test]
fn batched_forward_equals_one_sequence_at_a_time() {
    let model = small().model();
    let a: Vec<u32> = vec![504, 1797, 1918, 553, 253];
    let b: Vec<u32> = vec![6403, 1980, 253];
    let mut alone_a = model.new_cache(&ctx(32)).unwrap();
    let mut alone_b = model.new_cache(&ctx(16)).unwrap();
    let la = model.forward(&mut alone_a, &a, Logits::All).unwrap();
    let lb = model.forward(&mut alone_b, &b, Logits::Last).unwrap();

    let mut cache_a = model.new_cache(&ctx(32)).unwrap();
    let mut cache_b = model.new_cache(&ctx(16)).unwrap();
    let out = model
        .forward_batch(&mut [
            BatchSequence {
                cache: &mut cache_a,
                tokens: &a,
                logits: Logits::All,
            },
            BatchSequence {
                cache: &mut cache_b,
                tokens: &b,
                logits: Logits::Last,
            },
        ])
        .unwrap();
    assert_eq!(out[0], la, "bit-identical");
    assert_eq!(out[1], lb, "bit-identical");

    // One decode step for both, batched, equals the separate steps.
    let sa = model.forward(&mut alone_a, &[30], Logits::Last).unwrap();
    let sb = model.forward(&mut alone_b, &[28], Logits::Last).unwrap();
    let out = model
        .forward_batch(&mut [
            BatchSequence {
                cache: &mut cache_a,
                tokens: &[30],
                logits: Logits::Last,
            },
            BatchSequence {
                cache: &mut cache_b,
                tokens: &[28],
                logits: Logits::Last,
            },
        ])
        .unwrap();
    assert_eq!((out[0].clone(), out[1].clone()), (sa, sb));
    assert_eq!((cache_a.len(), cache_b.len()), (6, 4));
}

#[test]
fn sessions_on_threads_equal_sequential_sessions() {
    let gen = small();
    let prompts: Vec<Vec<u32>> = ["Once upon a time", "The capital of France is", "def f(x):"]
        .iter()
        .map(|p| gen.encode(p).unwrap())
        .collect();
    let run = |i: usize| {
        let mut s = gen.session(&ctx(64)).unwrap();
        collect(s.generate(&prompts[i], sampled(i as u64)).unwrap()).0
    };
    let sequential: Vec<_> = (0..3).map(run).collect();
    let threaded: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3).map(|i| scope.spawn(move || run(i))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(sequential, threaded);
}

#[test]
fn thread_count_and_chunking_do_not_change_the_logits() {
    let file = Arc::new(cut_model(2, &[], |_| {}));
    let one = Model::load(file.clone(), CpuBackend::with_threads(1).unwrap()).unwrap();
    let default = Model::load(file.clone(), CpuBackend::new()).unwrap();
    let chunked = Model::load_with(
        file,
        CpuBackend::new(),
        rocmforge_model::model::ModelOptions { max_batch: 3 },
        &mut |_| {},
    )
    .unwrap();
    let tokens: Vec<u32> = (100..110).collect();
    let run = |m: &Model<CpuBackend>| {
        let mut c = m.new_cache(&ctx(16)).unwrap();
        m.forward(&mut c, &tokens, Logits::All).unwrap()
    };
    let reference = run(&default);
    assert_eq!(run(&one), reference);
    assert_eq!(run(&chunked), reference);
}

#[test]
fn f16_kv_cache_is_close_to_f32() {
    // The storage precision shows in the exact arithmetic: llama.cpp's (the default) reads
    // keys and values as f16 from either cache, as llama.cpp does.
    let gen = Generator::load(
        cut_model(2, &[], |_| {}),
        CpuBackend::new().with_arithmetic(CpuArithmetic::Exact),
    )
    .unwrap();
    let model = gen.model();
    let tokens: Vec<u32> = (200..216).collect();
    let run = |dtype| {
        let mut c = model.new_cache(&ctx(32).dtype(dtype)).unwrap();
        model.forward(&mut c, &tokens, Logits::Last).unwrap()
    };
    let (a, b) = (run(KvDtype::F32), run(KvDtype::F16));
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max > 0.0 && max < 0.05, "max logit difference {max}");
}

#[test]
fn load_reports_progress() {
    let mut calls = Vec::new();
    let _model = Model::load_with(
        cut_model(2, &[], |_| {}),
        CpuBackend::new(),
        Default::default(),
        &mut |p| calls.push(p),
    )
    .unwrap();
    let last = calls.last().unwrap();
    assert_eq!(last.tensors_done, last.tensors_total);
    assert_eq!(last.bytes_done, last.bytes_total);
    assert_eq!(
        calls.len(),
        2 + 2 * 9,
        "token_embd, output_norm, 9 per layer"
    );
}
