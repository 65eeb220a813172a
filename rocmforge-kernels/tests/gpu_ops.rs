//! GPU kernels against their CPU references, on random inputs of awkward sizes.
//! Run on the GPU host (`scripts/gpu-bundle.sh`); ignored elsewhere.

use std::sync::OnceLock;

use half::{bf16, f16};
use proptest::prelude::*;
use rocmforge_hip::{Device, DeviceBuffer, DeviceMemory, Stream};
use rocmforge_kernels::cpu::{self, RopeMode, RopeParams};
use rocmforge_kernels::gpu::{ElementwiseOps, KernelLoader, NormOps, RopeConfig, RopeOps};

struct Gpu {
    stream: Stream,
    elementwise: ElementwiseOps,
    norm: NormOps,
    rope: RopeOps,
}

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let device = Device::new(0).expect("a GPU");
        let loader = KernelLoader::new(&device);
        Gpu {
            stream: device.new_stream().unwrap(),
            elementwise: ElementwiseOps::load(&loader).unwrap(),
            norm: NormOps::load(&loader).unwrap(),
            rope: RopeOps::load(&loader).unwrap(),
        }
    })
}

fn upload<T: bytemuck::Pod>(data: &[T]) -> DeviceBuffer<T> {
    DeviceBuffer::from_slice(&gpu().stream, data).unwrap()
}

fn alloc<T: bytemuck::Pod>(n: usize) -> DeviceBuffer<T> {
    // Poison: NaN-filled (0xFF bytes), so an unwritten element fails the comparison.
    let mut b = DeviceBuffer::<T>::alloc(&gpu().stream, n).unwrap();
    rocmforge_hip::DeviceMemoryMut::fill_bytes(&mut b, 0xFF).unwrap();
    b
}

/// Deterministic pseudo-random f32s in [-scale, scale).
fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Every |gpu - cpu| / (|cpu| + abs_floor) at most `rel`; NaN never passes. `abs_floor`
/// sets the scale below which errors count as absolute (cancellation near zero).
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], rel: f32, abs_floor: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let err = (g - c).abs() / (c.abs() + abs_floor);
        assert!(
            err <= rel && !g.is_nan(),
            "{what}[{i}]: gpu {g} cpu {c} (rel err {err})"
        );
    }
}

/// Sizes that are not multiples of the block or wave size, and some that are.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..70, Just(256usize), Just(4096usize), 257usize..5000]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    #[ignore = "needs a GPU"]
    fn elementwise_matches_cpu(n in size(), seed in any::<u64>()) {
        let g = gpu();
        let (a, b) = (random(n, seed, 8.0), random(n, seed + 1, 8.0));
        let (da, db) = (upload(&a), upload(&b));
        let mut cpu_out = vec![0f32; n];
        let mut out = alloc::<f32>(n);
        macro_rules! check_binary {
            ($gpu_fn:ident, $cpu_fn:ident, $rel:expr) => {
                g.elementwise.$gpu_fn(&g.stream, da.as_slice(), db.as_slice(), out.as_slice_mut()).unwrap();
                cpu::$cpu_fn(&a, &b, &mut cpu_out).unwrap();
                assert_close(stringify!($gpu_fn), &out.to_vec().unwrap(), &cpu_out, $rel, 1e-6);
            };
        }
        check_binary!(add, add, 0.0);
        check_binary!(mul, mul, 0.0);
        check_binary!(swiglu, swiglu, 1e-5);
        g.elementwise.scale(&g.stream, da.as_slice(), -0.37, out.as_slice_mut()).unwrap();
        cpu::scale(&a, -0.37, &mut cpu_out).unwrap();
        assert_close("scale", &out.to_vec().unwrap(), &cpu_out, 0.0, 1e-6);
        g.elementwise.silu(&g.stream, da.as_slice(), out.as_slice_mut()).unwrap();
        cpu::silu(&a, &mut cpu_out).unwrap();
        assert_close("silu", &out.to_vec().unwrap(), &cpu_out, 1e-5, 1e-6);
        g.elementwise.gelu(&g.stream, da.as_slice(), out.as_slice_mut()).unwrap();
        cpu::gelu(&a, &mut cpu_out).unwrap();
        // ggml's CPU GELU may go through an f16 table: compare at f16 precision.
        assert_close("gelu", &out.to_vec().unwrap(), &cpu_out, 2e-3, 1e-3);
    }

    #[test]
    #[ignore = "needs a GPU"]
    fn bias_rows_match_cpu(rows in 1usize..7, width in size(), seed in any::<u64>()) {
        let g = gpu();
        let (x, bias) = (random(rows * width, seed, 4.0), random(width, seed + 7, 4.0));
        let mut dx = upload(&x);
        let db = upload(&bias);
        g.elementwise.add_bias_rows(&g.stream, dx.as_slice_mut(), db.as_slice()).unwrap();
        let mut expected = x.clone();
        for row in expected.chunks_mut(width) {
            cpu::add_inplace(row, &bias).unwrap();
        }
        assert_close("add_bias_rows", &dx.to_vec().unwrap(), &expected, 0.0, 1e-6);
        // A length that is not a whole number of rows is an error, not a launch.
        if width > 1 {
            let short = upload(&bias[..width - 1]);
            prop_assert!(g.elementwise.add_bias_rows(&g.stream, dx.as_slice_mut(), short.as_slice()).is_err() || (rows * width) % (width - 1) == 0);
        }
    }

    #[test]
    #[ignore = "needs a GPU"]
    fn casts_match_cpu_bit_for_bit(n in size(), seed in any::<u64>()) {
        let g = gpu();
        let mut x = random(n, seed, 70000.0);
        if n > 3 { x[0] = f32::NAN; x[1] = f32::INFINITY; x[2] = 1e-8; }
        let dx = upload(&x);
        let mut h = alloc::<f16>(n);
        g.elementwise.f32_to_f16(&g.stream, dx.as_slice(), h.as_slice_mut()).unwrap();
        let mut cpu_h = vec![f16::ZERO; n];
        cpu::f32_to_f16(&x, &mut cpu_h).unwrap();
        let gpu_h = h.to_vec().unwrap();
        for (i, (a, b)) in gpu_h.iter().zip(&cpu_h).enumerate() {
            prop_assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "f16[{}]: {} vs {}", i, a, b);
        }
        let mut back = alloc::<f32>(n);
        g.elementwise.f16_to_f32(&g.stream, h.as_slice(), back.as_slice_mut()).unwrap();
        let mut cpu_back = vec![0f32; n];
        cpu::f16_to_f32(&cpu_h, &mut cpu_back).unwrap();
        for (a, b) in back.to_vec().unwrap().iter().zip(&cpu_back) {
            prop_assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        }
        let mut bf = alloc::<bf16>(n);
        g.elementwise.f32_to_bf16(&g.stream, dx.as_slice(), bf.as_slice_mut()).unwrap();
        let mut cpu_bf = vec![bf16::ZERO; n];
        cpu::f32_to_bf16(&x, &mut cpu_bf).unwrap();
        for (a, b) in bf.to_vec().unwrap().iter().zip(&cpu_bf) {
            prop_assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        }
        g.elementwise.bf16_to_f32(&g.stream, bf.as_slice(), back.as_slice_mut()).unwrap();
        cpu::bf16_to_f32(&cpu_bf, &mut cpu_back).unwrap();
        for (a, b) in back.to_vec().unwrap().iter().zip(&cpu_back) {
            prop_assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        }
    }

    #[test]
    #[ignore = "needs a GPU"]
    fn norms_and_softmax_match_cpu(rows in 1usize..9, n in size(), seed in any::<u64>()) {
        let g = gpu();
        let x = random(rows * n, seed, 4.0);
        let w = random(n, seed + 7, 2.0);
        let bias = random(n, seed + 9, 1.0);
        let (dx, dw, db) = (upload(&x), upload(&w), upload(&bias));
        let mut out = alloc::<f32>(rows * n);
        let mut cpu_out = vec![0f32; rows * n];
        g.norm.rms_norm(&g.stream, dx.as_slice(), dw.as_slice(), out.as_slice_mut(), rows, n, 1e-5).unwrap();
        cpu::rms_norm(&x, &w, &mut cpu_out, rows, n, 1e-5).unwrap();
        assert_close("rms_norm", &out.to_vec().unwrap(), &cpu_out, 1e-4, 1e-4);
        g.norm.layer_norm(&g.stream, dx.as_slice(), dw.as_slice(), Some(db.as_slice()), out.as_slice_mut(), rows, n, 1e-5).unwrap();
        cpu::layer_norm(&x, &w, Some(&bias), &mut cpu_out, rows, n, 1e-5).unwrap();
        assert_close("layer_norm", &out.to_vec().unwrap(), &cpu_out, 1e-4, 1e-2);
        g.norm.layer_norm(&g.stream, dx.as_slice(), dw.as_slice(), None, out.as_slice_mut(), rows, n, 1e-5).unwrap();
        cpu::layer_norm(&x, &w, None, &mut cpu_out, rows, n, 1e-5).unwrap();
        assert_close("layer_norm (no bias)", &out.to_vec().unwrap(), &cpu_out, 1e-4, 1e-2);
        g.norm.softmax(&g.stream, dx.as_slice(), out.as_slice_mut(), rows, n, 0.7).unwrap();
        cpu::softmax(&x, &mut cpu_out, rows, n, 0.7).unwrap();
        assert_close("softmax", &out.to_vec().unwrap(), &cpu_out, 1e-4, 1e-7);
    }

    #[test]
    #[ignore = "needs a GPU"]
    fn rope_matches_cpu(
        n_tokens in 1usize..6,
        n_heads in 1usize..5,
        head_dim in prop::sample::select(vec![64usize, 128, 80]),
        partial in any::<bool>(),
        neox in any::<bool>(),
        with_factors in any::<bool>(),
        pos0 in prop::sample::select(vec![0i32, 17, 4000, 30000]),
        seed in any::<u64>(),
    ) {
        let g = gpu();
        let n_rot = if partial { head_dim / 2 } else { head_dim };
        let mode = if neox { RopeMode::Neox } else { RopeMode::Normal };
        let x = random(n_tokens * n_heads * head_dim, seed, 3.0);
        let positions: Vec<i32> = (0..n_tokens as i32).map(|t| pos0 + 3 * t).collect();
        let factors: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + (i % 5) as f32).collect();
        let mut params = RopeParams::new(n_heads, head_dim, mode, 10000.0);
        params.n_rot = n_rot;
        params.freq_factors = with_factors.then_some(&factors[..]);
        let mut cpu_out = vec![0f32; x.len()];
        cpu::rope(&x, &positions, &params, &mut cpu_out).unwrap();
        let mut dx = upload(&x);
        let dpos = upload(&positions);
        let dfactors = upload(&factors);
        let cfg = RopeConfig { n_heads, head_dim, n_rot, mode, freq_base: 10000.0, freq_scale: 1.0 };
        g.rope.rope_inplace(&g.stream, dx.as_slice_mut(), dpos.as_slice(), with_factors.then(|| dfactors.as_slice()), &cfg).unwrap();
        // Same angles as the CPU (same f32 recurrence); cos/sin may differ by an ulp or two,
        // so outputs near zero (cancellation) are judged against the inputs' scale (3.0).
        assert_close("rope", &dx.to_vec().unwrap(), &cpu_out, 1e-5, 5e-2);
    }
}

#[test]
#[ignore = "needs a GPU"]
fn launchers_reject_bad_shapes() {
    let g = gpu();
    let a = upload(&[1f32; 10]);
    let b = upload(&[1f32; 11]);
    let mut out = alloc::<f32>(10);
    assert!(g
        .elementwise
        .add(&g.stream, a.as_slice(), b.as_slice(), out.as_slice_mut())
        .is_err());
    assert!(g
        .norm
        .rms_norm(
            &g.stream,
            a.as_slice(),
            a.as_slice(),
            out.as_slice_mut(),
            3,
            4,
            1e-5
        )
        .is_err());
    let pos = upload(&[0i32; 2]);
    let cfg = RopeConfig {
        n_heads: 1,
        head_dim: 5,
        n_rot: 5,
        mode: RopeMode::Normal,
        freq_base: 1e4,
        freq_scale: 1.0,
    };
    assert!(g
        .rope
        .rope_inplace(&g.stream, out.as_slice_mut(), pos.as_slice(), None, &cfg)
        .is_err());
}
