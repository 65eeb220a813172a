//! Tokenizes text as llama.cpp does: reads JSON lines `{"text": ...}` on stdin and writes
//! `{"ids": [...]}` per line (special-token text such as `<|im_start|>` parsed to its id,
//! no BOS/EOS added). A line that cannot be read gives `{"error": "..."}` and the tool
//! goes on.
//!
//! `cargo run --release --example tokenize -- --model models/SmolLM2-135M-Instruct.Q4_1.gguf < lines.jsonl`

use std::io::{BufRead, Write};
use std::process::ExitCode;

use rocmforge::model::gguf::GgufFile;
use rocmforge::model::tokenizer::Tokenizer;

const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

fn main() -> ExitCode {
    let mut model = DEFAULT_MODEL.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => match args.next() {
                Some(path) => model = path,
                None => return usage("--model needs a path"),
            },
            "--help" | "-h" => {
                println!("usage: tokenize [--model PATH] < lines.jsonl   (default model: {DEFAULT_MODEL})");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let tokenizer = match GgufFile::open(&model)
        .map_err(|e| e.to_string())
        .and_then(|file| Tokenizer::from_gguf(&file).map_err(|e| e.to_string()))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {model}: {e}");
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

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}\nusage: tokenize [--model PATH] < lines.jsonl");
    ExitCode::FAILURE
}
