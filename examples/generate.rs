//! Generates text with a GGUF model: streams it to stdout, or prints one JSON object.
//!
//! ```sh
//! cargo run --release --example generate -- --prompt "Once upon a time," --max-tokens 64
//! cargo run --release --example generate -- --chat --prompt "What is the capital of France?"
//! cargo run --release --example generate -- --temperature 0 --json --prompt "The capital of France is"
//! ```
//!
//! Usage: `generate [OPTIONS]`; run with `--help` for every option and its default.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use rocmforge::model::backend::cpu::CpuBackend;
use rocmforge::model::backend::Backend;
use rocmforge::model::chat_template::ChatMessage;
use rocmforge::model::generate::{FinishReason, GenerateOptions};
use rocmforge::model::gguf::{GgufFile, DEMO_MODEL_RELATIVE_PATH};
use rocmforge::model::kv_cache::KvCacheOptions;

#[allow(dead_code)] // file_name: for model_bench
#[path = "common/mod.rs"]
mod common;

use common::arithmetic::Arithmetic;
use common::device::DeviceArgs;
use common::progress::load_generator;
use common::sampling::SamplingArgs;

/// Text generation with a GGUF model (llama, qwen2): streams the text to stdout, or
/// prints one JSON object.
#[derive(Parser, Debug)]
#[command(name = "generate", after_help = common::sampling::order_help(true))]
struct Args {
    /// GGUF model file
    #[arg(long, value_name = "PATH", default_value = DEMO_MODEL_RELATIVE_PATH)]
    model: String,
    /// The prompt
    #[arg(long, value_name = "TEXT", default_value = "Once upon a time,")]
    prompt: String,
    /// Apply the model's chat template to the prompt (as a user message)
    #[arg(long)]
    chat: bool,
    /// Most tokens to generate
    #[arg(long, value_name = "N", default_value_t = 128)]
    max_tokens: usize,
    /// Stop when the text contains TEXT (repeatable)
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Context length in tokens [default: the model's, at most 4096]
    #[arg(long, value_name = "N", value_parser = common::values::at_least_one)]
    ctx_size: Option<usize>,
    /// CPU threads [default: one per core]
    #[arg(long, value_name = "N", value_parser = common::values::at_least_one)]
    threads: Option<usize>,
    /// Arithmetic: llama.cpp's bit for bit, the fastest, or exact
    #[arg(long, value_enum, value_name = "A", default_value_t = Arithmetic::Fast)]
    arithmetic: Arithmetic,
    #[command(flatten)]
    device: DeviceArgs,
    /// Print one JSON object (prompt_ids, generated_ids, text, top_logprobs, device,
    /// sampling, timings) instead of streaming the text
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let t_load = Instant::now();
    let file = common::model::open(&args.model)?;
    match common::device::open_gpu(&args.device)? {
        Some(gpu) => {
            let name = format!("gpu ({})", gpu.device().properties().name);
            let backend = gpu.with_arithmetic(args.arithmetic.gpu());
            run_on(&args, file, backend, &name, t_load)
        }
        None => {
            let backend = match args.threads {
                Some(n) => CpuBackend::with_threads(n)?,
                None => CpuBackend::new(),
            };
            let backend = backend.with_arithmetic(args.arithmetic.cpu());
            run_on(&args, file, backend, "cpu", t_load)
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
    let generator = load_generator(&args.model, file, backend)?;
    let load_s = t_load.elapsed().as_secs_f64();
    let config = generator.model().config();
    eprintln!(
        "loaded {} ({}, {} layers, {}) on the {device} in {load_s:.2} s",
        args.model,
        config.arch,
        config.n_layers,
        human_bytes(generator.model().file().bytes().len()),
    );
    let sampling = args.sampling.resolve(generator.sampling_defaults()?);
    if !args.json {
        eprintln!("{}", sampling.describe());
    }

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
        sampling: sampling.params,
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
            "seed": sampling.params.seed,
            "sampling": sampling.to_json(),
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
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
