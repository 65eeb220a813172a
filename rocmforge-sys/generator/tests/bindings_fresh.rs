//! The checked-in bindings must be what bindgen makes from the installed headers.
//! CI installs Debian's `libamdhip64-dev` (HIP 5.2) and `libclang-dev` for this.

#[test]
fn checked_in_hip_bindings_match_installed_headers() {
    let include = rocmforge_bindgen::default_include_dir();
    let generated = rocmforge_bindgen::generate_hip(&include).unwrap_or_else(|e| {
        panic!("cannot regenerate the bindings: {e}. Install libamdhip64-dev and libclang-dev.")
    });
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
