//! Soak: many generate calls on one loaded model leave host memory (RSS) and GPU memory
//! flat. Each call varies the prompt, the length, the sampling and the session (a new
//! one, or one long-lived session reset between calls); every 25th call also takes an
//! error path (a prompt longer than its context) or a cancellation, after which the
//! session must still work. Greedy calls must repeat their first output exactly.
//!
//! Memory is read after call 10 (once caches, kernels and allocator pools are warm) and
//! after the last call; it must not have grown by more than [`RSS_SLACK`] (host) or at
//! all (GPU pool memory handed out).
//!
//! `ROCMFORGE_SOAK_CALLS` sets the number of calls (default: 60 on the CPU, which CI
//! runs; 1,000 on the GPU). Needs the demo model (`scripts/fetch-demo-model.sh`).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Mutex;

use rocmforge_model::backend::cpu::CpuBackend;
use rocmforge_model::backend::hip::HipBackend;
use rocmforge_model::backend::Backend;
use rocmforge_model::generate::{FinishReason, GenerateOptions, Generator, SamplingParams};
use rocmforge_model::gguf::{require_demo_model, GgufFile};
use rocmforge_model::kv_cache::KvCacheOptions;
use rocmforge_model::ModelError;

/// The soak tests measure this process's memory: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Host memory the allocator may still take after warm-up (fragmentation of the
/// per-call vectors; a leak of one logits row per call would exceed it in ~40 calls).
const RSS_SLACK: u64 = 8 << 20;

const PROMPTS: [&str; 5] = [
    "The capital of France is",
    "Once upon a time,",
    "List three colours:",
    "def fibonacci(n):",
    "In 1969, the first",
];

fn calls(default: usize) -> usize {
    std::env::var("ROCMFORGE_SOAK_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of this process, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn demo_file() -> GgufFile {
    let path = require_demo_model().unwrap_or_else(|e| panic!("{e}"));
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Memory readings after call 10 and after the last call.
struct Readings {
    rss: (u64, u64),
    device: (u64, u64),
}

/// Runs `n` varied calls; `device_used` reads the backend's device memory in use.
fn soak<B: Backend>(gen: &Generator<B>, n: usize, device_used: impl Fn() -> u64) -> Readings {
    assert!(n > 10, "at least 11 calls");
    let mut long_lived = gen.session(&KvCacheOptions::with_n_ctx(256)).unwrap();
    let mut greedy_outputs: HashMap<(usize, usize), String> = HashMap::new();
    let mut at_10 = (0, 0);
    for i in 0..n {
        let which = i % PROMPTS.len();
        let prompt = gen.encode(PROMPTS[which]).unwrap();
        let max_tokens = 1 + i % 12;
        let greedy = i % 3 != 0;
        let options = GenerateOptions {
            max_tokens,
            sampling: if greedy {
                SamplingParams::greedy()
            } else {
                SamplingParams {
                    temperature: 0.8,
                    seed: i as u64,
                    ..SamplingParams::default()
                }
            },
            top_logprobs: i % 4,
            stop_strings: vec!["\n\n".into()],
            ..GenerateOptions::default()
        };
        let mut fresh;
        let session = if i % 2 == 0 {
            long_lived.reset();
            &mut long_lived
        } else {
            fresh = gen.session(&KvCacheOptions::with_n_ctx(64)).unwrap();
            &mut fresh
        };
        if i % 25 == 7 {
            // The error path: a prompt longer than the context, then the session again.
            let long: Vec<u32> = prompt.iter().copied().cycle().take(300).collect();
            let err = session.generate(&long, options.clone()).err();
            assert!(
                matches!(err, Some(ModelError::ContextOverflow { .. })),
                "call {i}: {err:?}"
            );
            session.reset();
        }
        let completion = if i % 25 == 13 {
            // Cancelled after the first token.
            let c = session
                .generate_with(&prompt, options, |_| ControlFlow::Break(()))
                .unwrap();
            // Unless that first token ended the call anyway (the last allowed, EOS, a
            // stop string), the reason is the cancellation.
            let natural_end = max_tokens == 1
                || matches!(
                    c.finish,
                    FinishReason::EndOfGeneration(_) | FinishReason::StopString(_)
                );
            assert_eq!(c.ids.len(), 1, "call {i}");
            assert!(
                c.finish == FinishReason::Cancelled || natural_end,
                "call {i}: {:?}",
                c.finish
            );
            c
        } else {
            session
                .generate_with(&prompt, options, |_| ControlFlow::Continue(()))
                .unwrap()
        };
        assert!(!completion.ids.is_empty() && completion.ids.len() <= max_tokens);
        if greedy && i % 25 != 13 {
            let first = greedy_outputs
                .entry((which, max_tokens))
                .or_insert_with(|| completion.text.clone());
            assert_eq!(*first, completion.text, "call {i}: greedy output changed");
        }
        if i == 9 {
            at_10 = (rss_bytes(), device_used());
        }
    }
    drop(long_lived);
    // The long-lived session is gone at the end but was alive at call 10: compare the
    // device memory with it counted at both points.
    let mut again = gen.session(&KvCacheOptions::with_n_ctx(256)).unwrap();
    again.feed(&gen.encode(PROMPTS[0]).unwrap()).unwrap();
    let end = (rss_bytes(), device_used());
    drop(again);
    Readings {
        rss: (at_10.0, end.0),
        device: (at_10.1, end.1),
    }
}

fn check(what: &str, n: usize, r: &Readings) {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    eprintln!(
        "{what}: {n} calls; RSS after call 10 {:.1} MiB, at the end {:.1} MiB; device memory \
         in use {:.1} -> {:.1} MiB",
        mib(r.rss.0),
        mib(r.rss.1),
        mib(r.device.0),
        mib(r.device.1)
    );
    assert!(
        r.rss.1 <= r.rss.0 + RSS_SLACK,
        "{what}: RSS grew by {:.1} MiB",
        mib(r.rss.1.saturating_sub(r.rss.0))
    );
    assert!(
        r.device.1 <= r.device.0,
        "{what}: device memory in use grew by {} bytes",
        r.device.1 - r.device.0
    );
}

#[test]
fn cpu_generate_calls_keep_memory_flat() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gen = Generator::load(demo_file(), CpuBackend::new()).unwrap();
    let n = calls(60);
    let r = soak(&gen, n, || 0);
    check("cpu", n, &r);
}

#[test]
#[ignore = "needs a GPU"]
fn gpu_generate_calls_keep_memory_flat() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let backend = HipBackend::new(0).unwrap_or_else(|e| panic!("{e}"));
    let device = backend.device().clone();
    let gen = Generator::load(demo_file(), backend).unwrap();
    let n = calls(1000);
    let r = soak(&gen, n, || device.pool_usage().unwrap().0);
    check("gpu", n, &r);
}
