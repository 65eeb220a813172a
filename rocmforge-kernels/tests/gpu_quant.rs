//! GPU matvec, matmul, row lookup and dequantization against the CPU reference, for
//! every weight type, on random data quantized by rocmforge's ggml-exact quantizers.
//! Run on the GPU host; ignored elsewhere.

use std::sync::OnceLock;

use half::f16;
use rocmforge_hip::{Device, DeviceBuffer, DeviceMemory, DeviceMemoryMut, Stream};
use rocmforge_kernels::cpu::{self, WeightMatrix};
use rocmforge_kernels::gpu::{GpuWeights, KernelLoader, QuantOps, GPU_WEIGHT_TYPES};
use rocmforge_kernels::quant::{self, GgmlType};

struct Gpu {
    stream: Stream,
    ops: QuantOps,
}

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let device = Device::new(0).expect("a GPU");
        let loader = KernelLoader::new(&device);
        Gpu {
            stream: device.new_stream().unwrap(),
            ops: QuantOps::load(&loader).unwrap(),
        }
    })
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn upload<T: bytemuck::Pod>(data: &[T]) -> DeviceBuffer<T> {
    DeviceBuffer::from_slice(&gpu().stream, data).unwrap()
}

fn poisoned<T: bytemuck::Pod>(n: usize) -> DeviceBuffer<T> {
    let mut b = DeviceBuffer::<T>::alloc(&gpu().stream, n).unwrap();
    b.fill_bytes(0xFF).unwrap();
    b
}

/// Quantized random weights of `rows × cols` in `ty`, and their dequantized values.
fn weights(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let bytes = quant::quantize(ty, &random(rows * cols, seed)).unwrap();
    let w = WeightMatrix::new(ty, &bytes, rows, cols).unwrap();
    let mut deq = vec![0f32; rows * cols];
    cpu::dequantize_f32(&w, &mut deq).unwrap();
    (bytes, deq)
}

fn shapes(ty: GgmlType) -> Vec<(usize, usize)> {
    let k = ty.block_size().max(32);
    vec![(1, k), (7, 2 * k), (67, 3 * k), (130, 1024), (33, 4096)]
}

/// |gpu - cpu| <= rel · Σ|w·x| per output: the bound of a sum in f32 of these terms.
fn assert_dot_close(what: &str, gpu: &[f32], cpu: &[f32], scale: &[f32], rel: f32) {
    for (i, ((&g, &c), &s)) in gpu.iter().zip(cpu).zip(scale).enumerate() {
        assert!(
            (g - c).abs() <= rel * s + 1e-6 && !g.is_nan(),
            "{what}[{i}]: gpu {g} cpu {c} (scale {s})"
        );
    }
}

#[test]
#[ignore = "needs a GPU"]
fn matvec_matches_cpu_for_every_type() {
    let g = gpu();
    for ty in GPU_WEIGHT_TYPES {
        for (seed, (rows, cols)) in shapes(ty).into_iter().enumerate() {
            let (bytes, deq) = weights(ty, rows, cols, seed as u64);
            let x = random(cols, 100 + seed as u64);
            let mut expected = vec![0f32; rows];
            cpu::matvec(
                &WeightMatrix::new(ty, &bytes, rows, cols).unwrap(),
                &x,
                &mut expected,
            )
            .unwrap();
            let scale: Vec<f32> = (0..rows)
                .map(|r| (0..cols).map(|c| (deq[r * cols + c] * x[c]).abs()).sum())
                .collect();
            let (dw, dx) = (upload(&bytes), upload(&x));
            let mut y = poisoned::<f32>(rows);
            let w = GpuWeights::new(ty, dw.as_slice(), rows, cols).unwrap();
            g.ops
                .matvec(&g.stream, &w, dx.as_slice(), y.as_slice_mut())
                .unwrap();
            assert_dot_close(
                &format!("matvec {} {rows}x{cols}", ty.name()),
                &y.to_vec().unwrap(),
                &expected,
                &scale,
                1e-5,
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
fn matmul_matches_cpu_for_every_type() {
    let g = gpu();
    for ty in GPU_WEIGHT_TYPES {
        for (seed, n_tokens) in [1usize, 3, 8, 9, 21].into_iter().enumerate() {
            let (rows, cols) = (37, 2 * ty.block_size().max(32));
            let (bytes, deq) = weights(ty, rows, cols, 7 + seed as u64);
            let x = random(n_tokens * cols, 200 + seed as u64);
            let mut expected = vec![0f32; n_tokens * rows];
            cpu::matmul(
                &WeightMatrix::new(ty, &bytes, rows, cols).unwrap(),
                &x,
                n_tokens,
                &mut expected,
            )
            .unwrap();
            let scale: Vec<f32> = (0..n_tokens * rows)
                .map(|i| {
                    let (t, r) = (i / rows, i % rows);
                    (0..cols)
                        .map(|c| (deq[r * cols + c] * x[t * cols + c]).abs())
                        .sum()
                })
                .collect();
            let (dw, dx) = (upload(&bytes), upload(&x));
            let mut y = poisoned::<f32>(n_tokens * rows);
            let w = GpuWeights::new(ty, dw.as_slice(), rows, cols).unwrap();
            g.ops
                .matmul(&g.stream, &w, dx.as_slice(), n_tokens, y.as_slice_mut())
                .unwrap();
            assert_dot_close(
                &format!("matmul {} {n_tokens} tokens", ty.name()),
                &y.to_vec().unwrap(),
                &expected,
                &scale,
                1e-5,
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
fn row_lookup_and_dequantization_match_cpu() {
    let g = gpu();
    for ty in GPU_WEIGHT_TYPES {
        let (rows, cols) = (50, 2 * ty.block_size().max(32));
        let (bytes, deq) = weights(ty, rows, cols, 3);
        let dw = upload(&bytes);
        let w = GpuWeights::new(ty, dw.as_slice(), rows, cols).unwrap();
        // Dequantization of the whole tensor: decoding is exact arithmetic in f32 up to
        // fused multiply-adds (q·d + m), so allow one rounding.
        let mut out = poisoned::<f32>(rows * cols);
        g.ops
            .dequantize_f32(&g.stream, &w, out.as_slice_mut())
            .unwrap();
        for (i, (a, b)) in out.to_vec().unwrap().iter().zip(&deq).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs() + 1e-7,
                "dequantize {} [{i}]: {a} vs {b}",
                ty.name()
            );
        }
        let mut out16 = poisoned::<f16>(rows * cols);
        g.ops
            .dequantize_f16(&g.stream, &w, out16.as_slice_mut())
            .unwrap();
        for (i, (a, b)) in out16.to_vec().unwrap().iter().zip(&deq).enumerate() {
            let b16 = f16::from_f32(*b);
            assert!(
                (a.to_f32() - b16.to_f32()).abs() <= 1e-3 * b.abs() + 1e-6,
                "dequantize f16 {} [{i}]: {a} vs {b16}",
                ty.name()
            );
        }
        // Embedding lookup, including a repeated id and an id past the table (NaN row).
        let ids: Vec<u32> = vec![0, 49, 7, 7, 50];
        let mut expected = vec![0f32; 4 * cols];
        cpu::embedding(
            &WeightMatrix::new(ty, &bytes, rows, cols).unwrap(),
            &ids[..4],
            &mut expected,
        )
        .unwrap();
        let dids = upload(&ids);
        let mut looked_up = poisoned::<f32>(ids.len() * cols);
        g.ops
            .get_rows(&g.stream, &w, dids.as_slice(), looked_up.as_slice_mut())
            .unwrap();
        let looked_up = looked_up.to_vec().unwrap();
        for (i, (a, b)) in looked_up[..4 * cols].iter().zip(&expected).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs() + 1e-7,
                "get_rows {} [{i}]: {a} vs {b}",
                ty.name()
            );
        }
        assert!(
            looked_up[4 * cols..].iter().all(|v| v.is_nan()),
            "an out-of-range id gives NaN"
        );
    }
}

#[test]
#[ignore = "needs a GPU"]
fn launchers_reject_mismatched_shapes() {
    let g = gpu();
    let (bytes, _) = weights(GgmlType::Q4_0, 4, 64, 1);
    let dw = upload(&bytes);
    assert!(GpuWeights::new(GgmlType::Q4_0, dw.as_slice(), 4, 96).is_err());
    assert!(GpuWeights::new(GgmlType::Q4_0, dw.as_slice(), 0, 64).is_err());
    let w = GpuWeights::new(GgmlType::Q4_0, dw.as_slice(), 4, 64).unwrap();
    let x = upload(&[0f32; 63]);
    let mut y = poisoned::<f32>(4);
    assert!(g
        .ops
        .matvec(&g.stream, &w, x.as_slice(), y.as_slice_mut())
        .is_err());
    let x65 = upload(&[0f32; 65]);
    assert!(
        g.ops
            .matvec(&g.stream, &w, x65.slice(1..).unwrap(), y.as_slice_mut())
            .is_err(),
        "a misaligned x is refused, not read with vector loads"
    );
    let padded = upload(&[bytes.clone(), vec![0u8; 16]].concat());
    assert!(GpuWeights::new(
        GgmlType::Q4_0,
        padded.slice(2..2 + bytes.len()).unwrap(),
        4,
        64
    )
    .is_err());
    let junk = upload(&[0u8; 36]);
    let iq = GpuWeights::new(GgmlType::Q8_1, junk.as_slice(), 1, 32);
    if let Ok(iq) = iq {
        let x = upload(&[0f32; 32]);
        let mut y1 = poisoned::<f32>(1);
        assert!(g
            .ops
            .matvec(&g.stream, &iq, x.as_slice(), y1.as_slice_mut())
            .is_err());
    }
}
