//! The tokenizer against llama.cpp's own output for the demo model (SmolLM2, `gpt2` BPE
//! with the `smollm` pre-tokenizer): `tests/fixtures/tokenize_public.jsonl` is the
//! project's reference data (llama-server `/tokenize` and `/detokenize`, llama.cpp
//! 0c1e57098), `tests/fixtures/smollm2_tokenizer.json` the `tokenizer.*` metadata of
//! `SmolLM2-135M-Instruct.Q4_1.gguf`, extracted once.

use rocmforge_model::tokenizer::{TokenId, Tokenizer, TokenizerSpec};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|s| s.as_str().expect("string array").to_string())
            .collect()
    })
}

/// The demo model's tokenizer metadata as a `TokenizerSpec`.
fn smollm2_spec() -> TokenizerSpec {
    let m: Value =
        serde_json::from_str(&fixture("smollm2_tokenizer.json")).expect("fixture is JSON");
    let id = |k: &str| m.get(k).and_then(Value::as_u64).map(|v| v as u32);
    TokenizerSpec {
        model: m["tokenizer.ggml.model"]
            .as_str()
            .expect("model")
            .to_string(),
        pre: m
            .get("tokenizer.ggml.pre")
            .and_then(Value::as_str)
            .map(str::to_string),
        tokens: strings(&m["tokenizer.ggml.tokens"]).expect("tokens"),
        token_types: m
            .get("tokenizer.ggml.token_type")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_i64().expect("int") as i32).collect()),
        merges: m.get("tokenizer.ggml.merges").and_then(strings),
        bos_token_id: id("tokenizer.ggml.bos_token_id"),
        eos_token_id: id("tokenizer.ggml.eos_token_id"),
        unknown_token_id: id("tokenizer.ggml.unknown_token_id"),
        padding_token_id: id("tokenizer.ggml.padding_token_id"),
        add_bos_token: m
            .get("tokenizer.ggml.add_bos_token")
            .and_then(Value::as_bool),
        add_space_prefix: m
            .get("tokenizer.ggml.add_space_prefix")
            .and_then(Value::as_bool),
        chat_template: m
            .get("tokenizer.chat_template")
            .and_then(Value::as_str)
            .map(str::to_string),
        general_name: m
            .get("general.name")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..TokenizerSpec::default()
    }
}

fn ids_of(v: &Value) -> Vec<TokenId> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as TokenId)
        .collect()
}

fn piece_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Array(a) => a.iter().map(|b| b.as_u64().expect("byte") as u8).collect(),
        other => panic!("bad piece {other}"),
    }
}

#[test]
fn public_reference_passes_completely() {
    let tok = Tokenizer::from_spec(&smollm2_spec()).expect("SmolLM2 tokenizer builds");
    let data = fixture("tokenize_public.jsonl");
    let mut total = 0;
    let mut failures = Vec::new();
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        total += 1;
        let case: Value = serde_json::from_str(line).expect("jsonl line");
        let text = case["text"].as_str().expect("text");
        let want = ids_of(&case["ids"]);
        let mut problems = Vec::new();

        let got = tok.encode(text, false, true).expect("encode");
        if got != want {
            problems.push(format!("ids {got:?} != {want:?}"));
        }
        let want_nops = case
            .get("ids_parse_special_false")
            .map_or_else(|| want.clone(), ids_of);
        let got_nops = tok.encode(text, false, false).expect("encode");
        if got_nops != want_nops {
            problems.push(format!(
                "parse_special=false ids {got_nops:?} != {want_nops:?}"
            ));
        }
        let pieces: Vec<Vec<u8>> = case["pieces"]
            .as_array()
            .expect("pieces")
            .iter()
            .map(piece_bytes)
            .collect();
        let got_pieces: Vec<Vec<u8>> = want
            .iter()
            .map(|&id| tok.token_to_piece(id, true).expect("piece").to_vec())
            .collect();
        if got_pieces != pieces {
            problems.push(format!("pieces {got_pieces:?} != {pieces:?}"));
        }
        let detok = case["detokenized"].as_str().expect("detokenized");
        let got_detok = tok.decode(&want, true).expect("decode");
        if got_detok != detok {
            problems.push(format!("detokenized {got_detok:?} != {detok:?}"));
        }
        // Streaming gives the same text, whatever the token boundaries.
        let mut stream = tok.stream_decoder(true);
        let mut streamed = String::new();
        for &id in &want {
            streamed.push_str(&stream.push(id).expect("push"));
        }
        streamed.push_str(&stream.finish());
        if streamed != detok {
            problems.push(format!("streamed {streamed:?} != {detok:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{text:?}: {}", problems.join("; ")));
        }
    }
    let passed = total - failures.len();
    println!("tokenize_public.jsonl: {passed}/{total} cases pass");
    assert!(
        total >= 150,
        "expected the full public reference, found {total} cases"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn demo_model_properties() {
    let tok = Tokenizer::from_spec(&smollm2_spec()).unwrap();
    assert_eq!(tok.n_tokens(), 49152);
    assert_eq!(tok.pre_tokenizer(), "smollm");
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert!(!tok.add_bos());
    assert!(tok.is_eog(2) && tok.is_eog(0));
    assert!(!tok.is_eog(1));
    // add_special with add_bos false adds nothing.
    assert_eq!(
        tok.encode("Hello world", true, true).unwrap(),
        vec![19556, 905]
    );
    // Control tokens render only on request.
    assert_eq!(tok.token_to_piece(1, false).unwrap(), b"");
    assert_eq!(tok.token_to_piece(1, true).unwrap(), b"<|im_start|>");
    assert!(tok.token_to_piece(49152, true).is_err());
    assert_eq!(tok.encode("", true, true).unwrap(), Vec::<TokenId>::new());
}

#[test]
fn streaming_holds_split_characters() {
    let tok = Tokenizer::from_spec(&smollm2_spec()).unwrap();
    // "😀" is several byte-level tokens in this vocabulary: nothing comes out until the
    // last one, then the whole character.
    let ids = tok.encode("😀!", false, true).unwrap();
    assert!(ids.len() >= 3, "{ids:?}");
    let mut stream = tok.stream_decoder(false);
    let outs: Vec<String> = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
    assert!(
        outs[..outs.len() - 2].iter().all(String::is_empty),
        "{outs:?}"
    );
    assert_eq!(outs.concat(), "😀!");
    assert_eq!(stream.finish(), "");

    // An unfinished character at the end becomes U+FFFD on finish.
    let mut stream = tok.stream_decoder(false);
    assert_eq!(stream.push(ids[0]).unwrap(), "");
    assert!(!stream.pending_bytes().is_empty());
    assert_eq!(stream.finish(), "\u{FFFD}");
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn tok() -> &'static Tokenizer {
        static T: OnceLock<Tokenizer> = OnceLock::new();
        T.get_or_init(|| Tokenizer::from_spec(&smollm2_spec()).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        /// Byte-level BPE is lossless: without special-token parsing, the pieces of the
        /// ids are the text; with it, the text comes back when control tokens render.
        #[test]
        fn demo_vocabulary_roundtrips(s in "(\\PC|[ \\t\\n]|<\\|im_(start|end)\\|>){0,40}") {
            let tok = tok();
            let plain = tok.encode(&s, false, false).unwrap();
            prop_assert_eq!(tok.decode(&plain, true).unwrap(), s.clone());
            let special = tok.encode(&s, true, true).unwrap();
            prop_assert_eq!(tok.decode(&special, true).unwrap(), s.clone());
            let mut stream = tok.stream_decoder(true);
            let mut streamed = String::new();
            for &id in &special {
                streamed.push_str(&stream.push(id).unwrap());
            }
            streamed.push_str(&stream.finish());
            prop_assert_eq!(streamed, s);
        }
    }
}
