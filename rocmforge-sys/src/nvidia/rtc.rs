//! hiprtc on NVRTC: `hiprtcVersion`, `hiprtcGetErrorString`, `hiprtcCreateProgram`,
//! `hiprtcDestroyProgram`, `hiprtcCompileProgram` (options translated by
//! [`super::rtc_options`]), `hiprtcGetProgramLogSize`, `hiprtcGetProgramLog`,
//! `hiprtcGetCodeSize` and `hiprtcGetCode` (the CUBIN for the device's exact `sm_XY`,
//! which `hipModuleLoadData` loads).
//!
//! A `hiprtcProgram` is the address of an adapter-owned [`Program`]: the NVRTC program
//! plus the adapter's own notes, which the program log shows before NVRTC's (why an
//! option list was refused; the NVRTC options used when a compilation failed).

use core::ffi::{c_char, c_int};
use std::ffi::{CStr, CString};
use std::ptr;
use std::sync::Mutex;

use super::cuda_types::{nvrtcProgram, nvrtcResult};
use super::device::current_device_arch;
use super::nvrtc::{nvrtc, NvrtcApi};
use super::rtc_options::{names_arch, translate_options};
use crate::bindings::hip::{hiprtcProgram, hiprtcResult};

/// `nvrtcResult` → `hiprtcResult`: the first twelve codes have the same values and
/// meanings (as HIP's own `nvrtcResultTohiprtcResult` maps them); newer NVRTC codes
/// (PCH, cancellation, time-trace) become `HIPRTC_ERROR_INTERNAL_ERROR`.
pub fn map_nvrtc_result(result: nvrtcResult) -> hiprtcResult {
    if result.0 <= hiprtcResult::HIPRTC_ERROR_INTERNAL_ERROR.0 {
        hiprtcResult(result.0)
    } else {
        hiprtcResult::HIPRTC_ERROR_INTERNAL_ERROR
    }
}

/// The names `hiprtcGetErrorString` returns (AMD hiprtc's wording), NUL-terminated.
const HIPRTC_ERROR_STRINGS: [&str; 12] = [
    "HIPRTC_SUCCESS\0",
    "HIPRTC_ERROR_OUT_OF_MEMORY\0",
    "HIPRTC_ERROR_PROGRAM_CREATION_FAILURE\0",
    "HIPRTC_ERROR_INVALID_INPUT\0",
    "HIPRTC_ERROR_INVALID_PROGRAM\0",
    "HIPRTC_ERROR_INVALID_OPTION\0",
    "HIPRTC_ERROR_COMPILATION\0",
    "HIPRTC_ERROR_BUILTIN_OPERATION_FAILURE\0",
    "HIPRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION\0",
    "HIPRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION\0",
    "HIPRTC_ERROR_NAME_EXPRESSION_NOT_VALID\0",
    "HIPRTC_ERROR_INTERNAL_ERROR\0",
];

/// An adapter program: the NVRTC program and the adapter's notes for the log.
struct Program {
    nvrtc: nvrtcProgram,
    notes: Mutex<String>,
}

impl Program {
    fn notes(&self) -> String {
        self.notes.lock().map(|n| n.clone()).unwrap_or_default()
    }

    fn set_notes(&self, text: String) {
        if let Ok(mut notes) = self.notes.lock() {
            *notes = text;
        }
    }
}

/// The program behind a handle.
///
/// # Safety
/// `prog` must be null or a handle made by [`hiprtcCreateProgram`] and not yet destroyed.
unsafe fn program<'a>(prog: hiprtcProgram) -> Option<&'a Program> {
    // SAFETY: per the contract, a non-null handle is the address of a live `Program`.
    unsafe { prog.cast::<Program>().as_ref() }
}

fn api() -> Result<&'static NvrtcApi, hiprtcResult> {
    nvrtc().ok_or(hiprtcResult::HIPRTC_ERROR_INTERNAL_ERROR)
}

fn rtc_status(result: Result<(), hiprtcResult>) -> hiprtcResult {
    match result {
        Ok(()) => hiprtcResult::HIPRTC_SUCCESS,
        Err(e) => e,
    }
}

fn check(result: nvrtcResult) -> Result<(), hiprtcResult> {
    if result == nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(map_nvrtc_result(result))
    }
}

/// `hiprtcVersion` → `nvrtcVersion`: the NVRTC (CUDA toolkit) version, e.g. 13.0.
/// <https://docs.nvidia.com/cuda/nvrtc/index.html>
pub(crate) unsafe extern "C" fn hiprtcVersion(
    major: *mut c_int,
    minor: *mut c_int,
) -> hiprtcResult {
    if major.is_null() || minor.is_null() {
        return hiprtcResult::HIPRTC_ERROR_INVALID_INPUT;
    }
    let result = api().and_then(|n| {
        // SAFETY: both pointers are non-null and point to ints (hiprtc contract).
        check(unsafe { (n.nvrtcVersion)(major, minor) })
    });
    rtc_status(result)
}

/// `hiprtcGetErrorString`: the static name of a hiprtc result (`"HIPRTC_ERROR_COMPILATION"`).
/// <https://docs.nvidia.com/cuda/nvrtc/index.html>
pub(crate) unsafe extern "C" fn hiprtcGetErrorString(result: hiprtcResult) -> *const c_char {
    usize::try_from(result.0)
        .ok()
        .and_then(|i| HIPRTC_ERROR_STRINGS.get(i))
        .map_or(c"Invalid HIPRTC error code".as_ptr(), |s| s.as_ptr().cast())
}

/// `hiprtcCreateProgram` → `nvrtcCreateProgram` (source, name, headers passed through).
/// <https://docs.nvidia.com/cuda/nvrtc/index.html>
pub(crate) unsafe extern "C" fn hiprtcCreateProgram(
    prog: *mut hiprtcProgram,
    src: *const c_char,
    name: *const c_char,
    numHeaders: c_int,
    headers: *mut *const c_char,
    includeNames: *mut *const c_char,
) -> hiprtcResult {
    if prog.is_null() || src.is_null() || numHeaders < 0 {
        return hiprtcResult::HIPRTC_ERROR_INVALID_INPUT;
    }
    let result = api().and_then(|n| {
        let mut nv: nvrtcProgram = ptr::null_mut();
        // SAFETY: `nv` is a valid out-pointer; `src` (and `name`, if non-null) are
        // NUL-terminated strings and `headers`/`includeNames` hold `numHeaders` of them
        // (hiprtc contract, the same as NVRTC's); NVRTC copies them.
        check(unsafe {
            (n.nvrtcCreateProgram)(
                &mut nv,
                src,
                name,
                numHeaders,
                headers.cast_const(),
                includeNames.cast_const(),
            )
        })?;
        let program = Box::new(Program {
            nvrtc: nv,
            notes: Mutex::new(String::new()),
        });
        // SAFETY: `prog` is non-null and points to a hiprtcProgram (hiprtc contract).
        unsafe { prog.write(Box::into_raw(program).cast()) };
        Ok(())
    });
    rtc_status(result)
}

/// `hiprtcDestroyProgram` → `nvrtcDestroyProgram`; sets `*prog` to null.
/// <https://docs.nvidia.com/cuda/nvrtc/index.html>
pub(crate) unsafe extern "C" fn hiprtcDestroyProgram(prog: *mut hiprtcProgram) -> hiprtcResult {
    if prog.is_null() {
        return hiprtcResult::HIPRTC_ERROR_INVALID_INPUT;
    }
    // SAFETY: `prog` is non-null and points to a hiprtcProgram (hiprtc contract).
    let handle = unsafe { prog.read() };
    if handle.is_null() {
        return hiprtcResult::HIPRTC_ERROR_INVALID_PROGRAM;
    }
    let result = api().and_then(|n| {
        // SAFETY: the handle was made by hiprtcCreateProgram from a Box<Program> and is
        // destroyed once (hiprtc contract); ownership comes back here.
        let mut program = unsafe { Box::from_raw(handle.cast::<Program>()) };
        // SAFETY: `program.nvrtc` is a live NVRTC program, destroyed once.
        let result = unsafe { (n.nvrtcDestroyProgram)(&mut program.nvrtc) };
        // SAFETY: as above; the handle no longer refers to anything.
        unsafe { prog.write(ptr::null_mut()) };
        check(result)
    });
    rtc_status(result)
}

/// `hiprtcCompileProgram` → `nvrtcCompileProgram` with the options translated by
/// [`translate_options`] (always a real `--gpu-architecture=sm_XY`; the current
/// device's when the options name none).
/// <https://docs.nvidia.com/cuda/nvrtc/index.html>
pub(crate) unsafe extern "C" fn hiprtcCompileProgram(
    prog: hiprtcProgram,
    numOptions: c_int,
    options: *mut *const c_char,
) -> hiprtcResult {
    // SAFETY: `prog` is null or a live handle (hiprtc contract).
    let Some(program) = (unsafe { program(prog) }) else {
        return hiprtcResult::HIPRTC_ERROR_INVALID_PROGRAM;
    };
    let count = usize::try_from(numOptions).unwrap_or(0);
    if count > 0 && options.is_null() {
        return hiprtcResult::HIPRTC_ERROR_INVALID_INPUT;
    }
    let mut hip_options = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: `options` holds `numOptions` pointers (hiprtc contract).
        let option = unsafe { options.add(i).read() };
        if option.is_null() {
            return hiprtcResult::HIPRTC_ERROR_INVALID_INPUT;
        }
        // SAFETY: each option is a NUL-terminated string (hiprtc contract).
        hip_options.push(
            unsafe { CStr::from_ptr(option) }
                .to_string_lossy()
                .into_owned(),
        );
    }
    let default_arch = if names_arch(&hip_options) {
        None
    } else {
        match current_device_arch() {
            Ok(arch) => Some(arch),
            Err(e) => {
                program.set_notes(format!(
                    "rocmforge NVIDIA adapter: no architecture option and the current device's \
                     could not be read ({})\n",
                    super::error_map::hip_error_name(e).unwrap_or("hipErrorUnknown")
                ));
                return hiprtcResult::HIPRTC_ERROR_INVALID_OPTION;
            }
        }
    };
    let translated = match translate_options(&hip_options, default_arch.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            program.set_notes(format!("rocmforge NVIDIA adapter: {e}\n"));
            return hiprtcResult::HIPRTC_ERROR_INVALID_OPTION;
        }
    };
    program.set_notes(String::new());
    let c_options: Vec<CString> = translated
        .options
        .iter()
        .filter_map(|o| CString::new(o.as_str()).ok())
        .collect();
    let pointers: Vec<*const c_char> = c_options.iter().map(|o| o.as_ptr()).collect();
    let Ok(n_options) = c_int::try_from(pointers.len()) else {
        return hiprtcResult::HIPRTC_ERROR_INVALID_INPUT;
    };
    let result = api().and_then(|n| {
        // SAFETY: `program.nvrtc` is a live program; `pointers` holds `n_options`
        // NUL-terminated strings that outlive the call.
        let result =
            unsafe { (n.nvrtcCompileProgram)(program.nvrtc, n_options, pointers.as_ptr()) };
        if result != nvrtcResult::NVRTC_SUCCESS {
            program.set_notes(format!(
                "rocmforge NVIDIA adapter: NVRTC options: {}\n",
                translated.options.join(" ")
            ));
        }
        check(result)
    });
    rtc_status(result)
}

/// `hiprtcGetProgramLogSize`: the adapter's notes plus `nvrtcGetProgramLogSize`
/// (which counts the terminating NUL).
/// <https://docs.nvidia.com/cuda/nvrtc/index.html>
pub(crate) unsafe extern "C" fn hiprtcGetProgramLogSize(
    prog: hiprtcProgram,
    logSizeRet: *mut usize,
) -> hiprtcResult {
    // SAFETY: `prog` is null or a live handle (hiprtc contract).
    let Some(program) = (unsafe { program(prog) }) else {
        return hiprtcResult::HIPRTC_ERROR_INVALID_PROGRAM;
    };
    if logSizeRet.is_null() {
        return hiprtcResult::HIPRTC_ERROR_INVALID_INPUT;
    }
    let result = api().and_then(|n| {
        let mut size = 0usize;
        // SAFETY: `size` is a valid out-pointer; the program is live.
        check(unsafe { (n.nvrtcGetProgramLogSize)(program.nvrtc, &mut size) })?;
        let total = program.notes().len() + size.max(1);
        // SAFETY: `logSizeRet` is non-null and points to a size_t (hiprtc contract).
        unsafe { logSizeRet.write(total) };
        Ok(())
    });
    rtc_status(result)
}

/// `hiprtcGetProgramLog`: the adapter's notes, then `nvrtcGetProgramLog`. `log` must hold
/// the size `hiprtcGetProgramLogSize` returned.
/// <https://docs.nvidia.com/cuda/nvrtc/index.html>
pub(crate) unsafe extern "C" fn hiprtcGetProgramLog(
    prog: hiprtcProgram,
    log: *mut c_char,
) -> hiprtcResult {
    // SAFETY: `prog` is null or a live handle (hiprtc contract).
    let Some(program) = (unsafe { program(prog) }) else {
        return hiprtcResult::HIPRTC_ERROR_INVALID_PROGRAM;
    };
    if log.is_null() {
        return hiprtcResult::HIPRTC_ERROR_INVALID_INPUT;
    }
    let notes = program.notes();
    let result = api().and_then(|n| {
        // SAFETY: `log` holds the size hiprtcGetProgramLogSize returned: the notes' bytes,
        // then room for NVRTC's log, which NVRTC NUL-terminates.
        unsafe {
            ptr::copy_nonoverlapping(notes.as_ptr().cast::<c_char>(), log, notes.len());
            check((n.nvrtcGetProgramLog)(program.nvrtc, log.add(notes.len())))
        }
    });
    rtc_status(result)
}

/// `hiprtcGetCodeSize` → `nvrtcGetCUBINSize`.
/// <https://docs.nvidia.com/cuda/nvrtc/index.html>
pub(crate) unsafe extern "C" fn hiprtcGetCodeSize(
    prog: hiprtcProgram,
    codeSizeRet: *mut usize,
) -> hiprtcResult {
    // SAFETY: `prog` is null or a live handle (hiprtc contract).
    let Some(program) = (unsafe { program(prog) }) else {
        return hiprtcResult::HIPRTC_ERROR_INVALID_PROGRAM;
    };
    if codeSizeRet.is_null() {
        return hiprtcResult::HIPRTC_ERROR_INVALID_INPUT;
    }
    let result = api().and_then(|n| {
        // SAFETY: `codeSizeRet` is non-null and points to a size_t; the program is live.
        check(unsafe { (n.nvrtcGetCUBINSize)(program.nvrtc, codeSizeRet) })
    });
    rtc_status(result)
}

/// `hiprtcGetCode` → `nvrtcGetCUBIN`: the CUBIN, for `hipModuleLoadData`.
/// <https://docs.nvidia.com/cuda/nvrtc/index.html>
pub(crate) unsafe extern "C" fn hiprtcGetCode(
    prog: hiprtcProgram,
    code: *mut c_char,
) -> hiprtcResult {
    // SAFETY: `prog` is null or a live handle (hiprtc contract).
    let Some(program) = (unsafe { program(prog) }) else {
        return hiprtcResult::HIPRTC_ERROR_INVALID_PROGRAM;
    };
    if code.is_null() {
        return hiprtcResult::HIPRTC_ERROR_INVALID_INPUT;
    }
    let result = api().and_then(|n| {
        // SAFETY: `code` holds the size hiprtcGetCodeSize returned (hiprtc contract).
        check(unsafe { (n.nvrtcGetCUBIN)(program.nvrtc, code) })
    });
    rtc_status(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_string(result: hiprtcResult) -> String {
        // SAFETY: hiprtcGetErrorString takes any value and returns a static
        // NUL-terminated string.
        unsafe { CStr::from_ptr(hiprtcGetErrorString(result)) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn nvrtc_results_map_to_hiprtc() {
        for v in 0..=11 {
            assert_eq!(map_nvrtc_result(nvrtcResult(v)), hiprtcResult(v));
        }
        for v in [12, 15, 17, 18, 1000] {
            assert_eq!(
                map_nvrtc_result(nvrtcResult(v)),
                hiprtcResult::HIPRTC_ERROR_INTERNAL_ERROR
            );
        }
        assert_eq!(
            map_nvrtc_result(nvrtcResult::NVRTC_ERROR_COMPILATION),
            hiprtcResult::HIPRTC_ERROR_COMPILATION
        );
        assert_eq!(
            map_nvrtc_result(nvrtcResult::NVRTC_ERROR_INVALID_OPTION),
            hiprtcResult::HIPRTC_ERROR_INVALID_OPTION
        );
    }

    #[test]
    fn error_strings() {
        assert_eq!(error_string(hiprtcResult::HIPRTC_SUCCESS), "HIPRTC_SUCCESS");
        assert_eq!(
            error_string(hiprtcResult::HIPRTC_ERROR_COMPILATION),
            "HIPRTC_ERROR_COMPILATION"
        );
        assert_eq!(error_string(hiprtcResult(99)), "Invalid HIPRTC error code");
    }

    #[test]
    fn null_programs_are_refused_without_nvrtc() {
        let mut size = 0usize;
        // SAFETY: null handles are checked before anything is dereferenced.
        unsafe {
            assert_eq!(
                hiprtcGetCodeSize(ptr::null_mut(), &mut size),
                hiprtcResult::HIPRTC_ERROR_INVALID_PROGRAM
            );
            assert_eq!(
                hiprtcCompileProgram(ptr::null_mut(), 0, ptr::null_mut()),
                hiprtcResult::HIPRTC_ERROR_INVALID_PROGRAM
            );
            let mut handle: hiprtcProgram = ptr::null_mut();
            assert_eq!(
                hiprtcDestroyProgram(&mut handle),
                hiprtcResult::HIPRTC_ERROR_INVALID_PROGRAM
            );
        }
    }
}
