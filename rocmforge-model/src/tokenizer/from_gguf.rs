//! Reading a [`TokenizerSpec`] out of a GGUF file's `tokenizer.*` metadata.

use super::{Tokenizer, TokenizerError, TokenizerSpec};
use crate::gguf::{GgufError, GgufFile, GgufMetadata, OptionalKey};

/// Why a tokenizer could not be loaded from a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerLoadError {
    /// The metadata is missing a required key or has one of the wrong type.
    #[error("tokenizer metadata: {0}")]
    Metadata(#[from] GgufError),
    /// The metadata is complete but does not describe a usable tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// A token-id key, optional.
fn id(meta: &GgufMetadata, key: &str) -> Result<Option<u32>, GgufError> {
    meta.get_u32(key).optional()
}

impl TokenizerSpec {
    /// The tokenizer description stored under `tokenizer.ggml.*` (and the chat template
    /// under `tokenizer.chat_template`), with llama.cpp's key names — including its
    /// historical spelling `seperator_token_id` and the older `prefix`/`suffix`/`middle`
    /// names of the fill-in-the-middle tokens.
    pub fn from_gguf(meta: &GgufMetadata) -> Result<Self, GgufError> {
        let strings = |key: &str| -> Result<Option<Vec<String>>, GgufError> {
            Ok(meta
                .get_str_array(key)
                .optional()?
                .map(|v| v.into_iter().map(str::to_owned).collect()))
        };
        // Scores are f32 in every converter we know, but some files store INT32.
        let scores = match meta.get_f32_array("tokenizer.ggml.scores").optional() {
            Ok(v) => v.map(<[f32]>::to_vec),
            Err(_) => meta
                .get_i32_array("tokenizer.ggml.scores")
                .optional()?
                .map(|v| v.iter().map(|&s| s as f32).collect()),
        };
        let fim = |new: &str, old: &str| -> Result<Option<u32>, GgufError> {
            Ok(id(meta, new)?.or(id(meta, old)?))
        };
        Ok(TokenizerSpec {
            model: meta.get_str("tokenizer.ggml.model")?.to_owned(),
            pre: meta
                .get_str("tokenizer.ggml.pre")
                .optional()?
                .map(str::to_owned),
            tokens: meta
                .get_str_array("tokenizer.ggml.tokens")?
                .into_iter()
                .map(str::to_owned)
                .collect(),
            scores,
            token_types: meta
                .get_i32_array("tokenizer.ggml.token_type")
                .optional()?
                .map(|v| v.to_vec()),
            merges: strings("tokenizer.ggml.merges")?,
            bos_token_id: id(meta, "tokenizer.ggml.bos_token_id")?,
            eos_token_id: id(meta, "tokenizer.ggml.eos_token_id")?,
            eot_token_id: id(meta, "tokenizer.ggml.eot_token_id")?,
            eom_token_id: id(meta, "tokenizer.ggml.eom_token_id")?,
            unknown_token_id: id(meta, "tokenizer.ggml.unknown_token_id")?,
            separator_token_id: id(meta, "tokenizer.ggml.seperator_token_id")?,
            padding_token_id: id(meta, "tokenizer.ggml.padding_token_id")?,
            mask_token_id: id(meta, "tokenizer.ggml.mask_token_id")?,
            fim_pre_token_id: fim(
                "tokenizer.ggml.fim_pre_token_id",
                "tokenizer.ggml.prefix_token_id",
            )?,
            fim_suf_token_id: fim(
                "tokenizer.ggml.fim_suf_token_id",
                "tokenizer.ggml.suffix_token_id",
            )?,
            fim_mid_token_id: fim(
                "tokenizer.ggml.fim_mid_token_id",
                "tokenizer.ggml.middle_token_id",
            )?,
            fim_pad_token_id: id(meta, "tokenizer.ggml.fim_pad_token_id")?,
            fim_rep_token_id: id(meta, "tokenizer.ggml.fim_rep_token_id")?,
            fim_sep_token_id: id(meta, "tokenizer.ggml.fim_sep_token_id")?,
            add_bos_token: meta.get_bool("tokenizer.ggml.add_bos_token").optional()?,
            add_eos_token: meta.get_bool("tokenizer.ggml.add_eos_token").optional()?,
            add_space_prefix: meta
                .get_bool("tokenizer.ggml.add_space_prefix")
                .optional()?,
            chat_template: meta
                .get_str("tokenizer.chat_template")
                .optional()?
                .map(str::to_owned),
            general_name: meta.get_str("general.name").optional()?.map(str::to_owned),
        })
    }
}

impl Tokenizer {
    /// The tokenizer of a GGUF model file.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerLoadError> {
        let spec = TokenizerSpec::from_gguf(file.metadata())?;
        Ok(Tokenizer::from_spec(&spec)?)
    }
}
