//! Lists every GPU the runtime sees: name, architecture, wave size, memory, compute
//! units, runtime version and platform. Exits non-zero (with the reason) when there is
//! no runtime or no GPU.
//!
//! `cargo run --example devices` (no options but `--help`)

use std::process::ExitCode;

use clap::Parser;
use rocmforge::Device;

/// Lists every GPU the runtime sees: name, architecture, wave size, memory, compute units,
/// runtime version and platform
///
/// Exits non-zero (with the reason) when there is no runtime or no GPU. ROCMFORGE_PLATFORM
/// (amd, nvidia) and ROCMFORGE_HIP_LIB choose the runtime.
#[derive(Parser, Debug)]
#[command(name = "devices")]
struct Args {}

fn main() -> ExitCode {
    Args::parse();
    let devices = match Device::all() {
        Ok(devices) => devices,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for device in &devices {
        let p = device.properties();
        let memory = device.memory_info();
        println!("device {}: {}", device.ordinal(), p.name);
        println!(
            "  platform:        {} (runtime version {})",
            device.platform(),
            device.runtime_version()
        );
        println!("  architecture:    {}", p.arch_name);
        println!("  wave size:       {}", p.warp_size);
        println!("  compute units:   {}", p.compute_units);
        match memory {
            Ok(m) => println!(
                "  memory:          {:.1} GiB total, {:.1} GiB free",
                m.total as f64 / (1u64 << 30) as f64,
                m.free as f64 / (1u64 << 30) as f64
            ),
            Err(e) => println!(
                "  memory:          {:.1} GiB total (free unknown: {e})",
                p.total_memory as f64 / (1u64 << 30) as f64
            ),
        }
        println!("  max block:       {} threads", p.max_threads_per_block);
        println!(
            "  shared per block {} KiB",
            p.shared_memory_per_block / 1024
        );
        println!(
            "  clock:           {} MHz, memory bus {} bits",
            p.clock_khz / 1000,
            p.memory_bus_width
        );
    }
    ExitCode::SUCCESS
}
