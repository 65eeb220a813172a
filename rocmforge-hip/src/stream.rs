//! A non-blocking stream: an ordered queue of device work.

use std::sync::{Arc, Mutex, MutexGuard};

use rocmforge_sys::bindings::hip::{hipStreamNonBlocking, hipStream_t};

use crate::{Device, Event, Result};

/// An ordered queue of work on one device, created with `hipStreamNonBlocking` so it
/// never synchronizes with the null stream. Cheap to clone: clones are the same stream.
///
/// Waiting on a stream ([`Stream::synchronize`]) waits for this stream only; nothing in
/// rocmforge waits for the whole device.
#[derive(Clone)]
pub struct Stream {
    inner: Arc<StreamInner>,
}

struct StreamInner {
    raw: hipStream_t,
    device: Device,
    capture: Mutex<CaptureState>,
}

/// Whether a capture (begun through [`Stream::begin_capture`]) is in progress, and the
/// frees that had to wait for its end.
///
/// A buffer dropped while its stream is capturing — by another thread that shares the
/// stream — must not enqueue its free then: the free would become part of the graph (and
/// CUDA refuses to capture the free of memory allocated outside the graph). It is
/// enqueued when the capture ends instead, still in stream order (nothing enqueued
/// during a capture runs). The lock also closes the window between "is it capturing?"
/// and the free.
#[derive(Default)]
pub(crate) struct CaptureState {
    pub(crate) capturing: bool,
    /// Device pointers (as addresses) to free when the capture ends.
    pub(crate) pending_frees: Vec<usize>,
}

// SAFETY: a HIP stream handle may be used from any thread of the process; the HIP
// runtime serializes concurrent calls on one stream internally.
unsafe impl Send for StreamInner {}
// SAFETY: as above; &StreamInner only exposes calls that HIP makes thread-safe.
unsafe impl Sync for StreamInner {}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("device", &self.inner.device.ordinal())
            .field("raw", &self.inner.raw)
            .finish()
    }
}

impl PartialEq for Stream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Stream {}

impl Stream {
    /// A new non-blocking stream on `device`.
    pub fn new(device: &Device) -> Result<Stream> {
        device.make_current()?;
        let mut raw: hipStream_t = std::ptr::null_mut();
        // SAFETY: valid out-pointer; the flag asks for a non-blocking stream.
        device.check("hipStreamCreateWithFlags", unsafe {
            (device.hip().hipStreamCreateWithFlags)(&mut raw, hipStreamNonBlocking)
        })?;
        Ok(Stream {
            inner: Arc::new(StreamInner {
                raw,
                device: device.clone(),
                capture: Mutex::new(CaptureState::default()),
            }),
        })
    }

    /// The device of this stream.
    pub fn device(&self) -> &Device {
        &self.inner.device
    }

    /// The raw handle, for FFI. Enqueuing on it is `unsafe` by nature.
    pub fn as_raw(&self) -> hipStream_t {
        self.inner.raw
    }

    /// Waits until all work enqueued on this stream has finished. Also reports errors
    /// that destructors of this device's objects met since the last check.
    pub fn synchronize(&self) -> Result<()> {
        self.wait_idle()?;
        self.device().deferred().check()
    }

    /// Waits for this stream's work, without reporting deferred errors (for blocking
    /// copies, whose data is valid whatever some destructor met earlier).
    pub(crate) fn wait_idle(&self) -> Result<()> {
        let device = self.device();
        // SAFETY: the stream is alive (we hold it).
        device.check("hipStreamSynchronize", unsafe {
            (device.hip().hipStreamSynchronize)(self.inner.raw)
        })
    }

    /// Whether all enqueued work has finished, without waiting.
    pub fn query(&self) -> Result<bool> {
        let device = self.device();
        // SAFETY: the stream is alive.
        let status = unsafe { (device.hip().hipStreamQuery)(self.inner.raw) };
        if status == rocmforge_sys::bindings::hip::hipError_t::hipErrorNotReady {
            return Ok(false);
        }
        device.check("hipStreamQuery", status).map(|()| true)
    }

    /// Makes later work on this stream wait until `event` (as last recorded) completes.
    /// Does not block the host.
    pub fn wait_event(&self, event: &Event) -> Result<()> {
        event.check_device(self.device(), "Stream::wait_event")?;
        let device = self.device();
        // SAFETY: both handles are alive; flags must be 0.
        device.check("hipStreamWaitEvent", unsafe {
            (device.hip().hipStreamWaitEvent)(self.inner.raw, event.as_raw(), 0)
        })
    }

    /// Makes later work on this stream wait for everything enqueued on `other` so far.
    pub fn wait_for(&self, other: &Stream) -> Result<()> {
        if self == other {
            return Ok(());
        }
        let event = Event::new(other.device())?;
        event.record(other)?;
        self.wait_event(&event)
    }

    /// Records a new event at the current end of this stream.
    pub fn record_event(&self) -> Result<Event> {
        let event = Event::new(self.device())?;
        event.record(self)?;
        Ok(event)
    }

    /// Records a new timing event at the current end of this stream.
    pub fn record_timing_event(&self) -> Result<Event> {
        let event = Event::with_timing(self.device())?;
        event.record(self)?;
        Ok(event)
    }

    /// The capture state, locked. A poisoned lock is taken over: the state is two plain
    /// fields that a panic cannot leave half-written.
    pub(crate) fn capture_state(&self) -> MutexGuard<'_, CaptureState> {
        self.inner
            .capture
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Frees `ptr` (from `hipMallocAsync`) in stream order; while a capture is in
    /// progress on this stream, when it ends.
    pub(crate) fn free_async(&self, ptr: *mut core::ffi::c_void) {
        let mut state = self.capture_state();
        if state.capturing {
            state.pending_frees.push(ptr as usize);
            return;
        }
        self.enqueue_free(ptr);
    }

    /// `hipFreeAsync` on this stream; an error is recorded for the next check.
    pub(crate) fn enqueue_free(&self, ptr: *mut core::ffi::c_void) {
        let device = self.device();
        // SAFETY: the caller owns the allocation, which came from hipMallocAsync; the
        // free is ordered after the work enqueued on this stream so far.
        let status = unsafe { (device.hip().hipFreeAsync)(ptr, self.inner.raw) };
        device
            .deferred()
            .record_result(device.check("hipFreeAsync", status));
    }

    /// `Err(Capturing)` if this stream is capturing a graph.
    pub(crate) fn ensure_not_capturing(&self, what: &'static str) -> Result<()> {
        if self.is_capturing()? {
            return Err(crate::Error::Capturing { what });
        }
        Ok(())
    }

    /// Whether this stream is capturing a graph now.
    pub fn is_capturing(&self) -> Result<bool> {
        use rocmforge_sys::bindings::hip::hipStreamCaptureStatus;
        let device = self.device();
        let mut status = hipStreamCaptureStatus::hipStreamCaptureStatusNone;
        // SAFETY: valid stream and out-pointer.
        device.check("hipStreamIsCapturing", unsafe {
            (device.hip().hipStreamIsCapturing)(self.inner.raw, &mut status)
        })?;
        Ok(status != hipStreamCaptureStatus::hipStreamCaptureStatusNone)
    }
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        // hipStreamDestroy returns at once; work still queued completes first (HIP docs).
        // SAFETY: we own the handle and nobody else can use it any more.
        let status = unsafe { (self.device.hip().hipStreamDestroy)(self.raw) };
        self.device
            .deferred()
            .record_result(self.device.check("hipStreamDestroy", status));
    }
}
