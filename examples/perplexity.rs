//! Perplexity of a model on a text, and the KL divergence of its next-token
//! distributions from a saved base run — as llama.cpp's `llama-perplexity`, with its
//! log-probability file format (a base saved by either program can be compared against
//! by the other).
//!
//! ```sh
//! bash scripts/fetch-eval-text.sh          # models/jargon-4.4.7.txt (public domain)
//! cargo run --release --example perplexity -- --chunks 8
//! # a base with exact arithmetic, then the default arithmetic against it
//! cargo run --release --example perplexity -- --arithmetic exact --chunks 8 --save-logits /tmp/base.bin
//! cargo run --release --example perplexity -- --kl-divergence /tmp/base.bin
//! ```
//!
//! Usage: `perplexity [OPTIONS]`; run with `--help` for every option and its default.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use rocmforge::model::backend::cpu::CpuBackend;
use rocmforge::model::backend::{Backend, KvDtype};
use rocmforge::model::eval::{EvalOptions, EvalReport, Evaluator, KlDivergence, WindowDone};
use rocmforge::model::gguf::{GgufFile, DEMO_MODEL_RELATIVE_PATH};

#[allow(dead_code)] // sampling, model::file_name: for other examples
#[path = "common/mod.rs"]
mod common;

use common::arithmetic::Arithmetic;
use common::device::DeviceArgs;
use common::progress::load_generator;

/// The evaluation text `scripts/fetch-eval-text.sh` fetches.
const EVAL_TEXT: &str = "models/jargon-4.4.7.txt";

/// Perplexity of a GGUF model on a text, in windows of --ctx tokens (the second half of
/// each scored), and the KL divergence from a base run saved with --save-logits (or by
/// llama.cpp's `llama-perplexity --kl-divergence-base`).
#[derive(Parser, Debug)]
#[command(name = "perplexity")]
struct Args {
    /// GGUF model file
    #[arg(long, value_name = "PATH", default_value = DEMO_MODEL_RELATIVE_PATH)]
    model: String,
    /// The text (UTF-8); fetch the default with scripts/fetch-eval-text.sh. Not read
    /// with --kl-divergence (the base file holds its tokens)
    #[arg(long, value_name = "PATH", default_value = EVAL_TEXT)]
    text: PathBuf,
    /// Window length in tokens (the base file's with --kl-divergence)
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = common::values::at_least_one)]
    ctx: usize,
    /// Evaluate at most N windows [default: every whole window of the text]
    #[arg(long, value_name = "N", value_parser = common::values::at_least_one)]
    chunks: Option<usize>,
    /// Arithmetic: llama.cpp's bit for bit, the fastest, or exact
    #[arg(long, value_enum, value_name = "A", default_value_t = Arithmetic::Fast)]
    arithmetic: Arithmetic,
    /// KV cache element type
    #[arg(long, value_enum, value_name = "T", default_value_t = KvType::F32)]
    kv_dtype: KvType,
    /// Run each window one token at a time through the decode step (the arithmetic of
    /// generation) instead of as one batch (the arithmetic of prefill)
    #[arg(long)]
    token_by_token: bool,
    /// CPU threads [default: one per core]
    #[arg(long, value_name = "N", value_parser = common::values::at_least_one)]
    threads: Option<usize>,
    #[command(flatten)]
    device: DeviceArgs,
    /// Save every scored position's log-probabilities to FILE (llama.cpp's format), as a
    /// base for --kl-divergence
    #[arg(long, value_name = "FILE", conflicts_with = "kl_divergence")]
    save_logits: Option<PathBuf>,
    /// Compare with the base run saved in FILE: KL divergence, top-1 agreement, Δp
    #[arg(long, value_name = "FILE")]
    kl_divergence: Option<PathBuf>,
    /// Print one JSON object with the results instead of the text report
    #[arg(long)]
    json: bool,
}

/// `--kv-dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum KvType {
    /// 32-bit floats
    F32,
    /// 16-bit floats (llama.cpp's default)
    F16,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let file = common::model::open(&args.model)?;
    match common::device::open_gpu(&args.device)? {
        Some(gpu) => {
            let name = format!("gpu ({})", gpu.device().properties().name);
            run_on(
                &args,
                file,
                gpu.with_arithmetic(args.arithmetic.gpu()),
                &name,
            )
        }
        None => {
            let backend = match args.threads {
                Some(n) => CpuBackend::with_threads(n)?,
                None => CpuBackend::new(),
            };
            let backend = backend.with_arithmetic(args.arithmetic.cpu());
            run_on(&args, file, backend, "cpu")
        }
    }
}

fn run_on<B: Backend>(
    args: &Args,
    file: GgufFile,
    backend: B,
    device: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let generator = load_generator(&args.model, file, backend)?;
    let options = EvalOptions {
        n_ctx: args.ctx,
        max_windows: args.chunks,
        kv_dtype: match args.kv_dtype {
            KvType::F32 => KvDtype::F32,
            KvType::F16 => KvDtype::F16,
        },
        token_by_token: args.token_by_token,
    };
    let evaluator = Evaluator::new(generator.model(), generator.tokenizer(), options);
    let quiet = args.json;
    let progress = |w: &WindowDone| {
        if quiet {
            return;
        }
        let mut line = format!("[{}/{}] PPL {:.4}", w.done, w.of, w.perplexity.value);
        if let (Some(kld), Some(top)) = (w.kld, w.same_top) {
            line += &format!(
                "  KLD {:.6}  same top {:.2} %",
                kld.value,
                100.0 * top.value
            );
        }
        eprintln!("{line}  ({:.1} s)", w.seconds);
    };
    eprintln!(
        "{} on the {device}, arithmetic {:?}, KV {:?}, {}",
        args.model,
        args.arithmetic,
        args.kv_dtype,
        if args.token_by_token {
            "token by token (decode)"
        } else {
            "each window in one batch (prefill)"
        }
    );
    let report = match &args.kl_divergence {
        Some(base) => evaluator.kl_divergence(base, progress)?,
        None => {
            let text = read_text(&args.text)?;
            // As llama.cpp: special tokens added as the model wants, special-token text
            // in the file taken as plain text.
            let tokens = generator.tokenizer().encode(&text, true, false)?;
            eprintln!(
                "{}: {} tokens; {} per window, the last {} of each scored",
                args.text.display(),
                tokens.len(),
                args.ctx,
                args.ctx.saturating_sub(1 + args.ctx / 2)
            );
            evaluator.perplexity(&tokens, args.save_logits.as_deref(), progress)?
        }
    };
    if args.json {
        println!("{}", to_json(args, device, &report));
    } else {
        print_report(&report);
        if let Some(path) = &args.save_logits {
            println!("log-probabilities saved to {}", path.display());
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        let hint = if path == Path::new(EVAL_TEXT) {
            "\n(fetch it with: bash scripts/fetch-eval-text.sh)"
        } else {
            ""
        };
        format!("{}: {e}{hint}", path.display())
    })
}

fn print_report(r: &EvalReport) {
    println!(
        "{} windows of {} tokens, {} tokens scored, {:.1} tokens/s",
        r.windows,
        r.n_ctx,
        r.perplexity.tokens,
        r.tokens_per_second()
    );
    println!(
        "Final estimate: PPL = {:.4} +/- {:.5}",
        r.perplexity.value, r.perplexity.uncertainty
    );
    if let Some(k) = &r.kl_divergence {
        print_kl_divergence(k);
    }
}

fn print_kl_divergence(k: &KlDivergence) {
    println!("\n====== Perplexity statistics ======");
    println!("Mean PPL(Q)                   : {:.6}", k.ppl);
    println!("Mean PPL(base)                : {:.6}", k.ppl_base);
    println!(
        "Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2}%",
        100.0 * k.ln_ppl_correlation
    );
    println!("Mean ln(PPL(Q)/PPL(base))     : {:.6}", k.ln_ppl_ratio);
    println!("\n====== KL divergence statistics ======");
    println!("Mean    KLD: {:.6}", k.kld);
    let p = &k.kld_percentiles;
    for (name, v) in [
        ("Maximum", p.max),
        ("99.9%  ", p.p99_9),
        ("99.0%  ", p.p99),
        ("95.0%  ", p.p95),
        ("90.0%  ", p.p90),
        ("Median ", p.median),
        ("10.0%  ", p.p10),
        (" 5.0%  ", p.p5),
        (" 1.0%  ", p.p1),
        (" 0.1%  ", p.p0_1),
        ("Minimum", p.min),
    ] {
        println!("{name} KLD: {v:10.6}");
    }
    println!("\n====== Token probability statistics ======");
    println!(
        "Mean    Δp: {:6.3} ± {:5.3} %",
        100.0 * k.delta_p.value,
        100.0 * k.delta_p.uncertainty
    );
    let p = &k.delta_p_percentiles;
    for (name, v) in [
        ("Maximum", p.max),
        ("99.9%  ", p.p99_9),
        ("99.0%  ", p.p99),
        ("95.0%  ", p.p95),
        ("90.0%  ", p.p90),
        ("75.0%  ", p.p75),
        ("Median ", p.median),
        ("25.0%  ", p.p25),
        ("10.0%  ", p.p10),
        (" 5.0%  ", p.p5),
        (" 1.0%  ", p.p1),
        (" 0.1%  ", p.p0_1),
        ("Minimum", p.min),
    ] {
        println!("{name} Δp: {:6.3}%", 100.0 * v);
    }
    println!(
        "RMS Δp    : {:6.3} ± {:5.3} %",
        100.0 * k.delta_p_rms.value,
        100.0 * k.delta_p_rms.uncertainty
    );
    println!(
        "Same top p: {:6.3} ± {:5.3} %",
        100.0 * k.same_top.value,
        100.0 * k.same_top.uncertainty
    );
}

fn to_json(args: &Args, device: &str, r: &EvalReport) -> serde_json::Value {
    let est = |e: rocmforge::model::eval::Estimate| serde_json::json!([e.value, e.uncertainty]);
    let kld = r.kl_divergence.as_ref().map(|k| {
        serde_json::json!({
            "tokens": k.tokens,
            "ppl": est(k.ppl),
            "ppl_base": est(k.ppl_base),
            "ln_ppl_ratio": est(k.ln_ppl_ratio),
            "kld_mean": est(k.kld),
            "kld_median": k.kld_percentiles.median,
            "kld_p99": k.kld_percentiles.p99,
            "kld_max": k.kld_percentiles.max,
            "delta_p_mean": est(k.delta_p),
            "delta_p_rms": est(k.delta_p_rms),
            "same_top": est(k.same_top),
        })
    });
    serde_json::json!({
        "model": args.model,
        "device": device,
        "arithmetic": format!("{:?}", args.arithmetic).to_lowercase(),
        "kv_dtype": format!("{:?}", args.kv_dtype).to_lowercase(),
        "token_by_token": args.token_by_token,
        "n_ctx": r.n_ctx,
        "windows": r.windows,
        "tokens_scored": r.perplexity.tokens,
        "ppl": [r.perplexity.value, r.perplexity.uncertainty],
        "seconds": r.seconds,
        "kl_divergence": kld,
    })
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
