//! Tokenizer speed on hostile text: each case at four sizes, so that the time per byte
//! shows whether the work grows linearly with the input (it should: a tokenizer that is
//! quadratic somewhere lets one request stall a server). Also checks that nothing panics
//! and that encoded text decodes back to itself.
//!
//! ```sh
//! cargo run --release --example tokenizer_bench                 # the demo model's tokenizer
//! cargo run --release --example tokenizer_bench -- --max-kib 256 --model other.gguf
//! ```
//!
//! Cases: 1 MiB of letters without a space or newline (one pre-tokenizer word), one
//! repeated letter, digits, 100k repeated special-token strings (`<|im_start|>`, parsed
//! as special and as text), random bytes (invalid UTF-8) made text with U+FFFD, and the
//! byte API: ids of byte tokens that form invalid UTF-8, decoded to bytes, to text and
//! through the streaming decoder.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use rocmforge::model::gguf::DEMO_MODEL_RELATIVE_PATH;
use rocmforge::model::tokenizer::{TokenId, Tokenizer};

#[allow(dead_code)] // only model::open is used here
#[path = "common/mod.rs"]
mod common;

/// Tokenizer speed on hostile text, at growing sizes (time per byte should stay flat)
#[derive(Parser, Debug)]
#[command(name = "tokenizer_bench")]
struct Args {
    /// GGUF model file (its tokenizer is used)
    #[arg(long, value_name = "PATH", default_value = DEMO_MODEL_RELATIVE_PATH)]
    model: String,
    /// The largest input in KiB; the sizes are it, 1/2, 1/4 and 1/8 of it
    #[arg(long, value_name = "KIB", default_value_t = 1024, value_parser = common::values::at_least_one)]
    max_kib: usize,
}

/// A small deterministic generator (inputs must be the same on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// The text of one case, `n` bytes long (about).
fn text_case(name: &str, n: usize) -> String {
    let mut rng = Lcg(n as u64);
    match name {
        "letters, no spaces" => (0..n)
            .map(|_| (b'a' + (rng.next() % 26) as u8) as char)
            .collect(),
        "one letter repeated" => "a".repeat(n),
        "digits" => (0..n)
            .map(|_| (b'0' + (rng.next() % 10) as u8) as char)
            .collect(),
        "<|im_start|> x n, special" | "<|im_start|> x n, as text" => {
            "<|im_start|>".repeat(n / "<|im_start|>".len())
        }
        "random bytes, lossy" => {
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => unreachable!("{name}"),
    }
}

const TEXT_CASES: [&str; 6] = [
    "letters, no spaces",
    "one letter repeated",
    "digits",
    "<|im_start|> x n, special",
    "<|im_start|> x n, as text",
    "random bytes, lossy",
];

fn row(case: &str, bytes: usize, tokens: usize, seconds: f64) {
    println!(
        "| {case:<30} | {:>9} | {tokens:>9} | {:>9.1} | {:>8.1} | {:>9.1} |",
        bytes,
        seconds * 1e3,
        bytes as f64 / seconds / 1e6,
        seconds * 1e9 / bytes as f64
    );
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let file = common::model::open(&args.model)?;
    let tok = Tokenizer::from_gguf(&file)?;
    let sizes: Vec<usize> = (0..4).rev().map(|s| (args.max_kib << 10) >> s).collect();
    println!(
        "tokenizer of {} ({:?}, {} tokens)\n",
        args.model,
        tok.kind(),
        tok.n_tokens()
    );
    println!("| case                           |     bytes |    tokens |        ms |     MB/s |   ns/byte |");
    println!("|---|---:|---:|---:|---:|---:|");
    for case in TEXT_CASES {
        for &n in &sizes {
            let text = text_case(case, n);
            let parse_special = case.ends_with("special");
            let t = Instant::now();
            let ids = tok.encode(&text, false, parse_special)?;
            let s = t.elapsed().as_secs_f64();
            row(case, text.len(), ids.len(), s);
            // Encoded text decodes back to itself, except where the text has code points
            // that llama.cpp's pre-tokenizer drops (some control characters, e.g. U+0016,
            // give no token in llama.cpp either; checked with its build).
            if case != "random bytes, lossy" && tok.decode(&ids, true)? != text {
                return Err(format!("{case}: decode(encode(text)) differs from the text").into());
            }
        }
    }
    // The byte API: ids of tokens for single bytes 0x80..=0xFF, in random order, are
    // invalid UTF-8 almost everywhere.
    let byte_ids: Vec<TokenId> = {
        let single = tok.encode("\u{00e9}", false, false)?; // a 2-byte character
        let mut found = Vec::new();
        for id in 0..tok.n_tokens() as TokenId {
            let piece = tok.token_to_piece(id, false)?;
            if piece.len() == 1 && piece[0] >= 0x80 {
                found.push(id);
            }
        }
        if found.is_empty() {
            found = single;
        }
        found
    };
    for &n in &sizes {
        let mut rng = Lcg(n as u64);
        let ids: Vec<TokenId> = (0..n)
            .map(|_| byte_ids[rng.next() as usize % byte_ids.len()])
            .collect();
        let t = Instant::now();
        let bytes = tok.decode_bytes(&ids, false)?;
        row(
            "byte tokens -> bytes",
            bytes.len(),
            ids.len(),
            t.elapsed().as_secs_f64(),
        );
        let t = Instant::now();
        let text = tok.decode(&ids, false)?;
        row(
            "byte tokens -> text (U+FFFD)",
            text.len(),
            ids.len(),
            t.elapsed().as_secs_f64(),
        );
        let t = Instant::now();
        let mut stream = tok.stream_decoder(false);
        let mut streamed = 0;
        for &id in &ids {
            streamed += stream.push(id)?.len();
        }
        streamed += stream.finish().len();
        row(
            "byte tokens -> stream",
            streamed,
            ids.len(),
            t.elapsed().as_secs_f64(),
        );
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
