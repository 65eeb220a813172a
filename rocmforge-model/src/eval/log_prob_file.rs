//! llama.cpp's log-probability file (`_logits_`), written by
//! `llama-perplexity --kl-divergence-base FILE` and read by `--kl-divergence`.
//!
//! Layout (little-endian), from `tools/perplexity/perplexity.cpp`:
//!
//! | field | type |
//! |---|---|
//! | magic `_logits_` | 8 bytes |
//! | `n_ctx` (window length) | `u32` |
//! | `n_vocab` | `i32` |
//! | `n_chunk` (windows) | `i32` |
//! | the text's first `n_ctx × n_chunk` tokens | `i32` each |
//! | per window, per scored position (`n_ctx − 1 − n_ctx/2` of them), one row | see [`encode_log_probs`](super::encode_log_probs) |

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::error::EvalError;
use super::log_prob_row::row_len;
use super::windows::EvalWindows;
use crate::tokenizer::TokenId;

const MAGIC: &[u8; 8] = b"_logits_";
const HEADER_BYTES: u64 = 8 + 4 + 4 + 4;

/// What a log-probability file was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogProbFileHeader {
    /// Window length.
    pub n_ctx: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Number of windows.
    pub n_windows: usize,
    /// The tokens the windows cover (`n_ctx × n_windows`).
    pub tokens: Vec<TokenId>,
}

impl LogProbFileHeader {
    /// `u16`s per window of rows.
    pub fn window_len(&self) -> usize {
        (self.n_ctx - 1 - self.n_ctx / 2) * row_len(self.n_vocab)
    }

    /// The file's length in bytes.
    fn file_len(&self) -> Option<u64> {
        let tokens = (self.n_ctx as u64).checked_mul(self.n_windows as u64)?;
        let rows = (self.window_len() as u64).checked_mul(self.n_windows as u64)?;
        HEADER_BYTES
            .checked_add(tokens.checked_mul(4)?)?
            .checked_add(rows.checked_mul(2)?)
    }
}

/// Reads a log-probability file window by window.
#[derive(Debug)]
pub struct LogProbFileReader {
    path: String,
    input: BufReader<File>,
    header: LogProbFileHeader,
    windows_read: usize,
}

impl LogProbFileReader {
    /// Opens the file and reads its header. Errors when the file is not such a file, or
    /// its length does not match its header (truncated or damaged).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EvalError> {
        let path_str = path.as_ref().display().to_string();
        let io = |source| EvalError::Io {
            path: path_str.clone(),
            source,
        };
        let bad = |reason: String| EvalError::BadLogProbFile {
            path: path_str.clone(),
            reason,
        };
        let file = File::open(path.as_ref()).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut input = BufReader::new(file);
        let mut head = [0u8; HEADER_BYTES as usize];
        if len < HEADER_BYTES {
            return Err(bad(format!("{len} bytes, shorter than the header")));
        }
        input.read_exact(&mut head).map_err(io)?;
        if &head[..8] != MAGIC {
            return Err(bad("it does not start with `_logits_`".into()));
        }
        let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        let (n_ctx, n_vocab, n_windows) = (word(8), word(12) as i32, word(16) as i32);
        if n_ctx < 4 || n_vocab <= 0 || n_windows <= 0 {
            return Err(bad(format!(
                "n_ctx {n_ctx}, n_vocab {n_vocab}, windows {n_windows}"
            )));
        }
        let mut header = LogProbFileHeader {
            n_ctx: n_ctx as usize,
            n_vocab: n_vocab as usize,
            n_windows: n_windows as usize,
            tokens: Vec::new(),
        };
        // Checked before anything is allocated from the header's numbers.
        match header.file_len() {
            Some(expected) if expected == len => {}
            expected => {
                return Err(bad(format!(
                    "{len} bytes; its header (n_ctx {n_ctx}, n_vocab {n_vocab}, {n_windows} \
                     windows) needs {}",
                    expected.map_or("more than 2^64".to_string(), |e| e.to_string())
                )))
            }
        }
        let mut raw = vec![0u8; header.n_ctx * header.n_windows * 4];
        input.read_exact(&mut raw).map_err(io)?;
        header.tokens = raw
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        if let Some(&t) = header.tokens.iter().find(|&&t| t >= n_vocab as u32) {
            return Err(bad(format!(
                "token {t} is outside the vocabulary of {n_vocab}"
            )));
        }
        Ok(Self {
            path: path_str,
            input,
            header,
            windows_read: 0,
        })
    }

    /// The file's header.
    pub fn header(&self) -> &LogProbFileHeader {
        &self.header
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Reads the next window's rows into `rows` (resized to
    /// [`window_len`](LogProbFileHeader::window_len)). Errors past the last window.
    pub fn read_window(&mut self, rows: &mut Vec<u16>) -> Result<(), EvalError> {
        if self.windows_read == self.header.n_windows {
            return Err(EvalError::BadLogProbFile {
                path: self.path.clone(),
                reason: format!("it has only {} windows", self.header.n_windows),
            });
        }
        let mut raw = vec![0u8; self.header.window_len() * 2];
        self.input
            .read_exact(&mut raw)
            .map_err(|source| EvalError::Io {
                path: self.path.clone(),
                source,
            })?;
        rows.clear();
        rows.extend(
            raw.chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]])),
        );
        self.windows_read += 1;
        Ok(())
    }
}

/// Writes a log-probability file window by window.
#[derive(Debug)]
pub struct LogProbFileWriter {
    path: String,
    output: BufWriter<File>,
    window_len: usize,
}

impl LogProbFileWriter {
    /// Creates the file and writes its header: the windows' length and count, the
    /// vocabulary size and the tokens the windows cover.
    pub fn create(
        path: impl AsRef<Path>,
        windows: &EvalWindows,
        n_vocab: usize,
        tokens: &[TokenId],
    ) -> Result<Self, EvalError> {
        let path_str = path.as_ref().display().to_string();
        let io = |source| EvalError::Io {
            path: path_str.clone(),
            source,
        };
        let mut output = BufWriter::new(File::create(path.as_ref()).map_err(io)?);
        let mut head = Vec::with_capacity(HEADER_BYTES as usize);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&(windows.n_ctx() as u32).to_le_bytes());
        head.extend_from_slice(&(n_vocab as i32).to_le_bytes());
        head.extend_from_slice(&(windows.len() as i32).to_le_bytes());
        output.write_all(&head).map_err(io)?;
        for &t in windows.covered(tokens) {
            output.write_all(&t.to_le_bytes()).map_err(io)?;
        }
        Ok(Self {
            path: path_str,
            output,
            window_len: windows.scored_per_window() * row_len(n_vocab),
        })
    }

    /// Appends one window's rows.
    ///
    /// # Panics
    /// If `rows` is not one window's worth.
    pub fn write_window(&mut self, rows: &[u16]) -> Result<(), EvalError> {
        assert_eq!(rows.len(), self.window_len, "one window of rows");
        let mut raw = Vec::with_capacity(rows.len() * 2);
        for r in rows {
            raw.extend_from_slice(&r.to_le_bytes());
        }
        self.output.write_all(&raw).map_err(|source| EvalError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Flushes the file.
    pub fn finish(mut self) -> Result<(), EvalError> {
        self.output.flush().map_err(|source| EvalError::Io {
            path: self.path.clone(),
            source,
        })
    }
}
