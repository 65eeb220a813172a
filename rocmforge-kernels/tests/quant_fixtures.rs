//! rocmforge's CPU (de)quantization against fixtures made by llama.cpp's own code.
//!
//! `scripts/make_quant_fixtures.py` wrote `tests/fixtures/quant/` with gguf-py
//! (llama.cpp's numpy port, pinned) and ggml's C reference (pinned, compiled
//! without FMA contraction), after checking that the two agree wherever both
//! answer. Format: `tests/fixtures/quant/README.md`.
//!
//! Every comparison here is exact — f32 bit patterns, quantized bytes — with no
//! tolerance: rocmforge performs the same IEEE single-precision operations in
//! the same order as the references, so there is nothing to round differently.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rocmforge_kernels::quant::{
    dequantize, dequantize_into, dequantize_row, dequantize_to_f16, fp16, get_rows, quantize,
    quantize_row, GgmlType,
};

/// The types with a CPU dequantizer, each of which has a fixture file.
const TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// The fixture directory.
fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant")
}

/// One fixture file: its named sections (raw bytes) and the parsed `meta` text.
struct Fixture {
    /// Section name → payload.
    sections: BTreeMap<String, Vec<u8>>,
    /// `key=value` lines of the `meta` section.
    meta: BTreeMap<String, String>,
}

impl Fixture {
    /// Reads and parses `<ggml name>.bin` (the RFQFIX01 container).
    fn load(ty: GgmlType) -> Fixture {
        let path = dir().join(format!("{}.bin", ty.name()));
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&raw[..8], b"RFQFIX01", "{}: bad magic", path.display());
        let mut pos = 8;
        let mut take = |n: usize| {
            let s = &raw[pos..pos + n];
            pos += n;
            s
        };
        let count = u32::from_le_bytes(take(4).try_into().unwrap());
        let mut sections = BTreeMap::new();
        for _ in 0..count {
            let name_len = u16::from_le_bytes(take(2).try_into().unwrap()) as usize;
            let name = String::from_utf8(take(name_len).to_vec()).unwrap();
            let _dtype = take(1)[0];
            let len = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
            sections.insert(name, take(len).to_vec());
        }
        let meta = String::from_utf8(sections["meta"].clone())
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Fixture { sections, meta }
    }

    /// The raw bytes of section `name`.
    fn bytes(&self, name: &str) -> &[u8] {
        &self.sections[name]
    }

    /// Section `name` as f32 bit patterns (little-endian).
    fn f32_bits(&self, name: &str) -> Vec<u32> {
        self.bytes(name)
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// Section `name` as f32 values.
    fn f32s(&self, name: &str) -> Vec<f32> {
        self.f32_bits(name)
            .into_iter()
            .map(f32::from_bits)
            .collect()
    }
}

/// Bit patterns of a slice of f32.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Asserts equal bit patterns, naming the first differing element.
fn assert_bits_eq(ty: GgmlType, what: &str, got: &[u32], want: &[u32]) {
    assert_eq!(got.len(), want.len(), "{ty} {what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{ty} {what}: element {i} (block {}) is {} ({:#010x}), reference {} ({:#010x})",
            i / ty.block_size(),
            f32::from_bits(got[i]),
            got[i],
            f32::from_bits(want[i]),
            want[i]
        );
    }
}

/// Each fixture exists and its meta matches GgmlType's id and sizes.
#[test]
fn every_fixture_is_present_and_describes_its_type() {
    for ty in TYPES {
        let f = Fixture::load(ty);
        assert_eq!(f.meta["ggml_name"], ty.name());
        assert_eq!(f.meta["ggml_id"], ty.id().to_string(), "{ty}");
        assert_eq!(f.meta["block_size"], ty.block_size().to_string(), "{ty}");
        assert_eq!(f.meta["type_size"], ty.type_size().to_string(), "{ty}");
    }
}

/// Random blocks dequantize to gguf-py's f32 bits (serial and parallel).
#[test]
fn dequantization_of_random_blocks_is_bit_exact() {
    for ty in TYPES {
        let f = Fixture::load(ty);
        let blocks = f.bytes("rblk");
        let want = f.f32_bits("rdq");
        let mut got = vec![0.0f32; want.len()];
        dequantize_row(ty, blocks, &mut got).unwrap();
        assert_bits_eq(ty, "random blocks (dequantize_row)", &bits(&got), &want);
        let got = dequantize(ty, blocks, want.len()).unwrap();
        assert_bits_eq(ty, "random blocks (dequantize)", &bits(&got), &want);
    }
}

/// Quantized real-looking data dequantizes to gguf-py's f32 bits.
#[test]
fn dequantization_of_quantized_data_is_bit_exact() {
    for ty in TYPES {
        let f = Fixture::load(ty);
        let want = f.f32_bits("dq");
        let got = dequantize(ty, f.bytes("q"), want.len()).unwrap();
        assert_bits_eq(ty, "quantized data", &bits(&got), &want);
    }
}

/// quantize and quantize_row give the reference's bytes (gguf-py and/or ggml C).
#[test]
fn quantization_is_byte_exact() {
    for ty in TYPES {
        let f = Fixture::load(ty);
        let src = f.f32s("src");
        let want = f.bytes("q");
        let got = quantize(ty, &src).unwrap();
        if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
            let b = i / ty.type_size();
            panic!(
                "{ty}: byte {i} (block {b}, offset {}) is {:#04x}, reference {:#04x} ({})",
                i % ty.type_size(),
                got[i],
                want[i],
                f.meta["q_source"]
            );
        }
        assert_eq!(got.len(), want.len(), "{ty}");
        let mut row = vec![0u8; want.len()];
        quantize_row(ty, &src, &mut row).unwrap();
        assert_eq!(row, want, "{ty}: quantize_row");
    }
}

/// A block slice at an odd address dequantizes identically.
#[test]
fn unaligned_input_dequantizes_the_same() {
    // Tensor data inside a GGUF file may start at any byte in a caller's slice.
    for ty in TYPES {
        let f = Fixture::load(ty);
        let blocks = f.bytes("rblk");
        let mut shifted = vec![0u8; blocks.len() + 1];
        shifted[1..].copy_from_slice(blocks);
        let want = f.f32_bits("rdq");
        let mut got = vec![0.0f32; want.len()];
        dequantize_into(ty, &shifted[1..], &mut got).unwrap();
        assert_bits_eq(ty, "unaligned", &bits(&got), &want);
    }
}

/// dequantize_to_f16 is the f32 result rounded by ggml's conversion.
#[test]
fn f16_output_is_the_rounded_f32_output() {
    for ty in TYPES {
        let f = Fixture::load(ty);
        let want = f.f32s("rdq");
        let got = dequantize_to_f16(ty, f.bytes("rblk"), want.len()).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), fp16::f32_to_f16(*w), "{ty} element {i}");
        }
    }
}

/// get_rows in any order returns the matching slices of the reference.
#[test]
fn rows_gathered_from_fixture_blocks_match() {
    for ty in TYPES {
        let f = Fixture::load(ty);
        let blocks = f.bytes("rblk");
        let want = f.f32_bits("rdq");
        // View the random blocks as a matrix of rows of two blocks each.
        let row_len = 2 * ty.block_size();
        let n_rows = want.len() / row_len;
        let rows: Vec<usize> = (0..n_rows).rev().collect();
        let got = get_rows(ty, blocks, row_len, &rows).unwrap();
        for (k, &r) in rows.iter().enumerate() {
            assert_bits_eq(
                ty,
                "get_rows",
                &bits(&got[k * row_len..(k + 1) * row_len]),
                &want[r * row_len..(r + 1) * row_len],
            );
        }
    }
}

/// GgmlType equals ggml_get_type_traits for every id, removed ids included.
#[test]
fn type_table_matches_ggml() {
    // types.tsv is ggml_get_type_traits for every id below GGML_TYPE_COUNT.
    let text = std::fs::read_to_string(dir().join("types.tsv")).unwrap();
    let mut seen = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let id: u32 = f[0].parse().unwrap();
        let (name, blck, size, quantized) = (f[1], f[2], f[3], f[4] == "1");
        let blck: usize = blck.parse().unwrap();
        let size: usize = size.parse().unwrap();
        if blck == 0 {
            // A removed type: ggml keeps a placeholder row.
            assert_eq!(
                GgmlType::from_id(id),
                None,
                "id {id} ({name}) was removed from ggml"
            );
            continue;
        }
        let ty = GgmlType::from_id(id).unwrap_or_else(|| panic!("id {id} ({name}) is missing"));
        assert_eq!(ty.id(), id);
        assert_eq!(ty.name(), name, "id {id}");
        assert_eq!(ty.block_size(), blck, "{name}");
        assert_eq!(ty.type_size(), size, "{name}");
        assert_eq!(ty.is_quantized(), quantized, "{name}");
        assert_eq!(GgmlType::from_name(name), Some(ty));
        seen.push(ty);
    }
    for ty in GgmlType::ALL {
        assert!(seen.contains(&ty), "{ty} is not in ggml's table");
    }
    let count = text.lines().filter(|l| !l.starts_with('#')).count() as u32;
    for id in count..count + 64 {
        assert_eq!(
            GgmlType::from_id(id),
            None,
            "id {id} is past GGML_TYPE_COUNT"
        );
    }
}
