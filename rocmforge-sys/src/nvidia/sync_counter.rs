//! Counts the calls the adapter makes that synchronize a whole context (device), so that
//! the GPU test suite can assert that rocmforge never causes one.
//!
//! What is counted, and why:
//!
//! * `cuMemFreeHost`: freeing page-locked memory waits for the device. The driver
//!   documentation gives it no stream, so it cannot order itself after the work that
//!   uses the buffer; NVIDIA's forum answer on it (cited in openxla/xla#46093,
//!   <https://forums.developer.nvidia.com/t/memory-safety-of-async-memcpy/283286/2>) is
//!   that it behaves as an implicit device synchronization, and HIP's own `hipHostFree`
//!   synchronizes the device (JuliaGPU/AMDGPU.jl#538 cites the ROCm source).
//! * `cuMemHostAlloc`: the CUDA C++ Programming Guide, "Implicit Synchronization", lists
//!   "a page-locked host memory allocation" among the operations between which commands
//!   of different streams cannot run concurrently.
//! * Any operation on the NULL stream (`hipStream_t` null, CUDA's legacy default stream):
//!   "the legacy stream first waits on all blocking streams, the action is queued in the
//!   legacy stream, and then all blocking streams wait on the legacy stream"
//!   (<https://docs.nvidia.com/cuda/cuda-driver-api/stream-sync-behavior.html>), and the
//!   Programming Guide lists "any CUDA command to the NULL stream" as an implicit
//!   synchronization.
//! * `cuCtxSynchronize`: the adapter has no code path that calls it (it is not even in the
//!   driver table), so it can never be counted.
//!
//! Not counted: `cuModuleUnload` (its reference page documents no synchronization, only
//! that later use of the handle is undefined; oneapi-src/SYCLomatic-test#230 had to add a
//! device synchronization before it because the unload can happen while a kernel of the
//! module still runs, so callers must keep a module alive until their kernels are done),
//! `cuMemAllocAsync`/`cuMemFreeAsync` (stream-ordered), and `cuMemsetD8Async`/copies on a
//! non-NULL stream (ordered on that stream only; the guide's "device memory set" and
//! "device memory allocation" are the synchronous `cudaMemset`/`cudaMalloc`).

use std::sync::atomic::{AtomicU64, Ordering};

static MEM_FREE_HOST: AtomicU64 = AtomicU64::new(0);
static MEM_HOST_ALLOC: AtomicU64 = AtomicU64::new(0);
static NULL_STREAM: AtomicU64 = AtomicU64::new(0);

/// Which kind of context-wide synchronization a call performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncKind {
    /// `cuMemFreeHost` (from `hipHostFree`).
    MemFreeHost,
    /// `cuMemHostAlloc` (from `hipHostMalloc`).
    MemHostAlloc,
    /// Work, a wait or a query on the legacy NULL stream.
    NullStream,
}

/// Counts one synchronizing call.
pub(crate) fn count(kind: SyncKind) {
    let counter = match kind {
        SyncKind::MemFreeHost => &MEM_FREE_HOST,
        SyncKind::MemHostAlloc => &MEM_HOST_ALLOC,
        SyncKind::NullStream => &NULL_STREAM,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Counts a NULL-stream use when `stream` is null.
pub(crate) fn count_if_null_stream<T>(stream: *mut T) {
    if stream.is_null() {
        count(SyncKind::NullStream);
    }
}

/// The synchronizing calls made by this process so far, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    /// `cuMemFreeHost` calls (each `hipHostFree` of a non-null pointer).
    pub mem_free_host: u64,
    /// `cuMemHostAlloc` calls (each `hipHostMalloc` of a non-zero size).
    pub mem_host_alloc: u64,
    /// Calls that put work on, waited on, or queried the legacy NULL stream.
    pub null_stream: u64,
}

impl SyncCounts {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.mem_free_host + self.mem_host_alloc + self.null_stream
    }
}

/// A snapshot of the counters.
pub fn sync_counts() -> SyncCounts {
    SyncCounts {
        mem_free_host: MEM_FREE_HOST.load(Ordering::Relaxed),
        mem_host_alloc: MEM_HOST_ALLOC.load(Ordering::Relaxed),
        null_stream: NULL_STREAM.load(Ordering::Relaxed),
    }
}

/// How many context- or device-wide synchronizations the adapter has performed in this
/// process (the sum of [`sync_counts`]).
pub fn context_synchronizations() -> u64 {
    sync_counts().total()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let before = sync_counts();
        count(SyncKind::MemFreeHost);
        count(SyncKind::MemHostAlloc);
        count_if_null_stream(std::ptr::null_mut::<u8>());
        count_if_null_stream(8usize as *mut u8);
        let after = sync_counts();
        // Other tests may count concurrently; ours are at least there.
        assert!(after.mem_free_host > before.mem_free_host);
        assert!(after.mem_host_alloc > before.mem_host_alloc);
        assert!(after.null_stream > before.null_stream);
        assert!(context_synchronizations() >= after.total());
    }
}
