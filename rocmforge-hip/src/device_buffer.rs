//! Device memory owned by a stream.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use bytemuck::Pod;

use crate::device_memory::bytes_for;
use crate::{
    DeviceMemory, DeviceMemoryMut, DeviceSlice, DeviceSliceMut, Error, PinnedHostBuffer, Result,
    Stream,
};

/// `len` elements of `T` in device memory, allocated with `hipMallocAsync` on a stream
/// and freed with `hipFreeAsync` on the same stream when dropped.
///
/// The free is stream-ordered: dropping a buffer while kernels that use it are still
/// running is safe, the memory is reused only after they finish. Work on another stream
/// must go through [`DeviceBuffer::move_to_stream`], which orders the two streams with
/// an event.
///
/// `T: Pod` because device memory can hold any bit pattern and is copied bytewise: types
/// with pointers or destructors cannot live there.
///
/// ```compile_fail
/// # fn f(stream: &rocmforge_hip::Stream) {
/// let strings = rocmforge_hip::DeviceBuffer::<String>::alloc(stream, 4);
/// # }
/// ```
pub struct DeviceBuffer<T: Pod> {
    ptr: *mut c_void,
    len: usize,
    stream: Stream,
    _marker: PhantomData<T>,
}

// SAFETY: the buffer owns its device memory exclusively; device memory and the stream
// handle may be used from any thread. T: Pod has no thread affinity.
unsafe impl<T: Pod> Send for DeviceBuffer<T> {}
// SAFETY: &DeviceBuffer only enqueues reads, ordered on the buffer's (thread-safe) stream.
unsafe impl<T: Pod> Sync for DeviceBuffer<T> {}

impl<T: Pod> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuffer")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len)
            .field("ptr", &self.ptr)
            .finish()
    }
}

impl<T: Pod> DeviceBuffer<T> {
    /// Allocates `len` elements on `stream`. The contents are unspecified (any bit
    /// pattern is a valid `T`).
    pub fn alloc(stream: &Stream, len: usize) -> Result<Self> {
        let bytes = bytes_for::<T>("DeviceBuffer::alloc", len)?;
        let mut ptr: *mut c_void = std::ptr::null_mut();
        if bytes > 0 {
            // Allocations inside a graph capture would become graph-owned memory whose
            // address is not valid until the graph runs: refuse them.
            stream.ensure_not_capturing("DeviceBuffer::alloc")?;
            let device = stream.device();
            device.make_current()?;
            // SAFETY: valid out-pointer and live stream.
            device.check("hipMallocAsync", unsafe {
                (device.hip().hipMallocAsync)(&mut ptr, bytes, stream.as_raw())
            })?;
        }
        Ok(Self {
            ptr,
            len,
            stream: stream.clone(),
            _marker: PhantomData,
        })
    }

    /// Allocates `len` zeroed elements (the zeroing is enqueued).
    pub fn zeroed(stream: &Stream, len: usize) -> Result<Self> {
        let mut buffer = Self::alloc(stream, len)?;
        buffer.fill_zero()?;
        Ok(buffer)
    }

    /// Allocates and copies `data` in (waits for the copy).
    pub fn from_slice(stream: &Stream, data: &[T]) -> Result<Self> {
        let mut buffer = Self::alloc(stream, data.len())?;
        buffer.copy_from_host(data)?;
        Ok(buffer)
    }

    /// Allocates and enqueues a copy from pinned memory.
    pub fn from_pinned_async(stream: &Stream, data: &mut PinnedHostBuffer<T>) -> Result<Self> {
        let mut buffer = Self::alloc(stream, data.len())?;
        buffer.copy_from_pinned_async(data)?;
        Ok(buffer)
    }

    /// Hands the buffer to `stream`: `stream` waits (via an event) for all work enqueued
    /// on the current stream so far, and the buffer's later free is ordered on `stream`.
    pub fn move_to_stream(&mut self, stream: &Stream) -> Result<()> {
        if *stream == self.stream {
            return Ok(());
        }
        if stream.device().raw_ordinal() != self.stream.device().raw_ordinal() {
            return Err(Error::DeviceMismatch {
                what: "DeviceBuffer::move_to_stream",
                expected: self.stream.device().raw_ordinal(),
                actual: stream.device().raw_ordinal(),
            });
        }
        stream.wait_for(&self.stream)?;
        self.stream = stream.clone();
        Ok(())
    }

    /// A shared view of `range`.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<DeviceSlice<'_, T>> {
        let (start, end) = resolve_range(range, self.len)?;
        // SAFETY: start <= end <= len, so the view lies inside the allocation.
        Ok(unsafe {
            DeviceSlice::new(
                offset(self.ptr, start, std::mem::size_of::<T>()),
                end - start,
                &self.stream,
            )
        })
    }

    /// An exclusive view of `range`.
    pub fn slice_mut(&mut self, range: impl RangeBounds<usize>) -> Result<DeviceSliceMut<'_, T>> {
        let (start, end) = resolve_range(range, self.len)?;
        let ptr = offset(self.ptr, start, std::mem::size_of::<T>());
        // SAFETY: in bounds, and `&mut self` makes the view exclusive.
        Ok(unsafe { DeviceSliceMut::new(ptr, end - start, &self.stream) })
    }

    /// A shared view of the whole buffer.
    pub fn as_slice(&self) -> DeviceSlice<'_, T> {
        // SAFETY: the whole allocation.
        unsafe { DeviceSlice::new(self.ptr, self.len, &self.stream) }
    }

    /// An exclusive view of the whole buffer.
    pub fn as_slice_mut(&mut self) -> DeviceSliceMut<'_, T> {
        // SAFETY: the whole allocation, exclusive through `&mut self`.
        unsafe { DeviceSliceMut::new(self.ptr, self.len, &self.stream) }
    }
}

impl<T: Pod> DeviceMemory<T> for DeviceBuffer<T> {
    fn device_ptr(&self) -> *const c_void {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
    fn stream(&self) -> &Stream {
        &self.stream
    }
}

impl<T: Pod> DeviceMemoryMut<T> for DeviceBuffer<T> {
    fn device_ptr_mut(&mut self) -> *mut c_void {
        self.ptr
    }
}

impl<T: Pod> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        if self.ptr.is_null() {
            return;
        }
        // Stream-ordered: the memory returns to the pool after the work enqueued on this
        // stream so far, never while a kernel still uses it (after the capture, when one
        // is in progress on the stream).
        self.stream.free_async(self.ptr.cast());
    }
}

/// `start..end` of a range over `len` elements, checked.
pub(crate) fn resolve_range(range: impl RangeBounds<usize>, len: usize) -> Result<(usize, usize)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => Some(s),
        Bound::Excluded(&s) => s.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => Some(len),
    };
    match (start, end) {
        (Some(start), Some(end)) if start <= end && end <= len => Ok((start, end)),
        (start, end) => Err(Error::OutOfBounds {
            start: start.unwrap_or(usize::MAX),
            end: end.unwrap_or(usize::MAX),
            len,
        }),
    }
}

/// `ptr + index * elem_size` bytes, as a device address (never dereferenced on the host).
pub(crate) fn offset(ptr: *mut c_void, index: usize, elem_size: usize) -> *mut c_void {
    if index == 0 {
        return ptr;
    }
    // wrapping: device addresses are opaque to the host; in-bounds is checked by callers.
    ptr.cast::<u8>().wrapping_add(index * elem_size).cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_resolve() {
        assert_eq!(resolve_range(.., 10).unwrap(), (0, 10));
        assert_eq!(resolve_range(2..5, 10).unwrap(), (2, 5));
        assert_eq!(resolve_range(2..=5, 10).unwrap(), (2, 6));
        assert_eq!(resolve_range(10.., 10).unwrap(), (10, 10));
        assert!(resolve_range(5..11, 10).is_err());
        let (start, end) = (6, 5);
        assert!(resolve_range(start..end, 10).is_err());
        assert!(resolve_range(0..=usize::MAX, 10).is_err());
    }

    proptest! {
        #[test]
        fn resolved_ranges_are_in_bounds(a in 0usize..100, b in 0usize..100, len in 0usize..100) {
            match resolve_range(a..b, len) {
                Ok((s, e)) => { prop_assert!(s <= e && e <= len); prop_assert_eq!((s, e), (a, b)); }
                Err(Error::OutOfBounds { .. }) => prop_assert!(a > b || b > len),
                Err(other) => prop_assert!(false, "unexpected {}", other),
            }
        }
    }
}
