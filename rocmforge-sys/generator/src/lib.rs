//! Generates `rocmforge-sys/src/bindings/hip.rs` from the installed HIP headers.
//!
//! bindgen produces the types, constants and `extern "C"` declarations of
//! `hip/hip_runtime_api.h` and `hip/hiprtc.h`. rocmforge loads the runtime at run
//! time (and on NVIDIA implements the same functions in Rust), so an `extern`
//! block is of no use to it: each declaration is rewritten into a function
//! pointer type `PFN_<name>`, and the runtime's function table is made of those.
//!
//! Regenerate with `cargo run -p rocmforge-bindgen` (needs libclang and HIP
//! headers, e.g. Debian's `libamdhip64-dev` and `libclang-dev`). The test in
//! `tests/bindings_fresh.rs` fails when the checked-in file no longer matches.
//!
//! ROCm 6 changed `hipDeviceProp_t`: its headers name the new layout
//! `hipDeviceProp_tR0600`, filled by the new symbol `hipGetDevicePropertiesR0600`.
//! [`generate_device_prop_r0600`] makes `rocmforge-sys/src/bindings/hip_device_prop_r0600.rs`
//! from ROCm 6 or later headers (`--rocm6-include DIR`); see `README.md` beside this crate.

use std::path::{Path, PathBuf};

use quote::quote;

/// What can go wrong while generating.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The HIP headers were not found where they were looked for.
    #[error("HIP headers not found: {0} does not exist (install Debian's libamdhip64-dev or set HIP_INCLUDE_DIR)")]
    HeadersNotFound(PathBuf),
    /// bindgen (libclang) failed.
    #[error("bindgen failed on {header}: {message}")]
    Bindgen { header: String, message: String },
    /// The bindgen output could not be parsed for the rewrite.
    #[error("could not parse bindgen output: {0}")]
    Parse(#[from] syn::Error),
    /// The headers parsed, but do not define an item that was asked for (HIP 5 headers
    /// have no `hipDeviceProp_tR0600`).
    #[error("{header} does not define {item}: {hint}")]
    MissingDefinition {
        header: String,
        item: &'static str,
        hint: &'static str,
    },
}

/// Whether libclang, which bindgen needs, can be loaded here; `Err` says why not.
/// (bindgen panics when it cannot load libclang: ask first.)
pub fn libclang_available() -> Result<(), String> {
    if clang_sys::is_loaded() {
        return Ok(());
    }
    clang_sys::load()
}

/// The header directory: `$HIP_INCLUDE_DIR`, else `$ROCM_PATH/include`, else `/usr/include`
/// (Debian's layout), whichever holds `hip/hip_runtime_api.h` first.
pub fn default_include_dir() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("HIP_INCLUDE_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(root) = std::env::var_os("ROCM_PATH") {
        candidates.push(PathBuf::from(root).join("include"));
    }
    candidates.push(PathBuf::from("/opt/rocm/include"));
    candidates.push(PathBuf::from("/usr/include"));
    candidates
        .iter()
        .find(|dir| dir.join("hip/hip_runtime_api.h").is_file())
        .cloned()
        .unwrap_or_else(|| candidates.last().cloned().unwrap_or_default())
}

/// Reads `#define NAME value` from `hip/hip_version.h` (quotes stripped), or `?`.
fn hip_version_field(include_dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(include_dir.join("hip/hip_version.h")).unwrap_or_default();
    text.lines()
        .find_map(|line| {
            let rest = line.trim().strip_prefix("#define")?.trim();
            let value = rest.strip_prefix(name)?;
            // A whole name only: `HIP_VERSION` must not match `HIP_VERSION_MAJOR`.
            if !value.starts_with(char::is_whitespace) {
                return None;
            }
            Some(value.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

/// Reads `HIP_VERSION_MAJOR/MINOR/PATCH` from `hip/hip_version.h`, for the file header.
fn hip_version(include_dir: &Path) -> String {
    format!(
        "{}.{}.{}",
        hip_version_field(include_dir, "HIP_VERSION_MAJOR"),
        hip_version_field(include_dir, "HIP_VERSION_MINOR"),
        hip_version_field(include_dir, "HIP_VERSION_PATCH")
    )
}

fn builder(include_dir: &Path, wrapper: &str) -> bindgen::Builder {
    bindgen::Builder::default()
        .header_contents("rocmforge_wrapper.h", wrapper)
        .clang_arg("-D__HIP_PLATFORM_AMD__")
        .clang_arg(format!("-I{}", include_dir.display()))
        .default_enum_style(bindgen::EnumVariation::NewType {
            is_bitfield: false,
            is_global: false,
        })
        .derive_default(true)
        .derive_eq(true)
        .layout_tests(true)
        .generate_comments(true)
        .use_core()
        .size_t_is_usize(true)
        .merge_extern_blocks(true)
}

/// Generates the bindings for `hip/hip_runtime_api.h` and `hip/hiprtc.h` in `include_dir`.
pub fn generate_hip(include_dir: &Path) -> Result<String, GenerateError> {
    let api = include_dir.join("hip/hip_runtime_api.h");
    if !api.is_file() {
        return Err(GenerateError::HeadersNotFound(api));
    }
    let wrapper = "#include <hip/hip_runtime_api.h>\n#include <hip/hiprtc.h>\n";
    let bindings = builder(include_dir, wrapper)
        .allowlist_function("hip.*")
        .allowlist_type("hip.*|HIP.*")
        .allowlist_var("hip.*|HIP.*")
        .blocklist_function(".*_spt|hipExtLaunch.*|__.*")
        .generate()
        .map_err(|e| GenerateError::Bindgen {
            header: api.display().to_string(),
            message: e.to_string(),
        })?;
    let header = format!(
        "//! Types, constants and function-pointer types of `hip/hip_runtime_api.h` and\n\
         //! `hip/hiprtc.h` (HIP {}, `__HIP_PLATFORM_AMD__`).\n\
         //!\n\
         //! @generated by `cargo run -p rocmforge-bindgen`; do not edit by hand.\n",
        hip_version(include_dir)
    );
    finish(&header, &bindings.to_string())
}

/// How `hip_device_prop_r0600.rs` is regenerated, for its file header.
pub const R0600_REGENERATE: &str =
    "cargo run -p rocmforge-bindgen -- --rocm6-include DIR [--rocm6-source TEXT]";

/// Generates `hip_device_prop_r0600.rs` from ROCm 6 or later headers in `include_dir`
/// (the directory that holds `hip/hip_runtime_api.h`, e.g. `/opt/rocm-6.2.4/include`).
///
/// The file holds `hipDeviceProp_tR0600` with the types it is made of (`hipUUID`,
/// `hipDeviceArch_t`; `hip.rs` has them too, in their HIP 5 form, so the file is the
/// separate module `rocmforge_sys::bindings::hip_device_prop_r0600`), bindgen's layout
/// assertions, and `PFN_hipGetDevicePropertiesR0600`. That function returns
/// `hipError_t`, which is not generated again: the file imports `super::hip::hipError_t`,
/// so that the function fits the one function table (the codes of HIP 5.2 kept their
/// values in ROCm 6 and 7, and the type is a transparent `c_uint` that carries any code).
pub fn generate_device_prop_r0600(include_dir: &Path) -> Result<String, GenerateError> {
    generate_device_prop_r0600_with_source(include_dir, None)
}

/// [`generate_device_prop_r0600`], with `source` (where the headers came from, e.g. the
/// ROCm release and repository commit) written into the file header, one line per line.
pub fn generate_device_prop_r0600_with_source(
    include_dir: &Path,
    source: Option<&str>,
) -> Result<String, GenerateError> {
    let api = include_dir.join("hip/hip_runtime_api.h");
    if !api.is_file() {
        return Err(GenerateError::HeadersNotFound(api));
    }
    let wrapper = "#include <hip/hip_runtime_api.h>\n";
    let bindings = builder(include_dir, wrapper)
        .allowlist_type("hipDeviceProp_tR0600")
        .allowlist_function("hipGetDevicePropertiesR0600")
        .blocklist_type("hipError_t")
        .raw_line("use super::hip::hipError_t;")
        .generate()
        .map_err(|e| GenerateError::Bindgen {
            header: api.display().to_string(),
            message: e.to_string(),
        })?;
    let mut header = format!(
        "//! `hipDeviceProp_tR0600`, the device-properties layout of ROCm 6 and later, and\n\
         //! `PFN_hipGetDevicePropertiesR0600`, from `hip/hip_runtime_api.h` of HIP {}\n\
         //! (`HIP_VERSION_GITHASH` {}, `__HIP_PLATFORM_AMD__`).\n",
        hip_version(include_dir),
        hip_version_field(include_dir, "HIP_VERSION_GITHASH"),
    );
    if let Some(source) = source.map(str::trim).filter(|s| !s.is_empty()) {
        header.push_str("//!\n");
        for (i, line) in source.lines().enumerate() {
            let lead = if i == 0 { "Headers:" } else { "        " };
            header.push_str(&format!("//! {lead} {}\n", line.trim()));
        }
    }
    header.push_str(&format!(
        "//!\n\
         //! Use this layout when `hipRuntimeGetVersion` reports 60000000 (HIP 6.0) or more;\n\
         //! `hipError_t` is `super::hip::hipError_t`.\n\
         //!\n\
         //! @generated by `{R0600_REGENERATE}`; do not edit by hand.\n"
    ));
    let text = finish(&header, &bindings.to_string())?;
    for (item, needle) in [
        (
            "hipDeviceProp_tR0600",
            "\npub struct hipDeviceProp_tR0600 {",
        ),
        (
            "hipGetDevicePropertiesR0600",
            "\npub type PFN_hipGetDevicePropertiesR0600 =",
        ),
    ] {
        if !text.contains(needle) {
            return Err(GenerateError::MissingDefinition {
                header: api.display().to_string(),
                item,
                hint: "ROCm 6 or later headers are needed",
            });
        }
    }
    Ok(text)
}

/// Rewrites every `extern "C"` function declaration into `pub type PFN_<name> = unsafe
/// extern "C" fn(..) -> ..;`, keeping its doc comment, and pretty-prints the file.
fn finish(header: &str, raw: &str) -> Result<String, GenerateError> {
    let file: syn::File = syn::parse_str(raw)?;
    let mut items = Vec::with_capacity(file.items.len());
    for item in file.items {
        match item {
            syn::Item::ForeignMod(foreign) => {
                for foreign_item in foreign.items {
                    if let syn::ForeignItem::Fn(function) = foreign_item {
                        items.push(function_pointer_type(&function)?);
                    }
                }
            }
            other => items.push(other),
        }
    }
    let file = syn::File {
        shebang: None,
        attrs: Vec::new(),
        items,
    };
    let body = prettyplease::unparse(&file);
    Ok(format!("{header}\n{body}"))
}

fn function_pointer_type(function: &syn::ForeignItemFn) -> Result<syn::Item, GenerateError> {
    let docs: Vec<&syn::Attribute> = function
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .collect();
    let alias = quote::format_ident!("PFN_{}", function.sig.ident);
    let inputs = &function.sig.inputs;
    let output = &function.sig.output;
    let variadic = function.sig.variadic.as_ref().map(|_| quote!(, ...));
    let tokens = quote! {
        #(#docs)*
        pub type #alias = unsafe extern "C" fn(#inputs #variadic) #output;
    };
    Ok(syn::parse2(tokens)?)
}

/// Where the checked-in HIP bindings live, relative to this crate.
pub fn checked_in_hip_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/bindings/hip.rs")
}

/// Where the checked-in ROCm 6 device-properties bindings live, relative to this crate.
pub fn checked_in_r0600_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/bindings/hip_device_prop_r0600.rs")
}
