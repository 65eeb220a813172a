//! Free and total device memory.

/// `hipMemGetInfo`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryInfo {
    /// Bytes free on the device (for all processes).
    pub free: usize,
    /// Bytes on the device.
    pub total: usize,
}

impl MemoryInfo {
    /// Bytes in use (by any process).
    pub fn used(&self) -> usize {
        self.total.saturating_sub(self.free)
    }
}
