//! GPU matvec, matmul, row lookup and dequantization against the CPU reference, for
//! every weight type, on random data quantized by rocmforge's ggml-exact quantizers.
//! Run on the GPU host; ignored elsewhere.

use std::sync::OnceLock;

use half::f16;
use rocmforge_hip::{Device, DeviceBuffer, DeviceMemory, DeviceMemoryMut, Stream};
use rocmforge_kernels::cpu::{self, WeightMatrix};
use rocmforge_kernels::gpu::{
    matvec_reads_q8, q8_activation_bytes, q8_activation_row_bytes, GpuWeights, KernelLoader,
    QuantOps, GPU_WEIGHT_TYPES, Q8_MATVEC_TYPES,
};
use rocmforge_kernels::quant::{self, GgmlType};

struct Gpu {
    device: Device,
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
            device,
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

/// Activations with the cases the quantizer must treat alike on both sides: an all-zero
/// block, a block of one large value, values that are exact halves of a step (a block
/// whose amax is 127 has d = 1), and tiny values.
fn activations(n_tokens: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut x = random(n_tokens * cols, seed);
    x[..32].fill(0.0);
    if cols >= 96 {
        x[32..64].iter_mut().for_each(|v| *v *= 1e-30);
        x[40] = 1e6;
        for (i, v) in x[64..96].iter_mut().enumerate() {
            *v = (i as f32 - 16.0) + 0.5;
        }
        x[64] = 127.0;
    }
    x
}

/// GPU and CPU quantization give identical bytes (scales are f32, computed with the same
/// correctly rounded division and multiplication; rounding is C's roundf on both), for
/// every byte of the buffer: the GPU buffer starts poisoned.
#[test]
#[ignore = "needs a GPU"]
fn quantize_activations_matches_cpu_byte_for_byte() {
    let g = gpu();
    for (n_tokens, cols) in [(1, 32), (3, 96), (1, 4096), (5, 160), (2, 14336), (9, 1024)] {
        let x = activations(n_tokens, cols, cols as u64 + n_tokens as u64);
        let mut expected = vec![0u8; q8_activation_bytes(n_tokens, cols)];
        cpu::quantize_activations(&x, n_tokens, cols, &mut expected).unwrap();
        let dx = upload(&x);
        let mut out = poisoned::<u8>(expected.len());
        g.ops
            .quantize_activations(&g.stream, dx.as_slice(), n_tokens, cols, out.as_slice_mut())
            .unwrap();
        let got = out.to_vec().unwrap();
        if let Some(i) = got.iter().zip(&expected).position(|(a, b)| a != b) {
            panic!(
                "{n_tokens} x {cols}: byte {i} (row {}, offset {}) is {} on the GPU, {} on the CPU",
                i / q8_activation_row_bytes(cols),
                i % q8_activation_row_bytes(cols),
                got[i],
                expected[i]
            );
        }
    }
}

/// Shapes for the integer matvec: rows that are not multiples of any rows per block, and
/// widths whose rows are not 16-byte aligned and span several shared-memory tiles with a
/// partial last one (6432 = 201 blocks of 32, 4864 = 19 super-blocks), the matrix
/// ending inside a 16-byte word.
fn q8_shapes(ty: GgmlType) -> Vec<(usize, usize)> {
    let k = ty.block_size().max(32);
    let wide = if k == 32 { 6432 } else { 4864 };
    vec![
        (1, k),
        (7, 2 * k),
        (67, 3 * k),
        (130, 1024),
        (33, 4096),
        (5, 17 * k),
        (7, wide),
        // Whole groups of 256 for the wide kernels: 9 and 28 groups, not multiples of
        // the lanes per row.
        (19, 2304),
        (37, 7168),
    ]
}

/// Every tuning variant of the integer matvec against the CPU reference.
#[test]
#[ignore = "needs a GPU"]
fn matvec_q8_variants_match_the_cpu_q8_reference() {
    let g = gpu();
    for ty in Q8_MATVEC_TYPES {
        for (seed, (rows, cols)) in q8_shapes(ty).into_iter().enumerate() {
            let (bytes, _) = weights(ty, rows, cols, 40 + seed as u64);
            let wm = WeightMatrix::new(ty, &bytes, rows, cols).unwrap();
            let x = activations(1, cols, 400 + seed as u64);
            let mut xq = vec![0u8; q8_activation_bytes(1, cols)];
            cpu::quantize_activations(&x, 1, cols, &mut xq).unwrap();
            let mut expected = vec![0f32; rows];
            cpu::matvec_q8(&wm, &xq, &mut expected).unwrap();
            let mut scale = vec![0f32; rows];
            cpu::matvec_q8_error_scale(&wm, &xq, &mut scale).unwrap();
            let (dw, dxq) = (upload(&bytes), upload(&xq));
            let w = GpuWeights::new(ty, dw.as_slice(), rows, cols).unwrap();
            for variant in g.ops.matvec_q8_variants(ty) {
                let mut y = poisoned::<f32>(rows);
                let run = g.ops.matvec_q8_variant(
                    &variant,
                    &g.stream,
                    &w,
                    dxq.as_slice(),
                    y.as_slice_mut(),
                );
                // The wide kernels (rf_mvw) take whole groups of 256 columns only, and
                // say so.
                let wide = variant.contains("_c");
                if wide && cols % 256 != 0 {
                    let err = run.unwrap_err().to_string();
                    assert!(err.contains("multiple of 256"), "{variant}: {err}");
                    continue;
                }
                run.unwrap();
                assert_dot_close(
                    &format!("matvec_q8 variant {variant} {rows}x{cols}"),
                    &y.to_vec().unwrap(),
                    &expected,
                    &scale,
                    1e-5,
                );
            }
        }
    }
}

/// The integer matvec against the CPU reference over the same quantized activations,
/// for every type with an integer kernel, rows that are not multiples of the rows per
/// block, and a token taken from the middle of a multi-token buffer.
#[test]
#[ignore = "needs a GPU"]
fn matvec_q8_matches_the_cpu_q8_reference_for_every_type() {
    let g = gpu();
    for ty in GPU_WEIGHT_TYPES {
        assert_eq!(matvec_reads_q8(ty), cpu::q8_matvec_supported(ty));
    }
    for ty in Q8_MATVEC_TYPES {
        for (seed, (rows, cols)) in q8_shapes(ty).into_iter().enumerate() {
            let (bytes, _) = weights(ty, rows, cols, seed as u64);
            let wm = WeightMatrix::new(ty, &bytes, rows, cols).unwrap();
            // Three tokens; the product uses the middle one.
            let n_tokens = 3;
            let x = activations(n_tokens, cols, 300 + seed as u64);
            let row_bytes = q8_activation_row_bytes(cols);
            let mut xq = vec![0u8; q8_activation_bytes(n_tokens, cols)];
            cpu::quantize_activations(&x, n_tokens, cols, &mut xq).unwrap();
            let xq1 = &xq[row_bytes..2 * row_bytes];
            let mut expected = vec![0f32; rows];
            cpu::matvec_q8(&wm, xq1, &mut expected).unwrap();
            let mut scale = vec![0f32; rows];
            cpu::matvec_q8_error_scale(&wm, xq1, &mut scale).unwrap();

            let (dw, dx) = (upload(&bytes), upload(&x));
            let mut dxq = poisoned::<u8>(xq.len());
            g.ops
                .quantize_activations(&g.stream, dx.as_slice(), n_tokens, cols, dxq.as_slice_mut())
                .unwrap();
            let mut y = poisoned::<f32>(rows);
            let w = GpuWeights::new(ty, dw.as_slice(), rows, cols).unwrap();
            g.ops
                .matvec_q8(
                    &g.stream,
                    &w,
                    dxq.slice(row_bytes..2 * row_bytes).unwrap(),
                    y.as_slice_mut(),
                )
                .unwrap();
            assert_eq!(
                dxq.to_vec().unwrap(),
                xq,
                "the GPU quantized the same bytes"
            );
            assert_dot_close(
                &format!("matvec_q8 {} {rows}x{cols}", ty.name()),
                &y.to_vec().unwrap(),
                &expected,
                &scale,
                1e-5,
            );
        }
    }
}

/// Quantization and the integer matvec allocate nothing: they capture into a graph,
/// and its replays give the same result.
#[test]
#[ignore = "needs a GPU"]
fn quantize_and_matvec_q8_capture_into_a_graph() {
    let g = gpu();
    // A stream of its own: the other tests allocate on the shared one meanwhile, which
    // a capture in progress there would refuse.
    let stream = g.device.new_stream().unwrap();
    let (rows, cols, ty) = (70, 512, GgmlType::Q4_K);
    let (bytes, _) = weights(ty, rows, cols, 11);
    let x = random(cols, 12);
    let mut xq = vec![0u8; q8_activation_bytes(1, cols)];
    cpu::quantize_activations(&x, 1, cols, &mut xq).unwrap();
    let wm = WeightMatrix::new(ty, &bytes, rows, cols).unwrap();
    let mut expected = vec![0f32; rows];
    cpu::matvec_q8(&wm, &xq, &mut expected).unwrap();
    let mut scale = vec![0f32; rows];
    cpu::matvec_q8_error_scale(&wm, &xq, &mut scale).unwrap();

    let dw = DeviceBuffer::from_slice(&stream, &bytes).unwrap();
    let dx = DeviceBuffer::from_slice(&stream, &x).unwrap();
    let mut dxq = DeviceBuffer::<u8>::alloc(&stream, xq.len()).unwrap();
    dxq.fill_bytes(0xFF).unwrap();
    let mut y = DeviceBuffer::<f32>::alloc(&stream, rows).unwrap();
    y.fill_bytes(0xFF).unwrap();
    let w = GpuWeights::new(ty, dw.as_slice(), rows, cols).unwrap();
    let capture = stream.begin_capture().unwrap();
    g.ops
        .quantize_activations(&stream, dx.as_slice(), 1, cols, dxq.as_slice_mut())
        .unwrap();
    g.ops
        .matvec_q8(&stream, &w, dxq.as_slice(), y.as_slice_mut())
        .unwrap();
    let exec = capture.end().unwrap().instantiate().unwrap();
    for _ in 0..2 {
        // SAFETY: every buffer the graph touches outlives the replays, which finish
        // (in stream order) before the reads below.
        unsafe { exec.launch(&stream).unwrap() };
    }
    assert_eq!(dxq.to_vec().unwrap(), xq);
    assert_dot_close(
        "graph matvec_q8",
        &y.to_vec().unwrap(),
        &expected,
        &scale,
        1e-5,
    );
}

#[test]
#[ignore = "needs a GPU"]
fn q8_launchers_reject_mismatched_shapes() {
    let g = gpu();
    let cols = 64;
    let (bytes, _) = weights(GgmlType::Q8_0, 4, cols, 1);
    let dw = upload(&bytes);
    let w = GpuWeights::new(GgmlType::Q8_0, dw.as_slice(), 4, cols).unwrap();
    let row_bytes = q8_activation_row_bytes(cols);
    let xq = upload(&vec![0u8; row_bytes + 16]);
    let mut y = poisoned::<f32>(4);
    assert!(g
        .ops
        .matvec_q8(
            &g.stream,
            &w,
            xq.slice(..row_bytes).unwrap(),
            y.as_slice_mut()
        )
        .is_ok());
    assert!(
        g.ops
            .matvec_q8(
                &g.stream,
                &w,
                xq.slice(..row_bytes - 16).unwrap(),
                y.as_slice_mut()
            )
            .is_err(),
        "a short xq"
    );
    assert!(
        g.ops
            .matvec_q8(
                &g.stream,
                &w,
                xq.slice(8..8 + row_bytes).unwrap(),
                y.as_slice_mut()
            )
            .is_err(),
        "a misaligned xq"
    );
    let mut y3 = poisoned::<f32>(3);
    assert!(g
        .ops
        .matvec_q8(
            &g.stream,
            &w,
            xq.slice(..row_bytes).unwrap(),
            y3.as_slice_mut()
        )
        .is_err());
    // A type without an integer kernel.
    let f16w = upload(&quant::quantize(GgmlType::F16, &random(4 * cols, 2)).unwrap());
    let wf = GpuWeights::new(GgmlType::F16, f16w.as_slice(), 4, cols).unwrap();
    assert!(g
        .ops
        .matvec_q8(
            &g.stream,
            &wf,
            xq.slice(..row_bytes).unwrap(),
            y.as_slice_mut()
        )
        .is_err());
    // Quantization: cols not a multiple of 32, lengths, alignment.
    let x = upload(&random(2 * 48, 3));
    let mut out = poisoned::<u8>(q8_activation_bytes(2, 48) + 64);
    assert!(g
        .ops
        .quantize_activations(
            &g.stream,
            x.as_slice(),
            2,
            48,
            out.slice_mut(..q8_activation_bytes(2, 48)).unwrap()
        )
        .is_err());
    let x = upload(&random(3 * 32, 3));
    let n = q8_activation_bytes(3, 32);
    assert!(g
        .ops
        .quantize_activations(&g.stream, x.as_slice(), 3, 32, out.slice_mut(..n).unwrap())
        .is_ok());
    assert!(g
        .ops
        .quantize_activations(&g.stream, x.as_slice(), 2, 32, out.slice_mut(..n).unwrap())
        .is_err());
    assert!(g
        .ops
        .quantize_activations(
            &g.stream,
            x.as_slice(),
            3,
            32,
            out.slice_mut(..n - 16).unwrap()
        )
        .is_err());
    assert!(g
        .ops
        .quantize_activations(
            &g.stream,
            x.as_slice(),
            3,
            32,
            out.slice_mut(8..8 + n).unwrap()
        )
        .is_err());
    assert!(g
        .ops
        .quantize_activations(
            &g.stream,
            x.slice(..0).unwrap(),
            0,
            32,
            out.slice_mut(..0).unwrap()
        )
        .is_ok());
    g.stream.synchronize().unwrap();
}
