//! Page-locked host memory, reused instead of freed.
//!
//! `hipHostFree` synchronizes the whole device (docs/sync-safety.md), so a pinned
//! buffer's drop returns its block here; blocks go back to HIP only when the `Device`
//! that owns the pool is torn down.

use parking_lot::Mutex;
use rocmforge_sys::bindings::hip::{hipError_t, hipHostMallocDefault};
use rocmforge_sys::Runtime;

use crate::error::check;
use crate::Result;

/// Blocks are allocated in multiples of this (a page).
const GRANULE: usize = 4096;

/// A block of page-locked host memory from `hipHostMalloc`.
#[derive(Debug)]
pub(crate) struct PinnedBlock {
    pub(crate) ptr: *mut u8,
    pub(crate) bytes: usize,
}

// SAFETY: the block is plain host memory owned by whoever holds the PinnedBlock; HIP's
// page-locked allocations may be used and released from any thread.
unsafe impl Send for PinnedBlock {}

/// Free blocks of one device, smallest first.
#[derive(Debug, Default)]
pub(crate) struct PinnedPool {
    free: Mutex<Vec<PinnedBlock>>,
}

/// The block size for a request: rounded up to the granule, at least one granule.
pub(crate) fn block_size(bytes: usize) -> Option<usize> {
    let bytes = bytes.max(1);
    bytes
        .checked_add(GRANULE - 1)
        .map(|b| b / GRANULE * GRANULE)
}

impl PinnedPool {
    /// A block of at least `bytes`: the smallest free block that fits and wastes at most
    /// half of itself, else a new allocation. The device must be current.
    pub(crate) fn take(&self, runtime: &Runtime, bytes: usize) -> Result<PinnedBlock> {
        let size = block_size(bytes).ok_or(crate::Error::SizeOverflow {
            what: "pinned host buffer",
            len: bytes,
            elem_size: 1,
        })?;
        {
            let mut free = self.free.lock();
            if let Some(pos) = free
                .iter()
                .position(|b| b.bytes >= size && b.bytes / 2 <= size)
            {
                return Ok(free.remove(pos));
            }
        }
        let mut ptr: *mut core::ffi::c_void = std::ptr::null_mut();
        // SAFETY: valid out-pointer; the size is non-zero.
        let status = unsafe { (runtime.hip().hipHostMalloc)(&mut ptr, size, hipHostMallocDefault) };
        check(runtime, "hipHostMalloc", status)?;
        Ok(PinnedBlock {
            ptr: ptr.cast(),
            bytes: size,
        })
    }

    /// Returns a block for reuse. The caller guarantees no device work still uses it.
    pub(crate) fn give_back(&self, block: PinnedBlock) {
        let mut free = self.free.lock();
        let pos = free.partition_point(|b| b.bytes < block.bytes);
        free.insert(pos, block);
    }

    /// Releases every free block (teardown of the device only).
    pub(crate) fn release_all(&self, runtime: &Runtime) {
        for block in self.free.lock().drain(..) {
            // SAFETY: the block came from hipHostMalloc and no buffer refers to it.
            let status: hipError_t = unsafe { (runtime.hip().hipHostFree)(block.ptr.cast()) };
            // The device (and its record of deferred errors) is going away: nothing is left
            // to hand this error to, so it goes to stderr rather than vanishing.
            if status != hipError_t::hipSuccess {
                eprintln!(
                    "rocmforge: hipHostFree failed with {status:?} while tearing down a device"
                );
            }
        }
    }

    /// How many blocks are waiting for reuse.
    #[cfg(test)]
    pub(crate) fn free_blocks(&self) -> usize {
        self.free.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn give_back_keeps_blocks_sorted() {
        let pool = PinnedPool::default();
        for bytes in [8192usize, 4096, 16384] {
            pool.give_back(PinnedBlock {
                ptr: std::ptr::null_mut(),
                bytes,
            });
        }
        let sizes: Vec<usize> = pool.free.lock().iter().map(|b| b.bytes).collect();
        assert_eq!(sizes, vec![4096, 8192, 16384]);
        assert_eq!(pool.free_blocks(), 3);
        // Null blocks must not reach hipHostFree: clear them by hand.
        pool.free.lock().clear();
    }

    proptest! {
        #[test]
        fn block_size_rounds_up_to_pages(bytes in 0usize..(1 << 40)) {
            let size = block_size(bytes).unwrap();
            prop_assert!(size >= bytes.max(1));
            prop_assert_eq!(size % GRANULE, 0);
            prop_assert!(size - bytes.max(1) < GRANULE);
        }
    }

    #[test]
    fn block_size_overflow_is_none() {
        assert_eq!(block_size(usize::MAX), None);
    }
}
