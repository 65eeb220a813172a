//! The NVIDIA adapter on a real GPU, through the `HipApi`/`HiprtcApi` tables exactly as
//! rocmforge-hip calls them. Run on the GPU host with `--include-ignored`.
//!
//! The tests share one process-wide driver and one set of synchronization counters, so
//! they take a lock and run one at a time.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::ptr;
use std::sync::{Mutex, MutexGuard, OnceLock};

use rocmforge_sys::bindings::hip::*;
use rocmforge_sys::nvidia::{self, SyncCounts};
use rocmforge_sys::{HipApi, HiprtcApi, LoadOptions, Platform, PlatformChoice, Runtime};

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::load(&LoadOptions {
            platform: PlatformChoice::Only(Platform::Nvidia),
            ..Default::default()
        })
        .expect("the NVIDIA adapter loads on a GPU host")
    })
}

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn hip() -> &'static HipApi {
    runtime().hip()
}

fn rtc() -> &'static HiprtcApi {
    runtime().hiprtc().expect("NVRTC loads on the GPU host")
}

fn error_string(status: hipError_t) -> String {
    // SAFETY: hipGetErrorString returns a static NUL-terminated string.
    unsafe { CStr::from_ptr((hip().hipGetErrorString)(status)) }
        .to_string_lossy()
        .into_owned()
}

fn error_name(status: hipError_t) -> String {
    // SAFETY: hipGetErrorName returns a static NUL-terminated string.
    unsafe { CStr::from_ptr((hip().hipGetErrorName)(status)) }
        .to_string_lossy()
        .into_owned()
}

macro_rules! ok {
    ($call:expr) => {{
        // SAFETY (test): each call passes valid pointers and live handles.
        let status = unsafe { $call };
        assert_eq!(
            status,
            hipError_t::hipSuccess,
            "{}: {}",
            stringify!($call),
            error_string(status)
        );
    }};
}

macro_rules! rtc_ok {
    ($call:expr) => {{
        // SAFETY (test): each call passes valid pointers and live handles.
        let status = unsafe { $call };
        assert_eq!(
            status,
            hiprtcResult::HIPRTC_SUCCESS,
            "{}: {:?}",
            stringify!($call),
            status
        );
    }};
}

fn new_stream() -> hipStream_t {
    let mut stream: hipStream_t = ptr::null_mut();
    ok!((hip().hipStreamCreateWithFlags)(
        &mut stream,
        hipStreamNonBlocking
    ));
    assert!(!stream.is_null());
    stream
}

fn device_attribute(attr: hipDeviceAttribute_t) -> c_int {
    let mut value = -1;
    ok!((hip().hipDeviceGetAttribute)(&mut value, attr, 0));
    value
}

fn arch() -> String {
    runtime().device_properties(0).unwrap().arch_name
}

const KERNELS: &str = r#"
extern "C" __global__ void axpy(float* y, const float* x, float a, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}
"#;

/// Compiles `source` with `options`; returns the status and the log.
fn compile(source: &str, options: &[String]) -> (hiprtcResult, String, Vec<u8>) {
    let api = rtc();
    let src = CString::new(source).unwrap();
    let name = CString::new("nvidia_adapter_test.hip").unwrap();
    let mut program: hiprtcProgram = ptr::null_mut();
    rtc_ok!((api.hiprtcCreateProgram)(
        &mut program,
        src.as_ptr(),
        name.as_ptr(),
        0,
        ptr::null_mut(),
        ptr::null_mut()
    ));
    let c_options: Vec<CString> = options
        .iter()
        .map(|o| CString::new(o.as_str()).unwrap())
        .collect();
    let mut pointers: Vec<*const c_char> = c_options.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: a live program and `pointers.len()` option strings.
    let status = unsafe {
        (api.hiprtcCompileProgram)(program, pointers.len() as c_int, pointers.as_mut_ptr())
    };
    let mut log_size = 0usize;
    rtc_ok!((api.hiprtcGetProgramLogSize)(program, &mut log_size));
    let mut log = vec![0u8; log_size.max(1)];
    rtc_ok!((api.hiprtcGetProgramLog)(program, log.as_mut_ptr().cast()));
    let log = String::from_utf8_lossy(&log)
        .trim_end_matches('\0')
        .to_string();
    let mut code = Vec::new();
    if status == hiprtcResult::HIPRTC_SUCCESS {
        let mut size = 0usize;
        rtc_ok!((api.hiprtcGetCodeSize)(program, &mut size));
        code = vec![0u8; size];
        rtc_ok!((api.hiprtcGetCode)(program, code.as_mut_ptr().cast()));
    }
    rtc_ok!((api.hiprtcDestroyProgram)(&mut program));
    assert!(program.is_null());
    (status, log, code)
}

struct Kernel {
    module: hipModule_t,
    function: hipFunction_t,
}

fn load_axpy() -> Kernel {
    let (status, log, code) = compile(
        KERNELS,
        &[
            format!("--offload-arch={}", arch()),
            "-O3".into(),
            "-std=c++17".into(),
        ],
    );
    assert_eq!(status, hiprtcResult::HIPRTC_SUCCESS, "log: {log}");
    assert!(code.starts_with(b"\x7fELF"), "a CUBIN is an ELF image");
    let mut module: hipModule_t = ptr::null_mut();
    ok!((hip().hipModuleLoadData)(&mut module, code.as_ptr().cast()));
    let mut function: hipFunction_t = ptr::null_mut();
    let name = CString::new("axpy").unwrap();
    ok!((hip().hipModuleGetFunction)(
        &mut function,
        module,
        name.as_ptr()
    ));
    Kernel { module, function }
}

/// Launches `axpy(y, x, a, n)` on `stream` with `kernelParams`.
fn launch_axpy(
    kernel: &Kernel,
    stream: hipStream_t,
    y: *mut c_void,
    x: *mut c_void,
    a: f32,
    n: u32,
) -> hipError_t {
    let mut y = y;
    let mut x = x;
    let mut a = a;
    let mut n = n;
    let mut params: [*mut c_void; 4] = [
        (&mut y as *mut *mut c_void).cast(),
        (&mut x as *mut *mut c_void).cast(),
        (&mut a as *mut f32).cast(),
        (&mut n as *mut u32).cast(),
    ];
    let blocks = n.div_ceil(256);
    // SAFETY: `params` points to one pointer per kernel parameter, of the kernel's types.
    unsafe {
        (hip().hipModuleLaunchKernel)(
            kernel.function,
            blocks,
            1,
            1,
            256,
            1,
            1,
            0,
            stream,
            params.as_mut_ptr(),
            ptr::null_mut(),
        )
    }
}

fn alloc(stream: hipStream_t, bytes: usize) -> *mut c_void {
    let mut p: *mut c_void = ptr::null_mut();
    ok!((hip().hipMallocAsync)(&mut p, bytes, stream));
    assert!(!p.is_null());
    p
}

fn upload(stream: hipStream_t, dst: *mut c_void, src: &[f32]) {
    ok!((hip().hipMemcpyAsync)(
        dst,
        src.as_ptr().cast(),
        std::mem::size_of_val(src),
        hipMemcpyKind::hipMemcpyHostToDevice,
        stream
    ));
}

fn download(stream: hipStream_t, src: *mut c_void, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    ok!((hip().hipMemcpyAsync)(
        out.as_mut_ptr().cast(),
        src,
        n * 4,
        hipMemcpyKind::hipMemcpyDeviceToHost,
        stream
    ));
    ok!((hip().hipStreamSynchronize)(stream));
    out
}

fn counts() -> SyncCounts {
    nvidia::sync_counts()
}

#[test]
#[ignore = "needs a GPU"]
fn device_count_properties_and_attributes() {
    let _serial = serial();
    assert_eq!(runtime().platform(), Platform::Nvidia);
    assert!(
        runtime().version() >= 12000,
        "driver version {}",
        runtime().version()
    );
    ok!((hip().hipInit)(0));
    let mut count = 0;
    ok!((hip().hipGetDeviceCount)(&mut count));
    assert!(count >= 1);

    let p = runtime().device_properties(0).unwrap();
    let major = device_attribute(hipDeviceAttribute_t::hipDeviceAttributeComputeCapabilityMajor);
    let minor = device_attribute(hipDeviceAttribute_t::hipDeviceAttributeComputeCapabilityMinor);
    assert_eq!(p.warp_size, 32);
    assert_eq!(p.arch_name, format!("sm_{major}{minor}"));
    assert!(p.arch_name.starts_with("sm_"));
    assert!(!p.name.is_empty());
    assert!(p.total_global_mem > 1 << 30);
    assert!(p.multi_processor_count > 0);
    assert_eq!(p.max_threads_per_block, 1024);
    assert_eq!(p.max_threads_dim[0], 1024);
    assert!(p.max_grid_size[0] >= 1 << 30);
    assert!(p.shared_mem_per_block >= 48 * 1024);
    assert!(p.l2_cache_size > 0 && p.memory_bus_width > 0);
    eprintln!("{p:?}");

    assert_eq!(
        device_attribute(hipDeviceAttribute_t::hipDeviceAttributeWarpSize),
        32
    );
    assert_eq!(
        device_attribute(hipDeviceAttribute_t::hipDeviceAttributeMemoryPoolsSupported),
        1
    );
    assert_eq!(
        device_attribute(hipDeviceAttribute_t::hipDeviceAttributeMultiprocessorCount),
        p.multi_processor_count
    );
    let mut value = 0;
    // SAFETY: valid out-pointer.
    let status = unsafe {
        (hip().hipDeviceGetAttribute)(
            &mut value,
            hipDeviceAttribute_t::hipDeviceAttributeGcnArchName,
            0,
        )
    };
    assert_eq!(status, hipError_t::hipErrorInvalidValue);

    let mut name = [0 as c_char; 128];
    ok!((hip().hipDeviceGetName)(
        name.as_mut_ptr(),
        name.len() as c_int,
        0
    ));
    assert_eq!(rocmforge_sys::c_chars_to_string(&name), p.name);

    ok!((hip().hipSetDevice)(0));
    let mut device = -1;
    ok!((hip().hipGetDevice)(&mut device));
    assert_eq!(device, 0);
    // SAFETY: no pointers.
    assert_eq!(
        unsafe { (hip().hipSetDevice)(count) },
        hipError_t::hipErrorInvalidDevice
    );

    let (mut free, mut total) = (0usize, 0usize);
    ok!((hip().hipMemGetInfo)(&mut free, &mut total));
    assert!(free > 0 && free <= total && total > 1 << 30);
}

#[test]
#[ignore = "needs a GPU"]
fn stream_ordered_alloc_memset_and_copies_roundtrip() {
    let _serial = serial();
    let before = counts();
    let stream = new_stream();
    let n = 100_003usize;
    let bytes = n * 4;
    let a = alloc(stream, bytes);
    let b = alloc(stream, bytes);

    ok!((hip().hipMemsetAsync)(a, 0x3f, bytes, stream));
    let filled = download(stream, a, n);
    let expect = f32::from_bits(0x3f3f3f3f);
    assert!(filled.iter().all(|&v| v == expect));

    let host: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    upload(stream, a, &host);
    ok!((hip().hipMemcpyAsync)(
        b,
        a,
        bytes,
        hipMemcpyKind::hipMemcpyDeviceToDevice,
        stream
    ));
    assert_eq!(download(stream, b, n), host);

    // hipMemcpyDefault infers the direction (unified addressing).
    let mut back = vec![0f32; n];
    ok!((hip().hipMemcpyAsync)(
        back.as_mut_ptr().cast(),
        b,
        bytes,
        hipMemcpyKind::hipMemcpyDefault,
        stream
    ));
    ok!((hip().hipStreamSynchronize)(stream));
    assert_eq!(back, host);
    // SAFETY: valid pointers; an undefined kind is refused before any copy.
    let status =
        unsafe { (hip().hipMemcpyAsync)(back.as_mut_ptr().cast(), b, 4, hipMemcpyKind(9), stream) };
    assert_eq!(status, hipError_t::hipErrorInvalidMemcpyDirection);

    // The default pool and its attributes.
    let mut pool: hipMemPool_t = ptr::null_mut();
    ok!((hip().hipDeviceGetDefaultMemPool)(&mut pool, 0));
    let mut threshold: u64 = 0;
    ok!((hip().hipMemPoolGetAttribute)(
        pool,
        hipMemPoolAttr::hipMemPoolAttrReleaseThreshold,
        (&mut threshold as *mut u64).cast()
    ));
    ok!((hip().hipMemPoolSetAttribute)(
        pool,
        hipMemPoolAttr::hipMemPoolAttrReleaseThreshold,
        (&mut threshold as *mut u64).cast()
    ));
    let mut used: u64 = 0;
    ok!((hip().hipMemPoolGetAttribute)(
        pool,
        hipMemPoolAttr::hipMemPoolAttrUsedMemCurrent,
        (&mut used as *mut u64).cast()
    ));
    assert!(used >= 2 * bytes as u64, "used {used}");

    ok!((hip().hipFreeAsync)(a, stream));
    ok!((hip().hipFreeAsync)(b, stream));
    // Zero bytes: a null pointer and success, as HIP.
    let mut zero: *mut c_void = 8 as *mut c_void;
    ok!((hip().hipMallocAsync)(&mut zero, 0, stream));
    assert!(zero.is_null());
    ok!((hip().hipStreamSynchronize)(stream));
    ok!((hip().hipStreamQuery)(stream));
    ok!((hip().hipStreamDestroy)(stream));
    assert_eq!(counts(), before, "no context-wide synchronization");
}

#[test]
#[ignore = "needs a GPU"]
fn events_time_work_and_order_streams() {
    let _serial = serial();
    let before = counts();
    let s1 = new_stream();
    let s2 = new_stream();
    let bytes = 256 << 20;
    let buf = alloc(s1, bytes);
    let (mut start, mut stop, mut untimed) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    ok!((hip().hipEventCreateWithFlags)(&mut start, hipEventDefault));
    ok!((hip().hipEventCreateWithFlags)(
        &mut stop,
        hipEventBlockingSync
    ));
    ok!((hip().hipEventCreateWithFlags)(
        &mut untimed,
        hipEventDisableTiming | hipEventReleaseToSystem
    ));
    ok!((hip().hipEventRecord)(start, s1));
    for _ in 0..8 {
        ok!((hip().hipMemsetAsync)(buf, 1, bytes, s1));
    }
    ok!((hip().hipEventRecord)(stop, s1));
    ok!((hip().hipEventRecord)(untimed, s1));
    // s2 waits for s1's work through the event, then frees the buffer in its order.
    ok!((hip().hipStreamWaitEvent)(s2, untimed, 0));
    ok!((hip().hipFreeAsync)(buf, s2));
    ok!((hip().hipEventSynchronize)(stop));
    ok!((hip().hipEventQuery)(stop));
    let mut ms = -1f32;
    ok!((hip().hipEventElapsedTime)(&mut ms, start, stop));
    assert!(ms > 0.0 && ms < 10_000.0, "{ms} ms");
    eprintln!("8 x 256 MiB memset: {ms:.3} ms");
    ok!((hip().hipStreamSynchronize)(s2));
    // SAFETY: valid out-pointer; timing was disabled on `untimed`.
    let status = unsafe { (hip().hipEventElapsedTime)(&mut ms, start, untimed) };
    assert_eq!(status, hipError_t::hipErrorInvalidHandle);
    // SAFETY: unknown event flag bits are refused before the driver is called.
    let status = unsafe { (hip().hipEventCreateWithFlags)(&mut untimed, 0x100) };
    assert_eq!(status, hipError_t::hipErrorInvalidValue);
    for e in [start, stop] {
        ok!((hip().hipEventDestroy)(e));
    }
    ok!((hip().hipStreamDestroy)(s1));
    ok!((hip().hipStreamDestroy)(s2));
    assert_eq!(counts(), before, "no context-wide synchronization");
}

#[test]
#[ignore = "needs a GPU"]
fn compile_load_launch_and_check() {
    let _serial = serial();
    let before = counts();
    let mut major = 0;
    let mut minor = 0;
    rtc_ok!((rtc().hiprtcVersion)(&mut major, &mut minor));
    assert!(major >= 12, "NVRTC {major}.{minor}");

    let kernel = load_axpy();
    let mut max_threads = 0;
    ok!((hip().hipFuncGetAttribute)(
        &mut max_threads,
        hipFunction_attribute::HIP_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
        kernel.function
    ));
    assert!(max_threads >= 256, "{max_threads}");

    let stream = new_stream();
    let n = 10_007u32;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let y0: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
    let dx = alloc(stream, n as usize * 4);
    let dy = alloc(stream, n as usize * 4);
    upload(stream, dx, &x);
    upload(stream, dy, &y0);
    assert_eq!(
        launch_axpy(&kernel, stream, dy, dx, 2.0, n),
        hipError_t::hipSuccess
    );

    // The same kernel through `extra`, with AMD HIP's end marker (0x03).
    let mut args = [0u8; 24];
    args[0..8].copy_from_slice(&(dy as usize as u64).to_ne_bytes());
    args[8..16].copy_from_slice(&(dx as usize as u64).to_ne_bytes());
    args[16..20].copy_from_slice(&0.5f32.to_ne_bytes());
    args[20..24].copy_from_slice(&n.to_ne_bytes());
    let mut size = args.len();
    let mut extra: [*mut c_void; 5] = [
        1 as *mut c_void,
        args.as_mut_ptr().cast(),
        2 as *mut c_void,
        (&mut size as *mut usize).cast(),
        3 as *mut c_void,
    ];
    ok!((hip().hipModuleLaunchKernel)(
        kernel.function,
        n.div_ceil(256),
        1,
        1,
        256,
        1,
        1,
        0,
        stream,
        ptr::null_mut(),
        extra.as_mut_ptr()
    ));
    let y = download(stream, dy, n as usize);
    for i in 0..n as usize {
        assert_eq!(y[i], y0[i] + 2.5 * x[i], "y[{i}]");
    }
    ok!((hip().hipFreeAsync)(dx, stream));
    ok!((hip().hipFreeAsync)(dy, stream));
    ok!((hip().hipStreamSynchronize)(stream));
    ok!((hip().hipModuleUnload)(kernel.module));
    ok!((hip().hipStreamDestroy)(stream));
    assert_eq!(counts(), before, "no context-wide synchronization");
}

#[test]
#[ignore = "needs a GPU"]
fn compile_errors_are_reported_in_the_log() {
    let _serial = serial();
    let (status, log, _) = compile(
        "extern \"C\" __global__ void broken() { undefined_thing(); }",
        &[],
    );
    assert_eq!(status, hiprtcResult::HIPRTC_ERROR_COMPILATION);
    assert!(log.contains("undefined_thing"), "{log}");
    assert!(
        log.contains("--gpu-architecture=sm_"),
        "the adapter notes its options: {log}"
    );

    let (status, log, _) = compile(KERNELS, &["--offload-arch=gfx90a".to_string()]);
    assert_eq!(status, hiprtcResult::HIPRTC_ERROR_INVALID_OPTION);
    assert!(log.contains("gfx90a") && log.contains("sm_XY"), "{log}");

    // No architecture option: the current device's.
    let (status, log, code) = compile(KERNELS, &[]);
    assert_eq!(status, hiprtcResult::HIPRTC_SUCCESS, "{log}");
    assert!(code.starts_with(b"\x7fELF"));
}

#[test]
#[ignore = "needs a GPU"]
fn graph_capture_and_replay_of_a_launch() {
    let _serial = serial();
    let before = counts();
    let kernel = load_axpy();
    let stream = new_stream();
    let n = 4096u32;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let dx = alloc(stream, n as usize * 4);
    let dy = alloc(stream, n as usize * 4);
    upload(stream, dx, &x);
    ok!((hip().hipMemsetAsync)(dy, 0, n as usize * 4, stream));
    ok!((hip().hipStreamSynchronize)(stream));

    let mut mode = hipStreamCaptureMode::hipStreamCaptureModeThreadLocal;
    ok!((hip().hipThreadExchangeStreamCaptureMode)(&mut mode));
    assert_eq!(
        mode,
        hipStreamCaptureMode::hipStreamCaptureModeGlobal,
        "the default mode"
    );

    let mut status = hipStreamCaptureStatus::hipStreamCaptureStatusActive;
    ok!((hip().hipStreamIsCapturing)(stream, &mut status));
    assert_eq!(status, hipStreamCaptureStatus::hipStreamCaptureStatusNone);
    ok!((hip().hipStreamBeginCapture)(
        stream,
        hipStreamCaptureMode::hipStreamCaptureModeThreadLocal
    ));
    ok!((hip().hipStreamIsCapturing)(stream, &mut status));
    assert_eq!(status, hipStreamCaptureStatus::hipStreamCaptureStatusActive);
    assert_eq!(
        launch_axpy(&kernel, stream, dy, dx, 1.0, n),
        hipError_t::hipSuccess
    );
    let mut graph: hipGraph_t = ptr::null_mut();
    ok!((hip().hipStreamEndCapture)(stream, &mut graph));
    assert!(!graph.is_null());

    let mut exec: hipGraphExec_t = ptr::null_mut();
    let mut error_node: hipGraphNode_t = 8 as hipGraphNode_t;
    let mut log = [1 as c_char; 64];
    ok!((hip().hipGraphInstantiate)(
        &mut exec,
        graph,
        &mut error_node,
        log.as_mut_ptr(),
        log.len()
    ));
    assert!(error_node.is_null());
    assert_eq!(log[0], 0, "empty log on success");
    // Nothing ran during capture; two replays run the launch twice.
    assert!(download(stream, dy, n as usize).iter().all(|&v| v == 0.0));
    ok!((hip().hipGraphLaunch)(exec, stream));
    ok!((hip().hipGraphLaunch)(exec, stream));
    let y = download(stream, dy, n as usize);
    for i in 0..n as usize {
        assert_eq!(y[i], 2.0 * x[i], "y[{i}]");
    }
    ok!((hip().hipGraphExecDestroy)(exec));
    ok!((hip().hipGraphDestroy)(graph));

    let mut restore = mode;
    ok!((hip().hipThreadExchangeStreamCaptureMode)(&mut restore));
    assert_eq!(
        restore,
        hipStreamCaptureMode::hipStreamCaptureModeThreadLocal
    );

    ok!((hip().hipFreeAsync)(dx, stream));
    ok!((hip().hipFreeAsync)(dy, stream));
    ok!((hip().hipStreamSynchronize)(stream));
    ok!((hip().hipModuleUnload)(kernel.module));
    ok!((hip().hipStreamDestroy)(stream));
    assert_eq!(counts(), before, "no context-wide synchronization");
}

#[test]
#[ignore = "needs a GPU"]
fn an_invalid_launch_maps_to_the_hip_error_with_the_cuda_name() {
    let _serial = serial();
    let kernel = load_axpy();
    let stream = new_stream();
    let d = alloc(stream, 1024);
    let mut y = d;
    let mut x = d;
    let mut a = 1f32;
    let mut n = 1u32;
    let mut params: [*mut c_void; 4] = [
        (&mut y as *mut *mut c_void).cast(),
        (&mut x as *mut *mut c_void).cast(),
        (&mut a as *mut f32).cast(),
        (&mut n as *mut u32).cast(),
    ];
    // 2048 threads per block is more than any NVIDIA GPU allows.
    // SAFETY: valid parameters; the driver refuses the configuration before launching.
    let status = unsafe {
        (hip().hipModuleLaunchKernel)(
            kernel.function,
            1,
            1,
            1,
            2048,
            1,
            1,
            0,
            stream,
            params.as_mut_ptr(),
            ptr::null_mut(),
        )
    };
    assert_eq!(
        status,
        hipError_t::hipErrorInvalidValue,
        "{}",
        error_string(status)
    );
    assert_eq!(error_name(status), "hipErrorInvalidValue");
    let message = error_string(status);
    assert!(
        message.contains("CUDA_ERROR_INVALID_VALUE from cuLaunchKernel"),
        "{message}"
    );
    // Another thread has its own last error.
    let elsewhere = std::thread::spawn(move || error_string(status))
        .join()
        .unwrap();
    assert!(!elsewhere.contains("cuLaunchKernel"), "{elsewhere}");

    // A malformed `extra` is refused by the adapter.
    let mut extra: [*mut c_void; 3] = [7 as *mut c_void, ptr::null_mut(), 3 as *mut c_void];
    // SAFETY: the adapter rejects key 7 before calling the driver.
    let status = unsafe {
        (hip().hipModuleLaunchKernel)(
            kernel.function,
            1,
            1,
            1,
            1,
            1,
            1,
            0,
            stream,
            ptr::null_mut(),
            extra.as_mut_ptr(),
        )
    };
    assert_eq!(status, hipError_t::hipErrorInvalidValue);

    // An out-of-range attribute and a bad module image.
    let mut value = 0;
    // SAFETY: valid out-pointer; the attribute is refused before the driver is called.
    let status = unsafe {
        (hip().hipFuncGetAttribute)(
            &mut value,
            hipFunction_attribute::HIP_FUNC_ATTRIBUTE_MAX,
            kernel.function,
        )
    };
    assert_eq!(status, hipError_t::hipErrorInvalidValue);
    let junk = [0u8; 64];
    let mut module: hipModule_t = ptr::null_mut();
    // SAFETY: a readable (if meaningless) image.
    let status = unsafe { (hip().hipModuleLoadData)(&mut module, junk.as_ptr().cast()) };
    assert_ne!(status, hipError_t::hipSuccess);
    assert!(
        error_string(status).contains("from cuModuleLoadData"),
        "{}",
        error_string(status)
    );

    ok!((hip().hipFreeAsync)(d, stream));
    ok!((hip().hipStreamSynchronize)(stream));
    ok!((hip().hipModuleUnload)(kernel.module));
    ok!((hip().hipStreamDestroy)(stream));
}

#[test]
#[ignore = "needs a GPU"]
fn threads_each_get_a_current_context_and_their_own_stream() {
    let _serial = serial();
    let before = counts();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut device = -1;
                ok!((hip().hipGetDevice)(&mut device));
                assert_eq!(device, 0);
                let stream = new_stream();
                let n = 50_000usize;
                let host: Vec<f32> = (0..n).map(|i| (i * (t + 1)) as f32).collect();
                let d = alloc(stream, n * 4);
                upload(stream, d, &host);
                assert_eq!(download(stream, d, n), host);
                ok!((hip().hipFreeAsync)(d, stream));
                ok!((hip().hipStreamSynchronize)(stream));
                ok!((hip().hipStreamDestroy)(stream));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(counts(), before, "no context-wide synchronization");
}

#[test]
#[ignore = "needs a GPU"]
fn pinned_memory_and_the_null_stream_are_counted() {
    let _serial = serial();
    let before = counts();
    let stream = new_stream();
    let n = 1 << 20;
    let mut pinned: *mut c_void = ptr::null_mut();
    ok!((hip().hipHostMalloc)(
        &mut pinned,
        n * 4,
        hipHostMallocDefault
    ));
    assert!(!pinned.is_null());
    // SAFETY: `pinned` holds n floats.
    let host = unsafe { std::slice::from_raw_parts_mut(pinned.cast::<f32>(), n) };
    for (i, v) in host.iter_mut().enumerate() {
        *v = i as f32;
    }
    let d = alloc(stream, n * 4);
    ok!((hip().hipMemcpyAsync)(
        d,
        pinned,
        n * 4,
        hipMemcpyKind::hipMemcpyHostToDevice,
        stream
    ));
    let back = download(stream, d, n);
    assert!(back.iter().enumerate().all(|(i, &v)| v == i as f32));
    ok!((hip().hipFreeAsync)(d, stream));
    ok!((hip().hipStreamSynchronize)(stream));
    ok!((hip().hipHostFree)(pinned));
    ok!((hip().hipHostFree)(ptr::null_mut()));
    // The legacy NULL stream: counted, and it works.
    ok!((hip().hipStreamSynchronize)(ptr::null_mut()));
    let after = counts();
    assert_eq!(after.mem_host_alloc, before.mem_host_alloc + 1);
    assert_eq!(after.mem_free_host, before.mem_free_host + 1);
    assert_eq!(after.null_stream, before.null_stream + 1);
    assert_eq!(nvidia::context_synchronizations(), after.total());
    ok!((hip().hipStreamDestroy)(stream));
}

#[test]
#[ignore = "needs a GPU"]
fn flags_map_and_bad_arguments_are_refused() {
    let _serial = serial();
    let before = counts();
    let mut stream: hipStream_t = ptr::null_mut();
    let mut host: *mut c_void = ptr::null_mut();
    let flags: c_uint = 0x10;
    // SAFETY: valid out-pointers; bad flags and handles are refused before the driver
    // is called.
    unsafe {
        assert_eq!(
            (hip().hipStreamCreateWithFlags)(&mut stream, flags),
            hipError_t::hipErrorInvalidValue
        );
        assert_eq!(
            (hip().hipStreamDestroy)(ptr::null_mut()),
            hipError_t::hipErrorInvalidHandle
        );
        assert_eq!(
            (hip().hipHostMalloc)(&mut host, 16, 0x1000),
            hipError_t::hipErrorInvalidValue
        );
        assert_eq!(
            (hip().hipGetDeviceProperties)(ptr::null_mut(), 0),
            hipError_t::hipErrorInvalidValue
        );
    }
    assert!(host.is_null());
    let mut blocking: hipStream_t = ptr::null_mut();
    ok!((hip().hipStreamCreateWithFlags)(
        &mut blocking,
        hipStreamDefault
    ));
    ok!((hip().hipStreamDestroy)(blocking));
    assert_eq!(counts(), before, "nothing here synchronizes");
}
