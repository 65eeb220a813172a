//! What a device is: name, architecture, wave size, memory, compute units.

use rocmforge_sys::RawDeviceProperties;

/// Properties of one device, read once when the `Device` is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProperties {
    /// Marketing name.
    pub name: String,
    /// The full compiler target with features, e.g. `gfx90a:sramecc+:xnack-`, or `sm_90`
    /// on NVIDIA. Kernels are compiled for exactly this.
    pub arch_name: String,
    /// Threads per wavefront/warp: 64 on GCN/CDNA, 32 on RDNA and NVIDIA.
    pub warp_size: u32,
    /// Device memory, bytes.
    pub total_memory: usize,
    /// Compute units (AMD) / streaming multiprocessors (NVIDIA).
    pub compute_units: u32,
    /// Most threads in one block.
    pub max_threads_per_block: u32,
    /// Most threads per block along x, y, z.
    pub max_block_dims: [u32; 3],
    /// Most blocks along x, y, z.
    pub max_grid_dims: [u32; 3],
    /// Shared (LDS) memory per block, bytes.
    pub shared_memory_per_block: usize,
    /// Shader clock, kHz.
    pub clock_khz: u32,
    /// Memory clock, kHz.
    pub memory_clock_khz: u32,
    /// Memory bus width, bits.
    pub memory_bus_width: u32,
    /// L2 cache, bytes.
    pub l2_cache_bytes: u32,
    /// PCI domain, bus, device.
    pub pci: [u32; 3],
}

fn non_negative(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

impl From<RawDeviceProperties> for DeviceProperties {
    fn from(raw: RawDeviceProperties) -> Self {
        Self {
            name: raw.name,
            arch_name: raw.arch_name,
            warp_size: non_negative(raw.warp_size),
            total_memory: raw.total_global_mem,
            compute_units: non_negative(raw.multi_processor_count),
            max_threads_per_block: non_negative(raw.max_threads_per_block),
            max_block_dims: raw.max_threads_dim.map(non_negative),
            max_grid_dims: raw.max_grid_size.map(non_negative),
            shared_memory_per_block: raw.shared_mem_per_block,
            clock_khz: non_negative(raw.clock_rate_khz),
            memory_clock_khz: non_negative(raw.memory_clock_rate_khz),
            memory_bus_width: non_negative(raw.memory_bus_width),
            l2_cache_bytes: non_negative(raw.l2_cache_size),
            pci: raw.pci.map(non_negative),
        }
    }
}

impl DeviceProperties {
    /// The architecture without target features: `gfx90a` for `gfx90a:sramecc+:xnack-`.
    pub fn arch_base(&self) -> &str {
        self.arch_name.split(':').next().unwrap_or(&self.arch_name)
    }

    /// Peak memory bandwidth from clock and bus width, GB/s (DDR: two transfers a clock).
    /// A datasheet-style estimate; benchmarks measure the real number.
    pub fn theoretical_bandwidth_gbps(&self) -> f64 {
        2.0 * f64::from(self.memory_clock_khz) * 1e3 * f64::from(self.memory_bus_width) / 8.0 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawDeviceProperties {
        RawDeviceProperties {
            name: "Test GPU".into(),
            arch_name: "gfx90a:sramecc+:xnack-".into(),
            warp_size: 64,
            total_global_mem: 64 << 30,
            multi_processor_count: 104,
            max_threads_per_block: 1024,
            max_threads_dim: [1024, 1024, 1024],
            max_grid_size: [i32::MAX, 65535, -1],
            shared_mem_per_block: 65536,
            clock_rate_khz: 1_700_000,
            memory_clock_rate_khz: 1_600_000,
            memory_bus_width: 4096,
            l2_cache_size: 8 << 20,
            pci: [0, 3, 0],
        }
    }

    #[test]
    fn converts_and_clamps_negative_values() {
        let p = DeviceProperties::from(raw());
        assert_eq!(p.warp_size, 64);
        assert_eq!(p.max_grid_dims, [i32::MAX as u32, 65535, 0]);
        assert_eq!(p.arch_base(), "gfx90a");
    }

    #[test]
    fn bandwidth_estimate() {
        let p = DeviceProperties::from(raw());
        assert!((p.theoretical_bandwidth_gbps() - 1638.4).abs() < 1e-6);
    }
}
