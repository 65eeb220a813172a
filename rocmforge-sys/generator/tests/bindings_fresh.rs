//! The checked-in bindings must be what bindgen makes from the installed headers.
//!
//! Needs HIP headers (Debian: `libamdhip64-dev`) and libclang (`libclang-dev`). Where
//! either is missing the test says so on stderr and passes as skipped; with
//! `ROCMFORGE_REQUIRE_HIP=1` (CI, which installs them) a missing one is a failure.

use std::io::Write;

/// Reports a test that cannot run here: a failure when `ROCMFORGE_REQUIRE_HIP=1`, else a
/// line on stderr written past the test harness's capture, so that a plain `cargo test`
/// shows it.
fn skip(reason: &str) {
    let required = std::env::var("ROCMFORGE_REQUIRE_HIP").is_ok_and(|v| v == "1");
    assert!(!required, "ROCMFORGE_REQUIRE_HIP=1 but {reason}");
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {reason} (Debian/Ubuntu: apt-get install libamdhip64-dev libclang-dev)"
    );
}

#[test]
fn checked_in_hip_bindings_match_installed_headers() {
    let include = rocmforge_bindgen::default_include_dir();
    if !include.join("hip/hip_runtime_api.h").is_file() {
        return skip(
            "no HIP headers (hip/hip_runtime_api.h) under $HIP_INCLUDE_DIR, $ROCM_PATH/include, \
             /opt/rocm/include or /usr/include: the bindings freshness check did not run",
        );
    }
    if let Err(e) = rocmforge_bindgen::libclang_available() {
        return skip(&format!(
            "libclang cannot be loaded ({e}): the bindings freshness check did not run"
        ));
    }
    let generated = rocmforge_bindgen::generate_hip(&include)
        .unwrap_or_else(|e| panic!("cannot regenerate the bindings: {e}"));
    let path = rocmforge_bindgen::checked_in_hip_path();
    let current = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        current == generated,
        "{} is stale against the headers in {}: run `cargo run -p rocmforge-bindgen` and commit the result",
        path.display(),
        include.display()
    );
}
