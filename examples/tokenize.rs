//! Tokenizes text as llama.cpp does: reads JSON lines `{"text": ...}` on stdin and writes
//! `{"ids": [...]}` per line (special-token text such as `<|im_start|>` parsed to its id,
//! no BOS/EOS added). A line that cannot be read gives `{"error": "..."}` and the tool
//! goes on.
//!
//! `cargo run --release --example tokenize -- [--model PATH] < lines.jsonl` (default model:
//! the demo model, `models/SmolLM2-135M-Instruct.Q4_1.gguf`)

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Parser;
use rocmforge::model::gguf::DEMO_MODEL_RELATIVE_PATH;
use rocmforge::model::tokenizer::Tokenizer;

#[allow(dead_code)] // only model::open is used here
#[path = "common/mod.rs"]
mod common;

/// Tokenizes text as llama.cpp does: JSON lines {"text": ...} on stdin, {"ids": [...]} per
/// line on stdout
///
/// Special-token text such as <|im_start|> is parsed to its id; no BOS/EOS is added. A
/// line that cannot be read gives {"error": "..."} and the tool goes on.
#[derive(Parser, Debug)]
#[command(name = "tokenize")]
struct Args {
    /// GGUF model file (its tokenizer is used)
    #[arg(long, value_name = "PATH", default_value = DEMO_MODEL_RELATIVE_PATH)]
    model: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let tokenizer = match common::model::open(&args.model)
        .and_then(|file| Tokenizer::from_gguf(&file).map_err(|e| format!("{}: {e}", args.model)))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("error: reading stdin: {e}");
                return ExitCode::FAILURE;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|v| {
                v.get("text")
                    .and_then(|t| t.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| "no string field \"text\"".to_string())
            })
            .and_then(|text| {
                tokenizer
                    .encode(&text, false, true)
                    .map_err(|e| e.to_string())
            });
        let out = match result {
            Ok(ids) => serde_json::json!({ "ids": ids }),
            Err(e) => serde_json::json!({ "error": e }),
        };
        if writeln!(stdout, "{out}").is_err() {
            return ExitCode::SUCCESS; // closed pipe
        }
    }
    ExitCode::SUCCESS
}
