//! Graphs: a stream's work captured once and replayed with one launch.

use std::marker::PhantomData;

use rocmforge_sys::bindings::hip::{hipGraphExec_t, hipGraph_t, hipStreamCaptureMode};

use crate::{Device, Result, Stream};

/// A capture in progress on a stream. End it with [`StreamCapture::end`]; dropping it
/// ends the capture and discards the graph.
///
/// Not `Send`: capture uses `hipStreamCaptureModeThreadLocal`, which forbids
/// capture-unsafe calls on *this thread*, and the thread's previous capture mode is
/// restored when the capture ends — on the same thread.
pub struct StreamCapture<'s> {
    stream: &'s Stream,
    previous_mode: hipStreamCaptureMode,
    ended: bool,
    _not_send: PhantomData<*const ()>,
}

impl Stream {
    /// Starts capturing this stream's work into a graph instead of running it.
    /// Allocation and blocking copies on the stream fail while capturing.
    pub fn begin_capture(&self) -> Result<StreamCapture<'_>> {
        let device = self.device();
        let mut mode = hipStreamCaptureMode::hipStreamCaptureModeThreadLocal;
        // SAFETY: valid in/out pointer.
        device.check("hipThreadExchangeStreamCaptureMode", unsafe {
            (device.hip().hipThreadExchangeStreamCaptureMode)(&mut mode)
        })?;
        // Under the capture lock: a buffer dropped by another thread either frees before
        // the capture begins or waits for its end (`Stream::free_async`).
        let mut state = self.capture_state();
        // SAFETY: live stream; a valid mode.
        let status = unsafe {
            (device.hip().hipStreamBeginCapture)(
                self.as_raw(),
                hipStreamCaptureMode::hipStreamCaptureModeThreadLocal,
            )
        };
        if let Err(e) = device.check("hipStreamBeginCapture", status) {
            drop(state);
            restore_mode(device, mode);
            return Err(e);
        }
        state.capturing = true;
        drop(state);
        Ok(StreamCapture {
            stream: self,
            previous_mode: mode,
            ended: false,
            _not_send: PhantomData,
        })
    }
}

/// Ends the capture on `stream` (begun by [`Stream::begin_capture`]), then enqueues the
/// frees that waited for it. Returns the graph handle (null on failure) and the status.
fn end_capture(stream: &Stream) -> (hipGraph_t, rocmforge_sys::bindings::hip::hipError_t) {
    let device = stream.device();
    let mut state = stream.capture_state();
    let mut raw: hipGraph_t = std::ptr::null_mut();
    // SAFETY: the stream is capturing (begun by us); valid out-pointer.
    let status = unsafe { (device.hip().hipStreamEndCapture)(stream.as_raw(), &mut raw) };
    state.capturing = false;
    for ptr in std::mem::take(&mut state.pending_frees) {
        stream.enqueue_free(ptr as *mut core::ffi::c_void);
    }
    (raw, status)
}

fn restore_mode(device: &Device, mut mode: hipStreamCaptureMode) {
    // SAFETY: valid in/out pointer.
    let status = unsafe { (device.hip().hipThreadExchangeStreamCaptureMode)(&mut mode) };
    device
        .deferred()
        .record_result(device.check("hipThreadExchangeStreamCaptureMode", status));
}

impl StreamCapture<'_> {
    /// Ends the capture and returns the graph of the captured work.
    pub fn end(mut self) -> Result<Graph> {
        self.ended = true;
        let device = self.stream.device().clone();
        let (raw, status) = end_capture(self.stream);
        restore_mode(&device, self.previous_mode);
        device.check("hipStreamEndCapture", status)?;
        Ok(Graph { raw, device })
    }
}

impl Drop for StreamCapture<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let device = self.stream.device();
        let (raw, status) = end_capture(self.stream);
        restore_mode(device, self.previous_mode);
        device
            .deferred()
            .record_result(device.check("hipStreamEndCapture", status));
        if !raw.is_null() {
            drop(Graph {
                raw,
                device: device.clone(),
            });
        }
    }
}

/// A captured graph, to be instantiated.
pub struct Graph {
    raw: hipGraph_t,
    device: Device,
}

// SAFETY: graph handles may be used from any thread (not concurrently, which &mut/owned
// access below ensures: Graph has no &self method that touches HIP besides instantiate,
// which HIP documents as thread-safe for a graph not being modified).
unsafe impl Send for Graph {}

impl Graph {
    /// Makes an executable graph.
    pub fn instantiate(&self) -> Result<GraphExec> {
        let mut exec: hipGraphExec_t = std::ptr::null_mut();
        let mut log = [0 as core::ffi::c_char; 1024];
        // SAFETY: valid graph and out-pointers; the log buffer has its stated size.
        let status = unsafe {
            (self.device.hip().hipGraphInstantiate)(
                &mut exec,
                self.raw,
                std::ptr::null_mut(),
                log.as_mut_ptr(),
                log.len(),
            )
        };
        self.device.check("hipGraphInstantiate", status)?;
        Ok(GraphExec {
            raw: exec,
            device: self.device.clone(),
        })
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: we own the graph.
        let status = unsafe { (self.device.hip().hipGraphDestroy)(self.raw) };
        self.device
            .deferred()
            .record_result(self.device.check("hipGraphDestroy", status));
    }
}

/// An executable graph.
pub struct GraphExec {
    raw: hipGraphExec_t,
    device: Device,
}

// SAFETY: executable graphs may be launched from any thread.
unsafe impl Send for GraphExec {}

impl GraphExec {
    /// Replays the graph on `stream`.
    ///
    /// # Safety
    /// The graph replays kernels and copies with the device addresses captured; every
    /// buffer they touch must still be alive, and every pinned buffer still pinned and
    /// not accessed by the host, until the replay finishes in `stream` order.
    pub unsafe fn launch(&self, stream: &Stream) -> Result<()> {
        // SAFETY: live handles; the caller guarantees the captured memory is alive.
        self.device.check("hipGraphLaunch", unsafe {
            (self.device.hip().hipGraphLaunch)(self.raw, stream.as_raw())
        })
    }
}

impl Drop for GraphExec {
    fn drop(&mut self) {
        // SAFETY: we own the executable graph.
        let status = unsafe { (self.device.hip().hipGraphExecDestroy)(self.raw) };
        self.device
            .deferred()
            .record_result(self.device.check("hipGraphExecDestroy", status));
    }
}
