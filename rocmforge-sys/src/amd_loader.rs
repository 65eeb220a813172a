//! Finds and loads `libamdhip64` (and hiprtc) for the AMD platform.

use std::path::{Path, PathBuf};

use crate::{HipApi, HiprtcApi, LoadAttempt, LoadError, Platform};

/// The HIP runtime file names, newest first.
pub const HIP_LIBRARY_NAMES: &[&str] = &[
    "libamdhip64.so.7",
    "libamdhip64.so.6",
    "libamdhip64.so.5",
    "libamdhip64.so",
];

/// The environment variable that names an explicit HIP runtime library.
pub const HIP_LIB_ENV: &str = "ROCMFORGE_HIP_LIB";

/// Where to look for `libamdhip64`, in order.
///
/// An explicit path (`ROCMFORGE_HIP_LIB`) is the only candidate when given: the user
/// asked for that file. Otherwise `$ROCM_PATH/lib`, `/opt/rocm/lib`, then bare names
/// for the dynamic loader's own search path (`LD_LIBRARY_PATH`, `ld.so.cache`).
pub fn hip_library_candidates(explicit: Option<&Path>, rocm_path: Option<&Path>) -> Vec<PathBuf> {
    if let Some(path) = explicit {
        return vec![path.to_path_buf()];
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(root) = rocm_path {
        dirs.push(root.join("lib"));
    }
    let opt = PathBuf::from("/opt/rocm/lib");
    if !dirs.contains(&opt) {
        dirs.push(opt);
    }
    let mut candidates: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|dir| HIP_LIBRARY_NAMES.iter().map(move |name| dir.join(name)))
        .collect();
    candidates.extend(HIP_LIBRARY_NAMES.iter().map(PathBuf::from));
    candidates
}

/// Where to look for hiprtc when the HIP library itself does not export it (HIP 6+):
/// beside the HIP library first, then the loader path.
/// The hiprtc major matches HIP's (`libamdhip64.so.6` goes with `libhiprtc.so.6`).
pub fn hiprtc_library_candidates(hip_library: &Path) -> Vec<PathBuf> {
    let file = hip_library
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("");
    const NAMES: &[&str] = &["libhiprtc.so.7", "libhiprtc.so.6", "libhiprtc.so"];
    let matching: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|name| match name.rsplit_once(".so.") {
            Some((_, major)) => !file.contains(".so.") || file.ends_with(&format!(".so.{major}")),
            None => true,
        })
        .collect();
    let mut candidates = Vec::new();
    if let Some(dir) = hip_library.parent().filter(|d| !d.as_os_str().is_empty()) {
        candidates.extend(matching.iter().map(|name| dir.join(name)));
    }
    candidates.extend(matching.iter().map(PathBuf::from));
    candidates
}

/// What an AMD load produced.
pub(crate) struct AmdRuntime {
    pub hip: HipApi,
    pub hiprtc: Result<HiprtcApi, LoadError>,
    pub path: PathBuf,
    pub libraries: Vec<libloading::Library>,
}

fn open(path: &Path, tried: &mut Vec<LoadAttempt>) -> Option<libloading::Library> {
    // SAFETY: loading a shared library runs its initializers; the HIP runtime's
    // initializers are designed to run in any process that links it.
    match unsafe { libloading::Library::new(path) } {
        Ok(library) => Some(library),
        Err(e) => {
            tried.push(LoadAttempt {
                platform: Platform::Amd,
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
            None
        }
    }
}

/// Loads the first HIP runtime among `candidates`, recording every failure in `tried`.
pub(crate) fn load(
    candidates: &[PathBuf],
    tried: &mut Vec<LoadAttempt>,
) -> Result<Option<AmdRuntime>, LoadError> {
    for path in candidates {
        let Some(library) = open(path, tried) else {
            continue;
        };
        // SAFETY: a library named libamdhip64 exports the HIP runtime API with the
        // signatures of hip_runtime_api.h; it stays loaded in `libraries` below.
        let hip = unsafe { HipApi::load(&library, path) }?;
        // HIP 5 carries hiprtc in the runtime; HIP 6+ moved it to libhiprtc.
        // SAFETY: as above, for hiprtc.h's signatures.
        let (hiprtc, extra) = match unsafe { HiprtcApi::load(&library, path) } {
            Ok(api) => (Ok(api), None),
            Err(first) => load_separate_hiprtc(path, first),
        };
        let mut libraries = vec![library];
        libraries.extend(extra);
        return Ok(Some(AmdRuntime {
            hip,
            hiprtc,
            path: path.clone(),
            libraries,
        }));
    }
    Ok(None)
}

fn load_separate_hiprtc(
    hip_path: &Path,
    first: LoadError,
) -> (Result<HiprtcApi, LoadError>, Option<libloading::Library>) {
    let mut tried = Vec::new();
    for path in hiprtc_library_candidates(hip_path) {
        let Some(library) = open(&path, &mut tried) else {
            continue;
        };
        // SAFETY: libhiprtc exports hiprtc.h's functions; the library is returned and kept.
        return match unsafe { HiprtcApi::load(&library, &path) } {
            Ok(api) => (Ok(api), Some(library)),
            Err(e) => (Err(e), None),
        };
    }
    if tried.is_empty() {
        (Err(first), None)
    } else {
        (Err(LoadError::RuntimeNotFound { tried }), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn explicit_path_is_the_only_candidate() {
        let c = hip_library_candidates(Some(Path::new("/x/libamdhip64.so")), Some(Path::new("/r")));
        assert_eq!(c, vec![PathBuf::from("/x/libamdhip64.so")]);
    }

    #[test]
    fn default_order_is_rocm_path_opt_then_loader() {
        let c = hip_library_candidates(None, Some(Path::new("/r")));
        assert_eq!(c[0], PathBuf::from("/r/lib/libamdhip64.so.7"));
        assert_eq!(c[4], PathBuf::from("/opt/rocm/lib/libamdhip64.so.7"));
        assert_eq!(c[8], PathBuf::from("libamdhip64.so.7"));
        assert_eq!(c.last().unwrap(), &PathBuf::from("libamdhip64.so"));
        assert_eq!(c.len(), 12);
    }

    #[test]
    fn rocm_path_equal_to_opt_is_not_repeated() {
        let c = hip_library_candidates(None, Some(Path::new("/opt/rocm")));
        assert_eq!(c.len(), 8);
    }

    #[test]
    fn hiprtc_is_looked_for_beside_hip_first() {
        let c = hiprtc_library_candidates(Path::new("/opt/rocm/lib/libamdhip64.so.6"));
        assert_eq!(c[0], PathBuf::from("/opt/rocm/lib/libhiprtc.so.6"));
        assert_eq!(c[1], PathBuf::from("/opt/rocm/lib/libhiprtc.so"));
        assert_eq!(c[2], PathBuf::from("libhiprtc.so.6"));
        assert!(!c.iter().any(|p| p.ends_with("libhiprtc.so.7")));
        let bare = hiprtc_library_candidates(Path::new("libamdhip64.so"));
        assert_eq!(bare[0], PathBuf::from("libhiprtc.so.7"));
    }

    proptest! {
        #[test]
        fn every_version_is_tried_in_every_directory(root in "/[a-z]{1,8}(/[a-z]{1,8}){0,2}") {
            let c = hip_library_candidates(None, Some(Path::new(&root)));
            for name in HIP_LIBRARY_NAMES {
                prop_assert!(c.contains(&Path::new(&root).join("lib").join(name)));
                prop_assert!(c.contains(&PathBuf::from(name)));
            }
            // Newest version first within each directory.
            let pos = |p: PathBuf| c.iter().position(|x| *x == p).unwrap();
            let lib = Path::new(&root).join("lib");
            prop_assert!(pos(lib.join("libamdhip64.so.7")) < pos(lib.join("libamdhip64.so.5")));
        }
    }
}
