//! Generates text with a GGUF model: streams it to stdout, or prints one JSON object.
//!
//! ```sh
//! cargo run --release --example generate -- --prompt "Once upon a time," --max-tokens 64
//! cargo run --release --example generate -- --chat --prompt "What is the capital of France?"
//! cargo run --release --example generate -- --temperature 0 --json --prompt "The capital of France is"
//! ```
//!
//! Run with `--help` for every option.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rocmforge::model::backend::cpu::{CpuArithmetic, CpuBackend};
use rocmforge::model::backend::hip::{GpuArithmetic, HipBackend};
use rocmforge::model::backend::Backend;
use rocmforge::model::chat_template::ChatMessage;
use rocmforge::model::generate::{FinishReason, GenerateOptions, Generator, SamplingParams};
use rocmforge::model::gguf::{GgufFile, DEMO_MODEL_RELATIVE_PATH};
use rocmforge::model::kv_cache::KvCacheOptions;
use rocmforge::model::model::{LoadProgress, ModelOptions};

const HELP: &str = "\
generate: text generation with a GGUF model (llama, qwen2)

USAGE:
    cargo run --release --example generate -- [OPTIONS]

OPTIONS:
    --model PATH         GGUF file [default: models/SmolLM2-135M-Instruct.Q4_1.gguf]
    --prompt TEXT        the prompt [default: \"Once upon a time,\"]
    --chat               apply the model's chat template to the prompt (as a user message)
    --max-tokens N       most tokens to generate [default: 128]
    --temperature T      sampling temperature; 0 = greedy [default: 0.8]
    --top-k K            keep the K most likely tokens; 0 = all [default: 40]
    --top-p P            nucleus sampling threshold; 1 = off [default: 0.95]
    --min-p P            min-p threshold; 0 = off [default: 0.05]
    --repeat-penalty R   repetition penalty over the last 64 tokens; 1 = off [default: 1]
    --seed S             random seed (the same seed gives the same text) [default: from the clock]
    --stop TEXT          stop when the text contains TEXT (repeatable)
    --ctx-size N         context length in tokens [default: the model's, at most 4096]
    --threads N          CPU threads [default: one per core]
    --arithmetic A       llama | fast | exact: llama.cpp's CPU arithmetic reproduced bit for bit
                         (slow on the GPU), the fastest (GPU: 8-bit activations in decode
                         steps; CPU: llama's, its fastest), or exact f32/f64
                         [default: fast]
    --device DEV         auto | cpu | gpu [default: auto]
                           auto: the first GPU when one is usable, else the CPU (with a
                           notice on stderr saying why); gpu: an error when there is none
    --json               print one JSON object (prompt_ids, generated_ids, text, top_logprobs,
                         device, timings) instead of streaming the text
    -h, --help           this help
";

#[derive(Debug)]
struct Args {
    model: String,
    prompt: String,
    chat: bool,
    max_tokens: usize,
    sampling: SamplingParams,
    seed_given: bool,
    stop: Vec<String>,
    ctx_size: Option<usize>,
    threads: Option<usize>,
    arithmetic: Option<String>,
    device: String,
    json: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let clock_seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut a = Args {
        model: DEMO_MODEL_RELATIVE_PATH.to_string(),
        prompt: "Once upon a time,".to_string(),
        chat: false,
        max_tokens: 128,
        sampling: SamplingParams {
            seed: clock_seed,
            ..SamplingParams::default()
        },
        seed_given: false,
        stop: Vec::new(),
        ctx_size: None,
        threads: None,
        arithmetic: None,
        device: "auto".to_string(),
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{name}: '{v}' is not a valid number"))
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--model" => a.model = value("--model")?,
            "--prompt" => a.prompt = value("--prompt")?,
            "--chat" => a.chat = true,
            "--json" => a.json = true,
            "--max-tokens" => a.max_tokens = num("--max-tokens", value("--max-tokens")?)?,
            "--temperature" => {
                a.sampling.temperature = num("--temperature", value("--temperature")?)?
            }
            "--top-k" => a.sampling.top_k = num("--top-k", value("--top-k")?)?,
            "--top-p" => a.sampling.top_p = num("--top-p", value("--top-p")?)?,
            "--min-p" => a.sampling.min_p = num("--min-p", value("--min-p")?)?,
            "--repeat-penalty" => {
                a.sampling.repeat_penalty = num("--repeat-penalty", value("--repeat-penalty")?)?
            }
            "--seed" => {
                a.sampling.seed = num("--seed", value("--seed")?)?;
                a.seed_given = true;
            }
            "--stop" => a.stop.push(value("--stop")?),
            "--ctx-size" => a.ctx_size = Some(num("--ctx-size", value("--ctx-size")?)?),
            "--threads" => a.threads = Some(num("--threads", value("--threads")?)?),
            "--arithmetic" => a.arithmetic = Some(value("--arithmetic")?),
            "--device" => a.device = value("--device")?,
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
    }
    Ok(Some(a))
}

/// The device `--device` resolved to.
enum Chosen {
    Cpu(CpuBackend),
    Gpu(Box<HipBackend>),
}

/// Resolves `--device`: `gpu` must find a GPU; `auto` takes the first GPU when one is
/// usable and falls back to the CPU with a notice on stderr.
fn choose_device(args: &Args) -> Result<Chosen, String> {
    let cpu = || -> Result<Chosen, String> {
        let backend = match args.threads {
            Some(n) => CpuBackend::with_threads(n).map_err(|e| e.to_string())?,
            None => CpuBackend::new(),
        };
        let backend = match args.arithmetic.as_deref() {
            None | Some("llama" | "fast") => backend,
            Some("exact") => backend.with_arithmetic(CpuArithmetic::Exact),
            Some(other) => {
                return Err(format!(
                    "--arithmetic {other}: expected llama, fast or exact"
                ))
            }
        };
        Ok(Chosen::Cpu(backend))
    };
    let gpu_arithmetic = match args.arithmetic.as_deref() {
        None | Some("fast") => GpuArithmetic::Fast,
        Some("llama") => GpuArithmetic::GgmlCompatible,
        Some("exact") => GpuArithmetic::Exact,
        Some(other) => {
            return Err(format!(
                "--arithmetic {other}: expected llama, fast or exact"
            ))
        }
    };
    let gpu = || HipBackend::new(0).map(|b| b.with_arithmetic(gpu_arithmetic));
    match args.device.as_str() {
        "cpu" => cpu(),
        "gpu" => gpu()
            .map(|b| Chosen::Gpu(Box::new(b)))
            .map_err(|e| format!("--device gpu: {e}")),
        "auto" => match gpu() {
            Ok(b) => Ok(Chosen::Gpu(Box::new(b))),
            Err(e) => {
                eprintln!("note: no usable GPU ({e}); running on the CPU");
                cpu()
            }
        },
        other => Err(format!("--device '{other}': expected auto, cpu or gpu")),
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if !args.seed_given && args.sampling.temperature > 0.0 && !args.json {
        eprintln!("seed: {}", args.sampling.seed);
    }
    let t_load = Instant::now();
    let file = GgufFile::open(&args.model).map_err(|e| {
        if args.model == DEMO_MODEL_RELATIVE_PATH {
            format!("{e}\n(fetch the demo model with: bash scripts/fetch-demo-model.sh)")
        } else {
            e.to_string()
        }
    })?;
    match choose_device(&args)? {
        Chosen::Cpu(backend) => run_on(&args, file, backend, "cpu", t_load),
        Chosen::Gpu(backend) => {
            let name = format!("gpu ({})", backend.device().properties().name);
            run_on(&args, file, *backend, &name, t_load)
        }
    }
}

fn run_on<B: Backend>(
    args: &Args,
    file: GgufFile,
    backend: B,
    device: &str,
    t_load: Instant,
) -> Result<(), Box<dyn std::error::Error>> {
    // Load, with a progress line on stderr.
    let interactive = std::io::stderr().is_terminal();
    let mut last_percent = usize::MAX;
    let mut progress = |p: LoadProgress| {
        let percent = p.bytes_done * 100 / p.bytes_total.max(1);
        if interactive && percent != last_percent {
            last_percent = percent;
            eprint!(
                "\rloading {}: {percent:3}% ({}/{} tensors)",
                args.model, p.tensors_done, p.tensors_total
            );
        }
    };
    let generator = Generator::load_with(
        Arc::new(file),
        backend,
        ModelOptions::default(),
        &mut progress,
    )?;
    let load_s = t_load.elapsed().as_secs_f64();
    if interactive {
        eprintln!();
    }
    let config = generator.model().config();
    eprintln!(
        "loaded {} ({}, {} layers, {}) on the {device} in {load_s:.2} s",
        args.model,
        config.arch,
        config.n_layers,
        human_bytes(generator.model().file().bytes().len()),
    );

    let prompt_ids = if args.chat {
        generator.encode_chat(&[ChatMessage::user(args.prompt.as_str())])?
    } else {
        generator.encode(&args.prompt)?
    };
    let cache = KvCacheOptions {
        n_ctx: args.ctx_size,
        ..KvCacheOptions::default()
    };
    let mut session = generator.session(&cache)?;
    let options = GenerateOptions {
        max_tokens: args.max_tokens,
        sampling: args.sampling,
        stop_strings: args.stop.clone(),
        top_logprobs: if args.json { 5 } else { 0 },
        ..GenerateOptions::default()
    };

    let mut stdout = std::io::stdout().lock();
    let completion = session.generate_with(&prompt_ids, options, |token| {
        if !args.json {
            // A closed pipe ends generation.
            if stdout
                .write_all(token.text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    let stats = completion.stats;

    if args.json {
        let top: Vec<Vec<(u32, f32)>> = completion.top_logprobs.clone();
        let out = serde_json::json!({
            "prompt_ids": prompt_ids,
            "generated_ids": completion.ids,
            "text": completion.text,
            "top_logprobs": top,
            "finish_reason": finish_name(&completion.finish),
            "device": device,
            "seed": args.sampling.seed,
            "timings": {
                "load_s": load_s,
                "prefill_tokens_per_s": stats.prefill_tokens_per_s(),
                "decode_tokens_per_s": stats.decode_tokens_per_s(),
            },
        });
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(stdout)?;
        eprintln!(
            "[{} prompt tokens at {:.1} tokens/s, {} generated at {:.1} tokens/s; stopped: {}]",
            stats.prefill_tokens,
            stats.prefill_tokens_per_s(),
            stats.generated_tokens,
            stats.decode_tokens_per_s(),
            finish_name(&completion.finish)
        );
    }
    Ok(())
}

fn finish_name(f: &FinishReason) -> String {
    match f {
        FinishReason::MaxTokens => "max_tokens".to_string(),
        FinishReason::EndOfGeneration(id) => format!("end_of_generation (token {id})"),
        FinishReason::StopString(s) => format!("stop_string {s:?}"),
        FinishReason::Cancelled => "cancelled".to_string(),
        FinishReason::ContextFull => "context_full".to_string(),
    }
}

fn human_bytes(n: usize) -> String {
    format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
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
