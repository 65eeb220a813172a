//! Compiles every kernel of rocmforge for an architecture, with no GPU needed, and
//! prints one line per kernel (name and code size), then `compiled N kernels for ARCH`.
//! Exits non-zero if any source fails to compile.
//!
//! `cargo run --example compile_kernels -- --arch ARCH [--platform amd|nvidia]`, e.g.
//! `--arch gfx90a`; `--help` lists the options.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, ValueEnum};
use rocmforge::kernels::{elf_symbols, CompileTarget, KernelCompiler, ALL_SOURCES};
use rocmforge::sys::Runtime;

/// Compiles every kernel of rocmforge for an architecture, with no GPU needed
///
/// Prints one line per kernel (name and code size), then `compiled N kernels for ARCH`;
/// exits non-zero if any source fails to compile.
#[derive(Parser, Debug)]
#[command(name = "compile_kernels")]
struct Args {
    /// The architecture to compile for: gfx* (AMD, e.g. gfx90a) or sm_* (NVIDIA, e.g. sm_90)
    #[arg(long, value_name = "ARCH")]
    arch: String,
    /// The runtime that compiles (hiprtc or NVRTC) [default: $ROCMFORGE_PLATFORM, else AMD
    /// first, then NVIDIA]
    #[arg(long, value_enum)]
    platform: Option<Platform>,
}

/// `--platform`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Platform {
    /// HIP's hiprtc
    Amd,
    /// NVRTC, through rocmforge's NVIDIA adapter
    Nvidia,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(platform) = args.platform {
        // The runtime reads ROCMFORGE_PLATFORM once, at its first use below.
        let name = match platform {
            Platform::Amd => "amd",
            Platform::Nvidia => "nvidia",
        };
        std::env::set_var("ROCMFORGE_PLATFORM", name);
    }
    let arch = args.arch;
    let runtime = match Runtime::global() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let identity = format!("{}-{}", runtime.platform(), runtime.version());
    let Some(target) = CompileTarget::for_arch(&arch, identity) else {
        Args::command()
            .error(
                clap::error::ErrorKind::InvalidValue,
                format!("--arch {arch}: not a gfx* or sm_* architecture"),
            )
            .exit();
    };
    // No cache: this command exists to prove the sources compile.
    let compiler = KernelCompiler::new(target).with_cache(None);
    let mut compiled = 0;
    let mut failed = false;
    for source in ALL_SOURCES {
        match compiler.compile(source) {
            Ok(code) => {
                let sizes = elf_symbols::function_symbols(&code).unwrap_or_default();
                for kernel in source.kernels {
                    let size = sizes
                        .iter()
                        .find(|(name, _)| name == kernel)
                        .map(|(_, s)| *s);
                    match size {
                        Some(size) => println!("{kernel:<32} {size:>8} bytes  ({})", source.name),
                        None => println!(
                            "{kernel:<32} {:>8} bytes  ({}, whole code object)",
                            code.len(),
                            source.name
                        ),
                    }
                    compiled += 1;
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e}", source.name);
                failed = true;
            }
        }
    }
    println!("compiled {compiled} kernels for {arch}");
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
