//! CPU reference: RMSNorm and LayerNorm.

use proptest::prelude::*;
use rocmforge_kernels::cpu::{layer_norm, rms_norm};
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

fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w}"
        );
    }
}

/// RMSNorm in f64: x / sqrt(mean(x²) + eps) · w.
fn rms_norm_f64(x: &[f32], w: &[f32], n: usize, eps: f32) -> Vec<f64> {
    x.chunks(n)
        .flat_map(|row| {
            let ms = row
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                / n as f64;
            let s = 1.0 / (ms + f64::from(eps)).sqrt();
            row.iter()
                .zip(w)
                .map(move |(&v, &wj)| f64::from(v) * s * f64::from(wj))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// LayerNorm in f64: (x − mean) / sqrt(var + eps) · w + b.
fn layer_norm_f64(x: &[f32], w: &[f32], b: Option<&[f32]>, n: usize, eps: f32) -> Vec<f64> {
    x.chunks(n)
        .flat_map(|row| {
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
            let var = row
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n as f64;
            let s = 1.0 / (var + f64::from(eps)).sqrt();
            (0..n)
                .map(|j| {
                    (f64::from(row[j]) - mean) * s * f64::from(w[j])
                        + b.map_or(0.0, |b| f64::from(b[j]))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn rms_norm_hand_computed() {
    // mean(x²) = (1 + 4 + 9 + 16) / 4 = 7.5; scale = 1/sqrt(7.5) = 0.36514837
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let w = [1.0f32, 0.5, 2.0, -1.0];
    let mut out = [0.0f32; 4];
    rms_norm(&x, &w, &mut out, 1, 4, 0.0).unwrap();
    let s = 0.365_148_37f64;
    assert_close(&out, &[s, 2.0 * s * 0.5, 3.0 * s * 2.0, -4.0 * s], 1e-6);
}

#[test]
fn rms_norm_eps_goes_inside_the_square_root() {
    // mean(x²) = 1, eps = 3: 1/sqrt(1 + 3) = 0.5 exactly.
    let mut out = [0.0f32; 2];
    rms_norm(&[1.0, -1.0], &[1.0, 1.0], &mut out, 1, 2, 3.0).unwrap();
    assert_eq!(out, [0.5, -0.5]);
    // An all-zero row stays zero (eps keeps the scale finite).
    rms_norm(&[0.0, 0.0], &[1.0, 1.0], &mut out, 1, 2, 1e-6).unwrap();
    assert_eq!(out, [0.0, 0.0]);
}

#[test]
fn layer_norm_hand_computed() {
    // mean 2.5, variance 1.25, scale 1/sqrt(1.25) = 0.89442719
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let w = [1.0f32, 1.0, 2.0, 1.0];
    let b = [0.0f32, 1.0, 0.0, -1.0];
    let mut out = [0.0f32; 4];
    layer_norm(&x, &w, Some(&b), &mut out, 1, 4, 0.0).unwrap();
    let s = 0.894_427_19f64;
    assert_close(
        &out,
        &[-1.5 * s, -0.5 * s + 1.0, 0.5 * s * 2.0, 1.5 * s - 1.0],
        1e-6,
    );

    // eps inside the square root: variance 1 + eps 3 → scale 0.5 exactly.
    let mut o2 = [0.0f32; 2];
    layer_norm(&[0.0, 2.0], &[1.0, 1.0], None, &mut o2, 1, 2, 3.0).unwrap();
    assert_eq!(o2, [-0.5, 0.5]);
}

#[test]
fn layer_norm_is_accurate_with_a_large_offset() {
    // The centred (two-pass) variance keeps precision when |mean| ≫ spread.
    let mut rng = Rng(7);
    let n = 1000;
    let x: Vec<f32> = (0..n).map(|_| 10_000.0 + rng.range(-1.0, 1.0)).collect();
    let w = vec![1.0f32; n];
    let mut out = vec![0.0f32; n];
    layer_norm(&x, &w, None, &mut out, 1, n, 1e-5).unwrap();
    assert_close(&out, &layer_norm_f64(&x, &w, None, n, 1e-5), 2e-3);
}

#[test]
fn shape_errors() {
    let x = [1.0f32; 6];
    let w = [1.0f32; 3];
    let mut out = [0.0f32; 6];
    let shape = |r: rocmforge_kernels::Result<()>| matches!(r, Err(Error::Shape { .. }));
    assert!(shape(rms_norm(&x, &w, &mut out, 2, 0, 1e-5)));
    assert!(shape(rms_norm(&x, &w, &mut out, 3, 3, 1e-5)));
    assert!(shape(rms_norm(&x, &w[..2], &mut out, 2, 3, 1e-5)));
    assert!(shape(rms_norm(&x, &w, &mut out[..5], 2, 3, 1e-5)));
    assert!(shape(rms_norm(&x, &w, &mut out, usize::MAX, 3, 1e-5)));
    assert!(shape(layer_norm(&x, &w, None, &mut out, 2, 0, 1e-5)));
    assert!(shape(layer_norm(
        &x,
        &w,
        Some(&w[..2]),
        &mut out,
        2,
        3,
        1e-5
    )));
    assert!(shape(layer_norm(&x, &w[..1], None, &mut out, 2, 3, 1e-5)));
    assert!(shape(layer_norm(&x[..5], &w, None, &mut out, 2, 3, 1e-5)));
    assert_eq!(out, [0.0; 6], "nothing written on error");
    // Zero rows is fine.
    rms_norm(&[], &w, &mut [], 0, 3, 1e-5).unwrap();
}

#[test]
fn rows_are_independent_and_parallel_results_are_identical() {
    // Enough elements to take the parallel path; each row must equal a one-row call.
    let (rows, n) = (40, 1000);
    let mut rng = Rng(99);
    let x = rng.vec(rows * n, -3.0, 3.0);
    let w = rng.vec(n, 0.5, 1.5);
    let b = rng.vec(n, -0.1, 0.1);
    let mut all = vec![0.0f32; rows * n];
    let mut one = vec![0.0f32; n];
    rms_norm(&x, &w, &mut all, rows, n, 1e-6).unwrap();
    for r in 0..rows {
        rms_norm(&x[r * n..][..n], &w, &mut one, 1, n, 1e-6).unwrap();
        assert_eq!(&all[r * n..][..n], &one[..]);
    }
    layer_norm(&x, &w, Some(&b), &mut all, rows, n, 1e-6).unwrap();
    for r in 0..rows {
        layer_norm(&x[r * n..][..n], &w, Some(&b), &mut one, 1, n, 1e-6).unwrap();
        assert_eq!(&all[r * n..][..n], &one[..]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random shapes (row lengths that are not multiples of 32/64/256 included) agree with
    /// the f64 formulas.
    #[test]
    fn norms_match_f64_reference(rows in 1usize..6, n in 1usize..700, seed: u64, eps in prop_oneof![Just(0.0f32), Just(1e-6f32), Just(1e-5f32), Just(0.5f32)]) {
        let mut rng = Rng(seed);
        let x = rng.vec(rows * n, -4.0, 4.0);
        let w = rng.vec(n, -2.0, 2.0);
        let b = rng.vec(n, -1.0, 1.0);
        let mut out = vec![0.0f32; rows * n];
        // eps = 0 with a single tiny row could divide by ~0; the data range avoids it.
        rms_norm(&x, &w, &mut out, rows, n, eps).unwrap();
        assert_close(&out, &rms_norm_f64(&x, &w, n, eps), 2e-6);
        if n > 1 {
            layer_norm(&x, &w, Some(&b), &mut out, rows, n, eps).unwrap();
            assert_close(&out, &layer_norm_f64(&x, &w, Some(&b), n, eps), 2e-5);
        }
    }
}
