//! Page-locked host memory, for asynchronous copies.

use std::ptr::NonNull;

use bytemuck::Pod;

use crate::device_memory::bytes_for;
use crate::pinned_pool::PinnedBlock;
use crate::{Device, Event, Result, Stream};

/// `len` elements of `T` in page-locked host memory, the only host memory that
/// asynchronous copies accept.
///
/// Async copies (`copy_from_pinned_async`, `copy_to_pinned_async`) take `&mut self` and
/// record an event after the copy. Every later host access ([`as_slice`], [`as_mut_slice`])
/// and the drop first wait for that event, so the host never reads a half-written buffer
/// and the memory is never released or reused while a copy is in flight. A later async
/// use on another stream is ordered after the pending one. The memory comes from, and
/// returns to, the device's pinned pool.
///
/// [`as_slice`]: PinnedHostBuffer::as_slice
/// [`as_mut_slice`]: PinnedHostBuffer::as_mut_slice
pub struct PinnedHostBuffer<T: Pod> {
    ptr: NonNull<T>,
    len: usize,
    block: Option<PinnedBlock>,
    device: Device,
    pending: Option<Event>,
}

// SAFETY: the buffer exclusively owns plain host memory; the event and device are
// Send. Moving it to another thread moves that ownership.
unsafe impl<T: Pod + Send> Send for PinnedHostBuffer<T> {}
// SAFETY: &PinnedHostBuffer only gives &[T] (after waiting) — like &Vec<T>.
unsafe impl<T: Pod + Sync> Sync for PinnedHostBuffer<T> {}

impl<T: Pod> PinnedHostBuffer<T> {
    /// `len` zeroed elements.
    pub fn new(device: &Device, len: usize) -> Result<Self> {
        let bytes = bytes_for::<T>("PinnedHostBuffer::new", len)?;
        device.make_current()?;
        let block = device.pinned_pool().take(device.runtime(), bytes)?;
        // Zero it: pinned memory from HIP (or reused from the pool) is not initialized,
        // and handing out uninitialized memory as &[T] would be undefined behaviour.
        // SAFETY: the block holds at least `bytes` writable bytes.
        unsafe { std::ptr::write_bytes(block.ptr, 0, bytes) };
        let ptr = NonNull::new(block.ptr.cast::<T>()).unwrap_or(NonNull::dangling());
        Ok(Self {
            ptr,
            len,
            block: Some(block),
            device: device.clone(),
            pending: None,
        })
    }

    /// A copy of `data` in pinned memory.
    pub fn from_slice(device: &Device, data: &[T]) -> Result<Self> {
        let mut buffer = Self::new(device, data.len())?;
        buffer.as_mut_slice()?.copy_from_slice(data);
        Ok(buffer)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The contents, after any async copy that uses this buffer has finished.
    pub fn as_slice(&self) -> Result<&[T]> {
        if let Some(event) = &self.pending {
            event.synchronize()?;
        }
        // SAFETY: ptr is valid for len initialized elements; no device copy is in
        // flight (waited above, and starting one needs &mut self).
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) })
    }

    /// The contents, writable, after any async copy that uses this buffer has finished.
    pub fn as_mut_slice(&mut self) -> Result<&mut [T]> {
        self.wait_pending()?;
        // SAFETY: as in as_slice, and &mut self makes the access exclusive.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }

    /// Copies the contents into a `Vec`, after pending copies finish.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        Ok(self.as_slice()?.to_vec())
    }

    /// The device this buffer's memory is registered with.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Orders an async use on `stream` after the previous one (which may be on another
    /// stream). Called before enqueueing.
    pub(crate) fn before_device_use(&mut self, stream: &Stream) -> Result<()> {
        if let Some(event) = &self.pending {
            stream.wait_event(event)?;
        }
        Ok(())
    }

    /// Records the completion event of an async use just enqueued on `stream`.
    pub(crate) fn after_device_use(&mut self, stream: &Stream) -> Result<()> {
        let event = match self.pending.take() {
            Some(event) if event.device() == stream.device() => event,
            _ => Event::new(stream.device())?,
        };
        event.record(stream)?;
        self.pending = Some(event);
        Ok(())
    }

    /// The raw pointer for an async copy being enqueued (the caller records the event).
    pub(crate) fn as_mut_ptr_unsynchronized(&mut self) -> *mut T {
        self.ptr.as_ptr()
    }

    fn wait_pending(&mut self) -> Result<()> {
        if let Some(event) = &self.pending {
            event.synchronize()?;
            self.pending = None;
        }
        Ok(())
    }
}

impl<T: Pod> Drop for PinnedHostBuffer<T> {
    fn drop(&mut self) {
        let Some(block) = self.block.take() else {
            return;
        };
        match self.wait_pending() {
            Ok(()) => self.device.pinned_pool().give_back(block),
            Err(e) => {
                // The copy's completion is unknown: reusing the block could let the device
                // write into someone else's data. Leak it (a PinnedBlock frees nothing on
                // drop) and report.
                self.device.deferred().record(e);
                let _leaked = block;
            }
        }
    }
}
