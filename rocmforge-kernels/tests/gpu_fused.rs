//! The fused decode kernels against the unfused GPU sequences they replace, on random
//! inputs of awkward sizes: every fused kernel repeats the unfused kernels' arithmetic
//! expression for expression (same sums in the same order, same conversions), so the
//! comparisons are bit for bit:
//!
//! * `QuantOps::matvec_q8_add` = `matvec_q8`, then `ElementwiseOps::add` (the residual is
//!   added to the same f32 dot product; f32 addition is commutative);
//! * `QuantOps::matvec_q8_multi` = one `matvec_q8` per matrix (each matrix runs the very
//!   kernel instance `matvec_q8` picks for its shape);
//! * `NormOps::rms_norm_q8` = `rms_norm`, then `QuantOps::quantize_activations`;
//! * `ElementwiseOps::swiglu_q8` = `swiglu`, then `quantize_activations`;
//! * `RopeOps::rope_qk_kv_write_at` = `rope_inplace` of q and of k, then
//!   `AttentionOps::kv_cache_write_at` of k and of v.
//!
//! What could still break bit equality is the compiler contracting a multiply and an add
//! into an FMA in one kernel and not in the other (both compilers contract by default).
//! The expressions are written the same way in both, and on AMD (gfx906/gfx90a/gfx1030)
//! the generated floating-point instruction sequences were checked to be the same; on
//! the NVIDIA host these tests are the check. Should one fail by an ulp there, that is
//! where to look (the failure message shows both values).
//!
//! Run on the GPU host; ignored elsewhere.

use std::sync::OnceLock;

use bytemuck::Pod;
use half::{bf16, f16};
use rocmforge_hip::{Device, DeviceBuffer, DeviceMemory, DeviceMemoryMut, Stream};
use rocmforge_kernels::cpu::{KvCacheShape, RopeMode};
use rocmforge_kernels::gpu::{
    q8_activation_bytes, q8_activation_row_bytes, AttentionOps, ElementwiseOps, GpuKvElement,
    GpuWeights, KernelLoader, NormOps, QuantOps, RopeConfig, RopeOps, MATVEC_Q8_MULTI_MAX,
    Q8_MATVEC_TYPES,
};
use rocmforge_kernels::quant::{self, GgmlType};

struct Gpu {
    device: Device,
    stream: Stream,
    quant: QuantOps,
    norm: NormOps,
    elementwise: ElementwiseOps,
    rope: RopeOps,
    attention: AttentionOps,
}

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let device = Device::new(0).expect("a GPU");
        let loader = KernelLoader::new(&device);
        Gpu {
            stream: device.new_stream().unwrap(),
            quant: QuantOps::load(&loader).unwrap(),
            norm: NormOps::load(&loader).unwrap(),
            elementwise: ElementwiseOps::load(&loader).unwrap(),
            rope: RopeOps::load(&loader).unwrap(),
            attention: AttentionOps::load(&loader).unwrap(),
            device,
        }
    })
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

fn upload<T: Pod>(data: &[T]) -> DeviceBuffer<T> {
    DeviceBuffer::from_slice(&gpu().stream, data).unwrap()
}

/// A buffer of 0xFF bytes (NaN for floats): an unwritten element fails a comparison.
fn poisoned<T: Pod>(n: usize) -> DeviceBuffer<T> {
    let mut b = DeviceBuffer::<T>::alloc(&gpu().stream, n).unwrap();
    b.fill_bytes(0xFF).unwrap();
    b
}

/// Asserts that two buffers hold the same bytes, naming the first differing element.
fn assert_same_bits<T: Pod + std::fmt::Debug>(what: &str, got: &[T], expected: &[T]) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths");
    let size = std::mem::size_of::<T>();
    let (g, e): (&[u8], &[u8]) = (bytemuck::cast_slice(got), bytemuck::cast_slice(expected));
    if let Some(i) = g.iter().zip(e).position(|(a, b)| a != b) {
        let k = i / size;
        panic!(
            "{what}: element {k} is {:?} fused, {:?} unfused",
            got[k], expected[k]
        );
    }
}

/// Quantized random weights of `rows × cols` in `ty`. Rows past 64 repeat the first 64
/// (rows are independent, and this keeps the CPU quantizer's work small).
fn weights(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let base_rows = rows.min(64);
    let base = quant::quantize(ty, &random(base_rows * cols, seed, 1.0)).unwrap();
    let row_bytes = base.len() / base_rows;
    (0..rows)
        .flat_map(|r| &base[(r % base_rows) * row_bytes..(r % base_rows + 1) * row_bytes])
        .copied()
        .collect()
}

/// Activations with an all-zero block, a block of one large value and tiny values, and
/// halves of a quantization step (the cases the quantizer's rounding must agree on).
fn activations(n: usize, seed: u64) -> Vec<f32> {
    let mut x = random(n, seed, 2.0);
    x[..32].fill(0.0);
    if n >= 96 {
        x[32..64].iter_mut().for_each(|v| *v *= 1e-30);
        x[40] = 1e6;
        for (i, v) in x[64..96].iter_mut().enumerate() {
            *v = (i as f32 - 16.0) + 0.5;
        }
        x[64] = 127.0;
    }
    x
}

/// Widths for the 32-element block types: the model widths, and some that are not
/// multiples of 128 (odd block counts, whose quantized rows end in padding).
const Q8_WIDTHS: [usize; 7] = [576, 1536, 4096, 14336, 96, 160, 2080];

/// Widths a type takes: multiples of its block size (256 for the K-quants, so no width
/// of theirs avoids multiples of 128).
fn widths(ty: GgmlType) -> Vec<usize> {
    let k = ty.block_size().max(32);
    let mut w: Vec<usize> = Q8_WIDTHS.iter().copied().filter(|w| w % k == 0).collect();
    if k == 256 {
        w.extend([256, 1280]);
    }
    w
}

/// The quantized activations of one random token of `cols`, on the device.
fn quantized_token(cols: usize, seed: u64) -> DeviceBuffer<u8> {
    let g = gpu();
    let x = upload(&activations(cols, seed));
    let mut xq = poisoned::<u8>(q8_activation_row_bytes(cols));
    g.quant
        .quantize_activations(&g.stream, x.as_slice(), 1, cols, xq.as_slice_mut())
        .unwrap();
    xq
}

/// `matvec_q8` into a fresh buffer.
fn matvec_q8(w: &GpuWeights<'_>, xq: &DeviceBuffer<u8>) -> Vec<f32> {
    let g = gpu();
    let mut y = poisoned::<f32>(w.rows());
    g.quant
        .matvec_q8(&g.stream, w, xq.as_slice(), y.as_slice_mut())
        .unwrap();
    y.to_vec().unwrap()
}

#[test]
#[ignore = "needs a GPU"]
fn matvec_q8_add_is_matvec_q8_then_add_bit_for_bit() {
    let g = gpu();
    for ty in Q8_MATVEC_TYPES {
        let k = ty.block_size().max(32);
        // Every size class of the variant choice: K/V-sized, a mid-size, FFN-tall and the
        // output-matrix class (narrow there, to keep the data small).
        let mut shapes: Vec<(usize, usize)> = widths(ty)
            .into_iter()
            .zip([1usize, 7, 67, 192, 576, 33, 5, 130])
            .map(|(cols, rows)| (rows, cols))
            .collect();
        shapes.extend([(2049, 3 * k), (8192, k), (32768, k), (40001, 2 * k)]);
        // Whole spans of 256 columns: the window kernels (rf_mvc) of the 32-element types.
        shapes.extend([(37, 2304), (3001, 4096)]);
        for (seed, (rows, cols)) in shapes.into_iter().enumerate() {
            let seed = seed as u64;
            let bytes = weights(ty, rows, cols, 10 + seed);
            let dw = upload(&bytes);
            let w = GpuWeights::new(ty, dw.as_slice(), rows, cols).unwrap();
            let xq = quantized_token(cols, 20 + seed);
            let residual = upload(&random(rows, 30 + seed, 3.0));

            let dot = upload(&matvec_q8(&w, &xq));
            let mut expected = poisoned::<f32>(rows);
            g.elementwise
                .add(
                    &g.stream,
                    residual.as_slice(),
                    dot.as_slice(),
                    expected.as_slice_mut(),
                )
                .unwrap();
            let mut y = poisoned::<f32>(rows);
            g.quant
                .matvec_q8_add(
                    &g.stream,
                    &w,
                    xq.as_slice(),
                    residual.as_slice(),
                    y.as_slice_mut(),
                )
                .unwrap();
            let what = format!(
                "matvec_q8_add {} {rows}x{cols} ({})",
                ty.name(),
                QuantOps::matvec_q8_choice(ty, rows, cols).unwrap()
            );
            assert_same_bits(&what, &y.to_vec().unwrap(), &expected.to_vec().unwrap());
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
fn matvec_q8_multi_is_separate_matvec_q8_calls_bit_for_bit() {
    let g = gpu();
    for ty in Q8_MATVEC_TYPES {
        let k = ty.block_size().max(32);
        let wide = if k == 32 { 576 } else { 1536 };
        // (row counts, cols): SmolLM2 Q/K/V and gate/up, Llama-3-8B Q/K/V, a single
        // matrix, and mixes of the size classes (different kernel variants in one
        // launch, including three different ones for Q5_0).
        let cases: Vec<(Vec<usize>, usize)> = vec![
            (vec![576, 192, 192], wide),
            (vec![1536, 1536], wide),
            (vec![4096, 1024, 1024], 2 * k),
            (vec![67], 4096),
            (vec![40000, 7, 2049], k),
            (vec![40000, 8192, 7], k),
            (vec![5, 33], 3 * k),
            // Whole spans of 256 columns (the window kernels; Q4_1 mixes two of them).
            (vec![4096, 1024, 1024], 4096),
            (vec![3001, 200, 41], 2304),
        ];
        let mut mixed = false;
        for (seed, (rows, cols)) in cases.into_iter().enumerate() {
            let seed = seed as u64;
            let bytes: Vec<Vec<u8>> = rows
                .iter()
                .enumerate()
                .map(|(m, &r)| weights(ty, r, cols, 100 + 10 * seed + m as u64))
                .collect();
            let dws: Vec<DeviceBuffer<u8>> = bytes.iter().map(|b| upload(b)).collect();
            let ws: Vec<GpuWeights<'_>> = dws
                .iter()
                .zip(&rows)
                .map(|(d, &r)| GpuWeights::new(ty, d.as_slice(), r, cols).unwrap())
                .collect();
            let xq = quantized_token(cols, 200 + seed);
            let expected: Vec<Vec<f32>> = ws.iter().map(|w| matvec_q8(w, &xq)).collect();

            let mut outs: Vec<DeviceBuffer<f32>> = rows.iter().map(|&r| poisoned(r)).collect();
            let mut ys: Vec<_> = outs.iter_mut().map(|o| o.as_slice_mut()).collect();
            let refs: Vec<&GpuWeights<'_>> = ws.iter().collect();
            g.quant
                .matvec_q8_multi(&g.stream, &refs, xq.as_slice(), &mut ys)
                .unwrap();
            drop(ys);
            let choice = QuantOps::matvec_q8_multi_choice(ty, &rows, cols).unwrap();
            mixed |= choice.ends_with("_mixed");
            for (m, (out, exp)) in outs.iter().zip(&expected).enumerate() {
                let what = format!(
                    "matvec_q8_multi {} {rows:?}x{cols} ({choice}), matrix {m}",
                    ty.name()
                );
                assert_same_bits(&what, &out.to_vec().unwrap(), exp);
            }
        }
        // Q4_1's two variants differ by width only (the window kernel for whole spans of
        // 256 columns), which the matrices of one launch share.
        assert!(
            mixed || ty == GgmlType::Q4_1,
            "{}: a launch mixed kernel variants",
            ty.name()
        );
    }
}

/// Rows 1..8 of every width (and of 32, a single quantization block).
fn norm_shapes() -> Vec<(usize, usize)> {
    let mut shapes = Vec::new();
    for (i, &n) in Q8_WIDTHS.iter().chain(&[32usize]).enumerate() {
        for rows in [1 + i % 8, 8 - i % 8] {
            shapes.push((rows, n));
        }
    }
    shapes
}

#[test]
#[ignore = "needs a GPU"]
fn rms_norm_q8_is_rms_norm_then_quantization_bit_for_bit() {
    let g = gpu();
    for (seed, (rows, n)) in norm_shapes().into_iter().enumerate() {
        let seed = seed as u64;
        let x = upload(&activations(rows * n, 300 + seed));
        let weight = upload(&random(n, 400 + seed, 2.0));
        for eps in [1e-5f32, 1e-6] {
            let mut y = poisoned::<f32>(rows * n);
            g.norm
                .rms_norm(
                    &g.stream,
                    x.as_slice(),
                    weight.as_slice(),
                    y.as_slice_mut(),
                    rows,
                    n,
                    eps,
                )
                .unwrap();
            let mut expected = poisoned::<u8>(q8_activation_bytes(rows, n));
            g.quant
                .quantize_activations(&g.stream, y.as_slice(), rows, n, expected.as_slice_mut())
                .unwrap();
            let expected = expected.to_vec().unwrap();

            let mut q = poisoned::<u8>(expected.len());
            let mut f = poisoned::<f32>(rows * n);
            g.norm
                .rms_norm_q8(
                    &g.stream,
                    x.as_slice(),
                    weight.as_slice(),
                    rows,
                    n,
                    eps,
                    Some(f.as_slice_mut()),
                    q.as_slice_mut(),
                )
                .unwrap();
            let what = format!("rms_norm_q8 {rows}x{n} eps {eps}");
            assert_same_bits(
                &format!("{what}: f32"),
                &f.to_vec().unwrap(),
                &y.to_vec().unwrap(),
            );
            assert_same_bits(&format!("{what}: q8"), &q.to_vec().unwrap(), &expected);

            // Without the f32 output: the same bytes.
            let mut q2 = poisoned::<u8>(expected.len());
            g.norm
                .rms_norm_q8(
                    &g.stream,
                    x.as_slice(),
                    weight.as_slice(),
                    rows,
                    n,
                    eps,
                    None,
                    q2.as_slice_mut(),
                )
                .unwrap();
            assert_same_bits(
                &format!("{what}: q8 only"),
                &q2.to_vec().unwrap(),
                &expected,
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
fn swiglu_q8_is_swiglu_then_quantization_bit_for_bit() {
    let g = gpu();
    let mut shapes = norm_shapes();
    // 16,973,824 values: more than one grid-stride pass (the grid covers 2^24).
    shapes.push((1184, 14336));
    for (seed, (rows, n)) in shapes.into_iter().enumerate() {
        let seed = seed as u64;
        let gate = upload(&random(rows * n, 500 + seed, 8.0));
        let up = upload(&activations(rows * n, 600 + seed));
        let mut y = poisoned::<f32>(rows * n);
        g.elementwise
            .swiglu(&g.stream, gate.as_slice(), up.as_slice(), y.as_slice_mut())
            .unwrap();
        let mut expected = poisoned::<u8>(q8_activation_bytes(rows, n));
        g.quant
            .quantize_activations(&g.stream, y.as_slice(), rows, n, expected.as_slice_mut())
            .unwrap();
        let mut q = poisoned::<u8>(q8_activation_bytes(rows, n));
        g.elementwise
            .swiglu_q8(
                &g.stream,
                gate.as_slice(),
                up.as_slice(),
                rows,
                n,
                q.as_slice_mut(),
            )
            .unwrap();
        assert_same_bits(
            &format!("swiglu_q8 {rows}x{n}"),
            &q.to_vec().unwrap(),
            &expected.to_vec().unwrap(),
        );
    }
}

/// One RoPE + KV-write case: the fused launch against rope_inplace(q), rope_inplace(k),
/// kv_cache_write_at(k), kv_cache_write_at(v), on caches with random prior contents.
#[allow(clippy::too_many_arguments)]
fn rope_case<T: GpuKvElement + std::fmt::Debug>(
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    n_rot: usize,
    mode: RopeMode,
    with_factors: bool,
    positions: &[i32],
    n_ctx: usize,
    seed: u64,
) {
    let g = gpu();
    let n_new = positions.len();
    let cfg = RopeConfig {
        n_heads,
        head_dim,
        n_rot,
        mode,
        freq_base: 10000.0,
        freq_scale: 0.5,
    };
    let kv_cfg = RopeConfig {
        n_heads: n_kv_heads,
        ..cfg
    };
    let shape = KvCacheShape {
        n_ctx,
        n_kv_heads,
        head_dim,
    };
    let q = random(n_new * n_heads * head_dim, seed, 3.0);
    let k = random(n_new * n_kv_heads * head_dim, seed + 1, 3.0);
    let v = random(n_new * n_kv_heads * head_dim, seed + 2, 3.0);
    let cache0: Vec<T> = random(shape.elements().unwrap(), seed + 3, 1.0)
        .into_iter()
        .map(T::from_f32)
        .collect();
    let factors = upload(
        &(0..n_rot / 2)
            .map(|i| 1.0 + (i % 5) as f32)
            .collect::<Vec<f32>>(),
    );
    let factors = with_factors.then(|| factors.as_slice());
    let dpos = upload(positions);
    let (dk, dv) = (upload(&k), upload(&v));

    // The unfused sequence.
    let mut q_ref = upload(&q);
    let mut k_ref = upload(&k);
    let (mut kc_ref, mut vc_ref) = (upload(&cache0), upload(&cache0));
    g.rope
        .rope_inplace(
            &g.stream,
            q_ref.as_slice_mut(),
            dpos.as_slice(),
            factors,
            &cfg,
        )
        .unwrap();
    g.rope
        .rope_inplace(
            &g.stream,
            k_ref.as_slice_mut(),
            dpos.as_slice(),
            factors,
            &kv_cfg,
        )
        .unwrap();
    g.attention
        .kv_cache_write_at(
            &g.stream,
            kc_ref.as_slice_mut(),
            shape,
            dpos.as_slice(),
            k_ref.as_slice(),
            n_new,
        )
        .unwrap();
    g.attention
        .kv_cache_write_at(
            &g.stream,
            vc_ref.as_slice_mut(),
            shape,
            dpos.as_slice(),
            dv.as_slice(),
            n_new,
        )
        .unwrap();

    let mut dq = upload(&q);
    let (mut kc, mut vc) = (upload(&cache0), upload(&cache0));
    g.rope
        .rope_qk_kv_write_at(
            &g.stream,
            dq.as_slice_mut(),
            dk.as_slice(),
            dv.as_slice(),
            dpos.as_slice(),
            factors,
            &cfg,
            n_kv_heads,
            kc.as_slice_mut(),
            vc.as_slice_mut(),
            shape,
            n_new,
        )
        .unwrap();
    let what = format!(
        "rope_qk_kv_write_at<{}> {n_heads}/{n_kv_heads} heads of {head_dim} (n_rot {n_rot}, \
         {mode:?}, factors {with_factors}) at {positions:?} in {n_ctx}",
        T::NAME
    );
    assert_same_bits(
        &format!("{what}: q"),
        &dq.to_vec().unwrap(),
        &q_ref.to_vec().unwrap(),
    );
    assert_same_bits(&format!("{what}: k untouched"), &dk.to_vec().unwrap(), &k);
    assert_same_bits(
        &format!("{what}: k cache"),
        &kc.to_vec().unwrap(),
        &kc_ref.to_vec().unwrap(),
    );
    assert_same_bits(
        &format!("{what}: v cache"),
        &vc.to_vec().unwrap(),
        &vc_ref.to_vec().unwrap(),
    );
    let fits = positions[0] >= 0 && positions[0] as usize + n_new <= n_ctx;
    if !fits {
        // Nothing written: the caches keep their prior contents.
        assert_same_bits(
            &format!("{what}: k cache kept"),
            &kc.to_vec().unwrap(),
            &cache0,
        );
        assert_same_bits(
            &format!("{what}: v cache kept"),
            &vc.to_vec().unwrap(),
            &cache0,
        );
    }
}

fn rope_cases<T: GpuKvElement + std::fmt::Debug>() {
    let n_ctx = 300;
    // (n_heads, n_kv_heads, head_dim, n_rot): SmolLM2-135M, Llama-3-8B, a partial
    // rotation with an odd number of pairs, and a head dimension of 80.
    let heads = [
        (9, 3, 64, 64),
        (32, 8, 128, 128),
        (4, 2, 80, 40),
        (6, 6, 80, 80),
    ];
    let mut seed = 0;
    for (n_heads, n_kv_heads, head_dim, n_rot) in heads {
        for mode in [RopeMode::Normal, RopeMode::Neox] {
            for with_factors in [false, true] {
                for positions in [
                    vec![0],
                    vec![17],
                    vec![250, 251, 252],
                    // Not consecutive, and large angles: token t is rotated at
                    // positions[t] and written to row positions[0] + t.
                    vec![100, 4000, 30000, 7, 101, 102, 103, 290],
                    // The last row.
                    vec![299],
                    // Past the end, and negative: the caches are not written.
                    vec![299, 300],
                    vec![-1],
                ] {
                    seed += 10;
                    rope_case::<T>(
                        n_heads,
                        n_kv_heads,
                        head_dim,
                        n_rot,
                        mode,
                        with_factors,
                        &positions,
                        n_ctx,
                        seed,
                    );
                }
            }
        }
    }
}

#[test]
#[ignore = "needs a GPU"]
fn rope_qk_kv_write_at_is_rope_then_the_cache_writes_bit_for_bit() {
    rope_cases::<f32>();
    rope_cases::<f16>();
    rope_cases::<bf16>();
}

/// All fused ops allocate nothing: they capture into a graph, and its replays give what
/// the eager launches give.
#[test]
#[ignore = "needs a GPU"]
fn fused_ops_capture_into_a_graph() {
    let g = gpu();
    // A stream of its own: the other tests allocate on the shared one meanwhile.
    let stream = g.device.new_stream().unwrap();
    let up = |data: &[f32]| DeviceBuffer::from_slice(&stream, data).unwrap();
    let poison = |n: usize| {
        let mut b = DeviceBuffer::<f32>::alloc(&stream, n).unwrap();
        b.fill_bytes(0xFF).unwrap();
        b
    };
    let (n, ty) = (576, GgmlType::Q8_0);
    let x = up(&activations(n, 1));
    let weight = up(&random(n, 2, 1.0));
    let residual = up(&random(n, 3, 1.0));
    let wq = DeviceBuffer::from_slice(&stream, &weights(ty, n, n, 4)).unwrap();
    let wk = DeviceBuffer::from_slice(&stream, &weights(ty, 192, n, 5)).unwrap();
    let wq = GpuWeights::new(ty, wq.as_slice(), n, n).unwrap();
    let wk = GpuWeights::new(ty, wk.as_slice(), 192, n).unwrap();
    let mut xq = DeviceBuffer::<u8>::alloc(&stream, q8_activation_row_bytes(n)).unwrap();
    let mut sq = DeviceBuffer::<u8>::alloc(&stream, q8_activation_row_bytes(n)).unwrap();
    let (mut yq, mut yk, mut yo) = (poison(n), poison(192), poison(n));
    let (head_dim, n_heads, n_kv_heads, n_ctx) = (64, 9, 3, 32);
    let cfg = RopeConfig {
        n_heads,
        head_dim,
        n_rot: head_dim,
        mode: RopeMode::Neox,
        freq_base: 10000.0,
        freq_scale: 1.0,
    };
    let shape = KvCacheShape {
        n_ctx,
        n_kv_heads,
        head_dim,
    };
    let pos = DeviceBuffer::from_slice(&stream, &[5i32]).unwrap();
    let kv_new = up(&random(n_kv_heads * head_dim, 6, 1.0));
    let mut kc = DeviceBuffer::<f16>::zeroed(&stream, shape.elements().unwrap()).unwrap();
    let mut vc = DeviceBuffer::<f16>::zeroed(&stream, shape.elements().unwrap()).unwrap();

    let mut run = |stream: &Stream,
                   yq: &mut DeviceBuffer<f32>,
                   yk: &mut DeviceBuffer<f32>,
                   yo: &mut DeviceBuffer<f32>,
                   kc: &mut DeviceBuffer<f16>,
                   vc: &mut DeviceBuffer<f16>| {
        g.norm
            .rms_norm_q8(
                stream,
                x.as_slice(),
                weight.as_slice(),
                1,
                n,
                1e-5,
                None,
                xq.as_slice_mut(),
            )
            .unwrap();
        g.quant
            .matvec_q8_multi(
                stream,
                &[&wq, &wk],
                xq.as_slice(),
                &mut [yq.as_slice_mut(), yk.as_slice_mut()],
            )
            .unwrap();
        g.rope
            .rope_qk_kv_write_at(
                stream,
                yq.slice_mut(..n_heads * head_dim).unwrap(),
                kv_new.as_slice(),
                kv_new.as_slice(),
                pos.as_slice(),
                None,
                &cfg,
                n_kv_heads,
                kc.as_slice_mut(),
                vc.as_slice_mut(),
                shape,
                1,
            )
            .unwrap();
        g.elementwise
            .swiglu_q8(stream, yq.as_slice(), x.as_slice(), 1, n, sq.as_slice_mut())
            .unwrap();
        g.quant
            .matvec_q8_add(
                stream,
                &wq,
                sq.as_slice(),
                residual.as_slice(),
                yo.as_slice_mut(),
            )
            .unwrap();
    };
    // Eager, then the same calls captured on fresh outputs.
    run(&stream, &mut yq, &mut yk, &mut yo, &mut kc, &mut vc);
    let eager = (
        yq.to_vec().unwrap(),
        yk.to_vec().unwrap(),
        yo.to_vec().unwrap(),
        kc.to_vec().unwrap(),
        vc.to_vec().unwrap(),
    );
    let (mut gq, mut gk, mut go) = (poison(n), poison(192), poison(n));
    let mut gkc = DeviceBuffer::<f16>::zeroed(&stream, shape.elements().unwrap()).unwrap();
    let mut gvc = DeviceBuffer::<f16>::zeroed(&stream, shape.elements().unwrap()).unwrap();
    let capture = stream.begin_capture().unwrap();
    run(&stream, &mut gq, &mut gk, &mut go, &mut gkc, &mut gvc);
    let exec = capture.end().unwrap().instantiate().unwrap();
    for _ in 0..2 {
        // Each replay recomputes q before rotating it, so replays repeat the same values.
        gq.fill_bytes(0xFF).unwrap();
        // SAFETY: every buffer the graph touches outlives the replays, which finish (in
        // stream order) before the reads below.
        unsafe { exec.launch(&stream).unwrap() };
        assert_same_bits("graph: q", &gq.to_vec().unwrap(), &eager.0);
        assert_same_bits("graph: k", &gk.to_vec().unwrap(), &eager.1);
        assert_same_bits("graph: out", &go.to_vec().unwrap(), &eager.2);
        assert_same_bits("graph: k cache", &gkc.to_vec().unwrap(), &eager.3);
        assert_same_bits("graph: v cache", &gvc.to_vec().unwrap(), &eager.4);
    }
}

#[test]
#[ignore = "needs a GPU"]
fn fused_launchers_reject_bad_shapes() {
    let g = gpu();
    let cols = 64;
    let row_bytes = q8_activation_row_bytes(cols);
    let wb = upload(&weights(GgmlType::Q8_0, 4, cols, 1));
    let w = GpuWeights::new(GgmlType::Q8_0, wb.as_slice(), 4, cols).unwrap();
    let wb3 = upload(&weights(GgmlType::Q8_0, 3, 2 * cols, 2));
    let w_wide = GpuWeights::new(GgmlType::Q8_0, wb3.as_slice(), 3, 2 * cols).unwrap();
    let wb4 = upload(&weights(GgmlType::Q4_0, 4, cols, 3));
    let w_q4 = GpuWeights::new(GgmlType::Q4_0, wb4.as_slice(), 4, cols).unwrap();
    let f16w = upload(&quant::quantize(GgmlType::F16, &random(4 * cols, 4, 1.0)).unwrap());
    let w_f16 = GpuWeights::new(GgmlType::F16, f16w.as_slice(), 4, cols).unwrap();
    let xq = upload(&vec![0u8; row_bytes + 16]);
    let xq_ok = xq.slice(..row_bytes).unwrap();
    let res4 = upload(&[1f32; 4]);
    let res5 = upload(&[1f32; 5]);
    let mut y = poisoned::<f32>(4);
    let mut y3 = poisoned::<f32>(3);

    // matvec_q8_add.
    let add = |w: &GpuWeights<'_>, xq, res: &DeviceBuffer<f32>, y: &mut DeviceBuffer<f32>| {
        g.quant
            .matvec_q8_add(&g.stream, w, xq, res.as_slice(), y.as_slice_mut())
    };
    assert!(add(&w, xq_ok, &res4, &mut y).is_ok());
    assert!(add(&w, xq_ok, &res5, &mut y).is_err(), "residual length");
    assert!(add(&w, xq_ok, &res4, &mut y3).is_err(), "output length");
    assert!(
        add(&w, xq.slice(8..8 + row_bytes).unwrap(), &res4, &mut y).is_err(),
        "alignment"
    );
    assert!(
        add(&w, xq.slice(..row_bytes - 16).unwrap(), &res4, &mut y).is_err(),
        "short xq"
    );
    assert!(
        add(&w_f16, xq_ok, &res4, &mut y).is_err(),
        "a type without an integer kernel"
    );

    // matvec_q8_multi.
    {
        let multi = |ws: &[&GpuWeights<'_>], ys: &mut [rocmforge_hip::DeviceSliceMut<f32>]| {
            g.quant.matvec_q8_multi(&g.stream, ws, xq_ok, ys)
        };
        let mut a = poisoned::<f32>(4);
        let mut b = poisoned::<f32>(4);
        let mut c = poisoned::<f32>(4);
        let mut d = poisoned::<f32>(4);
        assert!(multi(&[&w, &w], &mut [a.as_slice_mut(), b.as_slice_mut()]).is_ok());
        assert!(multi(&[], &mut []).is_err(), "no matrices");
        assert!(
            multi(
                &[&w; MATVEC_Q8_MULTI_MAX + 1],
                &mut [
                    a.as_slice_mut(),
                    b.as_slice_mut(),
                    c.as_slice_mut(),
                    d.as_slice_mut()
                ]
            )
            .is_err(),
            "too many matrices"
        );
        assert!(
            multi(&[&w, &w], &mut [a.as_slice_mut()]).is_err(),
            "outputs"
        );
        assert!(
            multi(&[&w, &w_q4], &mut [a.as_slice_mut(), b.as_slice_mut()]).is_err(),
            "types differ"
        );
        assert!(
            multi(&[&w, &w_wide], &mut [a.as_slice_mut(), y3.as_slice_mut()]).is_err(),
            "widths differ"
        );
        assert!(
            multi(&[&w, &w], &mut [a.as_slice_mut(), y3.as_slice_mut()]).is_err(),
            "output length"
        );
        assert!(multi(&[&w_f16], &mut [a.as_slice_mut()]).is_err(), "type");
    }

    // rms_norm_q8 and swiglu_q8.
    let x = upload(&random(2 * 96, 5, 1.0));
    let wt = upload(&random(96, 6, 1.0));
    let q_len = q8_activation_bytes(2, 96);
    let mut q = poisoned::<u8>(q8_activation_bytes(4, 96) + 16);
    let mut f = poisoned::<f32>(2 * 96);
    let norm = |x: rocmforge_hip::DeviceSlice<f32>,
                rows,
                n,
                f: Option<rocmforge_hip::DeviceSliceMut<f32>>,
                q: rocmforge_hip::DeviceSliceMut<u8>| {
        g.norm
            .rms_norm_q8(&g.stream, x, wt.as_slice(), rows, n, 1e-5, f, q)
    };
    assert!(norm(
        x.as_slice(),
        2,
        96,
        Some(f.as_slice_mut()),
        q.slice_mut(..q_len).unwrap()
    )
    .is_ok());
    q.fill_bytes(0xFF).unwrap();
    f.fill_bytes(0xFF).unwrap();
    assert!(
        norm(
            x.as_slice(),
            4,
            48,
            None,
            q.slice_mut(..q8_activation_bytes(4, 48)).unwrap()
        )
        .is_err(),
        "n % 32"
    );
    assert!(
        norm(
            x.as_slice(),
            3,
            96,
            None,
            q.slice_mut(..q8_activation_bytes(3, 96)).unwrap()
        )
        .is_err(),
        "x length"
    );
    assert!(
        norm(
            x.as_slice(),
            2,
            96,
            None,
            q.slice_mut(..q_len - 16).unwrap()
        )
        .is_err(),
        "q length"
    );
    assert!(
        norm(
            x.as_slice(),
            2,
            96,
            None,
            q.slice_mut(8..8 + q_len).unwrap()
        )
        .is_err(),
        "q alignment"
    );
    assert!(
        norm(
            x.as_slice(),
            2,
            96,
            Some(f.slice_mut(1..).unwrap()),
            q.slice_mut(..q_len).unwrap()
        )
        .is_err(),
        "f32 length"
    );
    assert!(
        norm(
            x.slice(..0).unwrap(),
            0,
            96,
            None,
            q.slice_mut(..0).unwrap()
        )
        .is_ok(),
        "no rows"
    );

    let sw =
        |gate: rocmforge_hip::DeviceSlice<f32>, rows, n, q: rocmforge_hip::DeviceSliceMut<u8>| {
            g.elementwise
                .swiglu_q8(&g.stream, gate, x.as_slice(), rows, n, q)
        };
    assert!(
        sw(x.slice(1..).unwrap(), 2, 96, q.slice_mut(..q_len).unwrap()).is_err(),
        "gate length"
    );
    assert!(
        sw(
            x.as_slice(),
            4,
            48,
            q.slice_mut(..q8_activation_bytes(4, 48)).unwrap()
        )
        .is_err(),
        "n % 32"
    );
    assert!(
        sw(x.as_slice(), 2, 96, q.slice_mut(..q_len - 16).unwrap()).is_err(),
        "q length"
    );
    assert!(
        sw(x.as_slice(), 2, 96, q.slice_mut(8..8 + q_len).unwrap()).is_err(),
        "q alignment"
    );
    assert!(sw(
        x.as_slice(),
        1,
        192,
        q.slice_mut(..q8_activation_bytes(1, 192)).unwrap()
    )
    .is_ok());
    g.stream.synchronize().unwrap();
    assert!(
        f.to_vec().unwrap().iter().all(|v| v.to_bits() == u32::MAX),
        "no f32 written"
    );

    // rope_qk_kv_write_at.
    let (n_heads, n_kv_heads, head_dim, n_ctx) = (4, 2, 16, 8);
    let cfg = RopeConfig {
        n_heads,
        head_dim,
        n_rot: head_dim,
        mode: RopeMode::Normal,
        freq_base: 10000.0,
        freq_scale: 1.0,
    };
    let shape = KvCacheShape {
        n_ctx,
        n_kv_heads,
        head_dim,
    };
    let n_new = 2;
    let mut dq = upload(&random(n_new * n_heads * head_dim, 7, 1.0));
    let kv = upload(&random(n_new * n_kv_heads * head_dim, 8, 1.0));
    let pos = upload(&[0i32, 1]);
    let factors = upload(&[1f32; 8]);
    let mut kc = poisoned::<f32>(shape.elements().unwrap());
    let mut vc = poisoned::<f32>(shape.elements().unwrap());
    let mut rope = |cfg: &RopeConfig, nkv: usize, shape: KvCacheShape, n_new: usize, factors| {
        g.rope.rope_qk_kv_write_at::<f32>(
            &g.stream,
            dq.as_slice_mut(),
            kv.as_slice(),
            kv.as_slice(),
            pos.as_slice(),
            factors,
            cfg,
            nkv,
            kc.as_slice_mut(),
            vc.as_slice_mut(),
            shape,
            n_new,
        )
    };
    assert!(rope(&cfg, n_kv_heads, shape, n_new, None).is_ok());
    assert!(rope(&cfg, n_kv_heads, shape, n_new, Some(factors.as_slice())).is_ok());
    let odd = RopeConfig { n_rot: 15, ..cfg };
    assert!(
        rope(&odd, n_kv_heads, shape, n_new, None).is_err(),
        "odd n_rot"
    );
    let zero = RopeConfig { n_rot: 0, ..cfg };
    assert!(
        rope(&zero, n_kv_heads, shape, n_new, None).is_err(),
        "n_rot 0"
    );
    assert!(
        rope(&cfg, 1, shape, n_new, None).is_err(),
        "KV heads disagree with the cache"
    );
    let other_dim = KvCacheShape {
        head_dim: 8,
        n_kv_heads: 4,
        ..shape
    };
    assert!(
        rope(&cfg, 4, other_dim, n_new, None).is_err(),
        "head_dim disagrees"
    );
    assert!(
        rope(&cfg, n_kv_heads, shape, 1, None).is_err(),
        "positions and n_new"
    );
    assert!(
        rope(
            &cfg,
            n_kv_heads,
            shape,
            n_new,
            Some(factors.slice(..7).unwrap())
        )
        .is_err(),
        "factors length"
    );
    let tiny = KvCacheShape { n_ctx: 1, ..shape };
    assert!(
        rope(&cfg, n_kv_heads, tiny, n_new, None).is_err(),
        "cache length"
    );
    let wide = RopeConfig { n_heads: 3, ..cfg };
    assert!(
        rope(&wide, n_kv_heads, shape, n_new, None).is_err(),
        "q length"
    );
    g.stream.synchronize().unwrap();
}
