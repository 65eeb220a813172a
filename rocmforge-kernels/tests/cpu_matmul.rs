//! CPU reference: weight matrices, matrix × vector, matrix × matrix, embedding lookup and
//! whole-tensor dequantization, for every weight type the quant module dequantizes.

use half::f16;
use proptest::prelude::*;
use rocmforge_kernels::cpu::{
    dequantize_f16, dequantize_f32, embedding, matmul, matvec, WeightMatrix,
};
use rocmforge_kernels::quant::{quantize, GgmlType};
use rocmforge_kernels::Error;

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi)).collect()
    }
}

/// Every type the CPU path supports (`GgmlType::is_dequantizable`).
fn weight_types() -> Vec<GgmlType> {
    GgmlType::ALL
        .iter()
        .copied()
        .filter(|t| t.is_dequantizable())
        .collect()
}

/// A random `rows × cols` matrix quantized to `ty` with ggml's reference quantizer.
fn random_weights(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    quantize(ty, &rng.vec(rows * cols, -1.0, 1.0)).unwrap()
}

/// `y[r] = Σ_c W[r, c] x[c]` in f64 over the dequantized matrix, summed in index order,
/// and `Σ_c |W[r, c] x[c]|` (the scale of the rounding error).
fn naive_matvec(w: &[f32], cols: usize, x: &[f32]) -> Vec<(f64, f64)> {
    w.chunks(cols)
        .map(|row| {
            row.iter().zip(x).fold((0.0, 0.0), |(s, a), (&wv, &xv)| {
                let p = f64::from(wv) * f64::from(xv);
                (s + p, a + p.abs())
            })
        })
        .collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn every_supported_type_is_covered() {
    // The list: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K,
    // and Q2_K, Q3_K.
    use GgmlType::*;
    let types = weight_types();
    for t in [
        F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
    ] {
        assert!(types.contains(&t), "{t} missing");
    }
}

#[test]
fn f32_matvec_hand_computed() {
    // W = [[1, 2, 3], [4, 5, 6]], x = [1, 0, -1] → y = [-2, -2]
    let bytes = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let w = WeightMatrix::new(GgmlType::F32, &bytes, 2, 3).unwrap();
    assert_eq!((w.rows(), w.cols(), w.row_bytes()), (2, 3, 12));
    let mut y = [0.0f32; 2];
    matvec(&w, &[1.0, 0.0, -1.0], &mut y).unwrap();
    assert_eq!(y, [-2.0, -2.0]);

    // Two tokens: X = [[1, 0, -1], [0.5, 0.5, 0.5]] → Y = [[-2, -2], [3, 7.5]]
    let mut yy = [0.0f32; 4];
    matmul(&w, &[1.0, 0.0, -1.0, 0.5, 0.5, 0.5], 2, &mut yy).unwrap();
    assert_eq!(yy, [-2.0, -2.0, 3.0, 7.5]);
}

#[test]
fn q8_0_and_q4_0_hand_computed_blocks() {
    // Q8_0 block (ggml block_q8_0): f16 d, then 32 × i8; W[c] = d · q[c].
    let mut b = f16::from_f32(0.5).to_le_bytes().to_vec();
    b.extend((0..32).map(|c| (c as i8 - 16) as u8));
    let w = WeightMatrix::new(GgmlType::Q8_0, &b, 1, 32).unwrap();
    let mut y = [0.0f32];
    matvec(&w, &[1.0; 32], &mut y).unwrap();
    // 0.5 · Σ (c − 16) = 0.5 · (496 − 512) = −8
    assert_eq!(y, [-8.0]);

    // Q4_0 block (ggml block_q4_0): f16 d, then 16 bytes; element j < 16 is the low nibble
    // of byte j, element j + 16 the high nibble; W = d · (nibble − 8).
    let mut b = f16::from_f32(2.0).to_le_bytes().to_vec();
    b.extend([0x98u8; 16]); // low nibble 8 → 0, high nibble 9 → 1
    let w = WeightMatrix::new(GgmlType::Q4_0, &b, 1, 32).unwrap();
    let x: Vec<f32> = (0..32).map(|c| c as f32).collect();
    matvec(&w, &x, &mut y).unwrap();
    // 2 · Σ_{c=16}^{31} c = 2 · 376
    assert_eq!(y, [752.0]);
    let mut row = [0.0f32; 32];
    w.dequantize_row(0, &mut row).unwrap();
    assert_eq!(&row[..16], &[0.0; 16]);
    assert_eq!(&row[16..], &[2.0; 16]);
}

#[test]
fn all_types_match_the_naive_product_and_matmul_equals_matvec() {
    let mut rng = Rng(11);
    for ty in weight_types() {
        let bs = ty.block_size();
        // Not multiples of 32/64/256 where the type allows it.
        let cols = if bs == 1 { 333 } else { 2 * bs };
        let rows = 77;
        let bytes = random_weights(ty, rows, cols, &mut rng);
        let w = WeightMatrix::new(ty, &bytes, rows, cols).unwrap();
        let mut dense = vec![0.0f32; rows * cols];
        dequantize_f32(&w, &mut dense).unwrap();

        let n_tokens = 5;
        let x = rng.vec(n_tokens * cols, -2.0, 2.0);
        let mut y = vec![0.0f32; n_tokens * rows];
        matmul(&w, &x, n_tokens, &mut y).unwrap();
        for t in 0..n_tokens {
            let xt = &x[t * cols..][..cols];
            let want = naive_matvec(&dense, cols, xt);
            let mut yt = vec![0.0f32; rows];
            matvec(&w, xt, &mut yt).unwrap();
            assert_eq!(
                &y[t * rows..][..rows],
                &yt[..],
                "{ty}: matmul token {t} ≠ matvec"
            );
            for (r, (&g, &(s, a))) in yt.iter().zip(&want).enumerate() {
                // f64 accumulation: only the final rounding to f32 (plus f64 noise).
                assert!(
                    (f64::from(g) - s).abs() <= 1e-7 * a.max(1e-30) + 6e-8 * s.abs(),
                    "{ty} row {r}: {g} vs {s}"
                );
            }
        }
    }
}

#[test]
fn weight_matrix_checks_sizes() {
    let bytes = vec![0u8; 2 * 34];
    assert!(WeightMatrix::new(GgmlType::Q8_0, &bytes, 2, 32).is_ok());
    assert!(matches!(
        WeightMatrix::new(GgmlType::Q8_0, &bytes[1..], 2, 32),
        Err(Error::DataSize {
            expected: 68,
            actual: 67,
            ..
        })
    ));
    assert!(WeightMatrix::new(GgmlType::Q8_0, &bytes, 1, 64).is_ok());
    // Not a whole number of blocks per row.
    assert!(matches!(
        WeightMatrix::new(GgmlType::Q8_0, &bytes, 2, 31),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        WeightMatrix::new(GgmlType::Q8_0, &[], 0, 32),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        WeightMatrix::new(GgmlType::F32, &[], 1, 0),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        WeightMatrix::new(GgmlType::F32, &[], usize::MAX, 4),
        Err(Error::Shape { .. })
    ));
    let w = WeightMatrix::new(GgmlType::Q8_0, &bytes, 2, 32).unwrap();
    let mut row = [0.0f32; 32];
    assert!(matches!(
        w.dequantize_row(2, &mut row),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        w.dequantize_row(0, &mut row[..31]),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn product_shape_errors_and_unsupported_types() {
    let bytes = f32_bytes(&[1.0; 6]);
    let w = WeightMatrix::new(GgmlType::F32, &bytes, 2, 3).unwrap();
    let shape = |r: rocmforge_kernels::Result<()>| matches!(r, Err(Error::Shape { .. }));
    let mut y = [7.0f32; 4];
    assert!(shape(matvec(&w, &[1.0; 2], &mut y[..2])));
    assert!(shape(matvec(&w, &[1.0; 3], &mut y[..3])));
    assert!(shape(matmul(&w, &[1.0; 5], 2, &mut y)));
    assert!(shape(matmul(&w, &[1.0; 6], 2, &mut y[..3])));
    assert!(shape(matmul(&w, &[1.0; 6], usize::MAX, &mut y)));
    assert_eq!(y, [7.0; 4], "nothing written on error");
    matmul(&w, &[], 0, &mut []).unwrap();

    // A type with no CPU dequantizer: the ops say so.
    let ty = GgmlType::ALL
        .iter()
        .copied()
        .find(|t| !t.is_dequantizable() && t.row_bytes(t.block_size()).is_ok())
        .unwrap();
    let raw = vec![0u8; ty.row_bytes(ty.block_size()).unwrap()];
    let w = WeightMatrix::new(ty, &raw, 1, ty.block_size()).unwrap();
    let x = vec![0.0f32; ty.block_size()];
    let unsupported =
        |r: rocmforge_kernels::Result<()>| matches!(r, Err(Error::UnsupportedType { .. }));
    assert!(unsupported(matvec(&w, &x, &mut [0.0])));
    let x2 = vec![0.0f32; 2 * ty.block_size()];
    assert!(unsupported(matmul(&w, &x2, 2, &mut [0.0; 2])));
    assert!(unsupported(embedding(&w, &[0], &mut x.clone())));
    assert!(unsupported(dequantize_f32(&w, &mut x.clone())));
}

#[test]
fn large_matrices_use_the_parallel_path_consistently() {
    // Bigger than one task; results identical to the dequantize-then-multiply definition
    // row by row.
    let (rows, cols) = (1031, 512);
    let mut rng = Rng(12);
    let bytes = random_weights(GgmlType::Q4_K, rows, cols, &mut rng);
    let w = WeightMatrix::new(GgmlType::Q4_K, &bytes, rows, cols).unwrap();
    let x = rng.vec(3 * cols, -1.0, 1.0);
    let mut y = vec![0.0f32; 3 * rows];
    matmul(&w, &x, 3, &mut y).unwrap();
    let mut row = vec![0.0f32; cols];
    let mut yt = vec![0.0f32; rows];
    for t in 0..3 {
        matvec(&w, &x[t * cols..][..cols], &mut yt).unwrap();
        assert_eq!(&y[t * rows..][..rows], &yt[..]);
    }
    // Spot-check a few rows against dequantize_row + naive dot.
    for r in [0, 1, 500, 1030] {
        w.dequantize_row(r, &mut row).unwrap();
        let s: f64 = row
            .iter()
            .zip(&x[..cols])
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        assert!((f64::from(y[r]) - s).abs() < 1e-5);
    }
}

#[test]
fn embedding_lookup() {
    // F32 table, 4 tokens × 3 dims.
    let table: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let bytes = f32_bytes(&table);
    let w = WeightMatrix::new(GgmlType::F32, &bytes, 4, 3).unwrap();
    let mut out = [0.0f32; 9];
    embedding(&w, &[3, 0, 3], &mut out).unwrap();
    assert_eq!(out, [9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 9.0, 10.0, 11.0]);

    // Out-of-range ids and wrong output lengths are errors; nothing is written.
    let mut out = [-1.0f32; 6];
    assert!(matches!(
        embedding(&w, &[1, 4], &mut out),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        embedding(&w, &[1], &mut out),
        Err(Error::Shape { .. })
    ));
    assert_eq!(out, [-1.0; 6]);
    embedding(&w, &[], &mut []).unwrap();

    // Quantized tables: each looked-up row equals the dequantized row.
    let mut rng = Rng(13);
    for ty in weight_types() {
        let (vocab, dim) = (
            50,
            if ty.block_size() == 1 {
                70
            } else {
                ty.block_size()
            },
        );
        let bytes = random_weights(ty, vocab, dim, &mut rng);
        let w = WeightMatrix::new(ty, &bytes, vocab, dim).unwrap();
        let ids: Vec<u32> = (0..600)
            .map(|_| (rng.next_u64() % vocab as u64) as u32)
            .collect();
        let mut out = vec![0.0f32; ids.len() * dim];
        embedding(&w, &ids, &mut out).unwrap();
        let mut row = vec![0.0f32; dim];
        for (i, &id) in ids.iter().enumerate() {
            w.dequantize_row(id as usize, &mut row).unwrap();
            assert_eq!(&out[i * dim..][..dim], &row[..], "{ty} id {id}");
        }
    }
}

#[test]
fn dequantize_whole_matrices() {
    let mut rng = Rng(14);
    for ty in weight_types() {
        let (rows, cols) = (9, 2 * ty.block_size().max(16));
        let bytes = random_weights(ty, rows, cols, &mut rng);
        let w = WeightMatrix::new(ty, &bytes, rows, cols).unwrap();
        let mut f = vec![0.0f32; rows * cols];
        dequantize_f32(&w, &mut f).unwrap();
        let mut h = vec![f16::ZERO; rows * cols];
        dequantize_f16(&w, &mut h).unwrap();
        let mut row = vec![0.0f32; cols];
        for r in 0..rows {
            w.dequantize_row(r, &mut row).unwrap();
            assert_eq!(&f[r * cols..][..cols], &row[..]);
        }
        for (a, b) in f.iter().zip(&h) {
            assert_eq!(b.to_bits(), f16::from_f32(*a).to_bits());
        }
        assert!(matches!(
            dequantize_f32(&w, &mut f[1..]),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            dequantize_f16(&w, &mut h[1..]),
            Err(Error::Shape { .. })
        ));
    }
    // F16 weights come back bit for bit.
    let src: Vec<f16> = rng
        .vec(64, -3.0, 3.0)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    let bytes: Vec<u8> = src.iter().flat_map(|h| h.to_le_bytes()).collect();
    let w = WeightMatrix::new(GgmlType::F16, &bytes, 2, 32).unwrap();
    let mut h = vec![f16::ZERO; 64];
    dequantize_f16(&w, &mut h).unwrap();
    assert_eq!(h, src);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Random shapes: rows of any count, columns any whole number of blocks (any count for
    /// F32/F16/BF16, so not multiples of 32/64/256), any token count.
    #[test]
    fn random_shapes_match_naive(
        type_index in 0usize..13,
        rows in 1usize..90,
        blocks in 1usize..4,
        odd_cols in 1usize..300,
        n_tokens in 1usize..4,
        seed: u64,
    ) {
        let types = weight_types();
        let ty = types[type_index % types.len()];
        let cols = if ty.block_size() == 1 { odd_cols } else { blocks * ty.block_size() };
        let mut rng = Rng(seed);
        let bytes = random_weights(ty, rows, cols, &mut rng);
        let w = WeightMatrix::new(ty, &bytes, rows, cols).unwrap();
        let mut dense = vec![0.0f32; rows * cols];
        dequantize_f32(&w, &mut dense).unwrap();
        let x = rng.vec(n_tokens * cols, -3.0, 3.0);
        let mut y = vec![0.0f32; n_tokens * rows];
        matmul(&w, &x, n_tokens, &mut y).unwrap();
        for t in 0..n_tokens {
            let want = naive_matvec(&dense, cols, &x[t * cols..][..cols]);
            for (&g, &(s, a)) in y[t * rows..][..rows].iter().zip(&want) {
                prop_assert!((f64::from(g) - s).abs() <= 1e-7 * a.max(1e-30) + 6e-8 * s.abs());
            }
        }
    }
}
