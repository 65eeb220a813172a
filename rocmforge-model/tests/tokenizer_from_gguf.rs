//! The tokenizer read straight from the demo model's GGUF metadata gives llama.cpp's ids
//! for the public reference (the other tokenizer tests use a JSON extract of the same
//! metadata; this one checks the GGUF path end to end).

use rocmforge_model::gguf::{require_demo_model, GgufFile, GgufWriter};
use rocmforge_model::tokenizer::{Tokenizer, TokenizerLoadError};

#[test]
fn demo_model_tokenizer_reproduces_the_public_reference() {
    let path = require_demo_model().unwrap_or_else(|e| panic!("{e}"));
    let file = GgufFile::open(&path).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    assert_eq!(tokenizer.n_tokens(), 49152);
    let cases = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tokenize_public.jsonl"
    ))
    .unwrap();
    let mut checked = 0;
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            tokenizer.encode(text, false, true).unwrap(),
            expected,
            "text {text:?}"
        );
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} cases");
}

#[test]
fn missing_tokenizer_metadata_is_an_error_naming_the_key() {
    let mut writer = GgufWriter::new();
    writer.add("general.architecture", "llama").unwrap();
    let bytes = writer.to_vec().unwrap();
    let file = GgufFile::from_vec(bytes).unwrap();
    let err = Tokenizer::from_gguf(&file).unwrap_err();
    assert!(matches!(err, TokenizerLoadError::Metadata(_)));
    assert!(err.to_string().contains("tokenizer.ggml.model"), "{err}");
}
