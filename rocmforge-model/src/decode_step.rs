//! [`DecodeStep`]: what one sequence's decode steps (one token at a time) keep from step
//! to step, so that a backend can record a step once and replay it.

use std::sync::Arc;

use crate::activations::Activations;
use crate::backend::{Backend, Recording};

/// The buffers of a one-token forward pass at fixed places — activations and the token
/// buffer, rewritten in place each step — and the backend's recording of the pass over
/// them and the sequence's KV cache (on the HIP backend, a graph: one launch per token
/// instead of one per operation). Kept by the [`KvCache`](crate::kv_cache::KvCache).
pub(crate) struct DecodeStep<B: Backend> {
    /// Declared first, so dropped first: never outlives the buffers it refers to.
    pub recording: Option<Recording>,
    /// The model whose weights the recording reads (compared by address).
    pub model: Arc<()>,
    pub acts: Activations<B>,
    pub tokens: B::Tokens,
}
