//! Writes small GGUF seed files for the `gguf_reader` fuzz target into the
//! directory given as the first argument. With the demo model's path as the
//! second argument, also writes its header (every key, arrays cut to 16
//! elements, and all 272 tensor infos) without the tensor data.

use std::path::{Path, PathBuf};

use rocmforge_model::gguf::{
    GgmlType, GgufArray, GgufFile, GgufHeader, GgufString, GgufValue, GgufValueType, GgufWriter,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: write_seeds DIR [DEMO_MODEL]")?);
    std::fs::create_dir_all(&dir)?;
    let write =
        |name: &str, bytes: &[u8]| -> std::io::Result<()> { std::fs::write(dir.join(name), bytes) };

    // The smallest file.
    write("empty-v3.gguf", &GgufWriter::new().to_vec()?)?;

    // Every value type, nested arrays, several tensor types.
    let mut w = GgufWriter::new();
    w.add("general.architecture", "llama")?
        .add("a.u8", 1u8)?
        .add("a.i8", -1i8)?
        .add("a.u16", 2u16)?
        .add("a.i16", -2i16)?
        .add("a.u32", 3u32)?
        .add("a.i32", -3i32)?
        .add("a.f32", 0.5f32)?
        .add("a.bool", true)?
        .add("a.u64", 5u64)?
        .add("a.i64", -6i64)?
        .add("a.f64", 0.25f64)?
        .add("a.bytes", GgufString::from_bytes(vec![0xff, 0]))?
        .add("tokenizer.ggml.tokens", vec!["<s>", "</s>", "a", "bc"])?
        .add("tokenizer.ggml.scores", vec![0.0f32, -1.0, -2.0, -3.0])?
        .add("tokenizer.ggml.token_type", vec![3i32, 3, 1, 1])?
        .add("a.bools", vec![true, false])?
        .add("a.empty", GgufArray::empty(GgufValueType::U64))?
        .add(
            "a.nested",
            GgufArray::Array(vec![
                GgufArray::U16(vec![1, 2]),
                GgufArray::Array(vec![GgufArray::String(vec!["x".into()])]),
            ]),
        )?;
    w.add_tensor(
        "token_embd.weight",
        GgmlType::Q8_0,
        &[32, 4],
        vec![1u8; 4 * 34],
    )?;
    w.add_tensor(
        "blk.0.attn_norm.weight",
        GgmlType::F32,
        &[32],
        vec![2u8; 128],
    )?;
    w.add_tensor(
        "blk.0.ffn_up.weight",
        GgmlType::Q4_K,
        &[256, 2],
        vec![3u8; 288],
    )?;
    w.add_tensor(
        "blk.0.ffn_down.weight",
        GgmlType::Q4_1,
        &[32, 1, 1, 2],
        vec![4u8; 40],
    )?;
    write("all-types-v3.gguf", &w.to_vec()?)?;
    w.set_version(2)?;
    write("all-types-v2.gguf", &w.to_vec()?)?;

    // Another alignment.
    let mut w = GgufWriter::new();
    w.set_alignment(64)?;
    w.add("general.architecture", "qwen2")?;
    w.add_tensor("a", GgmlType::F16, &[3], vec![0u8; 6])?;
    w.add_tensor("b", GgmlType::BF16, &[5, 2], vec![0u8; 20])?;
    write("align64.gguf", &w.to_vec()?)?;

    if let Some(demo) = args.next() {
        write("demo-header.gguf", &demo_header(Path::new(&demo))?)?;
    }
    Ok(())
}

/// The demo model's metadata (arrays cut to 16 elements) and tensor infos,
/// ending where the tensor data would start.
fn demo_header(path: &Path) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let file = GgufFile::open(path)?;
    let mut w = GgufWriter::new();
    for (key, value) in file.metadata().iter() {
        let value = match value {
            GgufValue::Array(GgufArray::String(v)) => {
                GgufValue::Array(GgufArray::String(v.iter().take(16).cloned().collect()))
            }
            GgufValue::Array(GgufArray::I32(v)) => {
                GgufValue::Array(GgufArray::I32(v.iter().take(16).copied().collect()))
            }
            v => v.clone(),
        };
        w.add(key, value)?;
    }
    for t in file.tensors() {
        w.add_tensor(t.name(), t.ty(), t.dims(), t.data())?;
    }
    let mut bytes = w.to_vec()?;
    let data_offset = GgufHeader::parse(&bytes)?.data_offset();
    bytes.truncate(data_offset);
    Ok(bytes)
}
