//! An interactive multi-turn chat in the terminal, with the model's chat template applied
//! to the whole conversation each turn. Type a message and press Enter; an empty line or
//! end of input quits; `/reset` starts a new conversation.
//!
//! `cargo run --release --example chat -- [--model PATH] [--device auto|cpu|gpu] [--system TEXT] [--temperature T] [--seed S] ...`
//! (`--help` lists every option and its default.)
//!
//! `--device auto` (the default) runs on the first GPU when one is usable, else on the CPU.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::process::ExitCode;

use clap::Parser;
use rocmforge::model::backend::cpu::CpuBackend;
use rocmforge::model::backend::Backend;
use rocmforge::model::chat_template::ChatMessage;
use rocmforge::model::generate::{GenerateOptions, Generator, SamplingParams};
use rocmforge::model::gguf::{GgufFile, DEMO_MODEL_RELATIVE_PATH};
use rocmforge::model::kv_cache::KvCacheOptions;

#[allow(dead_code)] // Resolved::to_json, model::file_name: for other examples
#[path = "common/mod.rs"]
mod common;

use common::device::DeviceArgs;
use common::progress::load_generator;
use common::sampling::SamplingArgs;

/// An interactive multi-turn chat with a GGUF model (its chat template over the whole
/// conversation)
///
/// Type a message and press Enter; an empty line or end of input quits; /reset starts a
/// new conversation.
#[derive(Parser, Debug)]
#[command(name = "chat", after_help = common::sampling::order_help(false))]
struct Args {
    /// GGUF model file
    #[arg(long, value_name = "PATH", default_value = DEMO_MODEL_RELATIVE_PATH)]
    model: String,
    /// A system message that opens the conversation [default: none]
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// Most tokens per answer
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_tokens: usize,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let file = common::model::open(&args.model)?;
    match common::device::open_gpu(&args.device)? {
        Some(gpu) => {
            let name = format!("GPU ({})", gpu.device().properties().name);
            chat(&args, load(&args, file, gpu)?, &name)
        }
        None => chat(&args, load(&args, file, CpuBackend::new())?, "CPU"),
    }
}

/// Loads the model, with a progress bar on stderr.
fn load<B: Backend>(
    args: &Args,
    file: GgufFile,
    backend: B,
) -> rocmforge::model::Result<Generator<B>> {
    load_generator(&args.model, file, backend)
}

fn chat<B: Backend>(
    args: &Args,
    generator: Generator<B>,
    device: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!(
        "loaded {} on the {device}; empty line to quit, /reset to start over",
        args.model
    );
    let sampling = args.sampling.resolve(generator.sampling_defaults()?);
    eprintln!("{}", sampling.describe());
    let mut messages: Vec<ChatMessage> = args
        .system
        .iter()
        .map(|s| ChatMessage::system(s.as_str()))
        .collect();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut turn = 0u64;
    loop {
        print!("> ");
        let _ = stdout.flush();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            return Ok(());
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line == "/reset" {
            messages.truncate(usize::from(args.system.is_some()));
            continue;
        }
        messages.push(ChatMessage::user(line));
        let prompt = generator.encode_chat(&messages)?;
        // A fresh cache per turn, holding the whole conversation: simple, and the
        // template may render earlier turns differently once a new one follows.
        let mut session = generator.session(&KvCacheOptions::default())?;
        let options = GenerateOptions {
            max_tokens: args.max_tokens,
            sampling: SamplingParams {
                seed: sampling.params.seed.wrapping_add(turn),
                ..sampling.params
            },
            ..GenerateOptions::default()
        };
        let completion = session.generate_with(&prompt, options, |token| {
            print!("{}", token.text);
            let _ = stdout.flush();
            ControlFlow::Continue(())
        })?;
        println!();
        messages.push(ChatMessage::assistant(completion.text.trim_end()));
        turn += 1;
    }
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
