//! Records the optimization level this crate is built at, so that the CPU backend can
//! warn when it runs unoptimized code (a dependent's debug build is ~65x slower).
fn main() {
    let level = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=ROCMFORGE_MODEL_OPT_LEVEL={level}");
    println!("cargo:rerun-if-env-changed=OPT_LEVEL");
}
