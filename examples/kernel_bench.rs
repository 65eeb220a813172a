//! Benchmarks the weight kernels at Llama-3-8B shapes: matrix × vector (decode) in each
//! weight type — time, achieved GB/s and the fraction of the measured device copy
//! bandwidth — and matrix × matrix at 512 tokens (prefill), TFLOP/s.
//!
//! Matrix × vector runs twice for the types with an integer kernel: with f32 activations
//! (`act` f32: `QuantOps::matvec`) and with activations quantized to 8 bits (`act` q8:
//! `QuantOps::matvec_q8`, whose bytes count the quantized activations; `q8/r1` etc. name
//! the kernel it chose for the shape); the time of `quantize_activations` is printed
//! once per width. Each line also gives the kernel replayed from a graph (`graph us`,
//! `graph %`): launched one by one, a launch costs about 3 µs of host time, more than a
//! small matrix takes on the GPU.
//!
//! Under each shape, a `read` line gives a kernel that only reads the matrix's bytes
//! (coalesced 16-byte loads, no decoding): what moving that many bytes in one launch
//! costs at least, fixed costs included — the ceiling to read the other lines against.
//!
//! `cargo run --release --example kernel_bench [-- --quick] [--no-matmul] [--types q4_0,q8_0,f16] [--variants]`
//! (`--variants`: also every integer kernel of the type, by name; `--help` lists the options.)

use std::process::ExitCode;

use clap::Parser;
use rocmforge::hip::{Dim3, In, LaunchConfig, Out, TypedKernel};
use rocmforge::kernels::gpu::{
    matvec_reads_q8, q8_activation_bytes, GpuWeights, KernelLoader, QuantOps, GPU_WEIGHT_TYPES,
};
use rocmforge::kernels::quant::{self, GgmlType};
use rocmforge::kernels::KernelSource;
use rocmforge::prelude::*;

/// (rows, cols) of Llama-3-8B's matrices: q/o, k/v, gate/up, down, output.
const SHAPES: [(usize, usize, &str); 5] = [
    (4096, 4096, "attn_q"),
    (1024, 4096, "attn_k"),
    (14336, 4096, "ffn_up"),
    (4096, 14336, "ffn_down"),
    (128256, 4096, "output"),
];

/// Matvec launches per timed sample.
const BATCH: usize = 10;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time_ms(stream: &Stream, reps: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<f64> {
    f(0)?;
    stream.synchronize()?;
    let mut samples = Vec::with_capacity(reps);
    for i in 0..reps {
        let start = stream.record_timing_event()?;
        f(i + 1)?;
        let end = stream.record_timing_event()?;
        end.synchronize()?;
        samples.push(f64::from(end.elapsed_ms(&start)?));
    }
    Ok(median(samples))
}

/// The time of one launch of `f` (which launches `BATCH` kernels for its argument, a
/// rotation index), replayed from a captured graph: the GPU time without the host's
/// launch costs.
fn graph_time_ms(
    stream: &Stream,
    reps: usize,
    mut f: impl FnMut(usize) -> Result<()>,
) -> Result<f64> {
    let capture = stream.begin_capture()?;
    f(0)?;
    let exec = capture.end()?.instantiate()?;
    Ok(time_ms(stream, reps, |_| {
        // SAFETY: the graph reads and writes only buffers of the caller's, which outlive
        // this function's replays (time_ms waits for each sample's end).
        unsafe { exec.launch(stream) }
    })? / BATCH as f64)
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

/// Quantized weights of rows × cols: 64 rows quantized from random data, tiled.
fn weight_bytes(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let tile_rows = 64.min(rows);
    let tile = quant::quantize(ty, &random(tile_rows * cols, 1)).expect("quantize");
    let mut bytes = Vec::with_capacity(tile.len() * rows.div_ceil(tile_rows));
    while bytes.len() < tile.len() / tile_rows * rows {
        bytes.extend_from_slice(&tile);
    }
    bytes.truncate(tile.len() / tile_rows * rows);
    bytes
}

/// A kernel that only reads: `n_words` 16-byte words, `READ_PROBE_UNROLL` per thread,
/// each load instruction of a wave covering consecutive words. It stands for the best a
/// matrix × vector kernel can do with the same bytes: no decoding, no activations, no
/// reduction — what a launch that reads this many bytes costs at least, its fixed costs
/// (launch, the first loads' latency, the last blocks' tail) included.
const READ_PROBE: KernelSource = KernelSource {
    name: "kernel_bench_read_probe.hip",
    source: r#"
struct alignas(16) probe_word { rf_u32 x, y, z, w; };
#define READ_PROBE_UNROLL 8
extern "C" __global__ void rf_read_probe(const probe_word* __restrict__ p, rf_u64 n_words,
                                         rf_u32* __restrict__ out) {
    const rf_u64 base = (rf_u64)blockIdx.x * READ_PROBE_UNROLL * blockDim.x + threadIdx.x;
    rf_u32 acc = 0;
#pragma unroll
    for (int j = 0; j < READ_PROBE_UNROLL; ++j) {
        const rf_u64 i = base + (rf_u64)j * blockDim.x;
        if (i < n_words) {
            const probe_word v = p[i];
            acc ^= v.x ^ v.y ^ v.z ^ v.w;
        }
    }
    // Never true for the zeroed input; keeps the loads.
    if (acc == 0x9e3779b9u) out[0] = acc;
}
"#,
    includes: &[],
    kernels: &["rf_read_probe"],
};
const READ_PROBE_UNROLL: usize = 8;
const READ_PROBE_THREADS: u32 = 256;

/// Time per launch (replayed from a graph) of [`READ_PROBE`] over `bytes` bytes (rounded
/// up to 16), rotating among copies as the matrices do.
fn read_probe_ms(
    stream: &Stream,
    loader: &KernelLoader,
    reps: usize,
    bytes: usize,
) -> rocmforge::kernels::Result<f64> {
    let module = loader.module(&READ_PROBE)?;
    // SAFETY: the signature matches rf_read_probe (words, n_words, out); it reads the
    // first n_words 16-byte words of its input, which holds at least that many, and
    // writes at most out[0], a one-element buffer.
    let k: TypedKernel<(In<u8>, u64, Out<u32>)> =
        unsafe { module.function("rf_read_probe")?.into_typed() };
    let words = bytes.div_ceil(16);
    let copies = (256usize << 20).div_ceil(16 * words).clamp(1, 128);
    let buffers: Vec<DeviceBuffer<u8>> = (0..copies)
        .map(|_| DeviceBuffer::<u8>::zeroed(stream, 16 * words))
        .collect::<Result<_>>()?;
    let mut out = DeviceBuffer::<u32>::zeroed(stream, 1)?;
    let per_block = READ_PROBE_UNROLL * READ_PROBE_THREADS as usize;
    let cfg = LaunchConfig {
        grid: Dim3::x(words.div_ceil(per_block) as u32),
        block: Dim3::x(READ_PROBE_THREADS),
        shared_mem_bytes: 0,
    };
    Ok(graph_time_ms(stream, reps, |i| {
        for j in 0..BATCH {
            let src = buffers[(i * BATCH + j) % copies].as_slice();
            k.launch(stream, &cfg, (src, words as u64, out.as_slice_mut()))?;
        }
        Ok(())
    })?)
}

fn run(
    quick: bool,
    matmul: bool,
    variants: bool,
    types: &[GgmlType],
) -> rocmforge::kernels::Result<()> {
    let device = Device::new(0)?;
    let stream = device.new_stream()?;
    let p = device.properties();
    println!(
        "device: {} ({}), {}",
        p.name,
        p.arch_name,
        device.platform()
    );
    let loader = KernelLoader::new(&device);
    let ops = QuantOps::load(&loader)?;
    let reps = if quick { 5 } else { 30 };

    let copy_bytes = 1usize << 30;
    let src = DeviceBuffer::<u8>::zeroed(&stream, copy_bytes)?;
    let mut dst = DeviceBuffer::<u8>::alloc(&stream, copy_bytes)?;
    let ms = time_ms(&stream, reps, |_| dst.copy_from_device(&src))?;
    let copy_gbps = 2.0 * copy_bytes as f64 / (ms * 1e-3) / 1e9;
    println!("device copy bandwidth: {copy_gbps:.1} GB/s (read + write)\n");
    drop((src, dst));

    let shapes: &[(usize, usize, &str)] = if quick { &SHAPES[..2] } else { &SHAPES };
    let kernel_err = |e: rocmforge::kernels::Error| Error::InvalidArgument(e.to_string());

    // Activation quantization, once per width (what a decode step pays once per
    // activation vector, shared by the matrices that read it).
    let mut widths: Vec<usize> = shapes.iter().map(|s| s.1).collect();
    widths.sort_unstable();
    widths.dedup();
    for cols in widths {
        let x = DeviceBuffer::from_slice(&stream, &random(cols, 2))?;
        let mut xq = DeviceBuffer::<u8>::alloc(&stream, q8_activation_bytes(1, cols))?;
        let mut run = |_: usize| -> Result<()> {
            for _ in 0..BATCH {
                ops.quantize_activations(&stream, x.as_slice(), 1, cols, xq.as_slice_mut())
                    .map_err(kernel_err)?;
            }
            Ok(())
        };
        let ms = time_ms(&stream, reps, &mut run)? / BATCH as f64;
        let graph_ms = graph_time_ms(&stream, reps, &mut run)?;
        println!(
            "quantize_activations, 1 x {cols}: {:.1} us per launch, {:.1} us replayed from a graph",
            ms * 1e3,
            graph_ms * 1e3
        );
    }

    println!("\nmatrix x vector (decode), median of {reps} samples of {BATCH} launches each");
    println!(
        "{:<6} {:<9} {:>13} {:>10} {:>9} {:>8} {:>7} {:>8} {:>8}",
        "type", "matrix", "rows x cols", "time us", "GB/s", "of copy", "act", "graph us", "graph %"
    );
    for &ty in types {
        for &(rows, cols, name) in shapes {
            let bytes = weight_bytes(ty, rows, cols);
            // Rotate among copies (256 MiB at least, five times the H100's L2) so that
            // the weights are read from memory, not the L2.
            let copies = (256usize << 20).div_ceil(bytes.len()).clamp(1, 128);
            let buffers: Vec<DeviceBuffer<u8>> = (0..copies)
                .map(|_| DeviceBuffer::from_slice(&stream, &bytes))
                .collect::<Result<_>>()?;
            let x = DeviceBuffer::from_slice(&stream, &random(cols, 2))?;
            let mut xq = DeviceBuffer::<u8>::alloc(&stream, q8_activation_bytes(1, cols))?;
            ops.quantize_activations(&stream, x.as_slice(), 1, cols, xq.as_slice_mut())
                .map_err(kernel_err)?;
            let mut y = DeviceBuffer::<f32>::alloc(&stream, rows)?;
            let weights = |k: usize| {
                GpuWeights::new(ty, buffers[k % copies].as_slice(), rows, cols).map_err(kernel_err)
            };
            let mut kernels: Vec<(String, usize)> = vec![("f32".to_string(), 4 * cols)];
            if matvec_reads_q8(ty) {
                kernels.push(("q8".to_string(), q8_activation_bytes(1, cols)));
                if variants {
                    for v in ops.matvec_q8_variants(ty) {
                        kernels.push((v, q8_activation_bytes(1, cols)));
                    }
                }
            }
            // The kernel matvec_q8 chose, for the "q8" lines: q8 (rf_mvq_<type>) or
            // q8/<suffix> (rf_mvq_<type>_<suffix>).
            let choice = QuantOps::matvec_q8_choice(ty, rows, cols)
                .map(|c| c[ty.name().len()..].replacen('_', "/", 1))
                .unwrap_or_default();
            for (kind, x_bytes) in kernels {
                let label = if kind == "q8" {
                    format!("q8{choice}")
                } else {
                    kind.clone()
                };
                // Each sample is BATCH launches back to back (as in a decode step), so
                // the time per matvec excludes the event overhead but not the launch gaps.
                let mut run = |i: usize| -> Result<()> {
                    for j in 0..BATCH {
                        let w = weights(i * BATCH + j)?;
                        match kind.as_str() {
                            "f32" => ops.matvec(&stream, &w, x.as_slice(), y.as_slice_mut()),
                            "q8" => ops.matvec_q8(&stream, &w, xq.as_slice(), y.as_slice_mut()),
                            // A variant: the kernel's name without rf_mvq_.
                            v => ops.matvec_q8_variant(
                                v,
                                &stream,
                                &w,
                                xq.as_slice(),
                                y.as_slice_mut(),
                            ),
                        }
                        .map_err(kernel_err)?;
                    }
                    Ok(())
                };
                let ms = time_ms(&stream, reps, &mut run)? / BATCH as f64;
                let graph_ms = graph_time_ms(&stream, reps, &mut run)?;
                let moved = (bytes.len() + x_bytes + 4 * rows) as f64;
                let gbps = moved / (ms * 1e-3) / 1e9;
                let graph_gbps = moved / (graph_ms * 1e-3) / 1e9;
                println!(
                    "{:<6} {:<9} {:>6} x {:<6} {:>10.1} {:>9.1} {:>7.0}% {:>7} {:>8.1} {:>7.0}%",
                    ty.name(),
                    name,
                    rows,
                    cols,
                    ms * 1e3,
                    gbps,
                    100.0 * gbps / copy_gbps,
                    label,
                    graph_ms * 1e3,
                    100.0 * graph_gbps / copy_gbps
                );
            }
            // What reading the matrix's bytes costs at least (see READ_PROBE).
            let probe_ms = read_probe_ms(&stream, &loader, reps, bytes.len())?;
            let probe_gbps = bytes.len() as f64 / (probe_ms * 1e-3) / 1e9;
            println!(
                "{:<6} {:<9} {:>13} {:>10} {:>9} {:>8} {:>7} {:>8.1} {:>7.0}%",
                "",
                "",
                "",
                "",
                "",
                "",
                "read",
                probe_ms * 1e3,
                100.0 * probe_gbps / copy_gbps
            );
        }
    }

    if !matmul {
        return Ok(());
    }
    println!(
        "\nmatrix x matrix (prefill, 512 tokens), median of {}",
        reps.min(10)
    );
    println!(
        "{:<6} {:<9} {:>13} {:>10} {:>9}",
        "type", "matrix", "rows x cols", "time ms", "TFLOP/s"
    );
    let tokens = 512;
    for &ty in types {
        for &(rows, cols, name) in &SHAPES[..if quick { 1 } else { 4 }] {
            let bytes = weight_bytes(ty, rows, cols);
            let dw = DeviceBuffer::from_slice(&stream, &bytes)?;
            let x = DeviceBuffer::from_slice(&stream, &random(tokens * cols, 3))?;
            let mut y = DeviceBuffer::<f32>::alloc(&stream, tokens * rows)?;
            let w = GpuWeights::new(ty, dw.as_slice(), rows, cols)?;
            let ms = time_ms(&stream, reps.min(10), |_| {
                ops.matmul(&stream, &w, x.as_slice(), tokens, y.as_slice_mut())
                    .map_err(|e| Error::InvalidArgument(e.to_string()))
            })?;
            let tflops = 2.0 * (rows * cols * tokens) as f64 / (ms * 1e-3) / 1e12;
            println!(
                "{:<6} {:<9} {:>6} x {:<6} {:>10.2} {:>9.2}",
                ty.name(),
                name,
                rows,
                cols,
                ms,
                tflops
            );
        }
    }
    Ok(())
}

/// Benchmarks the weight kernels at Llama-3-8B shapes on the first GPU: matrix x vector
/// (decode) in each weight type, and matrix x matrix at 512 tokens (prefill)
///
/// Matrix x vector prints time, GB/s and the share of the measured device copy bandwidth,
/// with f32 activations and (for the types with an integer kernel) 8-bit activations, each
/// also replayed from a graph; a `read` line under each shape gives the cost of only
/// reading the matrix's bytes. Matrix x matrix prints TFLOP/s.
#[derive(Parser, Debug)]
#[command(name = "kernel_bench")]
struct Args {
    /// Two shapes and fewer repetitions: a quick, less precise run
    #[arg(long)]
    quick: bool,
    /// Skip the matrix x matrix (prefill) part
    #[arg(long)]
    no_matmul: bool,
    /// Also time every integer kernel of each type, by name
    #[arg(long)]
    variants: bool,
    #[arg(long, value_name = "TYPES", value_delimiter = ',', value_parser = parse_type,
          default_values_t = GPU_WEIGHT_TYPES.to_vec(), hide_default_value = true,
          help = format!("Weight types to measure, comma-separated ggml names [default: {}]", type_list()))]
    types: Vec<GgmlType>,
}

/// The types with a GPU kernel, `f32,f16,...`.
fn type_list() -> String {
    let names: Vec<&str> = GPU_WEIGHT_TYPES.iter().map(|t| t.name()).collect();
    names.join(",")
}

fn parse_type(name: &str) -> std::result::Result<GgmlType, String> {
    GgmlType::from_name(name).ok_or_else(|| {
        format!(
            "not a ggml type name (the types with a GPU kernel: {})",
            type_list()
        )
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args.quick, !args.no_matmul, args.variants, &args.types) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
