//! An interactive multi-turn chat in the terminal, with the model's chat template applied
//! to the whole conversation each turn. Type a message and press Enter; an empty line or
//! end of input quits; `/reset` starts a new conversation.
//!
//! `cargo run --release --example chat [-- --model PATH] [--device auto|cpu|gpu] [--temperature T] [--seed S] [--system TEXT]`
//!
//! `--device auto` (the default) runs on the first GPU when one is usable, else on the CPU.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::process::ExitCode;

use rocmforge::model::backend::Backend;
use rocmforge::model::chat_template::ChatMessage;
use rocmforge::model::generate::{GenerateOptions, Generator, SamplingParams};
use rocmforge::model::kv_cache::KvCacheOptions;
use rocmforge::model::ModelError;

const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

struct Args {
    model: String,
    temperature: f32,
    seed: u64,
    system: Option<String>,
    max_tokens: usize,
    device: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: DEFAULT_MODEL.into(),
        temperature: 0.7,
        seed: 0,
        system: None,
        max_tokens: 512,
        device: "auto".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--model" => args.model = value("--model")?,
            "--temperature" => {
                args.temperature = value("--temperature")?
                    .parse()
                    .map_err(|e| format!("--temperature: {e}"))?
            }
            "--seed" => {
                args.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--system" => args.system = Some(value("--system")?),
            "--device" => args.device = value("--device")?,
            "--max-tokens" => {
                args.max_tokens = value("--max-tokens")?
                    .parse()
                    .map_err(|e| format!("--max-tokens: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn run(args: Args) -> rocmforge::model::Result<()> {
    match args.device.as_str() {
        "cpu" => chat(&args, Generator::open_cpu(&args.model)?, "CPU"),
        "gpu" => chat(&args, Generator::open_gpu(&args.model)?, "GPU"),
        "auto" => match Generator::open_gpu(&args.model) {
            Ok(generator) => chat(&args, generator, "GPU"),
            Err(ModelError::DeviceUnavailable(why)) => {
                eprintln!("note: {why}; running on the CPU");
                chat(&args, Generator::open_cpu(&args.model)?, "CPU")
            }
            Err(e) => Err(e),
        },
        other => Err(ModelError::DeviceUnavailable(format!(
            "--device {other}: expected auto, cpu or gpu"
        ))),
    }
}

fn chat<B: Backend>(
    args: &Args,
    generator: Generator<B>,
    device: &str,
) -> rocmforge::model::Result<()> {
    eprintln!(
        "loaded {} on the {device}; empty line to quit, /reset to start over",
        args.model
    );
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
                temperature: args.temperature,
                seed: args.seed.wrapping_add(turn),
                ..SamplingParams::default()
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
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\nusage: chat [--model PATH] [--temperature T] [--seed S] [--system TEXT] [--max-tokens N]");
            return ExitCode::FAILURE;
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
