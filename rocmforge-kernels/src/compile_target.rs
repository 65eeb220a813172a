//! What kernels are compiled for: an exact architecture and its wave size.

use rocmforge_hip::Device;

/// The architecture, wave size and runtime identity that a code object is built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileTarget {
    /// Exact arch as the device reports it (`gfx90a:sramecc+:xnack-`, `gfx1030`, `sm_90`).
    pub arch: String,
    /// Wavefront/warp size, passed to the kernels as `WAVE_SIZE`.
    pub wave_size: u32,
    /// Platform and runtime version, part of the cache key.
    pub runtime: String,
}

impl CompileTarget {
    /// The target of `device`.
    pub fn for_device(device: &Device) -> Self {
        let props = device.properties();
        Self {
            arch: props.arch_name.clone(),
            wave_size: props.warp_size,
            runtime: format!("{}-{}", device.platform(), device.runtime_version()),
        }
    }

    /// A target for `arch` without a device (ahead-of-time checks). The wave size is
    /// the architecture family's default: 64 on GCN/CDNA (gfx6–gfx9), 32 on RDNA
    /// (gfx10+) and NVIDIA (`sm_*`). `None` for a name that is neither.
    pub fn for_arch(arch: &str, runtime: impl Into<String>) -> Option<Self> {
        Some(Self {
            arch: arch.to_string(),
            wave_size: default_wave_size(arch)?,
            runtime: runtime.into(),
        })
    }
}

/// The default wave size of an architecture name.
pub fn default_wave_size(arch: &str) -> Option<u32> {
    let base = arch.split(':').next().unwrap_or(arch);
    if base.starts_with("sm_") {
        return Some(32);
    }
    let digits = base.strip_prefix("gfx")?;
    // gfx906 -> major 9, gfx90a -> 9, gfx1030 -> 10, gfx1100 -> 11: the major is all
    // but the last two characters.
    if digits.len() < 3 {
        return None;
    }
    let major: u32 = digits[..digits.len() - 2].parse().ok()?;
    Some(if major >= 10 { 32 } else { 64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wave_sizes_by_family() {
        assert_eq!(default_wave_size("gfx906"), Some(64));
        assert_eq!(default_wave_size("gfx90a:sramecc+:xnack-"), Some(64));
        assert_eq!(default_wave_size("gfx942"), Some(64));
        assert_eq!(default_wave_size("gfx1030"), Some(32));
        assert_eq!(default_wave_size("gfx1100"), Some(32));
        assert_eq!(default_wave_size("gfx1201"), Some(32));
        assert_eq!(default_wave_size("sm_90"), Some(32));
        assert_eq!(default_wave_size("x86_64"), None);
        assert_eq!(default_wave_size("gfx"), None);
    }
}
