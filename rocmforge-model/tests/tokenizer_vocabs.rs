//! The tokenizer against llama.cpp's own tokenizer test suites (`models/ggml-vocab-*.gguf`
//! with `.inp`/`.out` from llama.cpp's `test-tokenizer-0`), and against cases produced by
//! running llama.cpp itself.
//!
//! Committed: the Phi-3 (SentencePiece) and GPT-2 (byte-level BPE) vocabularies, both MIT
//! licensed, in `tests/fixtures/vocabs/`. More suites run when `ROCMFORGE_LLAMA_VOCABS`
//! names a directory holding llama.cpp's `models/ggml-vocab-*.gguf{,.inp,.out}` (for
//! example from the `llama-cpp-python` sdist: `vendor/llama.cpp/models`), and
//! `ROCMFORGE_TOKENIZER_CASES` may name a JSON-lines file of
//! `{"model", "text", "add_special", "parse_special", "ids"}` produced with llama.cpp.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rocmforge_model::tokenizer::{TokenId, Tokenizer, TokenizerSpec};

/// A GGUF metadata value (just enough for the tokenizer keys).
#[derive(Debug, Clone)]
enum Meta {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Arr(Vec<Meta>),
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    v1_lengths: bool,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn len(&mut self) -> usize {
        if self.v1_lengths {
            self.u32() as usize
        } else {
            self.u64() as usize
        }
    }
    fn string(&mut self) -> String {
        let n = self.len();
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    fn value(&mut self, ty: u32) -> Meta {
        match ty {
            0 => Meta::Int(i64::from(self.take(1)[0])),
            1 => Meta::Int(i64::from(self.take(1)[0] as i8)),
            2 => Meta::Int(i64::from(u16::from_le_bytes(
                self.take(2).try_into().unwrap(),
            ))),
            3 => Meta::Int(i64::from(i16::from_le_bytes(
                self.take(2).try_into().unwrap(),
            ))),
            4 => Meta::Int(i64::from(self.u32())),
            5 => Meta::Int(i64::from(self.u32() as i32)),
            6 => Meta::Float(f64::from(f32::from_le_bytes(
                self.take(4).try_into().unwrap(),
            ))),
            7 => Meta::Bool(self.take(1)[0] != 0),
            8 => Meta::Str(self.string()),
            9 => {
                let et = self.u32();
                let n = self.len();
                Meta::Arr((0..n).map(|_| self.value(et)).collect())
            }
            10 => Meta::Int(self.u64() as i64),
            11 => Meta::Int(self.u64() as i64),
            12 => Meta::Float(f64::from_le_bytes(self.take(8).try_into().unwrap())),
            t => panic!("bad GGUF value type {t}"),
        }
    }
}

/// Reads the metadata of a (trusted, test-only) GGUF file.
fn gguf_metadata(path: &Path) -> HashMap<String, Meta> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(&b[..4], b"GGUF", "{} is not a GGUF file", path.display());
    let mut r = Reader {
        b: &b,
        pos: 4,
        v1_lengths: false,
    };
    let version = r.u32();
    r.v1_lengths = version == 1;
    let _n_tensors = r.len();
    let n_kv = r.len();
    let mut m = HashMap::new();
    for _ in 0..n_kv {
        let k = r.string();
        let ty = r.u32();
        let v = r.value(ty);
        m.insert(k, v);
    }
    m
}

fn spec_from_metadata(m: &HashMap<String, Meta>) -> TokenizerSpec {
    let s = |k: &str| match m.get(k) {
        Some(Meta::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let id = |k: &str| match m.get(k) {
        Some(Meta::Int(v)) => Some(*v as u32),
        _ => None,
    };
    let b = |k: &str| match m.get(k) {
        Some(Meta::Bool(v)) => Some(*v),
        _ => None,
    };
    let arr = |k: &str| match m.get(k) {
        Some(Meta::Arr(a)) => Some(a.clone()),
        _ => None,
    };
    let strs = |k: &str| {
        arr(k).map(|a| {
            a.into_iter()
                .map(|v| match v {
                    Meta::Str(s) => s,
                    other => panic!("{k}: not a string: {other:?}"),
                })
                .collect::<Vec<_>>()
        })
    };
    let t = |k: &str| format!("tokenizer.ggml.{k}");
    TokenizerSpec {
        model: s(&t("model")).expect("tokenizer.ggml.model"),
        pre: s(&t("pre")),
        tokens: strs(&t("tokens")).expect("tokenizer.ggml.tokens"),
        scores: arr(&t("scores")).map(|a| {
            a.into_iter()
                .map(|v| match v {
                    Meta::Float(f) => f as f32,
                    Meta::Int(i) => i as f32,
                    other => panic!("score {other:?}"),
                })
                .collect()
        }),
        token_types: arr(&t("token_type")).map(|a| {
            a.into_iter()
                .map(|v| match v {
                    Meta::Int(i) => i as i32,
                    other => panic!("token type {other:?}"),
                })
                .collect()
        }),
        merges: strs(&t("merges")),
        bos_token_id: id(&t("bos_token_id")),
        eos_token_id: id(&t("eos_token_id")),
        eot_token_id: id(&t("eot_token_id")),
        eom_token_id: id(&t("eom_token_id")),
        unknown_token_id: id(&t("unknown_token_id")),
        separator_token_id: id(&t("seperator_token_id")),
        padding_token_id: id(&t("padding_token_id")),
        mask_token_id: id(&t("mask_token_id")),
        fim_pre_token_id: id(&t("fim_pre_token_id")).or(id(&t("prefix_token_id"))),
        fim_suf_token_id: id(&t("fim_suf_token_id")).or(id(&t("suffix_token_id"))),
        fim_mid_token_id: id(&t("fim_mid_token_id")).or(id(&t("middle_token_id"))),
        fim_pad_token_id: id(&t("fim_pad_token_id")),
        fim_rep_token_id: id(&t("fim_rep_token_id")),
        fim_sep_token_id: id(&t("fim_sep_token_id")),
        add_bos_token: b(&t("add_bos_token")),
        add_eos_token: b(&t("add_eos_token")),
        add_space_prefix: b(&t("add_space_prefix")),
        chat_template: s("tokenizer.chat_template"),
        general_name: s("general.name"),
    }
}

fn load(path: &Path) -> Tokenizer {
    Tokenizer::from_spec(&spec_from_metadata(&gguf_metadata(path)))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs one llama.cpp `test-tokenizer-0` suite; returns (passed, failures).
fn run_suite(gguf: &Path) -> (usize, Vec<String>) {
    let tok = load(gguf);
    let inp = std::fs::read_to_string(format!("{}.inp", gguf.display())).expect(".inp");
    let out = std::fs::read_to_string(format!("{}.out", gguf.display())).expect(".out");
    // As test-tokenizer-0 reads it: a separator at the very end opens no further case.
    let sep = "\n__ggml_vocab_test__\n";
    let mut texts: Vec<&str> = inp.split(sep).collect();
    if inp.ends_with(sep) {
        texts.pop();
    }
    let expected: Vec<Vec<TokenId>> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|x| x.parse().expect("id"))
                .collect()
        })
        .collect();
    assert_eq!(
        texts.len(),
        expected.len(),
        "{}: .inp and .out disagree",
        gguf.display()
    );
    let mut failures = Vec::new();
    for (text, want) in texts.iter().zip(&expected) {
        // test-tokenizer-0: add_special false, parse_special false.
        let got = tok.encode(text, false, false).expect("encode");
        if &got != want {
            failures.push(format!("{text:?}: got {got:?}, want {want:?}"));
        }
    }
    (texts.len() - failures.len(), failures)
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vocabs")
}

#[test]
fn committed_llama_cpp_suites_pass() {
    for name in ["ggml-vocab-phi-3.gguf", "ggml-vocab-gpt-2.gguf"] {
        let (passed, failures) = run_suite(&fixtures_dir().join(name));
        println!("{name}: {passed}/{} pass", passed + failures.len());
        assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
    }
}

#[test]
fn spm_details() {
    let tok = load(&fixtures_dir().join("ggml-vocab-phi-3.gguf"));
    // SentencePiece: BOS added, a space in front of the text and after special tokens.
    let ids = tok.encode("Hello", true, true).unwrap();
    assert_eq!(ids.first().copied(), tok.bos_id());
    // llama_detokenize drops the prefix space, except after a removed BOS.
    assert_eq!(tok.detokenize(&ids[1..], false, false).unwrap(), "Hello");
    assert_eq!(tok.detokenize(&ids, true, false).unwrap(), " Hello");
    // Byte fallback: a character without a token becomes its UTF-8 byte tokens, and the
    // stream decoder puts it back together.
    let ids = tok.encode("𠀀", false, false).unwrap();
    assert!(ids.len() >= 4, "{ids:?}");
    let mut stream = tok.stream_decoder(false);
    let out: String = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
    assert_eq!(out + &stream.finish(), " 𠀀");
}

#[test]
fn llama_cpp_suites_from_env() {
    let Ok(dir) = std::env::var("ROCMFORGE_LLAMA_VOCABS") else {
        println!("ROCMFORGE_LLAMA_VOCABS not set: only the committed suites ran");
        return;
    };
    let mut report = Vec::new();
    let mut all_failures = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("ROCMFORGE_LLAMA_VOCABS is a directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .filter(|p| Path::new(&format!("{}.inp", p.display())).exists())
        .collect();
    entries.sort();
    for gguf in entries {
        let name = gguf.file_name().unwrap().to_string_lossy().into_owned();
        let spec = spec_from_metadata(&gguf_metadata(&gguf));
        match Tokenizer::from_spec(&spec) {
            Err(e) => report.push(format!("{name}: not supported: {e}")),
            Ok(_) => {
                let (passed, failures) = run_suite(&gguf);
                report.push(format!("{name}: {passed}/{} pass", passed + failures.len()));
                all_failures.extend(failures.into_iter().map(|f| format!("{name}: {f}")));
            }
        }
    }
    println!("{}", report.join("\n"));
    assert!(all_failures.is_empty(), "{}", all_failures.join("\n"));
}

#[test]
fn differential_cases_from_env() {
    let Ok(path) = std::env::var("ROCMFORGE_TOKENIZER_CASES") else {
        println!("ROCMFORGE_TOKENIZER_CASES not set: skipped");
        return;
    };
    let data = std::fs::read_to_string(&path).expect("cases file");
    let mut tokenizers: HashMap<String, Tokenizer> = HashMap::new();
    let (mut total, mut failures) = (0usize, Vec::new());
    for line in data.lines().filter(|l| !l.is_empty()) {
        let c: serde_json::Value = serde_json::from_str(line).expect("json line");
        let model = c["model"].as_str().expect("model").to_string();
        let tok = tokenizers
            .entry(model.clone())
            .or_insert_with(|| load(Path::new(&model)));
        if let Some(pieces) = c.get("pieces_hex").and_then(|v| v.as_array()) {
            // Every token's llama_token_to_piece ("-" for an empty piece).
            let special = c["special"].as_bool().expect("special");
            for (id, h) in pieces.iter().enumerate() {
                let h = h.as_str().expect("hex").trim_start_matches('-');
                let want: Vec<u8> = (0..h.len() / 2)
                    .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
                    .collect();
                total += 1;
                let got = tok.token_to_piece(id as TokenId, special).expect("piece");
                if got != want.as_slice() {
                    failures.push(format!(
                        "{model} piece {id} special={special}: got {got:?}, want {want:?}"
                    ));
                }
            }
            continue;
        }
        let text = c["text"].as_str().expect("text");
        let want: Vec<TokenId> = c["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as TokenId)
            .collect();
        let add = c["add_special"].as_bool().unwrap_or(false);
        let parse = c["parse_special"].as_bool().unwrap_or(true);
        total += 1;
        let got = tok.encode(text, add, parse).expect("encode");
        if got != want {
            failures.push(format!(
                "{model} {text:?} add={add} parse={parse}: got {got:?}, want {want:?}"
            ));
        }
        if let Some(d) = c.get("detok_hex").and_then(|v| v.as_str()) {
            let rs = c["remove_special"].as_bool().unwrap_or(false);
            let us = c["unparse_special"].as_bool().unwrap_or(false);
            let bytes: Vec<u8> = (0..d.len() / 2)
                .map(|i| u8::from_str_radix(&d[2 * i..2 * i + 2], 16).expect("hex"))
                .collect();
            let want = String::from_utf8_lossy(&bytes).into_owned();
            let got = tok
                .detokenize(&tok.encode(text, add, parse).unwrap(), rs, us)
                .unwrap();
            if got != want {
                failures.push(format!(
                    "{model} detokenize {text:?}: got {got:?}, want {want:?}"
                ));
            }
        }
    }
    println!(
        "{}/{} differential cases pass",
        total - failures.len(),
        total
    );
    let shown: Vec<_> = failures.iter().take(40).cloned().collect();
    assert!(
        failures.is_empty(),
        "{} failures, first ones:\n{}",
        failures.len(),
        shown.join("\n")
    );
}

/// `ROCMFORGE_SPLIT_CASES`: JSON lines `{"pre", "text", "words_hex"}` from llama.cpp's
/// `unicode_regex_split` (words hex-encoded, space-separated), checked against
/// [`Tokenizer::pre_tokenize`] with a small vocabulary under that pre-tokenizer name.
#[test]
fn pre_tokenizer_split_cases_from_env() {
    let Ok(path) = std::env::var("ROCMFORGE_SPLIT_CASES") else {
        println!("ROCMFORGE_SPLIT_CASES not set: skipped");
        return;
    };
    let data = std::fs::read_to_string(&path).expect("split cases file");
    let mut toks: HashMap<String, Tokenizer> = HashMap::new();
    let (mut total, mut failures) = (0usize, Vec::new());
    let mut per_pre: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for line in data.lines().filter(|l| !l.is_empty()) {
        let c: serde_json::Value = serde_json::from_str(line).expect("json line");
        let pre = c["pre"].as_str().expect("pre").to_string();
        let tok = toks.entry(pre.clone()).or_insert_with(|| {
            let spec = TokenizerSpec {
                model: "gpt2".into(),
                pre: Some(pre.clone()),
                tokens: vec!["a".into()],
                merges: Some(Vec::new()),
                add_bos_token: Some(false),
                bos_token_id: Some(0),
                ..TokenizerSpec::default()
            };
            Tokenizer::from_spec(&spec).unwrap_or_else(|e| panic!("{pre}: {e}"))
        });
        let text = c["text"].as_str().expect("text");
        let want: Vec<String> = c["words_hex"]
            .as_str()
            .expect("words")
            .split(' ')
            .filter(|w| !w.is_empty() && *w != "-")
            .map(|h| {
                let b: Vec<u8> = (0..h.len() / 2)
                    .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
                    .collect();
                String::from_utf8(b).expect("utf8 word")
            })
            .collect();
        let got: Vec<String> = tok
            .pre_tokenize(text)
            .expect("split")
            .into_iter()
            .map(String::from)
            .collect();
        total += 1;
        let e = per_pre.entry(pre.clone()).or_default();
        e.0 += 1;
        if got != want {
            e.1 += 1;
            failures.push(format!("{pre} {text:?}:\n  got  {got:?}\n  want {want:?}"));
        }
    }
    for (pre, (n, bad)) in &per_pre {
        println!("{pre}: {}/{n}", n - bad);
    }
    println!("{}/{} split cases pass", total - failures.len(), total);
    let shown: Vec<_> = failures.iter().take(20).cloned().collect();
    assert!(
        failures.is_empty(),
        "{} failures, first ones:\n{}",
        failures.len(),
        shown.join("\n")
    );
}
