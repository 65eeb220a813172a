//! Fuzzes the tokenizer: any text must encode (under every pre-tokenizer family and
//! SentencePiece, with every add_special/parse_special combination) without a panic, to
//! ids in range that decode back to the text byte for byte; any id sequence must decode,
//! stream-decode and detokenize without a panic (out-of-range ids are errors).
//!
//! The vocabularies and the invariant check are the ones of the property test
//! `tests/tokenizer_synthetic.rs`. Seeds: any text files, e.g.
//!
//!     mkdir -p corpus/tokenizer && cp ../tests/fixtures/tokenize_public.jsonl corpus/tokenizer/
//!     cargo +nightly fuzz run tokenizer corpus/tokenizer -- -max_total_time=60

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rocmforge_model::tokenizer::{TokenId, Tokenizer};

#[path = "../../tests/tokenizer_synthetic.rs"]
#[allow(dead_code)]
mod synthetic;

fn tokenizers() -> &'static [Tokenizer] {
    static T: OnceLock<Vec<Tokenizer>> = OnceLock::new();
    T.get_or_init(synthetic::synthetic_tokenizers)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let toks = tokenizers();
    let tok = &toks[selector as usize % toks.len()];

    // Text path.
    let text = String::from_utf8_lossy(rest);
    synthetic::check_invariants(tok, &text);

    // Id path: arbitrary ids, some out of range.
    let ids: Vec<TokenId> = rest
        .chunks(2)
        .map(|c| u32::from(c[0]) | (u32::from(*c.get(1).unwrap_or(&0)) << 8))
        .map(|v| v % (tok.n_tokens() as u32 + 8))
        .collect();
    let in_range = ids.iter().all(|&id| (id as usize) < tok.n_tokens());
    for special in [false, true] {
        assert_eq!(tok.decode(&ids, special).is_ok(), in_range);
        assert_eq!(tok.detokenize(&ids, special, !special).is_ok(), in_range);
        let mut stream = tok.stream_decoder(special);
        for &id in &ids {
            let _ = stream.push(id);
        }
        let _ = stream.finish();
    }
});
