//! Writer → reader roundtrips (property tests over every value type, nested
//! arrays, every ggml type, alignments and both versions), typed getters and
//! the writer's own checks.

use proptest::prelude::*;
use rocmforge_model::gguf::{
    GgmlType, GgufArray, GgufError, GgufFile, GgufString, GgufValue, GgufValueType, GgufWriter,
    OptionalKey, MAX_ARRAY_DEPTH,
};

/// What a test file holds: metadata in order, tensors in order.
#[derive(Debug, Clone)]
struct Model {
    version: u32,
    alignment: Option<u32>,
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<(String, GgmlType, Vec<usize>, Vec<u8>)>,
}

impl Model {
    fn writer(&self) -> GgufWriter<'_> {
        let mut w = GgufWriter::new();
        w.set_version(self.version).unwrap();
        if let Some(a) = self.alignment {
            w.set_alignment(a).unwrap();
        }
        for (k, v) in &self.metadata {
            w.add(k.clone(), v.clone()).unwrap();
        }
        for (name, ty, dims, data) in &self.tensors {
            w.add_tensor(name.clone(), *ty, dims, data.as_slice())
                .unwrap();
        }
        w
    }

    /// Checks that `file` holds exactly this model.
    fn check(&self, file: &GgufFile) {
        assert_eq!(file.version(), self.version);
        let align = self.alignment.map_or(32, |a| a as usize);
        assert_eq!(file.alignment(), align);
        let mut expected: Vec<(String, GgufValue)> = Vec::new();
        if let Some(a) = self.alignment {
            expected.push(("general.alignment".into(), GgufValue::U32(a)));
        }
        expected.extend(self.metadata.iter().cloned());
        let got: Vec<(String, GgufValue)> = file
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(file.tensor_infos().len(), self.tensors.len());
        assert_eq!(file.header().data_offset() % align, 0);
        for ((name, ty, dims, data), t) in self.tensors.iter().zip(file.tensors()) {
            assert_eq!(t.name(), name);
            assert_eq!(t.ty(), *ty);
            assert_eq!(t.dims(), dims.as_slice());
            assert_eq!(t.data(), data.as_slice());
            assert_eq!(t.info().offset() % align as u64, 0);
            let by_name = file.tensor(name).unwrap();
            assert_eq!(by_name.data().as_ptr(), t.data().as_ptr());
        }
    }
}

fn key_strategy() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,8}(\\.[a-z0-9_]{1,8}){0,3}"
}

fn string_strategy() -> impl Strategy<Value = GgufString> {
    prop_oneof![
        ".{0,12}".prop_map(GgufString::from),
        // Arbitrary bytes, not always UTF-8: values are kept as stored.
        prop::collection::vec(any::<u8>(), 0..12).prop_map(GgufString::from_bytes),
    ]
}

/// Arrays of every element type, nested up to depth 3.
fn array_strategy() -> impl Strategy<Value = GgufArray> {
    let n = 0..6usize;
    let leaf = prop_oneof![
        prop::collection::vec(any::<u8>(), n.clone()).prop_map(GgufArray::U8),
        prop::collection::vec(any::<i8>(), n.clone()).prop_map(GgufArray::I8),
        prop::collection::vec(any::<u16>(), n.clone()).prop_map(GgufArray::U16),
        prop::collection::vec(any::<i16>(), n.clone()).prop_map(GgufArray::I16),
        prop::collection::vec(any::<u32>(), n.clone()).prop_map(GgufArray::U32),
        prop::collection::vec(any::<i32>(), n.clone()).prop_map(GgufArray::I32),
        prop::collection::vec(any::<f32>(), n.clone()).prop_map(GgufArray::F32),
        prop::collection::vec(any::<bool>(), n.clone()).prop_map(GgufArray::Bool),
        prop::collection::vec(string_strategy(), n.clone()).prop_map(GgufArray::String),
        prop::collection::vec(any::<u64>(), n.clone()).prop_map(GgufArray::U64),
        prop::collection::vec(any::<i64>(), n.clone()).prop_map(GgufArray::I64),
        prop::collection::vec(any::<f64>(), n.clone()).prop_map(GgufArray::F64),
        // Raw float bits: NaNs of every payload roundtrip bit for bit.
        prop::collection::vec(any::<u32>().prop_map(f32::from_bits), n.clone())
            .prop_map(GgufArray::F32),
    ];
    leaf.prop_recursive(2, 24, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(GgufArray::Array)
    })
}

fn value_strategy() -> impl Strategy<Value = GgufValue> {
    prop_oneof![
        any::<u8>().prop_map(GgufValue::U8),
        any::<i8>().prop_map(GgufValue::I8),
        any::<u16>().prop_map(GgufValue::U16),
        any::<i16>().prop_map(GgufValue::I16),
        any::<u32>().prop_map(GgufValue::U32),
        any::<i32>().prop_map(GgufValue::I32),
        any::<u32>().prop_map(|b| GgufValue::F32(f32::from_bits(b))),
        any::<bool>().prop_map(GgufValue::Bool),
        string_strategy().prop_map(GgufValue::String),
        array_strategy().prop_map(GgufValue::Array),
        any::<u64>().prop_map(GgufValue::U64),
        any::<i64>().prop_map(GgufValue::I64),
        any::<u64>().prop_map(|b| GgufValue::F64(f64::from_bits(b))),
    ]
}

/// A tensor of any ggml type with 1 to 4 small dims (ne0 a whole number of blocks).
fn tensor_strategy() -> impl Strategy<Value = (GgmlType, Vec<usize>, Vec<u8>)> {
    (
        prop::sample::select(GgmlType::ALL.to_vec()),
        1..=2usize,
        prop::collection::vec(1..=3usize, 0..=3),
    )
        .prop_flat_map(|(ty, blocks, rest)| {
            let mut dims = vec![blocks * ty.block_size()];
            dims.extend(rest);
            let rows: usize = dims[1..].iter().product();
            let n_bytes = ty.row_bytes(dims[0]).unwrap() * rows;
            (
                Just(ty),
                Just(dims),
                prop::collection::vec(any::<u8>(), n_bytes),
            )
        })
}

fn model_strategy() -> impl Strategy<Value = Model> {
    (
        prop::sample::select(vec![2u32, 3]),
        prop::option::of(prop::sample::select(vec![
            1u32, 2, 4, 8, 16, 32, 64, 128, 256, 4096,
        ])),
        prop::collection::btree_map(key_strategy(), value_strategy(), 0..10),
        prop::collection::vec(tensor_strategy(), 0..6),
    )
        .prop_map(|(version, alignment, metadata, tensors)| Model {
            version,
            alignment,
            metadata: metadata
                .into_iter()
                .filter(|(k, _)| k != "general.alignment")
                .collect(),
            tensors: tensors
                .into_iter()
                .enumerate()
                .map(|(i, (ty, dims, data))| (format!("blk.{i}.weight"), ty, dims, data))
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// reader(writer(x)) == x, and the file is exactly as long as the writer says.
    #[test]
    fn roundtrip(model in model_strategy()) {
        let w = model.writer();
        let bytes = w.to_vec().unwrap();
        let mut counted = Vec::new();
        prop_assert_eq!(w.write_to(&mut counted).unwrap(), bytes.len() as u64);
        prop_assert_eq!(&counted, &bytes);
        let file = GgufFile::from_vec(bytes.clone()).unwrap();
        model.check(&file);

        // Writing what was read gives the same bytes again.
        let mut again = GgufWriter::new();
        again.set_version(file.version()).unwrap();
        again.add_all(file.metadata()).unwrap();
        for t in file.tensors() {
            again.add_tensor(t.name(), t.ty(), t.dims(), t.data()).unwrap();
        }
        prop_assert_eq!(again.to_vec().unwrap(), bytes);
    }
}

#[test]
fn every_value_type_roundtrips_with_typed_getters() {
    let nested = GgufArray::Array(vec![
        GgufArray::I32(vec![1, -2]),
        GgufArray::String(vec!["x".into()]),
        GgufArray::Array(vec![GgufArray::F64(vec![0.5]), GgufArray::Array(vec![])]),
        GgufArray::empty(GgufValueType::Bool),
    ]);
    let mut w = GgufWriter::new();
    w.add("t.u8", 200u8)
        .unwrap()
        .add("t.i8", -100i8)
        .unwrap()
        .add("t.u16", 60000u16)
        .unwrap()
        .add("t.i16", -30000i16)
        .unwrap()
        .add("t.u32", 4_000_000_000u32)
        .unwrap()
        .add("t.i32", -5i32)
        .unwrap()
        .add("t.f32", 1.5f32)
        .unwrap()
        .add("t.bool", true)
        .unwrap()
        .add("t.string", "héllo")
        .unwrap()
        .add("t.u64", u64::MAX)
        .unwrap()
        .add("t.i64", i64::MIN)
        .unwrap()
        .add("t.f64", -2.25f64)
        .unwrap()
        .add("t.strings", vec!["a", "", "ü"])
        .unwrap()
        .add("t.i32s", vec![1i32, -2, 3])
        .unwrap()
        .add("t.u32s", vec![1u32, 2, 3_000_000_000])
        .unwrap()
        .add("t.f32s", vec![0.25f32, -1.0])
        .unwrap()
        .add("t.bools", vec![true, false])
        .unwrap()
        .add("t.empty", GgufArray::empty(GgufValueType::U64))
        .unwrap()
        .add("t.nested", nested.clone())
        .unwrap()
        .add("t.small", 7u8)
        .unwrap();
    let file = GgufFile::from_vec(w.to_vec().unwrap()).unwrap();
    let md = file.metadata();
    assert_eq!(md.len(), 20);
    assert_eq!(md.get_u8("t.u8").unwrap(), 200);
    assert_eq!(md.get_i32("t.i8").unwrap(), -100);
    assert_eq!(md.get_u16("t.u16").unwrap(), 60000);
    assert_eq!(md.get_i64("t.i16").unwrap(), -30000);
    assert_eq!(md.get_u32("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(md.get_i32("t.i32").unwrap(), -5);
    assert_eq!(md.get_f32("t.f32").unwrap(), 1.5);
    assert!(md.get_bool("t.bool").unwrap());
    assert_eq!(md.get_str("t.string").unwrap(), "héllo");
    assert_eq!(md.get_u64("t.u64").unwrap(), u64::MAX);
    assert_eq!(md.get_i64("t.i64").unwrap(), i64::MIN);
    assert_eq!(md.get_f64("t.f64").unwrap(), -2.25);
    assert_eq!(md.get_str_array("t.strings").unwrap(), vec!["a", "", "ü"]);
    assert_eq!(md.get_i32_array("t.i32s").unwrap().as_ref(), &[1, -2, 3]);
    assert_eq!(
        md.get_u32_array("t.u32s").unwrap().as_ref(),
        &[1, 2, 3_000_000_000]
    );
    assert_eq!(md.get_f32_array("t.f32s").unwrap(), &[0.25, -1.0]);
    assert_eq!(
        md.get_array("t.bools").unwrap(),
        &GgufArray::Bool(vec![true, false])
    );
    assert_eq!(
        md.get_array("t.empty").unwrap(),
        &GgufArray::empty(GgufValueType::U64)
    );
    assert_eq!(md.get_array("t.nested").unwrap(), &nested);
    assert_eq!(md.get("t.nested").unwrap().array_depth(), 3);
    assert_eq!(
        md.get("t.nested").unwrap().type_description(),
        "array of array"
    );

    // Integer widening where the value fits, as llama.cpp's loader tolerates.
    assert_eq!(md.get_u32("t.small").unwrap(), 7);
    assert_eq!(md.get_u64("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(md.get_usize("t.u16").unwrap(), 60000);
    assert_eq!(md.get_f64("t.f32").unwrap(), 1.5);
    assert_eq!(
        md.get_i32_array("t.u32s").unwrap_err().to_string(),
        "metadata key 't.u32s': u32 value 3000000000 (element 2) does not fit in i32"
    );
    assert_eq!(
        md.get_u32_array("t.i32s").unwrap_err().to_string(),
        "metadata key 't.i32s': i32 value -2 (element 1) does not fit in u32"
    );
    assert!(matches!(
        md.get_i32_array("t.bools"),
        Err(GgufError::TypeMismatch { .. })
    ));
    assert_eq!(
        md.get_u32("t.i32").unwrap_err().to_string(),
        "metadata key 't.i32': i32 value -5 does not fit in u32"
    );
    assert_eq!(
        md.get_i32("t.u32").unwrap_err().to_string(),
        "metadata key 't.u32': u32 value 4000000000 does not fit in i32"
    );
    assert_eq!(
        md.get_u32("t.u64").unwrap_err().to_string(),
        "metadata key 't.u64': u64 value 18446744073709551615 does not fit in u32"
    );
    // No lossy conversions between kinds.
    assert_eq!(
        md.get_f32("t.f64").unwrap_err().to_string(),
        "metadata key 't.f64' has type f64, expected f32"
    );
    assert_eq!(
        md.get_u32("t.f32").unwrap_err().to_string(),
        "metadata key 't.f32' has type f32, expected u32"
    );
    assert_eq!(
        md.get_u32("t.bool").unwrap_err().to_string(),
        "metadata key 't.bool' has type bool, expected u32"
    );
    assert_eq!(
        md.get_bool("t.u8").unwrap_err().to_string(),
        "metadata key 't.u8' has type u8, expected bool"
    );
    assert_eq!(
        md.get_str_array("t.i32s").unwrap_err().to_string(),
        "metadata key 't.i32s' has type array of i32, expected array of string"
    );
    assert_eq!(
        md.get_array("t.string").unwrap_err().to_string(),
        "metadata key 't.string' has type string, expected array"
    );
    // Optional keys.
    assert_eq!(md.get_u32("t.absent").optional().unwrap(), None);
    assert_eq!(md.get_u32("t.small").optional().unwrap(), Some(7));
    assert!(md.get_u32("t.string").optional().is_err());
}

#[test]
fn invalid_utf8_string_values_are_kept_as_bytes() {
    let mut w = GgufWriter::new();
    w.add("bad", GgufString::from_bytes(vec![b'a', 0xff, b'b']))
        .unwrap()
        .add(
            "tokens",
            GgufArray::String(vec!["ok".into(), GgufString::from_bytes(vec![0xe2, 0x82])]),
        )
        .unwrap();
    let file = GgufFile::from_vec(w.to_vec().unwrap()).unwrap();
    let md = file.metadata();
    assert_eq!(
        md.get_string("bad").unwrap().as_bytes(),
        &[b'a', 0xff, b'b']
    );
    assert_eq!(
        md.get_string("bad").unwrap().to_string_lossy(),
        "a\u{fffd}b"
    );
    assert_eq!(
        md.get_str("bad").unwrap_err().to_string(),
        "metadata key 'bad': string is not valid UTF-8 (bad byte at position 1); use the raw \
         bytes (GgufString::as_bytes) instead"
    );
    assert_eq!(
        md.get_string_array("tokens").unwrap()[1].as_bytes(),
        &[0xe2, 0x82]
    );
    assert_eq!(
        md.get_str_array("tokens").unwrap_err().to_string(),
        "metadata key 'tokens' (element 1): string is not valid UTF-8 (bad byte at position 0); \
         use the raw bytes (GgufString::as_bytes) instead"
    );
}

#[test]
fn file_roundtrip_through_mmap_and_fill_closures() {
    let dir = std::env::temp_dir().join(format!("rocmforge-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("synthetic.gguf");

    // A synthetic model of real (small) shapes with pseudo-random weights.
    let fill = |seed: u64| {
        move |buf: &mut [u8]| {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
        }
    };
    let mut w = GgufWriter::new();
    w.add("general.architecture", "llama").unwrap();
    w.set_alignment(64).unwrap();
    w.add_tensor_with("token_embd.weight", GgmlType::Q8_0, &[256, 100], fill(1))
        .unwrap();
    w.add_tensor_with("blk.0.attn_q.weight", GgmlType::Q4_K, &[256, 256], fill(2))
        .unwrap();
    w.add_tensor_with(
        "blk.0.attn_norm.weight",
        GgmlType::F32,
        &[256],
        |b: &mut [u8]| {
            for c in b.chunks_exact_mut(4) {
                c.copy_from_slice(&1.0f32.to_le_bytes());
            }
        },
    )
    .unwrap();
    let written = w.write_file(&path).unwrap();
    assert_eq!(written, std::fs::metadata(&path).unwrap().len());
    // The same writer writes the same bytes again (fill closures are re-run).
    assert_eq!(w.to_vec().unwrap(), std::fs::read(&path).unwrap());

    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.path(), Some(path.as_path()));
    assert_eq!(file.architecture().unwrap(), "llama");
    assert_eq!(file.alignment(), 64);
    let q = file.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(
        (q.ty(), q.dims(), q.data().len()),
        (GgmlType::Q4_K, &[256usize, 256][..], 256 * 144)
    );
    let mut expect = vec![0u8; 256 * 144];
    fill(2)(&mut expect);
    assert_eq!(q.data(), expect.as_slice());
    for t in file.tensors() {
        assert_eq!(
            t.data().as_ptr() as usize % 64,
            0,
            "{} aligned in the map",
            t.name()
        );
    }
    let norm = file.tensor("blk.0.attn_norm.weight").unwrap();
    assert!(norm
        .data()
        .chunks_exact(4)
        .all(|c| c == 1.0f32.to_le_bytes()));
    drop(file);
    std::fs::remove_dir_all(&dir).unwrap();

    let e = GgufFile::open(dir.join("missing.gguf")).unwrap_err();
    assert!(e.to_string().starts_with("opening "), "{e}");
    assert!(e.to_string().contains("missing.gguf"), "{e}");
}

#[test]
fn writer_rejects_what_the_reader_would() {
    let f32x4 = vec![0u8; 16];
    let long_name = "n".repeat(64);
    let mut w = GgufWriter::new();
    w.add("a", 1u32).unwrap();
    let e = w.add("a", 2u32).unwrap_err();
    assert!(matches!(e, GgufError::DuplicateKey { .. }));
    assert_eq!(
        e.to_string(),
        "duplicate metadata key 'a': entry #1 repeats entry #0"
    );
    w.set("a", 3u32).unwrap();
    assert_eq!(w.metadata().get_u32("a").unwrap(), 3);

    for (bad, msg) in [
        (
            GgufValue::U32(0),
            "metadata key 'general.alignment' is 0, expected a power of two (such as 32)",
        ),
        (
            GgufValue::U32(48),
            "metadata key 'general.alignment' is 48, expected a power of two (such as 32)",
        ),
        (
            GgufValue::U64(32),
            "metadata key 'general.alignment' has type u64, expected u32",
        ),
    ] {
        assert_eq!(
            w.add("general.alignment", bad).unwrap_err().to_string(),
            msg
        );
    }
    assert_eq!(
        w.set_alignment(3).unwrap_err().to_string(),
        "metadata key 'general.alignment' is 3, expected a power of two (such as 32)"
    );

    let mut deep = GgufArray::U8(vec![1]);
    for _ in 0..MAX_ARRAY_DEPTH {
        deep = GgufArray::Array(vec![deep]);
    }
    assert_eq!(
        w.add("deep", deep).unwrap_err().to_string(),
        format!(
            "metadata key 'deep': arrays nested more than {MAX_ARRAY_DEPTH} levels deep; this \
             reader stops there"
        )
    );

    assert!(matches!(
        w.set_version(1),
        Err(GgufError::UnsupportedWriteVersion { version: 1 })
    ));

    w.add_tensor("t", GgmlType::F32, &[4], f32x4.as_slice())
        .unwrap();
    let cases: Vec<(&str, GgmlType, Vec<usize>, usize, &str)> = vec![
        ("t", GgmlType::F32, vec![4], 16, "duplicate tensor name 't': tensor #1 repeats tensor #0"),
        ("u", GgmlType::F32, vec![4], 12,
            "tensor 'u': f32 with dims [4] takes 16 bytes, but 12 bytes were given"),
        ("u", GgmlType::F32, vec![], 0, "tensor 'u': 0 dimensions, expected 1 to 4 (ggml's GGML_MAX_DIMS)"),
        ("u", GgmlType::F32, vec![1, 1, 1, 1, 1], 4,
            "tensor 'u': 5 dimensions, expected 1 to 4 (ggml's GGML_MAX_DIMS)"),
        ("u", GgmlType::F32, vec![4, 0], 0,
            "tensor 'u': dimension ne1 is 0 (dims [4, 0]); every dimension must be at least 1"),
        ("u", GgmlType::Q4_0, vec![48], 0,
            "tensor 'u': row length ne0 = 48 is not a multiple of the block size 32 of type q4_0"),
        (long_name.as_str(), GgmlType::F32, vec![1], 4,
            "tensor 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn': name is 64 bytes long, ggml allows at most 63"),
    ];
    for (name, ty, dims, len, msg) in cases {
        let e = w.add_tensor(name, ty, &dims, vec![0u8; len]).unwrap_err();
        assert_eq!(e.to_string(), msg);
    }
    // 63 bytes is fine.
    w.add_tensor("n".repeat(63), GgmlType::F32, &[1], vec![0u8; 4])
        .unwrap();
    assert_eq!(w.tensor_count(), 2);
    GgufFile::from_vec(w.to_vec().unwrap()).unwrap();
}

#[test]
fn metadata_set_and_remove_keep_order() {
    let mut w = GgufWriter::new();
    w.add("a", 1u8)
        .unwrap()
        .add("b", 2u8)
        .unwrap()
        .add("c", 3u8)
        .unwrap();
    assert_eq!(w.remove("b"), Some(GgufValue::U8(2)));
    w.set("a", 10u8).unwrap().set("d", 4u8).unwrap();
    let file = GgufFile::from_vec(w.to_vec().unwrap()).unwrap();
    let keys: Vec<&str> = file.metadata().keys().collect();
    assert_eq!(keys, ["a", "c", "d"]);
    assert_eq!(file.metadata().get_u8("a").unwrap(), 10);
    assert_eq!(file.metadata().position("c"), Some(1));
}

#[test]
fn version_two_reads_like_version_three() {
    let mut w = GgufWriter::new();
    w.set_version(2).unwrap();
    w.add("general.architecture", "qwen2").unwrap();
    w.add_tensor("x", GgmlType::BF16, &[2, 3], vec![7u8; 12])
        .unwrap();
    let bytes = w.to_vec().unwrap();
    assert_eq!(&bytes[4..8], &2u32.to_le_bytes());
    let file = GgufFile::from_vec(bytes).unwrap();
    assert_eq!(file.version(), 2);
    assert_eq!(file.architecture().unwrap(), "qwen2");
    let x = file.tensor("x").unwrap();
    assert_eq!((x.row_len(), x.n_rows(), x.n_elements()), (2, 3, 6));
    assert_eq!(x.data(), &[7u8; 12]);
}

#[test]
fn random_quantized_tensors_for_synthetic_models() {
    use rocmforge_model::kernels::quant::dequantize;
    let types = [
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
    let mut w = GgufWriter::new();
    for (i, ty) in types.iter().enumerate() {
        w.add_random_tensor(format!("w{i}"), *ty, &[256, 3], 7, 0.5)
            .unwrap();
    }
    w.add_random_tensor("same", GgmlType::Q4_K, &[256, 3], 7, 0.5)
        .unwrap();
    w.add_random_tensor("other", GgmlType::Q4_K, &[256, 3], 8, 0.5)
        .unwrap();
    let e = w
        .add_random_tensor("iq", GgmlType::IQ2_XXS, &[256], 1, 1.0)
        .unwrap_err();
    assert!(e.to_string().starts_with(
        "tensor 'iq': cannot make random weights of type iq2_xxs, which has no quantizer"
    ));
    let e = w
        .add_random_tensor("odd", GgmlType::Q8_0, &[33], 1, 1.0)
        .unwrap_err();
    assert!(matches!(e, GgufError::RowNotBlockMultiple { .. }));

    let file = GgufFile::from_vec(w.to_vec().unwrap()).unwrap();
    for (i, ty) in types.iter().enumerate() {
        let t = file.tensor(&format!("w{i}")).unwrap();
        let x = dequantize(*ty, t.data(), 256 * 3).unwrap();
        assert!(x.iter().all(|v| v.is_finite() && v.abs() <= 0.55), "{ty}");
        let mean_abs = x.iter().map(|v| v.abs()).sum::<f32>() / x.len() as f32;
        assert!(
            (0.15..0.35).contains(&mean_abs),
            "{ty}: mean |x| {mean_abs}"
        );
    }
    assert_eq!(
        file.tensor("w10").unwrap().data(),
        file.tensor("same").unwrap().data()
    );
    assert_ne!(
        file.tensor("same").unwrap().data(),
        file.tensor("other").unwrap().data()
    );
}
