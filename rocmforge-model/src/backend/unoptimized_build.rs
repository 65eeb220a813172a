//! One warning, once per process, when the CPU backend runs unoptimized code.
//!
//! Cargo's `[profile.dev.package]` settings of this workspace do not reach programs that
//! depend on rocmforge: in their debug build the CPU ops compile at `opt-level = 0` and
//! generation is ~65x slower than in a release build (measured: 224 s against 3.4 s for
//! 64 tokens of the demo model). Nothing fails, so without a word the user would only
//! see a very slow library.

use std::io::Write;
use std::sync::Once;

/// The crates whose optimization level decides the CPU backend's speed, with the level
/// each was built at.
const CRATES: [(&str, &str); 2] = [
    ("rocmforge-kernels", rocmforge_kernels::cpu::BUILD_OPT_LEVEL),
    ("rocmforge-model", env!("ROCMFORGE_MODEL_OPT_LEVEL")),
];

/// The warning for `levels` (crate, opt-level), or `None` when every one is optimized.
fn warning(levels: &[(&str, &str)]) -> Option<String> {
    let slow: Vec<&str> = levels
        .iter()
        .filter(|(_, level)| *level == "0")
        .map(|(name, _)| *name)
        .collect();
    if slow.is_empty() {
        return None;
    }
    Some(format!(
        "rocmforge: warning: the CPU backend runs unoptimized code ({} built at opt-level 0) \
         and generates about 65x slower than a release build; build with --release, or add \
         `[profile.dev.package.\"*\"] opt-level = 3` to your Cargo.toml (docs/embedding.md)",
        slow.join(", ")
    ))
}

/// Prints the warning on stderr the first time a CPU backend is made in an unoptimized
/// build; does nothing otherwise.
pub(crate) fn warn_once_if_unoptimized() {
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        if let Some(message) = warning(&CRATES) {
            // Straight to the stderr handle, so that it is seen even under a test
            // harness's output capture.
            let _ = writeln!(std::io::stderr(), "{message}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimized_crates_give_no_warning() {
        assert_eq!(warning(&[("a", "3"), ("b", "2"), ("c", "s")]), None);
    }

    #[test]
    fn the_warning_names_the_unoptimized_crates_and_the_fix() {
        let w = warning(&[("rocmforge-kernels", "0"), ("rocmforge-model", "3")]).unwrap();
        assert!(w.contains("rocmforge-kernels built at opt-level 0"), "{w}");
        assert!(!w.contains("rocmforge-model"), "{w}");
        assert!(
            w.contains("--release") && w.contains("opt-level = 3"),
            "{w}"
        );
        assert!(!w.contains('\n'), "one line: {w}");
    }

    #[test]
    fn this_workspace_builds_the_cpu_ops_optimized_even_in_test_builds() {
        // The workspace's [profile.dev.package] settings: the tests run the model.
        assert_eq!(warning(&CRATES), None, "{CRATES:?}");
    }
}
