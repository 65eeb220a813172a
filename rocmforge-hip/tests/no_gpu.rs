//! What must work on a machine with the HIP runtime installed but no GPU (CI).
//! Where no runtime is installed at all, these tests check the loader's error instead.

use rocmforge_hip::{compile, CompileOptions, Device, Error};

/// The scale kernel of the README, plus a wave-size reduction, to compile.
const SOURCE: &str = r#"
#ifndef WAVE_SIZE
#error "WAVE_SIZE must be defined"
#endif
extern "C" __global__ void scale(const float* x, float* y, float a, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i];
}
extern "C" __global__ void wave_sum(const float* x, float* out) {
    float v = x[threadIdx.x];
    for (int offset = WAVE_SIZE / 2; offset > 0; offset /= 2) v += __shfl_down(v, offset, WAVE_SIZE);
    if (threadIdx.x == 0) *out = v;
}
"#;

/// True where the loaded runtime is AMD's (the compile tests target AMD archs; on the
/// NVIDIA adapter they are covered by the GPU suite instead).
fn runtime_present() -> bool {
    match rocmforge_sys::Runtime::global() {
        Ok(rt) => rt.platform() == rocmforge_sys::Platform::Amd,
        Err(e) => {
            eprintln!("no HIP runtime here ({e}); checking the error path only");
            assert!(matches!(
                e,
                rocmforge_sys::LoadError::RuntimeNotFound { .. }
            ));
            false
        }
    }
}

fn no_gpu() -> bool {
    matches!(Device::count(), Err(Error::NoDevice { .. }))
}

#[test]
fn enumeration_without_gpu_is_a_clear_no_device_error() {
    if !runtime_present() || !no_gpu() {
        eprintln!("a GPU is present: the no-device path cannot be checked here");
        return;
    }
    let err = Device::count().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("hipErrorNoDevice"), "{msg}");
    assert!(matches!(Device::new(0), Err(Error::NoDevice { .. })));
    assert!(matches!(Device::all(), Err(Error::NoDevice { .. })));
}

fn compile_for(arch: &str, wave: u32) {
    if !runtime_present() {
        return;
    }
    let options = CompileOptions::for_arch(arch).define("WAVE_SIZE", wave);
    let code = compile(SOURCE, "no_gpu_test.hip", &options)
        .unwrap_or_else(|e| panic!("compiling for {arch} failed: {e}"));
    assert!(
        code.code.len() > 64,
        "{arch}: code object of {} bytes",
        code.code.len()
    );
    // AMD code objects are ELF files.
    if rocmforge_sys::Runtime::global().unwrap().platform() == rocmforge_sys::Platform::Amd {
        assert_eq!(
            &code.code[..4],
            b"\x7fELF",
            "{arch}: not an ELF code object"
        );
    }
}

#[test]
fn hiprtc_compiles_for_gfx906_without_gpu() {
    compile_for("gfx906", 64);
}

#[test]
fn hiprtc_compiles_for_gfx90a_without_gpu() {
    compile_for("gfx90a", 64);
}

#[test]
fn hiprtc_compiles_for_gfx1030_without_gpu() {
    compile_for("gfx1030", 32);
}

#[test]
fn compile_error_carries_the_full_log() {
    if !runtime_present() {
        return;
    }
    let options = CompileOptions::for_arch("gfx906");
    let err = compile(SOURCE, "missing_define.hip", &options).unwrap_err();
    let Error::Compile { log, program, .. } = &err else {
        panic!("expected a compile error, got {err}");
    };
    assert_eq!(program, "missing_define.hip");
    assert!(log.contains("WAVE_SIZE must be defined"), "log: {log}");
    assert!(err.to_string().contains("WAVE_SIZE must be defined"));
}
