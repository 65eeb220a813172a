//! Borrowed views into device memory. A view never frees: its parent does.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ops::RangeBounds;

use bytemuck::Pod;

use crate::device_buffer::{offset, resolve_range};
use crate::{DeviceMemory, DeviceMemoryMut, Result, Stream};

/// A shared view of device memory, borrowed from a [`crate::DeviceBuffer`] (or another
/// view) for `'a`. It cannot outlive its parent, and while it exists the parent cannot
/// be written through `&mut`.
#[derive(Clone, Copy)]
pub struct DeviceSlice<'a, T: Pod> {
    ptr: *const c_void,
    len: usize,
    stream: &'a Stream,
    _marker: PhantomData<&'a T>,
}

/// An exclusive view of device memory, borrowed mutably for `'a`.
pub struct DeviceSliceMut<'a, T: Pod> {
    ptr: *mut c_void,
    len: usize,
    stream: &'a Stream,
    _marker: PhantomData<&'a mut T>,
}

// SAFETY: a view is a borrowed device range plus a borrowed (Sync) stream; sending it to
// another thread is like sending `&[T]`, which is Send for T: Sync (Pod types are).
unsafe impl<T: Pod + Sync> Send for DeviceSlice<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Sync> Sync for DeviceSlice<'_, T> {}
// SAFETY: like `&mut [T]`: exclusive, so moving it to another thread is sound.
unsafe impl<T: Pod + Send> Send for DeviceSliceMut<'_, T> {}
// SAFETY: &DeviceSliceMut only allows reads.
unsafe impl<T: Pod + Sync> Sync for DeviceSliceMut<'_, T> {}

impl<'a, T: Pod> DeviceSlice<'a, T> {
    /// # Safety
    /// `ptr..ptr + len * size_of::<T>()` must be live device memory owned (directly or
    /// not) by something borrowed for `'a`, ordered on `stream`.
    pub(crate) unsafe fn new(ptr: *const c_void, len: usize, stream: &'a Stream) -> Self {
        Self {
            ptr,
            len,
            stream,
            _marker: PhantomData,
        }
    }

    /// A narrower view.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<DeviceSlice<'a, T>> {
        let (start, end) = resolve_range(range, self.len)?;
        let ptr = offset(self.ptr.cast_mut(), start, std::mem::size_of::<T>());
        // SAFETY: inside this view, same borrow.
        Ok(unsafe { DeviceSlice::new(ptr, end - start, self.stream) })
    }
}

impl<'a, T: Pod> DeviceSliceMut<'a, T> {
    /// # Safety
    /// As [`DeviceSlice::new`], and nothing else may access the range during `'a`.
    pub(crate) unsafe fn new(ptr: *mut c_void, len: usize, stream: &'a Stream) -> Self {
        Self {
            ptr,
            len,
            stream,
            _marker: PhantomData,
        }
    }

    /// A narrower exclusive view, reborrowing this one.
    pub fn slice_mut(&mut self, range: impl RangeBounds<usize>) -> Result<DeviceSliceMut<'_, T>> {
        let (start, end) = resolve_range(range, self.len)?;
        let ptr = offset(self.ptr, start, std::mem::size_of::<T>());
        // SAFETY: inside this view; `&mut self` keeps it exclusive.
        Ok(unsafe { DeviceSliceMut::new(ptr, end - start, self.stream) })
    }

    /// Splits into two exclusive views at `mid`.
    pub fn split_at_mut(
        &mut self,
        mid: usize,
    ) -> Result<(DeviceSliceMut<'_, T>, DeviceSliceMut<'_, T>)> {
        let (_, mid) = resolve_range(..mid, self.len)?;
        let right = offset(self.ptr, mid, std::mem::size_of::<T>());
        // SAFETY: the halves are disjoint and inside this view.
        Ok(unsafe {
            (
                DeviceSliceMut::new(self.ptr, mid, self.stream),
                DeviceSliceMut::new(right, self.len - mid, self.stream),
            )
        })
    }

    /// A shared view of the same range.
    pub fn as_slice(&self) -> DeviceSlice<'_, T> {
        // SAFETY: same range, borrowed shared from this exclusive view.
        unsafe { DeviceSlice::new(self.ptr, self.len, self.stream) }
    }
}

impl<T: Pod> DeviceMemory<T> for DeviceSlice<'_, T> {
    fn device_ptr(&self) -> *const c_void {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
    fn stream(&self) -> &Stream {
        self.stream
    }
}

impl<T: Pod> DeviceMemory<T> for DeviceSliceMut<'_, T> {
    fn device_ptr(&self) -> *const c_void {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
    fn stream(&self) -> &Stream {
        self.stream
    }
}

impl<T: Pod> DeviceMemoryMut<T> for DeviceSliceMut<'_, T> {
    fn device_ptr_mut(&mut self) -> *mut c_void {
        self.ptr
    }
}
