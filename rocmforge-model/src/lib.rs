//! The model layer of rocmforge: GGUF, tokenizer, chat templates, the llama-family
//! forward pass over a HIP or CPU backend, sampling and generation.
//!
//! * [`gguf`], [`tokenizer`], [`chat_template`] — reading model files and text.
//! * [`config`] — architecture and hyper-parameters ([`config::ModelConfig`]).
//! * [`backend`] — the [`backend::Backend`] trait the forward pass is written against, and
//!   its GPU backend ([`backend::hip::HipBackend`], the kernels of rocmforge-kernels on one
//!   stream) and CPU backend ([`backend::cpu::CpuBackend`], the reference ops).
//! * [`model`] — [`model::Model`]: weights on a backend and the forward pass;
//!   [`kv_cache`] — per-sequence KV caches.
//! * [`generate`] — sampling, [`generate::Generator`] / [`generate::Session`] and streaming
//!   generation with stop conditions.
//! * [`eval`] — perplexity and KL divergence over a text, as llama.cpp's `llama-perplexity`
//!   (and its log-probability files).
//!
//! ```no_run
//! use rocmforge_model::chat_template::ChatMessage;
//! use rocmforge_model::generate::{GenerateOptions, Generator};
//! use rocmforge_model::kv_cache::KvCacheOptions;
//!
//! fn main() -> rocmforge_model::Result<()> {
//!     // Model and tokenizer from one GGUF file, on the CPU backend.
//!     let generator = Generator::open_cpu("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//!     let prompt = generator.encode_chat(&[ChatMessage::user("Name three colours.")])?;
//!     // Each session has its own KV cache; sessions share the loaded weights.
//!     let mut session = generator.session(&KvCacheOptions::default())?;
//!     for token in session.generate(&prompt, GenerateOptions::greedy(64))? {
//!         print!("{}", token?.text);
//!     }
//!     Ok(())
//! }
//! ```

mod activations;
pub mod backend;
pub mod chat_template;
pub mod config;
mod decode_step;
mod error;
pub mod eval;
pub mod generate;
pub mod gguf;
pub mod kv_cache;
pub mod model;
mod sampling_defaults;
pub mod tokenizer;

pub use error::{ModelError, Result};

pub use rocmforge_kernels as kernels;
