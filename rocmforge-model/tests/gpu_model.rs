//! The model on the GPU (HIP backend), against the CPU backend and llama.cpp's reference.
//! Run on the GPU host (`scripts/gpu-bundle.sh`, docs/verification.md); ignored elsewhere.
//!
//! * The demo model: llama.cpp's reference generations, with the checks of the CPU
//!   reference test (`tests/model_reference.rs`), and the GPU's logits against the CPU's
//!   on the same file (teacher-forced prefill, and one-token decode steps).
//! * Synthetic one-layer models with random weights at real widths (Llama-3-8B: 4096 wide, FFN
//!   14336, 32 query / 8 KV heads of 128; Qwen2-7B: 3584, 18944, 28 / 4 heads, biases) in
//!   every weight type the GPU implements: GPU logits against CPU logits.
//! * Bad input on the GPU: out of memory while loading and for a KV cache, a prompt longer
//!   than the context — clear errors, and the GPU stays usable.

mod common;

use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use common::reference::{cases, run_case};
use common::synthetic_model::{write_model, Spec};
use rocmforge_model::backend::cpu::{CpuArithmetic, CpuBackend};
use rocmforge_model::backend::hip::{GpuArithmetic, HipBackend};
use rocmforge_model::backend::{Backend, KvDtype};
use rocmforge_model::generate::{log_sum_exp, Generator};
use rocmforge_model::gguf::{require_demo_model, GgmlType, GgufFile};
use rocmforge_model::kernels::hip::{DeviceBuffer, DeviceMemory};
use rocmforge_model::kv_cache::KvCacheOptions;
use rocmforge_model::model::{Logits, Model};
use rocmforge_model::ModelError;

/// The CPU backend in its exact arithmetic: the reference the GPU kernels are checked
/// against (its default, llama.cpp-compatible arithmetic rounds differently on purpose).
/// The out-of-memory test fills the GPU; the tests of this binary run in parallel in one
/// process. Every test holds this lock shared, that one alone.
static GPU_MEMORY: RwLock<()> = RwLock::new(());

fn shared_gpu() -> RwLockReadGuard<'static, ()> {
    GPU_MEMORY.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive_gpu() -> RwLockWriteGuard<'static, ()> {
    GPU_MEMORY.write().unwrap_or_else(|e| e.into_inner())
}

fn exact_cpu() -> CpuBackend {
    CpuBackend::new().with_arithmetic(CpuArithmetic::Exact)
}

fn demo_file() -> GgufFile {
    let path = require_demo_model().unwrap_or_else(|e| panic!("{e}"));
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn gpu_generator() -> &'static Generator<HipBackend> {
    static GEN: OnceLock<Generator<HipBackend>> = OnceLock::new();
    GEN.get_or_init(|| {
        let backend = HipBackend::new(0).unwrap_or_else(|e| panic!("{e}"));
        Generator::load(demo_file(), backend).unwrap_or_else(|e| panic!("loading: {e}"))
    })
}

/// The demo model on the GPU in exact arithmetic (`f32` activations everywhere).
fn gpu_exact_generator() -> &'static Generator<HipBackend> {
    static GEN: OnceLock<Generator<HipBackend>> = OnceLock::new();
    GEN.get_or_init(|| {
        let backend = HipBackend::new(0)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_arithmetic(GpuArithmetic::Exact);
        Generator::load(demo_file(), backend).unwrap_or_else(|e| panic!("loading: {e}"))
    })
}

fn cpu_generator() -> &'static Generator<CpuBackend> {
    static GEN: OnceLock<Generator<CpuBackend>> = OnceLock::new();
    GEN.get_or_init(|| {
        Generator::load(demo_file(), exact_cpu()).unwrap_or_else(|e| panic!("loading: {e}"))
    })
}

/// Largest |a - b| over two logit vectors, and the largest |b|.
fn max_diff(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold((0.0f64, 0.0f64), |(d, m), (&x, &y)| {
        (
            d.max((f64::from(x) - f64::from(y)).abs()),
            m.max(f64::from(y).abs()),
        )
    })
}

/// Largest difference of probabilities (softmax) between two logit rows.
fn max_prob_diff(a: &[f32], b: &[f32]) -> f64 {
    let (la, lb) = (log_sum_exp(a), log_sum_exp(b));
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ((f64::from(x) - la).exp() - (f64::from(y) - lb).exp()).abs())
        .fold(0.0, f64::max)
}

/// Largest difference of log-probabilities (log-softmax) between two logit rows.
fn max_logprob_diff(a: &[f32], b: &[f32]) -> f64 {
    let (la, lb) = (log_sum_exp(a), log_sum_exp(b));
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ((f64::from(x) - la) - (f64::from(y) - lb)).abs())
        .fold(0.0, f64::max)
}

#[test]
#[ignore = "needs a GPU"]
fn demo_model_greedy_generation_matches_llama_cpp_on_the_gpu() {
    let _gpu = shared_gpu();
    // Exact arithmetic, held to the rule the CPU's exact arithmetic is held to (see
    // tests/model_reference.rs). In the default arithmetic, decode steps round activations
    // to 8 bits while the teacher-forced prefill does not, so free-running generation
    // leaves llama.cpp's at near-ties the teacher-forced check cannot see (0.17 nats
    // measured); llama.cpp's own arithmetic on the GPU is checked by
    // `ggml_compatible_arithmetic_matches_llama_cpp_on_the_gpu`.
    let gen = gpu_exact_generator();
    let cases = cases();
    assert_eq!(cases.len(), 6, "the public reference has 6 cases");
    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let t0 = Instant::now();
        let o = run_case(gen, n, case, &mut failures);
        let strict = o.ids_matched >= case.compare_until && o.max_diff <= 0.02;
        eprintln!(
            "gpu case {n}: generated ids equal for {}/{} steps; teacher-forced argmax = \
             llama.cpp's at {}/{}; top-5 prob diff max {:.4}, mean {:.4}; strict criterion {}; \
             {:.2} s",
            o.ids_matched,
            case.generated_ids.len(),
            o.argmax_agree,
            case.generated_ids.len(),
            o.max_diff,
            o.mean_diff,
            if strict { "met" } else { "not met" },
            t0.elapsed().as_secs_f64()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// GPU and CPU logits on the demo model: a teacher-forced prefill of each reference case
/// (every position), then decode steps one token at a time (the GPU's matrix × vector and
/// split decode-attention kernels), with f32 and f16 KV caches.
///
/// * The GPU in exact arithmetic against the CPU's: every log-probability of the
///   vocabulary within 0.02 (measured: 2e-4 with an f32 cache, 7e-3 with f16, where the
///   two round the cache the same way but sum in another order).
/// * The GPU's default arithmetic (8-bit activations in decode steps, as llama.cpp's CUDA
///   backend): every probability within 0.1 of the exact CPU's (0.052 measured). Over the
///   whole vocabulary log-probabilities of unlikely tokens move by more (up to 0.7
///   measured on this model, whose activations have outliers that 8-bit blocks round
///   coarsely).
#[test]
#[ignore = "needs a GPU"]
fn demo_model_gpu_logits_match_cpu() {
    let _gpu = shared_gpu();
    let cpu = cpu_generator().model();
    let n_vocab = cpu.n_vocab();
    let fast = gpu_generator().model();
    let exact = gpu_exact_generator().model();
    let (mut worst_exact, mut worst_fast) = (0.0f64, 0.0f64);
    for dtype in [KvDtype::F32, KvDtype::F16] {
        for (n, case) in cases().iter().enumerate().take(3) {
            let mut tokens = case.prompt_ids.clone();
            tokens.extend_from_slice(&case.generated_ids[..8]);
            let (prefill, decode) = tokens.split_at(case.prompt_ids.len());
            let opts = KvCacheOptions::with_n_ctx(128).dtype(dtype);
            let run = |model: &Model<_>| {
                let mut cache = model.new_cache(&opts).unwrap();
                let mut out = model.forward(&mut cache, prefill, Logits::All).unwrap();
                for &t in decode {
                    out.extend(model.forward(&mut cache, &[t], Logits::Last).unwrap());
                }
                out
            };
            let c = {
                let mut cache = cpu.new_cache(&opts).unwrap();
                let mut out = cpu.forward(&mut cache, prefill, Logits::All).unwrap();
                for &t in decode {
                    out.extend(cpu.forward(&mut cache, &[t], Logits::Last).unwrap());
                }
                out
            };
            let (e, f) = (run(exact), run(fast));
            let rows = || c.chunks(n_vocab).enumerate();
            for (row, cr) in rows() {
                let er = &e[row * n_vocab..][..n_vocab];
                let fr = &f[row * n_vocab..][..n_vocab];
                let (de, df) = (max_logprob_diff(er, cr), max_prob_diff(fr, cr));
                worst_exact = worst_exact.max(de);
                worst_fast = worst_fast.max(df);
                assert!(
                    de <= 0.02,
                    "exact: case {n} ({dtype:?} cache) row {row}: log-probabilities differ by {de}"
                );
                assert!(
                    df <= 0.1,
                    "fast: case {n} ({dtype:?} cache) row {row}: probabilities differ by {df}"
                );
            }
        }
    }
    eprintln!(
        "demo model vs exact CPU: exact GPU max |Δ log p| {worst_exact:.2e}; \
         fast GPU max |Δ p| {worst_fast:.2e}"
    );
}

/// Llama-3-8B widths with one layer (vocabulary 32,000 to bound the CPU side's time).
fn llama3_8b_shape(ty: GgmlType) -> Spec {
    Spec {
        arch: "llama",
        n_layers: 1,
        n_embd: 4096,
        n_ff: 14336,
        n_heads: 32,
        n_kv_heads: 8,
        n_rot: 128,
        n_vocab: 32000,
        matrix_type: ty,
        tied: false,
        rope_freqs: true,
        scaling_factor: None,
        bias: false,
    }
}

/// Qwen2-7B widths with one layer: Q/K/V biases, NeoX RoPE, 7 query heads per KV head.
fn qwen2_7b_shape(ty: GgmlType) -> Spec {
    Spec {
        arch: "qwen2",
        n_layers: 1,
        n_embd: 3584,
        n_ff: 18944,
        n_heads: 28,
        n_kv_heads: 4,
        n_rot: 128,
        n_vocab: 32000,
        matrix_type: ty,
        tied: true,
        rope_freqs: false,
        scaling_factor: None,
        bias: true,
    }
}

/// GPU vs CPU logits of a synthetic model: a prefill of 9 tokens (every position) and 3
/// decode steps. Returns the largest difference relative to the largest logit.
fn compare_gpu_cpu(spec: &Spec, arithmetic: GpuArithmetic) -> f64 {
    let t0 = Instant::now();
    let file = std::sync::Arc::new(write_model(spec, None));
    let backend = HipBackend::new(0).unwrap().with_arithmetic(arithmetic);
    let gpu = Model::load(file.clone(), backend).unwrap();
    let cpu = Model::load(file, exact_cpu()).unwrap();
    let n_vocab = spec.n_vocab as u32;
    let tokens: Vec<u32> = (0..12u32).map(|i| (i * 7919 + 13) % n_vocab).collect();
    let (prefill, decode) = tokens.split_at(9);
    let opts = KvCacheOptions::with_n_ctx(32);
    let (mut gc, mut cc) = (gpu.new_cache(&opts).unwrap(), cpu.new_cache(&opts).unwrap());
    let mut g = gpu.forward(&mut gc, prefill, Logits::All).unwrap();
    let mut c = cpu.forward(&mut cc, prefill, Logits::All).unwrap();
    for &t in decode {
        g.extend(gpu.forward(&mut gc, &[t], Logits::Last).unwrap());
        c.extend(cpu.forward(&mut cc, &[t], Logits::Last).unwrap());
    }
    let (d, m) = max_diff(&g, &c);
    assert!(m > 0.5, "{spec:?}: logits too small to be a test");
    let rel = d / m;
    eprintln!(
        "{} {:?} {arithmetic:?}: max |Δ logit| {d:.3e} of max |logit| {m:.2} (relative {rel:.2e}), {:.1} s",
        spec.arch,
        spec.matrix_type,
        t0.elapsed().as_secs_f64()
    );
    rel
}

#[test]
#[ignore = "needs a GPU"]
fn synthetic_real_shape_models_gpu_matches_cpu_in_every_weight_type() {
    let _gpu = shared_gpu();
    let mut failures = Vec::new();
    // Exact: f32 rounding only (measured ~3e-6). Fast: the decode rows' activations are
    // rounded to 8 bits before each quantized product.
    let limits = [(GpuArithmetic::Exact, 1e-4), (GpuArithmetic::Fast, 3e-2)];
    for ty in rocmforge_model::kernels::gpu::GPU_WEIGHT_TYPES {
        for (arithmetic, limit) in limits {
            let rel = compare_gpu_cpu(&llama3_8b_shape(ty), arithmetic);
            if rel > limit {
                failures.push(format!(
                    "llama {ty:?} {arithmetic:?}: relative logit difference {rel:.2e}"
                ));
            }
        }
    }
    for ty in [GgmlType::Q4_K, GgmlType::Q8_0] {
        for (arithmetic, limit) in limits {
            let rel = compare_gpu_cpu(&qwen2_7b_shape(ty), arithmetic);
            if rel > limit {
                failures.push(format!(
                    "qwen2 {ty:?} {arithmetic:?}: relative logit difference {rel:.2e}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[ignore = "needs a GPU"]
fn out_of_gpu_memory_is_an_error_and_the_gpu_stays_usable() {
    let _gpu = exclusive_gpu();
    let backend = HipBackend::new(0).unwrap();
    let free = backend.available_memory().unwrap();

    // Activations far larger than the card.
    match backend.alloc(free / 2) {
        Err(ModelError::OutOfDeviceMemory { what, .. }) => assert_eq!(what, "activations"),
        other => panic!("expected OutOfDeviceMemory, got {other:?}"),
    }

    // A KV cache larger than the free memory: refused before allocating.
    let model = Model::load(demo_file(), backend).unwrap();
    let huge = KvCacheOptions::with_n_ctx(50_000_000);
    let err = model.new_cache(&huge).unwrap_err();
    assert!(
        matches!(err, ModelError::OutOfDeviceMemory { .. }),
        "expected OutOfDeviceMemory, got {err}"
    );
    eprintln!("KV cache too large: {err}");

    // Loading weights into a nearly full GPU: occupy all but 32 MiB, then load the demo
    // model (94 MiB of weights) — an error naming a weight; after freeing, it loads.
    let device = model.backend().device().clone();
    let stream = model.backend().stream().clone();
    let left = 32 << 20;
    let hog_len = model
        .backend()
        .available_memory()
        .unwrap()
        .saturating_sub(left);
    let hog = DeviceBuffer::<u8>::alloc(&stream, hog_len).unwrap();
    stream.synchronize().unwrap();
    let err = Model::load(demo_file(), HipBackend::on_device(&device).unwrap()).unwrap_err();
    match &err {
        ModelError::OutOfDeviceMemory { what, .. } => assert!(what.contains("weight"), "{err}"),
        other => panic!("expected OutOfDeviceMemory while loading, got {other}"),
    }
    eprintln!("loading into a full GPU: {err}");
    assert!(hog.len() == hog_len);
    drop(hog);
    stream.synchronize().unwrap();

    // The GPU is usable: the same model loads and runs.
    let again = Model::load(demo_file(), HipBackend::on_device(&device).unwrap()).unwrap();
    let mut cache = again.new_cache(&KvCacheOptions::with_n_ctx(64)).unwrap();
    let logits = again.forward(&mut cache, &[1, 2, 3], Logits::Last).unwrap();
    assert!(logits.iter().all(|x| x.is_finite()));
}

#[test]
#[ignore = "needs a GPU"]
fn prompt_longer_than_the_context_is_an_error_on_the_gpu() {
    let _gpu = shared_gpu();
    let model = gpu_generator().model();
    let mut cache = model.new_cache(&KvCacheOptions::with_n_ctx(16)).unwrap();
    let tokens: Vec<u32> = (0..17).collect();
    let err = model
        .forward(&mut cache, &tokens, Logits::Last)
        .unwrap_err();
    assert!(matches!(err, ModelError::ContextOverflow { .. }), "{err}");
    // Nothing was written: the cache still takes 16 tokens.
    assert_eq!(cache.len(), 0);
    model
        .forward(&mut cache, &tokens[..16], Logits::Last)
        .unwrap();
    let err = model.forward(&mut cache, &[5], Logits::Last).unwrap_err();
    assert!(matches!(err, ModelError::ContextOverflow { .. }), "{err}");
    let err = model
        .forward(&mut cache, &[u32::MAX], Logits::Last)
        .unwrap_err();
    assert!(matches!(err, ModelError::InvalidToken { .. }), "{err}");
}

/// One-token decode steps replay a recorded graph (positions read from device memory);
/// the same tokens through the unrecorded path (`Logits::All` takes the batch path) give
/// the same logits — over 300 positions (several attention splits of a 2048-position
/// cache), for two caches decoding in turn, and after `clear` (the recording is reused at
/// position 0 again).
#[test]
#[ignore = "needs a GPU"]
fn recorded_decode_steps_equal_unrecorded_ones() {
    let _gpu = shared_gpu();
    let model = gpu_generator().model();
    let opts = KvCacheOptions::with_n_ctx(2048).dtype(KvDtype::F16);
    let (mut a, mut b, mut reference) = (
        model.new_cache(&opts).unwrap(),
        model.new_cache(&opts).unwrap(),
        model.new_cache(&opts).unwrap(),
    );
    let mut worst = 0.0f64;
    for round in 0..2 {
        for step in 0..300u32 {
            let t = (step * 7919 + 17) % 49152;
            let recorded = model.forward(&mut a, &[t], Logits::Last).unwrap();
            let other = model
                .forward(&mut b, &[(t + 1) % 49152], Logits::Last)
                .unwrap();
            let plain = model.forward(&mut reference, &[t], Logits::All).unwrap();
            assert!(other.iter().all(|x| x.is_finite()));
            let (d, m) = max_diff(&recorded, &plain);
            worst = worst.max(d / m.max(1.0));
            assert!(
                d <= 1e-3 * m.max(1.0),
                "round {round} step {step}: recorded and plain decode differ by {d}"
            );
        }
        a.clear();
        b.clear();
        reference.clear();
    }
    eprintln!("recorded vs plain decode: max relative difference {worst:.2e}");
}

/// Several sequences in one forward pass on the GPU give what each gives alone (to f32
/// rounding: the batch takes the tiled product where a lone sequence takes matrix × vector).
#[test]
#[ignore = "needs a GPU"]
fn batched_sequences_on_the_gpu_equal_separate_runs() {
    let _gpu = shared_gpu();
    use rocmforge_model::model::BatchSequence;
    // Exact arithmetic: in the default one, a prompt of up to 8 tokens takes the 8-bit
    // path and a longer batch the f32 one, which round differently by design.
    let model = gpu_exact_generator().model();
    let opts = KvCacheOptions::with_n_ctx(64);
    let prompts: [&[u32]; 3] = [&[1, 9, 400, 77], &[5000, 3, 12], &[42, 42, 42, 42, 42, 7]];
    let mut alone = Vec::new();
    for p in prompts {
        let mut c = model.new_cache(&opts).unwrap();
        let mut l = model.forward(&mut c, p, Logits::Last).unwrap();
        l.extend(model.forward(&mut c, &[11], Logits::Last).unwrap());
        alone.push(l);
    }
    let mut caches: Vec<_> = prompts
        .iter()
        .map(|_| model.new_cache(&opts).unwrap())
        .collect();
    let mut seqs: Vec<BatchSequence<'_, HipBackend>> = caches
        .iter_mut()
        .zip(prompts)
        .map(|(cache, tokens)| BatchSequence {
            cache,
            tokens,
            logits: Logits::Last,
        })
        .collect();
    let mut batched = model.forward_batch(&mut seqs).unwrap();
    drop(seqs);
    let mut seqs: Vec<BatchSequence<'_, HipBackend>> = caches
        .iter_mut()
        .map(|cache| BatchSequence {
            cache,
            tokens: &[11],
            logits: Logits::Last,
        })
        .collect();
    for (b, step) in batched
        .iter_mut()
        .zip(model.forward_batch(&mut seqs).unwrap())
    {
        b.extend(step);
    }
    for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
        let (d, m) = max_diff(b, a);
        assert!(
            d <= 1e-4 * m.max(1.0),
            "sequence {i}: batched differs by {d}"
        );
    }
}

/// Generation on the GPU is deterministic: the same seed gives the same tokens.
#[test]
#[ignore = "needs a GPU"]
fn sampling_on_the_gpu_is_reproducible() {
    let _gpu = shared_gpu();
    use rocmforge_model::generate::{GenerateOptions, SamplingParams};
    let gen = gpu_generator();
    let prompt = gen.encode("The weather today is").unwrap();
    let run = || {
        let mut session = gen.session(&KvCacheOptions::with_n_ctx(128)).unwrap();
        let options = GenerateOptions {
            max_tokens: 24,
            sampling: SamplingParams {
                temperature: 0.8,
                seed: 1234,
                ..SamplingParams::default()
            },
            ..GenerateOptions::default()
        };
        session
            .generate_with(&prompt, options, |_| std::ops::ControlFlow::Continue(()))
            .unwrap()
            .ids
    };
    assert_eq!(run(), run());
}

/// The GPU in llama.cpp's CPU arithmetic ([`GpuArithmetic::GgmlCompatible`]).
///
/// First its kernels against the CPU's `ggml_compat` functions (the reproduction of
/// llama.cpp's AVX2 build that `tests/model_reference.rs` holds to the strict criterion), on
/// random inputs with halves that test the rounding:
///
/// * 8-bit activations (Q8_1 and Q8_0), their round trip `q · d`, and the products with
///   Q4_1 / Q5_1 / Q8_0 weights: equal to the bit;
/// * SwiGLU (`ggml_v_expf`, and glibc's `expf` in the scalar remainder) equal to the bit;
/// * RoPE (angles from the host, as the CPU computes them) equal to the bit; RMSNorm
///   within 2 ulp of the largest value (its `f64` sum in another order);
/// * attention over an f16 cache, each of llama.cpp's paths (one row at a time, split over
///   the cache, tiled): equal to the bit (a difference is reported with the model's
///   results at the end; within 1e-3 of the largest output is asserted at once).
///
/// Then the demo model against llama.cpp's reference with the strict criterion: greedy ids
/// equal up to `first_step_margin_below_0.05` and every top-5 probability within 0.02, with
/// llama.cpp's tokens fed as llama-server fed them (the prompt in one batch, then one token
/// per step: [`common::reference::teacher_forced`]).
#[test]
#[ignore = "needs a GPU"]
fn ggml_compatible_arithmetic_matches_llama_cpp_on_the_gpu() {
    let _gpu = shared_gpu();
    use half::f16;
    use rocmforge_model::backend::ggml_compat::{activation, flash_attn, matmul, quantize, rope};
    use rocmforge_model::backend::{RopeMode, RopeSpec};
    use rocmforge_model::kernels::cpu::{
        self as kcpu, AttentionParams, KvCacheShape, WeightMatrix,
    };
    use rocmforge_model::kernels::gpu::{GgmlCompatOps, GgmlQ8Kind, KernelLoader, RopeConfig};
    use rocmforge_model::kernels::hip::{DeviceSlice, Stream};

    /// A deterministic pseudo-random sequence.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Uniform in [-1, 1).
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }
    fn upload<T: bytemuck::Pod>(stream: &Stream, data: &[T]) -> DeviceBuffer<T> {
        DeviceBuffer::from_slice(stream, data).expect("upload")
    }
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }
    /// Largest |a - b| and the largest |b|.
    fn worst(a: &[f32], b: &[f32]) -> (f32, f32) {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).fold((0.0f32, 0.0f32), |(d, m), (&x, &y)| {
            (d.max((x - y).abs()), m.max(y.abs()))
        })
    }

    let backend = HipBackend::new(0)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_arithmetic(GpuArithmetic::GgmlCompatible);
    let stream = backend.stream().clone();
    let ops = GgmlCompatOps::load(&KernelLoader::new(backend.device())).expect("kernels");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    // ---- 8-bit activations, their round trip, and the products ----
    let (rows, cols, n_tokens) = (37, 160, 3);
    let mut x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.unit() * 4.0).collect();
    // Blocks with amax = 127 (id = 1): halves round to even.
    for (i, v) in x[32..64].iter_mut().enumerate() {
        *v = if i == 0 { 127.0 } else { i as f32 - 15.5 };
    }
    x[64..96].fill(0.0);
    let xd = upload(&stream, &x);
    for kind in [GgmlQ8Kind::Q8_1, GgmlQ8Kind::Q8_0] {
        let ckind = match kind {
            GgmlQ8Kind::Q8_1 => quantize::Q8Kind::Q8_1,
            GgmlQ8Kind::Q8_0 => quantize::Q8Kind::Q8_0,
        };
        let want = quantize::Q8Rows::quantize(&x, cols, ckind);
        let row_bytes = q8_row_bytes_of(cols);
        let mut xq = DeviceBuffer::<u8>::alloc(&stream, n_tokens * row_bytes).unwrap();
        ops.quantize_activations(
            &stream,
            xd.as_slice(),
            n_tokens,
            cols,
            kind,
            xq.as_slice_mut(),
        )
        .expect("quantize");
        let got = xq.to_vec().unwrap();
        let nb = cols / 32;
        for t in 0..n_tokens {
            let row = &got[t * row_bytes..][..row_bytes];
            for (c, (&b, &q)) in row[..cols].iter().zip(&want.qs[t * cols..]).enumerate() {
                assert_eq!(i16::from(b as i8), q, "{kind:?}: quant {c} of token {t}");
            }
            for b in 0..nb {
                let f = |o: usize| f32::from_le_bytes(row[o..o + 4].try_into().unwrap());
                let (d, s) = (f(cols + 8 * b), f(cols + 8 * b + 4));
                assert_eq!(
                    d.to_bits(),
                    want.d[t * nb + b].to_bits(),
                    "{kind:?}: d {t}/{b}"
                );
                if kind == GgmlQ8Kind::Q8_1 {
                    assert_eq!(s.to_bits(), want.s[t * nb + b].to_bits(), "s {t}/{b}");
                }
            }
        }
        if kind == GgmlQ8Kind::Q8_0 {
            let mut rt = DeviceBuffer::<f32>::alloc(&stream, x.len()).unwrap();
            ops.q8_roundtrip(&stream, xd.as_slice(), rt.as_slice_mut())
                .expect("round trip");
            let want_rt: Vec<f32> = (0..x.len())
                .map(|i| f32::from(want.qs[i]) * want.d[i / 32])
                .collect();
            assert_eq!(bits(&rt.to_vec().unwrap()), bits(&want_rt), "round trip");
        }
    }
    for ty in [GgmlType::Q4_1, GgmlType::Q5_1, GgmlType::Q8_0] {
        let block = ty.type_size();
        let mut bytes = vec![0u8; rows * cols / 32 * block];
        for b in bytes.chunks_mut(block) {
            for v in b.iter_mut() {
                *v = rng.next() as u8;
            }
            b[0..2].copy_from_slice(&f16::from_f32(0.02 * rng.unit().abs()).to_le_bytes());
            if ty != GgmlType::Q8_0 {
                b[2..4].copy_from_slice(&f16::from_f32(-0.1 * rng.unit().abs()).to_le_bytes());
            }
        }
        let w = WeightMatrix::new(ty, &bytes, rows, cols).expect("matrix");
        let mut want = vec![0.0f32; n_tokens * rows];
        matmul::matmul(&w, &x, n_tokens, &mut want).expect("cpu matmul");
        let kind = GgmlQ8Kind::of(ty).expect("emulated type");
        let mut xq = DeviceBuffer::<u8>::alloc(&stream, n_tokens * q8_row_bytes_of(cols)).unwrap();
        ops.quantize_activations(
            &stream,
            xd.as_slice(),
            n_tokens,
            cols,
            kind,
            xq.as_slice_mut(),
        )
        .expect("quantize");
        let wd = upload(&stream, &bytes);
        let mut y = DeviceBuffer::<f32>::alloc(&stream, n_tokens * rows).unwrap();
        ops.matvec(
            &stream,
            ty,
            wd.as_slice(),
            rows,
            cols,
            xq.as_slice(),
            n_tokens,
            y.as_slice_mut(),
        )
        .expect("matvec");
        assert_eq!(bits(&y.to_vec().unwrap()), bits(&want), "{ty} products");
    }

    // ---- SwiGLU, RoPE, RMSNorm ----
    let n = 1000 + 5; // a remainder of 5 takes the scalar path
    let gate: Vec<f32> = (0..n).map(|_| rng.unit() * 12.0).collect();
    let up: Vec<f32> = (0..n).map(|_| rng.unit() * 3.0).collect();
    let mut want = vec![0.0f32; n];
    activation::swiglu(&gate, &up, &mut want).expect("cpu swiglu");
    let mut out = DeviceBuffer::<f32>::alloc(&stream, n).unwrap();
    let (gd, ud) = (upload(&stream, &gate), upload(&stream, &up));
    ops.swiglu(&stream, gd.as_slice(), ud.as_slice(), out.as_slice_mut())
        .expect("swiglu");
    let got = out.to_vec().unwrap();
    assert_eq!(bits(&got), bits(&want), "swiglu");

    for mode in [RopeMode::Normal, RopeMode::Neox] {
        let (n_heads, head_dim) = (3, 64);
        let positions: Vec<i32> = vec![0, 1, 17, 300, 4095];
        let mut want: Vec<f32> = (0..positions.len() * n_heads * head_dim)
            .map(|_| rng.unit() * 2.0)
            .collect();
        let mut xg = upload(&stream, &want);
        let spec = RopeSpec {
            head_dim,
            n_rot: head_dim,
            mode,
            freq_base: 10000.0,
            freq_scale: 1.0,
        };
        rope::rope_inplace(&mut want, &positions, n_heads, &spec, None).expect("cpu rope");
        let cfg = RopeConfig {
            n_heads,
            head_dim,
            n_rot: head_dim,
            mode,
            freq_base: 10000.0,
            freq_scale: 1.0,
        };
        ops.rope_inplace(&stream, xg.as_slice_mut(), &positions, None, &cfg)
            .expect("rope");
        assert_eq!(bits(&xg.to_vec().unwrap()), bits(&want), "rope {mode:?}");
    }

    let (norm_rows, width) = (4, 576);
    let xn: Vec<f32> = (0..norm_rows * width).map(|_| rng.unit() * 5.0).collect();
    let wn: Vec<f32> = (0..width).map(|_| 1.0 + rng.unit() * 0.5).collect();
    let mut want = vec![0.0f32; xn.len()];
    kcpu::rms_norm(&xn, &wn, &mut want, norm_rows, width, 1e-5).expect("cpu rms_norm");
    let mut out = DeviceBuffer::<f32>::alloc(&stream, xn.len()).unwrap();
    let (xnd, wnd) = (upload(&stream, &xn), upload(&stream, &wn));
    ops.rms_norm(
        &stream,
        xnd.as_slice(),
        wnd.as_slice(),
        out.as_slice_mut(),
        norm_rows,
        1e-5,
    )
    .expect("rms_norm");
    let (d, m) = worst(&out.to_vec().unwrap(), &want);
    assert!(d <= 2.0 * f32::EPSILON * m, "rms_norm: off by {d}");

    // ---- attention over an f16 cache: one row at a time, split, tiled ----
    let mut failures = Vec::new();
    for (n_q, pos0, n_ctx) in [
        (3usize, 5usize, 16usize),
        (1, 599, 640),
        (70, 0, 80),
        (1, 40, 64),
    ] {
        let shape = KvCacheShape {
            n_ctx,
            n_kv_heads: 2,
            head_dim: 64,
        };
        let p = AttentionParams::new(6, shape);
        let cache_len = n_ctx * 2 * 64;
        let k: Vec<f16> = (0..cache_len)
            .map(|_| f16::from_f32(rng.unit() * 2.0))
            .collect();
        let v: Vec<f16> = (0..cache_len).map(|_| f16::from_f32(rng.unit())).collect();
        let q: Vec<f32> = (0..n_q * 6 * 64).map(|_| rng.unit() * 3.0).collect();
        let mut want = vec![0.0f32; q.len()];
        flash_attn::flash_attn(&p, &q, n_q, pos0, &k, &v, 2, &mut want).expect("cpu attention");
        let positions: Vec<i32> = (pos0..pos0 + n_q).map(|x| x as i32).collect();
        let (qd, kd, vd, pd) = (
            upload(&stream, &q),
            upload(&stream, &k),
            upload(&stream, &v),
            upload(&stream, &positions),
        );
        let mut out = DeviceBuffer::<f32>::alloc(&stream, q.len()).unwrap();
        let pslice: DeviceSlice<'_, i32> = pd.as_slice();
        ops.attention_f16(
            &stream,
            &p,
            qd.as_slice(),
            n_q,
            pslice,
            kd.as_slice(),
            vd.as_slice(),
            out.as_slice_mut(),
            2,
        )
        .expect("attention");
        let got = out.to_vec().unwrap();
        let exact = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() == b.to_bits())
            .count();
        let (d, m) = worst(&got, &want);
        eprintln!(
            "ggml attention, {n_q} queries at {pos0}: {exact}/{} outputs equal to the bit, \
             max difference {d:.2e}",
            got.len()
        );
        assert!(
            d <= 1e-3 * m.max(1e-3),
            "attention ({n_q} at {pos0}): off by {d}"
        );
        if exact != got.len() {
            failures.push(format!(
                "attention ({n_q} queries at {pos0}): {} of {} outputs differ from the CPU's \
                 (by up to {d:.2e})",
                got.len() - exact,
                got.len()
            ));
        }
    }

    // ---- the demo model against llama.cpp: the strict criterion ----
    let gen = Generator::load(demo_file(), backend).unwrap_or_else(|e| panic!("loading: {e}"));
    let cases = cases();
    assert_eq!(cases.len(), 6, "the public reference has 6 cases");
    for (n, case) in cases.iter().enumerate() {
        let t0 = Instant::now();
        let o = run_case(&gen, n, case, &mut failures);
        let strict = o.ids_matched >= case.compare_until && o.max_diff <= 0.02;
        eprintln!(
            "gpu ggml-compatible case {n}: generated ids equal for {}/{} steps (first margin \
             < 0.05 at {}); teacher-forced argmax = llama.cpp's at {}/{}; top-5 prob diff max \
             {:.2e}, mean {:.2e}; strict criterion {}; {:.2} s",
            o.ids_matched,
            case.generated_ids.len(),
            case.compare_until,
            o.argmax_agree,
            case.generated_ids.len(),
            o.max_diff,
            o.mean_diff,
            if strict { "met" } else { "NOT met" },
            t0.elapsed().as_secs_f64()
        );
        if !strict {
            failures.push(format!(
                "case {n}: strict criterion not met: ids equal for {} steps (needed {}), top-5 \
                 probabilities off by up to {:.4} (allowed 0.02)",
                o.ids_matched, case.compare_until, o.max_diff
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    /// Bytes of one 8-bit activation row of `cols` values.
    fn q8_row_bytes_of(cols: usize) -> usize {
        rocmforge_model::kernels::gpu::q8_activation_row_bytes(cols)
    }
}

/// Eight threads, each with its own session on one loaded model (one backend, one
/// stream, recorded decode steps), give exactly what the same prompts give run one at a
/// time: passes take turns on the stream, and a cache dropped during another thread's
/// recording is freed after it.
#[test]
#[ignore = "needs a GPU"]
fn sessions_on_eight_threads_equal_the_same_prompts_run_alone() {
    let _gpu = shared_gpu();
    use rocmforge_model::generate::GenerateOptions;
    let gen = gpu_generator();
    let prompts: Vec<Vec<u32>> = (0..8)
        .map(|i| {
            gen.encode(&format!(
                "Story {i}: once upon a time, in a land of {i} rivers,"
            ))
            .unwrap()
        })
        .collect();
    // The same capacity everywhere: the attention split plan follows it.
    let run = |prompt: &[u32], n_ctx: usize| {
        let mut session = gen.session(&KvCacheOptions::with_n_ctx(n_ctx)).unwrap();
        session
            .generate_with(prompt, GenerateOptions::greedy(40), |_| {
                std::ops::ControlFlow::Continue(())
            })
            .unwrap()
            .ids
    };
    let alone: Vec<Vec<u32>> = prompts.iter().map(|p| run(p, 256)).collect();
    for round in 0..3 {
        let together: Vec<Vec<u32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = prompts
                .iter()
                // Each session records its own decode step and drops its cache at the
                // end, while other threads are recording.
                .map(|p| scope.spawn(move || run(p, 256)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(together, alone, "round {round}");
    }
    let backend = gen.model().backend();
    backend.stream().synchronize().unwrap();
}

/// Generation succeeds at every prompt length and generation length that moves the
/// decode attention's split plan (the H200 once failed a 7-token prompt: "scratch has
/// 52272 floats, this call needs 66528"), in every arithmetic and KV dtype: prompt lengths
/// 1–24 one by one and up to 600 in steps, 1–9 new tokens, and 300 new tokens from a few.
#[test]
#[ignore = "needs a GPU"]
fn every_prompt_and_generation_length_runs_in_every_arithmetic_and_kv_dtype() {
    let _gpu = shared_gpu();
    use rocmforge_model::generate::GenerateOptions;
    let n_vocab = 49152u32;
    let prompt =
        |len: usize| -> Vec<u32> { (0..len as u32).map(|i| (i * 7919 + 13) % n_vocab).collect() };
    let mut lengths: Vec<usize> = (1..=24).collect();
    lengths.extend((25..=600).step_by(41));
    lengths.push(600);
    for arithmetic in [
        GpuArithmetic::Fast,
        GpuArithmetic::Exact,
        GpuArithmetic::GgmlCompatible,
    ] {
        let backend = HipBackend::new(0).unwrap().with_arithmetic(arithmetic);
        let gen = Generator::load(demo_file(), backend).unwrap();
        for dtype in [KvDtype::F16, KvDtype::F32] {
            let cache = KvCacheOptions::with_n_ctx(4096).dtype(dtype);
            let mut generated = 0usize;
            for (i, &len) in lengths.iter().enumerate() {
                let new_tokens = 1 + i % 9;
                let mut session = gen.session(&cache).unwrap();
                let mut options = GenerateOptions::greedy(new_tokens);
                options.stop_on_eog = false;
                let done = session
                    .generate_with(&prompt(len), options, |_| {
                        std::ops::ControlFlow::Continue(())
                    })
                    .unwrap_or_else(|e| panic!("{arithmetic:?} {dtype:?} prompt {len}: {e}"));
                assert_eq!(
                    done.ids.len(),
                    new_tokens,
                    "{arithmetic:?} {dtype:?} prompt {len}"
                );
                generated += done.ids.len();
            }
            if arithmetic != GpuArithmetic::GgmlCompatible {
                for len in [1, 7, 300] {
                    let mut session = gen.session(&cache).unwrap();
                    let mut options = GenerateOptions::greedy(300);
                    options.stop_on_eog = false;
                    let done = session
                        .generate_with(&prompt(len), options, |_| {
                            std::ops::ControlFlow::Continue(())
                        })
                        .unwrap_or_else(|e| {
                            panic!("{arithmetic:?} {dtype:?} 300 after {len}: {e}")
                        });
                    assert_eq!(done.ids.len(), 300);
                    generated += 300;
                }
            }
            eprintln!(
                "{arithmetic:?} {dtype:?}: {generated} tokens over {} prompts",
                lengths.len()
            );
        }
    }
}

/// Perplexity and KL divergence on the GPU: the exact arithmetic's distributions equal
/// the CPU's exact ones to rounding (batch and token by token), and the default
/// arithmetic stays close to them.
#[test]
#[ignore = "needs a GPU"]
fn gpu_perplexity_agrees_with_the_cpu() {
    use rocmforge_model::eval::{EvalOptions, Evaluator};
    let _gpu = shared_gpu();
    let text = "The lighthouse keeper climbed the narrow stairs every evening at dusk. He \
        carried a small lamp, a notebook and a flask of tea, and he wrote down the weather, \
        the ships he saw and the time the great light was lit. In winter the wind came from \
        the north and the sea was grey and rough; in summer the water was calm and the \
        evenings were long. Children from the village sometimes followed him up the hill \
        and asked him questions about the ships, the stars and the storms.";
    let options = EvalOptions {
        n_ctx: 32,
        ..EvalOptions::default()
    };
    let cpu = cpu_generator();
    let tokens = cpu.tokenizer().encode(text, true, false).unwrap();
    let base = std::env::temp_dir().join(format!("rocmforge-gpu-eval-{}.bin", std::process::id()));
    let cpu_report = Evaluator::new(cpu.model(), cpu.tokenizer(), options)
        .perplexity(&tokens, Some(&base), |_| {})
        .unwrap();
    for (name, gen, token_by_token, max_kld) in [
        ("exact", gpu_exact_generator(), false, 1e-5),
        ("exact, token by token", gpu_exact_generator(), true, 1e-5),
        ("default", gpu_generator(), false, 0.05),
        ("default, token by token", gpu_generator(), true, 0.05),
    ] {
        let options = EvalOptions {
            token_by_token,
            ..options
        };
        let r = Evaluator::new(gen.model(), gen.tokenizer(), options)
            .kl_divergence(&base, |_| {})
            .unwrap();
        let k = r.kl_divergence.unwrap();
        eprintln!(
            "{name}: PPL {:.4} (CPU exact {:.4}), KLD {:.2e}, same top {:.3}",
            r.perplexity.value, cpu_report.perplexity.value, k.kld.value, k.same_top.value
        );
        assert!(k.kld.value.abs() < max_kld, "{name}: {:?}", k.kld);
        assert!(k.same_top.value > 0.85, "{name}: {:?}", k.same_top);
    }
    let _ = std::fs::remove_file(base);
}
