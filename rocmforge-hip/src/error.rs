//! The error type of the safe layer.

use std::ffi::CStr;

use rocmforge_sys::bindings::hip::hipError_t;
use rocmforge_sys::{LoadError, Runtime};

/// A HIP result code that was not `hipSuccess`, with its name and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HipErrorCode {
    /// The raw `hipError_t` value.
    pub code: u32,
    /// The runtime's name for it, e.g. `hipErrorOutOfMemory`.
    pub name: String,
    /// The runtime's message (on NVIDIA it also names the CUDA error).
    pub message: String,
}

impl HipErrorCode {
    /// `hipErrorOutOfMemory`.
    pub fn is_out_of_memory(&self) -> bool {
        self.code == hipError_t::hipErrorOutOfMemory.0
    }

    /// `hipErrorNoDevice`.
    pub fn is_no_device(&self) -> bool {
        self.code == hipError_t::hipErrorNoDevice.0
    }

    /// `hipErrorNotReady` (work still pending: not a failure for queries).
    pub fn is_not_ready(&self) -> bool {
        self.code == hipError_t::hipErrorNotReady.0
    }
}

/// Errors of rocmforge-hip. Messages say what failed and, where it helps, what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The HIP runtime (or the CUDA driver behind the NVIDIA adapter) could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The runtime loaded but sees no GPU.
    #[error(
        "no HIP device found ({call} returned hipErrorNoDevice): check that a supported GPU is \
         installed and visible to this process (driver loaded, /dev/kfd and /dev/dri readable, \
         HIP_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES not hiding it)"
    )]
    NoDevice {
        /// The call that reported it.
        call: &'static str,
    },
    /// A HIP call failed.
    #[error("{call} failed: {} ({}): {}", .error.name, .error.code, .error.message)]
    Hip {
        /// The HIP function.
        call: &'static str,
        /// The result code.
        error: HipErrorCode,
    },
    /// A device ordinal past the number of devices.
    #[error("device {ordinal} does not exist: {count} device(s) present")]
    InvalidDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// How many there are.
        count: usize,
    },
    /// `len` elements of `elem_size` bytes overflow `usize`.
    #[error("{what}: {len} elements of {elem_size} bytes overflow the address space")]
    SizeOverflow {
        /// What was being sized.
        what: &'static str,
        /// Elements.
        len: usize,
        /// Bytes per element.
        elem_size: usize,
    },
    /// Two sides of a copy (or a view range) disagree in length.
    #[error("{what}: length mismatch, {expected} expected, {actual} given")]
    LengthMismatch {
        /// What was being done.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A range outside a buffer.
    #[error("range {start}..{end} is out of bounds for a buffer of {len} elements")]
    OutOfBounds {
        /// Range start.
        start: usize,
        /// Range end.
        end: usize,
        /// Buffer length.
        len: usize,
    },
    /// Device memory was used on a stream other than its own without an event wait.
    #[error(
        "{what}: the buffer belongs to another stream; move it with DeviceBuffer::move_to_stream \
         (which orders the streams with an event) before using it here"
    )]
    StreamMismatch {
        /// What was being done.
        what: &'static str,
    },
    /// Handles of different devices were mixed.
    #[error("{what}: objects of device {expected} and device {actual} were mixed")]
    DeviceMismatch {
        /// What was being done.
        what: &'static str,
        /// The device of the operation.
        expected: i32,
        /// The device of the argument.
        actual: i32,
    },
    /// An argument that does not fit the operation.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A launch configuration the device cannot run.
    #[error("invalid launch configuration: {0}")]
    InvalidLaunch(String),
    /// Run-time compilation failed. The log is the compiler's full output.
    #[error("compiling {program} for {arch} failed ({status}):\n{log}")]
    Compile {
        /// The program name.
        program: String,
        /// The target architecture.
        arch: String,
        /// hiprtc's status string.
        status: String,
        /// The compiler log.
        log: String,
    },
    /// A string handed to HIP contained a NUL byte.
    #[error("{what} contains a NUL byte")]
    InteriorNul {
        /// Which string.
        what: &'static str,
    },
    /// The operation is not allowed while the stream is being captured into a graph.
    #[error("{what} is not allowed while the stream is capturing a graph")]
    Capturing {
        /// What was attempted.
        what: &'static str,
    },
    /// Errors that happened in `Drop` (where they cannot be returned), surfaced later.
    #[error("{} error(s) happened while releasing HIP resources; the first: {}", .errors.len(), .errors.first().map(|e| e.to_string()).unwrap_or_default())]
    Deferred {
        /// The recorded errors, oldest first.
        errors: Vec<Error>,
    },
}

/// Result alias of rocmforge-hip.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The loaded runtime of this process.
pub(crate) fn runtime() -> Result<&'static Runtime> {
    Ok(Runtime::global()?)
}

/// Turns a HIP status into a `Result`, with the runtime's name and message for errors.
pub(crate) fn check(runtime: &Runtime, call: &'static str, status: hipError_t) -> Result<()> {
    if status == hipError_t::hipSuccess {
        return Ok(());
    }
    if status == hipError_t::hipErrorNoDevice {
        return Err(Error::NoDevice { call });
    }
    Err(Error::Hip {
        call,
        error: describe(runtime, status),
    })
}

/// Names a HIP status through the runtime.
pub(crate) fn describe(runtime: &Runtime, status: hipError_t) -> HipErrorCode {
    let hip = runtime.hip();
    // SAFETY: hipGetErrorName/String accept any value and return a static C string
    // (or null, handled below).
    let (name, message) = unsafe {
        (
            c_str_or((hip.hipGetErrorName)(status), "hipErrorUnknown"),
            c_str_or((hip.hipGetErrorString)(status), "unknown error"),
        )
    };
    HipErrorCode {
        code: status.0,
        name,
        message,
    }
}

/// Reads a static C string returned by the runtime; `fallback` when null.
///
/// # Safety
/// `ptr`, when not null, must point to a NUL-terminated string that lives long enough.
unsafe fn c_str_or(ptr: *const core::ffi::c_char, fallback: &str) -> String {
    if ptr.is_null() {
        return fallback.to_string();
    }
    // SAFETY: the caller guarantees a valid NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// `len * size_of::<T>()`, checked.
pub(crate) fn byte_len<T>(what: &'static str, len: usize) -> Result<usize> {
    let elem_size = std::mem::size_of::<T>();
    len.checked_mul(elem_size).ok_or(Error::SizeOverflow {
        what,
        len,
        elem_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hip_error_message_names_call_and_code() {
        let e = Error::Hip {
            call: "hipMallocAsync",
            error: HipErrorCode {
                code: 2,
                name: "hipErrorOutOfMemory".into(),
                message: "out of memory".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "hipMallocAsync failed: hipErrorOutOfMemory (2): out of memory"
        );
    }

    #[test]
    fn error_code_predicates() {
        let code = |c: hipError_t| HipErrorCode {
            code: c.0,
            name: String::new(),
            message: String::new(),
        };
        assert!(code(hipError_t::hipErrorOutOfMemory).is_out_of_memory());
        assert!(code(hipError_t::hipErrorNoDevice).is_no_device());
        assert!(code(hipError_t::hipErrorNotReady).is_not_ready());
        assert!(!code(hipError_t::hipErrorInvalidValue).is_out_of_memory());
    }

    #[test]
    fn no_device_message_is_actionable() {
        let msg = Error::NoDevice {
            call: "hipGetDeviceCount",
        }
        .to_string();
        assert!(msg.contains("hipErrorNoDevice"));
        assert!(msg.contains("no HIP device"));
    }

    #[test]
    fn deferred_error_reports_count_and_first() {
        let e = Error::Deferred {
            errors: vec![
                Error::InteriorNul { what: "a" },
                Error::InteriorNul { what: "b" },
            ],
        };
        let msg = e.to_string();
        assert!(msg.starts_with("2 error(s)"));
        assert!(msg.contains("a contains a NUL byte"));
    }

    proptest! {
        #[test]
        fn byte_len_matches_checked_mul(len in any::<usize>()) {
            let expected = len.checked_mul(4);
            match byte_len::<f32>("t", len) {
                Ok(bytes) => prop_assert_eq!(Some(bytes), expected),
                Err(Error::SizeOverflow { len: l, elem_size, .. }) => {
                    prop_assert!(expected.is_none());
                    prop_assert_eq!(l, len);
                    prop_assert_eq!(elem_size, 4);
                }
                Err(other) => prop_assert!(false, "unexpected {}", other),
            }
        }

        #[test]
        fn zero_sized_elements_never_overflow(len in any::<usize>()) {
            prop_assert_eq!(byte_len::<()>("t", len).unwrap(), 0);
        }
    }
}
