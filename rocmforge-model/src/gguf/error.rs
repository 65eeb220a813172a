//! [`GgufError`]: everything that can be wrong with a GGUF file or its use.

use std::path::PathBuf;

use rocmforge_kernels::quant::GgmlType;

use super::value::GgufValueType;

/// What went wrong reading, querying or writing a GGUF file.
///
/// Every message names what is wrong (the key, the tensor, the offset in the
/// file) and what was expected, so that the user can tell a truncated download
/// from a file of an unsupported version or a model of the wrong type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// Opening, reading, mapping or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`opening`, `memory-mapping`, `writing`, …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a GGUF to a [`std::io::Write`] failed.
    #[error("writing GGUF data: {0}")]
    Write(#[source] std::io::Error),

    /// The first four bytes are not `GGUF`.
    #[error(
        "not a GGUF file: it starts with bytes {} ({:?}), expected the magic \"GGUF\" (47 47 55 46){}",
        hex(found), String::from_utf8_lossy(found), legacy_hint(found)
    )]
    BadMagic {
        /// The first four bytes of the file.
        found: [u8; 4],
    },
    /// GGUF version 1 (32-bit counts and lengths), superseded in 2023.
    #[error(
        "GGUF version 1 is not supported (v1 used 32-bit counts and lengths and was replaced \
         by v2 in 2023); convert the model again with a current llama.cpp (convert_hf_to_gguf.py \
         or gguf-py) to get a v3 file"
    )]
    VersionOne,
    /// A version other than 1, 2 or 3.
    #[error("GGUF version {version} is not supported: this reader handles versions 2 and 3")]
    UnsupportedVersion {
        /// The version field.
        version: u32,
    },
    /// A big-endian file (its version field reads byte-swapped).
    #[error(
        "the file is a big-endian GGUF (version field {version:#010x} is version {swapped} \
         byte-swapped); only little-endian GGUF files are supported"
    )]
    BigEndian {
        /// The version field as read (little-endian).
        version: u32,
        /// The version it is when byte-swapped.
        swapped: u32,
    },
    /// The file ends in the middle of something.
    #[error(
        "truncated GGUF: {what} at offset {offset} needs {needed} bytes but only {available} \
         remain (file size {file_size})"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it starts.
        offset: u64,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
        /// Size of the whole file.
        file_size: u64,
    },
    /// A count (of entries, tensors or array elements) that cannot fit in the
    /// rest of the file; caught before anything is allocated for it.
    #[error(
        "{what} at offset {offset} is {count}, but that many need at least {min_bytes} bytes \
         and only {available} remain in the file (file size {file_size})"
    )]
    CountTooLarge {
        /// Which count.
        what: String,
        /// Where the count is stored.
        offset: u64,
        /// The count.
        count: u64,
        /// Bytes that many entries take at the least.
        min_bytes: u128,
        /// Bytes left in the file after the count.
        available: u64,
        /// Size of the whole file.
        file_size: u64,
    },
    /// A metadata key that is not valid UTF-8.
    #[error(
        "metadata key #{index} at offset {offset} is not valid UTF-8 (bad byte at position \
         {valid_up_to} of the key: {lossy:?})"
    )]
    KeyNotUtf8 {
        /// Index of the key-value pair.
        index: u64,
        /// Offset of the key's length field.
        offset: u64,
        /// Length of the valid prefix.
        valid_up_to: usize,
        /// The key with invalid bytes replaced.
        lossy: String,
    },
    /// Two metadata entries with the same key.
    #[error(
        "duplicate metadata key '{key}': entry #{index}{} repeats entry #{first_index}",
        at_offset(offset)
    )]
    DuplicateKey {
        /// The key.
        key: String,
        /// Index of the repeated entry.
        index: u64,
        /// Index of the first entry with the key.
        first_index: u64,
        /// Offset of the repeated entry in the file (`None` when added by a writer call).
        offset: Option<u64>,
    },
    /// A value type id outside ggml's `gguf_type`.
    #[error(
        "metadata key '{key}': unknown value type id {type_id} at offset {offset} (GGUF value \
         types are 0..=12)"
    )]
    UnknownValueType {
        /// The key.
        key: String,
        /// The id found.
        type_id: u32,
        /// Offset of the id.
        offset: u64,
    },
    /// A bool byte other than 0 or 1.
    #[error("metadata key '{key}': bool at offset {offset} is byte {value}, expected 0 or 1")]
    InvalidBool {
        /// The key.
        key: String,
        /// Offset of the byte.
        offset: u64,
        /// The byte.
        value: u8,
    },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`](super::MAX_ARRAY_DEPTH).
    #[error(
        "metadata key '{key}': arrays nested more than {max} levels deep{}; this reader stops \
         there",
        at_offset(offset)
    )]
    NestingTooDeep {
        /// The key.
        key: String,
        /// Offset of the array that is too deep (`None` when given to a writer).
        offset: Option<u64>,
        /// The limit.
        max: usize,
    },
    /// `general.alignment` of the wrong type or value.
    #[error("metadata key 'general.alignment' {reason}")]
    InvalidAlignment {
        /// What is wrong with it.
        reason: String,
    },

    /// A tensor name that is not valid UTF-8.
    #[error(
        "tensor #{index} at offset {offset}: name is not valid UTF-8 (bad byte at position \
         {valid_up_to}: {lossy:?})"
    )]
    TensorNameNotUtf8 {
        /// Index of the tensor.
        index: u64,
        /// Offset of the name's length field.
        offset: u64,
        /// Length of the valid prefix.
        valid_up_to: usize,
        /// The name with invalid bytes replaced.
        lossy: String,
    },
    /// A tensor name of 64 bytes or more (ggml's `GGML_MAX_NAME` includes the NUL).
    #[error("tensor '{name}': name is {len} bytes long, ggml allows at most {max}")]
    TensorNameTooLong {
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit ([`MAX_TENSOR_NAME_LEN`](super::MAX_TENSOR_NAME_LEN)).
        max: usize,
    },
    /// Two tensors with the same name.
    #[error("duplicate tensor name '{name}': tensor #{index} repeats tensor #{first_index}")]
    DuplicateTensor {
        /// The name.
        name: String,
        /// Index of the repeated tensor.
        index: u64,
        /// Index of the first tensor with the name.
        first_index: u64,
    },
    /// A dimension count outside 1..=4.
    #[error("tensor '{name}': {n_dims} dimensions, expected 1 to {max} (ggml's GGML_MAX_DIMS)")]
    InvalidDimCount {
        /// The tensor.
        name: String,
        /// The count found.
        n_dims: u64,
        /// The limit ([`MAX_DIMS`](super::MAX_DIMS)).
        max: usize,
    },
    /// A dimension of zero.
    #[error("tensor '{name}': dimension ne{axis} is 0 (dims {dims:?}); every dimension must be at least 1")]
    ZeroDim {
        /// The tensor.
        name: String,
        /// Which dimension (0 = the row length).
        axis: usize,
        /// All dimensions, ggml order.
        dims: Vec<u64>,
    },
    /// Dimensions whose product (the element count) or byte size overflows.
    #[error(
        "tensor '{name}': dims {dims:?} give more than {max} {what}, which overflows \
         (ggml counts elements in int64)"
    )]
    TensorTooLarge {
        /// The tensor.
        name: String,
        /// All dimensions, ggml order.
        dims: Vec<u64>,
        /// `elements` or `bytes`.
        what: &'static str,
        /// The limit that was passed.
        max: u64,
    },
    /// A type id that is not one of ggml's (unknown or removed).
    #[error(
        "tensor '{name}': unknown ggml type id {type_id} (not a type of ggml; ids 4, 5, 31-33 \
         and 36-38 were removed)"
    )]
    UnknownTensorType {
        /// The tensor.
        name: String,
        /// The id found.
        type_id: u32,
    },
    /// A row length that is not a whole number of blocks.
    #[error(
        "tensor '{name}': row length ne0 = {row_len} is not a multiple of the block size \
         {block_size} of type {ty}"
    )]
    RowNotBlockMultiple {
        /// The tensor.
        name: String,
        /// The type.
        ty: GgmlType,
        /// ne0.
        row_len: u64,
        /// Elements per block of the type.
        block_size: usize,
    },
    /// A data offset that is not a multiple of the alignment.
    #[error(
        "tensor '{name}': data offset {offset} is not a multiple of the alignment {alignment} \
         (general.alignment, default 32)"
    )]
    MisalignedTensor {
        /// The tensor.
        name: String,
        /// The offset (relative to the data section).
        offset: u64,
        /// The alignment.
        alignment: u64,
    },
    /// Tensor data that extends past the end of the file.
    #[error(
        "tensor '{name}': data at offset {offset} of the data section (file offset {start}, \
         {size} bytes) ends at {end}, past the end of the file ({file_size} bytes; data \
         section starts at {data_start})"
    )]
    TensorOutOfBounds {
        /// The tensor.
        name: String,
        /// Its offset relative to the data section.
        offset: u64,
        /// Absolute start (saturated at `u128::MAX`… never in practice).
        start: u128,
        /// Bytes of data.
        size: u64,
        /// Absolute end.
        end: u128,
        /// File size.
        file_size: u64,
        /// Absolute start of the data section.
        data_start: u64,
    },
    /// Two tensors whose data overlap.
    #[error(
        "tensors '{first}' (data section bytes {first_start}..{first_end}) and '{second}' \
         (bytes {second_start}..{second_end}) overlap"
    )]
    TensorsOverlap {
        /// The tensor that starts first.
        first: String,
        /// Its start (relative).
        first_start: u64,
        /// Its end (relative).
        first_end: u64,
        /// The other.
        second: String,
        /// Its start (relative).
        second_start: u64,
        /// Its end (relative).
        second_end: u64,
    },

    /// A metadata key the file does not have.
    #[error("metadata key '{key}' not found")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata value of another type than the one asked for.
    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    TypeMismatch {
        /// The key.
        key: String,
        /// What was asked for.
        expected: &'static str,
        /// What the file has.
        found: String,
    },
    /// An integer value that does not fit the integer type asked for.
    #[error("metadata key '{key}': {found} value {value}{at} does not fit in {expected}")]
    OutOfRange {
        /// The key.
        key: String,
        /// The stored type.
        found: GgufValueType,
        /// The stored value.
        value: i128,
        /// ` (element N)` for an array element, else empty.
        at: String,
        /// The type asked for.
        expected: &'static str,
    },
    /// A string value that is not valid UTF-8, asked for as `&str`.
    #[error(
        "metadata key '{key}'{at}: string is not valid UTF-8 (bad byte at position \
         {valid_up_to}); use the raw bytes (GgufString::as_bytes) instead"
    )]
    ValueNotUtf8 {
        /// The key.
        key: String,
        /// ` (element N)` for an array element, else empty.
        at: String,
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// A tensor the file does not have.
    #[error("tensor '{name}' not found (the file has {count} tensors)")]
    MissingTensor {
        /// The name asked for.
        name: String,
        /// Number of tensors in the file.
        count: usize,
    },

    /// Writer: tensor data of the wrong length.
    #[error("tensor '{name}': {ty} with dims {dims:?} takes {expected} bytes, but {actual} bytes were given")]
    TensorDataSize {
        /// The tensor.
        name: String,
        /// Its type.
        ty: GgmlType,
        /// Its dimensions.
        dims: Vec<u64>,
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// Writer: random weights asked for in a type without a quantizer.
    #[error(
        "tensor '{name}': cannot make random weights of type {ty}, which has no quantizer \
         (quantizable: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K to q6_K)"
    )]
    NotQuantizable {
        /// The tensor.
        name: String,
        /// The type asked for.
        ty: GgmlType,
    },
    /// Writer: a version other than 2 or 3.
    #[error("cannot write GGUF version {version}: only versions 2 and 3 are written")]
    UnsupportedWriteVersion {
        /// The version asked for.
        version: u32,
    },

    /// The demo model file is not where it is looked for.
    #[error(
        "demo model not found at {path} ({reason}): run scripts/fetch-demo-model.sh from the \
         repository root, or set ROCMFORGE_DEMO_MODEL to the .gguf file"
    )]
    DemoModelMissing {
        /// Where it was looked for.
        path: PathBuf,
        /// Why it was not taken (missing, wrong size).
        reason: String,
    },
}

impl GgufError {
    /// Whether this is [`GgufError::MissingKey`] (for optional metadata).
    pub fn is_missing_key(&self) -> bool {
        matches!(self, GgufError::MissingKey { .. })
    }
}

/// Result alias of the GGUF module.
pub type Result<T, E = GgufError> = std::result::Result<T, E>;

/// Turns a missing metadata key into `Ok(None)`, for optional keys:
/// `meta.get_u32("llama.attention.head_count_kv").optional()?`.
pub trait OptionalKey<T> {
    /// `Ok(Some(v))` for a value, `Ok(None)` for [`GgufError::MissingKey`], any
    /// other error (a type mismatch) as it is.
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalKey<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_missing_key() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// ` (offset N)` or nothing.
fn at_offset(offset: &Option<u64>) -> String {
    offset.map_or_else(String::new, |o| format!(" (at offset {o})"))
}

/// `47 47 55 46`.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A hint for the pre-GGUF formats of llama.cpp.
fn legacy_hint(found: &[u8; 4]) -> &'static str {
    match u32::from_le_bytes(*found) {
        0x6767_6d6c | 0x6767_6d66 | 0x6767_6a74 => {
            "; this is a pre-GGUF ggml/ggmf/ggjt model, convert it to GGUF with llama.cpp"
        }
        _ => "",
    }
}
