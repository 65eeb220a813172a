//! Events: markers in a stream, for ordering streams and timing work.

use rocmforge_sys::bindings::hip::{hipError_t, hipEventDisableTiming, hipEvent_t};

use crate::{Device, Error, Result, Stream};

/// A marker recorded into a stream. Other streams can wait for it; the host can wait
/// for it alone; two timing events measure the time between them.
pub struct Event {
    raw: hipEvent_t,
    device: Device,
    timing: bool,
}

// SAFETY: HIP event handles may be recorded, queried and waited on from any thread.
unsafe impl Send for Event {}
// SAFETY: as above; all &self methods are thread-safe HIP calls.
unsafe impl Sync for Event {}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("device", &self.device.ordinal())
            .field("timing", &self.timing)
            .finish()
    }
}

impl Event {
    /// An event without timing (cheaper to record and wait on).
    pub fn new(device: &Device) -> Result<Event> {
        Self::create(device, false)
    }

    /// An event that records a timestamp, for [`Event::elapsed_ms`].
    pub fn with_timing(device: &Device) -> Result<Event> {
        Self::create(device, true)
    }

    fn create(device: &Device, timing: bool) -> Result<Event> {
        device.make_current()?;
        let flags = if timing { 0 } else { hipEventDisableTiming };
        let mut raw: hipEvent_t = std::ptr::null_mut();
        // SAFETY: valid out-pointer and flags.
        device.check("hipEventCreateWithFlags", unsafe {
            (device.hip().hipEventCreateWithFlags)(&mut raw, flags)
        })?;
        Ok(Event {
            raw,
            device: device.clone(),
            timing,
        })
    }

    /// Records the event at the current end of `stream`.
    pub fn record(&self, stream: &Stream) -> Result<()> {
        self.check_device(stream.device(), "Event::record")?;
        // SAFETY: both handles are alive and of the same device.
        self.device.check("hipEventRecord", unsafe {
            (self.device.hip().hipEventRecord)(self.raw, stream.as_raw())
        })
    }

    /// Blocks the calling thread until the work before the last record has finished.
    /// Waits for that one stream's work only.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: the event is alive.
        self.device.check("hipEventSynchronize", unsafe {
            (self.device.hip().hipEventSynchronize)(self.raw)
        })
    }

    /// Whether the work before the last record has finished (true for a never-recorded
    /// event).
    pub fn query(&self) -> Result<bool> {
        // SAFETY: the event is alive.
        let status = unsafe { (self.device.hip().hipEventQuery)(self.raw) };
        if status == hipError_t::hipErrorNotReady {
            return Ok(false);
        }
        self.device.check("hipEventQuery", status).map(|()| true)
    }

    /// Milliseconds from `start` to this event. Both must be timing events, recorded
    /// and complete.
    pub fn elapsed_ms(&self, start: &Event) -> Result<f32> {
        if !self.timing || !start.timing {
            return Err(Error::InvalidArgument(
                "elapsed_ms needs two events made with Event::with_timing".into(),
            ));
        }
        let mut ms = 0f32;
        // SAFETY: valid out-pointer and live events.
        self.device.check("hipEventElapsedTime", unsafe {
            (self.device.hip().hipEventElapsedTime)(&mut ms, start.raw, self.raw)
        })?;
        Ok(ms)
    }

    /// The raw handle, for FFI.
    pub fn as_raw(&self) -> hipEvent_t {
        self.raw
    }

    /// The device of this event.
    pub fn device(&self) -> &Device {
        &self.device
    }

    pub(crate) fn check_device(&self, device: &Device, what: &'static str) -> Result<()> {
        if self.device.raw_ordinal() != device.raw_ordinal() {
            return Err(Error::DeviceMismatch {
                what,
                expected: device.raw_ordinal(),
                actual: self.device.raw_ordinal(),
            });
        }
        Ok(())
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // hipEventDestroy on a pending event returns at once; resources are released
        // when the event completes.
        // SAFETY: we own the handle.
        let status = unsafe { (self.device.hip().hipEventDestroy)(self.raw) };
        self.device
            .deferred()
            .record_result(self.device.check("hipEventDestroy", status));
    }
}
