//! Run-time compilation of HIP C++ (hiprtc on AMD, NVRTC behind the NVIDIA adapter).

use std::ffi::{CStr, CString};

use rocmforge_sys::bindings::hip::{hiprtcProgram, hiprtcResult};
use rocmforge_sys::{HiprtcApi, Runtime};

use crate::error::runtime;
use crate::{Error, Result};

/// What to compile for and with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// The target, exactly as the device reports it: `gfx90a:sramecc+:xnack-`, `gfx1030`,
    /// `sm_90`. Passed as `--gpu-architecture=`.
    pub arch: String,
    /// `-D` macro definitions: `(name, Some(value))` or `(name, None)`.
    pub defines: Vec<(String, Option<String>)>,
    /// Further options, passed as they are (e.g. `-O3`, `-ffast-math`).
    pub extra: Vec<String>,
}

impl CompileOptions {
    /// Options for `arch` with `-O3`.
    pub fn for_arch(arch: impl Into<String>) -> Self {
        Self {
            arch: arch.into(),
            defines: Vec::new(),
            extra: vec!["-O3".to_string()],
        }
    }

    /// Adds `-Dname=value`.
    pub fn define(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.defines.push((name.into(), Some(value.to_string())));
        self
    }

    /// The option strings handed to the compiler, in order.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![format!("--gpu-architecture={}", self.arch)];
        args.extend(self.defines.iter().map(|(name, value)| match value {
            Some(v) => format!("-D{name}={v}"),
            None => format!("-D{name}"),
        }));
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// A compiled program: the code object to load with [`crate::Module::load`], and the
/// compiler's log (warnings).
#[derive(Debug, Clone)]
pub struct CodeObject {
    /// The code object bytes (HSA code object on AMD, cubin on NVIDIA).
    pub code: Vec<u8>,
    /// The compiler log (may be empty).
    pub log: String,
}

/// Compiles `source` (named `name` in messages) with `options`. No GPU is needed: this
/// works on a machine with only the runtime installed.
pub fn compile(source: &str, name: &str, options: &CompileOptions) -> Result<CodeObject> {
    let rt = runtime()?;
    compile_with(rt, source, name, options)
}

/// Like [`compile`], with an explicit runtime.
pub fn compile_with(
    rt: &Runtime,
    source: &str,
    name: &str,
    options: &CompileOptions,
) -> Result<CodeObject> {
    let api = rt.hiprtc()?;
    let c_source = CString::new(source).map_err(|_| Error::InteriorNul {
        what: "kernel source",
    })?;
    let c_name = CString::new(name).map_err(|_| Error::InteriorNul {
        what: "program name",
    })?;
    let args = options
        .to_args()
        .into_iter()
        .map(|a| {
            CString::new(a).map_err(|_| Error::InteriorNul {
                what: "compile option",
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut arg_ptrs: Vec<*const core::ffi::c_char> = args.iter().map(|a| a.as_ptr()).collect();

    let _serialized = rt.compile_lock();
    let program = Program::create(api, &c_source, &c_name)?;
    let num_options = i32::try_from(arg_ptrs.len())
        .map_err(|_| Error::InvalidArgument("too many compile options".into()))?;
    // SAFETY: the program is live; the option pointers are valid C strings for the call.
    let status =
        unsafe { (api.hiprtcCompileProgram)(program.raw, num_options, arg_ptrs.as_mut_ptr()) };
    let log = program.log();
    if status != hiprtcResult::HIPRTC_SUCCESS {
        return Err(Error::Compile {
            program: name.to_string(),
            arch: options.arch.clone(),
            status: status_string(api, status),
            log,
        });
    }
    let code = program.code().map_err(|status| Error::Compile {
        program: name.to_string(),
        arch: options.arch.clone(),
        status: status_string(api, status),
        log: log.clone(),
    })?;
    Ok(CodeObject { code, log })
}

/// The hiprtc version as (major, minor).
pub fn compiler_version() -> Result<(i32, i32)> {
    let api = runtime()?.hiprtc()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: valid out-pointers.
    let status = unsafe { (api.hiprtcVersion)(&mut major, &mut minor) };
    if status != hiprtcResult::HIPRTC_SUCCESS {
        return Err(Error::InvalidArgument(format!(
            "hiprtcVersion failed: {}",
            status_string(api, status)
        )));
    }
    Ok((major, minor))
}

fn status_string(api: &HiprtcApi, status: hiprtcResult) -> String {
    // SAFETY: hiprtcGetErrorString returns a static string for any value (or null).
    let ptr = unsafe { (api.hiprtcGetErrorString)(status) };
    if ptr.is_null() {
        return format!("hiprtc error {}", status.0);
    }
    // SAFETY: non-null static NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// A hiprtc program, destroyed on drop.
struct Program<'a> {
    api: &'a HiprtcApi,
    raw: hiprtcProgram,
}

impl<'a> Program<'a> {
    fn create(api: &'a HiprtcApi, source: &CStr, name: &CStr) -> Result<Self> {
        let mut raw: hiprtcProgram = std::ptr::null_mut();
        // SAFETY: valid out-pointer and C strings; no headers are passed.
        let status = unsafe {
            (api.hiprtcCreateProgram)(
                &mut raw,
                source.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if status != hiprtcResult::HIPRTC_SUCCESS {
            return Err(Error::Compile {
                program: name.to_string_lossy().into_owned(),
                arch: String::new(),
                status: status_string(api, status),
                log: String::new(),
            });
        }
        Ok(Self { api, raw })
    }

    fn log(&self) -> String {
        let mut size = 0usize;
        // SAFETY: live program, valid out-pointer.
        if unsafe { (self.api.hiprtcGetProgramLogSize)(self.raw, &mut size) }
            != hiprtcResult::HIPRTC_SUCCESS
            || size == 0
        {
            return String::new();
        }
        let mut buffer = vec![0u8; size];
        // SAFETY: the buffer holds `size` bytes, as hiprtc asked for.
        if unsafe { (self.api.hiprtcGetProgramLog)(self.raw, buffer.as_mut_ptr().cast()) }
            != hiprtcResult::HIPRTC_SUCCESS
        {
            return String::new();
        }
        let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
        String::from_utf8_lossy(&buffer[..end])
            .trim_end()
            .to_string()
    }

    fn code(&self) -> std::result::Result<Vec<u8>, hiprtcResult> {
        let mut size = 0usize;
        // SAFETY: live, compiled program; valid out-pointer.
        let status = unsafe { (self.api.hiprtcGetCodeSize)(self.raw, &mut size) };
        if status != hiprtcResult::HIPRTC_SUCCESS {
            return Err(status);
        }
        let mut code = vec![0u8; size];
        // SAFETY: the buffer holds `size` bytes.
        let status = unsafe { (self.api.hiprtcGetCode)(self.raw, code.as_mut_ptr().cast()) };
        if status != hiprtcResult::HIPRTC_SUCCESS {
            return Err(status);
        }
        Ok(code)
    }
}

impl Drop for Program<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the program. A failure to destroy leaks host memory only; there
        // is no device state or deferred-error sink to involve.
        let _ = unsafe { (self.api.hiprtcDestroyProgram)(&mut self.raw) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_put_arch_first_then_defines_then_extra() {
        let options = CompileOptions::for_arch("gfx90a:sramecc+:xnack-")
            .define("WAVE_SIZE", 64)
            .define("BLOCK", "256");
        assert_eq!(
            options.to_args(),
            vec![
                "--gpu-architecture=gfx90a:sramecc+:xnack-",
                "-DWAVE_SIZE=64",
                "-DBLOCK=256",
                "-O3"
            ]
        );
    }
}
