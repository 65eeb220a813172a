//! `cargo run -p rocmforge-bindgen [-- --include DIR] [--check]`
//! `cargo run -p rocmforge-bindgen -- --rocm6-include DIR [--rocm6-source TEXT] [--check]`
//!
//! Writes `rocmforge-sys/src/bindings/hip.rs` from the HIP headers, or with
//! `--check` only reports whether the checked-in file is current.
//!
//! With `--rocm6-include DIR` (ROCm 6 or later headers, e.g. `/opt/rocm/include`) it
//! writes (or checks) only `rocmforge-sys/src/bindings/hip_device_prop_r0600.rs`;
//! `--rocm6-source TEXT` records in that file's header where the headers came from.
//! See `README.md` beside this crate.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: rocmforge-bindgen [--include DIR] [--check]\n       \
                     rocmforge-bindgen --rocm6-include DIR [--rocm6-source TEXT] [--check]";

fn main() -> ExitCode {
    let mut include = rocmforge_bindgen::default_include_dir();
    let mut rocm6_include: Option<PathBuf> = None;
    let mut rocm6_source: Option<String> = None;
    let mut check = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--include" => match args.next() {
                Some(dir) => include = dir.into(),
                None => {
                    eprintln!("--include needs a directory");
                    return ExitCode::FAILURE;
                }
            },
            "--rocm6-include" => match args.next() {
                Some(dir) => rocm6_include = Some(dir.into()),
                None => {
                    eprintln!("--rocm6-include needs a directory");
                    return ExitCode::FAILURE;
                }
            },
            "--rocm6-source" => match args.next() {
                Some(text) => rocm6_source = Some(text),
                None => {
                    eprintln!("--rocm6-source needs a text");
                    return ExitCode::FAILURE;
                }
            },
            "--check" => check = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other}\n{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    if rocm6_source.is_some() && rocm6_include.is_none() {
        eprintln!("--rocm6-source goes with --rocm6-include\n{USAGE}");
        return ExitCode::FAILURE;
    }
    let (generated, path, regenerate) = match &rocm6_include {
        Some(dir) => (
            rocmforge_bindgen::generate_device_prop_r0600_with_source(dir, rocm6_source.as_deref()),
            rocmforge_bindgen::checked_in_r0600_path(),
            rocmforge_bindgen::R0600_REGENERATE,
        ),
        None => (
            rocmforge_bindgen::generate_hip(&include),
            rocmforge_bindgen::checked_in_hip_path(),
            "cargo run -p rocmforge-bindgen",
        ),
    };
    let generated = match generated {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == generated {
            println!("{} is current", path.display());
            return ExitCode::SUCCESS;
        }
        eprintln!("{} is stale: run `{regenerate}`", path.display());
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::write(&path, generated) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {}", path.display());
    ExitCode::SUCCESS
}
