//! Unit and property tests of the quant module: type table, sizes and errors,
//! f16/bf16 conversions, quantize→dequantize error bounds, parallel = serial.
//! Exactness against llama.cpp itself is in tests/quant_fixtures.rs.

use proptest::prelude::*;

use super::fp16::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
use super::*;
use crate::Error;

/// The types with a CPU (de)quantizer.
fn supported() -> Vec<GgmlType> {
    GgmlType::ALL
        .into_iter()
        .filter(|t| t.is_dequantizable())
        .collect()
}

/// The block types of [`supported`] (what the error bounds are about).
const BLOCK_TYPES: [GgmlType; 10] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// The ids and names of ggml.h for the types DESIGN.md and the kernels use.
#[test]
fn ids_match_ggml_h() {
    // The ids DESIGN.md and ggml.h name; the full table is checked against
    // ggml's type_traits in tests/quant_fixtures.rs.
    let expected = [
        (GgmlType::F32, 0, "f32"),
        (GgmlType::F16, 1, "f16"),
        (GgmlType::Q4_0, 2, "q4_0"),
        (GgmlType::Q4_1, 3, "q4_1"),
        (GgmlType::Q5_0, 6, "q5_0"),
        (GgmlType::Q5_1, 7, "q5_1"),
        (GgmlType::Q8_0, 8, "q8_0"),
        (GgmlType::Q8_1, 9, "q8_1"),
        (GgmlType::Q2_K, 10, "q2_K"),
        (GgmlType::Q3_K, 11, "q3_K"),
        (GgmlType::Q4_K, 12, "q4_K"),
        (GgmlType::Q5_K, 13, "q5_K"),
        (GgmlType::Q6_K, 14, "q6_K"),
        (GgmlType::Q8_K, 15, "q8_K"),
        (GgmlType::BF16, 30, "bf16"),
        (GgmlType::TQ1_0, 34, "tq1_0"),
        (GgmlType::TQ2_0, 35, "tq2_0"),
        (GgmlType::MXFP4, 39, "mxfp4"),
        (GgmlType::NVFP4, 40, "nvfp4"),
        (GgmlType::Q1_0, 41, "q1_0"),
        (GgmlType::Q2_0, 42, "q2_0"),
    ];
    for (ty, id, name) in expected {
        assert_eq!(ty.id(), id);
        assert_eq!(ty.name(), name);
        assert_eq!(GgmlType::from_id(id), Some(ty));
        assert_eq!(ty.to_string(), name);
    }
    for removed in [4, 5, 31, 32, 33, 36, 37, 38, 43] {
        assert_eq!(GgmlType::from_id(removed), None, "id {removed}");
    }
    for w in GgmlType::ALL.windows(2) {
        assert!(w[0].id() < w[1].id(), "ALL is in id order");
    }
}

/// id, name, TryFrom and row_bytes agree for every variant.
#[test]
fn every_type_roundtrips_through_id_and_name() {
    for ty in GgmlType::ALL {
        assert_eq!(GgmlType::from_id(ty.id()), Some(ty));
        assert_eq!(GgmlType::try_from(ty.id()), Ok(ty));
        assert_eq!(u32::from(ty), ty.id());
        assert_eq!(GgmlType::from_name(ty.name()), Some(ty));
        assert!(ty.block_size() > 0 && ty.type_size() > 0);
        assert_eq!(ty.row_bytes(ty.block_size()).unwrap(), ty.type_size());
    }
    assert_eq!(
        GgmlType::from_name("Q4_K"),
        None,
        "ggml's names are case-sensitive"
    );
}

/// Every entry point refuses types it cannot handle with UnsupportedType.
#[test]
fn unsupported_types_are_errors_not_panics() {
    for ty in GgmlType::ALL.into_iter().filter(|t| !t.is_dequantizable()) {
        let n = ty.block_size();
        let src = vec![0u8; ty.type_size()];
        let mut dst = vec![0.0f32; n];
        let is_unsupported = |r: Result<(), Error>| matches!(r, Err(Error::UnsupportedType { .. }));
        assert!(is_unsupported(dequantize_row(ty, &src, &mut dst)), "{ty}");
        assert!(is_unsupported(dequantize_into(ty, &src, &mut dst)), "{ty}");
        assert!(is_unsupported(dequantize(ty, &src, n).map(drop)), "{ty}");
        assert!(
            is_unsupported(dequantize_to_f16(ty, &src, n).map(drop)),
            "{ty}"
        );
        assert!(is_unsupported(get_row(ty, &src, n, 0).map(drop)), "{ty}");
        assert!(
            is_unsupported(get_rows(ty, &src, n, &[0]).map(drop)),
            "{ty}"
        );
        let mut out = vec![0u8; ty.type_size()];
        assert!(is_unsupported(quantize_row(ty, &dst, &mut out)), "{ty}");
        assert!(is_unsupported(quantize(ty, &dst).map(drop)), "{ty}");
        match dequantize_row(ty, &src, &mut dst) {
            Err(e) => assert!(e.to_string().contains(ty.name()), "{e}"),
            Ok(()) => unreachable!(),
        }
    }
}

/// Short, long or partial-block buffers and absurd counts are errors.
#[test]
fn wrong_sizes_are_errors() {
    for ty in supported() {
        let (bs, ts) = (ty.block_size(), ty.type_size());
        // Two blocks' worth, described correctly: fine.
        let src = vec![0u8; 2 * ts];
        let mut dst = vec![0.0f32; 2 * bs];
        dequantize_row(ty, &src, &mut dst).unwrap();

        // Source one byte short / long.
        for len in [2 * ts - 1, 2 * ts + 1, 0] {
            match dequantize_row(ty, &src_of(len), &mut dst) {
                Err(Error::DataSize {
                    expected, actual, ..
                }) => assert_eq!((expected, actual), (2 * ts, len), "{ty}"),
                other => panic!("{ty}: {other:?}"),
            }
        }
        // Element count not a whole number of blocks.
        if bs > 1 {
            let mut odd = vec![0.0f32; 2 * bs - 1];
            assert!(
                matches!(dequantize_row(ty, &src, &mut odd), Err(Error::Shape { .. })),
                "{ty}"
            );
            assert!(
                matches!(quantize(ty, &odd), Err(Error::Shape { .. })),
                "{ty}"
            );
            assert!(dequantize(ty, &src, 2 * bs - 1).is_err(), "{ty}");
        }
        // An absurd element count is an error before any allocation.
        assert!(dequantize(ty, &src, usize::MAX / bs * bs).is_err(), "{ty}");
        assert!(
            dequantize_to_f16(ty, &src, usize::MAX / bs * bs).is_err(),
            "{ty}"
        );

        // Quantize into a buffer of the wrong size.
        let x = vec![0.5f32; 2 * bs];
        let mut out = vec![0u8; 2 * ts + 1];
        assert!(
            matches!(quantize_row(ty, &x, &mut out), Err(Error::DataSize { .. })),
            "{ty}"
        );
    }
}

/// A zeroed byte buffer of `len` bytes.
fn src_of(len: usize) -> Vec<u8> {
    vec![0u8; len]
}

/// get_row / get_rows / row_bytes_of: right rows, checked indices and sizes.
#[test]
fn row_access_checks_its_indices() {
    let ty = GgmlType::Q8_0;
    let row_len = 64;
    let x: Vec<f32> = (0..3 * row_len).map(|i| i as f32 - 90.0).collect();
    let data = quantize(ty, &x).unwrap();
    let all = dequantize(ty, &data, x.len()).unwrap();
    for r in 0..3 {
        assert_eq!(
            get_row(ty, &data, row_len, r).unwrap(),
            &all[r * row_len..(r + 1) * row_len]
        );
        let mut dst = vec![0.0; row_len];
        get_row_into(ty, &data, row_len, r, &mut dst).unwrap();
        assert_eq!(dst, &all[r * row_len..(r + 1) * row_len]);
        assert_eq!(row_bytes_of(ty, &data, row_len, r).unwrap().len(), 68);
    }
    assert_eq!(tensor_rows(ty, &data, row_len).unwrap(), (68, 3));
    assert!(matches!(
        get_row(ty, &data, row_len, 3),
        Err(Error::Shape { .. })
    ));
    assert!(get_row(ty, &data, row_len, usize::MAX).is_err());
    assert!(get_rows(ty, &data, row_len, &[0, 2, 3]).is_err());
    assert!(get_row(ty, &data, 0, 0).is_err(), "rows of zero elements");
    assert!(
        get_row(ty, &data, 48, 0).is_err(),
        "not a whole number of blocks"
    );
    assert!(
        get_row(ty, &data[..100], row_len, 0).is_err(),
        "not whole rows"
    );
    assert!(
        get_row(ty, &data, usize::MAX / 32 * 32, 0).is_err(),
        "overflow"
    );
    let mut short = vec![0.0; row_len - 1];
    assert!(get_row_into(ty, &data, row_len, 0, &mut short).is_err());
    let rows = get_rows(ty, &data, row_len, &[2, 0, 2]).unwrap();
    assert_eq!(&rows[..row_len], &all[2 * row_len..]);
    assert_eq!(&rows[row_len..2 * row_len], &all[..row_len]);
    assert!(get_rows(ty, &data, row_len, &[]).unwrap().is_empty());
}

/// All 65536 f16 values convert like `half` (NaN aside) and round-trip.
#[test]
fn f16_to_f32_agrees_with_half_for_every_value() {
    for h in 0..=u16::MAX {
        let ours = f16_to_f32(h);
        let theirs = half::f16::from_bits(h).to_f32();
        if theirs.is_nan() {
            assert!(ours.is_nan(), "{h:#06x}");
            assert_eq!(ours.is_sign_negative(), theirs.is_sign_negative());
        } else {
            assert_eq!(ours.to_bits(), theirs.to_bits(), "{h:#06x}");
        }
        // Every f16 survives the round trip (NaNs become ggml's canonical one).
        if !theirs.is_nan() {
            assert_eq!(f32_to_f16(ours), h, "{h:#06x}");
        } else {
            assert_eq!(f32_to_f16(ours) & 0x7FFF, 0x7E00);
        }
    }
}

/// Overflow, ties to even, subnormals and NaN in the f16/bf16 conversions.
#[test]
fn f32_to_f16_edge_cases() {
    assert_eq!(f32_to_f16(65504.0), 0x7BFF);
    assert_eq!(f32_to_f16(65519.996), 0x7BFF);
    assert_eq!(
        f32_to_f16(65520.0),
        0x7C00,
        "ties to even round up to infinity"
    );
    assert_eq!(f32_to_f16(f32::INFINITY), 0x7C00);
    assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xFC00);
    assert_eq!(f32_to_f16(f32::NAN), 0x7E00);
    assert_eq!(f32_to_f16(-f32::NAN), 0xFE00);
    assert_eq!(f32_to_f16(2f32.powi(-24)), 0x0001, "smallest subnormal");
    assert_eq!(f32_to_f16(2f32.powi(-25)), 0x0000, "tie to even: zero");
    assert_eq!(f32_to_f16(3.0 * 2f32.powi(-25)), 0x0002, "tie to even: two");
    assert_eq!(f32_to_f16(-0.0), 0x8000);
    assert_eq!(
        f32_to_bf16(f32::from_bits(0x7F80_0001)),
        0x7FC0,
        "NaN made quiet"
    );
    assert_eq!(
        f32_to_bf16(f32::from_bits(0x3F80_8000)),
        0x3F80,
        "tie to even"
    );
    assert_eq!(
        f32_to_bf16(f32::from_bits(0x3F81_8000)),
        0x3F82,
        "tie to even"
    );
    assert_eq!(f32_to_bf16(f32::MAX), 0x7F80, "rounds to infinity");
}

proptest! {
    /// Any u32 either maps to the variant with that id or to None.
    #[test]
    fn from_id_and_id_roundtrip(id in any::<u32>()) {
        match GgmlType::from_id(id) {
            Some(ty) => prop_assert_eq!(ty.id(), id),
            None => prop_assert!(GgmlType::ALL.iter().all(|t| t.id() != id)),
        }
    }

    /// row_bytes equals exact 128-bit arithmetic, or errors when that does not fit.
    #[test]
    fn row_bytes_is_checked(k in any::<u64>(), extra in 0usize..256, ti in 0usize..GgmlType::ALL.len()) {
        let ty = GgmlType::ALL[ti];
        let (bs, ts) = (ty.block_size() as u128, ty.type_size() as u128);
        let n = (u128::from(k) * bs + extra as u128 % bs) as usize;
        let n128 = n as u128;
        let expected = if n128 % bs != 0 {
            None
        } else {
            usize::try_from(n128 / bs * ts).ok()
        };
        prop_assert_eq!(ty.row_bytes(n).ok(), expected);
    }

    /// ggml's f16/bf16 rounding equals `half`'s for every non-NaN f32.
    #[test]
    fn f32_to_f16_agrees_with_half(bits in any::<u32>()) {
        let x = f32::from_bits(bits);
        prop_assume!(!x.is_nan());
        prop_assert_eq!(f32_to_f16(x), half::f16::from_f32(x).to_bits());
        prop_assert_eq!(f32_to_bf16(x), half::bf16::from_f32(x).to_bits());
        prop_assert_eq!(bf16_to_f32(f32_to_bf16(x)).to_bits() >> 16, u32::from(f32_to_bf16(x)));
    }

    /// F32 is exact; F16 and BF16 lose at most half an ulp.
    #[test]
    fn float_types_roundtrip_within_their_precision(x in prop::collection::vec(-6.0e4f32..6.0e4, 1..64)) {
        for (ty, rel, abs) in [
            (GgmlType::F32, 0.0, 0.0),
            (GgmlType::F16, 2f32.powi(-11), 2f32.powi(-25)),
            (GgmlType::BF16, 2f32.powi(-8), 0.0),
        ] {
            let y = dequantize(ty, &quantize(ty, &x).unwrap(), x.len()).unwrap();
            for (a, b) in x.iter().zip(&y) {
                prop_assert!((a - b).abs() <= a.abs() * rel + abs, "{} {} -> {}", ty, a, b);
            }
        }
    }

    /// quantize → dequantize stays within each block type's error bound.
    #[test]
    fn quantization_error_is_bounded(
        ti in 0usize..BLOCK_TYPES.len(),
        blocks in 1usize..3,
        seed in prop::collection::vec(-1.0f32..1.0, 512),
        scale_exp in 0.0f32..3.0,
        offset in -2.0f32..2.0,
        skew in prop::bool::ANY,
    ) {
        // Scales from 1 to 1000 keep every f16 super-scale a normal number, so
        // the bounds are relative; at smaller magnitudes the scales of some
        // types become f16 subnormals and the error gains an absolute part
        // (the same in ggml).
        let ty = BLOCK_TYPES[ti];
        let bs = ty.block_size();
        let scale = 10f32.powf(scale_exp);
        let x: Vec<f32> = seed
            .iter()
            .cycle()
            .take(blocks * bs)
            .enumerate()
            .map(|(i, &u)| {
                let v = if skew { u * u * u } else { u };
                // Vary the offset per block so some blocks are one-signed.
                (v + offset * ((i / bs) % 2) as f32) * scale
            })
            .collect();
        let y = dequantize(ty, &quantize(ty, &x).unwrap(), x.len()).unwrap();
        for (xb, yb) in x.chunks(bs).zip(y.chunks(bs)) {
            let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let (mn, mx) = xb.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let range = mx - mn;
            // Derived for the legacy types (rounding step, the clipped +8 / +16
            // of the symmetric ones, f16 rounding of scale and min with a 2x
            // margin); measured with a 1.5-2x margin for the K types. A layout or
            // packing mistake moves weights by a good part of the range.
            let bound = match ty {
                GgmlType::Q8_0 => amax * (1.0 / 254.0 + 2f32.powi(-10)),
                GgmlType::Q4_0 => amax * (1.0 / 8.0 + 2f32.powi(-9)),
                GgmlType::Q5_0 => amax * (1.0 / 16.0 + 2f32.powi(-9)),
                GgmlType::Q4_1 => range / 30.0 + (range + amax) * 2f32.powi(-10),
                GgmlType::Q5_1 => range / 62.0 + (range + amax) * 2f32.powi(-10),
                GgmlType::Q2_K => range * 0.6,
                GgmlType::Q3_K => amax * 0.4,
                GgmlType::Q4_K => range * 0.12,
                GgmlType::Q5_K => range * 0.07,
                GgmlType::Q6_K => amax * 0.04,
                _ => unreachable!(),
            };
            for (a, b) in xb.iter().zip(yb) {
                prop_assert!((a - b).abs() <= bound, "{}: {} -> {} (bound {})", ty, a, b, bound);
            }
        }
    }

    /// NaN, infinities and extremes in the input give blocks, not panics.
    #[test]
    fn non_finite_input_never_panics(
        ti in 0usize..BLOCK_TYPES.len(),
        special in prop::sample::select(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -f32::MAX, 1e-45]),
        at in 0usize..256,
    ) {
        let ty = BLOCK_TYPES[ti];
        let mut x = vec![0.25f32; ty.block_size()];
        x[at % ty.block_size()] = special;
        let q = quantize(ty, &x).unwrap();
        prop_assert_eq!(q.len(), ty.type_size());
        prop_assert!(dequantize(ty, &q, x.len()).is_ok());
    }

    /// Arbitrary bytes (NaN scales included) dequantize without panicking.
    #[test]
    fn random_bytes_dequantize_without_panicking(
        ti in 0usize..BLOCK_TYPES.len(),
        bytes in prop::collection::vec(any::<u8>(), 420),
    ) {
        let ty = BLOCK_TYPES[ti];
        let n = bytes.len() / ty.type_size();
        let src = &bytes[..n * ty.type_size()];
        let y = dequantize(ty, src, n * ty.block_size()).unwrap();
        prop_assert_eq!(y.len(), n * ty.block_size());
    }
}

/// All-zero input comes back as exact zeros in every type.
#[test]
fn zeros_quantize_to_zeros() {
    for ty in supported() {
        let x = vec![0.0f32; 2 * ty.block_size()];
        let y = dequantize(ty, &quantize(ty, &x).unwrap(), x.len()).unwrap();
        assert!(y.iter().all(|&v| v == 0.0), "{ty}: {y:?}");
    }
}

/// The rayon paths give the same bytes and bits as the serial ones.
#[test]
fn parallel_paths_equal_serial_ones() {
    // More than two chunks, and a tail that is not a whole chunk.
    for ty in [GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::F16] {
        let n = 3 * (1 << 16) + 7 * ty.block_size().max(32);
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0)
            .collect();
        let q = quantize(ty, &x).unwrap();
        let mut q_serial = vec![0u8; q.len()];
        quantize_row(ty, &x, &mut q_serial).unwrap();
        assert_eq!(q, q_serial, "{ty}");
        let y = dequantize(ty, &q, n).unwrap();
        let mut y_serial = vec![0.0f32; n];
        dequantize_row(ty, &q, &mut y_serial).unwrap();
        assert_eq!(y, y_serial, "{ty}");
        let h = dequantize_to_f16(ty, &q, n).unwrap();
        assert!(
            h.iter().zip(&y).all(|(h, y)| h.to_bits() == f32_to_f16(*y)),
            "{ty}"
        );
        let rows: Vec<usize> = (0..n / 1024).rev().collect();
        let whole_rows = &q[..ty.row_bytes(rows.len() * 1024).unwrap()];
        let g = get_rows(ty, whole_rows, 1024, &rows).unwrap();
        for (k, &r) in rows.iter().enumerate() {
            assert_eq!(&g[k * 1024..(k + 1) * 1024], &y[r * 1024..(r + 1) * 1024]);
        }
    }
}

/// The block structs are the ggml bytes; their helpers agree with the slice API.
#[test]
fn block_structs_view_the_raw_bytes() {
    // The structs are the bytes: quantize via the struct, read back via the slice API.
    let x: [f32; QK_K] = std::array::from_fn(|i| (i as f32 * 0.37).sin() * 3.0);
    let b = BlockQ4K::quantize(&x);
    let bytes = bytemuck::bytes_of(&b);
    assert_eq!(bytes.len(), GgmlType::Q4_K.type_size());
    assert_eq!(&bytes[..2], &b.d.to_bits().to_le_bytes());
    let mut y = [0.0f32; QK_K];
    b.dequantize(&mut y);
    assert_eq!(dequantize(GgmlType::Q4_K, bytes, QK_K).unwrap(), y);
    assert_eq!(<BlockQ4K as QuantBlock>::TYPE, GgmlType::Q4_K);
    assert_eq!(<BlockQ6K as QuantBlock>::ELEMENTS, 256);

    let b3 = BlockQ3K::quantize(&x);
    let sc = b3.scales();
    // Re-derive one scale by ggml's formula for group 13.
    let low = b3.scales[13 - 8] >> 4;
    let high = (b3.scales[8 + 13 % 4] >> (2 * (13 / 4))) & 3;
    assert_eq!(sc[13], low | (high << 4));
    for j in 0..8 {
        let (s, m) = blocks::scale_min_k4(j, &b.scales);
        assert!(s < 64 && m < 64);
    }
}
