//! What buffers and views have in common: a typed range of device memory that belongs
//! to a stream.

use std::ffi::c_void;

use bytemuck::Pod;
use rocmforge_sys::bindings::hip::hipMemcpyKind;

use crate::error::byte_len;
use crate::{Error, PinnedHostBuffer, Result, Stream};

/// A typed range of device memory, readable in the order of its stream.
pub trait DeviceMemory<T: Pod> {
    /// The device address of the first element (null when empty).
    fn device_ptr(&self) -> *const c_void;

    /// Number of elements.
    fn len(&self) -> usize;

    /// The stream that owns this memory: all work on it is ordered on this stream.
    fn stream(&self) -> &Stream;

    /// Whether there are no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size in bytes.
    fn byte_len(&self) -> usize {
        // Cannot overflow: the allocation of this many bytes succeeded.
        self.len() * std::mem::size_of::<T>()
    }

    /// Copies into `dst` and waits for this memory's stream (so `dst` cannot be freed
    /// while the copy runs).
    fn copy_to_host(&self, dst: &mut [T]) -> Result<()> {
        check_len("copy_to_host", self.len(), dst.len())?;
        let stream = self.stream();
        stream.ensure_not_capturing("copy_to_host")?;
        // SAFETY: dst is writable host memory of byte_len bytes; the stream is
        // synchronized before dst is released.
        unsafe {
            memcpy_async(
                stream,
                dst.as_mut_ptr().cast(),
                self.device_ptr(),
                self.byte_len(),
                hipMemcpyKind::hipMemcpyDeviceToHost,
            )?;
        }
        stream.wait_idle()
    }

    /// Copies into a new `Vec`, waiting for this memory's stream.
    fn to_vec(&self) -> Result<Vec<T>> {
        let mut out = vec![T::zeroed(); self.len()];
        self.copy_to_host(&mut out)?;
        Ok(out)
    }

    /// Enqueues a copy into pinned host memory and returns at once. The pinned buffer
    /// waits for the copy before the host can read it again or it is released.
    fn copy_to_pinned_async(&self, dst: &mut PinnedHostBuffer<T>) -> Result<()> {
        check_len("copy_to_pinned_async", self.len(), dst.len())?;
        let stream = self.stream();
        dst.before_device_use(stream)?;
        // SAFETY: dst stays allocated (and is not accessed by the host) until the event
        // recorded below completes; see PinnedHostBuffer.
        unsafe {
            memcpy_async(
                stream,
                dst.as_mut_ptr_unsynchronized().cast(),
                self.device_ptr(),
                self.byte_len(),
                hipMemcpyKind::hipMemcpyDeviceToHost,
            )?;
        }
        dst.after_device_use(stream)
    }
}

/// A typed range of device memory that may be written.
pub trait DeviceMemoryMut<T: Pod>: DeviceMemory<T> {
    /// The device address of the first element (null when empty).
    fn device_ptr_mut(&mut self) -> *mut c_void;

    /// Copies `src` in, waiting for this memory's stream before returning.
    fn copy_from_host(&mut self, src: &[T]) -> Result<()> {
        check_len("copy_from_host", self.len(), src.len())?;
        let stream = self.stream().clone();
        stream.ensure_not_capturing("copy_from_host")?;
        let bytes = self.byte_len();
        // SAFETY: src is readable for byte_len bytes and outlives the copy: the stream is
        // synchronized before returning.
        unsafe {
            memcpy_async(
                &stream,
                self.device_ptr_mut(),
                src.as_ptr().cast(),
                bytes,
                hipMemcpyKind::hipMemcpyHostToDevice,
            )?;
        }
        stream.wait_idle()
    }

    /// Enqueues a copy from pinned host memory and returns at once. The pinned buffer
    /// cannot be written or released by the host until the copy has finished.
    fn copy_from_pinned_async(&mut self, src: &mut PinnedHostBuffer<T>) -> Result<()> {
        check_len("copy_from_pinned_async", self.len(), src.len())?;
        let stream = self.stream().clone();
        src.before_device_use(&stream)?;
        let bytes = self.byte_len();
        // SAFETY: src stays allocated and unmodified until the recorded event completes.
        unsafe {
            memcpy_async(
                &stream,
                self.device_ptr_mut(),
                src.as_mut_ptr_unsynchronized().cast_const().cast(),
                bytes,
                hipMemcpyKind::hipMemcpyHostToDevice,
            )?;
        }
        src.after_device_use(&stream)
    }

    /// Enqueues a device-to-device copy from `src`, which must belong to the same stream.
    fn copy_from_device(&mut self, src: &dyn DeviceMemory<T>) -> Result<()> {
        check_len("copy_from_device", self.len(), src.len())?;
        if src.stream() != self.stream() {
            return Err(Error::StreamMismatch {
                what: "copy_from_device",
            });
        }
        let stream = self.stream().clone();
        let bytes = self.byte_len();
        // SAFETY: both ranges are live device memory of `bytes` bytes, ordered on `stream`;
        // they cannot overlap: `self` is borrowed mutably, `src` shared.
        unsafe {
            memcpy_async(
                &stream,
                self.device_ptr_mut(),
                src.device_ptr(),
                bytes,
                hipMemcpyKind::hipMemcpyDeviceToDevice,
            )
        }
    }

    /// Enqueues setting every byte to `value`.
    fn fill_bytes(&mut self, value: u8) -> Result<()> {
        let bytes = self.byte_len();
        if bytes == 0 {
            return Ok(());
        }
        let stream = self.stream().clone();
        let device = stream.device();
        // SAFETY: the range is live device memory of `bytes` bytes, ordered on `stream`.
        device.check("hipMemsetAsync", unsafe {
            (device.hip().hipMemsetAsync)(
                self.device_ptr_mut(),
                i32::from(value),
                bytes,
                stream.as_raw(),
            )
        })
    }

    /// Enqueues setting every element to zero.
    fn fill_zero(&mut self) -> Result<()> {
        self.fill_bytes(0)
    }
}

fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected != actual {
        return Err(Error::LengthMismatch {
            what,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Enqueues `hipMemcpyAsync` on `stream`; a no-op for zero bytes.
///
/// # Safety
/// `dst` and `src` must be valid for `bytes` bytes of the kind's memory types until the
/// copy completes in stream order.
pub(crate) unsafe fn memcpy_async(
    stream: &Stream,
    dst: *mut c_void,
    src: *const c_void,
    bytes: usize,
    kind: hipMemcpyKind,
) -> Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    let device = stream.device();
    // SAFETY: guaranteed by the caller.
    device.check("hipMemcpyAsync", unsafe {
        (device.hip().hipMemcpyAsync)(dst, src, bytes, kind, stream.as_raw())
    })
}

/// Bytes for `len` elements of `T`, checked against overflow.
pub(crate) fn bytes_for<T>(what: &'static str, len: usize) -> Result<usize> {
    byte_len::<T>(what, len)
}
