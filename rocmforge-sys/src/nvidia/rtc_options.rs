//! hiprtc compile options translated into NVRTC options.
//!
//! | hiprtc option | NVRTC option | why |
//! |---|---|---|
//! | `--gpu-architecture=X`, `--offload-arch=X`, `-arch=X`, `-arch X`, `--gpu-architecture X` | `--gpu-architecture=sm_NN` (first in the list) | a real architecture, so that NVRTC makes a CUBIN (`nvrtcGetCUBIN`); `compute_NN` becomes `sm_NN`; the last one given wins; an AMD target (`gfx90a`) is an error |
//! | (none of the above) | `--gpu-architecture=<current device's sm_XY>` | hiprtc also compiles for the current device by default |
//! | `-O`, `-O0`…`-O3`, `-Os`, `-Oz` | dropped | NVRTC always optimizes (it has no `-O` levels; `-G` would turn optimization off) |
//! | `-ffast-math` / `-fno-fast-math` | `--use_fast_math` / dropped | |
//! | `-std=X`, `--std=X`, `-std X` | `--std=X` | |
//! | `-ffp-contract=fast`, `=on`, `=fast-honor-pragmas` / `-ffp-contract=off` | `--fmad=true` / `--fmad=false` | |
//! | `-DNAME[=V]`, `-D NAME[=V]`, `-IDIR`, `-I DIR` | `-DNAME[=V]`, `-IDIR` | a separated value is joined |
//! | `-g` | `--generate-line-info` | line info without giving up optimization (`-G` would) |
//! | `-fgpu-rdc` / `-fno-gpu-rdc` | `--relocatable-device-code=true` / dropped | |
//! | `-mcumode`, `-mno-cumode`, `-mwavefrontsize64`, `-mno-wavefrontsize64`, `-munsafe-fp-atomics`, `-mno-unsafe-fp-atomics` | dropped | AMD code-generation switches with no NVIDIA meaning |
//! | anything else (`-w`, `--define-macro=`, `-maxrregcount=`, `-lineinfo`, …) | passed through unchanged | NVRTC rejects what it does not know (`HIPRTC_ERROR_INVALID_OPTION`) |
//!
//! `-default-device` is not added: it would let unannotated functions compile on NVIDIA
//! that hiprtc rejects on AMD. Source can tell NVRTC apart with `__CUDACC_RTC__`.

use std::fmt;

/// Why a hiprtc option list cannot be compiled by NVRTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionError {
    /// The architecture option names no NVIDIA target (`sm_NN`, `compute_NN`).
    UnsupportedArch(String),
    /// An option that takes a value (`-arch`, `-D`, `-I`, `-std`) ended the list.
    MissingValue(String),
    /// No architecture was given and none was known for the current device.
    NoArch,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::UnsupportedArch(arch) => write!(
                f,
                "architecture {arch:?} is not an NVIDIA target: the NVIDIA adapter compiles for sm_XY \
                 (use the device's gcnArchName)"
            ),
            OptionError::MissingValue(option) => write!(f, "option {option:?} needs a value"),
            OptionError::NoArch => f.write_str("no target architecture given and no current device"),
        }
    }
}

/// The result of [`translate_options`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslatedOptions {
    /// The real architecture compiled for, e.g. `sm_90`.
    pub arch: String,
    /// The NVRTC options, `--gpu-architecture=…` first.
    pub options: Vec<String>,
}

/// A `sm_NN`, `sm_NNa`, `sm_NNf` target, from an NVIDIA architecture name (`compute_NN`
/// becomes `sm_NN`: a CUBIN needs a real architecture).
pub fn normalize_arch(name: &str) -> Result<String, OptionError> {
    let rest = name
        .strip_prefix("sm_")
        .or_else(|| name.strip_prefix("compute_"))
        .ok_or_else(|| OptionError::UnsupportedArch(name.to_string()))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let suffix = &rest[digits..];
    if digits < 2 || !matches!(suffix, "" | "a" | "f") {
        return Err(OptionError::UnsupportedArch(name.to_string()));
    }
    Ok(format!("sm_{rest}"))
}

const DROPPED: &[&str] = &[
    "-O",
    "-O0",
    "-O1",
    "-O2",
    "-O3",
    "-Os",
    "-Oz",
    "-fno-fast-math",
    "-fno-gpu-rdc",
    "-mcumode",
    "-mno-cumode",
    "-mwavefrontsize64",
    "-mno-wavefrontsize64",
    "-munsafe-fp-atomics",
    "-mno-unsafe-fp-atomics",
];

/// Translates a hiprtc option list into NVRTC options (see the module's table).
/// `default_arch` is used when the list names no architecture.
pub fn translate_options<S: AsRef<str>>(
    hip: &[S],
    default_arch: Option<&str>,
) -> Result<TranslatedOptions, OptionError> {
    let mut arch: Option<String> = None;
    let mut out = Vec::with_capacity(hip.len() + 1);
    let mut i = 0;
    let value_after = |i: usize, option: &str| -> Result<String, OptionError> {
        hip.get(i + 1)
            .map(|v| v.as_ref().to_string())
            .ok_or_else(|| OptionError::MissingValue(option.to_string()))
    };
    while i < hip.len() {
        let option = hip[i].as_ref();
        let arch_value = ["--gpu-architecture=", "--offload-arch=", "-arch="]
            .iter()
            .find_map(|prefix| option.strip_prefix(prefix));
        if let Some(value) = arch_value {
            arch = Some(normalize_arch(value)?);
        } else if option == "-arch" || option == "--gpu-architecture" {
            arch = Some(normalize_arch(&value_after(i, option)?)?);
            i += 1;
        } else if DROPPED.contains(&option) {
        } else if option == "-ffast-math" {
            out.push("--use_fast_math".to_string());
        } else if let Some(std) = option
            .strip_prefix("-std=")
            .or_else(|| option.strip_prefix("--std="))
        {
            out.push(format!("--std={std}"));
        } else if option == "-std" {
            out.push(format!("--std={}", value_after(i, option)?));
            i += 1;
        } else if let Some(contract) = option.strip_prefix("-ffp-contract=") {
            let fmad = if contract == "off" { "false" } else { "true" };
            out.push(format!("--fmad={fmad}"));
        } else if option == "-D" || option == "-I" {
            out.push(format!("{option}{}", value_after(i, option)?));
            i += 1;
        } else if option == "-g" {
            out.push("--generate-line-info".to_string());
        } else if option == "-fgpu-rdc" {
            out.push("--relocatable-device-code=true".to_string());
        } else {
            out.push(option.to_string());
        }
        i += 1;
    }
    let arch = match arch {
        Some(arch) => arch,
        None => normalize_arch(default_arch.ok_or(OptionError::NoArch)?)?,
    };
    out.insert(0, format!("--gpu-architecture={arch}"));
    Ok(TranslatedOptions { arch, options: out })
}

/// Whether a hiprtc option list names a target architecture itself.
pub fn names_arch<S: AsRef<str>>(hip: &[S]) -> bool {
    hip.iter().any(|o| {
        let o = o.as_ref();
        o.starts_with("--gpu-architecture")
            || o.starts_with("--offload-arch=")
            || o.starts_with("-arch")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(options: &[&str]) -> Result<Vec<String>, OptionError> {
        translate_options(options, Some("sm_90")).map(|t| t.options)
    }

    #[test]
    fn a_typical_rocmforge_list() {
        let got = t(&[
            "--offload-arch=sm_90",
            "-O3",
            "-std=c++17",
            "-ffast-math",
            "-DWARP_SIZE=32",
            "-I",
            "/inc",
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                "--gpu-architecture=sm_90",
                "--std=c++17",
                "--use_fast_math",
                "-DWARP_SIZE=32",
                "-I/inc"
            ]
        );
    }

    #[test]
    fn architecture_forms() {
        for form in [
            vec!["--gpu-architecture=sm_86"],
            vec!["--offload-arch=sm_86"],
            vec!["-arch=sm_86"],
            vec!["-arch", "sm_86"],
            vec!["--gpu-architecture", "sm_86"],
            vec!["--gpu-architecture=compute_86"],
        ] {
            let got = translate_options(&form, Some("sm_90")).unwrap();
            assert_eq!(got.arch, "sm_86", "{form:?}");
            assert_eq!(got.options, ["--gpu-architecture=sm_86"], "{form:?}");
        }
        assert_eq!(
            translate_options(&["-arch=sm_90a"], None).unwrap().arch,
            "sm_90a"
        );
        assert_eq!(
            translate_options(&["-arch=sm_100f"], None).unwrap().arch,
            "sm_100f"
        );
        // The last one wins.
        assert_eq!(
            translate_options(&["-arch=sm_80", "-arch=sm_90"], None)
                .unwrap()
                .arch,
            "sm_90"
        );
    }

    #[test]
    fn default_arch_is_used_when_none_is_named() {
        let got = translate_options(&["-O2"], Some("sm_75")).unwrap();
        assert_eq!(got.options, ["--gpu-architecture=sm_75"]);
        assert_eq!(translate_options(&["-O2"], None), Err(OptionError::NoArch));
        assert!(!names_arch(&["-O2", "-DX"]));
        assert!(names_arch(&["--offload-arch=sm_90"]));
        assert!(names_arch(&["-arch", "sm_90"]));
    }

    #[test]
    fn amd_targets_are_refused_with_a_message() {
        let err = translate_options(&["--offload-arch=gfx90a:sramecc+:xnack-"], Some("sm_90"))
            .unwrap_err();
        assert_eq!(
            err,
            OptionError::UnsupportedArch("gfx90a:sramecc+:xnack-".to_string())
        );
        assert!(err.to_string().contains("sm_XY"));
        for bad in ["sm_9", "sm_", "sm_90x", "compute_", "90"] {
            assert!(normalize_arch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_translations() {
        assert_eq!(t(&["-ffp-contract=fast"]).unwrap()[1], "--fmad=true");
        assert_eq!(t(&["-ffp-contract=off"]).unwrap()[1], "--fmad=false");
        assert_eq!(t(&["-std", "c++20"]).unwrap()[1], "--std=c++20");
        assert_eq!(t(&["--std=c++17"]).unwrap()[1], "--std=c++17");
        assert_eq!(t(&["-D", "A=1"]).unwrap()[1], "-DA=1");
        assert_eq!(t(&["-g"]).unwrap()[1], "--generate-line-info");
        assert_eq!(
            t(&["-fgpu-rdc"]).unwrap()[1],
            "--relocatable-device-code=true"
        );
        assert_eq!(
            t(&["-mcumode", "-mwavefrontsize64", "-fno-fast-math", "-Os"])
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            t(&["-w", "-maxrregcount=64"]).unwrap()[1..],
            ["-w", "-maxrregcount=64"]
        );
        assert_eq!(t(&["-D"]), Err(OptionError::MissingValue("-D".to_string())));
        assert_eq!(
            t(&["-arch"]),
            Err(OptionError::MissingValue("-arch".to_string()))
        );
    }

    proptest! {
        #[test]
        fn defines_and_includes_pass_through(
            name in "[A-Z_][A-Z0-9_]{0,12}",
            value in "[a-z0-9]{0,6}",
            dir in "/[a-z]{1,8}",
        ) {
            let define = format!("-D{name}={value}");
            let include = format!("-I{dir}");
            let got = t(&[define.as_str(), include.as_str()]).unwrap();
            prop_assert_eq!(got, vec!["--gpu-architecture=sm_90".to_string(), define, include]);
        }

        #[test]
        fn optimization_levels_vanish(level in 0u8..4, flags in prop::collection::vec("-D[A-Z]{1,4}", 0..4)) {
            let mut options: Vec<String> = flags.clone();
            options.push(format!("-O{level}"));
            let got = t(&options.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
            prop_assert_eq!(got.len(), flags.len() + 1);
            prop_assert!(got.iter().all(|o| !o.starts_with("-O")));
        }

        #[test]
        fn exactly_one_architecture_always_first(major in 5u32..13, minor in 0u32..10, extra in prop::collection::vec("-D[A-Z]{1,3}", 0..3)) {
            let arch = format!("sm_{major}{minor}");
            let mut options = extra.clone();
            options.insert(0, format!("--offload-arch={arch}"));
            let got = translate_options(&options, None).unwrap();
            prop_assert_eq!(&got.options[0], &format!("--gpu-architecture={arch}"));
            prop_assert_eq!(got.options.iter().filter(|o| o.starts_with("--gpu-architecture")).count(), 1);
        }
    }
}
