//! Grid and block sizes of a launch, checked against the device.

use crate::{DeviceProperties, Error, Result};

/// Three dimensions of a grid or a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dim3 {
    /// x
    pub x: u32,
    /// y
    pub y: u32,
    /// z
    pub z: u32,
}

impl Dim3 {
    /// `x` × 1 × 1.
    pub const fn x(x: u32) -> Self {
        Self { x, y: 1, z: 1 }
    }

    /// `x` × `y` × 1.
    pub const fn xy(x: u32, y: u32) -> Self {
        Self { x, y, z: 1 }
    }

    /// The product, or `None` on overflow.
    pub fn volume(&self) -> Option<u64> {
        u64::from(self.x)
            .checked_mul(u64::from(self.y))?
            .checked_mul(u64::from(self.z))
    }

    fn as_array(&self) -> [u32; 3] {
        [self.x, self.y, self.z]
    }
}

impl From<u32> for Dim3 {
    fn from(x: u32) -> Self {
        Dim3::x(x)
    }
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks in the grid.
    pub grid: Dim3,
    /// Threads in a block.
    pub block: Dim3,
    /// Dynamic shared (LDS) memory per block, bytes.
    pub shared_mem_bytes: u32,
}

impl LaunchConfig {
    /// One thread per element: blocks of `block_size` threads, enough of them to cover
    /// `elements` (at least one block, so that an empty launch is still valid).
    pub fn for_elements(elements: usize, block_size: u32) -> Result<Self> {
        if block_size == 0 {
            return Err(Error::InvalidLaunch("block size is 0".into()));
        }
        let blocks = elements.div_ceil(block_size as usize).max(1);
        let blocks = u32::try_from(blocks).map_err(|_| {
            Error::InvalidLaunch(format!(
                "{elements} elements need {blocks} blocks of {block_size}: more than 2^32"
            ))
        })?;
        Ok(Self {
            grid: Dim3::x(blocks),
            block: Dim3::x(block_size),
            shared_mem_bytes: 0,
        })
    }

    /// One block of `block_size` threads per row, `rows` blocks (one row each).
    pub fn per_row(rows: usize, block_size: u32) -> Result<Self> {
        let rows = u32::try_from(rows.max(1))
            .map_err(|_| Error::InvalidLaunch(format!("{rows} rows exceed 2^32 blocks")))?;
        Ok(Self {
            grid: Dim3::x(rows),
            block: Dim3::x(block_size),
            shared_mem_bytes: 0,
        })
    }

    /// The same with `bytes` of dynamic shared memory.
    pub fn with_shared_mem(mut self, bytes: u32) -> Self {
        self.shared_mem_bytes = bytes;
        self
    }

    /// Checks the configuration against the device's limits.
    pub fn validate(&self, props: &DeviceProperties) -> Result<()> {
        let block = self.block.as_array();
        let grid = self.grid.as_array();
        if block.contains(&0) || grid.contains(&0) {
            return Err(Error::InvalidLaunch(format!(
                "grid {grid:?} and block {block:?} must have no zero dimension"
            )));
        }
        for (axis, (&b, &max)) in ["x", "y", "z"]
            .iter()
            .zip(block.iter().zip(&props.max_block_dims))
        {
            if b > max {
                return Err(Error::InvalidLaunch(format!(
                    "block {axis} = {b} exceeds the device limit {max}"
                )));
            }
        }
        for (axis, (&g, &max)) in ["x", "y", "z"]
            .iter()
            .zip(grid.iter().zip(&props.max_grid_dims))
        {
            if g > max {
                return Err(Error::InvalidLaunch(format!(
                    "grid {axis} = {g} exceeds the device limit {max}"
                )));
            }
        }
        let threads = self.block.volume().unwrap_or(u64::MAX);
        if threads > u64::from(props.max_threads_per_block) {
            return Err(Error::InvalidLaunch(format!(
                "{threads} threads per block exceed the device limit {}",
                props.max_threads_per_block
            )));
        }
        if self.shared_mem_bytes as usize > props.shared_memory_per_block {
            return Err(Error::InvalidLaunch(format!(
                "{} bytes of shared memory exceed the device limit {}",
                self.shared_mem_bytes, props.shared_memory_per_block
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn props() -> DeviceProperties {
        DeviceProperties {
            name: "t".into(),
            arch_name: "gfx906".into(),
            warp_size: 64,
            total_memory: 1 << 34,
            compute_units: 60,
            max_threads_per_block: 1024,
            max_block_dims: [1024, 1024, 1024],
            max_grid_dims: [u32::MAX >> 1, 65535, 65535],
            shared_memory_per_block: 65536,
            clock_khz: 1,
            memory_clock_khz: 1,
            memory_bus_width: 1,
            l2_cache_bytes: 1,
            pci: [0; 3],
        }
    }

    #[test]
    fn rejects_bad_configs() {
        let p = props();
        let ok = LaunchConfig::for_elements(1000, 256).unwrap();
        assert!(ok.validate(&p).is_ok());
        assert!(ok.with_shared_mem(65537).validate(&p).is_err());
        let too_many_threads = LaunchConfig {
            block: Dim3::xy(64, 32),
            ..ok
        };
        assert!(too_many_threads.validate(&p).is_err());
        let zero = LaunchConfig {
            grid: Dim3 { x: 1, y: 0, z: 1 },
            ..ok
        };
        assert!(zero.validate(&p).is_err());
        let tall = LaunchConfig {
            grid: Dim3::xy(1, 70000),
            ..ok
        };
        assert!(tall.validate(&p).is_err());
        assert!(LaunchConfig::for_elements(10, 0).is_err());
    }

    #[test]
    fn empty_launch_has_one_block() {
        assert_eq!(LaunchConfig::for_elements(0, 128).unwrap().grid.x, 1);
    }

    proptest! {
        #[test]
        fn for_elements_covers_exactly(elements in 0usize..(1 << 40), block in 1u32..=1024) {
            match LaunchConfig::for_elements(elements, block) {
                Ok(cfg) => {
                    let threads = u64::from(cfg.grid.x) * u64::from(block);
                    prop_assert!(threads >= elements as u64);
                    // no more than one spare block (or the single block of an empty launch)
                    prop_assert!(threads < elements as u64 + u64::from(block) || elements == 0);
                }
                Err(_) => prop_assert!(elements.div_ceil(block as usize) > u32::MAX as usize),
            }
        }

        #[test]
        fn validate_accepts_within_limits(x in 1u32..=1024, gx in 1u32..1_000_000, smem in 0u32..=65536) {
            let cfg = LaunchConfig { grid: Dim3::x(gx), block: Dim3::x(x), shared_mem_bytes: smem };
            prop_assert!(cfg.validate(&props()).is_ok());
        }

        #[test]
        fn volume_never_wraps(x in any::<u32>(), y in any::<u32>(), z in any::<u32>()) {
            let v = Dim3 { x, y, z }.volume();
            let expected = (x as u128) * (y as u128) * (z as u128);
            prop_assert_eq!(v.map(u128::from), if expected <= u64::MAX as u128 { Some(expected) } else { None });
        }
    }
}
