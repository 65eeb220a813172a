//! The reader: [`GgufHeader::parse`] validates a GGUF image; [`GgufFile`] owns
//! one (memory-mapped or in memory) and hands out tensor data.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rocmforge_kernels::quant::GgmlType;

use super::error::{GgufError, Result};
use super::metadata::GgufMetadata;
use super::tensor::{check_tensor_shape, GgufTensor, TensorInfo};
use super::value::{GgufArray, GgufString, GgufValue, GgufValueType};
use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS};

/// Fewest bytes one metadata key-value pair takes: key length (8), value type
/// (4), one byte of value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Fewest bytes one tensor info takes: name length (8), n_dims (4), one
/// dimension (8), type (4), offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;
/// Most entries reserved up front for a vector whose elements are parsed one by
/// one (strings, nested arrays, key-value pairs, tensor infos). Counts are
/// checked against the bytes left, but a corrupt count in a large file could
/// still reserve a multiple of the file size; past this the vector grows only
/// as elements are actually parsed, so memory follows what the file holds.
const PREALLOC_CAP: usize = 4096;

/// Everything of a GGUF file before the tensor data, parsed and validated:
/// version, metadata, tensor infos, alignment and where the data section starts.
///
/// [`GgufHeader::parse`] checks, before anything is used or allocated:
/// magic and version (2 or 3; 1 and big-endian files are named as such); every
/// count and length against the bytes left in the file; keys and tensor names
/// UTF-8 and unique; value type ids and bools; array nesting (at most
/// [`MAX_ARRAY_DEPTH`]); `general.alignment` (a `u32` power of two, default 32);
/// tensor dims (1 to 4, each ≥ 1, element count within `i64`), ggml type ids
/// (exactly ggml's), row lengths a whole number of blocks, data offsets aligned,
/// inside the file, and no two tensors overlapping.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufHeader {
    version: u32,
    metadata: GgufMetadata,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: usize,
    data_offset: usize,
    file_size: usize,
}

impl GgufHeader {
    /// Parses and validates the GGUF image `bytes` (the whole file: tensor
    /// bounds are checked against its length). Only the header is read;
    /// tensor data is not touched. Never panics; allocations are bounded by a
    /// small multiple of `bytes.len()`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Parser::new(bytes).parse()
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The metadata.
    pub fn metadata(&self) -> &GgufMetadata {
        &self.metadata
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.metadata.architecture()
    }

    /// The tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor info named `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Absolute offset of the data section (tensor offsets are relative to it).
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// Size of the file this header was parsed from.
    pub fn file_size(&self) -> usize {
        self.file_size
    }

    /// The tensor named `name` over `bytes`, the image this header was parsed
    /// from. [`GgufError::MissingTensor`] for an unknown name, and
    /// [`GgufError::TensorOutOfBounds`] if `bytes` is shorter than that image.
    pub fn tensor_in<'a>(&'a self, bytes: &'a [u8], name: &str) -> Result<GgufTensor<'a>> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor {
                name: name.to_string(),
                count: self.tensors.len(),
            })?;
        let data = bytes
            .get(info.data_range())
            .ok_or_else(|| out_of_bounds(info, self, bytes.len()))?;
        Ok(GgufTensor { info, data })
    }
}

/// [`GgufError::TensorOutOfBounds`] for `info` over a file of `file_size` bytes.
fn out_of_bounds(info: &TensorInfo, header: &GgufHeader, file_size: usize) -> GgufError {
    let start = info.data_start as u128;
    GgufError::TensorOutOfBounds {
        name: info.name.clone(),
        offset: info.offset,
        start,
        size: info.n_bytes as u64,
        end: start + info.n_bytes as u128,
        file_size: file_size as u64,
        data_start: header.data_offset as u64,
    }
}

/// A cursor over the file with checked reads.
struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes, or [`GgufError::Truncated`] describing `what`.
    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        let available = self.remaining();
        if n > available as u64 {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                available: available as u64,
                file_size: self.bytes.len() as u64,
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Checks that `count` entries of at least `min_each` bytes fit in what is
    /// left of the file (`count_offset` is where the count was stored), and
    /// returns the count as `usize`.
    fn check_count(
        &self,
        count: u64,
        min_each: u64,
        count_offset: usize,
        what: impl FnOnce() -> String,
    ) -> Result<usize> {
        let min_bytes = count as u128 * min_each as u128;
        let available = self.remaining();
        if min_bytes > available as u128 {
            return Err(GgufError::CountTooLarge {
                what: what(),
                offset: count_offset as u64,
                count,
                min_bytes,
                available: available as u64,
                file_size: self.bytes.len() as u64,
            });
        }
        // count <= available, so it fits in usize.
        Ok(count as usize)
    }

    /// A GGUF string (u64 length, bytes), as raw bytes.
    fn string(&mut self, what: impl Fn() -> String) -> Result<&'a [u8]> {
        let len = self.u64(|| format!("the length of {}", what()))?;
        self.take(len, || format!("{} ({len} bytes)", what()))
    }

    fn parse(mut self) -> Result<GgufHeader> {
        // Magic.
        let magic: [u8; 4] = self.array(|| "the magic \"GGUF\"".to_string())?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic { found: magic });
        }

        // Version.
        let version = self.u32(|| "the version".to_string())?;
        match version {
            2 | 3 => {}
            1 => return Err(GgufError::VersionOne),
            v if matches!(v.swap_bytes(), 1..=3) => {
                return Err(GgufError::BigEndian {
                    version: v,
                    swapped: v.swap_bytes(),
                })
            }
            v => return Err(GgufError::UnsupportedVersion { version: v }),
        }

        // Counts.
        let tensor_count_offset = self.pos;
        let tensor_count = self.u64(|| "the tensor count".to_string())?;
        let kv_count_offset = self.pos;
        let kv_count = self.u64(|| "the metadata key-value count".to_string())?;
        // Both sections must fit in the rest of the file: checked up front so
        // that an absurd count is reported as such, not as a truncation later.
        self.check_count(
            tensor_count,
            MIN_TENSOR_INFO_BYTES,
            tensor_count_offset,
            || "the tensor count".to_string(),
        )?;
        let n_kv = self.check_count(kv_count, MIN_KV_BYTES, kv_count_offset, || {
            "the metadata key-value count".to_string()
        })?;

        // Metadata.
        let mut metadata = GgufMetadata::with_capacity(n_kv.min(PREALLOC_CAP));
        for index in 0..kv_count {
            let key_offset = self.pos;
            let key_bytes = self.string(|| format!("the key of metadata entry #{index}"))?;
            let key = std::str::from_utf8(key_bytes).map_err(|e| GgufError::KeyNotUtf8 {
                index,
                offset: key_offset as u64,
                valid_up_to: e.valid_up_to(),
                lossy: String::from_utf8_lossy(key_bytes).into_owned(),
            })?;
            if let Some(first) = metadata.position(key) {
                return Err(GgufError::DuplicateKey {
                    key: key.to_string(),
                    index,
                    first_index: first as u64,
                    offset: Some(key_offset as u64),
                });
            }
            let type_offset = self.pos;
            let type_id = self.u32(|| format!("the value type of metadata key '{key}'"))?;
            let ty = value_type(type_id, key, type_offset)?;
            let value = self.value(ty, key)?;
            metadata.push_new(key.to_string(), value);
        }

        let alignment = alignment_of(&metadata)?;

        // Tensor infos.
        let tensor_count_offset_now = self.pos;
        let n_tensors = self.check_count(
            tensor_count,
            MIN_TENSOR_INFO_BYTES,
            tensor_count_offset_now,
            || format!("the tensor count ({tensor_count}, from offset {tensor_count_offset}) at the start of the tensor infos"),
        )?;
        let mut tensors = Vec::with_capacity(n_tensors.min(PREALLOC_CAP));
        let mut tensor_index: HashMap<String, usize> =
            HashMap::with_capacity(n_tensors.min(PREALLOC_CAP));
        for index in 0..tensor_count {
            let info = self.tensor_info(index)?;
            if let Some(&first) = tensor_index.get(&info.name) {
                return Err(GgufError::DuplicateTensor {
                    name: info.name,
                    index,
                    first_index: first as u64,
                });
            }
            tensor_index.insert(info.name.clone(), tensors.len());
            tensors.push(info);
        }

        // Data section: starts at the next multiple of the alignment.
        let data_offset = self.pos.next_multiple_of(alignment);
        let file_size = self.bytes.len();
        let mut header = GgufHeader {
            version,
            metadata,
            tensors,
            tensor_index,
            alignment,
            data_offset,
            file_size,
        };
        place_tensors(&mut header)?;
        Ok(header)
    }

    /// A value of type `ty` for key `key` (a top-level value: arrays at depth 1).
    fn value(&mut self, ty: GgufValueType, key: &str) -> Result<GgufValue> {
        let what = || format!("the {} value of metadata key '{key}'", ty.name());
        Ok(match ty {
            GgufValueType::U8 => GgufValue::U8(u8::from_le_bytes(self.array(what)?)),
            GgufValueType::I8 => GgufValue::I8(i8::from_le_bytes(self.array(what)?)),
            GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            GgufValueType::U32 => GgufValue::U32(u32::from_le_bytes(self.array(what)?)),
            GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            GgufValueType::U64 => GgufValue::U64(u64::from_le_bytes(self.array(what)?)),
            GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            GgufValueType::Bool => {
                let offset = self.pos;
                let [b] = self.array(what)?;
                GgufValue::Bool(bool_of(b, key, offset)?)
            }
            GgufValueType::String => GgufValue::String(GgufString::from_bytes(
                self.string(|| format!("the string value of metadata key '{key}'"))?,
            )),
            GgufValueType::Array => GgufValue::Array(self.array_value(key, 1)?),
        })
    }

    /// An array (element type, count, elements) at nesting depth `depth`.
    fn array_value(&mut self, key: &str, depth: usize) -> Result<GgufArray> {
        let start = self.pos;
        if depth > MAX_ARRAY_DEPTH {
            return Err(GgufError::NestingTooDeep {
                key: key.to_string(),
                offset: Some(start as u64),
                max: MAX_ARRAY_DEPTH,
            });
        }
        let type_id =
            self.u32(|| format!("the element type of an array in metadata key '{key}'"))?;
        let elem = value_type(type_id, key, start)?;
        let count_offset = self.pos;
        let count = self.u64(|| format!("the length of an array in metadata key '{key}'"))?;
        let n = self.check_count(count, elem.min_encoded_size() as u64, count_offset, || {
            format!(
                "the length of an array of {} in metadata key '{key}'",
                elem.name()
            )
        })?;
        let what = || format!("the {n} {} elements of metadata key '{key}'", elem.name());
        Ok(match elem {
            GgufValueType::U8 => GgufArray::U8(self.numbers(n, what, u8::from_le_bytes)?),
            GgufValueType::I8 => GgufArray::I8(self.numbers(n, what, i8::from_le_bytes)?),
            GgufValueType::U16 => GgufArray::U16(self.numbers(n, what, u16::from_le_bytes)?),
            GgufValueType::I16 => GgufArray::I16(self.numbers(n, what, i16::from_le_bytes)?),
            GgufValueType::U32 => GgufArray::U32(self.numbers(n, what, u32::from_le_bytes)?),
            GgufValueType::I32 => GgufArray::I32(self.numbers(n, what, i32::from_le_bytes)?),
            GgufValueType::F32 => GgufArray::F32(self.numbers(n, what, f32::from_le_bytes)?),
            GgufValueType::U64 => GgufArray::U64(self.numbers(n, what, u64::from_le_bytes)?),
            GgufValueType::I64 => GgufArray::I64(self.numbers(n, what, i64::from_le_bytes)?),
            GgufValueType::F64 => GgufArray::F64(self.numbers(n, what, f64::from_le_bytes)?),
            GgufValueType::Bool => {
                let offset = self.pos;
                let bytes = self.take(n as u64, what)?;
                let mut v = Vec::with_capacity(n);
                for (i, &b) in bytes.iter().enumerate() {
                    v.push(bool_of(b, key, offset + i)?);
                }
                GgufArray::Bool(v)
            }
            GgufValueType::String => {
                let mut v = Vec::with_capacity(n.min(PREALLOC_CAP));
                for i in 0..n {
                    let s = self.string(|| {
                        format!("element {i} of the string array in metadata key '{key}'")
                    })?;
                    v.push(GgufString::from_bytes(s));
                }
                GgufArray::String(v)
            }
            GgufValueType::Array => {
                let mut v = Vec::with_capacity(n.min(PREALLOC_CAP));
                for _ in 0..n {
                    v.push(self.array_value(key, depth + 1)?);
                }
                GgufArray::Array(v)
            }
        })
    }

    /// `n` little-endian numbers of `N` bytes each (`n` already checked).
    fn numbers<T, const N: usize>(
        &mut self,
        n: usize,
        what: impl FnOnce() -> String,
        from: fn([u8; N]) -> T,
    ) -> Result<Vec<T>> {
        let bytes = self.take(n as u64 * N as u64, what)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                from(a)
            })
            .collect())
    }

    /// Tensor info #`index`: name, n_dims, dims, type, offset; shape checked.
    fn tensor_info(&mut self, index: u64) -> Result<TensorInfo> {
        let name_offset = self.pos;
        let name_bytes = self.string(|| format!("the name of tensor #{index}"))?;
        let name = std::str::from_utf8(name_bytes).map_err(|e| GgufError::TensorNameNotUtf8 {
            index,
            offset: name_offset as u64,
            valid_up_to: e.valid_up_to(),
            lossy: String::from_utf8_lossy(name_bytes).into_owned(),
        })?;
        let n_dims = self.u32(|| format!("the dimension count of tensor '{name}'"))?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(GgufError::InvalidDimCount {
                name: name.to_string(),
                n_dims: n_dims.into(),
                max: MAX_DIMS,
            });
        }
        let mut dims = [0u64; MAX_DIMS];
        for (axis, d) in dims.iter_mut().take(n_dims as usize).enumerate() {
            *d = self.u64(|| format!("dimension ne{axis} of tensor '{name}'"))?;
        }
        let dims = &dims[..n_dims as usize];
        let type_id = self.u32(|| format!("the type of tensor '{name}'"))?;
        let ty = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
            name: name.to_string(),
            type_id,
        })?;
        let offset = self.u64(|| format!("the data offset of tensor '{name}'"))?;
        let (dims, n_elements, n_bytes) = check_tensor_shape(name, ty, dims)?;
        Ok(TensorInfo {
            name: name.to_string(),
            ty,
            dims,
            n_elements,
            n_bytes,
            offset,
            data_start: 0,
        })
    }
}

/// The value type with id `type_id`, or [`GgufError::UnknownValueType`].
fn value_type(type_id: u32, key: &str, offset: usize) -> Result<GgufValueType> {
    GgufValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
        key: key.to_string(),
        type_id,
        offset: offset as u64,
    })
}

/// A bool byte: 0 or 1, else [`GgufError::InvalidBool`].
fn bool_of(b: u8, key: &str, offset: usize) -> Result<bool> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(GgufError::InvalidBool {
            key: key.to_string(),
            offset: offset as u64,
            value,
        }),
    }
}

/// `general.alignment`: absent → 32; else a `u32` that is a non-zero power of two.
pub(crate) fn alignment_of(metadata: &GgufMetadata) -> Result<usize> {
    match metadata.get(super::ALIGNMENT_KEY) {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(GgufValue::U32(a)) if a.is_power_of_two() => Ok(*a as usize),
        Some(GgufValue::U32(a)) => Err(GgufError::InvalidAlignment {
            reason: format!("is {a}, expected a power of two (such as 32)"),
        }),
        Some(v) => Err(GgufError::InvalidAlignment {
            reason: format!("has type {}, expected u32", v.type_description()),
        }),
    }
}

/// Checks every tensor's offset (aligned, inside the file) and that no two
/// overlap, and sets their absolute starts.
fn place_tensors(header: &mut GgufHeader) -> Result<()> {
    let data_offset = header.data_offset as u128;
    let file_size = header.file_size as u128;
    let alignment = header.alignment as u64;
    for info in &mut header.tensors {
        if info.offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                name: info.name.clone(),
                offset: info.offset,
                alignment,
            });
        }
        let start = data_offset + info.offset as u128;
        let end = start + info.n_bytes as u128;
        if end > file_size {
            return Err(GgufError::TensorOutOfBounds {
                name: info.name.clone(),
                offset: info.offset,
                start,
                size: info.n_bytes as u64,
                end,
                file_size: file_size as u64,
                data_start: data_offset as u64,
            });
        }
        // end <= file_size, so start fits in usize.
        info.data_start = start as usize;
    }
    let mut order: Vec<usize> = (0..header.tensors.len()).collect();
    order.sort_unstable_by_key(|&i| header.tensors[i].offset);
    for pair in order.windows(2) {
        let (a, b) = (&header.tensors[pair[0]], &header.tensors[pair[1]]);
        let a_end = a.offset + a.n_bytes as u64;
        if a_end > b.offset {
            return Err(GgufError::TensorsOverlap {
                first: a.name.clone(),
                first_start: a.offset,
                first_end: a_end,
                second: b.name.clone(),
                second_start: b.offset,
                second_end: b.offset + b.n_bytes as u64,
            });
        }
    }
    Ok(())
}

/// Where the bytes of a [`GgufFile`] live.
enum Storage {
    /// A read-only memory map of the file.
    Mmap(memmap2::Mmap),
    /// An owned copy.
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A validated GGUF file with its bytes: metadata, tensor infos and tensor data.
///
/// [`GgufFile::open`] memory-maps the file; [`GgufFile::from_bytes`] and
/// [`GgufFile::from_vec`] parse an image in memory (tests, fuzzing, files
/// written by [`GgufWriter`](super::GgufWriter)). Tensor data borrows from the
/// `GgufFile`, so it cannot outlive the map.
///
/// # The memory-map caveat
///
/// A memory-mapped file is read lazily from the file system. If another
/// process (or this one) modifies or truncates the file while it is mapped,
/// the bytes seen through [`GgufTensor::data`] may change under a shared
/// reference — undefined behaviour as far as Rust is concerned — or the
/// process may get `SIGBUS` on a truncated file. This is the caveat of every
/// mmap-based model loader (llama.cpp, safetensors): do not rewrite a model
/// file while it is open. Everything is validated once when opening; later
/// reads rely on the file staying as it was. Use [`GgufFile::read`] to copy the
/// file into memory instead where that cannot be guaranteed.
pub struct GgufFile {
    storage: Storage,
    header: GgufHeader,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.header.version)
            .field("metadata_len", &self.header.metadata.len())
            .field("tensors_len", &self.header.tensors.len())
            .field("file_size", &self.header.file_size)
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps the GGUF file at `path` and validates it (see
    /// [`GgufHeader`] for the checks, and the caveat on [`GgufFile`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |action| {
            move |source| GgufError::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        };
        let file = File::open(path).map_err(io("opening"))?;
        // SAFETY: the map is read-only and lives inside the returned GgufFile,
        // so no slice of it outlives it. What Rust cannot check is that nobody
        // modifies or truncates the file while it is mapped; that is the
        // documented caveat of `GgufFile` (as of any mmap-based loader).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io("memory-mapping"))?;
        let header = GgufHeader::parse(&map)?;
        Ok(Self {
            storage: Storage::Mmap(map),
            header,
            path: Some(path.to_path_buf()),
        })
    }

    /// Reads the whole file at `path` into memory and validates it (no mmap,
    /// no caveat, and the memory it takes).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| GgufError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })?;
        let mut file = Self::from_vec(bytes)?;
        file.path = Some(path.to_path_buf());
        Ok(file)
    }

    /// Validates the GGUF image `bytes` and keeps it.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Self> {
        let header = GgufHeader::parse(&bytes)?;
        Ok(Self {
            storage: Storage::Owned(bytes),
            header,
            path: None,
        })
    }

    /// Validates the GGUF image `bytes` and keeps a copy. (To validate without
    /// copying, use [`GgufHeader::parse`] and [`GgufHeader::tensor_in`].)
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_vec(bytes.to_vec())
    }

    /// The path it was opened from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The whole file image.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// The parsed header (version, metadata, tensor infos, data offset).
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The metadata, with typed getters: `file.metadata().get_u32("llama.block_count")`.
    pub fn metadata(&self) -> &GgufMetadata {
        &self.header.metadata
    }

    /// `general.architecture` (the only source of the architecture).
    pub fn architecture(&self) -> Result<&str> {
        self.header.architecture()
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        self.header.alignment
    }

    /// The tensor infos, in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// Every tensor with its data, in file order.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = GgufTensor<'_>> + '_ {
        let bytes = self.bytes();
        self.header.tensors.iter().map(move |info| GgufTensor {
            info,
            // In bounds: checked against this very image when parsing.
            data: &bytes[info.data_range()],
        })
    }

    /// The tensor named `name`: type, dims in ggml order (ne0 first) and data.
    /// [`GgufError::MissingTensor`] when there is none.
    pub fn tensor(&self, name: &str) -> Result<GgufTensor<'_>> {
        self.header.tensor_in(self.bytes(), name)
    }

    /// The tensor named `name`, or `None`.
    pub fn get_tensor(&self, name: &str) -> Option<GgufTensor<'_>> {
        self.tensor(name).ok()
    }

    /// Whether there is a tensor named `name`.
    pub fn contains_tensor(&self, name: &str) -> bool {
        self.header.tensor_info(name).is_some()
    }
}
