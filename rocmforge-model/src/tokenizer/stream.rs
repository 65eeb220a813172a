//! Streaming detokenization: text out as tokens come in, whole characters only.

use super::{TokenId, Tokenizer, TokenizerError};

/// Turns a stream of token ids into text, emitting only complete UTF-8 characters: a
/// character whose bytes are spread over several tokens (byte tokens, or byte-level BPE
/// pieces that end inside a character) is held back until its last byte arrives and is
/// then emitted whole. Bytes that can never become valid UTF-8 are emitted as U+FFFD
/// rather than stalling the stream.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tok: &'t Tokenizer,
    render_special: bool,
    pending: Vec<u8>,
}

impl<'t> StreamDecoder<'t> {
    pub(super) fn new(tok: &'t Tokenizer, render_special: bool) -> Self {
        Self {
            tok,
            render_special,
            pending: Vec::new(),
        }
    }

    /// Adds one token; returns the text that became complete (possibly empty).
    pub fn push(&mut self, id: TokenId) -> Result<String, TokenizerError> {
        let piece = self.tok.token_to_piece(id, self.render_special)?;
        self.pending.extend_from_slice(piece);
        Ok(self.take_complete())
    }

    /// Bytes received but not yet emitted (the start of an unfinished character).
    pub fn pending_bytes(&self) -> &[u8] {
        &self.pending
    }

    /// Ends the stream: whatever is left (an unfinished character) becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut consumed = 0;
        loop {
            let rest = &self.pending[consumed..];
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    consumed = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // `valid` bytes are valid UTF-8 by the error's contract.
                    out.push_str(&String::from_utf8_lossy(&rest[..valid]));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            consumed += valid + bad;
                        }
                        None => {
                            // An unfinished character at the end: keep it for later.
                            consumed += valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        out
    }
}
