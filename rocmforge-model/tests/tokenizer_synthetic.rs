//! Property tests of the tokenizer on arbitrary text, with small synthetic vocabularies
//! (byte-level BPE under every supported pre-tokenizer, SentencePiece with byte fallback)
//! and the demo model's real one: encoding never fails or panics, ids are in range, and
//! decoding gives the text back byte for byte; streaming gives the same text.
//!
//! The vocabulary builders and the invariant check are shared with the cargo-fuzz target
//! `fuzz/fuzz_targets/tokenizer.rs`, which includes this file as a module.

use rocmforge_model::tokenizer::{Tokenizer, TokenizerSpec};

/// GPT-2's byte-to-unicode mapping.
fn byte_chars() -> Vec<char> {
    let mut table = vec!['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let keep =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if keep {
            char::from_u32(b).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    table
}

/// A byte-level BPE vocabulary: the 256 byte tokens, merges for some common English
/// pairs (and their results as tokens), and ChatML-style control tokens plus one
/// user-defined token.
pub fn synthetic_bpe_spec(pre: &str) -> TokenizerSpec {
    let bc = byte_chars();
    let enc = |s: &str| -> String { s.bytes().map(|b| bc[b as usize]).collect() };
    let mut tokens: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    let mut types = vec![3, 3, 3];
    tokens.extend(bc.iter().map(|c| c.to_string()));
    types.extend(vec![1; 256]);
    let mut merges = Vec::new();
    for (a, b) in [
        (" ", "t"),
        ("h", "e"),
        (" t", "he"),
        ("i", "n"),
        (" ", "a"),
        ("e", "r"),
        ("o", "n"),
        (" ", " "),
        ("in", "g"),
        ("'", "s"),
        ("1", "2"),
        ("\n", "\n"),
        ("é", "t"),
    ] {
        let (ea, eb) = (enc(a), enc(b));
        merges.push(format!("{ea} {eb}"));
        let joined = format!("{ea}{eb}");
        if !tokens.contains(&joined) {
            tokens.push(joined);
            types.push(1);
        }
    }
    tokens.push("<tool>".into());
    types.push(4);
    TokenizerSpec {
        model: "gpt2".into(),
        pre: Some(pre.into()),
        tokens,
        token_types: Some(types),
        merges: Some(merges),
        bos_token_id: Some(1),
        eos_token_id: Some(2),
        ..TokenizerSpec::default()
    }
}

/// A SentencePiece vocabulary with byte fallback: `<unk> <s> </s>`, the 256 `<0xXX>`
/// tokens, and a few scored pieces.
pub fn synthetic_spm_spec() -> TokenizerSpec {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0, 0.0, 0.0];
    for b in 0..256 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (i, p) in [
        "▁", "e", "t", "a", "▁t", "he", "▁the", "in", "▁a", "é", "你", "好", "你好",
    ]
    .iter()
    .enumerate()
    {
        tokens.push((*p).into());
        types.push(1);
        scores.push(-(i as f32));
    }
    TokenizerSpec {
        model: "llama".into(),
        tokens,
        scores: Some(scores),
        token_types: Some(types),
        ..TokenizerSpec::default()
    }
}

/// The synthetic tokenizers: BPE under each pre-tokenizer family, and SentencePiece.
pub fn synthetic_tokenizers() -> Vec<Tokenizer> {
    let mut v: Vec<Tokenizer> = [
        "smollm",
        "gpt-2",
        "llama-bpe",
        "qwen2",
        "qwen35",
        "default",
        "falcon",
        "deepseek-llm",
        "deepseek-coder",
        "gpt-4o",
    ]
    .iter()
    .map(|pre| Tokenizer::from_spec(&synthetic_bpe_spec(pre)).expect("synthetic BPE builds"))
    .collect();
    v.push(Tokenizer::from_spec(&synthetic_spm_spec()).expect("synthetic SPM builds"));
    v
}

/// Checks the invariants on one text; panics (for proptest and libFuzzer) on a violation.
pub fn check_invariants(tok: &Tokenizer, text: &str) {
    let n = tok.n_tokens() as u32;
    for add in [false, true] {
        for parse in [false, true] {
            let ids = tok.encode(text, add, parse).expect("encode succeeds");
            assert!(ids.iter().all(|&id| id < n), "id out of range");
            tok.detokenize(&ids, add, parse)
                .expect("detokenize succeeds");
        }
    }
    let ids = tok.encode(text, false, false).unwrap();
    let bytes = tok.decode_bytes(&ids, true).unwrap();
    let expected = if tok.kind() == rocmforge_model::tokenizer::VocabKind::Spm {
        if text.is_empty() || text.contains('\u{2581}') {
            None
        } else {
            Some(format!(" {text}"))
        }
    } else {
        Some(text.to_string())
    };
    if let Some(expected) = expected {
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            expected,
            "decode(encode(text)) differs"
        );
    }
    let mut stream = tok.stream_decoder(true);
    let mut streamed = String::new();
    for &id in &ids {
        streamed.push_str(&stream.push(id).unwrap());
    }
    streamed.push_str(&stream.finish());
    assert_eq!(
        streamed,
        String::from_utf8_lossy(&bytes),
        "streamed text differs"
    );
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn tokenizers() -> &'static [Tokenizer] {
        static T: OnceLock<Vec<Tokenizer>> = OnceLock::new();
        T.get_or_init(synthetic_tokenizers)
    }

    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-zA-Z0-9 ]{0,12}",
            "[ \\t\\n\\r]{1,5}",
            "'[sStTmMdD]|'(re|ve|ll|RE)",
            Just("<|im_start|>".to_string()),
            Just("<|im_end|>".to_string()),
            Just("<tool>".to_string()),
            "\\PC{0,6}",
            "[\u{0300}-\u{036F}\u{3000}\u{00A0}\u{2581}\u{FFFD}]{1,3}",
            "[你好世界é١٢😀]{1,6}",
            any::<String>(),
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn synthetic_vocabularies_roundtrip(s in text()) {
            for tok in tokenizers() {
                check_invariants(tok, &s);
            }
        }
    }

    #[test]
    fn every_synthetic_vocabulary_builds() {
        assert_eq!(tokenizers().len(), 11);
    }
}
