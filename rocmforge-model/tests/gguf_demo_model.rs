//! The reader on the demo model (SmolLM2-135M-Instruct Q4_1), checked against
//! the reference summary that gguf-py made of the same file
//! (`tests/fixtures/model_summary.json`, a copy of `shared/reference/model_summary.json`).
//!
//! These tests need the model: run `scripts/fetch-demo-model.sh` (or set
//! `ROCMFORGE_DEMO_MODEL`). Without it they fail with a message saying so.

use std::borrow::Cow;

use rocmforge_model::gguf::{
    require_demo_model, GgmlType, GgufArray, GgufError, GgufFile, GgufHeader, GgufValue,
    GgufWriter, OptionalKey, DEMO_MODEL_SIZE,
};
use serde_json::Value as Json;

fn demo() -> GgufFile {
    let path = require_demo_model().unwrap_or_else(|e| panic!("{e}"));
    GgufFile::open(&path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

fn summary() -> Json {
    let text = include_str!("fixtures/model_summary.json");
    serde_json::from_str(text).expect("fixtures/model_summary.json is valid JSON")
}

/// The summary's type name of a value type (gguf-py's `GGUFValueType` names).
fn summary_type_name(v: &GgufValue) -> &'static str {
    match v {
        GgufValue::U8(_) => "UINT8",
        GgufValue::I8(_) => "INT8",
        GgufValue::U16(_) => "UINT16",
        GgufValue::I16(_) => "INT16",
        GgufValue::U32(_) => "UINT32",
        GgufValue::I32(_) => "INT32",
        GgufValue::F32(_) => "FLOAT32",
        GgufValue::Bool(_) => "BOOL",
        GgufValue::String(_) => "string",
        GgufValue::Array(_) => "array",
        GgufValue::U64(_) => "UINT64",
        GgufValue::I64(_) => "INT64",
        GgufValue::F64(_) => "FLOAT64",
    }
}

/// A scalar or string value as JSON, the way the summary writes it.
fn scalar_json(v: &GgufValue) -> Json {
    match v {
        GgufValue::U8(x) => (*x).into(),
        GgufValue::I8(x) => (*x).into(),
        GgufValue::U16(x) => (*x).into(),
        GgufValue::I16(x) => (*x).into(),
        GgufValue::U32(x) => (*x).into(),
        GgufValue::I32(x) => (*x).into(),
        GgufValue::U64(x) => (*x).into(),
        GgufValue::I64(x) => (*x).into(),
        GgufValue::F32(x) => f64::from(*x).into(),
        GgufValue::F64(x) => (*x).into(),
        GgufValue::Bool(x) => (*x).into(),
        GgufValue::String(s) => s.as_str().expect("UTF-8 string").into(),
        GgufValue::Array(_) => unreachable!("arrays are compared separately"),
    }
}

#[test]
fn demo_model_matches_reference_summary() {
    let file = demo();
    let summary = summary();

    assert_eq!(file.bytes().len() as u64, DEMO_MODEL_SIZE);
    assert_eq!(summary["file_size"].as_u64(), Some(DEMO_MODEL_SIZE));
    assert_eq!(
        Some(u64::from(file.version())),
        summary["gguf_version"].as_u64()
    );

    // Metadata: every key of the summary, with its type and value, and nothing else.
    let meta_json = summary["metadata"].as_object().expect("metadata object");
    let md = file.metadata();
    let mut expected_keys = 0;
    for (key, entry) in meta_json {
        match key.as_str() {
            "GGUF.version" => {
                assert_eq!(entry["value"].as_u64(), Some(u64::from(file.version())));
                continue;
            }
            "GGUF.tensor_count" => {
                assert_eq!(
                    entry["value"].as_u64(),
                    Some(file.tensor_infos().len() as u64)
                );
                continue;
            }
            "GGUF.kv_count" => {
                assert_eq!(entry["value"].as_u64(), Some(md.len() as u64));
                continue;
            }
            _ => {}
        }
        expected_keys += 1;
        let value = md
            .get(key)
            .unwrap_or_else(|| panic!("key {key} of the summary is missing"));
        assert_eq!(summary_type_name(value), entry["type"], "type of {key}");
        match value {
            GgufValue::Array(a) => {
                let elem = entry["elem_type"].as_str().unwrap();
                assert_eq!(
                    entry["length"].as_u64(),
                    Some(a.len() as u64),
                    "length of {key}"
                );
                let shown = entry
                    .get("value")
                    .or_else(|| entry.get("first"))
                    .and_then(Json::as_array)
                    .unwrap_or_else(|| panic!("{key}: no value/first in the summary"));
                if entry.get("value").is_some() {
                    assert_eq!(shown.len(), a.len(), "{key}: summary shows the whole array");
                }
                for (i, want) in shown.iter().enumerate() {
                    let got = a.get(i).unwrap();
                    // Element types are upper-case in the summary (`STRING`).
                    assert!(
                        summary_type_name(&got).eq_ignore_ascii_case(elem),
                        "{key}[{i}] type"
                    );
                    assert_eq!(&scalar_json(&got), want, "{key}[{i}]");
                }
            }
            v => {
                let want = &entry["value"];
                match (v, want.as_f64()) {
                    // The summary writes f32 values widened to f64.
                    (GgufValue::F32(x), Some(w)) => assert_eq!(f64::from(*x), w, "{key}"),
                    _ => assert_eq!(&scalar_json(v), want, "{key}"),
                }
            }
        }
    }
    assert_eq!(
        md.len(),
        expected_keys,
        "the file has keys the summary lacks"
    );

    // Tensors, in file order.
    let tensors = summary["tensors"].as_array().expect("tensors array");
    assert_eq!(summary["n_tensors"].as_u64(), Some(tensors.len() as u64));
    assert_eq!(file.tensor_infos().len(), tensors.len());
    for (info, want) in file.tensor_infos().iter().zip(tensors) {
        let name = want["name"].as_str().unwrap();
        assert_eq!(info.name(), name);
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.dims(), shape.as_slice(), "{name} shape");
        assert_eq!(
            format!("{:?}", info.ty()),
            want["ggml_type"].as_str().unwrap(),
            "{name} type"
        );
        assert_eq!(
            Some(info.n_elements() as u64),
            want["n_elements"].as_u64(),
            "{name}"
        );
        assert_eq!(
            Some(info.n_bytes() as u64),
            want["n_bytes"].as_u64(),
            "{name} bytes"
        );
        // The summary's offsets are absolute file offsets.
        assert_eq!(
            Some(info.data_range().start as u64),
            want["data_offset"].as_u64(),
            "{name} offset"
        );
        let t = file.tensor(name).unwrap();
        assert_eq!(t.data().len(), info.n_bytes());
        assert_eq!(
            t.data().as_ptr() as usize % file.alignment(),
            0,
            "{name} aligned in memory"
        );
    }

    // Derived facts.
    let derived = &summary["derived"];
    assert_eq!(
        derived["has_output_weight"],
        Json::Bool(file.contains_tensor("output.weight"))
    );
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for t in file.tensors() {
        *counts.entry(format!("{:?}", t.ty())).or_default() += 1;
    }
    let want: std::collections::BTreeMap<String, u64> = derived["tensor_type_counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(counts, want);
}

#[test]
fn demo_model_typed_accessors() {
    let file = demo();
    let md = file.metadata();
    assert_eq!(file.architecture().unwrap(), "llama");
    assert_eq!(md.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(md.get_usize("llama.embedding_length").unwrap(), 576);
    assert_eq!(md.get_u64("llama.feed_forward_length").unwrap(), 1536);
    assert_eq!(md.get_i32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(md.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(md.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(
        md.get_f64("llama.attention.layer_norm_rms_epsilon")
            .unwrap(),
        f64::from(1e-5f32)
    );
    assert!(!md.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert_eq!(md.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert_eq!(md.get_u32("general.alignment").optional().unwrap(), None);
    assert_eq!(file.alignment(), 32);

    let tokens = md.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49152);
    assert_eq!(
        &tokens[..3],
        &["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    );
    let types = md.get_i32_array("tokenizer.ggml.token_type").unwrap();
    assert!(matches!(types, Cow::Borrowed(_)));
    assert_eq!(types.iter().filter(|&&t| t == 3).count(), 17);
    assert_eq!(md.get_str_array("tokenizer.ggml.merges").unwrap()[0], "Ġ t");
    assert!(md
        .get_str("tokenizer.chat_template")
        .unwrap()
        .contains("<|im_start|>"));

    // Type mismatches name the key and both types.
    let e = md.get_str("llama.block_count").unwrap_err();
    assert_eq!(
        e.to_string(),
        "metadata key 'llama.block_count' has type u32, expected string"
    );
    let e = md.get_f32_array("tokenizer.ggml.tokens").unwrap_err();
    assert_eq!(
        e.to_string(),
        "metadata key 'tokenizer.ggml.tokens' has type array of string, expected array of f32"
    );
    let e = md.get_u32("llama.no_such_key").unwrap_err();
    assert_eq!(e.to_string(), "metadata key 'llama.no_such_key' not found");

    // Tensor lookup: type, dims in ggml order, data.
    let embd = file.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.ty(), GgmlType::Q8_0);
    assert_eq!(embd.dims(), &[576, 49152]);
    assert_eq!((embd.row_len(), embd.n_rows()), (576, 49152));
    assert_eq!(embd.data().len(), 49152 * 576 / 32 * 34);
    let q = file.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!((q.ty(), q.dims()), (GgmlType::Q4_1, &[576usize, 576][..]));
    let k = file.tensor("blk.29.attn_k.weight").unwrap();
    assert_eq!(k.dims(), &[576, 192]);
    let norm = file.tensor("output_norm.weight").unwrap();
    assert_eq!(norm.ty(), GgmlType::F32);
    let first = f32::from_le_bytes(norm.data()[..4].try_into().unwrap());
    assert!(first.is_finite() && first != 0.0);

    let e = file.tensor("output.weight").unwrap_err();
    assert!(matches!(e, GgufError::MissingTensor { .. }));
    assert_eq!(
        e.to_string(),
        "tensor 'output.weight' not found (the file has 272 tensors)"
    );
}

#[test]
fn demo_model_read_into_memory_equals_mmap() {
    let file = demo();
    let read = GgufFile::read(file.path().unwrap()).unwrap();
    assert_eq!(read.header(), file.header());
    // Parsing only the header region validates the bounds against the short
    // image and fails naming the first tensor.
    let header_only = &file.bytes()[..file.header().data_offset()];
    let e = GgufHeader::parse(header_only).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("tensor 'token_embd.weight': data at offset 0"),
        "{e}"
    );
}

/// Writing every key and tensor of the demo model again gives the same bytes:
/// the writer lays out a file exactly as gguf-py did.
#[test]
fn demo_model_rewritten_byte_for_byte() {
    let file = demo();
    let mut w = GgufWriter::new();
    w.add_all(file.metadata()).unwrap();
    for t in file.tensors() {
        w.add_tensor(t.name(), t.ty(), t.dims(), t.data()).unwrap();
    }
    let bytes = w.to_vec().unwrap();
    assert_eq!(bytes.len(), file.bytes().len());
    assert!(
        bytes == file.bytes(),
        "rewritten file differs from the original"
    );
}

/// A copy with the first two layers (as GPU tests may use), read back.
#[test]
fn demo_model_first_layers_copy() {
    let file = demo();
    let mut w = GgufWriter::new();
    w.add_all(file.metadata()).unwrap();
    w.set("llama.block_count", 2u32).unwrap();
    let keep = |name: &str| {
        !name.starts_with("blk.") || name.starts_with("blk.0.") || name.starts_with("blk.1.")
    };
    for t in file.tensors().filter(|t| keep(t.name())) {
        w.add_tensor(t.name(), t.ty(), t.dims(), t.data()).unwrap();
    }
    let copy = GgufFile::from_vec(w.to_vec().unwrap()).unwrap();
    assert_eq!(copy.metadata().get_u32("llama.block_count").unwrap(), 2);
    assert_eq!(copy.metadata().len(), file.metadata().len());
    assert_eq!(copy.tensor_infos().len(), 2 + 2 * 9);
    for t in copy.tensors() {
        let orig = file.tensor(t.name()).unwrap();
        assert_eq!(
            (t.ty(), t.dims(), t.data()),
            (orig.ty(), orig.dims(), orig.data())
        );
    }
    assert!(matches!(
        copy.metadata().get_array("tokenizer.ggml.tokens").unwrap(),
        GgufArray::String(v) if v.len() == 49152
    ));
}
