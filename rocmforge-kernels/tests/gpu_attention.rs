//! GPU attention, KV-cache writes and argmax against the CPU reference, on random inputs.
//! Run on the GPU host (`scripts/gpu-bundle.sh`); ignored elsewhere.
//!
//! Tolerance of attention outputs: `|gpu − cpu| <= tol · (max|v| + |cpu|)`, where the CPU
//! reference computes in `f64` from the same stored (f16/bf16-rounded) cache values and
//! rounds once. The GPU sums in `f32`: score errors grow with `head_dim · 2⁻²⁴ · scale ·
//! Σ|q·k|`, weighted-sum errors with `(keys per partial sum) · 2⁻²⁴ · max|v|`. With
//! q, k, v in [-1, 1) × (2, 1, 1) the tolerance is `TOL` = 1e-5 (on the H100 the worst
//! error seen was 5.5e-7); with scores of ~±100 (`decode_is_stable_with_large_scores`) the
//! score rounding dominates and the tolerance is `TOL_LARGE_SCORES` = 1e-4 (8e-6 seen).
//! Each test prints its worst error (`--nocapture`). Cache positions the queries must not
//! see hold NaN, and outputs start as NaN, so a stray read or a missed write fails.

use std::sync::OnceLock;

use half::{bf16, f16};
use proptest::prelude::*;
use rocmforge_hip::{Device, DeviceBuffer, DeviceMemory, DeviceMemoryMut, DeviceSlice, Stream};
use rocmforge_kernels::cpu::{self, AttentionParams, KvCacheShape, KvElement};
use rocmforge_kernels::gpu::{AttentionOps, GpuKvElement, KernelLoader, DECODE_MAX_QUERIES};
use rocmforge_kernels::Error;

/// See the module documentation.
const TOL: f32 = 1e-5;
/// See the module documentation.
const TOL_LARGE_SCORES: f32 = 1e-4;

struct Gpu {
    stream: Stream,
    ops: AttentionOps,
}

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let device = Device::new(0).expect("a GPU");
        let loader = KernelLoader::new(&device);
        Gpu {
            stream: device.new_stream().unwrap(),
            ops: AttentionOps::load(&loader).unwrap(),
        }
    })
}

fn upload<T: bytemuck::Pod>(data: &[T]) -> DeviceBuffer<T> {
    DeviceBuffer::from_slice(&gpu().stream, data).unwrap()
}

/// `n` elements of 0xFF bytes: NaN for f32/f16/bf16.
fn poisoned<T: bytemuck::Pod>(n: usize) -> DeviceBuffer<T> {
    let mut b = DeviceBuffer::<T>::alloc(&gpu().stream, n).unwrap();
    b.fill_bytes(0xFF).unwrap();
    b
}

/// Deterministic pseudo-random f32s in [-scale, scale).
fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A cache tensor of `n_ctx` positions of `row` values: random in [-1, 1) at positions
/// below `visible`, NaN at and after it.
fn cache<T: KvElement>(n_ctx: usize, row: usize, visible: usize, seed: u64) -> Vec<T> {
    let mut data: Vec<T> = random(visible * row, seed, 1.0)
        .into_iter()
        .map(T::from_f32)
        .collect();
    data.resize(n_ctx * row, T::from_f32(f32::NAN));
    data
}

/// The largest error relative to `tol`'s scale; panics (naming the element) above `tol`.
fn check_close(what: &str, gpu: &[f32], cpu: &[f32], v_max: f32, tol: f32) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let mut worst = 0.0f32;
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let err = (g - c).abs() / (v_max + c.abs());
        assert!(
            err <= tol && !g.is_nan(),
            "{what}[{i}]: gpu {g} cpu {c} (error {err:e} > {tol:e})"
        );
        worst = worst.max(err);
    }
    worst
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    /// `attention`: decode for n_q <= DECODE_MAX_QUERIES, else prefill.
    Auto,
    /// `attention_with_scratch` with `decode_scratch_len` floats.
    AutoScratch,
    /// `decode_attention`, whatever n_q.
    Decode,
    /// `prefill_attention`, whatever n_q.
    Prefill,
    /// `decode_attention_at`: the position read from device memory, splits planned for
    /// the capacity.
    DecodeAt,
}

const ALL_PATHS: [Path; 5] = [
    Path::Auto,
    Path::AutoScratch,
    Path::Decode,
    Path::Prefill,
    Path::DecodeAt,
];

#[derive(Clone, Copy, Debug)]
struct Case {
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    n_q: usize,
    pos0: usize,
    /// Cache positions after the visible ones (poisoned).
    spare: usize,
    q_scale: f32,
    seed: u64,
}

impl Case {
    fn params(&self) -> AttentionParams {
        AttentionParams::new(
            self.n_heads,
            KvCacheShape {
                n_ctx: self.pos0 + self.n_q + self.spare,
                n_kv_heads: self.n_kv_heads,
                head_dim: self.head_dim,
            },
        )
    }
}

/// Runs `case` on each of `paths` and compares with the CPU; returns the worst error.
fn check_case<T: GpuKvElement>(case: &Case, paths: &[Path], tol: f32) -> f32 {
    let g = gpu();
    let p = case.params();
    let row = case.n_kv_heads * case.head_dim;
    let visible = case.pos0 + case.n_q;
    let q = random(
        case.n_q * case.n_heads * case.head_dim,
        case.seed,
        case.q_scale,
    );
    let k: Vec<T> = cache(p.kv.n_ctx, row, visible, case.seed + 1);
    let v: Vec<T> = cache(p.kv.n_ctx, row, visible, case.seed + 2);
    let mut expected = vec![0f32; q.len()];
    cpu::attention(&p, &q, case.n_q, case.pos0, &k, &v, &mut expected).unwrap();

    let (dq, dk, dv) = (upload(&q), upload(&k), upload(&v));
    let mut worst = 0.0f32;
    for &path in paths {
        let mut out = poisoned::<f32>(q.len());
        let (qs, ks, vs, os) = (
            dq.as_slice(),
            dk.as_slice(),
            dv.as_slice(),
            out.as_slice_mut(),
        );
        let (n_q, pos0) = (case.n_q, case.pos0);
        match path {
            Path::Auto => g.ops.attention(&g.stream, &p, qs, n_q, pos0, ks, vs, os),
            Path::AutoScratch => {
                let len = g.ops.decode_scratch_len(&p, n_q).unwrap();
                let mut scratch = poisoned::<f32>(len);
                g.ops.attention_with_scratch(
                    &g.stream,
                    &p,
                    qs,
                    n_q,
                    pos0,
                    ks,
                    vs,
                    os,
                    scratch.as_slice_mut(),
                )
            }
            Path::Decode => g
                .ops
                .decode_attention(&g.stream, &p, qs, n_q, pos0, ks, vs, os, None),
            Path::Prefill => g
                .ops
                .prefill_attention(&g.stream, &p, qs, n_q, pos0, ks, vs, os),
            Path::DecodeAt => {
                let len = g.ops.decode_at_scratch_len(&p, n_q).unwrap();
                let mut scratch = poisoned::<f32>(len);
                // The position, and garbage after it that the kernels must not read.
                let positions = upload(&[pos0 as i32, -7, i32::MAX]);
                g.ops.decode_attention_at(
                    &g.stream,
                    &p,
                    qs,
                    n_q,
                    positions.as_slice(),
                    ks,
                    vs,
                    os,
                    scratch.as_slice_mut(),
                )
            }
        }
        .unwrap();
        let what = format!("{path:?} {} {case:?}", T::NAME);
        worst = worst.max(check_close(
            &what,
            &out.to_vec().unwrap(),
            &expected,
            1.0,
            tol,
        ));
    }
    worst
}

fn check_case_for(ty: usize, case: &Case, paths: &[Path], tol: f32) -> f32 {
    match ty {
        0 => check_case::<f32>(case, paths, tol),
        1 => check_case::<f16>(case, paths, tol),
        _ => check_case::<bf16>(case, paths, tol),
    }
}

#[test]
#[ignore = "needs a GPU"]
fn decode_matches_cpu_at_every_context_length() {
    let mut worst = 0.0f32;
    for (i, &ctx) in [1usize, 2, 63, 64, 65, 127, 128, 129, 1000, 4097, 16384]
        .iter()
        .enumerate()
    {
        for &(n_heads, n_kv_heads, head_dim) in &[
            (9, 3, 64),
            (9, 3, 128),
            (32, 8, 128),
            (1, 1, 80),
            (4, 1, 96),
        ] {
            if head_dim != 64 && n_heads == 32 && ctx > 4097 {
                continue; // the CPU reference dominates the run time
            }
            for ty in 0..3 {
                if ty == 2 && ctx > 1000 {
                    continue; // bf16 shares the decode code; short contexts suffice
                }
                let case = Case {
                    n_heads,
                    n_kv_heads,
                    head_dim,
                    n_q: 1,
                    pos0: ctx - 1,
                    spare: 3,
                    q_scale: 2.0,
                    seed: (i * 31 + head_dim + ty) as u64,
                };
                // Prefill with one query is exercised too: a long row through key tiles.
                worst = worst.max(check_case_for(ty, &case, &ALL_PATHS, TOL));
            }
        }
    }
    eprintln!("decode: worst error {worst:e} (tolerance {TOL:e})");
}

#[test]
#[ignore = "needs a GPU"]
fn decode_is_stable_with_large_scores() {
    // q·k up to ~100 after scaling: exp would overflow without the running maximum.
    let mut worst = 0.0f32;
    for (i, &ctx) in [5usize, 300, 5000].iter().enumerate() {
        for ty in 0..2 {
            let case = Case {
                n_heads: 9,
                n_kv_heads: 3,
                head_dim: 64,
                n_q: 1,
                pos0: ctx - 1,
                spare: 0,
                q_scale: 60.0,
                seed: 900 + i as u64,
            };
            worst = worst.max(check_case_for(ty, &case, &ALL_PATHS, TOL_LARGE_SCORES));
        }
    }
    eprintln!("large scores: worst error {worst:e} (tolerance {TOL_LARGE_SCORES:e})");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    #[ignore = "needs a GPU"]
    fn prefill_matches_cpu(
        n_q in prop_oneof![
            8 => 1usize..=70,
            1 => Just(DECODE_MAX_QUERIES),
            1 => Just(DECODE_MAX_QUERIES + 1),
        ],
        pos0 in prop::sample::select(vec![0usize, 1, 5, 31, 64, 100, 1000]),
        heads in prop::sample::select(vec![(9usize, 3usize), (32, 8), (1, 1), (4, 1), (6, 6)]),
        head_dim in prop::sample::select(vec![64usize, 128, 80, 96, 256, 8]),
        ty in 0usize..3,
        seed in any::<u64>(),
    ) {
        let case = Case {
            n_heads: heads.0,
            n_kv_heads: heads.1,
            head_dim,
            n_q,
            pos0,
            spare: 2,
            q_scale: 2.0,
            seed,
        };
        let worst = check_case_for(ty, &case, &ALL_PATHS, TOL);
        eprintln!("prefill n_q {n_q} pos0 {pos0} {heads:?} hd {head_dim} ty {ty}: worst {worst:e}");
    }
}

/// Every query count of 1..=70 (partial and whole tiles of every prefill variant), after
/// 37 cached positions, GQA 9/3.
#[test]
#[ignore = "needs a GPU"]
fn prefill_matches_cpu_for_every_query_count() {
    let mut worst = 0.0f32;
    for n_q in 1..=70 {
        for (j, &head_dim) in [64usize, 128, 256].iter().enumerate() {
            let case = Case {
                n_heads: 9,
                n_kv_heads: 3,
                head_dim,
                n_q,
                pos0: 37,
                spare: 1,
                q_scale: 2.0,
                seed: (n_q * 7 + j) as u64,
            };
            let ty = (n_q + j) % 3;
            worst = worst.max(check_case_for(ty, &case, &[Path::Auto, Path::Prefill], TOL));
        }
    }
    eprintln!("prefill 1..=70: worst error {worst:e} (tolerance {TOL:e})");
}

/// With every key zero, every visible key gets the same weight, so query `i` must output
/// the mean of v over positions `0 ..= pos0 + i`: with v_j = j, exactly (pos0 + i) / 2. A
/// key let through or masked by mistake moves that by about 1/2.
fn check_causal_mask<T: GpuKvElement>(n_q: usize, pos0: usize, head_dim: usize, paths: &[Path]) {
    let g = gpu();
    let (n_heads, n_kv_heads) = (6, 2);
    let n_ctx = pos0 + n_q + 5;
    let row = n_kv_heads * head_dim;
    let p = AttentionParams::new(
        n_heads,
        KvCacheShape {
            n_ctx,
            n_kv_heads,
            head_dim,
        },
    );
    let q = random(n_q * n_heads * head_dim, 77, 3.0);
    let mut k = vec![T::from_f32(0.0); n_ctx * row];
    let mut v = vec![T::from_f32(0.0); n_ctx * row];
    for pos in 0..n_ctx {
        let (kv, vv) = if pos < pos0 + n_q {
            (0.0, pos as f32)
        } else {
            (f32::NAN, f32::NAN)
        };
        for e in 0..row {
            k[pos * row + e] = T::from_f32(kv);
            v[pos * row + e] = T::from_f32(vv);
        }
    }
    let (dq, dk, dv) = (upload(&q), upload(&k), upload(&v));
    for &path in paths {
        let mut out = poisoned::<f32>(q.len());
        let (qs, ks, vs, os) = (
            dq.as_slice(),
            dk.as_slice(),
            dv.as_slice(),
            out.as_slice_mut(),
        );
        match path {
            Path::Prefill => g
                .ops
                .prefill_attention(&g.stream, &p, qs, n_q, pos0, ks, vs, os),
            _ => g
                .ops
                .decode_attention(&g.stream, &p, qs, n_q, pos0, ks, vs, os, None),
        }
        .unwrap();
        let out = out.to_vec().unwrap();
        for (idx, &o) in out.iter().enumerate() {
            let i = idx / (n_heads * head_dim);
            let want = (pos0 + i) as f32 / 2.0;
            assert!(
                (o - want).abs() <= 1e-5 * want.max(1.0),
                "{path:?} {} n_q {n_q} pos0 {pos0}: query {i} element {idx}: {o}, want {want}",
                T::NAME
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
fn causal_mask_is_exact() {
    let paths = [Path::Decode, Path::Prefill];
    for (n_q, pos0) in [(1, 0), (70, 0), (70, 37), (33, 1000), (3, 1999), (1, 5000)] {
        for head_dim in [64, 128, 256] {
            check_causal_mask::<f32>(n_q, pos0, head_dim, &paths);
            if pos0 + n_q <= 2048 {
                // f16 holds the integers up to 2048 exactly, bf16 up to 256.
                check_causal_mask::<f16>(n_q, pos0, head_dim, &paths);
            }
            if pos0 + n_q <= 256 {
                check_causal_mask::<bf16>(n_q, pos0, head_dim, &paths);
            }
        }
    }
}

/// A scratch buffer sized once by `decode_scratch_len` serves every `pos0`.
#[test]
#[ignore = "needs a GPU"]
fn decode_scratch_len_covers_every_position() {
    let g = gpu();
    let (n_heads, n_kv_heads, head_dim, n_ctx) = (9, 3, 64, 5000);
    let p = AttentionParams::new(
        n_heads,
        KvCacheShape {
            n_ctx,
            n_kv_heads,
            head_dim,
        },
    );
    let row = n_kv_heads * head_dim;
    let k: Vec<f16> = cache(n_ctx, row, n_ctx, 5);
    let v: Vec<f16> = cache(n_ctx, row, n_ctx, 6);
    let (dk, dv) = (upload(&k), upload(&v));
    for n_q in [1, 4] {
        let mut scratch = poisoned::<f32>(g.ops.decode_scratch_len(&p, n_q).unwrap());
        for pos0 in [0, 127, 128, 1000, n_ctx - n_q] {
            let q = random(n_q * n_heads * head_dim, pos0 as u64, 2.0);
            let mut expected = vec![0f32; q.len()];
            cpu::attention(&p, &q, n_q, pos0, &k, &v, &mut expected).unwrap();
            let dq = upload(&q);
            let mut out = poisoned::<f32>(q.len());
            g.ops
                .attention_with_scratch(
                    &g.stream,
                    &p,
                    dq.as_slice(),
                    n_q,
                    pos0,
                    dk.as_slice(),
                    dv.as_slice(),
                    out.as_slice_mut(),
                    scratch.as_slice_mut(),
                )
                .unwrap();
            check_close(
                &format!("scratch n_q {n_q} pos0 {pos0}"),
                &out.to_vec().unwrap(),
                &expected,
                1.0,
                TOL,
            );
        }
    }
}

fn check_kv_write<T: GpuKvElement>(shape: KvCacheShape, pos0: usize, n_new: usize, seed: u64) {
    let g = gpu();
    let row = shape.n_kv_heads * shape.head_dim;
    let mut host: Vec<T> = random(shape.n_ctx * row, seed, 4.0)
        .into_iter()
        .map(T::from_f32)
        .collect();
    let mut new = random(n_new * row, seed + 1, 70000.0);
    // Values that round specially: overflow to inf in f16, subnormals, ties, NaN, inf.
    let specials = [
        65520.0,
        -65519.0,
        1e-7,
        -3e-8,
        1.0 + f32::EPSILON * 4096.0,
        f32::NAN,
        f32::INFINITY,
        1e-40,
        3.4e38,
    ];
    for (x, s) in new.iter_mut().step_by(3).zip(specials) {
        *x = s;
    }
    let mut dev = upload(&host);
    let dnew = upload(&new);
    g.ops
        .kv_cache_write(
            &g.stream,
            dev.as_slice_mut(),
            shape,
            pos0,
            dnew.as_slice(),
            n_new,
        )
        .unwrap();
    // The same write with the position in device memory, into a copy of the old cache.
    let mut dev_at = upload(&host);
    let positions = upload(&[pos0 as i32]);
    g.ops
        .kv_cache_write_at(
            &g.stream,
            dev_at.as_slice_mut(),
            shape,
            positions.as_slice(),
            dnew.as_slice(),
            n_new,
        )
        .unwrap();
    cpu::kv_cache_write(&mut host, shape, pos0, &new, n_new).unwrap();
    for (name, buffer) in [("kv_cache_write", &dev), ("kv_cache_write_at", &dev_at)] {
        let got = buffer.to_vec().unwrap();
        for (i, (a, b)) in got.iter().zip(&host).enumerate() {
            let (a, b) = (a.to_f32(), b.to_f32());
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{name} {} {shape:?} pos0 {pos0} n_new {n_new}: element {i}: gpu {a} cpu {b}",
                T::NAME
            );
        }
    }
    // A position past the cache writes nothing (the kernel's own bounds check).
    let before = dev_at.to_vec().unwrap();
    for bad in [
        shape.n_ctx as i32,
        -1,
        i32::MAX,
        (shape.n_ctx - n_new) as i32 + 1,
    ] {
        let positions = upload(&[bad]);
        g.ops
            .kv_cache_write_at(
                &g.stream,
                dev_at.as_slice_mut(),
                shape,
                positions.as_slice(),
                dnew.as_slice(),
                n_new,
            )
            .unwrap();
        let after = dev_at.to_vec().unwrap();
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(a, b)| bytemuck::bytes_of(a) == bytemuck::bytes_of(b)),
            "kv_cache_write_at at position {bad} of {} wrote into the cache",
            shape.n_ctx
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    #[ignore = "needs a GPU"]
    fn kv_cache_write_matches_cpu_bit_for_bit(
        n_ctx in 1usize..300,
        n_kv_heads in 1usize..5,
        head_dim in prop::sample::select(vec![64usize, 128, 80, 4, 7]),
        start in 0.0f64..1.0,
        len in 0.0f64..1.0,
        seed in any::<u64>(),
    ) {
        let shape = KvCacheShape { n_ctx, n_kv_heads, head_dim };
        let pos0 = ((n_ctx as f64) * start) as usize;
        let n_new = ((((n_ctx - pos0) as f64) * len).ceil() as usize).max(1);
        check_kv_write::<f32>(shape, pos0, n_new, seed);
        check_kv_write::<f16>(shape, pos0, n_new, seed);
        check_kv_write::<bf16>(shape, pos0, n_new, seed);
    }
}

fn gpu_argmax(x: &[f32], with_scratch: bool) -> u32 {
    let g = gpu();
    let dx = upload(x);
    let mut out = DeviceBuffer::<u32>::alloc(&g.stream, 1).unwrap();
    out.fill_bytes(0xAB).unwrap();
    if with_scratch {
        let mut scratch =
            DeviceBuffer::<u32>::alloc(&g.stream, AttentionOps::argmax_scratch_len(x.len()))
                .unwrap();
        scratch.fill_bytes(0xAB).unwrap();
        g.ops
            .argmax_with_scratch(
                &g.stream,
                dx.as_slice(),
                out.as_slice_mut(),
                scratch.as_slice_mut(),
            )
            .unwrap();
    } else {
        g.ops
            .argmax(&g.stream, dx.as_slice(), out.as_slice_mut())
            .unwrap();
    }
    out.to_vec().unwrap()[0]
}

#[test]
#[ignore = "needs a GPU"]
fn argmax_matches_cpu() {
    let sizes = [
        1usize, 2, 63, 64, 65, 127, 128, 129, 1000, 1024, 1025, 4097, 32000, 128_256, 151_936,
        300_000, 600_001,
    ];
    for (s, &n) in sizes.iter().enumerate() {
        for pattern in 0..7 {
            let seed = (s * 10 + pattern) as u64;
            let mut x = random(n, seed, 10.0);
            match pattern {
                0 => {}
                // Many ties: a few distinct values only.
                1 => x.iter_mut().for_each(|v| *v = v.round()),
                // NaN sprinkled, including where the maximum would be.
                2 => {
                    for i in (0..n).step_by(7) {
                        x[i] = f32::NAN;
                    }
                }
                // The maximum at the last index, tied at the first.
                3 => {
                    x[n - 1] = 100.0;
                    if n > 2 {
                        x[0] = 99.0;
                    }
                }
                // All equal: index 0.
                4 => x.iter_mut().for_each(|v| *v = -f32::INFINITY),
                // -0.0 and 0.0 tie, NaN first.
                5 => {
                    x.iter_mut()
                        .for_each(|v| *v = if *v < 0.0 { -0.0 } else { 0.0 });
                    x[0] = f32::NAN;
                }
                // Only the last value is not NaN.
                _ => {
                    x.iter_mut().for_each(|v| *v = f32::NAN);
                    x[n - 1] = -5.0;
                }
            }
            // An all-NaN input (n = 1, pattern 2) is an error on the CPU, u32::MAX here.
            let want = cpu::argmax(&x).map_or(u32::MAX, |i| i as u32);
            for with_scratch in [false, true] {
                let got = gpu_argmax(&x, with_scratch);
                assert_eq!(
                    got, want,
                    "argmax n {n} pattern {pattern} scratch {with_scratch}"
                );
            }
        }
    }
    // All NaN: the CPU errors; the GPU writes u32::MAX.
    for n in [1, 100, 5000] {
        assert!(cpu::argmax(&vec![f32::NAN; n]).is_err());
        assert_eq!(gpu_argmax(&vec![f32::NAN; n], false), u32::MAX);
    }
}

fn is_shape_error<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::Shape { .. }))
}

#[test]
#[ignore = "needs a GPU"]
fn bad_sizes_are_errors_not_launches() {
    let g = gpu();
    let s = &g.stream;
    let kv = KvCacheShape {
        n_ctx: 16,
        n_kv_heads: 2,
        head_dim: 64,
    };
    let p = AttentionParams::new(4, kv);
    let cache_len = 16 * 2 * 64;
    let (n_q, pos0) = (3, 5);
    let q = upload(&random(n_q * 4 * 64, 1, 1.0));
    let k = upload(&vec![f16::ZERO; cache_len + 4]);
    let v = upload(&vec![f16::ZERO; cache_len]);
    let mut out = poisoned::<f32>(n_q * 4 * 64);
    let kc = k.slice(..cache_len).unwrap();
    let vc = v.as_slice();

    // The good call works.
    g.ops
        .attention(s, &p, q.as_slice(), n_q, pos0, kc, vc, out.as_slice_mut())
        .unwrap();

    let bad = |p: &AttentionParams,
               q_len: usize,
               n_q: usize,
               pos0: usize,
               kc: DeviceSlice<f16>,
               out_len: usize| {
        let mut o = poisoned::<f32>(out_len.max(1));
        let o = o.slice_mut(..out_len).unwrap();
        let q = q.slice(..q_len).unwrap();
        let a = is_shape_error(g.ops.attention(s, p, q, n_q, pos0, kc, vc, o));
        let mut o = poisoned::<f32>(out_len.max(1));
        let o = o.slice_mut(..out_len).unwrap();
        let b = is_shape_error(g.ops.prefill_attention(s, p, q, n_q, pos0, kc, vc, o));
        a && b
    };
    let ql = n_q * 4 * 64;
    assert!(bad(&p, ql - 1, n_q, pos0, kc, ql), "short q");
    assert!(bad(&p, ql, n_q, pos0, kc, ql - 64), "short out");
    assert!(bad(&p, ql, n_q, 14, kc, ql), "pos0 + n_q > n_ctx");
    assert!(bad(&p, ql, n_q, usize::MAX, kc, ql), "pos0 overflow");
    assert!(
        bad(&p, ql, n_q, pos0, k.slice(..cache_len - 1).unwrap(), ql),
        "short k cache"
    );
    assert!(
        bad(&p, ql, n_q, pos0, k.slice(1..cache_len + 1).unwrap(), ql),
        "misaligned k cache"
    );
    let p3 = AttentionParams::new(
        4,
        KvCacheShape {
            n_kv_heads: 3,
            ..kv
        },
    );
    assert!(
        bad(&p3, ql, n_q, pos0, kc, ql),
        "n_kv_heads does not divide n_heads"
    );
    let p66 = AttentionParams::new(
        2,
        KvCacheShape {
            head_dim: 66,
            n_kv_heads: 1,
            ..kv
        },
    );
    assert!(bad(&p66, 3 * 2 * 66, 3, 0, kc, 3 * 2 * 66), "head_dim 66");
    let p512 = AttentionParams::new(
        1,
        KvCacheShape {
            head_dim: 512,
            n_kv_heads: 1,
            n_ctx: 4,
        },
    );
    assert!(bad(&p512, 512, 1, 0, kc, 512), "head_dim 512");

    // Scratch too small for a split decode.
    let long = KvCacheShape {
        n_ctx: 4096,
        n_kv_heads: 1,
        head_dim: 64,
    };
    let pl = AttentionParams::new(1, long);
    let kl = upload(&vec![f16::ZERO; 4096 * 64]);
    let ql = upload(&vec![0f32; 64]);
    let need = g.ops.decode_scratch_len(&pl, 1).unwrap();
    assert!(need > 0, "a 4096-position decode splits");
    let mut small = poisoned::<f32>(need);
    let mut o = poisoned::<f32>(64);
    let r = g.ops.attention_with_scratch(
        s,
        &pl,
        ql.as_slice(),
        1,
        4095,
        kl.as_slice(),
        kl.as_slice(),
        o.as_slice_mut(),
        small.slice_mut(..16).unwrap(),
    );
    assert!(is_shape_error(r), "small scratch");

    // KV-cache writes.
    let new = upload(&random(2 * 2 * 64, 3, 1.0));
    let mut c = poisoned::<f16>(cache_len);
    assert!(is_shape_error(g.ops.kv_cache_write(
        s,
        c.as_slice_mut(),
        kv,
        15,
        new.as_slice(),
        2
    )));
    assert!(is_shape_error(g.ops.kv_cache_write(
        s,
        c.as_slice_mut(),
        kv,
        0,
        new.as_slice(),
        3
    )));
    assert!(is_shape_error(g.ops.kv_cache_write(
        s,
        c.slice_mut(1..).unwrap(),
        kv,
        0,
        new.as_slice(),
        2
    )));
    g.ops
        .kv_cache_write(s, c.as_slice_mut(), kv, 14, new.as_slice(), 2)
        .unwrap();

    // Argmax.
    let x = upload(&[1.0f32, 2.0]);
    let mut o2 = DeviceBuffer::<u32>::alloc(s, 2).unwrap();
    assert!(is_shape_error(g.ops.argmax(
        s,
        x.as_slice(),
        o2.as_slice_mut()
    )));
    assert!(is_shape_error(g.ops.argmax(
        s,
        x.slice(..0).unwrap(),
        o2.slice_mut(..1).unwrap()
    )));
    let big = upload(&vec![0f32; 100_000]);
    let mut tiny = DeviceBuffer::<u32>::alloc(s, 1).unwrap();
    assert!(is_shape_error(g.ops.argmax_with_scratch(
        s,
        big.as_slice(),
        o2.slice_mut(..1).unwrap(),
        tiny.as_slice_mut()
    )));
    s.synchronize().unwrap();
}

/// Informational: times decode and prefill at Llama-3-8B attention shapes (32 query / 8 KV
/// heads, head_dim 128, f16 cache) and prints them with the cache bandwidth they imply.
#[test]
#[ignore = "needs a GPU"]
fn attention_timing_report() {
    let g = gpu();
    let (n_heads, n_kv_heads, head_dim) = (32, 8, 128);
    let n_ctx = 32768;
    let p = AttentionParams::new(
        n_heads,
        KvCacheShape {
            n_ctx,
            n_kv_heads,
            head_dim,
        },
    );
    let row = n_kv_heads * head_dim;
    let k: Vec<f16> = cache(n_ctx, row, n_ctx, 11);
    let (dk, dv) = (upload(&k), upload(&k));
    let time = |n_q: usize, pos0: usize, prefill: bool| -> f32 {
        let dq = upload(&random(n_q * n_heads * head_dim, 3, 1.0));
        let mut out = poisoned::<f32>(n_q * n_heads * head_dim);
        let mut scratch = poisoned::<f32>(g.ops.decode_scratch_len(&p, n_q).unwrap().max(1));
        let mut run = || {
            if prefill {
                g.ops.prefill_attention(
                    &g.stream,
                    &p,
                    dq.as_slice(),
                    n_q,
                    pos0,
                    dk.as_slice(),
                    dv.as_slice(),
                    out.as_slice_mut(),
                )
            } else {
                g.ops.decode_attention(
                    &g.stream,
                    &p,
                    dq.as_slice(),
                    n_q,
                    pos0,
                    dk.as_slice(),
                    dv.as_slice(),
                    out.as_slice_mut(),
                    Some(scratch.as_slice_mut()),
                )
            }
            .unwrap()
        };
        run();
        let iters = 20;
        let start = g.stream.record_timing_event().unwrap();
        for _ in 0..iters {
            run();
        }
        let end = g.stream.record_timing_event().unwrap();
        end.synchronize().unwrap();
        end.elapsed_ms(&start).unwrap() / iters as f32
    };
    for ctx in [512usize, 4096, 32768] {
        let ms = time(1, ctx - 1, false);
        let bytes = 2.0 * (ctx * row * 2) as f64;
        eprintln!(
            "decode  ctx {ctx:>6}: {:>8.1} us  ({:.0} GB/s of K+V)",
            ms * 1000.0,
            bytes / (ms as f64 * 1e-3) / 1e9
        );
    }
    for (n_q, pos0) in [(512usize, 0usize), (512, 4096)] {
        let ms = time(n_q, pos0, true);
        // Causal work: each query's dot products and weighted sums over its keys.
        let pairs: f64 = (0..n_q).map(|i| (pos0 + i + 1) as f64).sum();
        let flops = 4.0 * pairs * (n_heads * head_dim) as f64;
        eprintln!(
            "prefill {n_q} tokens after {pos0}: {:>8.1} us  ({:.2} TFLOP/s)",
            ms * 1000.0,
            flops / (ms as f64 * 1e-3) / 1e12
        );
    }
}
