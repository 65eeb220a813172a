//! Where should the next token be picked: on the GPU or the CPU? Times, per decode step,
//! for a vocabulary of 49,152 (SmolLM2) and 128,256 (Llama 3) logits:
//! - CPU sampling (llama.cpp's default chain: penalties, top-k 40, top-p 0.95, min-p 0.05,
//!   temperature 0.8) and CPU argmax, on logits already in host memory;
//! - with a GPU: copying the logits to pinned host memory, and argmax on the GPU with a
//!   4-byte copy back.
//!
//! `cargo run --release --example sampling_bench` (no options but `--help`)

use std::time::Instant;

use clap::Parser;
use rocmforge::kernels::cpu::{self, SamplerConfig};
use rocmforge::kernels::gpu::{AttentionOps, KernelLoader};
use rocmforge::prelude::*;

fn logits(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Roughly the spread of real logits: most around 0, a few large.
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            8.0 * (u - 0.5) + if s % 997 == 0 { 10.0 } else { 0.0 }
        })
        .collect()
}

fn per_call_us(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / reps as f64
}

fn gpu_part(vocab: usize, x: &[f32]) -> rocmforge::kernels::Result<()> {
    let device = Device::new(0)?;
    let stream = device.new_stream()?;
    let ops = AttentionOps::load(&KernelLoader::new(&device))?;
    let dx = DeviceBuffer::from_slice(&stream, x)?;
    let mut index = DeviceBuffer::<u32>::alloc(&stream, 1)?;
    let mut pinned_logits = PinnedHostBuffer::<f32>::new(&device, vocab)?;
    let mut pinned_index = PinnedHostBuffer::<u32>::new(&device, 1)?;
    let reps = 200;
    let run =
        |f: &mut dyn FnMut() -> rocmforge::kernels::Result<()>| -> rocmforge::kernels::Result<f64> {
            f()?;
            let t = Instant::now();
            for _ in 0..reps {
                f()?;
            }
            Ok(t.elapsed().as_secs_f64() * 1e6 / reps as f64)
        };
    let copy = run(&mut || {
        dx.copy_to_pinned_async(&mut pinned_logits)?;
        pinned_logits.as_slice()?;
        Ok(())
    })?;
    let argmax = run(&mut || {
        ops.argmax(&stream, dx.as_slice(), index.as_slice_mut())?;
        index.copy_to_pinned_async(&mut pinned_index)?;
        pinned_index.as_slice()?;
        Ok(())
    })?;
    println!("  gpu: logits to pinned host memory {copy:8.1} us; argmax on the GPU + 4-byte copy {argmax:8.1} us");
    Ok(())
}

/// Where should the next token be picked: on the GPU or the CPU? Times sampling and argmax
/// per decode step for vocabularies of 49,152 and 128,256 logits
///
/// On the CPU: llama.cpp's default sampler chain and argmax, on logits in host memory. With
/// a GPU: copying the logits to pinned host memory, and argmax on the GPU with a 4-byte
/// copy back.
#[derive(Parser, Debug)]
#[command(name = "sampling_bench")]
struct Args {}

fn main() {
    Args::parse();
    for vocab in [49_152usize, 128_256] {
        let x = logits(vocab, vocab as u64);
        let recent: Vec<u32> = (0..64).map(|i| (i * 7919 % vocab) as u32).collect();
        let config = SamplerConfig {
            temperature: 0.8,
            ..SamplerConfig::default()
        };
        let mut u = 0.37f32;
        let sample = per_call_us(200, || {
            u = (u + 0.618_034) % 1.0;
            let id = cpu::sample(&x, &recent, &config, u).expect("sample");
            std::hint::black_box(id);
        });
        let argmax = per_call_us(2000, || {
            std::hint::black_box(cpu::argmax(&x).expect("argmax"));
        });
        println!("vocab {vocab}:");
        println!("  cpu: sample (top-k 40, top-p 0.95, min-p 0.05, T 0.8) {sample:8.1} us; argmax {argmax:8.1} us");
        if let Err(e) = gpu_part(vocab, &x) {
            println!("  gpu: not measured ({e})");
        }
    }
}
