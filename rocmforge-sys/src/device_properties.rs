//! Device properties in a form that does not depend on the runtime's struct layout.

use crate::bindings::hip::{hipDeviceProp_t, hipError_t};
use crate::{Platform, Runtime};

/// What rocmforge reads about a device, whatever the HIP version's struct layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDeviceProperties {
    /// Marketing name, e.g. `AMD Instinct MI210` or `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// The compiler target, e.g. `gfx90a:sramecc+:xnack-` on AMD or `sm_90` on NVIDIA.
    pub arch_name: String,
    /// Threads per wavefront/warp: 64 on GCN/CDNA, 32 on RDNA and NVIDIA.
    pub warp_size: i32,
    /// Device memory in bytes.
    pub total_global_mem: usize,
    /// Compute units (AMD) or streaming multiprocessors (NVIDIA).
    pub multi_processor_count: i32,
    /// Most threads in one block.
    pub max_threads_per_block: i32,
    /// Most threads per block in x, y, z.
    pub max_threads_dim: [i32; 3],
    /// Most blocks in x, y, z.
    pub max_grid_size: [i32; 3],
    /// Static + dynamic shared memory per block, bytes.
    pub shared_mem_per_block: usize,
    /// Shader clock, kHz.
    pub clock_rate_khz: i32,
    /// Memory clock, kHz.
    pub memory_clock_rate_khz: i32,
    /// Memory bus width, bits.
    pub memory_bus_width: i32,
    /// L2 cache, bytes.
    pub l2_cache_size: i32,
    /// PCI domain, bus and device.
    pub pci: [i32; 3],
}

/// Reads a NUL-terminated C string out of a fixed array, lossily.
pub fn c_chars_to_string(chars: &[core::ffi::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

macro_rules! from_prop_struct {
    ($p:expr) => {
        RawDeviceProperties {
            name: c_chars_to_string(&$p.name),
            arch_name: c_chars_to_string(&$p.gcnArchName),
            warp_size: $p.warpSize,
            total_global_mem: $p.totalGlobalMem,
            multi_processor_count: $p.multiProcessorCount,
            max_threads_per_block: $p.maxThreadsPerBlock,
            max_threads_dim: $p.maxThreadsDim,
            max_grid_size: $p.maxGridSize,
            shared_mem_per_block: $p.sharedMemPerBlock,
            clock_rate_khz: $p.clockRate,
            memory_clock_rate_khz: $p.memoryClockRate,
            memory_bus_width: $p.memoryBusWidth,
            l2_cache_size: $p.l2CacheSize,
            pci: [$p.pciDomainID, $p.pciBusID, $p.pciDeviceID],
        }
    };
}

/// The first HIP version (`hipRuntimeGetVersion`) with the `hipDeviceProp_tR0600` layout.
pub const HIP_VERSION_6_0: i32 = 60_000_000;

impl Runtime {
    /// Reads the properties of device `ordinal` with the struct layout that matches the
    /// loaded runtime: `hipDeviceProp_tR0600` for HIP 6+, the HIP 5 layout otherwise
    /// (the NVIDIA adapter fills the HIP 5 layout).
    pub fn device_properties(&self, ordinal: i32) -> Result<RawDeviceProperties, hipError_t> {
        let hip = self.hip();
        if self.platform() == Platform::Amd && self.version() >= HIP_VERSION_6_0 {
            return self.device_properties_r0600(ordinal);
        }
        let mut props = hipDeviceProp_t::default();
        // SAFETY: `props` is a properly aligned hipDeviceProp_t of the HIP 5 layout,
        // which is the layout `hipGetDeviceProperties` writes on HIP 5 and the adapter.
        let status = unsafe { (hip.hipGetDeviceProperties)(&mut props, ordinal) };
        if status != hipError_t::hipSuccess {
            return Err(status);
        }
        Ok(from_prop_struct!(props))
    }

    fn device_properties_r0600(&self, ordinal: i32) -> Result<RawDeviceProperties, hipError_t> {
        use crate::bindings::hip_device_prop_r0600::hipDeviceProp_tR0600;
        // HIP 6+ still exports the plain symbol, with the HIP 5 layout (`R0000`), as a
        // fallback when the R0600 one is missing.
        let Some(get) = self.hip().hipGetDevicePropertiesR0600 else {
            let mut props = hipDeviceProp_t::default();
            // SAFETY: HIP 6/7 export `hipGetDeviceProperties` as the R0000 function,
            // whose struct is the HIP 5 layout.
            let status = unsafe { (self.hip().hipGetDeviceProperties)(&mut props, ordinal) };
            if status != hipError_t::hipSuccess {
                return Err(status);
            }
            return Ok(from_prop_struct!(props));
        };
        let mut props = hipDeviceProp_tR0600::default();
        // SAFETY: `props` is a hipDeviceProp_tR0600, the layout this symbol writes.
        let status = unsafe { get(&mut props, ordinal) };
        if status != hipError_t::hipSuccess {
            return Err(status);
        }
        Ok(from_prop_struct!(props))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_chars_stop_at_nul() {
        let mut chars = [0 as core::ffi::c_char; 16];
        for (i, b) in b"gfx90a".iter().enumerate() {
            chars[i] = *b as core::ffi::c_char;
        }
        assert_eq!(c_chars_to_string(&chars), "gfx90a");
        assert_eq!(c_chars_to_string(&[0; 4]), "");
    }

    #[test]
    fn c_chars_without_nul_take_the_whole_array() {
        let chars = [b'a' as core::ffi::c_char; 8];
        assert_eq!(c_chars_to_string(&chars), "aaaaaaaa");
    }
}
