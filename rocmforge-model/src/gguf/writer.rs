//! [`GgufWriter`]: writes GGUF v3 (or v2) files.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rocmforge_kernels::quant::GgmlType;

use super::error::{GgufError, Result};
use super::metadata::GgufMetadata;
use super::reader::alignment_of;
use super::tensor::check_tensor_shape;
use super::value::{GgufArray, GgufValue};
use super::{ALIGNMENT_KEY, GGUF_MAGIC, MAX_ARRAY_DEPTH};

/// A function that fills a tensor's (zeroed) bytes.
type FillFn<'a> = Box<dyn Fn(&mut [u8]) -> std::io::Result<()> + 'a>;

/// Where a tensor's bytes come from when the file is written.
enum TensorData<'a> {
    /// The bytes themselves (owned or borrowed, e.g. from another open file).
    Bytes(Cow<'a, [u8]>),
    /// A function that fills a zeroed buffer of the tensor's size; called once
    /// per write, so that large synthetic tensors need not all be in memory.
    Fill(FillFn<'a>),
}

/// One tensor to write.
struct PendingTensor<'a> {
    name: String,
    ty: GgmlType,
    dims: Vec<u64>,
    n_bytes: usize,
    data: TensorData<'a>,
}

/// Builds a GGUF file: metadata of every type, then tensors (name, ggml type,
/// dims in ggml order, bytes), written with the data section and every tensor
/// aligned to `general.alignment` (default 32) and zero padding between.
///
/// Everything the reader checks is checked when added (unique keys and tensor
/// names, `general.alignment` a `u32` power of two, array nesting, tensor dims
/// and type, data length), so that what is written reads back: for any writer
/// `w`, `GgufFile::from_vec(w.to_vec()?)` gives back the same metadata (in
/// order) and the same tensors.
///
/// ```
/// use rocmforge_model::gguf::{GgufFile, GgufWriter};
/// use rocmforge_model::kernels::quant::GgmlType;
///
/// let mut w = GgufWriter::new();
/// w.add("general.architecture", "llama")?
///     .add("llama.block_count", 2u32)?
///     .add("tokenizer.ggml.tokens", vec!["a", "b"])?;
/// w.add_tensor("output_norm.weight", GgmlType::F32, &[4], vec![0u8; 16])?;
/// let file = GgufFile::from_vec(w.to_vec()?)?;
/// assert_eq!(file.metadata().get_u32("llama.block_count")?, 2);
/// assert_eq!(file.tensor("output_norm.weight")?.dims(), &[4]);
/// # Ok::<(), rocmforge_model::gguf::GgufError>(())
/// ```
pub struct GgufWriter<'a> {
    version: u32,
    metadata: GgufMetadata,
    tensors: Vec<PendingTensor<'a>>,
    tensor_index: HashMap<String, usize>,
}

impl Default for GgufWriter<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for GgufWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter")
            .field("version", &self.version)
            .field("metadata", &self.metadata)
            .field(
                "tensors",
                &self
                    .tensors
                    .iter()
                    .map(|t| (&t.name, t.ty, &t.dims))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<'a> GgufWriter<'a> {
    /// An empty GGUF v3 writer.
    pub fn new() -> Self {
        Self {
            version: 3,
            metadata: GgufMetadata::new(),
            tensors: Vec::new(),
            tensor_index: HashMap::new(),
        }
    }

    /// Writes version `version` (2 or 3: the layouts are the same) instead of 3.
    pub fn set_version(&mut self, version: u32) -> Result<&mut Self> {
        if !matches!(version, 2 | 3) {
            return Err(GgufError::UnsupportedWriteVersion { version });
        }
        self.version = version;
        Ok(self)
    }

    /// The metadata so far.
    pub fn metadata(&self) -> &GgufMetadata {
        &self.metadata
    }

    /// The alignment the file will have (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        // Validated on every change of the key.
        alignment_of(&self.metadata).unwrap_or(super::DEFAULT_ALIGNMENT)
    }

    /// Adds a metadata pair; [`GgufError::DuplicateKey`] when the key is present.
    /// Values convert from numbers, `bool`, `&str`, `String`, vectors and slices.
    pub fn add(
        &mut self,
        key: impl Into<String>,
        value: impl Into<GgufValue>,
    ) -> Result<&mut Self> {
        let key = key.into();
        let value = value.into();
        check_value(&key, &value)?;
        if key == ALIGNMENT_KEY {
            check_alignment_value(&value)?;
        }
        self.metadata.insert(key, value)?;
        Ok(self)
    }

    /// Sets a metadata pair, replacing a present value (in its position).
    pub fn set(
        &mut self,
        key: impl Into<String>,
        value: impl Into<GgufValue>,
    ) -> Result<&mut Self> {
        let key = key.into();
        let value = value.into();
        check_value(&key, &value)?;
        if key == ALIGNMENT_KEY {
            check_alignment_value(&value)?;
        }
        self.metadata.set(key, value);
        Ok(self)
    }

    /// Removes a metadata pair, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<GgufValue> {
        self.metadata.remove(key)
    }

    /// Copies every pair of `metadata` (e.g. another file's), in order;
    /// duplicate keys are an error.
    pub fn add_all(&mut self, metadata: &GgufMetadata) -> Result<&mut Self> {
        for (k, v) in metadata.iter() {
            self.add(k, v.clone())?;
        }
        Ok(self)
    }

    /// Sets `general.alignment` (a power of two).
    pub fn set_alignment(&mut self, alignment: u32) -> Result<&mut Self> {
        self.set(ALIGNMENT_KEY, alignment)
    }

    /// Validates a tensor about to be added and returns its dims and size.
    fn check_tensor(&self, name: &str, ty: GgmlType, dims: &[usize]) -> Result<(Vec<u64>, usize)> {
        let dims: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        let (_, _, n_bytes) = check_tensor_shape(name, ty, &dims)?;
        if let Some(&first) = self.tensor_index.get(name) {
            return Err(GgufError::DuplicateTensor {
                name: name.to_string(),
                index: self.tensors.len() as u64,
                first_index: first as u64,
            });
        }
        Ok((dims, n_bytes))
    }

    fn push(&mut self, t: PendingTensor<'a>) -> &mut Self {
        self.tensor_index.insert(t.name.clone(), self.tensors.len());
        self.tensors.push(t);
        self
    }

    /// Adds a tensor: `dims` in ggml order (ne0, the row length, first), `data`
    /// exactly `ty.row_bytes(ne0) × rows` bytes (borrowed or owned).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        dims: &[usize],
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<&mut Self> {
        let name = name.into();
        let data = data.into();
        let (dims, n_bytes) = self.check_tensor(&name, ty, dims)?;
        if data.len() != n_bytes {
            return Err(GgufError::TensorDataSize {
                name,
                ty,
                dims,
                expected: n_bytes,
                actual: data.len(),
            });
        }
        Ok(self.push(PendingTensor {
            name,
            ty,
            dims,
            n_bytes,
            data: TensorData::Bytes(data),
        }))
    }

    /// Adds a tensor whose bytes `fill` writes into a zeroed buffer of the
    /// right size when the file is written (once per write). For synthetic
    /// models of real shapes: only one tensor is in memory at a time.
    pub fn add_tensor_with(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        dims: &[usize],
        fill: impl Fn(&mut [u8]) + 'a,
    ) -> Result<&mut Self> {
        self.push_fill(
            name.into(),
            ty,
            dims,
            Box::new(move |buf: &mut [u8]| {
                fill(buf);
                Ok(())
            }),
        )
    }

    fn push_fill(
        &mut self,
        name: String,
        ty: GgmlType,
        dims: &[usize],
        fill: FillFn<'a>,
    ) -> Result<&mut Self> {
        let (dims, n_bytes) = self.check_tensor(&name, ty, dims)?;
        Ok(self.push(PendingTensor {
            name,
            ty,
            dims,
            n_bytes,
            data: TensorData::Fill(fill),
        }))
    }

    /// Adds a tensor of pseudo-random weights, uniform in `[-scale, scale]`,
    /// quantized to `ty` with ggml's reference quantizer row by row when the
    /// file is written (so scales and mins are real numbers, not random bits).
    /// The same `seed` gives the same bytes. For synthetic models of real
    /// shapes (benchmarks, GPU-vs-CPU tests). `ty` must be quantizable
    /// ([`GgmlType::is_quantizable`]: F32, F16, BF16, Q4_0 … Q8_0, Q2_K … Q6_K),
    /// else [`GgufError::NotQuantizable`].
    pub fn add_random_tensor(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        dims: &[usize],
        seed: u64,
        scale: f32,
    ) -> Result<&mut Self> {
        let name = name.into();
        if !ty.is_quantizable() {
            return Err(GgufError::NotQuantizable { name, ty });
        }
        let row_len = dims.first().copied().unwrap_or(0);
        let fill = move |buf: &mut [u8]| -> std::io::Result<()> {
            use rayon::prelude::*;
            const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
            let row_bytes = ty.row_bytes(row_len).map_err(std::io::Error::other)?;
            if row_bytes == 0 {
                return Ok(());
            }
            let start = seed ^ 0x5851_f42d_4c95_7f2d;
            // Rows are quantized in parallel (the K-quant searches are slow); splitmix64's
            // state is a counter, so each row starts from its own offset and the bytes do
            // not depend on the thread count.
            buf.par_chunks_exact_mut(row_bytes)
                .enumerate()
                .try_for_each_init(
                    || vec![0f32; row_len],
                    |row, (r, dst)| {
                        let mut state = start.wrapping_add(
                            GOLDEN.wrapping_mul((r as u64).wrapping_mul(row_len as u64)),
                        );
                        for x in row.iter_mut() {
                            // splitmix64, top 24 bits to a float in [-1, 1).
                            state = state.wrapping_add(GOLDEN);
                            let mut z = state;
                            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                            z ^= z >> 31;
                            let unit = (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
                            *x = unit * scale;
                        }
                        rocmforge_kernels::quant::quantize_row(ty, row, dst)
                            .map_err(std::io::Error::other)
                    },
                )
        };
        self.push_fill(name, ty, dims, Box::new(fill))
    }

    /// Number of tensors added.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// The data-section offset of every tensor, in order, and the size of the
    /// data section (each tensor padded to the alignment).
    fn layout(&self) -> (Vec<u64>, u64) {
        let align = self.alignment() as u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut off = 0u64;
        for t in &self.tensors {
            offsets.push(off);
            off = (off + t.n_bytes as u64).next_multiple_of(align);
        }
        (offsets, off)
    }

    /// The header: magic, version, counts, metadata, tensor infos, and the
    /// zero padding up to the data section.
    fn header_bytes(&self, offsets: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in self.metadata.iter() {
            put_str(&mut out, key.as_bytes());
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut out, value);
        }
        for (t, &offset) in self.tensors.iter().zip(offsets) {
            put_str(&mut out, t.name.as_bytes());
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for &d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        let len = out.len().next_multiple_of(self.alignment());
        out.resize(len, 0);
        out
    }

    /// Writes the file to `w`; returns the number of bytes written.
    pub fn write_to<W: Write>(&self, mut w: W) -> Result<u64> {
        let (offsets, data_len) = self.layout();
        let header = self.header_bytes(&offsets);
        w.write_all(&header).map_err(GgufError::Write)?;
        let align = self.alignment();
        let zeros = vec![0u8; align];
        let mut buf = Vec::new();
        for t in &self.tensors {
            let bytes: &[u8] = match &t.data {
                TensorData::Bytes(b) => b,
                TensorData::Fill(fill) => {
                    buf.clear();
                    buf.resize(t.n_bytes, 0);
                    fill(&mut buf).map_err(GgufError::Write)?;
                    &buf
                }
            };
            w.write_all(bytes).map_err(GgufError::Write)?;
            let pad = t.n_bytes.next_multiple_of(align) - t.n_bytes;
            w.write_all(&zeros[..pad]).map_err(GgufError::Write)?;
        }
        w.flush().map_err(GgufError::Write)?;
        Ok(header.len() as u64 + data_len)
    }

    /// The file as bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Writes the file to `path` (created or truncated).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| GgufError::Io {
            action: "creating",
            path: path.to_path_buf(),
            source,
        })?;
        self.write_to(BufWriter::new(file)).map_err(|e| match e {
            GgufError::Write(source) => GgufError::Io {
                action: "writing",
                path: path.to_path_buf(),
                source,
            },
            e => e,
        })
    }
}

/// What the reader would reject in a value: arrays nested too deep.
fn check_value(key: &str, value: &GgufValue) -> Result<()> {
    if value.array_depth() > MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep {
            key: key.to_string(),
            offset: None,
            max: MAX_ARRAY_DEPTH,
        });
    }
    Ok(())
}

/// `general.alignment` must be a `u32` power of two.
fn check_alignment_value(value: &GgufValue) -> Result<()> {
    let mut m = GgufMetadata::new();
    m.push_new(ALIGNMENT_KEY.to_string(), value.clone());
    alignment_of(&m).map(|_| ())
}

/// A GGUF string: u64 length, bytes.
fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// A value without its type tag.
fn put_value(out: &mut Vec<u8>, value: &GgufValue) {
    match value {
        GgufValue::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_str(out, s.as_bytes()),
        GgufValue::Array(a) => put_array(out, a),
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// An array: element type, count, elements.
fn put_array(out: &mut Vec<u8>, a: &GgufArray) {
    out.extend_from_slice(&a.elem_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! nums {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        GgufArray::U8(v) => out.extend_from_slice(v),
        GgufArray::I8(v) => nums!(v),
        GgufArray::U16(v) => nums!(v),
        GgufArray::I16(v) => nums!(v),
        GgufArray::U32(v) => nums!(v),
        GgufArray::I32(v) => nums!(v),
        GgufArray::F32(v) => nums!(v),
        GgufArray::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        GgufArray::String(v) => {
            for s in v {
                put_str(out, s.as_bytes());
            }
        }
        GgufArray::Array(v) => {
            for inner in v {
                put_array(out, inner);
            }
        }
        GgufArray::U64(v) => nums!(v),
        GgufArray::I64(v) => nums!(v),
        GgufArray::F64(v) => nums!(v),
    }
}
