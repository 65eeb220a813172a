//! CPU reference: element-wise ops and casts.

use half::{bf16, f16};
use proptest::prelude::*;
use rocmforge_kernels::cpu::*;
use rocmforge_kernels::Error;

/// SplitMix64: a tiny deterministic generator for test data.
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

fn is_shape_error(r: rocmforge_kernels::Result<()>) -> bool {
    matches!(r, Err(Error::Shape { .. }))
}

#[test]
fn hand_computed_binary_and_unary_ops() {
    let a = [1.0f32, -2.0, 3.5, 0.0];
    let b = [0.5f32, 4.0, -1.5, 2.0];
    let mut out = [0.0f32; 4];

    add(&a, &b, &mut out).unwrap();
    assert_eq!(out, [1.5, 2.0, 2.0, 2.0]);
    mul(&a, &b, &mut out).unwrap();
    assert_eq!(out, [0.5, -8.0, -5.25, 0.0]);
    scale(&a, -2.0, &mut out).unwrap();
    assert_eq!(out, [-2.0, 4.0, -7.0, -0.0]);

    let mut acc = a;
    add_inplace(&mut acc, &b).unwrap();
    assert_eq!(acc, [1.5, 2.0, 2.0, 2.0]);
    mul_inplace(&mut acc, &b).unwrap();
    assert_eq!(acc, [0.75, 8.0, -3.0, 4.0]);
    scale_inplace(&mut acc, 0.5);
    assert_eq!(acc, [0.375, 4.0, -1.5, 2.0]);
}

#[test]
fn silu_gelu_swiglu_known_values() {
    // silu(x) = x·sigmoid(x); values from the closed form in f64.
    let x = [-3.0f32, -1.0, 0.0, 0.5, 2.0];
    let mut out = [0.0f32; 5];
    silu(&x, &mut out).unwrap();
    for (&v, &o) in x.iter().zip(&out) {
        let v = f64::from(v);
        let want = v / (1.0 + (-v).exp());
        assert!(
            (f64::from(o) - want).abs() < 1e-6,
            "silu({v}) = {o}, want {want}"
        );
    }

    // tanh-approximation GELU, f64 closed form with ggml's constants.
    gelu(&x, &mut out).unwrap();
    for (&v, &o) in x.iter().zip(&out) {
        let v = f64::from(v);
        let want = 0.5
            * v
            * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * v * (1.0 + 0.044715 * v * v)).tanh());
        assert!(
            (f64::from(o) - want).abs() < 1e-6,
            "gelu({v}) = {o}, want {want}"
        );
    }
    // Hand values: gelu(2) = 1.954597694, gelu(-3) = -0.003637392.
    assert!((out[4] - 1.954_597_7).abs() < 1e-6);
    assert!((out[0] + 0.003_637_392).abs() < 1e-6);

    // swiglu = silu(gate)·up
    let gate = [1.0f32, -1.0, 0.0];
    let up = [2.0f32, 3.0, 5.0];
    let mut o3 = [0.0f32; 3];
    swiglu(&gate, &up, &mut o3).unwrap();
    assert!((o3[0] - 2.0 * 0.731_058_6).abs() < 1e-6);
    assert!((o3[1] - 3.0 * -0.268_941_42).abs() < 1e-6);
    assert_eq!(o3[2], 0.0);

    // In-place variants agree with out-of-place ones bit for bit.
    let mut xs = x;
    silu_inplace(&mut xs);
    silu(&x, &mut out).unwrap();
    assert_eq!(xs, out);
    let mut xg = x;
    gelu_inplace(&mut xg);
    gelu(&x, &mut out).unwrap();
    assert_eq!(xg, out);
}

#[test]
fn length_mismatches_are_errors() {
    let a = [1.0f32; 4];
    let b = [1.0f32; 3];
    let mut out4 = [0.0f32; 4];
    let mut out3 = [0.0f32; 3];
    assert!(is_shape_error(add(&a, &b, &mut out4)));
    assert!(is_shape_error(add(&a, &a, &mut out3)));
    assert!(is_shape_error(mul(&a, &b, &mut out4)));
    assert!(is_shape_error(swiglu(&a, &b, &mut out4)));
    assert!(is_shape_error(swiglu(&a, &a, &mut out3)));
    assert!(is_shape_error(scale(&a, 2.0, &mut out3)));
    assert!(is_shape_error(silu(&a, &mut out3)));
    assert!(is_shape_error(gelu(&a, &mut out3)));
    let mut acc = [0.0f32; 4];
    assert!(is_shape_error(add_inplace(&mut acc, &b)));
    assert!(is_shape_error(mul_inplace(&mut acc, &b)));
    // Nothing was written by the failed calls.
    assert_eq!(acc, [0.0; 4]);
    assert_eq!(out4, [0.0; 4]);

    let mut h = [f16::ZERO; 3];
    let mut bf = [bf16::ZERO; 3];
    let mut f = [0.0f32; 3];
    assert!(is_shape_error(f32_to_f16(&a, &mut h)));
    assert!(is_shape_error(f16_to_f32(&[f16::ONE; 4], &mut f)));
    assert!(is_shape_error(f32_to_bf16(&a, &mut bf)));
    assert!(is_shape_error(bf16_to_f32(&[bf16::ONE; 4], &mut f)));
    assert!(is_shape_error(f16_to_bf16(&[f16::ONE; 4], &mut bf)));
    assert!(is_shape_error(bf16_to_f16(&[bf16::ONE; 4], &mut h)));
}

#[test]
fn f16_casts_round_to_nearest_even() {
    let x = [
        1.0 + 1.0 / 2048.0,        // halfway between 1 and 1+2^-10: even → 1
        1.0 + 3.0 / 2048.0,        // halfway between 1+2^-10 (odd) and 1+2^-9 (even)
        1.0 + 1.0 / 2048.0 + 1e-7, // just above halfway → up
        65504.0,                   // f16 max
        65519.0,                   // below the rounding threshold → 65504
        65520.0,                   // halfway to the next binade → infinity
        -1e-8,                     // underflows to -0
        5.960_464_5e-8,            // 2^-24, the smallest subnormal
        f32::INFINITY,
    ];
    let want = [
        1.0,
        1.0 + 1.0 / 512.0,
        1.0 + 1.0 / 1024.0,
        65504.0,
        65504.0,
        f32::INFINITY,
        -0.0,
        5.960_464_5e-8,
        f32::INFINITY,
    ];
    let mut h = vec![f16::ZERO; x.len()];
    f32_to_f16(&x, &mut h).unwrap();
    let mut back = vec![0.0f32; x.len()];
    f16_to_f32(&h, &mut back).unwrap();
    assert_eq!(back, want);
    assert!(back[6].is_sign_negative());

    let mut hn = [f16::ZERO];
    f32_to_f16(&[f32::NAN], &mut hn).unwrap();
    assert!(hn[0].is_nan());
}

#[test]
fn every_f16_and_bf16_value_round_trips_through_f32() {
    let all: Vec<u16> = (0..=u16::MAX).collect();

    let h: Vec<f16> = all.iter().map(|&b| f16::from_bits(b)).collect();
    let mut f = vec![0.0f32; h.len()];
    f16_to_f32(&h, &mut f).unwrap();
    let mut h2 = vec![f16::ZERO; h.len()];
    f32_to_f16(&f, &mut h2).unwrap();
    for (a, b) in h.iter().zip(&h2) {
        if a.is_nan() {
            assert!(b.is_nan());
        } else {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    let bf: Vec<bf16> = all.iter().map(|&b| bf16::from_bits(b)).collect();
    bf16_to_f32(&bf, &mut f).unwrap();
    let mut bf2 = vec![bf16::ZERO; bf.len()];
    f32_to_bf16(&f, &mut bf2).unwrap();
    for (a, b) in bf.iter().zip(&bf2) {
        if a.is_nan() {
            assert!(b.is_nan());
        } else {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }
}

#[test]
fn bf16_casts_match_ggml() {
    // ggml_compute_fp32_to_bf16 on a few values, computed by hand from its formula.
    let cases: [(f32, u16); 6] = [
        (1.0, 0x3f80),
        (-2.5, 0xc020),
        (f32::from_bits(0x3f80_8000), 0x3f80), // tie, even stays
        (f32::from_bits(0x3f81_8000), 0x3f82), // tie, odd rounds up
        (f32::from_bits(0x3f80_8001), 0x3f81), // above tie
        (f32::MAX, 0x7f80),                    // rounds to infinity
    ];
    let src: Vec<f32> = cases.iter().map(|c| c.0).collect();
    let mut dst = vec![bf16::ZERO; src.len()];
    f32_to_bf16(&src, &mut dst).unwrap();
    for ((x, want), got) in cases.iter().zip(&dst) {
        assert_eq!(got.to_bits(), *want, "{x:e}");
    }
    // NaN: quiet, top payload kept.
    assert_eq!(
        f32_to_bf16_value(f32::from_bits(0xff81_2345)).to_bits(),
        0xffc1
    );

    // f16 ↔ bf16 through f32.
    let h = [
        f16::from_f32(1.5),
        f16::from_f32(-0.333),
        f16::from_f32(60000.0),
    ];
    let mut b = [bf16::ZERO; 3];
    f16_to_bf16(&h, &mut b).unwrap();
    for (hh, bb) in h.iter().zip(&b) {
        assert_eq!(bb.to_bits(), f32_to_bf16_value(hh.to_f32()).to_bits());
    }
    let mut h2 = [f16::ZERO; 3];
    bf16_to_f16(&b, &mut h2).unwrap();
    for (bb, hh) in b.iter().zip(&h2) {
        assert_eq!(hh.to_bits(), f16::from_f32(bb.to_f32()).to_bits());
    }
    // A bf16 beyond the f16 range becomes infinity.
    let mut h3 = [f16::ZERO];
    bf16_to_f16(&[bf16::from_f32(1e6)], &mut h3).unwrap();
    assert!(h3[0].is_infinite());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random lengths (including ones past the parallel threshold and not multiples of
    /// anything): every op equals its scalar definition, in place or not.
    #[test]
    fn ops_match_scalar_definitions(len in prop_oneof![0usize..300, 32_700usize..33_000], seed: u64) {
        let mut rng = Rng(seed);
        let a = rng.vec(len, -8.0, 8.0);
        let b = rng.vec(len, -8.0, 8.0);
        let mut out = vec![0.0f32; len];

        add(&a, &b, &mut out).unwrap();
        prop_assert!(out.iter().zip(a.iter().zip(&b)).all(|(&o, (&x, &y))| o == x + y));
        mul(&a, &b, &mut out).unwrap();
        prop_assert!(out.iter().zip(a.iter().zip(&b)).all(|(&o, (&x, &y))| o == x * y));
        swiglu(&a, &b, &mut out).unwrap();
        prop_assert!(out.iter().zip(a.iter().zip(&b)).all(|(&o, (&x, &y))| o == silu_f32(x) * y));
        gelu(&a, &mut out).unwrap();
        prop_assert!(out.iter().zip(&a).all(|(&o, &x)| o == gelu_f32(x)));
        silu(&a, &mut out).unwrap();
        prop_assert!(out.iter().zip(&a).all(|(&o, &x)| o == silu_f32(x)));
        scale(&a, 0.37, &mut out).unwrap();
        prop_assert!(out.iter().zip(&a).all(|(&o, &x)| o == x * 0.37));

        let mut acc = a.clone();
        add_inplace(&mut acc, &b).unwrap();
        add(&a, &b, &mut out).unwrap();
        prop_assert_eq!(&acc, &out);

        // f16 cast: round-to-nearest means the error is at most half an f16 ulp.
        let mut h = vec![f16::ZERO; len];
        f32_to_f16(&a, &mut h).unwrap();
        for (&x, hh) in a.iter().zip(&h) {
            let y = hh.to_f32();
            let ulp = if y.abs() < 6.103_515_6e-5 { 5.960_464_5e-8 } else {
                2f32.powi(y.abs().log2().floor() as i32 - 10)
            };
            prop_assert!((x - y).abs() <= ulp / 2.0 * 1.0001, "{} -> {}", x, y);
        }
    }
}
