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
//! Options: `--device gpu|cpu` (default gpu), `-p N` (512), `-n N` (128), `--reps N` (3),
//! `--kv f16|f32` (f16, llama.cpp's default). `--synthetic ARCH:TYPES` builds models of
//! real shapes with random weights in memory (`llama3-8b`, `qwen2-7b`, optionally
//! `@LAYERS` to keep fewer layers, e.g. `llama3-8b@4:q4_0`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use rocmforge::model::backend::cpu::CpuBackend;
use rocmforge::model::backend::hip::HipBackend;
use rocmforge::model::backend::{Backend, KvDtype};
use rocmforge::model::gguf::{GgmlType, GgufFile, SyntheticModel, DEMO_MODEL_RELATIVE_PATH};
use rocmforge::model::kv_cache::KvCacheOptions;
use rocmforge::model::model::{Logits, Model};
use rocmforge::prelude::*;

struct Args {
    model: Option<String>,
    synthetic: Option<String>,
    device: String,
    prompt: usize,
    generate: usize,
    reps: usize,
    kv: KvDtype,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: None,
        synthetic: None,
        device: "gpu".into(),
        prompt: 512,
        generate: 128,
        reps: 3,
        kv: KvDtype::F16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--model" => a.model = Some(value()?),
            "--synthetic" => a.synthetic = Some(value()?),
            "--device" => a.device = value()?,
            "-p" => a.prompt = number(value()?)?,
            "-n" => a.generate = number(value()?)?,
            "--reps" => a.reps = number(value()?)?.max(1),
            "--kv" => {
                a.kv = match value()?.as_str() {
                    "f16" => KvDtype::F16,
                    "f32" => KvDtype::F32,
                    other => return Err(format!("--kv {other}: expected f16 or f32")),
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
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
    let opts = KvCacheOptions::with_n_ctx(args.prompt.max(args.generate) + 1).dtype(args.kv);
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
        args.kv.name(),
        args.prompt,
        speeds.pp,
        args.generate,
        speeds.tg,
        bytes / (1u64 << 20) as f64,
    );
}

fn synthetic_models(spec: &str) -> Result<Vec<(String, SyntheticModel)>, String> {
    let (shape, types) = spec
        .split_once(':')
        .ok_or(format!("--synthetic {spec}: expected SHAPE:TYPES"))?;
    let (shape, layers) = match shape.split_once('@') {
        Some((s, l)) => (
            s,
            Some(l.parse::<usize>().map_err(|e| format!("{l}: {e}"))?),
        ),
        None => (shape, None),
    };
    types
        .split(',')
        .map(|t| {
            let ty = GgmlType::from_name(t).ok_or(format!("unknown weight type {t}"))?;
            let mut m = match shape {
                "llama3-8b" => SyntheticModel::llama3_8b(ty),
                "qwen2-7b" => SyntheticModel::qwen2_7b(ty),
                other => return Err(format!("unknown shape {other} (llama3-8b, qwen2-7b)")),
            };
            if let Some(l) = layers {
                m = m.with_layers(l);
            }
            Ok((
                format!(
                    "{shape}{} {t}",
                    layers.map_or(String::new(), |l| format!("@{l}"))
                ),
                m,
            ))
        })
        .collect()
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<(String, Arc<GgufFile>)> = Vec::new();
    if let Some(spec) = &args.synthetic {
        for (name, m) in synthetic_models(spec)? {
            let t = Instant::now();
            let bytes = m.writer()?.to_vec()?;
            eprintln!(
                "built {name}: {:.2} GiB in {:.1} s",
                bytes.len() as f64 / (1u64 << 30) as f64,
                t.elapsed().as_secs_f64()
            );
            files.push((name, Arc::new(GgufFile::from_vec(bytes)?)));
        }
    } else {
        let path = args
            .model
            .clone()
            .unwrap_or(DEMO_MODEL_RELATIVE_PATH.into());
        let name = std::path::Path::new(&path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        files.push((name, Arc::new(GgufFile::open(&path)?)));
    }
    for (name, file) in files {
        match args.device.as_str() {
            "gpu" => {
                let backend = HipBackend::new(0)?;
                let device_name = backend.device().properties().name.clone();
                let copy_bw = copy_bandwidth(backend.device())?;
                eprintln!(
                    "{device_name}: device copy bandwidth {:.1} GB/s",
                    copy_bw / 1e9
                );
                let t = Instant::now();
                let model = Model::load(Arc::clone(&file), backend)?;
                eprintln!("loaded {name} in {:.1} s", t.elapsed().as_secs_f64());
                let speeds = bench(&model, &args)?;
                report(&name, &file, &device_name, &speeds, &args, Some(copy_bw));
            }
            "cpu" => {
                let model = Model::load(Arc::clone(&file), CpuBackend::new())?;
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
            other => return Err(format!("--device {other}: expected gpu or cpu").into()),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
