//! The model layer of rocmforge: GGUF, tokenizer, chat templates, the llama-family
//! forward pass over a HIP or CPU backend, sampling and generation.
//!
//! Not written yet: this crate is the subject of the model issue. It exists so that the
//! workspace has its final shape and the dependency direction is fixed from the start.

pub mod chat_template;
pub mod gguf;
pub mod tokenizer;

pub use rocmforge_kernels as kernels;
