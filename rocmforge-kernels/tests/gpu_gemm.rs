//! GPU matrix × matrix (`QuantOps::matmul`: gemm.hip's tiled kernels, and the matrix ×
//! vector kernel for a few aligned tokens) against the CPU reference, for every
//! weight type, token counts around the tile sizes (16, 64, 128 tokens) and row counts
//! that are not multiples of any tile (32, 64, 128 rows). Outputs start poisoned (NaN)
//! and a guard past the output must stay untouched. Run on the GPU host; ignored elsewhere.

use std::sync::OnceLock;

use rayon::prelude::*;
use rocmforge_hip::{Device, DeviceBuffer, DeviceMemory, DeviceMemoryMut, Stream};
use rocmforge_kernels::cpu::{self, WeightMatrix};
use rocmforge_kernels::gpu::{GpuWeights, KernelLoader, QuantOps, GPU_WEIGHT_TYPES};
use rocmforge_kernels::quant::{self, GgmlType};

struct Gpu {
    stream: Stream,
    ops: QuantOps,
    compute_units: usize,
}

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let device = Device::new(0).expect("a GPU");
        let loader = KernelLoader::new(&device);
        Gpu {
            stream: device.new_stream().unwrap(),
            ops: QuantOps::load(&loader).unwrap(),
            compute_units: device.properties().compute_units as usize,
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

/// Guard elements after each output: they must keep the poison.
const GUARD: usize = 67;

fn poisoned(n: usize) -> DeviceBuffer<f32> {
    let mut b = DeviceBuffer::<f32>::alloc(&gpu().stream, n + GUARD).unwrap();
    b.fill_bytes(0xFF).unwrap();
    b
}

/// One product checked on the GPU against the CPU.
struct Case {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    seed: u64,
}

impl Case {
    fn run(&self) {
        let Case {
            ty,
            rows,
            cols,
            n_tokens,
            seed,
        } = *self;
        let what = format!("matmul {} {rows}x{cols}, {n_tokens} tokens", ty.name());
        let bytes = quant::quantize(ty, &random(rows * cols, seed)).unwrap();
        let wm = WeightMatrix::new(ty, &bytes, rows, cols).unwrap();
        let mut deq = vec![0f32; rows * cols];
        cpu::dequantize_f32(&wm, &mut deq).unwrap();
        let x = random(n_tokens * cols, 1000 + seed);
        let mut expected = vec![0f32; n_tokens * rows];
        cpu::matmul(&wm, &x, n_tokens, &mut expected).unwrap();
        // Σ|w·x| per output: the scale of the rounding error of an f32 dot product.
        let scale: Vec<f32> = (0..n_tokens * rows)
            .into_par_iter()
            .map(|i| {
                let (t, r) = (i / rows, i % rows);
                let (wr, xt) = (&deq[r * cols..][..cols], &x[t * cols..][..cols]);
                wr.iter().zip(xt).map(|(a, b)| (a * b).abs()).sum()
            })
            .collect();

        let g = gpu();
        let dw = upload(&bytes);
        let w = GpuWeights::new(ty, dw.as_slice(), rows, cols).unwrap();
        // X at a 16-byte-aligned address, then one float further (not aligned: a few
        // tokens then take the tiled kernels too, and those must not need alignment).
        let aligned = upload(&x);
        let shifted = upload(&[&[0f32][..], &x].concat());
        for (how, xs) in [
            ("aligned x", aligned.as_slice()),
            ("x at +4 bytes", shifted.slice(1..).unwrap()),
        ] {
            let n_out = n_tokens * rows;
            let mut y = poisoned(n_out);
            g.ops
                .matmul(&g.stream, &w, xs, n_tokens, y.slice_mut(..n_out).unwrap())
                .unwrap();
            let got = y.to_vec().unwrap();
            assert!(
                got[n_out..].iter().all(|v| v.to_bits() == u32::MAX),
                "{what}, {how}: wrote past the output"
            );
            for (i, ((&g, &c), &s)) in got.iter().zip(&expected).zip(&scale).enumerate() {
                assert!(
                    (g - c).abs() <= 1e-5 * s + 1e-6 && !g.is_nan(),
                    "{what}, {how}: Y[{}, {}] gpu {g} cpu {c} (scale {s})",
                    i / rows,
                    i % rows
                );
            }
        }
    }
}

/// Columns for a type: `blocks` of its blocks (at least 32 elements each).
fn cols(ty: GgmlType, blocks: usize) -> usize {
    blocks * ty.block_size().max(32)
}

#[test]
#[ignore = "needs a GPU"]
fn matmul_matches_cpu_for_every_type_and_token_count() {
    // Row counts not a multiple of 32, 64 or 128: every tile has a partial row edge.
    let rows = [37, 67, 131, 200, 45];
    for ty in GPU_WEIGHT_TYPES {
        for (i, n_tokens) in [1, 2, 7, 8, 9, 63, 64, 65, 130, 512]
            .into_iter()
            .enumerate()
        {
            Case {
                ty,
                rows: rows[i % rows.len()],
                // 32-element types: 8 blocks (16 k-steps); K-quants: 2 super-blocks.
                cols: cols(ty, if ty.block_size() > 32 { 2 } else { 8 }),
                n_tokens,
                seed: i as u64,
            }
            .run();
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
fn matmul_large_and_medium_tiles_match_cpu_for_every_type() {
    // matmul takes the 128 × 128 tile (64 × 64 for the float types and Q3_K) when it
    // gives 90% of the compute units a block: with 300 tokens (3 token tiles, the last
    // partial), ceil(rows / 128) × 3 >= compute units. Then, with 130 tokens, rows such
    // that only the 64 × 64 tile fills the device (3 token tiles): the 64 × 64 tile, or
    // the 32 × 16 one for F32, F16, BF16, Q8_0 and Q2_K. Rows: 37 past a multiple of
    // every tile.
    let cu = gpu().compute_units;
    let large = (128 * cu.div_ceil(3) + 37, 300);
    let medium = (64 * (cu * 9).div_ceil(10).div_ceil(3) + 37, 130);
    for (seed, ty) in GPU_WEIGHT_TYPES.into_iter().enumerate() {
        for (rows, n_tokens) in [large, medium] {
            Case {
                ty,
                rows,
                cols: cols(ty, if ty.block_size() > 32 { 1 } else { 4 }),
                n_tokens,
                seed: 50 + seed as u64,
            }
            .run();
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
fn matmul_with_long_rows_matches_cpu() {
    // K = 4096 (256 k-steps): rounding over a long accumulation, and the K-quants'
    // chunk and super-block indexing far into a row.
    for (seed, ty) in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ]
    .into_iter()
    .enumerate()
    {
        for n_tokens in [5, 65] {
            Case {
                ty,
                rows: 70,
                cols: 4096,
                n_tokens,
                seed: 90 + seed as u64,
            }
            .run();
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
fn matmul_rejects_mismatched_shapes() {
    let g = gpu();
    let bytes = quant::quantize(GgmlType::Q4_0, &random(4 * 64, 1)).unwrap();
    let dw = upload(&bytes);
    let w = GpuWeights::new(GgmlType::Q4_0, dw.as_slice(), 4, 64).unwrap();
    let x = upload(&[0f32; 3 * 64]);
    let mut y = poisoned(3 * 4);
    // X of 3 tokens, Y of 3 tokens, but 2 tokens claimed; then Y one short.
    assert!(g
        .ops
        .matmul(&g.stream, &w, x.as_slice(), 2, y.slice_mut(..12).unwrap())
        .is_err());
    assert!(g
        .ops
        .matmul(&g.stream, &w, x.as_slice(), 3, y.slice_mut(..11).unwrap())
        .is_err());
    assert!(g
        .ops
        .matmul(&g.stream, &w, x.as_slice(), 3, y.slice_mut(..12).unwrap())
        .is_ok());
}
