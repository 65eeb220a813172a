//! Denylist test: the safe crates never name a HIP (or CUDA) call that waits on
//! more than one stream or on the whole device.
//!
//! Every `.rs` file under `rocmforge-hip/src`, `rocmforge-kernels/src`,
//! `rocmforge-model/src` and the facade's `src` is read, its comments are removed
//! (code and string literals are kept), and every whole identifier that is left is
//! compared with [`DENYLIST`]. A name inside a string literal or a `stringify!` counts:
//! that is how a symbol would be looked up at run time. `rocmforge-sys` is not
//! scanned: it is the raw table and the NVIDIA adapter, where such names are
//! declared on purpose.
//!
//! Why each name is here, with sources, is in `docs/sync-safety.md`; a test below
//! checks that the document mentions every denylisted name.

use std::fs;
use std::path::{Path, PathBuf};

/// Source trees that are scanned, relative to the facade package root.
const SCANNED_DIRS: &[&str] = &[
    "rocmforge-hip/src",
    "rocmforge-kernels/src",
    "rocmforge-model/src",
    "src",
];

/// The document that explains every denylisted name.
const SYNC_DOC: &str = "docs/sync-safety.md";

/// Identifiers the safe crates must not reference, each with the reason.
///
/// Matching is on whole identifiers, so `hipMemcpyAsync`, `hipMemsetAsync`,
/// `hipFreeAsync`, `hipMallocAsync`, `hipStreamCreateWithFlags`,
/// `hipStreamSynchronize` and `hipEventSynchronize` are not affected.
#[rustfmt::skip]
const DENYLIST: &[(&str, &str)] = &[
    // Explicit device- or context-wide waits and resets.
    ("hipDeviceSynchronize", "waits for every stream of the device"),
    ("hipDeviceReset", "destroys every stream and allocation of the device"),
    ("hipCtxSynchronize", "waits for the whole context (deprecated)"),
    // Blocking streams and the null / default streams.
    ("hipStreamCreate", "creates a blocking stream, which synchronizes with the null stream"),
    ("hipExtStreamCreateWithCUMask", "creates a blocking stream (hipStreamDefault)"),
    ("hipStreamDefault", "the flag of blocking streams"),
    ("hipStreamLegacy", "the legacy null stream, which synchronizes with every blocking stream"),
    ("hipStreamPerThread", "the per-thread default stream, a blocking stream"),
    // Frees that synchronize the device.
    ("hipFree", "waits for all streams of the device unless the memory came from a pool"),
    ("hipFreeArray", "waits for all streams of the device"),
    ("hipArrayDestroy", "waits for all streams of the device"),
    ("hipHostFree", "performs an implicit hipDeviceSynchronize"),
    ("hipFreeHost", "deprecated alias of hipHostFree"),
    ("hipHostUnregister", "waits for all streams of the device"),
    ("hipIpcCloseMemHandle", "waits for the null stream"),
    // Synchronous allocators: their memory can only be released with hipFree.
    ("hipMalloc", "device memory allocation; released only by the synchronizing hipFree"),
    ("hipMallocPitch", "released only by the synchronizing hipFree"),
    ("hipMalloc3D", "released only by the synchronizing hipFree"),
    ("hipMallocManaged", "released only by the synchronizing hipFree"),
    ("hipExtMallocWithFlags", "released only by the synchronizing hipFree"),
    ("hipMemAllocPitch", "released only by the synchronizing hipFree"),
    ("hipMallocArray", "released only by the synchronizing hipFreeArray"),
    ("hipMalloc3DArray", "released only by the synchronizing hipFreeArray"),
    ("hipArrayCreate", "released only by the synchronizing hipArrayDestroy"),
    ("hipArray3DCreate", "released only by the synchronizing hipArrayDestroy"),
    // Synchronous copies and sets: issued on the null stream.
    ("hipMemcpy", "synchronous copy on the null stream"),
    ("hipMemcpyHtoD", "synchronous copy on the null stream"),
    ("hipMemcpyDtoH", "synchronous copy on the null stream"),
    ("hipMemcpyDtoD", "synchronous copy on the null stream"),
    ("hipMemcpyHtoA", "synchronous copy on the null stream"),
    ("hipMemcpyAtoH", "synchronous copy on the null stream"),
    ("hipMemcpy2D", "synchronous copy on the null stream"),
    ("hipMemcpy3D", "synchronous copy on the null stream"),
    ("hipMemcpyParam2D", "synchronous copy on the null stream"),
    ("hipMemcpy2DToArray", "synchronous copy on the null stream"),
    ("hipMemcpy2DFromArray", "synchronous copy on the null stream"),
    ("hipMemcpyToArray", "synchronous copy on the null stream"),
    ("hipMemcpyFromArray", "synchronous copy on the null stream"),
    ("hipDrvMemcpy3D", "synchronous copy on the null stream"),
    ("hipDrvMemcpy2DUnaligned", "synchronous copy on the null stream"),
    ("hipMemcpyToSymbol", "synchronous copy on the null stream"),
    ("hipMemcpyFromSymbol", "synchronous copy on the null stream"),
    ("hipMemcpyPeer", "synchronous copy on the null stream"),
    ("hipMemset", "synchronous set on the null stream"),
    ("hipMemsetD8", "synchronous set on the null stream"),
    ("hipMemsetD16", "synchronous set on the null stream"),
    ("hipMemsetD32", "synchronous set on the null stream"),
    ("hipMemset2D", "synchronous set on the null stream"),
    ("hipMemset3D", "synchronous set on the null stream"),
    // Multi-device launches that wait on other devices' streams by default.
    ("hipLaunchCooperativeKernelMultiDevice", "waits on every participating stream before and after"),
    ("hipModuleLaunchCooperativeKernelMultiDevice", "waits on every participating stream before and after"),
    // Cache configuration switches (an implicit synchronization point in CUDA).
    ("hipDeviceSetCacheConfig", "L1/shared configuration switch"),
    ("hipDeviceSetSharedMemConfig", "shared memory configuration switch"),
    // CUDA names: the safe crates never call CUDA directly; these are the
    // synchronizing equivalents, kept out as well.
    ("cuCtxSynchronize", "waits for the whole context"),
    ("cudaDeviceSynchronize", "waits for the whole device"),
    ("cudaThreadSynchronize", "deprecated cudaDeviceSynchronize"),
    ("cudaDeviceReset", "destroys the primary context"),
    ("cuDevicePrimaryCtxReset", "destroys the primary context"),
    ("cuMemFree", "may synchronize the context"),
    ("cuMemFree_v2", "may synchronize the context"),
    ("cudaFree", "may synchronize the device"),
    ("cuMemFreeHost", "not stream ordered; reported to synchronize the context"),
    ("cudaFreeHost", "not stream ordered; reported to synchronize the device"),
    ("cuMemHostUnregister", "not stream ordered"),
    ("cudaHostUnregister", "not stream ordered"),
    ("cuMemAlloc", "device memory allocation, an implicit synchronization point"),
    ("cuMemAlloc_v2", "device memory allocation, an implicit synchronization point"),
    ("cudaMalloc", "device memory allocation, an implicit synchronization point"),
    ("cuMemcpy", "synchronous copy on the legacy default stream"),
    ("cuMemcpyHtoD", "synchronous copy on the legacy default stream"),
    ("cuMemcpyHtoD_v2", "synchronous copy on the legacy default stream"),
    ("cuMemcpyDtoH", "synchronous copy on the legacy default stream"),
    ("cuMemcpyDtoH_v2", "synchronous copy on the legacy default stream"),
    ("cuMemcpyDtoD", "synchronous copy on the legacy default stream"),
    ("cuMemcpyDtoD_v2", "synchronous copy on the legacy default stream"),
    ("cuMemcpyPeer", "synchronous copy on the legacy default stream"),
    ("cudaMemcpy", "synchronous copy on the legacy default stream"),
    ("cuMemsetD8", "synchronous set on the legacy default stream"),
    ("cuMemsetD8_v2", "synchronous set on the legacy default stream"),
    ("cuMemsetD16", "synchronous set on the legacy default stream"),
    ("cuMemsetD16_v2", "synchronous set on the legacy default stream"),
    ("cuMemsetD32", "synchronous set on the legacy default stream"),
    ("cuMemsetD32_v2", "synchronous set on the legacy default stream"),
    ("cudaMemset", "synchronous set on the legacy default stream"),
    ("cudaStreamCreate", "creates a blocking stream"),
    ("CU_STREAM_DEFAULT", "the flag of blocking streams"),
    ("cudaStreamDefault", "the flag of blocking streams"),
    ("CU_STREAM_LEGACY", "the legacy default stream"),
    ("cudaStreamLegacy", "the legacy default stream"),
    ("CU_STREAM_PER_THREAD", "the per-thread default stream, a blocking stream"),
    ("cudaStreamPerThread", "the per-thread default stream, a blocking stream"),
];

/// A permitted use of one denylisted identifier in one file.
struct Exemption {
    /// Path relative to the facade package root, with `/` separators.
    file: &'static str,
    /// The denylisted identifier that this file may name.
    ident: &'static str,
    /// Why the use is acceptable.
    reason: &'static str,
}

/// The explicit exemptions. Keep this list short; each entry is a documented
/// device-wide synchronization that rocmforge accepts.
const EXEMPTIONS: &[Exemption] = &[Exemption {
    file: "rocmforge-hip/src/pinned_pool.rs",
    ident: "hipHostFree",
    reason: "pinned host memory is released only at Device teardown, when no stream or \
             buffer of that Device is alive (they all hold the Device); hipHostFree \
             synchronizes the whole GPU there, once, never in steady state",
}];

/// One denylisted identifier found in a scanned file.
#[derive(Debug)]
struct Violation {
    /// Path relative to the package root.
    file: String,
    /// 1-based line number.
    line: usize,
    /// The identifier found.
    ident: String,
}

/// Whether `c` can be part of a Rust identifier (or number) token.
fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Pushes a space for `c` to `out`, or the newline itself, so that line numbers
/// survive when a comment is blanked.
fn blank_out(out: &mut String, c: char) {
    out.push(if c == '\n' { '\n' } else { ' ' });
}

/// If a raw string starts at `i` (just after an `r`, `br` or `cr` prefix), returns
/// the number of `#` in its delimiter; `None` when this is not a raw string (for
/// example the raw identifier `r#name`).
fn raw_string_hashes(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    while j < chars.len() && chars[j] == '#' {
        j += 1;
    }
    if j < chars.len() && chars[j] == '"' {
        Some(j - i)
    } else {
        None
    }
}

/// Copies a raw string body starting at the opening quote `i`, closed by `"`
/// followed by `hashes` `#`; returns the index after the literal.
fn copy_raw_string(chars: &[char], mut i: usize, hashes: usize, out: &mut String) -> usize {
    // Opening quote.
    out.push(chars[i]);
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' {
            let closing = (1..=hashes).all(|k| chars.get(i + k) == Some(&'#'));
            if closing {
                out.extend(&chars[i..=i + hashes]);
                return i + hashes + 1;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    i
}

/// Copies an ordinary (byte or C) string literal starting at the opening quote
/// `i`, honouring backslash escapes; returns the index after the literal.
fn copy_string(chars: &[char], mut i: usize, out: &mut String) -> usize {
    out.push(chars[i]);
    i += 1;
    while i < chars.len() {
        let c = chars[i];
        out.push(c);
        i += 1;
        if c == '\\' {
            if i < chars.len() {
                out.push(chars[i]);
                i += 1;
            }
        } else if c == '"' {
            break;
        }
    }
    i
}

/// Handles a `'` at `i`: a char literal (`'x'`, `'"'`, `'\''`, `'\u{..}'`) is
/// copied whole, a lifetime or label (`'a`) only its quote. Returns the next index.
fn copy_quote(chars: &[char], i: usize, out: &mut String) -> usize {
    if chars.get(i + 1) == Some(&'\\') {
        // Escaped char literal: skip the backslash and the escaped character,
        // then run to the closing quote.
        let mut j = i + 3;
        while j < chars.len() && chars[j] != '\'' && chars[j] != '\n' {
            j += 1;
        }
        let end = (j + 1).min(chars.len());
        out.extend(&chars[i..end]);
        end
    } else if chars.get(i + 2) == Some(&'\'') && chars.get(i + 1) != Some(&'\n') {
        out.extend(&chars[i..i + 3]);
        i + 3
    } else {
        out.push('\'');
        i + 1
    }
}

/// Skips a block comment starting at `i` (`/*`), nested comments included,
/// blanking it in `out`; returns the index after the comment.
fn skip_block_comment(chars: &[char], mut i: usize, out: &mut String) -> usize {
    let mut depth = 0usize;
    while i < chars.len() {
        if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            depth += 1;
            out.push_str("  ");
            i += 2;
        } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
            depth -= 1;
            out.push_str("  ");
            i += 2;
            if depth == 0 {
                break;
            }
        } else {
            blank_out(out, chars[i]);
            i += 1;
        }
    }
    i
}

/// Returns `src` with every comment (line, doc, block, nested block) replaced by
/// spaces. Code, string literals, raw strings, byte strings and char literals are
/// kept as they are, and every newline is kept, so lines keep their numbers.
fn strip_comments(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = skip_block_comment(&chars, i, &mut out);
        } else if c == '"' {
            i = copy_string(&chars, i, &mut out);
        } else if c == '\'' {
            i = copy_quote(&chars, i, &mut out);
        } else if is_ident_char(c) {
            // Read the whole identifier (or number) so that prefixes such as
            // `r`, `br` and `cr` are recognized only at the start of a token.
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push_str(&word);
            if matches!(word.as_str(), "r" | "br" | "cr") {
                if let Some(hashes) = raw_string_hashes(&chars, i) {
                    out.push_str(&"#".repeat(hashes));
                    i = copy_raw_string(&chars, i + hashes, hashes, &mut out);
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Splits `text` into identifier tokens with their 1-based line numbers.
fn identifiers(text: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for token in line.split(|c: char| !is_ident_char(c)) {
            if !token.is_empty() {
                found.push((index + 1, token));
            }
        }
    }
    found
}

/// Looks `ident` up in the denylist and returns its reason.
fn denied(ident: &str) -> Option<&'static str> {
    DENYLIST
        .iter()
        .find(|(name, _)| *name == ident)
        .map(|(_, reason)| *reason)
}

/// Scans one source text and returns `(line, identifier)` for every denylisted
/// identifier left after comments are removed.
fn scan_source(src: &str) -> Vec<(usize, String)> {
    let code = strip_comments(src);
    identifiers(&code)
        .into_iter()
        .filter(|(_, token)| denied(token).is_some())
        .map(|(line, token)| (line, token.to_string()))
        .collect()
}

/// Whether the exemption list allows `ident` in the file at `relative`.
fn is_exempt(relative: &str, ident: &str) -> bool {
    EXEMPTIONS
        .iter()
        .any(|e| e.file == relative && e.ident == ident)
}

/// Collects every `.rs` file under `dir`, recursively, sorted. A directory that
/// does not exist yields no files.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", current.display()));
            let path = entry.path();
            let kind = entry
                .file_type()
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            if kind.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The facade package root (where this test's Cargo.toml lives).
fn package_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of `path` relative to `root`, with `/` separators.
fn relative_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Scans all the safe crates and returns the violations that are not exempt.
fn scan_workspace() -> Vec<Violation> {
    let root = package_root();
    let mut violations = Vec::new();
    for dir in SCANNED_DIRS {
        for path in rust_files(&root.join(dir)) {
            let relative = relative_path(&root, &path);
            let src = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            for (line, ident) in scan_source(&src) {
                if !is_exempt(&relative, &ident) {
                    violations.push(Violation {
                        file: relative.clone(),
                        line,
                        ident,
                    });
                }
            }
        }
    }
    violations
}

#[test]
fn safe_crates_reference_no_device_synchronizing_call() {
    let violations = scan_workspace();
    if !violations.is_empty() {
        let report: Vec<String> = violations
            .iter()
            .map(|v| {
                format!(
                    "  {}:{}: `{}` ({})",
                    v.file,
                    v.line,
                    v.ident,
                    denied(&v.ident).unwrap_or("denylisted")
                )
            })
            .collect();
        panic!(
            "device-wide or cross-stream synchronizing HIP/CUDA calls referenced in the safe \
             crates (see {SYNC_DOC}; exemptions are listed in tests/no_device_sync.rs):\n{}",
            report.join("\n")
        );
    }
}

#[test]
fn every_denylisted_name_is_documented() {
    let path = package_root().join(SYNC_DOC);
    let doc =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mentioned: std::collections::HashSet<&str> =
        identifiers(&doc).into_iter().map(|(_, t)| t).collect();
    let missing: Vec<&str> = DENYLIST
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !mentioned.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "{SYNC_DOC} does not mention these denylisted names: {missing:?}"
    );
}

#[test]
fn denylist_and_exemptions_are_well_formed() {
    let mut names: Vec<&str> = DENYLIST.iter().map(|(name, _)| *name).collect();
    assert!(names
        .iter()
        .all(|n| n.chars().all(is_ident_char) && !n.is_empty()));
    assert!(DENYLIST.iter().all(|(_, reason)| !reason.is_empty()));
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate denylist entries");
    for e in EXEMPTIONS {
        assert!(
            denied(e.ident).is_some(),
            "exemption for `{}` names an identifier that is not denylisted",
            e.ident
        );
        assert!(!e.reason.is_empty() && !e.file.is_empty());
        assert!(
            SCANNED_DIRS
                .iter()
                .any(|d| e.file.starts_with(&format!("{d}/"))),
            "exemption file {} is outside the scanned trees",
            e.file
        );
    }
}

/// Unit tests of the scanner on synthetic sources.
mod scanner {
    use super::scan_source;

    /// The identifiers flagged in `src`, without line numbers.
    fn flagged(src: &str) -> Vec<String> {
        scan_source(src)
            .into_iter()
            .map(|(_, ident)| ident)
            .collect()
    }

    #[test]
    fn stringify_is_flagged() {
        assert_eq!(
            flagged("fn f() { let _ = stringify!(hipDeviceSynchronize); }"),
            ["hipDeviceSynchronize"]
        );
    }

    #[test]
    fn string_literal_is_flagged() {
        assert_eq!(
            flagged("const S: &str = \"hipDeviceSynchronize\";"),
            ["hipDeviceSynchronize"]
        );
        assert_eq!(flagged("let s = \"call hipFree now\";"), ["hipFree"]);
    }

    #[test]
    fn plain_call_is_flagged_with_its_line() {
        let src = "fn a() {}\n\nfn b() { unsafe { hipMemcpy(d, s, n, k) }; }\n";
        assert_eq!(scan_source(src), [(3, "hipMemcpy".to_string())]);
    }

    #[test]
    fn comments_are_not_flagged() {
        let src = "// hipDeviceSynchronize\n\
                   /// never call hipFree here\n\
                   //! hipMemcpy is synchronous\n\
                   /** hipMemset */\n\
                   /*! hipHostFree */\n\
                   fn f() {} // hipDeviceReset\n";
        assert!(flagged(src).is_empty());
    }

    #[test]
    fn nested_block_comment_is_not_flagged() {
        let src = "/* outer /* inner hipFree */ still comment hipMemcpy */ fn ok() {}";
        assert!(flagged(src).is_empty());
        let src = "/* a /* b */ c */ hipFree";
        assert_eq!(flagged(src), ["hipFree"]);
    }

    #[test]
    fn lines_survive_multi_line_comments() {
        let src = "/* one\n two hipFree\n three */\nlet x = hipMemset;\n";
        assert_eq!(scan_source(src), [(4, "hipMemset".to_string())]);
    }

    #[test]
    fn raw_string_with_slashes_is_flagged() {
        assert_eq!(flagged("let s = r\"// hipMemset\";"), ["hipMemset"]);
        assert_eq!(
            flagged("let s = r#\"a \" // hipFree\"#; // hipMemcpy"),
            ["hipFree"]
        );
        assert_eq!(
            flagged("let s = br##\"x\"# // \"## ; hipDeviceReset"),
            ["hipDeviceReset"]
        );
    }

    #[test]
    fn byte_and_escaped_strings() {
        assert_eq!(flagged("let b = b\"hipFree\";"), ["hipFree"]);
        // The escaped quote does not end the string: `//` is inside it.
        assert_eq!(flagged("let s = \"a \\\" // hipFree\";"), ["hipFree"]);
        // An escaped backslash does end the string: the rest is a comment.
        assert!(flagged("let s = \"a \\\\\"; // hipFree \"x\"").is_empty());
    }

    #[test]
    fn raw_identifier_is_flagged() {
        assert_eq!(flagged("r#hipFree(p);"), ["hipFree"]);
    }

    #[test]
    fn allowed_stream_ordered_calls_are_not_flagged() {
        let src = "hipMemcpyAsync(); hipMemsetAsync(); hipFreeAsync(); hipMallocAsync();\n\
                   hipStreamCreateWithFlags(); hipStreamSynchronize(); hipEventSynchronize();\n\
                   hipHostMalloc(); hipMemcpyDtoHAsync(); hipStreamNonBlocking; my_hipFree();\n\
                   let s = \"hipMemcpyAsync hipFree_like\";";
        assert!(flagged(src).is_empty());
    }

    #[test]
    fn char_literal_quote_does_not_start_a_string() {
        // If '"' opened a string, the comment would be read as code/string.
        assert!(flagged("let q = '\"'; // hipFree \"x\"").is_empty());
        assert!(flagged("let q = '\\''; // hipFree \"x\"").is_empty());
        assert!(flagged("let q = b'\"'; /* hipFree \" */").is_empty());
        assert_eq!(flagged("let q = '\"'; hipFree(p);"), ["hipFree"]);
    }

    #[test]
    fn lifetimes_do_not_confuse_the_scanner() {
        let src = "fn f<'a>(x: &'a str) -> &'a str { x } // hipFree \"\n\
                   struct S<'b> { s: &'b str } const X: &str = \"hipMemset\";";
        assert_eq!(flagged(src), ["hipMemset"]);
        assert!(flagged("'outer: loop { break 'outer; } // hipFree").is_empty());
    }
}
