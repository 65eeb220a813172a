//! The tokenizer, built from a GGUF's `tokenizer.ggml.*` metadata, giving the same ids as
//! llama.cpp (ported from llama.cpp's `llama-vocab.cpp` and `unicode.cpp`, commit
//! 0c1e57098, which produced the project's reference data).
//!
//! Two vocabulary kinds are supported:
//!
//! - `gpt2`: byte-level BPE. The text is split into words by the pre-tokenizer named in
//!   `tokenizer.ggml.pre` (llama.cpp's regexes, see [`Tokenizer::pre_tokenizer`]), each
//!   word is mapped through GPT-2's byte-to-unicode table and merged by merge rank.
//! - `llama`: SentencePiece BPE. Spaces become `▁`, a space is put in front of the text
//!   (and after every special token) when `add_space_prefix` holds, pieces merge by score,
//!   and characters without a token fall back to their `<0xXX>` byte tokens.
//!
//! With `parse_special`, the text of control, user-defined and unknown tokens is found
//! in the input first (longest token first, as llama.cpp does) and mapped to its id; the
//! text between them is tokenized normally. User-defined tokens are matched even without
//! `parse_special`, as in llama.cpp.
//!
//! ```no_run
//! # use rocmforge_model::tokenizer::{Tokenizer, TokenizerSpec};
//! # fn spec() -> TokenizerSpec { unimplemented!() }
//! let tok = Tokenizer::from_spec(&spec())?;
//! let ids = tok.encode("<|im_start|>user\nHi<|im_end|>", false, true)?;
//! let mut stream = tok.stream_decoder(false);
//! for &id in &ids {
//!     print!("{}", stream.push(id)?);
//! }
//! print!("{}", stream.finish());
//! # Ok::<(), rocmforge_model::tokenizer::TokenizerError>(())
//! ```

mod bpe;
mod from_gguf;
mod pre_tables;
mod pretokenize;
mod stream;
mod unicode;
mod unicode_data;

use std::collections::{BTreeSet, HashMap};

use bpe::{MergeRanks, SpmVocab};
pub use from_gguf::TokenizerLoadError;
use pretokenize::PreTokenizer;
pub use stream::StreamDecoder;

/// A token id.
pub type TokenId = u32;

/// The `tokenizer.ggml.*` (and `general.name`) metadata a tokenizer is built from.
///
/// A plain struct so the tokenizer does not depend on the GGUF reader; the field names
/// follow the GGUF keys. Only `model` and `tokens` are required; `merges` is required for
/// `gpt2`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer of a `gpt2` vocabulary.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (SentencePiece merge priorities).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined,
    /// 5 unused, 6 byte. Missing: every token is normal.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges`: `"left right"` lines, by rank.
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot_token_id: Option<u32>,
    /// `tokenizer.ggml.eom_token_id`.
    pub eom_token_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unknown_token_id: Option<u32>,
    /// `tokenizer.ggml.seperator_token_id` (sic, the GGUF key's spelling).
    pub separator_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub padding_token_id: Option<u32>,
    /// `tokenizer.ggml.mask_token_id`.
    pub mask_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_pre_token_id` (or the older `prefix_token_id`).
    pub fim_pre_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_suf_token_id` (or the older `suffix_token_id`).
    pub fim_suf_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_mid_token_id` (or the older `middle_token_id`).
    pub fim_mid_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_pad_token_id`.
    pub fim_pad_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_rep_token_id`.
    pub fim_rep_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_sep_token_id`.
    pub fim_sep_token_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos_token: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
    /// `general.name`: llama.cpp strips spaces around the special tokens of Phi-3 models,
    /// recognised by this name.
    pub general_name: Option<String>,
}

/// The type of a token, as in `tokenizer.ggml.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// 0, or a value llama.cpp does not know.
    Undefined,
    /// 1.
    Normal,
    /// 2.
    Unknown,
    /// 3: BOS, EOS, chat markers and the like.
    Control,
    /// 4: added tokens that are matched in text before tokenization.
    UserDefined,
    /// 5.
    Unused,
    /// 6: `<0xXX>` byte tokens.
    Byte,
}

impl TokenType {
    /// From the GGUF integer.
    pub fn from_gguf(v: i32) -> Self {
        match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }
}

/// Which algorithm the vocabulary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabKind {
    /// `gpt2`: byte-level BPE with a pre-tokenizer.
    Bpe,
    /// `llama`: SentencePiece BPE with byte fallback.
    Spm,
}

/// Why a tokenizer could not be built or could not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenizerError {
    /// `tokenizer.ggml.model` names an algorithm rocmforge does not implement.
    #[error(
        "tokenizer model `{0}` (tokenizer.ggml.model) is not supported: rocmforge implements \
         `gpt2` (byte-level BPE) and `llama` (SentencePiece BPE)"
    )]
    UnsupportedModel(String),
    /// `tokenizer.ggml.model` says the file has no vocabulary.
    #[error(
        "the model has no vocabulary (tokenizer.ggml.model = `{0}`), so text cannot be tokenized"
    )]
    NoVocabulary(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer llama.cpp does not know either.
    #[error(
        "unknown pre-tokenizer `{0}` (tokenizer.ggml.pre); llama.cpp rejects it too — \
         the GGUF was probably made by a converter newer than rocmforge"
    )]
    UnknownPreTokenizer(String),
    /// A known pre-tokenizer that rocmforge cannot run.
    #[error("pre-tokenizer `{name}` (tokenizer.ggml.pre) is not supported: {reason}")]
    UnsupportedPreTokenizer {
        /// The name in the GGUF.
        name: String,
        /// What is missing.
        reason: String,
    },
    /// A splitting regex that cannot be run.
    #[error("pre-tokenizer regex `{regex}` is not supported: {reason}")]
    UnsupportedRegex {
        /// The regex, as llama.cpp has it.
        regex: String,
        /// What went wrong.
        reason: String,
    },
    /// The regex engine gave up on a text (backtracking limit).
    #[error("the pre-tokenizer regex engine failed on this text: {reason}")]
    RegexRuntime {
        /// The engine's message.
        reason: String,
    },
    /// `tokenizer.ggml.tokens` is empty.
    #[error("tokenizer.ggml.tokens is empty: the vocabulary needs at least one token")]
    EmptyVocabulary,
    /// A `gpt2` vocabulary without merges.
    #[error("tokenizer.ggml.merges is missing: a `{0}` BPE vocabulary needs its merges")]
    MissingMerges(String),
    /// A per-token array shorter than the token list.
    #[error("tokenizer.ggml.{field} has {got} entries but tokenizer.ggml.tokens has {expected}")]
    LengthMismatch {
        /// The GGUF key without its prefix.
        field: &'static str,
        /// Its length.
        got: usize,
        /// The number of tokens.
        expected: usize,
    },
    /// The same text twice in the token list (llama.cpp aborts on this).
    #[error(
        "token text {text:?} appears twice in tokenizer.ggml.tokens (ids {first} and {second})"
    )]
    DuplicateToken {
        /// The text.
        text: String,
        /// The first id.
        first: TokenId,
        /// The second id.
        second: TokenId,
    },
    /// The metadata asks for a BOS/EOS token to be added but there is none.
    #[error(
        "tokenizer.ggml.add_{which}_token is true but the vocabulary has no {which} token \
         (tokenizer.ggml.{which}_token_id missing or out of range)"
    )]
    MissingSpecialToken {
        /// `"bos"` or `"eos"`.
        which: &'static str,
    },
    /// An id outside the vocabulary.
    #[error("token id {id} is out of range: the vocabulary has {n_tokens} tokens")]
    InvalidTokenId {
        /// The id.
        id: TokenId,
        /// The vocabulary size.
        n_tokens: usize,
    },
}

// llama.cpp `llama_token_attr` bits.
const ATTR_UNKNOWN: u32 = 1 << 0;
const ATTR_UNUSED: u32 = 1 << 1;
const ATTR_NORMAL: u32 = 1 << 2;
const ATTR_CONTROL: u32 = 1 << 3;
const ATTR_USER_DEFINED: u32 = 1 << 4;
const ATTR_BYTE: u32 = 1 << 5;
const ATTR_LSTRIP: u32 = 1 << 7;
const ATTR_RSTRIP: u32 = 1 << 8;

struct TokenData {
    text: String,
    score: f32,
    attr: u32,
    ty: TokenType,
}

/// A tokenizer for one vocabulary. Cheap to share (`&Tokenizer` is all encoding and
/// decoding need); build it once per model.
pub struct Tokenizer {
    kind: VocabKind,
    pre_name: String,
    pre_kind: &'static str,
    tokens: Vec<TokenData>,
    token_to_id: HashMap<String, TokenId>,
    ranks: Option<MergeRanks>,
    pre: Option<PreTokenizer>,
    byte_encode: bool,
    ignore_merges: bool,
    add_space_prefix: bool,
    escape_whitespaces: bool,
    clean_spaces: bool,
    add_bos: bool,
    add_eos: bool,
    bos: Option<TokenId>,
    eos: Option<TokenId>,
    eot: Option<TokenId>,
    eom: Option<TokenId>,
    unk: Option<TokenId>,
    sep: Option<TokenId>,
    pad: Option<TokenId>,
    eog: BTreeSet<TokenId>,
    /// Control, user-defined and unknown tokens, longest text first.
    special_tokens: Vec<TokenId>,
    /// `token_to_piece(id, special = true)` for every token.
    pieces: Vec<Vec<u8>>,
    /// GPT-2 byte-to-unicode, for byte-encoding words.
    byte_char: [char; 256],
    /// Byte-fallback tokens (`<0xXX>`, or for SPM the byte's own one-character token).
    byte_tokens: Vec<Option<TokenId>>,
    /// Tokens of single ASCII characters (what byte-level BPE falls back to).
    ascii_tokens: Vec<Option<TokenId>>,
    chat_template: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("pre", &self.pre_name)
            .field("n_tokens", &self.tokens.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .finish_non_exhaustive()
    }
}

/// A piece of input after special-token partitioning: raw text or a special token.
#[derive(Debug, Clone, Copy)]
enum Fragment {
    Text { start: usize, len: usize },
    Token(TokenId),
}

const EOT_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_NAMES: &[&str] = &["<|eom_id|>"];
const FIM_PRE_NAMES: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_NAMES: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_NAMES: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_NAMES: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_NAMES: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_NAMES: &[&str] = &["<|file_sep|>"];
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

impl Tokenizer {
    /// Builds the tokenizer as llama.cpp's `llama_vocab::impl::load` does.
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Self, TokenizerError> {
        let model = spec.model.as_str();
        let n = spec.tokens.len();

        // Vocabulary type and its defaults.
        let (kind, mut bos, mut eos, mut unk, mut pre_name) = match model {
            "llama" => (VocabKind::Spm, Some(1), Some(2), Some(0), String::new()),
            "gpt2" => (
                VocabKind::Bpe,
                Some(11),
                Some(11),
                None,
                spec.pre.clone().unwrap_or_default(),
            ),
            "gemma4" => (VocabKind::Bpe, None, None, None, "gemma4".to_string()),
            "no_vocab" | "none" => return Err(TokenizerError::NoVocabulary(model.to_string())),
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let mut sep = None;
        let mut pad = None;
        let mut mask: Option<TokenId> = None;

        if n == 0 {
            return Err(TokenizerError::EmptyVocabulary);
        }

        let mut add_space_prefix;
        let mut clean_spaces;
        let mut add_bos;
        let mut add_eos = false;
        let mut escape_whitespaces = false;
        let mut ignore_merges = false;
        let mut byte_encode = true;
        let mut pre_kind = "DEFAULT";
        let mut pre = None;
        let mut ranks = None;

        match kind {
            VocabKind::Bpe => {
                let merges = spec
                    .merges
                    .as_ref()
                    .ok_or_else(|| TokenizerError::MissingMerges(model.to_string()))?;
                ranks = Some(MergeRanks::new(merges));
                add_space_prefix = false;
                clean_spaces = true;
                add_bos = false;
                if pre_name.is_empty() || pre_name == "default" {
                    pre_name = "default".to_string();
                } else {
                    let entry = pre_tables::PRE_NAMES
                        .iter()
                        .find(|p| p.names.contains(&pre_name.as_str()))
                        .ok_or_else(|| TokenizerError::UnknownPreTokenizer(pre_name.clone()))?;
                    pre_kind = entry.kind;
                    ignore_merges = entry.ignore_merges.unwrap_or(false);
                    clean_spaces = entry.clean_spaces.unwrap_or(true);
                    add_bos = entry.add_bos.unwrap_or(false);
                    escape_whitespaces = entry.escape_whitespaces.unwrap_or(false);
                    if entry.no_bos {
                        bos = None;
                    }
                }
                let ty = pre_tables::PRE_TYPES
                    .iter()
                    .find(|t| t.kind == pre_kind)
                    .ok_or_else(|| TokenizerError::UnsupportedPreTokenizer {
                        name: pre_name.clone(),
                        reason: format!("llama.cpp type {pre_kind} has no regexes"),
                    })?;
                byte_encode = ty.byte_encode;
                pre = Some(PreTokenizer::new(ty.regexes).map_err(|e| {
                    TokenizerError::UnsupportedPreTokenizer {
                        name: pre_name.clone(),
                        reason: e.to_string(),
                    }
                })?);
            }
            VocabKind::Spm => {
                add_space_prefix = true;
                clean_spaces = false;
                add_bos = true;
                pre_name = "default".to_string();
            }
        }
        if let Some(v) = spec.add_space_prefix {
            add_space_prefix = v;
        }

        // Tokens.
        if let Some(s) = &spec.scores {
            if s.len() < n {
                return Err(TokenizerError::LengthMismatch {
                    field: "scores",
                    got: s.len(),
                    expected: n,
                });
            }
        }
        if let Some(t) = &spec.token_types {
            if t.len() < n {
                return Err(TokenizerError::LengthMismatch {
                    field: "token_type",
                    got: t.len(),
                    expected: n,
                });
            }
        }
        let mut tokens = Vec::with_capacity(n);
        let mut token_to_id: HashMap<String, TokenId> = HashMap::with_capacity(n);
        for (i, text) in spec.tokens.iter().enumerate() {
            let id = i as TokenId;
            let text = if text.is_empty() {
                format!("[EMPTY_{i}]")
            } else {
                text.clone()
            };
            if let Some(&first) = token_to_id.get(&text) {
                return Err(TokenizerError::DuplicateToken {
                    text,
                    first,
                    second: id,
                });
            }
            token_to_id.insert(text.clone(), id);
            let ty = spec
                .token_types
                .as_ref()
                .map_or(TokenType::Normal, |t| TokenType::from_gguf(t[i]));
            let attr = match ty {
                TokenType::Undefined => 0,
                TokenType::Normal => ATTR_NORMAL,
                TokenType::Unknown => ATTR_UNKNOWN,
                TokenType::Control => ATTR_CONTROL,
                TokenType::UserDefined => ATTR_USER_DEFINED,
                TokenType::Unused => ATTR_UNUSED,
                TokenType::Byte => ATTR_BYTE,
            };
            tokens.push(TokenData {
                text,
                score: spec.scores.as_ref().map_or(0.0, |s| s[i]),
                attr,
                ty,
            });
        }

        // Special token ids: a default out of range is dropped, a metadata id out of range
        // is ignored (llama.cpp warns and keeps the default).
        let in_range = |id: Option<TokenId>| id.filter(|&v| (v as usize) < n);
        let choose = |default: Option<TokenId>, meta: Option<u32>| match meta {
            Some(v) if (v as usize) < n => Some(v),
            _ => in_range(default),
        };
        bos = choose(bos, spec.bos_token_id);
        eos = choose(eos, spec.eos_token_id);
        let mut eot = choose(None, spec.eot_token_id);
        let mut eom = choose(None, spec.eom_token_id);
        unk = choose(unk, spec.unknown_token_id);
        sep = choose(sep, spec.separator_token_id);
        pad = choose(pad, spec.padding_token_id);
        mask = choose(mask, spec.mask_token_id);
        let _ = mask;
        let mut fim_pre = choose(None, spec.fim_pre_token_id);
        let mut fim_suf = choose(None, spec.fim_suf_token_id);
        let mut fim_mid = choose(None, spec.fim_mid_token_id);
        let mut fim_pad = choose(None, spec.fim_pad_token_id);
        let mut fim_rep = choose(None, spec.fim_rep_token_id);
        let mut fim_sep = choose(None, spec.fim_sep_token_id);

        if let Some(v) = spec.add_bos_token {
            add_bos = v;
        }
        if let Some(v) = spec.add_eos_token {
            add_eos = v;
        }
        if pre_kind == "GEMMA4" {
            add_bos = true;
        }

        // Auto-detection by text. llama.cpp walks an unordered map, so when a vocabulary
        // has several candidates the pick is arbitrary there; here the lowest id wins.
        {
            let detect = |slot: &mut Option<TokenId>, names: &[&str], tokens: &mut [TokenData]| {
                if slot.is_some() {
                    return;
                }
                if let Some(id) = tokens.iter().position(|t| names.contains(&t.text.as_str())) {
                    *slot = Some(id as TokenId);
                    tokens[id].attr |= ATTR_CONTROL;
                }
            };
            detect(&mut eot, EOT_NAMES, &mut tokens);
            detect(&mut eom, EOM_NAMES, &mut tokens);
            detect(&mut fim_pre, FIM_PRE_NAMES, &mut tokens);
            detect(&mut fim_suf, FIM_SUF_NAMES, &mut tokens);
            detect(&mut fim_mid, FIM_MID_NAMES, &mut tokens);
            detect(&mut fim_pad, FIM_PAD_NAMES, &mut tokens);
            detect(&mut fim_rep, FIM_REP_NAMES, &mut tokens);
            detect(&mut fim_sep, FIM_SEP_NAMES, &mut tokens);
        }
        let _ = (fim_pre, fim_suf, fim_mid);
        for t in tokens.iter_mut() {
            if t.attr & ATTR_CONTROL != 0 && t.attr & ATTR_UNUSED == 0 && t.text.contains("unused")
            {
                t.attr |= ATTR_UNUSED;
            }
        }

        // End-of-generation tokens.
        let mut eog = BTreeSet::new();
        eog.extend(fim_pad);
        eog.extend(fim_rep);
        eog.extend(fim_sep);
        for (id, t) in tokens.iter_mut().enumerate() {
            if EOG_NAMES.contains(&t.text.as_str()) {
                eog.insert(id as TokenId);
                t.attr |= ATTR_CONTROL;
            }
        }
        // gpt-oss: always render these.
        for t in tokens.iter_mut() {
            if matches!(
                t.text.as_str(),
                "<|channel|>" | "<|message|>" | "<|start|>" | "<|constrain|>"
            ) {
                t.attr = ATTR_USER_DEFINED;
            }
        }
        eog.extend(eos);
        eog.extend(eot);
        eog.extend(eom);
        {
            let text_of = |id: TokenId| tokens[id as usize].text.as_str();
            let has = |s: &[&str]| eog.iter().any(|&id| s.contains(&text_of(id)));
            let end_id = eog.iter().copied().find(|&id| text_of(id) == "<|end|>");
            if let Some(end_id) = end_id {
                if (has(&["<|return|>"]) && has(&["<|call|>", "<|calls|>"]))
                    || (has(&["<|call|>", "<|calls|>"]) && has(&["<|flush|>"]))
                {
                    eog.remove(&end_id);
                    tokens[end_id as usize].attr = ATTR_USER_DEFINED;
                }
            }
        }
        {
            let text_of = |id: TokenId| tokens[id as usize].text.as_str();
            let marker = eog
                .iter()
                .any(|&id| matches!(text_of(id), "<|tool_response>" | "<|plamo:eos|>"));
            let s_id = eog.iter().copied().find(|&id| text_of(id) == "</s>");
            if let (true, Some(s_id)) = (marker, s_id) {
                eog.remove(&s_id);
                tokens[s_id as usize].attr = ATTR_NORMAL;
            }
        }

        // Special tokens, longest first (llama.cpp's sort is not stable; ties by id here).
        let mut special_tokens: Vec<TokenId> = (0..n as TokenId)
            .filter(|&id| {
                tokens[id as usize].attr & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN) != 0
            })
            .collect();
        special_tokens.sort_by(|&a, &b| {
            tokens[b as usize]
                .text
                .len()
                .cmp(&tokens[a as usize].text.len())
        });

        let byte_char = unicode::byte_to_char_table();
        let char_byte = unicode::char_to_byte_table(&byte_char);

        let mut tok = Tokenizer {
            kind,
            pre_name,
            pre_kind,
            tokens,
            token_to_id,
            ranks,
            pre,
            byte_encode,
            ignore_merges,
            add_space_prefix,
            escape_whitespaces,
            clean_spaces,
            add_bos,
            add_eos,
            bos,
            eos,
            eot,
            eom,
            unk,
            sep,
            pad,
            eog,
            special_tokens,
            pieces: Vec::new(),
            byte_char,
            byte_tokens: Vec::new(),
            ascii_tokens: Vec::new(),
            chat_template: spec.chat_template.clone(),
        };
        tok.byte_tokens = (0..=255u8).map(|b| tok.lookup_byte_token(b)).collect();
        tok.ascii_tokens = (0..128u8)
            .map(|b| tok.token_to_id.get(&(b as char).to_string()).copied())
            .collect();
        tok.pieces = (0..n).map(|id| tok.compute_piece(id, &char_byte)).collect();

        // Per-model attributes (after the caches, as in llama.cpp).
        let name = spec.general_name.as_deref().unwrap_or("").to_lowercase();
        if name.contains("phi-3") || name.contains("phi3") {
            for i in 0..tok.special_tokens.len() {
                let id = tok.special_tokens[i] as usize;
                tok.tokens[id].attr |= ATTR_RSTRIP;
            }
            if let Some(&id) = tok.token_to_id.get("</s>") {
                tok.tokens[id as usize].attr |= ATTR_RSTRIP;
            }
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                if let Some(&id) = tok.token_to_id.get(t) {
                    tok.tokens[id as usize].attr &= !ATTR_RSTRIP;
                }
            }
        } else if tok.pre_name.contains("jina-v2-de") || tok.pre_name.contains("jina-v2-es") {
            if let Some(&id) = tok.token_to_id.get("<mask>") {
                tok.tokens[id as usize].attr |= ATTR_LSTRIP;
            }
        } else if name.contains("modern-bert") {
            if let Some(&id) = tok.token_to_id.get("[MASK]") {
                tok.tokens[id as usize].attr |= ATTR_LSTRIP;
            }
        }

        if tok.add_bos && tok.bos.is_none() {
            return Err(TokenizerError::MissingSpecialToken { which: "bos" });
        }
        if tok.add_eos && tok.eos.is_none() {
            return Err(TokenizerError::MissingSpecialToken { which: "eos" });
        }
        Ok(tok)
    }

    fn lookup_byte_token(&self, b: u8) -> Option<TokenId> {
        let hex = format!("<0x{b:02X}>");
        match self.kind {
            VocabKind::Spm => self
                .token_to_id
                .get(&hex)
                .or_else(|| {
                    if b < 0x80 {
                        self.token_to_id.get(&(b as char).to_string())
                    } else {
                        None
                    }
                })
                .copied()
                // llama.cpp throws here; the unknown token is the graceful equivalent.
                .or(self.unk),
            VocabKind::Bpe => self.token_to_id.get(&hex).copied(),
        }
    }

    /// llama.cpp `token_to_piece(id, special = true)` without the cache.
    fn compute_piece(&self, id: usize, char_byte: &[Option<u8>]) -> Vec<u8> {
        let t = &self.tokens[id];
        if t.attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED) != 0 {
            return t.text.as_bytes().to_vec();
        }
        if t.attr & ATTR_NORMAL != 0 {
            if self.kind == VocabKind::Spm || self.escape_whitespaces {
                return t.text.replace('\u{2581}', " ").into_bytes();
            }
            // llama_decode_text: every character maps back to a byte, or the whole token
            // becomes a "[UNK_BYTE_0x..]" marker for that character.
            let mut out = Vec::with_capacity(t.text.len());
            for c in t.text.chars() {
                match char_byte.get(c as usize).copied().flatten() {
                    Some(b) => out.push(b),
                    None => {
                        out.extend_from_slice(b"[UNK_BYTE_0x");
                        let mut buf = [0u8; 4];
                        for b in c.encode_utf8(&mut buf).bytes() {
                            out.extend_from_slice(format!("{b:02x}").as_bytes());
                        }
                        out.extend_from_slice(t.text.as_bytes());
                        out.push(b']');
                    }
                }
            }
            return out;
        }
        if t.attr & ATTR_BYTE != 0 {
            // `<0xXX>`: strtol of the two characters after "<0x".
            let hex: String = t
                .text
                .chars()
                .skip(3)
                .take(2)
                .take_while(char::is_ascii_hexdigit)
                .collect();
            return vec![u8::from_str_radix(&hex, 16).unwrap_or(0)];
        }
        Vec::new()
    }

    // ---------------------------------------------------------------- accessors

    /// Number of tokens in the vocabulary.
    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// `gpt2` BPE or `llama` SentencePiece.
    pub fn kind(&self) -> VocabKind {
        self.kind
    }

    /// The pre-tokenizer name in effect (`tokenizer.ggml.pre`, or `"default"`).
    pub fn pre_tokenizer(&self) -> &str {
        &self.pre_name
    }

    /// The beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<TokenId> {
        self.bos
    }

    /// The end-of-sequence token.
    pub fn eos_id(&self) -> Option<TokenId> {
        self.eos
    }

    /// The end-of-turn token (from metadata, or found by its text as llama.cpp does).
    pub fn eot_id(&self) -> Option<TokenId> {
        self.eot
    }

    /// The end-of-message token.
    pub fn eom_id(&self) -> Option<TokenId> {
        self.eom
    }

    /// The unknown token.
    pub fn unk_id(&self) -> Option<TokenId> {
        self.unk
    }

    /// The padding token.
    pub fn pad_id(&self) -> Option<TokenId> {
        self.pad
    }

    /// The separator token.
    pub fn sep_id(&self) -> Option<TokenId> {
        self.sep
    }

    /// Every token that ends generation (EOS, EOT, EOM and the ones llama.cpp recognises by
    /// text, such as `<|im_end|>` and `<|endoftext|>`).
    pub fn eog_ids(&self) -> impl Iterator<Item = TokenId> + '_ {
        self.eog.iter().copied()
    }

    /// Whether `id` ends generation.
    pub fn is_eog(&self, id: TokenId) -> bool {
        self.eog.contains(&id)
    }

    /// Whether `encode(.., add_special = true, ..)` puts BOS in front.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// `tokenizer.chat_template`, if the model has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The stored text of a token (byte-encoded for `gpt2`, with `▁` for SentencePiece).
    pub fn token_text(&self, id: TokenId) -> Result<&str, TokenizerError> {
        Ok(&self.token(id)?.text)
    }

    /// The type of a token.
    pub fn token_type(&self, id: TokenId) -> Result<TokenType, TokenizerError> {
        Ok(self.token(id)?.ty)
    }

    /// Whether the token is a control or unknown token (rendered only on request).
    pub fn is_control(&self, id: TokenId) -> Result<bool, TokenizerError> {
        Ok(self.token(id)?.attr & (ATTR_CONTROL | ATTR_UNKNOWN) != 0)
    }

    /// The id of a token with exactly this stored text.
    pub fn token_id(&self, text: &str) -> Option<TokenId> {
        self.token_to_id.get(text).copied()
    }

    fn token(&self, id: TokenId) -> Result<&TokenData, TokenizerError> {
        self.tokens
            .get(id as usize)
            .ok_or(TokenizerError::InvalidTokenId {
                id,
                n_tokens: self.tokens.len(),
            })
    }

    // ---------------------------------------------------------------- encoding

    /// Tokenizes `text` as llama.cpp's `llama_tokenize` does.
    ///
    /// `add_special` adds BOS/EOS where the vocabulary asks for them ([`Self::add_bos`],
    /// [`Self::add_eos`]). `parse_special` maps the text of control and unknown tokens
    /// (e.g. `<|im_start|>`) to their ids; user-defined tokens are always matched.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>, TokenizerError> {
        let fragments = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        match self.kind {
            VocabKind::Spm => {
                let mut is_prev_special = true;
                if add_special && self.add_bos {
                    out.extend(self.bos);
                }
                for frag in &fragments {
                    match *frag {
                        Fragment::Text { start, len } => {
                            let mut s = String::with_capacity(len + 4);
                            if self.add_space_prefix && is_prev_special {
                                s.push(' ');
                            }
                            s.push_str(&text[start..start + len]);
                            let s = s.replace(' ', "\u{2581}");
                            bpe::spm_tokenize(&s, self, &mut out);
                            is_prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            is_prev_special = true;
                        }
                    }
                }
                if add_special && self.add_eos {
                    out.extend(self.eos);
                }
            }
            VocabKind::Bpe => {
                if add_special && self.add_bos {
                    out.extend(self.bos);
                }
                for frag in &fragments {
                    match *frag {
                        Fragment::Text { start, len } => {
                            let piece = &text[start..start + len];
                            if self.escape_whitespaces {
                                self.bpe_tokenize(&piece.replace(' ', "\u{2581}"), &mut out)?;
                            } else {
                                self.bpe_tokenize(piece, &mut out)?;
                            }
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special && self.add_eos {
                    out.extend(self.eos);
                }
            }
        }
        Ok(out)
    }

    /// llama.cpp `llm_tokenizer_bpe_session::tokenize` for one raw-text fragment.
    fn bpe_tokenize(&self, text: &str, out: &mut Vec<TokenId>) -> Result<(), TokenizerError> {
        let (Some(pre), Some(ranks)) = (&self.pre, &self.ranks) else {
            return Ok(());
        };
        let mut encoded = String::new();
        for word in pre.split(text)? {
            let word: &str = if self.byte_encode {
                encoded.clear();
                encoded.extend(word.bytes().map(|b| self.byte_char[b as usize]));
                &encoded
            } else {
                word
            };
            if self.ignore_merges {
                if let Some(&id) = self.token_to_id.get(word) {
                    out.push(id);
                    continue;
                }
            }
            for sym in bpe::bpe_merge(word, ranks) {
                if let Some(&id) = self.token_to_id.get(sym) {
                    out.push(id);
                    continue;
                }
                // No token for the symbol: llama.cpp looks up each of its bytes alone
                // (byte-encoded vocabularies) or its `<0xXX>` tokens, skipping misses.
                for b in sym.bytes() {
                    let id = if self.byte_encode {
                        self.ascii_tokens.get(b as usize).copied().flatten()
                    } else {
                        self.byte_tokens[b as usize]
                    };
                    out.extend(id);
                }
            }
        }
        Ok(())
    }

    /// llama.cpp `tokenizer_st_partition`: special-token text becomes token fragments.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text {
            start: 0,
            len: text.len(),
        });
        let bytes = text.as_bytes();
        for &id in &self.special_tokens {
            let data = &self.tokens[id as usize];
            if !parse_special && data.attr & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 {
                continue;
            }
            let needle = data.text.as_str();
            if !frags
                .iter()
                .any(|f| matches!(f, Fragment::Text { start, len } if text[*start..*start + *len].contains(needle)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for frag in frags {
                let Fragment::Text { start, len } = frag else {
                    next.push(frag);
                    continue;
                };
                let (mut base, mut blen) = (start, len);
                loop {
                    let Some(rel) = text[base..base + blen].find(needle) else {
                        if blen > 0 {
                            next.push(Fragment::Text {
                                start: base,
                                len: blen,
                            });
                        }
                        break;
                    };
                    let m = base + rel;
                    if m > base {
                        let mut left_len = m - base;
                        if data.attr & ATTR_LSTRIP != 0 {
                            while left_len > 0 && is_c_space(bytes[base + left_len - 1]) {
                                left_len -= 1;
                            }
                        }
                        if left_len > 0 {
                            next.push(Fragment::Text {
                                start: base,
                                len: left_len,
                            });
                        }
                    }
                    next.push(Fragment::Token(id));
                    let end = base + blen;
                    let mut right = m + needle.len();
                    if right >= end {
                        break;
                    }
                    if data.attr & ATTR_RSTRIP != 0 {
                        while right < end && is_c_space(bytes[right]) {
                            right += 1;
                        }
                    }
                    base = right;
                    blen = end - right;
                }
            }
            frags = next;
        }
        frags
    }

    // ---------------------------------------------------------------- decoding

    /// The bytes a token stands for (llama.cpp `token_to_piece`). With `render_special`
    /// false, control and unknown tokens give nothing. A piece may be part of a UTF-8
    /// character (byte tokens); use [`StreamDecoder`] to get text.
    pub fn token_to_piece(
        &self,
        id: TokenId,
        render_special: bool,
    ) -> Result<&[u8], TokenizerError> {
        let t = self.token(id)?;
        if !render_special && t.attr & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 {
            return Ok(&[]);
        }
        Ok(&self.pieces[id as usize])
    }

    /// The pieces of `ids` concatenated.
    pub fn decode_bytes(
        &self,
        ids: &[TokenId],
        render_special: bool,
    ) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::new();
        for &id in ids {
            out.extend_from_slice(self.token_to_piece(id, render_special)?);
        }
        Ok(out)
    }

    /// The pieces of `ids` concatenated, as text (invalid UTF-8 becomes U+FFFD). This is
    /// what llama-server's `/detokenize` returns with `render_special` true.
    pub fn decode(&self, ids: &[TokenId], render_special: bool) -> Result<String, TokenizerError> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids, render_special)?).into_owned())
    }

    /// llama.cpp `llama_detokenize`: like [`Self::decode`], but also drops the leading
    /// space SentencePiece adds, optionally the BOS/EOS that `encode` added
    /// (`remove_special`), and applies the vocabulary's space clean-up (`clean_spaces`,
    /// e.g. `" ,"` to `","` for `gpt2`).
    pub fn detokenize(
        &self,
        ids: &[TokenId],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<String, TokenizerError> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos {
            if let (Some(&first), Some(bos)) = (ids.first(), self.bos) {
                if first == bos {
                    remove_space = false;
                    ids = &ids[1..];
                }
            }
        }
        if remove_special && self.add_eos {
            if let (Some(&last), Some(eos)) = (ids.last(), self.eos) {
                if last == eos {
                    ids = &ids[..ids.len() - 1];
                }
            }
        }
        let mut text: Vec<u8> = Vec::new();
        for &id in ids {
            let mut piece = self.token_to_piece(id, unparse_special)?;
            if remove_space {
                if let [b' ', rest @ ..] = piece {
                    piece = rest;
                }
            }
            remove_space = false;
            text.extend_from_slice(piece);
        }
        if self.clean_spaces {
            text = clean_spaces(text);
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// A streaming decoder that yields only complete UTF-8 characters.
    pub fn stream_decoder(&self, render_special: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(self, render_special)
    }

    /// The words the pre-tokenizer splits `text` into (before byte encoding and merges),
    /// for inspecting how a `gpt2` vocabulary segments text. Special tokens are not
    /// looked for. A SentencePiece vocabulary has no pre-tokenizer: one word, the text.
    pub fn pre_tokenize<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, TokenizerError> {
        match &self.pre {
            Some(pre) => pre.split(text),
            None => Ok(if text.is_empty() {
                Vec::new()
            } else {
                vec![text]
            }),
        }
    }

    /// The llama.cpp pre-tokenizer type in effect (e.g. `SMOLLM`, `LLAMA3`), or
    /// `DEFAULT` (also for SentencePiece, which has none).
    pub fn pre_tokenizer_type(&self) -> &'static str {
        self.pre_kind
    }
}

impl SpmVocab for Tokenizer {
    fn token(&self, text: &str) -> Option<TokenId> {
        self.token_to_id.get(text).copied()
    }
    fn score(&self, id: TokenId) -> f32 {
        self.tokens.get(id as usize).map_or(0.0, |t| t.score)
    }
    fn byte_token(&self, byte: u8) -> Option<TokenId> {
        self.byte_tokens[byte as usize]
    }
}

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// The three clean-up passes of llama.cpp's `detokenize`, on bytes, in place as there.
fn clean_spaces(mut text: Vec<u8>) -> Vec<u8> {
    // first pass: " ?", " !", " .", " ,"
    let total1 = text.len();
    let mut total = usize::from(total1 > 0);
    for i in 1..total1 {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }
    // second pass: " ' " -> "'"
    let total2 = total;
    total = usize::from(total2 > 0);
    let mut i = 1;
    while i < total2 {
        let x = text[i];
        if x == b'\'' && i + 1 < total2 && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0;
        }
        text[total] = x;
        total += 1;
        i += 1;
    }
    // third pass: " 's", " 'm", " 're", " 've" lose the space
    let total3 = total;
    total = usize::from(total3 > 0);
    for i in 1..total3 {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < total3 {
            let x1 = text[i + 1];
            if x1 == b't' || x1 == b'd' {
                // kept
            } else if x1 == b's' || x1 == b'm' {
                total -= 1;
            } else if i + 2 < total3 {
                let x2 = text[i + 2];
                if (x1 == b'r' || x1 == b'v') && x2 == b'e' {
                    total -= 1;
                }
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_spaces_matches_llama_cpp() {
        assert_eq!(clean_spaces(b"a , b .".to_vec()), b"a, b.");
        assert_eq!(clean_spaces(b"rock ' n".to_vec()), b"rock'n");
        assert_eq!(
            clean_spaces(b"it 's I 'm we 're don 't".to_vec()),
            b"it's I'm we're don 't"
        );
        assert_eq!(clean_spaces(Vec::new()), b"");
    }
}
