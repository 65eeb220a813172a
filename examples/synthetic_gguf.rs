//! Writes a synthetic model of a real shape (random weights, see
//! `rocmforge::model::gguf::SyntheticModel`) to a GGUF file, with the tokenizer of another
//! model, so that both rocmforge and llama.cpp can load it and run it on text: for
//! measuring arithmetic differences at a real size (e.g. the Llama-3-8B shape) without
//! downloading a real 8B model.
//!
//! ```sh
//! cargo run --release --example synthetic_gguf -- --shape llama3-8b --type q4_0 --out /tmp/llama3-8b-q4_0.gguf
//! cargo run --release --example perplexity -- --model /tmp/llama3-8b-q4_0.gguf --chunks 4
//! ```
//!
//! The vocabulary is the tokenizer model's (49,152 tokens for the demo model), so the
//! output matrix is narrower than the real shape's; everything else is the real shape.

use std::process::ExitCode;

use clap::Parser;
use rocmforge::model::gguf::{GgmlType, SyntheticModel, DEMO_MODEL_RELATIVE_PATH};
use rocmforge::model::tokenizer::Tokenizer;

#[allow(dead_code)] // only model::open is used here
#[path = "common/mod.rs"]
mod common;

/// Writes a synthetic model of a real shape, with another model's tokenizer, to a GGUF file
#[derive(Parser, Debug)]
#[command(name = "synthetic_gguf")]
struct Args {
    /// The shape: llama3-8b or qwen2-7b
    #[arg(long, value_name = "SHAPE", default_value = "llama3-8b")]
    shape: String,
    /// Weight type of every matrix (q4_0, q8_0, f16, q4_k, ...)
    #[arg(long = "type", value_name = "TYPE", default_value = "q4_0")]
    ty: String,
    /// Keep only N layers [default: all of the shape]
    #[arg(long, value_name = "N", value_parser = common::values::at_least_one)]
    layers: Option<usize>,
    /// The GGUF model whose tokenizer (every `tokenizer.*` key) the file gets
    #[arg(long, value_name = "PATH", default_value = DEMO_MODEL_RELATIVE_PATH)]
    tokenizer_from: String,
    /// Where to write the file
    #[arg(long, value_name = "PATH")]
    out: String,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let ty = GgmlType::from_name(&args.ty).ok_or(format!("unknown weight type '{}'", args.ty))?;
    let shape = match args.shape.as_str() {
        "llama3-8b" => SyntheticModel::llama3_8b(ty),
        "qwen2-7b" => SyntheticModel::qwen2_7b(ty),
        other => return Err(format!("unknown shape '{other}' (llama3-8b, qwen2-7b)").into()),
    };
    let source = common::model::open(&args.tokenizer_from)?;
    // Checks that the source has a usable tokenizer (and gives its size).
    let n_vocab = Tokenizer::from_gguf(&source)?.n_tokens();
    let mut model = shape.with_vocab(n_vocab);
    if let Some(n) = args.layers {
        model = model.with_layers(n);
    }
    let mut writer = model.writer()?;
    for (key, value) in source.metadata().iter() {
        if key.starts_with("tokenizer.") {
            writer.add(key, value.clone())?;
        }
    }
    let bytes = writer.write_file(&args.out)?;
    eprintln!(
        "{}: {} {} layers, {} tensors of {}, vocabulary {n_vocab} (from {}), {:.2} GB",
        args.out,
        args.shape,
        model.n_layers,
        writer.tensor_count(),
        args.ty,
        args.tokenizer_from,
        bytes as f64 / 1e9
    );
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
