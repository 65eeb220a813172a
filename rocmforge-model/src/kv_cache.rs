//! [`KvCache`]: one sequence's keys and values for every layer, and how many positions of
//! it are filled.
//!
//! The capacity (`n_ctx`, the context length) is fixed when the cache is made
//! ([`Model::new_cache`](crate::model::Model::new_cache)); the storage is allocated once,
//! up front, on the backend. A forward pass that would need more positions than are left is
//! [`ModelError::ContextOverflow`] before anything is computed.

use crate::backend::{Backend, KvDtype, KvLayout};
use crate::decode_step::DecodeStep;
use crate::error::{ModelError, Result};

/// Options of a KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvCacheOptions {
    /// Capacity in positions (the context length). `None`: the model's training context
    /// length, capped at [`KvCacheOptions::DEFAULT_MAX_CTX`].
    pub n_ctx: Option<usize>,
    /// Element type (default `f32`).
    pub dtype: KvDtype,
}

impl Default for KvCacheOptions {
    fn default() -> Self {
        KvCacheOptions {
            n_ctx: None,
            dtype: KvDtype::F32,
        }
    }
}

impl KvCacheOptions {
    /// The default capacity limit when none is given (as llama.cpp's default `n_ctx`).
    pub const DEFAULT_MAX_CTX: usize = 4096;

    /// Options with a context length of `n_ctx` positions.
    pub fn with_n_ctx(n_ctx: usize) -> Self {
        KvCacheOptions {
            n_ctx: Some(n_ctx),
            ..Self::default()
        }
    }

    /// The same options with another element type.
    pub fn dtype(self, dtype: KvDtype) -> Self {
        KvCacheOptions { dtype, ..self }
    }
}

/// One sequence's KV cache: `n_layers` K and V tensors of `[n_ctx, n_kv_heads, head_dim]`
/// on the backend, of which positions `0 .. len()` hold the sequence so far.
pub struct KvCache<B: Backend> {
    pub(crate) storage: B::KvStorage,
    pub(crate) layout: KvLayout,
    pub(crate) len: usize,
    /// The buffers and recording of this sequence's one-token decode steps, made at the
    /// first one. Declared after `storage`: dropped after it, which is harmless (the
    /// recording is never replayed once the cache is being dropped).
    pub(crate) decode: Option<Box<DecodeStep<B>>>,
}

impl<B: Backend> std::fmt::Debug for KvCache<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache")
            .field("layout", &self.layout)
            .field("len", &self.len)
            .finish()
    }
}

impl<B: Backend> KvCache<B> {
    /// Allocates a cache of `layout` on `backend`.
    pub(crate) fn new(backend: &B, layout: KvLayout) -> Result<Self> {
        if layout.shape.n_ctx == 0 {
            return Err(ModelError::InvalidConfig(
                "the context length must be at least 1".to_string(),
            ));
        }
        if i32::try_from(layout.shape.n_ctx).is_err() {
            return Err(ModelError::InvalidConfig(format!(
                "a context length of {} exceeds the 2^31 positions RoPE takes",
                layout.shape.n_ctx
            )));
        }
        Ok(KvCache {
            storage: backend.alloc_kv(&layout)?,
            layout,
            len: 0,
            decode: None,
        })
    }

    /// Positions filled (tokens processed so far).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in positions (the context length).
    pub fn n_ctx(&self) -> usize {
        self.layout.shape.n_ctx
    }

    /// Positions still free.
    pub fn remaining(&self) -> usize {
        self.n_ctx() - self.len
    }

    /// The layout (layers, shape, element type).
    pub fn layout(&self) -> &KvLayout {
        &self.layout
    }

    /// Bytes of storage.
    pub fn bytes(&self) -> usize {
        self.layout.bytes().unwrap_or(usize::MAX)
    }

    /// Forgets every position (the storage is kept and overwritten by later tokens).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps only the first `len` positions (no-op when `len >= self.len()`): rewinds the
    /// sequence, e.g. to reuse a shared prefix.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// [`ModelError::ContextOverflow`] unless `n_new` more positions fit.
    pub fn check_fits(&self, n_new: usize) -> Result<()> {
        match self.len.checked_add(n_new) {
            Some(needed) if needed <= self.n_ctx() => Ok(()),
            needed => Err(ModelError::ContextOverflow {
                cached: self.len,
                new: n_new,
                needed: needed.unwrap_or(usize::MAX),
                n_ctx: self.n_ctx(),
            }),
        }
    }

    /// The backend storage.
    pub fn storage(&self) -> &B::KvStorage {
        &self.storage
    }
}
