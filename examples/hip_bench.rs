//! Micro-benchmarks of the safe HIP layer: device copy bandwidth, pinned host<->device
//! bandwidth, and kernel launch latency (one by one, and replayed from a graph).
//!
//! `cargo run --release --example hip_bench [-- --quick]` (`--help` lists the options)

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use rocmforge::prelude::*;
use rocmforge::TypedKernel;

/// Micro-benchmarks of the safe HIP layer on the first GPU: device copy bandwidth, pinned
/// host<->device bandwidth, and kernel launch latency (one by one, and replayed from a graph)
#[derive(Parser, Debug)]
#[command(name = "hip_bench")]
struct Args {
    /// Smaller buffers, fewer launches and repetitions: a quick, less precise run
    #[arg(long)]
    quick: bool,
}

const EMPTY: &str = r#"extern "C" __global__ void empty() {}"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Times `f` (which enqueues work on `stream`) with events; median of `reps` in ms.
fn time_ms(stream: &Stream, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up
    stream.synchronize()?;
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = stream.record_timing_event()?;
        f()?;
        let end = stream.record_timing_event()?;
        end.synchronize()?;
        samples.push(f64::from(end.elapsed_ms(&start)?));
    }
    Ok(median(samples))
}

fn run(quick: bool) -> Result<()> {
    let device = Device::new(0)?;
    let stream = device.new_stream()?;
    let p = device.properties();
    println!(
        "device: {} ({}, {}), runtime {}",
        p.name,
        p.arch_name,
        device.platform(),
        device.runtime_version()
    );
    let reps = if quick { 5 } else { 20 };

    // Device-to-device copy: bytes read + bytes written per copy.
    let bytes = if quick { 64 << 20 } else { 1 << 30 };
    let src = DeviceBuffer::<u8>::zeroed(&stream, bytes)?;
    let mut dst = DeviceBuffer::<u8>::alloc(&stream, bytes)?;
    let ms = time_ms(&stream, reps, || dst.copy_from_device(&src))?;
    let d2d = 2.0 * bytes as f64 / (ms * 1e-3) / 1e9;
    println!(
        "device-to-device copy   {:>8.1} GB/s  ({} MiB, read+write, median of {reps})",
        d2d,
        bytes >> 20
    );
    drop((src, dst));

    // Pinned host <-> device.
    let bytes = if quick { 32 << 20 } else { 256 << 20 };
    let mut pinned = PinnedHostBuffer::<u8>::new(&device, bytes)?;
    let mut buffer = DeviceBuffer::<u8>::alloc(&stream, bytes)?;
    let ms = time_ms(&stream, reps, || buffer.copy_from_pinned_async(&mut pinned))?;
    println!(
        "pinned host-to-device   {:>8.1} GB/s  ({} MiB)",
        bytes as f64 / (ms * 1e-3) / 1e9,
        bytes >> 20
    );
    let ms = time_ms(&stream, reps, || buffer.copy_to_pinned_async(&mut pinned))?;
    println!(
        "pinned device-to-host   {:>8.1} GB/s  ({} MiB)",
        bytes as f64 / (ms * 1e-3) / 1e9,
        bytes >> 20
    );
    drop((pinned, buffer));

    // Launch latency: empty kernels one by one, host clock to the end of the stream.
    let code = compile(EMPTY, "empty.hip", &CompileOptions::for_arch(&p.arch_name))?;
    let module = Module::load(&device, &code.code)?;
    // SAFETY: `empty` takes no parameters.
    let empty: TypedKernel<()> = unsafe { module.function("empty")?.into_typed() };
    let cfg = LaunchConfig::for_elements(1, 32)?;
    let launches = if quick { 1000 } else { 20_000 };
    for _ in 0..100 {
        empty.launch(&stream, &cfg, ())?;
    }
    stream.synchronize()?;
    let t = Instant::now();
    for _ in 0..launches {
        empty.launch(&stream, &cfg, ())?;
    }
    stream.synchronize()?;
    let per_launch = t.elapsed().as_secs_f64() * 1e6 / launches as f64;
    println!("launch, one by one      {per_launch:>8.2} us per empty kernel ({launches} launches, host clock)");

    // The same kernels replayed from a graph.
    let per_graph = 1000;
    let capture = stream.begin_capture()?;
    for _ in 0..per_graph {
        empty.launch(&stream, &cfg, ())?;
    }
    let graph = capture.end()?.instantiate()?;
    // SAFETY: the graph touches no memory.
    unsafe { graph.launch(&stream)? };
    stream.synchronize()?;
    let replays = if quick { 2 } else { 20 };
    let t = Instant::now();
    for _ in 0..replays {
        // SAFETY: as above.
        unsafe { graph.launch(&stream)? };
    }
    stream.synchronize()?;
    let per_kernel = t.elapsed().as_secs_f64() * 1e6 / (replays * per_graph) as f64;
    println!("launch, graph replay    {per_kernel:>8.2} us per empty kernel ({replays} replays of {per_graph})");
    println!(
        "device-wide synchronizations by the adapter: {}",
        rocmforge::sys::nvidia::context_synchronizations()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args.quick) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
