//! [`Activations`]: the tensors one forward pass works in, and [`SequenceRows`]: one
//! sequence's share of a batch.

use std::ops::Range;

use rocmforge_kernels::cpu::KvCacheShape;

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::error::Result;

/// The activations of a forward pass over `n_tokens` tokens, with logits for `n_out` of
/// them. A forward call makes them once; a sequence's decode step keeps its own from
/// step to step (see [`DecodeStep`](crate::decode_step::DecodeStep)).
pub(crate) struct Activations<B: Backend> {
    /// Tokens per pass.
    pub n_tokens: usize,
    /// The residual stream, `[n_tokens, n_embd]`, and the buffer its next value goes to.
    pub x: B::Tensor,
    pub x_next: B::Tensor,
    /// Normed input of a block, then its projected output, `[n_tokens, n_embd]`.
    pub h: B::Tensor,
    /// Queries `[n_tokens, q_dim]`, keys and values `[n_tokens, kv_dim]`.
    pub q: B::Tensor,
    pub k: B::Tensor,
    pub v: B::Tensor,
    /// Attention output, `[n_tokens, q_dim]`.
    pub att: B::Tensor,
    /// FFN gate, up and their SwiGLU, `[n_tokens, n_ff]`.
    pub gate: B::Tensor,
    pub up: B::Tensor,
    pub ffn: B::Tensor,
    /// The rows that get logits, normed, and their logits (`None` without logits).
    pub xo: Option<B::Tensor>,
    pub xo_norm: Option<B::Tensor>,
    pub logits: Option<B::Tensor>,
}

impl<B: Backend> Activations<B> {
    /// Allocates the activations of `n_tokens` tokens with logits for `n_out` rows.
    pub fn new(b: &B, c: &ModelConfig, n_tokens: usize, n_out: usize) -> Result<Self> {
        let n = n_tokens;
        let with_logits = |len: usize| -> Result<Option<B::Tensor>> {
            match n_out {
                0 => Ok(None),
                _ => b.alloc(len).map(Some),
            }
        };
        Ok(Activations {
            n_tokens,
            x: b.alloc(n * c.n_embd)?,
            x_next: b.alloc(n * c.n_embd)?,
            h: b.alloc(n * c.n_embd)?,
            q: b.alloc(n * c.q_dim())?,
            k: b.alloc(n * c.kv_dim())?,
            v: b.alloc(n * c.kv_dim())?,
            att: b.alloc(n * c.q_dim())?,
            gate: b.alloc(n * c.n_ff)?,
            up: b.alloc(n * c.n_ff)?,
            ffn: b.alloc(n * c.n_ff)?,
            xo: with_logits(n_out * c.n_embd)?,
            xo_norm: with_logits(n_out * c.n_embd)?,
            logits: with_logits(n_out * c.n_vocab)?,
        })
    }
}

/// One sequence of a batch: its KV storage and shape, the position of its first new
/// token, and its rows of the batch.
pub(crate) struct SequenceRows<'a, B: Backend> {
    pub storage: &'a mut B::KvStorage,
    pub shape: KvCacheShape,
    pub pos0: usize,
    pub rows: Range<usize>,
}
