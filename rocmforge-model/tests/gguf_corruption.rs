//! Corruption suite: truncations, bit flips, overwritten bytes and absurd
//! counts/offsets/lengths, on a small written file and on the header region
//! of the demo model. Every input must give an error or a valid parse — never
//! a panic, a hang, or an allocation out of proportion to the input: a counting
//! global allocator measures the peak memory and the largest single allocation
//! of every parse.
//!
//! The demo-model tests need the model (`scripts/fetch-demo-model.sh`); without
//! it they fail saying so.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rocmforge_model::gguf::{
    require_demo_model, GgmlType, GgufArray, GgufError, GgufHeader, GgufString, GgufValue,
    GgufWriter,
};

// ---------------------------------------------------------------- allocation meter

/// The system allocator, counting per thread the bytes in use, their peak and
/// the largest single allocation.
struct Meter;

thread_local! {
    static IN_USE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = IN_USE.try_with(|u| {
        let now = u.get() + size as isize;
        u.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

fn note_free(size: usize) {
    let _ = IN_USE.try_with(|u| u.set(u.get() - size as isize));
}

unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        note_free(layout.size());
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// Memory a parse took: peak bytes above the starting point, largest allocation.
struct Usage {
    peak: usize,
    largest: usize,
    elapsed: Duration,
}

/// Parses `bytes` under the meter; also renders the error or walks the result,
/// which must not panic either.
fn metered_parse(bytes: &[u8]) -> (Result<GgufHeader, GgufError>, Usage) {
    let start = IN_USE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    LARGEST.with(|l| l.set(0));
    let t0 = Instant::now();
    let result = GgufHeader::parse(bytes);
    let elapsed = t0.elapsed();
    let usage = Usage {
        peak: (PEAK.with(Cell::get) - start).max(0) as usize,
        largest: LARGEST.with(Cell::get),
        elapsed,
    };
    match &result {
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
        }
        Ok(h) => {
            for info in h.tensors() {
                let t = h
                    .tensor_in(bytes, info.name())
                    .expect("validated tensor is in bounds");
                assert_eq!(t.data().len(), info.n_bytes());
            }
            for (k, v) in h.metadata().iter() {
                let _ = (k.len(), v.type_description());
            }
            let _ = h.architecture();
        }
    }
    (result, usage)
}

/// Parses and checks that memory and time stay in proportion to the input:
/// at most `32 × len + 64 KiB` bytes at the peak, one allocation of at most
/// `4 × len + 64 KiB`, and under 10 s (a debug build parses the demo header
/// in well under a second).
fn check(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
    let (result, usage) = metered_parse(bytes);
    let len = bytes.len();
    assert!(
        usage.peak <= 32 * len + (64 << 10),
        "parse of {len} bytes peaked at {} bytes ({result:?})",
        usage.peak
    );
    assert!(
        usage.largest <= 4 * len + (64 << 10),
        "parse of {len} bytes made an allocation of {} bytes",
        usage.largest
    );
    assert!(
        usage.elapsed < Duration::from_secs(10),
        "parse took {:?}",
        usage.elapsed
    );
    result
}

// ---------------------------------------------------------------- inputs

/// A small file with metadata of every type (nested arrays included) and
/// tensors of three types.
fn small_file() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let mut w = GgufWriter::new();
        w.add("general.architecture", "llama").unwrap();
        w.add("general.alignment", 32u32).unwrap();
        w.add("a.u8", 1u8).unwrap();
        w.add("a.i8", -1i8).unwrap();
        w.add("a.u16", 2u16).unwrap();
        w.add("a.i16", -2i16).unwrap();
        w.add("a.i32", -3i32).unwrap();
        w.add("a.f32", 0.5f32).unwrap();
        w.add("a.bool", true).unwrap();
        w.add("a.u64", 5u64).unwrap();
        w.add("a.i64", -6i64).unwrap();
        w.add("a.f64", 0.25f64).unwrap();
        w.add("a.bytes", GgufString::from_bytes(vec![0xff, 0]))
            .unwrap();
        w.add("tokenizer.ggml.tokens", vec!["<s>", "</s>", "a", "bc"])
            .unwrap();
        w.add("tokenizer.ggml.scores", vec![0.0f32, -1.0, -2.0, -3.0])
            .unwrap();
        w.add("tokenizer.ggml.token_type", vec![3i32, 3, 1, 1])
            .unwrap();
        w.add("a.bools", vec![true, false, true]).unwrap();
        w.add(
            "a.nested",
            GgufArray::Array(vec![
                GgufArray::U16(vec![1, 2]),
                GgufArray::Array(vec![GgufArray::String(vec!["x".into()])]),
            ]),
        )
        .unwrap();
        w.add_tensor(
            "token_embd.weight",
            GgmlType::Q8_0,
            &[32, 4],
            vec![1u8; 4 * 34],
        )
        .unwrap();
        w.add_tensor(
            "blk.0.attn_norm.weight",
            GgmlType::F32,
            &[32],
            vec![2u8; 128],
        )
        .unwrap();
        w.add_tensor(
            "blk.0.ffn_up.weight",
            GgmlType::Q4_K,
            &[256, 2],
            vec![3u8; 288],
        )
        .unwrap();
        w.to_vec().unwrap()
    })
}

/// Where the tensor data of `bytes` ends (the end of its last tensor).
fn data_end(bytes: &[u8]) -> usize {
    let h = GgufHeader::parse(bytes).unwrap();
    h.tensors()
        .iter()
        .map(|t| t.data_range().end)
        .max()
        .unwrap_or(0)
}

/// The demo model, read once into memory.
fn demo() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = require_demo_model().unwrap_or_else(|e| panic!("{e}"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    })
}

/// Runs `f` on a copy of the demo model with `patch` applied (each patch XORs
/// `mask` bytes in at a position); the copy is shared between cases and
/// restored afterwards, even when `f` panics, so no case pays for copying 98 MB.
fn with_patched_demo(patch: &[(usize, Vec<u8>)], f: impl FnOnce(&[u8])) {
    static COPY: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    let mut guard = COPY
        .get_or_init(|| Mutex::new(demo().to_vec()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());

    /// XORs the patch in on creation and out again on drop.
    struct Xor<'a> {
        bytes: &'a mut [u8],
        patch: &'a [(usize, Vec<u8>)],
    }
    impl Xor<'_> {
        fn apply(&mut self) {
            for (pos, mask) in self.patch {
                for (b, m) in self.bytes[*pos..*pos + mask.len()].iter_mut().zip(mask) {
                    *b ^= m;
                }
            }
        }
    }
    impl Drop for Xor<'_> {
        fn drop(&mut self) {
            // XOR in reverse order undoes overlapping patches too.
            for (pos, mask) in self.patch.iter().rev() {
                for (b, m) in self.bytes[*pos..*pos + mask.len()].iter_mut().zip(mask) {
                    *b ^= m;
                }
            }
        }
    }
    let mut xor = Xor {
        bytes: &mut guard,
        patch,
    };
    xor.apply();
    f(xor.bytes);
}

/// The demo model's data offset and the start of its tensor-info region.
fn demo_regions() -> (usize, usize) {
    static REGIONS: OnceLock<(usize, usize)> = OnceLock::new();
    *REGIONS.get_or_init(|| {
        let h = GgufHeader::parse(demo()).unwrap();
        let infos: usize = h
            .tensors()
            .iter()
            .map(|t| 8 + t.name().len() + 4 + 8 * t.dims().len() + 4 + 8)
            .sum();
        let data_offset = h.data_offset();
        (data_offset, data_offset - infos - h.alignment())
    })
}

// ---------------------------------------------------------------- small file

#[test]
fn small_file_parses() {
    let bytes = small_file();
    let h = check(bytes).unwrap();
    assert_eq!(h.metadata().len(), 18);
    assert_eq!(h.tensors().len(), 3);
}

/// Every prefix shorter than the end of the last tensor is an error; every
/// longer one (cut in the final padding) is the same valid file.
#[test]
fn small_file_truncated_at_every_position() {
    let bytes = small_file();
    let end = data_end(bytes);
    let full = GgufHeader::parse(bytes).unwrap();
    for len in 0..bytes.len() {
        match check(&bytes[..len]) {
            Ok(h) => {
                assert!(
                    len >= end,
                    "prefix of {len} bytes parsed (data ends at {end})"
                );
                assert_eq!(h.metadata(), full.metadata());
            }
            Err(e) => assert!(len < end, "prefix of {len} bytes failed: {e}"),
        }
    }
}

/// Every single-bit flip anywhere before the data section.
#[test]
fn small_file_every_bit_flip_in_header() {
    let mut bytes = small_file().to_vec();
    let header_end = GgufHeader::parse(&bytes).unwrap().data_offset();
    let mut errors = 0;
    for pos in 0..header_end {
        for bit in 0..8 {
            bytes[pos] ^= 1 << bit;
            errors += usize::from(check(&bytes).is_err());
            bytes[pos] ^= 1 << bit;
        }
    }
    // Most flips are caught (flips in string contents and values are valid files).
    assert!(
        errors > header_end,
        "{errors} errors for {} flips",
        header_end * 8
    );
}

/// Values that break counts, lengths, dims, type ids and offsets.
fn absurd_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(u64::MAX - 7),
        Just(1u64 << 63),
        Just((1u64 << 63) - 1),
        Just(1u64 << 32),
        Just(u32::MAX as u64),
        Just(1u64 << 40),
        Just(0u64),
        Just(1u64),
        0u64..4096,
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes overwritten anywhere in the file.
    #[test]
    fn small_file_random_overwrites(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut bytes = small_file().to_vec();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let _ = check(&bytes);
    }

    /// An absurd 64-bit (or 32-bit) value written over any position of the
    /// header: counts, string and array lengths, dims, type ids, offsets.
    #[test]
    fn small_file_absurd_values(pos in any::<prop::sample::Index>(), value in absurd_u64(), wide in any::<bool>()) {
        let mut bytes = small_file().to_vec();
        let header_end = GgufHeader::parse(&bytes).unwrap().data_offset();
        let pos = pos.index(header_end - 8);
        if wide {
            bytes[pos..pos + 8].copy_from_slice(&value.to_le_bytes());
        } else {
            bytes[pos..pos + 4].copy_from_slice(&(value as u32).to_le_bytes());
        }
        let _ = check(&bytes);
    }

    /// Truncated, then random bytes appended (a file overwritten mid-copy).
    #[test]
    fn small_file_truncated_and_garbage(cut in any::<prop::sample::Index>(), tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let src = small_file();
        let mut bytes = src[..cut.index(src.len())].to_vec();
        bytes.extend_from_slice(&tail);
        let _ = check(&bytes);
    }

    /// Arbitrary bytes after a valid magic and version.
    #[test]
    fn garbage_after_magic(version in 2u32..=3, tail in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&tail);
        let _ = check(&bytes);
    }
}

#[test]
fn absurd_counts_allocate_nothing_large() {
    // Each of these claims more than the file holds; the meter in `check`
    // proves that nothing count-sized was reserved.
    let mut base = b"GGUF".to_vec();
    base.extend_from_slice(&3u32.to_le_bytes());
    for (n_tensors, n_kv) in [
        (u64::MAX, 0),
        (0, u64::MAX),
        (1 << 40, 1 << 40),
        (3, 0),
        (0, 3),
    ] {
        let mut bytes = base.clone();
        bytes.extend_from_slice(&n_tensors.to_le_bytes());
        bytes.extend_from_slice(&n_kv.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 40]);
        assert!(check(&bytes).is_err());
    }
    // An array of 2^61 strings / arrays / u64s in a 100-byte file.
    for elem in [8u32, 9, 10, 0, 7] {
        let mut bytes = base.clone();
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.push(b'k');
        bytes.extend_from_slice(&9u32.to_le_bytes());
        bytes.extend_from_slice(&elem.to_le_bytes());
        bytes.extend_from_slice(&(1u64 << 61).to_le_bytes());
        bytes.extend_from_slice(&[0u8; 48]);
        let e = check(&bytes).unwrap_err();
        assert!(matches!(e, GgufError::CountTooLarge { .. }), "{e}");
    }
    // 100,000 nested arrays: refused at the depth limit, without recursing further.
    let mut bytes = base.clone();
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.push(b'k');
    bytes.extend_from_slice(&9u32.to_le_bytes());
    for _ in 0..100_000 {
        bytes.extend_from_slice(&9u32.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
    }
    assert!(matches!(
        check(&bytes),
        Err(GgufError::NestingTooDeep { .. })
    ));
}

/// Strings are kept byte for byte, so the parse of a valid-but-hostile file
/// (many tiny strings) stays within the meter's proportion too.
#[test]
fn many_small_values_stay_proportional() {
    let mut w = GgufWriter::new();
    w.add("s", vec![""; 100_000]).unwrap();
    w.add(
        "a",
        GgufArray::Array(vec![
            GgufArray::empty(
                rocmforge_model::gguf::GgufValueType::U8
            );
            50_000
        ]),
    )
    .unwrap();
    for i in 0..10_000 {
        w.add(format!("k{i}"), GgufValue::U8(0)).unwrap();
    }
    let bytes = w.to_vec().unwrap();
    let h = check(&bytes).unwrap();
    assert_eq!(h.metadata().len(), 10_002);
}

// ---------------------------------------------------------------- demo model

#[test]
fn demo_header_truncated_near_the_start() {
    let bytes = demo();
    for len in 0..1024 {
        assert!(check(&bytes[..len]).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Truncation anywhere in the header region (metadata and tensor infos)
    /// and at the edge of the data.
    #[test]
    fn demo_header_truncated_anywhere(at in any::<prop::sample::Index>()) {
        let bytes = demo();
        let (data_offset, _) = demo_regions();
        let len = at.index(data_offset + 4096);
        prop_assert!(check(&bytes[..len]).is_err());
    }

    /// Bit flips in the fixed header, the first keys and the tensor infos.
    #[test]
    fn demo_bit_flips_in_header_and_tensor_infos(
        flips in prop::collection::vec((any::<bool>(), any::<prop::sample::Index>(), 0..8u8), 1..4)
    ) {
        let (data_offset, infos_start) = demo_regions();
        let patch: Vec<(usize, Vec<u8>)> = flips
            .into_iter()
            .map(|(in_infos, i, bit)| {
                let pos = if in_infos {
                    infos_start + i.index(data_offset - infos_start)
                } else {
                    i.index(4096)
                };
                (pos, vec![1u8 << bit])
            })
            .collect();
        with_patched_demo(&patch, |bytes| {
            let _ = check(bytes);
        });
    }

    /// Absurd values over the tensor-info region (dims, types, offsets).
    #[test]
    fn demo_absurd_values_in_tensor_infos(at in any::<prop::sample::Index>(), value in absurd_u64()) {
        let (data_offset, infos_start) = demo_regions();
        let pos = infos_start + at.index(data_offset - infos_start - 8);
        let old = &demo()[pos..pos + 8];
        let mask: Vec<u8> = value.to_le_bytes().iter().zip(old).map(|(v, o)| v ^ o).collect();
        with_patched_demo(&[(pos, mask)], |bytes| {
            assert_eq!(&bytes[pos..pos + 8], &value.to_le_bytes());
            let _ = check(bytes);
        });
    }
}
