//! [`EvalWindows`]: how a text's tokens are cut into evaluation windows.

use super::error::EvalError;
use crate::tokenizer::TokenId;

/// A text's tokens cut as llama.cpp's perplexity tool cuts them: consecutive windows of
/// `n_ctx` tokens (the tail that does not fill a window is left out), each evaluated
/// from an empty cache. The logits at positions `n_ctx / 2 ..= n_ctx - 2` of a window
/// are scored against the token that follows each, so every scored prediction has at
/// least `n_ctx / 2` tokens of context. When the model adds BOS, the first token of each
/// window is replaced by BOS for the evaluation (and kept for scoring).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalWindows {
    n_ctx: usize,
    n_windows: usize,
    bos: Option<TokenId>,
}

impl EvalWindows {
    /// Plans the windows of a text of `n_tokens` tokens: `n_tokens / n_ctx` windows, at
    /// most `max_windows`. `bos`: the BOS id when the model adds one.
    ///
    /// Errors when `n_ctx < 4` or the text has fewer than `2 * n_ctx` tokens (as
    /// llama.cpp requires).
    pub fn new(
        n_tokens: usize,
        n_ctx: usize,
        max_windows: Option<usize>,
        bos: Option<TokenId>,
    ) -> Result<Self, EvalError> {
        if n_ctx < 4 {
            return Err(EvalError::WindowTooSmall { n_ctx });
        }
        let needed = 2 * n_ctx;
        if n_tokens < needed {
            return Err(EvalError::TextTooShort {
                tokens: n_tokens,
                n_ctx,
                needed,
            });
        }
        let all = n_tokens / n_ctx;
        let n_windows = max_windows.map_or(all, |m| m.clamp(1, all));
        Ok(Self {
            n_ctx,
            n_windows,
            bos,
        })
    }

    /// Tokens per window.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.n_windows
    }

    /// Whether there are no windows (never, once made).
    pub fn is_empty(&self) -> bool {
        self.n_windows == 0
    }

    /// The first scored position of a window (`n_ctx / 2`).
    pub fn first_scored(&self) -> usize {
        self.n_ctx / 2
    }

    /// Scored predictions per window (`n_ctx - 1 - n_ctx / 2`).
    pub fn scored_per_window(&self) -> usize {
        self.n_ctx - 1 - self.first_scored()
    }

    /// The tokens the windows cover (`len() * n_ctx` from the start of the text).
    pub fn covered<'t>(&self, tokens: &'t [TokenId]) -> &'t [TokenId] {
        &tokens[..self.n_windows * self.n_ctx]
    }

    /// Window `i`'s input: its tokens, the first replaced by BOS when the model adds one.
    ///
    /// # Panics
    /// If `i >= len()` or `tokens` is shorter than the text the windows were planned for.
    pub fn input(&self, tokens: &[TokenId], i: usize) -> Vec<TokenId> {
        assert!(i < self.n_windows, "window {i} of {}", self.n_windows);
        let start = i * self.n_ctx;
        let mut input = tokens[start..start + self.n_ctx].to_vec();
        if let Some(bos) = self.bos {
            input[0] = bos;
        }
        input
    }

    /// The tokens window `i`'s scored positions predict (`scored_per_window()` of them).
    ///
    /// # Panics
    /// As [`input`](Self::input).
    pub fn targets<'t>(&self, tokens: &'t [TokenId], i: usize) -> &'t [TokenId] {
        assert!(i < self.n_windows, "window {i} of {}", self.n_windows);
        let start = i * self.n_ctx;
        &tokens[start + self.first_scored() + 1..start + self.n_ctx]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_llama_cpp() {
        let tokens: Vec<u32> = (100..1100).collect();
        let w = EvalWindows::new(tokens.len(), 256, None, None).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!((w.first_scored(), w.scored_per_window()), (128, 127));
        assert_eq!(w.input(&tokens, 1)[0], 356);
        assert_eq!(w.targets(&tokens, 1), &tokens[256 + 129..512]);
        let with_bos = EvalWindows::new(tokens.len(), 256, Some(2), Some(1)).unwrap();
        assert_eq!(with_bos.len(), 2);
        assert_eq!(&with_bos.input(&tokens, 1)[..2], &[1, 357]);
        assert_eq!(with_bos.targets(&tokens, 1)[0], 256 + 129 + 100);
        assert!(matches!(
            EvalWindows::new(511, 256, None, None),
            Err(EvalError::TextTooShort { needed: 512, .. })
        ));
        assert!(matches!(
            EvalWindows::new(100, 3, None, None),
            Err(EvalError::WindowTooSmall { n_ctx: 3 })
        ));
        assert_eq!(EvalWindows::new(1000, 4, Some(0), None).unwrap().len(), 1);
    }
}
