//! `cargo run -p rocmforge-bindgen [-- --include DIR] [--check]`
//!
//! Writes `rocmforge-sys/src/bindings/hip.rs` from the HIP headers, or with
//! `--check` only reports whether the checked-in file is current.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut include = rocmforge_bindgen::default_include_dir();
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
            "--check" => check = true,
            other => {
                eprintln!("unknown argument {other}; usage: rocmforge-bindgen [--include DIR] [--check]");
                return ExitCode::FAILURE;
            }
        }
    }
    let generated = match rocmforge_bindgen::generate_hip(&include) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = rocmforge_bindgen::checked_in_hip_path();
    if check {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == generated {
            println!("{} is current", path.display());
            return ExitCode::SUCCESS;
        }
        eprintln!("{} is stale: run `cargo run -p rocmforge-bindgen`", path.display());
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::write(&path, generated) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {}", path.display());
    ExitCode::SUCCESS
}
