//! Opening a shared library from a list of candidates, and the macro that declares a
//! table of functions resolved from it (used for the CUDA driver and for NVRTC).

use std::path::{Path, PathBuf};

use crate::{LoadAttempt, Platform};

/// Opens the first library of `candidates` that the dynamic loader accepts. Every
/// failure is recorded in `tried` (platform [`Platform::Nvidia`]).
pub(crate) fn open_first(
    candidates: &[PathBuf],
    tried: &mut Vec<LoadAttempt>,
) -> Option<(libloading::Library, PathBuf)> {
    for path in candidates {
        // SAFETY: loading a shared library runs its initializers. The candidates are the
        // CUDA driver (`libcuda`) and NVRTC (`libnvrtc`), whose initializers are made to
        // run in any process that links or dlopens them.
        match unsafe { libloading::Library::new(path) } {
            Ok(library) => return Some((library, path.clone())),
            Err(e) => tried.push(LoadAttempt {
                platform: Platform::Nvidia,
                path: path.clone(),
                reason: e.to_string(),
            }),
        }
    }
    None
}

/// `dir/name` for every directory and name, directories outermost, then the bare names
/// (for the dynamic loader's own search path: `LD_LIBRARY_PATH`, `ld.so.cache`).
pub(crate) fn candidates_in(dirs: &[PathBuf], names: &[&str]) -> Vec<PathBuf> {
    let mut unique: Vec<&Path> = Vec::new();
    for dir in dirs {
        if !unique.contains(&dir.as_path()) {
            unique.push(dir);
        }
    }
    let mut out: Vec<PathBuf> = unique
        .iter()
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .collect();
    out.extend(names.iter().map(PathBuf::from));
    out
}

/// Declares a struct of `unsafe extern "C"` function pointers and its loader.
///
/// Each entry names the field, the exported symbols to try in order (the first one the
/// library has wins), and the C signature written out from the vendor header.
macro_rules! library_table {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
        calls $calls:ident;
        $(
            $(#[$fdoc:meta])*
            $field:ident [$($symbol:literal),+] : fn($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty;
        )*
    ) => {
        $(#[$meta])*
        #[allow(non_snake_case)]
        #[derive(Clone, Copy)]
        $vis struct $name {
            $(
                $(#[$fdoc])*
                pub $field: unsafe extern "C" fn($($arg: $ty),*) -> $ret,
            )*
        }

        /// One entry per function of the table: names the call in error messages.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $calls {
            $(
                #[doc = concat!("`", stringify!($field), "`")]
                $field,
            )*
        }

        #[allow(dead_code)] // not every table uses every helper
        impl $calls {
            /// Every call, in table order.
            pub const ALL: &'static [$calls] = &[$($calls::$field),*];

            /// The function's name as the vendor documents it.
            pub fn name(self) -> &'static str {
                match self {
                    $($calls::$field => stringify!($field),)*
                }
            }

            /// The position of this call in [`Self::ALL`].
            pub fn index(self) -> usize {
                self as usize
            }
        }

        impl $name {
            /// Resolves every function of the table in `library`.
            ///
            /// # Safety
            /// `library` must export these symbols with exactly the C signatures written
            /// in the table, and must stay loaded for as long as the table is used.
            pub(crate) unsafe fn load(
                library: &libloading::Library,
                path: &std::path::Path,
            ) -> Result<Self, $crate::LoadError> {
                Ok(Self {
                    $($field: {
                        let mut found = None;
                        let mut reason = String::new();
                        for symbol in [$($symbol),+] {
                            let with_nul = format!("{symbol}\0");
                            // SAFETY: the caller guarantees the symbol has this signature.
                            let got = unsafe {
                                library.get::<unsafe extern "C" fn($($ty),*) -> $ret>(
                                    with_nul.as_bytes(),
                                )
                            };
                            match got {
                                Ok(f) => {
                                    found = Some(*f);
                                    break;
                                }
                                Err(e) => {
                                    if !reason.is_empty() {
                                        reason.push_str("; ");
                                    }
                                    reason.push_str(&e.to_string());
                                }
                            }
                        }
                        found.ok_or_else(|| $crate::LoadError::MissingSymbol {
                            library: path.to_path_buf(),
                            symbol: stringify!($field),
                            reason,
                        })?
                    },)*
                })
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use library_table;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bogus_paths_are_all_recorded() {
        let candidates = vec![
            PathBuf::from("/nonexistent/rocmforge/libcuda.so.1"),
            PathBuf::from("/nonexistent/rocmforge/libcuda.so"),
        ];
        let mut tried = Vec::new();
        assert!(open_first(&candidates, &mut tried).is_none());
        assert_eq!(tried.len(), 2);
        assert_eq!(tried[0].path, candidates[0]);
        assert_eq!(tried[1].path, candidates[1]);
        assert!(tried
            .iter()
            .all(|t| t.platform == Platform::Nvidia && !t.reason.is_empty()));
    }

    #[test]
    fn candidates_are_directories_then_bare_names() {
        let c = candidates_in(
            &[
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/a"),
            ],
            &["x.so.2", "x.so"],
        );
        let expect: Vec<PathBuf> = [
            "/a/x.so.2",
            "/a/x.so",
            "/b/x.so.2",
            "/b/x.so",
            "x.so.2",
            "x.so",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(c, expect);
    }
}
