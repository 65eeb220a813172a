//! Hand-made malformed GGUF files: each is rejected with the error that names
//! what is wrong (checked word for word), never a panic.

use rocmforge_model::gguf::{
    GgmlType, GgufError, GgufFile, GgufHeader, GgufWriter, MAX_ARRAY_DEPTH,
};

/// A little-endian byte builder for GGUF images.
#[derive(Default, Clone)]
struct Raw(Vec<u8>);

impl Raw {
    /// Magic, version, tensor count, kv count.
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut r = Raw::default();
        r.bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn u8(&mut self, x: u8) -> &mut Self {
        self.bytes(&[x])
    }
    fn u32(&mut self, x: u32) -> &mut Self {
        self.bytes(&x.to_le_bytes())
    }
    fn u64(&mut self, x: u64) -> &mut Self {
        self.bytes(&x.to_le_bytes())
    }
    fn str(&mut self, s: &[u8]) -> &mut Self {
        self.u64(s.len() as u64).bytes(s)
    }
    /// A key and a u32 value.
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key.as_bytes()).u32(4).u32(v)
    }
    /// A tensor info.
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name.as_bytes()).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Zero padding to a multiple of `align`, then `n` data bytes.
    fn data(&mut self, align: usize, n: usize) -> &mut Self {
        let len = self.0.len().next_multiple_of(align) + n;
        self.0.resize(len, 0);
        self
    }
    fn parse(&self) -> Result<GgufHeader, GgufError> {
        GgufHeader::parse(&self.0)
    }
    /// The error message, asserting that parsing failed.
    fn err(&self) -> String {
        match self.parse() {
            Ok(h) => panic!("parsed, expected an error: {h:?}"),
            Err(e) => e.to_string(),
        }
    }
}

#[test]
fn magic_and_version() {
    assert_eq!(
        GgufHeader::parse(b"").unwrap_err().to_string(),
        "truncated GGUF: the magic \"GGUF\" at offset 0 needs 4 bytes but only 0 remain (file size 0)"
    );
    assert_eq!(
        GgufHeader::parse(b"GGU").unwrap_err().to_string(),
        "truncated GGUF: the magic \"GGUF\" at offset 0 needs 4 bytes but only 3 remain (file size 3)"
    );
    assert_eq!(
        GgufHeader::parse(b"PK\x03\x04rest").unwrap_err().to_string(),
        "not a GGUF file: it starts with bytes 50 4b 03 04 (\"PK\\u{3}\\u{4}\"), expected the magic \"GGUF\" (47 47 55 46)"
    );
    let e = GgufHeader::parse(b"tjgg\x01\0\0\0")
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("this is a pre-GGUF ggml/ggmf/ggjt model, convert it to GGUF with llama.cpp"),
        "{e}"
    );

    assert_eq!(
        Raw::header(1, 0, 0).err(),
        "GGUF version 1 is not supported (v1 used 32-bit counts and lengths and was replaced by v2 \
         in 2023); convert the model again with a current llama.cpp (convert_hf_to_gguf.py or \
         gguf-py) to get a v3 file"
    );
    for v in [0u32, 4, 1000] {
        assert_eq!(
            Raw::header(v, 0, 0).err(),
            format!("GGUF version {v} is not supported: this reader handles versions 2 and 3")
        );
    }
    assert_eq!(
        Raw::header(3u32.swap_bytes(), 0, 0).err(),
        "the file is a big-endian GGUF (version field 0x03000000 is version 3 byte-swapped); only \
         little-endian GGUF files are supported"
    );
    // Minimal valid files of both versions.
    for v in [2, 3] {
        let h = Raw::header(v, 0, 0).parse().unwrap();
        assert_eq!(
            (h.version(), h.metadata().len(), h.tensors().len()),
            (v, 0, 0)
        );
        assert_eq!(h.data_offset(), 32);
    }
    assert_eq!(
        GgufHeader::parse(b"GGUF\x03\0\0\0\0\0\0\0").unwrap_err().to_string(),
        "truncated GGUF: the tensor count at offset 8 needs 8 bytes but only 4 remain (file size 12)"
    );
}

#[test]
fn absurd_counts_are_caught_before_allocating() {
    assert_eq!(
        Raw::header(3, u64::MAX, 0).err(),
        "the tensor count at offset 8 is 18446744073709551615, but that many need at least \
         590295810358705651680 bytes and only 0 remain in the file (file size 24)"
    );
    assert_eq!(
        Raw::header(3, 0, 1 << 40).err(),
        "the metadata key-value count at offset 16 is 1099511627776, but that many need at least \
         14293651161088 bytes and only 0 remain in the file (file size 24)"
    );
    // A tensor count that fits the whole file, but not what is left after the metadata.
    let mut r = Raw::header(3, 2, 1);
    r.str(b"k").u32(8).str(&[b'x'; 60]);
    assert_eq!(
        r.err(),
        "the tensor count (2, from offset 8) at the start of the tensor infos at offset 105 is 2, \
         but that many need at least 64 bytes and only 0 remain in the file (file size 105)"
    );
    // Key and string lengths past the end.
    let mut r = Raw::header(3, 0, 1);
    r.u64(u64::MAX).bytes(&[b'a'; 16]);
    assert_eq!(
        r.err(),
        "truncated GGUF: the key of metadata entry #0 (18446744073709551615 bytes) at offset 32 \
         needs 18446744073709551615 bytes but only 16 remain (file size 48)"
    );
    let mut r = Raw::header(3, 0, 1);
    r.str(b"general.name").u32(8).u64(1 << 62).bytes(b"short");
    assert_eq!(
        r.err(),
        "truncated GGUF: the string value of metadata key 'general.name' (4611686018427387904 \
         bytes) at offset 56 needs 4611686018427387904 bytes but only 5 remain (file size 61)"
    );
    // Array counts: of u64 (count × 8 would overflow u64), of strings, of arrays.
    for (elem, name, min) in [
        (10u32, "u64", 8u128),
        (8, "string", 8),
        (9, "array", 12),
        (0, "u8", 1),
    ] {
        let mut r = Raw::header(3, 0, 1);
        r.str(b"a").u32(9).u32(elem).u64(u64::MAX).bytes(&[0; 16]);
        assert_eq!(
            r.err(),
            format!(
                "the length of an array of {name} in metadata key 'a' at offset 41 is \
                 18446744073709551615, but that many need at least {} bytes and only 16 remain \
                 in the file (file size 65)",
                u64::MAX as u128 * min
            )
        );
    }
}

#[test]
fn metadata_errors_name_the_key() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"ab\xffc").u32(4).u32(1);
    assert_eq!(
        r.err(),
        "metadata key #0 at offset 24 is not valid UTF-8 (bad byte at position 2 of the key: \
         \"ab\u{fffd}c\")"
    );

    let mut r = Raw::header(3, 0, 3);
    r.kv_u32("a", 1).kv_u32("b", 2).kv_u32("a", 3);
    assert_eq!(
        r.err(),
        "duplicate metadata key 'a': entry #2 (at offset 58) repeats entry #0"
    );

    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(13).u32(0);
    assert_eq!(
        r.err(),
        "metadata key 'k': unknown value type id 13 at offset 33 (GGUF value types are 0..=12)"
    );
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(9).u32(77).u64(0);
    assert_eq!(
        r.err(),
        "metadata key 'k': unknown value type id 77 at offset 37 (GGUF value types are 0..=12)"
    );

    let mut r = Raw::header(3, 0, 1);
    r.str(b"flag").u32(7).u8(2);
    assert_eq!(
        r.err(),
        "metadata key 'flag': bool at offset 40 is byte 2, expected 0 or 1"
    );
    let mut r = Raw::header(3, 0, 1);
    r.str(b"flags").u32(9).u32(7).u64(3).bytes(&[1, 0, 9]);
    assert_eq!(
        r.err(),
        "metadata key 'flags': bool at offset 55 is byte 9, expected 0 or 1"
    );

    // Truncated scalar.
    let mut r = Raw::header(3, 0, 1);
    r.str(b"n").u32(10).bytes(&[1, 2, 3]);
    assert_eq!(
        r.err(),
        "truncated GGUF: the u64 value of metadata key 'n' at offset 37 needs 8 bytes but only 3 \
         remain (file size 40)"
    );
    // A string element of an array.
    let mut r = Raw::header(3, 0, 1);
    r.str(b"toks")
        .u32(9)
        .u32(8)
        .u64(2)
        .str(b"ok")
        .u64(10)
        .bytes(b"abc");
    assert_eq!(
        r.err(),
        "truncated GGUF: element 1 of the string array in metadata key 'toks' (10 bytes) at offset \
         70 needs 10 bytes but only 3 remain (file size 73)"
    );
}

#[test]
fn nesting_depth_is_bounded() {
    // MAX_ARRAY_DEPTH levels are fine, one more is not (and never overflows the stack).
    for depth in [MAX_ARRAY_DEPTH, MAX_ARRAY_DEPTH + 1, 100_000] {
        let mut r = Raw::header(3, 0, 1);
        r.str(b"deep").u32(9);
        for _ in 0..depth - 1 {
            r.u32(9).u64(1);
        }
        r.u32(0).u64(1).u8(42);
        if depth <= MAX_ARRAY_DEPTH {
            let h = r.parse().unwrap();
            assert_eq!(h.metadata().get("deep").unwrap().array_depth(), depth);
        } else {
            let off = 24 + 8 + 4 + 4 + 12 * MAX_ARRAY_DEPTH;
            assert_eq!(
                r.err(),
                format!(
                    "metadata key 'deep': arrays nested more than {MAX_ARRAY_DEPTH} levels deep \
                     (at offset {off}); this reader stops there"
                )
            );
        }
    }
}

#[test]
fn alignment_key() {
    for (value, ty, msg) in [
        (
            0u32,
            4u32,
            "metadata key 'general.alignment' is 0, expected a power of two (such as 32)",
        ),
        (
            24,
            4,
            "metadata key 'general.alignment' is 24, expected a power of two (such as 32)",
        ),
        (
            32,
            5,
            "metadata key 'general.alignment' has type i32, expected u32",
        ),
    ] {
        let mut r = Raw::header(3, 0, 1);
        r.str(b"general.alignment").u32(ty).u32(value);
        assert_eq!(r.err(), msg);
    }
    // A valid alignment moves the data section and is checked on every offset.
    let mut r = Raw::header(3, 2, 1);
    r.kv_u32("general.alignment", 64)
        .tensor("a", &[8], 0, 0)
        .tensor("b", &[8], 0, 32);
    let mut ok = r.clone();
    ok.data(64, 32);
    assert_eq!(
        ok.err(),
        "tensor 'b': data offset 32 is not a multiple of the alignment 64 (general.alignment, \
         default 32)"
    );
    let mut r = Raw::header(3, 2, 1);
    r.kv_u32("general.alignment", 64)
        .tensor("a", &[8], 0, 0)
        .tensor("b", &[8], 0, 64);
    r.data(64, 64 + 32);
    let h = r.parse().unwrap();
    assert_eq!((h.alignment(), h.data_offset() % 64), (64, 0));
    assert_eq!(
        h.tensor_info("b").unwrap().data_range().start,
        h.data_offset() + 64
    );
}

/// A file with one tensor info, `n_data` bytes of data after the padding.
fn one_tensor(name: &[u8], dims: &[u64], ty: u32, offset: u64, n_data: usize) -> Raw {
    let mut r = Raw::header(3, 1, 0);
    r.str(name).u32(dims.len() as u32);
    for &d in dims {
        r.u64(d);
    }
    r.u32(ty).u64(offset).data(32, n_data);
    r
}

#[test]
fn tensor_info_errors_name_the_tensor() {
    // A valid one to start from.
    let h = one_tensor(b"w", &[32, 2], 2, 0, 36).parse().unwrap();
    let w = h.tensor_info("w").unwrap();
    assert_eq!(
        (w.ty(), w.dims(), w.n_bytes()),
        (GgmlType::Q4_0, &[32usize, 2][..], 36)
    );

    let cases: Vec<(Raw, &str)> = vec![
        (one_tensor(b"w\xc3", &[4], 0, 0, 16),
            "tensor #0 at offset 24: name is not valid UTF-8 (bad byte at position 1: \"w\u{fffd}\")"),
        (one_tensor(&[b'x'; 64], &[4], 0, 0, 16),
            "tensor 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx': name is 64 bytes long, ggml allows at most 63"),
        (one_tensor(b"w", &[], 0, 0, 16),
            "tensor 'w': 0 dimensions, expected 1 to 4 (ggml's GGML_MAX_DIMS)"),
        (one_tensor(b"w", &[1, 1, 1, 1, 1], 0, 0, 16),
            "tensor 'w': 5 dimensions, expected 1 to 4 (ggml's GGML_MAX_DIMS)"),
        (one_tensor(b"w", &[4, 1, 0], 0, 0, 16),
            "tensor 'w': dimension ne2 is 0 (dims [4, 1, 0]); every dimension must be at least 1"),
        (one_tensor(b"w", &[1 << 32, 1 << 31], 0, 0, 16),
            "tensor 'w': dims [4294967296, 2147483648] give more than 9223372036854775807 elements, which overflows (ggml counts elements in int64)"),
        (one_tensor(b"w", &[u64::MAX], 0, 0, 16),
            "tensor 'w': dims [18446744073709551615] give more than 9223372036854775807 elements, which overflows (ggml counts elements in int64)"),
        (one_tensor(b"w", &[1 << 62], 28, 0, 16),
            "tensor 'w': dims [4611686018427387904] give more than 18446744073709551615 bytes, which overflows (ggml counts elements in int64)"),
        (one_tensor(b"w", &[4], 4, 0, 16),
            "tensor 'w': unknown ggml type id 4 (not a type of ggml; ids 4, 5, 31-33 and 36-38 were removed)"),
        (one_tensor(b"w", &[4], 99, 0, 16),
            "tensor 'w': unknown ggml type id 99 (not a type of ggml; ids 4, 5, 31-33 and 36-38 were removed)"),
        (one_tensor(b"w", &[100, 2], 12, 0, 16),
            "tensor 'w': row length ne0 = 100 is not a multiple of the block size 256 of type q4_K"),
        (one_tensor(b"w", &[4], 0, 16, 64),
            "tensor 'w': data offset 16 is not a multiple of the alignment 32 (general.alignment, default 32)"),
        (one_tensor(b"w", &[4, 2], 0, 0, 31),
            "tensor 'w': data at offset 0 of the data section (file offset 96, 32 bytes) ends at 128, past the end of the file (127 bytes; data section starts at 96)"),
        (one_tensor(b"w", &[4], 0, 1 << 63, 16),
            "tensor 'w': data at offset 9223372036854775808 of the data section (file offset 9223372036854775872, 16 bytes) ends at 9223372036854775888, past the end of the file (80 bytes; data section starts at 64)"),
        (one_tensor(b"w", &[4], 0, u64::MAX - 31, 16),
            "tensor 'w': data at offset 18446744073709551584 of the data section (file offset 18446744073709551648, 16 bytes) ends at 18446744073709551664, past the end of the file (80 bytes; data section starts at 64)"),
    ];
    for (raw, msg) in cases {
        assert_eq!(raw.err(), msg);
    }

    // Truncated in the middle of the dims.
    let mut r = Raw::header(3, 1, 0);
    r.str(b"w").u32(2).u64(4).u64(4).u32(0).bytes(&[0; 3]);
    assert_eq!(
        r.err(),
        "truncated GGUF: the data offset of tensor 'w' at offset 57 needs 8 bytes but only 3 \
         remain (file size 60)"
    );
}

#[test]
fn duplicate_and_overlapping_tensors() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("w", &[4], 0, 0)
        .tensor("w", &[4], 0, 32)
        .data(32, 64);
    assert_eq!(
        r.err(),
        "duplicate tensor name 'w': tensor #1 repeats tensor #0"
    );

    let mut r = Raw::header(3, 3, 0);
    r.tensor("a", &[8], 0, 32)
        .tensor("b", &[16], 0, 0)
        .tensor("c", &[4], 0, 64)
        .data(32, 128);
    assert_eq!(
        r.err(),
        "tensors 'b' (data section bytes 0..64) and 'a' (bytes 32..64) overlap"
    );
    // Adjacent, out of file order, and with gaps: fine.
    let mut r = Raw::header(3, 3, 0);
    r.tensor("a", &[8], 0, 64)
        .tensor("b", &[16], 0, 0)
        .tensor("c", &[4], 0, 160)
        .data(32, 176);
    let h = r.parse().unwrap();
    let names: Vec<&str> = h.tensors().iter().map(|t| t.name()).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn file_level_errors() {
    // GgufFile reports the same errors as GgufHeader.
    let e = GgufFile::from_bytes(b"GGUF\x01\0\0\0").unwrap_err();
    assert!(matches!(e, GgufError::VersionOne));
    // A file with no tensors may end right after its metadata (no data padding).
    let mut w = GgufWriter::new();
    w.add("general.architecture", "llama").unwrap();
    let bytes = w.to_vec().unwrap();
    let end = 24 + 8 + 20 + 4 + 8 + 5;
    let h = GgufHeader::parse(&bytes[..end]).unwrap();
    assert_eq!(h.architecture().unwrap(), "llama");
    assert_eq!(h.data_offset(), end.next_multiple_of(32));
}
