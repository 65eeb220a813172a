//! CPU reference: row-wise softmax.

use proptest::prelude::*;
use rocmforge_kernels::cpu::{softmax, softmax_inplace};
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

/// Softmax in f64 of the inputs scaled in f32 (the scaled input is rounded to f32, as ggml
/// does, so the reference starts from the same numbers).
fn softmax_f64(row: &[f32], scale: f32) -> Vec<f64> {
    let s: Vec<f64> = row.iter().map(|&v| f64::from(v * scale)).collect();
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|&v| (v - m).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

#[test]
fn hand_computed() {
    let mut out = [0.0f32; 3];
    softmax(&[1.0, 2.0, 3.0], &mut out, 1, 3, 1.0).unwrap();
    let want = [0.090_030_57, 0.244_728_47, 0.665_240_96];
    for (g, w) in out.iter().zip(want) {
        assert!((g - w).abs() < 1e-7, "{out:?}");
    }
    // The scale multiplies the inputs: softmax(2·[0, 0.5]) = softmax([0, 1]).
    let mut a = [0.0f32; 2];
    let mut b = [0.0f32; 2];
    softmax(&[0.0, 0.5], &mut a, 1, 2, 2.0).unwrap();
    softmax(&[0.0, 1.0], &mut b, 1, 2, 1.0).unwrap();
    assert_eq!(a, b);
}

#[test]
fn stable_for_large_inputs_and_masks_with_neg_infinity() {
    let mut out = [0.0f32; 4];
    softmax(
        &[1000.0, 1000.0, -1000.0, f32::NEG_INFINITY],
        &mut out,
        1,
        4,
        1.0,
    )
    .unwrap();
    assert_eq!(out, [0.5, 0.5, 0.0, 0.0]);
    // A row of only -inf has no distribution: NaN, as ggml.
    let mut x = [f32::NEG_INFINITY; 2];
    softmax_inplace(&mut x, 1, 2, 1.0).unwrap();
    assert!(x.iter().all(|v| v.is_nan()));
}

#[test]
fn shape_errors() {
    let shape = |r: rocmforge_kernels::Result<()>| matches!(r, Err(Error::Shape { .. }));
    let x = [0.0f32; 6];
    let mut out = [0.0f32; 6];
    assert!(shape(softmax(&x, &mut out, 2, 0, 1.0)));
    assert!(shape(softmax(&x, &mut out, 3, 3, 1.0)));
    assert!(shape(softmax(&x, &mut out[..4], 2, 3, 1.0)));
    assert!(shape(softmax_inplace(&mut out, 4, 2, 1.0)));
    assert!(shape(softmax_inplace(&mut out, usize::MAX, 2, 1.0)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matches_f64_and_rows_sum_to_one(
        rows in 1usize..8,
        n in 1usize..2100,
        scale in prop_oneof![Just(1.0f32), 0.01f32..4.0],
        seed: u64,
    ) {
        let mut rng = Rng(seed);
        let x = rng.vec(rows * n, -20.0, 20.0);
        let mut out = vec![0.0f32; rows * n];
        softmax(&x, &mut out, rows, n, scale).unwrap();
        for r in 0..rows {
            let got = &out[r * n..][..n];
            let want = softmax_f64(&x[r * n..][..n], scale);
            for (&g, &w) in got.iter().zip(&want) {
                prop_assert!((f64::from(g) - w).abs() <= 1e-6 * w + 1e-9, "{} vs {}", g, w);
            }
            let sum: f64 = got.iter().map(|&v| f64::from(v)).sum();
            prop_assert!((sum - 1.0).abs() < 1e-5);
        }
        // In place gives the same bits.
        let mut y = x.clone();
        softmax_inplace(&mut y, rows, n, scale).unwrap();
        prop_assert_eq!(y, out);
    }
}
