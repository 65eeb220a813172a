//! CPU reference: rotary position embedding.

use proptest::prelude::*;
use rocmforge_kernels::cpu::{rope, rope_inplace, RopeMode, RopeParams};
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

/// Independent reference: angles as ggml defines them (f32 `theta *= theta_scale` chain),
/// rotation in f64, explicit index arithmetic for both layouts.
fn rope_ref(x: &[f32], pos: &[i32], p: &RopeParams<'_>) -> Vec<f64> {
    let mut out: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let theta_scale = p.freq_base.powf(-2.0 / p.n_rot as f32);
    for (t, &ps) in pos.iter().enumerate() {
        for h in 0..p.n_heads {
            let base = (t * p.n_heads + h) * p.head_dim;
            let mut theta = ps as f32;
            for i in 0..p.n_rot / 2 {
                let ff = p.freq_factors.map_or(1.0, |f| f[i]);
                let angle = f64::from(p.freq_scale * (theta / ff));
                let (a, b) = match p.mode {
                    RopeMode::Normal => (base + 2 * i, base + 2 * i + 1),
                    RopeMode::Neox => (base + i, base + i + p.n_rot / 2),
                };
                let (x0, x1) = (f64::from(x[a]), f64::from(x[b]));
                out[a] = x0 * angle.cos() - x1 * angle.sin();
                out[b] = x0 * angle.sin() + x1 * angle.cos();
                theta *= theta_scale;
            }
        }
    }
    out
}

#[test]
fn normal_layout_hand_computed() {
    // head_dim 4, base 10000: theta_scale = 10000^(-2/4) = 0.01.
    // Position 1: pair 0 angle 1 rad, pair 1 angle 0.01 rad.
    let p = RopeParams::new(1, 4, RopeMode::Normal, 10_000.0);
    let mut x = [1.0f32, 0.0, 1.0, 0.0];
    rope_inplace(&mut x, &[1], &p).unwrap();
    let want = [1f64.cos(), 1f64.sin(), 0.01f64.cos(), 0.01f64.sin()];
    for (g, w) in x.iter().zip(want) {
        assert!((f64::from(*g) - w).abs() < 1e-6, "{x:?}");
    }
    // Rotating (0, 1) by 1 rad gives (−sin 1, cos 1).
    let mut y = [0.0f32, 1.0, 0.0, 0.0];
    rope_inplace(&mut y, &[1], &p).unwrap();
    assert!((f64::from(y[0]) + 1f64.sin()).abs() < 1e-6);
    assert!((f64::from(y[1]) - 1f64.cos()).abs() < 1e-6);
}

#[test]
fn neox_layout_hand_computed() {
    // NeoX pairs (0, 2) and (1, 3), angles 1 and 0.01 at position 1.
    let p = RopeParams::new(1, 4, RopeMode::Neox, 10_000.0);
    let mut x = [1.0f32, 1.0, 0.0, 0.0];
    rope_inplace(&mut x, &[1], &p).unwrap();
    let want = [1f64.cos(), 0.01f64.cos(), 1f64.sin(), 0.01f64.sin()];
    for (g, w) in x.iter().zip(want) {
        assert!((f64::from(*g) - w).abs() < 1e-6, "{x:?}");
    }
}

#[test]
fn position_zero_is_the_identity_and_two_heads_rotate_alike() {
    let mut rng = Rng(1);
    let x = rng.vec(2 * 3 * 8, -1.0, 1.0);
    for mode in [RopeMode::Normal, RopeMode::Neox] {
        let p = RopeParams::new(3, 8, mode, 10_000.0);
        let mut y = x.clone();
        rope_inplace(&mut y, &[0, 0], &p).unwrap();
        assert_eq!(x, y);
        // The same head vector in two heads of one token rotates identically.
        let mut z = [x[..8].to_vec(), x[..8].to_vec(), x[..8].to_vec()].concat();
        rope_inplace(&mut z, &[17], &p).unwrap();
        assert_eq!(z[..8], z[8..16]);
        assert_eq!(z[..8], z[16..]);
    }
}

#[test]
fn partial_rotary_leaves_the_tail_unchanged() {
    let mut rng = Rng(2);
    let x = rng.vec(2 * 10, -1.0, 1.0);
    for mode in [RopeMode::Normal, RopeMode::Neox] {
        let p = RopeParams::new(2, 10, mode, 10_000.0).with_n_rot(4);
        let mut y = x.clone();
        rope_inplace(&mut y, &[5], &p).unwrap();
        for h in 0..2 {
            assert_eq!(y[h * 10 + 4..h * 10 + 10], x[h * 10 + 4..h * 10 + 10]);
            assert_ne!(y[h * 10..h * 10 + 4], x[h * 10..h * 10 + 4]);
        }
        // theta_scale uses n_rot, not head_dim: pair 1 of 2 has angle 5·base^(-1/2).
        let want = rope_ref(&x, &[5], &p);
        for (g, w) in y.iter().zip(&want) {
            assert!((f64::from(*g) - w).abs() < 1e-5);
        }
    }
}

#[test]
fn frequency_factors_divide_the_angle() {
    // Llama 3 style: theta_i / factor_i. With head_dim 4 and base 10000 at position 3,
    // pair 0 angle 3/2, pair 1 angle 0.03/8.
    let factors = [2.0f32, 8.0];
    let p = RopeParams::new(1, 4, RopeMode::Normal, 10_000.0).with_freq_factors(&factors);
    let mut x = [1.0f32, 0.0, 1.0, 0.0];
    rope_inplace(&mut x, &[3], &p).unwrap();
    let (a0, a1) = (1.5f64, 0.03f64 / 8.0);
    let want = [a0.cos(), a0.sin(), a1.cos(), a1.sin()];
    for (g, w) in x.iter().zip(want) {
        assert!((f64::from(*g) - w).abs() < 1e-6, "{x:?}");
    }

    // freq_scale multiplies the angle (linear scaling): scale 0.5 at position 6 = position 3.
    let q = RopeParams::new(1, 4, RopeMode::Neox, 10_000.0).with_freq_scale(0.5);
    let mut y = [0.3f32, -0.2, 0.7, 0.1];
    let mut z = y;
    rope_inplace(&mut y, &[6], &q).unwrap();
    rope_inplace(
        &mut z,
        &[3],
        &RopeParams::new(1, 4, RopeMode::Neox, 10_000.0),
    )
    .unwrap();
    for (a, b) in y.iter().zip(&z) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn scores_depend_only_on_relative_position() {
    // RoPE's defining property: <rope(q, m), rope(k, n)> is a function of m − n.
    let mut rng = Rng(3);
    let d = 64;
    let q = rng.vec(d, -1.0, 1.0);
    let k = rng.vec(d, -1.0, 1.0);
    for mode in [RopeMode::Normal, RopeMode::Neox] {
        let p = RopeParams::new(1, d, mode, 10_000.0);
        let dot_at = |m: i32, n: i32| {
            let (mut qq, mut kk) = (q.clone(), k.clone());
            rope_inplace(&mut qq, &[m], &p).unwrap();
            rope_inplace(&mut kk, &[n], &p).unwrap();
            qq.iter()
                .zip(&kk)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
        };
        let base = dot_at(7, 3);
        assert!((dot_at(104, 100) - base).abs() < 1e-3);
        assert!((dot_at(4, 0) - base).abs() < 1e-4);
    }
}

#[test]
fn out_of_place_equals_in_place_and_parallel_equals_per_token() {
    // 300 tokens × 4 heads × 64 dims crosses the parallel threshold.
    let (t, h, d) = (300, 4, 64);
    let mut rng = Rng(4);
    let x = rng.vec(t * h * d, -1.0, 1.0);
    let pos: Vec<i32> = (0..t as i32).map(|i| i * 3 + 1).collect();
    let p = RopeParams::new(h, d, RopeMode::Neox, 500_000.0);
    let mut out = vec![0.0f32; x.len()];
    rope(&x, &pos, &p, &mut out).unwrap();
    let mut inplace = x.clone();
    rope_inplace(&mut inplace, &pos, &p).unwrap();
    assert_eq!(out, inplace);
    for (i, &ps) in pos.iter().enumerate() {
        let mut one = x[i * h * d..][..h * d].to_vec();
        rope_inplace(&mut one, &[ps], &p).unwrap();
        assert_eq!(&out[i * h * d..][..h * d], &one[..]);
    }
}

#[test]
fn invalid_parameters_are_errors() {
    let shape = |r: rocmforge_kernels::Result<()>| matches!(r, Err(Error::Shape { .. }));
    let mut x = vec![0.5f32; 2 * 8];
    let base = RopeParams::new(2, 8, RopeMode::Normal, 10_000.0);
    assert!(shape(rope_inplace(&mut x, &[0, 1], &base))); // 2 tokens need 32 values
    assert!(shape(rope_inplace(&mut x, &[0], &base.with_n_rot(3))));
    assert!(shape(rope_inplace(&mut x, &[0], &base.with_n_rot(10))));
    assert!(shape(rope_inplace(
        &mut x,
        &[0],
        &RopeParams {
            freq_base: 0.0,
            ..base
        }
    )));
    assert!(shape(rope_inplace(
        &mut x,
        &[0],
        &RopeParams {
            freq_base: f32::NAN,
            ..base
        }
    )));
    assert!(shape(rope_inplace(
        &mut x,
        &[0],
        &base.with_freq_scale(f32::INFINITY)
    )));
    assert!(shape(rope_inplace(
        &mut x,
        &[0],
        &base.with_freq_factors(&[1.0; 3])
    )));
    assert!(shape(rope_inplace(
        &mut x,
        &[0],
        &base.with_freq_factors(&[1.0, 0.0, 1.0, 1.0])
    )));
    assert!(shape(rope_inplace(
        &mut x,
        &[0],
        &RopeParams { n_heads: 0, ..base }
    )));
    assert!(shape(rope_inplace(
        &mut x,
        &[0],
        &RopeParams {
            head_dim: 0,
            n_rot: 0,
            ..base
        }
    )));
    let mut out = vec![0.0f32; 15];
    assert!(shape(rope(&x, &[0], &base, &mut out)));
    assert!(x.iter().all(|&v| v == 0.5), "nothing written on error");
    // Valid: n_rot 0 rotates nothing; no tokens is fine.
    rope_inplace(&mut x, &[9], &base.with_n_rot(0)).unwrap();
    assert!(x.iter().all(|&v| v == 0.5));
    rope_inplace(&mut [], &[], &base).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random shapes, rotated widths, positions and frequency factors, both layouts, against
    /// the independent reference; rotations also preserve each pair's norm.
    #[test]
    fn matches_reference(
        n_tokens in 1usize..5,
        n_heads in 1usize..5,
        half_dim in 1usize..70,
        rot_frac in 0.0f64..=1.0,
        neox: bool,
        use_factors: bool,
        base in prop_oneof![Just(10_000.0f32), Just(500_000.0f32), Just(1_000_000.0f32)],
        seed: u64,
    ) {
        let head_dim = 2 * half_dim + usize::from(seed % 2 == 0); // odd head_dim too
        let n_rot = 2 * ((half_dim as f64 * rot_frac).round() as usize).max(1);
        let mut rng = Rng(seed);
        let x = rng.vec(n_tokens * n_heads * head_dim, -2.0, 2.0);
        let pos: Vec<i32> = (0..n_tokens).map(|_| (rng.next_u64() % 5000) as i32).collect();
        let factors = rng.vec(n_rot / 2, 0.5, 8.0);
        let mode = if neox { RopeMode::Neox } else { RopeMode::Normal };
        let mut p = RopeParams::new(n_heads, head_dim, mode, base).with_n_rot(n_rot);
        if use_factors {
            p = p.with_freq_factors(&factors);
        }
        let mut y = x.clone();
        rope_inplace(&mut y, &pos, &p).unwrap();
        let want = rope_ref(&x, &pos, &p);
        for (i, (&g, &w)) in y.iter().zip(&want).enumerate() {
            prop_assert!((f64::from(g) - w).abs() < 2e-6 * (1.0 + w.abs()), "element {}: {} vs {}", i, g, w);
        }
        let sq: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
        let sq_y: f64 = y.iter().map(|&v| f64::from(v).powi(2)).sum();
        prop_assert!((sq - sq_y).abs() < 1e-5 * (1.0 + sq));
    }
}
