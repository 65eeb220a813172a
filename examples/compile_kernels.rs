//! Compiles every kernel of rocmforge for an architecture, with no GPU needed, and
//! prints one line per kernel (name and code size), then `compiled N kernels for ARCH`.
//! Exits non-zero if any source fails to compile.
//!
//! `cargo run --example compile_kernels -- --arch gfx90a [--platform amd|nvidia]`

use std::process::ExitCode;

use rocmforge::kernels::{elf_symbols, CompileTarget, KernelCompiler, ALL_SOURCES};
use rocmforge::sys::Runtime;

fn main() -> ExitCode {
    let mut arch = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--arch" => arch = args.next(),
            "--platform" => match args.next() {
                // The runtime reads ROCMFORGE_PLATFORM once, at its first use below.
                Some(p) => std::env::set_var("ROCMFORGE_PLATFORM", p),
                None => return usage("--platform needs amd or nvidia"),
            },
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let Some(arch) = arch else {
        return usage("--arch is required");
    };
    let runtime = match Runtime::global() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let identity = format!("{}-{}", runtime.platform(), runtime.version());
    let Some(target) = CompileTarget::for_arch(&arch, identity) else {
        return usage(&format!("{arch} is not a gfx* or sm_* architecture"));
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

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}\nusage: compile_kernels --arch ARCH [--platform amd|nvidia]");
    ExitCode::FAILURE
}
