//! Prefill and decode speed of a whole model, measured like `llama-bench`: `pp N` is a
//! prompt of N tokens in one forward pass (tokens/s), `tg N` is N tokens generated one at a
//! time from an empty context (tokens/s; each step downloads the logits and takes the
//! argmax on the host, as greedy generation does). For decode it also prints the weight
//! bytes read per second (every matrix except `token_embd`, which is only looked up) and
//! their share of the device's measured copy bandwidth.
//!
//! ```sh
//! cargo run --release --example model_bench -- --model models/SmolLM2-135M-Instruct.Q4_1.gguf
//! cargo run --release --example model_bench -- --synthetic llama3-8b:q4_0,q8_0,f16
//! ```
//!
//! Usage: `model_bench [--model PATH | --synthetic SHAPE[@LAYERS]:TYPES] [--device auto|cpu|gpu]
//! [-p N] [-n N] [--reps N] [--kv f16|f32]`; `--help` lists every option and its default.
//! `--synthetic` builds models of real shapes with random weights in memory (`llama3-8b`,
//! `qwen2-7b`, optionally `@LAYERS` to keep fewer layers, e.g. `llama3-8b@4:q4_0`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use rocmforge::model::backend::cpu::CpuBackend;
use rocmforge::model::backend::hip::HipBackend;
use rocmforge::model::backend::{Backend, KvDtype};
use rocmforge::model::gguf::{GgmlType, GgufFile, SyntheticModel, DEMO_MODEL_RELATIVE_PATH};
use rocmforge::model::kv_cache::KvCacheOptions;
use rocmforge::model::model::{Logits, Model, ModelOptions};
use rocmforge::prelude::*;

#[allow(dead_code)] // sampling: for generate and chat
#[path = "common/mod.rs"]
mod common;

use common::device::DeviceArgs;
use common::progress::LoadBar;

/// Prefill and decode speed of a whole model, measured like llama-bench
///
/// `pp N`: a prompt of N tokens in one forward pass; `tg N`: N tokens generated one at a
/// time from an empty context (each step downloads the logits and takes the argmax on the
/// host). Both in tokens/s, the median of --reps runs. For decode it also prints the
/// weight bytes read per second and, on a GPU, their share of the measured copy bandwidth.
#[derive(Parser, Debug)]
#[command(name = "model_bench")]
struct Args {
    /// GGUF model file
    #[arg(long, value_name = "PATH", default_value = DEMO_MODEL_RELATIVE_PATH)]
    model: String,
    /// Instead of --model: models of real shapes with random weights, built in memory.
    /// SHAPE is llama3-8b or qwen2-7b, @LAYERS keeps fewer layers, TYPES is a
    /// comma-separated list of weight types (e.g. llama3-8b@4:q4_0,q8_0)
    #[arg(long, value_name = "SHAPE[@LAYERS]:TYPES", value_parser = parse_synthetic, conflicts_with = "model")]
    synthetic: Option<Synthetic>,
    #[command(flatten)]
    device: DeviceArgs,
    /// Prompt tokens of the prefill test (pp N); 0 skips it
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_name = "N",
        default_value_t = 512
    )]
    prompt: usize,
    /// Tokens of the decode test (tg N); 0 skips it
    #[arg(short = 'n', long = "n-gen", value_name = "N", default_value_t = 128)]
    generate: usize,
    /// Runs of each test (the median is reported)
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = common::values::at_least_one)]
    reps: usize,
    /// KV cache type (f16 is llama.cpp's default)
    #[arg(long, value_enum, default_value_t = Kv::F16)]
    kv: Kv,
}

/// `--kv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kv {
    F16,
    F32,
}

impl Kv {
    fn dtype(self) -> KvDtype {
        match self {
            Kv::F16 => KvDtype::F16,
            Kv::F32 => KvDtype::F32,
        }
    }
}

/// `--synthetic SHAPE[@LAYERS]:TYPES`, checked.
#[derive(Clone, Debug)]
struct Synthetic {
    shape: String,
    layers: Option<usize>,
    types: Vec<(String, GgmlType)>,
}

fn parse_synthetic(spec: &str) -> Result<Synthetic, String> {
    let (shape, types) = spec
        .split_once(':')
        .ok_or(format!("'{spec}': expected SHAPE[@LAYERS]:TYPES"))?;
    let (shape, layers) = match shape.split_once('@') {
        Some((s, l)) => (
            s,
            Some(
                l.parse::<usize>()
                    .map_err(|_| format!("'{l}' is not a layer count"))?,
            ),
        ),
        None => (shape, None),
    };
    if !matches!(shape, "llama3-8b" | "qwen2-7b") {
        return Err(format!("unknown shape '{shape}' (llama3-8b, qwen2-7b)"));
    }
    let types = types
        .split(',')
        .map(|t| {
            GgmlType::from_name(t)
                .map(|ty| (t.to_string(), ty))
                .ok_or(format!("unknown weight type '{t}'"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Synthetic {
        shape: shape.to_string(),
        layers,
        types,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Device-to-device copy bandwidth (read + written bytes per second) of a 1 GiB copy.
fn copy_bandwidth(device: &Device) -> Result<f64, Box<dyn std::error::Error>> {
    let stream = device.new_stream()?;
    let n = 1usize << 28; // f32 elements: 1 GiB
    let src = DeviceBuffer::<f32>::zeroed(&stream, n)?;
    let mut dst = DeviceBuffer::<f32>::alloc(&stream, n)?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = stream.record_timing_event()?;
        dst.copy_from_device(&src)?;
        let end = stream.record_timing_event()?;
        end.synchronize()?;
        times.push(f64::from(end.elapsed_ms(&start)?) / 1e3);
    }
    Ok(2.0 * (n * 4) as f64 / median(times))
}

/// Bytes of weights a decode step reads: every tensor but the embedding table (a lookup).
fn decode_bytes(file: &GgufFile) -> usize {
    let tied = !file.contains_tensor("output.weight");
    file.header()
        .tensors()
        .iter()
        // The embedding table is only looked up, unless it is also the output projection.
        .filter(|t| tied || t.name() != "token_embd.weight")
        .map(|t| t.n_bytes())
        .sum()
}

struct Speeds {
    pp: f64,
    tg: f64,
}

fn bench<B: Backend>(model: &Model<B>, args: &Args) -> Result<Speeds, Box<dyn std::error::Error>> {
    let n_vocab = model.n_vocab() as u32;
    let prompt: Vec<u32> = (0..args.prompt as u32)
        .map(|i| (i * 7919 + 11) % n_vocab)
        .collect();
    let opts =
        KvCacheOptions::with_n_ctx(args.prompt.max(args.generate) + 1).dtype(args.kv.dtype());
    let mut cache = model.new_cache(&opts)?;
    // Warm-up: kernels compiled and loaded, allocator pools filled, the decode step
    // recorded.
    if !prompt.is_empty() {
        model.forward(&mut cache, &prompt[..prompt.len().min(16)], Logits::Last)?;
        cache.clear();
    }
    model.forward(&mut cache, &[1], Logits::Last)?;

    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for _ in 0..args.reps {
        if args.prompt > 0 {
            cache.clear();
            let t = Instant::now();
            model.forward(&mut cache, &prompt, Logits::Last)?;
            pp.push(args.prompt as f64 / t.elapsed().as_secs_f64());
        }
        if args.generate > 0 {
            cache.clear();
            let mut token = 1u32;
            let t = Instant::now();
            for _ in 0..args.generate {
                let logits = model.forward(&mut cache, &[token], Logits::Last)?;
                token = rocmforge::kernels::cpu::argmax(&logits).map_or(1, |i| i as u32);
            }
            tg.push(args.generate as f64 / t.elapsed().as_secs_f64());
        }
    }
    let m = |v: Vec<f64>| if v.is_empty() { 0.0 } else { median(v) };
    Ok(Speeds {
        pp: m(pp),
        tg: m(tg),
    })
}

fn report(
    name: &str,
    file: &GgufFile,
    device: &str,
    speeds: &Speeds,
    args: &Args,
    copy_bw: Option<f64>,
) {
    let bytes = decode_bytes(file) as f64;
    let gbs = bytes * speeds.tg / 1e9;
    let share = copy_bw.map_or(String::new(), |bw| {
        format!(" = {:.1}% of copy bandwidth", 100.0 * gbs * 1e9 / bw)
    });
    println!(
        "{name} | {device} | kv {} | pp{} {:.1} t/s | tg{} {:.1} t/s | {:.1} MiB weights/token, {gbs:.1} GB/s{share}",
        args.kv.dtype().name(),
        args.prompt,
        speeds.pp,
        args.generate,
        speeds.tg,
        bytes / (1u64 << 20) as f64,
    );
}

/// The models of `--synthetic`, named `SHAPE[@LAYERS] TYPE`.
fn synthetic_models(spec: &Synthetic) -> Vec<(String, SyntheticModel)> {
    spec.types
        .iter()
        .map(|(name, ty)| {
            let mut m = match spec.shape.as_str() {
                "llama3-8b" => SyntheticModel::llama3_8b(*ty),
                _ => SyntheticModel::qwen2_7b(*ty),
            };
            if let Some(l) = spec.layers {
                m = m.with_layers(l);
            }
            let layers = spec.layers.map_or(String::new(), |l| format!("@{l}"));
            (format!("{}{layers} {name}", spec.shape), m)
        })
        .collect()
}

/// Loads a model, with a progress bar on stderr.
fn load<B: Backend>(
    name: &str,
    file: &Arc<GgufFile>,
    backend: B,
) -> rocmforge::model::Result<Model<B>> {
    let bar = LoadBar::new(name);
    Model::load_with(
        Arc::clone(file),
        backend,
        ModelOptions::default(),
        &mut |p| bar.update(p),
    )
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<(String, Arc<GgufFile>)> = Vec::new();
    if args.synthetic.is_none() {
        let file = common::model::open(&args.model)?;
        files.push((common::model::file_name(&args.model), Arc::new(file)));
    }
    // Chosen before building synthetic models, which takes a while.
    let mut gpu = common::device::open_gpu(&args.device)?;
    let copy_bw = match &gpu {
        Some(backend) => {
            let bw = copy_bandwidth(backend.device())?;
            eprintln!(
                "{}: device copy bandwidth {:.1} GB/s",
                backend.device().properties().name,
                bw / 1e9
            );
            Some(bw)
        }
        None => None,
    };
    let device = gpu.as_ref().map(|b| b.device().clone());
    if let Some(spec) = &args.synthetic {
        for (name, m) in synthetic_models(spec) {
            let t = Instant::now();
            let bytes = m.writer()?.to_vec()?;
            eprintln!(
                "built {name}: {:.2} GiB in {:.1} s",
                bytes.len() as f64 / (1u64 << 30) as f64,
                t.elapsed().as_secs_f64()
            );
            files.push((name, Arc::new(GgufFile::from_vec(bytes)?)));
        }
    }
    for (name, file) in files {
        match &device {
            Some(device) => {
                // The backend opened by the device choice serves the first model.
                let backend = match gpu.take() {
                    Some(backend) => backend,
                    None => HipBackend::on_device(device)?,
                };
                let t = Instant::now();
                let model = load(&name, &file, backend)?;
                eprintln!("loaded {name} in {:.1} s", t.elapsed().as_secs_f64());
                let speeds = bench(&model, &args)?;
                report(
                    &name,
                    &file,
                    &device.properties().name,
                    &speeds,
                    &args,
                    copy_bw,
                );
            }
            None => {
                let model = load(&name, &file, CpuBackend::new())?;
                let speeds = bench(&model, &args)?;
                let threads = model.backend().threads();
                report(
                    &name,
                    &file,
                    &format!("cpu ({threads} threads)"),
                    &speeds,
                    &args,
                    None,
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
