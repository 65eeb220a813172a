//! The safe layer on a real GPU. Run on the GPU host (`scripts/gpu-bundle.sh`), through
//! the NVIDIA adapter there; ignored elsewhere.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rocmforge_hip::{
    compile, CompileOptions, Device, DeviceBuffer, DeviceMemory, DeviceMemoryMut, Error, Event, In,
    LaunchConfig, Module, Out, PinnedHostBuffer, Stream, TypedKernel,
};

const KERNELS: &str = r#"
#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define SHFL_DOWN(v, o) __shfl_down_sync(0xffffffffu, (v), (o), WAVE_SIZE)
#else
#define SHFL_DOWN(v, o) __shfl_down((v), (o), WAVE_SIZE)
#endif

extern "C" __global__ void scale(const float* x, float* y, float a, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i];
}

extern "C" __global__ void add_into(const float* x, float* y, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += x[i];
}

// One wave sums its 64 or 32 lanes with shuffles: checks WAVE_SIZE matches the device.
extern "C" __global__ void wave_sum(const float* x, float* out) {
    float v = x[threadIdx.x];
    for (int offset = WAVE_SIZE / 2; offset > 0; offset /= 2) v += SHFL_DOWN(v, offset);
    if (threadIdx.x == 0) *out = v;
}

// Spins for `cycles` clocks, then writes: keeps a buffer in use for a while.
extern "C" __global__ void spin_then_fill(float* y, unsigned n, long long cycles, float value) {
    long long start = clock64();
    while (clock64() - start < cycles) {}
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = value;
}

extern "C" __global__ void empty() {}
"#;

/// The memory checks below measure the whole device (its pool, its free memory), and the
/// tests of this binary run in parallel in one process: every test holds this lock
/// shared while it has device memory, the memory checks hold it alone.
static DEVICE_MEMORY: RwLock<()> = RwLock::new(());

fn shared_memory() -> RwLockReadGuard<'static, ()> {
    DEVICE_MEMORY.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive_memory() -> RwLockWriteGuard<'static, ()> {
    DEVICE_MEMORY.write().unwrap_or_else(|e| e.into_inner())
}

/// A device, a stream and the test kernels; `_memory` is declared last so that it is
/// released after them.
struct Fixture {
    device: Device,
    stream: Stream,
    module: Module,
    _memory: MemoryLock,
}

#[allow(dead_code)] // held for its drop only
enum MemoryLock {
    Shared(RwLockReadGuard<'static, ()>),
    Exclusive(RwLockWriteGuard<'static, ()>),
}

fn fixture() -> Fixture {
    fixture_holding(MemoryLock::Shared(shared_memory()))
}

/// A fixture for a test that measures the device's memory: no other test of this binary
/// holds device memory meanwhile.
fn exclusive_fixture() -> Fixture {
    fixture_holding(MemoryLock::Exclusive(exclusive_memory()))
}

fn fixture_holding(memory: MemoryLock) -> Fixture {
    let device = Device::new(0).expect("a GPU");
    let stream = device.new_stream().unwrap();
    let module = load_kernels(&device);
    Fixture {
        device,
        stream,
        module,
        _memory: memory,
    }
}

fn options(device: &Device) -> CompileOptions {
    CompileOptions::for_arch(&device.properties().arch_name)
        .define("WAVE_SIZE", device.properties().warp_size)
}

fn load_kernels(device: &Device) -> Module {
    let code = compile(KERNELS, "gpu_test.hip", &options(device)).expect("compile");
    Module::load(device, &code.code).expect("load")
}

fn scale_kernel(module: &Module) -> TypedKernel<(In<f32>, Out<f32>, f32, u32)> {
    // SAFETY: matches `scale`, which checks i < n.
    unsafe { module.function("scale").unwrap().into_typed() }
}

fn add_kernel(module: &Module) -> TypedKernel<(In<f32>, Out<f32>, u32)> {
    // SAFETY: matches `add_into`, which checks i < n.
    unsafe { module.function("add_into").unwrap().into_typed() }
}

fn spin_kernel(module: &Module) -> TypedKernel<(Out<f32>, u32, i64, f32)> {
    // SAFETY: matches `spin_then_fill`, which checks i < n.
    unsafe { module.function("spin_then_fill").unwrap().into_typed() }
}

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 7.0)
        .collect()
}

#[test]
#[ignore = "needs a GPU"]
fn device_properties_are_sane() {
    let _memory = shared_memory();
    let device = Device::new(0).unwrap();
    let p = device.properties();
    assert!(!p.name.is_empty());
    assert!(!p.arch_name.is_empty());
    assert!(
        p.warp_size == 32 || p.warp_size == 64,
        "warp {}",
        p.warp_size
    );
    assert!(p.total_memory > 1 << 30);
    assert!(p.compute_units > 0);
    assert!(p.max_threads_per_block >= 256);
    assert!(Device::count().unwrap() >= 1);
    assert!(matches!(
        Device::new(Device::count().unwrap()),
        Err(Error::InvalidDevice { .. })
    ));
    let info = device.memory_info().unwrap();
    assert!(info.total >= info.free && info.free > 0);
    eprintln!(
        "{:?} {:?} runtime {}",
        device.platform(),
        p,
        device.runtime_version()
    );
}

#[test]
#[ignore = "needs a GPU"]
fn buffers_roundtrip_at_awkward_sizes() {
    let f = fixture();
    for n in [0usize, 1, 3, 255, 256, 257, 100_003] {
        let host = data(n, n as u32);
        let buffer = DeviceBuffer::from_slice(&f.stream, &host).unwrap();
        assert_eq!(buffer.len(), n);
        assert_eq!(buffer.to_vec().unwrap(), host, "n = {n}");
        let zero = DeviceBuffer::<u32>::zeroed(&f.stream, n).unwrap();
        assert!(zero.to_vec().unwrap().iter().all(|&v| v == 0));
        let mut bytes = DeviceBuffer::<u8>::alloc(&f.stream, n).unwrap();
        bytes.fill_bytes(0xAB).unwrap();
        assert!(bytes.to_vec().unwrap().iter().all(|&v| v == 0xAB));
    }
    let mut wrong = vec![0f32; 2];
    let buffer = DeviceBuffer::from_slice(&f.stream, &[1f32, 2.0, 3.0]).unwrap();
    assert!(matches!(
        buffer.copy_to_host(&mut wrong),
        Err(Error::LengthMismatch { .. })
    ));
}

#[test]
#[ignore = "needs a GPU"]
fn views_read_and_write_their_range_only() {
    let f = fixture();
    let host = data(1000, 1);
    let mut buffer = DeviceBuffer::from_slice(&f.stream, &host).unwrap();
    assert_eq!(
        buffer.slice(10..20).unwrap().to_vec().unwrap(),
        host[10..20]
    );
    assert_eq!(
        buffer
            .slice(990..)
            .unwrap()
            .slice(5..)
            .unwrap()
            .to_vec()
            .unwrap(),
        host[995..]
    );
    buffer.slice_mut(100..200).unwrap().fill_zero().unwrap();
    {
        let mut all = buffer.as_slice_mut();
        let (mut left, mut right) = all.split_at_mut(500).unwrap();
        left.slice_mut(..10)
            .unwrap()
            .copy_from_host(&[7.0; 10])
            .unwrap();
        right
            .slice_mut(..10)
            .unwrap()
            .copy_from_host(&[9.0; 10])
            .unwrap();
    }
    let out = buffer.to_vec().unwrap();
    let mut expected = host.clone();
    expected[100..200].iter_mut().for_each(|v| *v = 0.0);
    expected[..10].iter_mut().for_each(|v| *v = 7.0);
    expected[500..510].iter_mut().for_each(|v| *v = 9.0);
    assert_eq!(out, expected);
    assert!(matches!(
        buffer.slice(999..1001),
        Err(Error::OutOfBounds { .. })
    ));
}

#[test]
#[ignore = "needs a GPU"]
fn device_to_device_copies_and_stream_rules() {
    let f = fixture();
    let host = data(4097, 2);
    let src = DeviceBuffer::from_slice(&f.stream, &host).unwrap();
    let mut dst = DeviceBuffer::<f32>::alloc(&f.stream, host.len()).unwrap();
    dst.copy_from_device(&src).unwrap();
    assert_eq!(dst.to_vec().unwrap(), host);
    dst.slice_mut(1..3)
        .unwrap()
        .copy_from_device(&src.slice(10..12).unwrap())
        .unwrap();
    assert_eq!(dst.slice(1..3).unwrap().to_vec().unwrap(), host[10..12]);

    let other = f.device.new_stream().unwrap();
    let mut elsewhere = DeviceBuffer::<f32>::alloc(&other, host.len()).unwrap();
    assert!(matches!(
        elsewhere.copy_from_device(&src),
        Err(Error::StreamMismatch { .. })
    ));
    elsewhere.move_to_stream(&f.stream).unwrap();
    elsewhere.copy_from_device(&src).unwrap();
    assert_eq!(elsewhere.to_vec().unwrap(), host);
}

#[test]
#[ignore = "needs a GPU"]
fn pinned_async_copies_roundtrip() {
    let f = fixture();
    let host = data(1 << 20, 3);
    let mut pinned = PinnedHostBuffer::from_slice(&f.device, &host).unwrap();
    let mut buffer = DeviceBuffer::<f32>::alloc(&f.stream, host.len()).unwrap();
    buffer.copy_from_pinned_async(&mut pinned).unwrap();
    let mut back = PinnedHostBuffer::<f32>::new(&f.device, host.len()).unwrap();
    buffer.copy_to_pinned_async(&mut back).unwrap();
    // as_slice waits for the copy's event.
    assert_eq!(back.as_slice().unwrap(), &host[..]);
    // A pinned buffer used by two streams in turn: the second use waits for the first.
    let other = f.device.new_stream().unwrap();
    let second = DeviceBuffer::<f32>::zeroed(&other, host.len()).unwrap();
    second.copy_to_pinned_async(&mut back).unwrap();
    buffer.copy_to_pinned_async(&mut back).unwrap();
    assert_eq!(back.to_vec().unwrap(), host);
    // Reuse from the pool after drop.
    drop(back);
    let reused = PinnedHostBuffer::<f32>::new(&f.device, 1000).unwrap();
    assert!(reused.as_slice().unwrap().iter().all(|&v| v == 0.0));
}

#[test]
#[ignore = "needs a GPU"]
fn typed_launch_computes_and_checks_its_arguments() {
    let f = fixture();
    let scale = scale_kernel(&f.module);
    for n in [1usize, 255, 256, 257, 10_000] {
        let x = DeviceBuffer::from_slice(&f.stream, &data(n, 4)).unwrap();
        let mut y = DeviceBuffer::<f32>::zeroed(&f.stream, n).unwrap();
        let cfg = LaunchConfig::for_elements(n, 256).unwrap();
        scale
            .launch(
                &f.stream,
                &cfg,
                (x.as_slice(), y.as_slice_mut(), 2.5, n as u32),
            )
            .unwrap();
        let expected: Vec<f32> = data(n, 4).iter().map(|v| 2.5 * v).collect();
        assert_eq!(y.to_vec().unwrap(), expected);
    }
    let x = DeviceBuffer::from_slice(&f.stream, &[1f32]).unwrap();
    let mut y = DeviceBuffer::<f32>::zeroed(&f.stream, 1).unwrap();
    let too_big = LaunchConfig::for_elements(1, 4096).unwrap();
    assert!(matches!(
        scale.launch(
            &f.stream,
            &too_big,
            (x.as_slice(), y.as_slice_mut(), 1.0, 1)
        ),
        Err(Error::InvalidLaunch(_))
    ));
    let other = f.device.new_stream().unwrap();
    let cfg = LaunchConfig::for_elements(1, 64).unwrap();
    assert!(matches!(
        scale.launch(&other, &cfg, (x.as_slice(), y.as_slice_mut(), 1.0, 1)),
        Err(Error::StreamMismatch { .. })
    ));
    assert!(matches!(
        f.module.function("no_such_kernel"),
        Err(Error::Hip { .. })
    ));
}

#[test]
#[ignore = "needs a GPU"]
fn wave_size_define_matches_the_device() {
    let f = fixture();
    let warp = f.device.properties().warp_size as usize;
    // SAFETY: matches `wave_sum`, which reads blockDim.x (= warp) elements.
    let wave_sum: TypedKernel<(In<f32>, Out<f32>)> =
        unsafe { f.module.function("wave_sum").unwrap().into_typed() };
    let x: Vec<f32> = (0..warp).map(|i| i as f32).collect();
    let xd = DeviceBuffer::from_slice(&f.stream, &x).unwrap();
    let mut out = DeviceBuffer::<f32>::zeroed(&f.stream, 1).unwrap();
    let cfg = LaunchConfig::per_row(1, warp as u32).unwrap();
    wave_sum
        .launch(&f.stream, &cfg, (xd.as_slice(), out.as_slice_mut()))
        .unwrap();
    assert_eq!(out.to_vec().unwrap()[0], x.iter().sum::<f32>());
}

#[test]
#[ignore = "needs a GPU"]
fn events_order_streams_and_time_work() {
    let f = fixture();
    let spin = spin_kernel(&f.module);
    let producer = f.device.new_stream().unwrap();
    let n = 1 << 16;
    let mut y = DeviceBuffer::<f32>::alloc(&producer, n).unwrap();
    let start = producer.record_timing_event().unwrap();
    let cfg = LaunchConfig::for_elements(n, 256).unwrap();
    spin.launch(
        &producer,
        &cfg,
        (y.as_slice_mut(), n as u32, 2_000_000, 3.0),
    )
    .unwrap();
    let end = producer.record_timing_event().unwrap();
    // The consumer stream waits for the producer's event, then reads.
    y.move_to_stream(&f.stream).unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![3.0; n]);
    end.synchronize().unwrap();
    assert!(end.query().unwrap());
    let ms = end.elapsed_ms(&start).unwrap();
    assert!(ms > 0.0, "elapsed {ms} ms");
    let untimed = Event::new(&f.device).unwrap();
    assert!(untimed.elapsed_ms(&start).is_err());
    assert!(f.stream.query().unwrap());
}

#[test]
#[ignore = "needs a GPU"]
fn dropping_a_buffer_while_a_kernel_uses_it_is_safe() {
    let f = fixture();
    let spin = spin_kernel(&f.module);
    let n = 1 << 20;
    for round in 0..4 {
        let mut victim = DeviceBuffer::<f32>::alloc(&f.stream, n).unwrap();
        let cfg = LaunchConfig::for_elements(n, 256).unwrap();
        spin.launch(
            &f.stream,
            &cfg,
            (victim.as_slice_mut(), n as u32, 5_000_000, 1.0),
        )
        .unwrap();
        drop(victim); // the kernel is still spinning: the free is ordered after it
        let mut fresh = DeviceBuffer::<f32>::alloc(&f.stream, n).unwrap();
        fresh.fill_bytes(0).unwrap();
        assert!(
            fresh.to_vec().unwrap().iter().all(|&v| v == 0.0),
            "round {round}"
        );
    }
    f.stream.synchronize().unwrap();
}

#[test]
#[ignore = "needs a GPU"]
fn graphs_capture_and_replay() {
    let f = fixture();
    let add = add_kernel(&f.module);
    let n = 3000;
    let x = DeviceBuffer::from_slice(&f.stream, &data(n, 5)).unwrap();
    let mut y = DeviceBuffer::<f32>::zeroed(&f.stream, n).unwrap();
    let cfg = LaunchConfig::for_elements(n, 128).unwrap();
    let capture = f.stream.begin_capture().unwrap();
    assert!(f.stream.is_capturing().unwrap());
    assert!(matches!(
        DeviceBuffer::<f32>::alloc(&f.stream, 4),
        Err(Error::Capturing { .. })
    ));
    add.launch(&f.stream, &cfg, (x.as_slice(), y.as_slice_mut(), n as u32))
        .unwrap();
    let graph = capture.end().unwrap();
    assert!(!f.stream.is_capturing().unwrap());
    let exec = graph.instantiate().unwrap();
    for _ in 0..3 {
        // SAFETY: x and y outlive the replays, which finish before y is read.
        unsafe { exec.launch(&f.stream).unwrap() };
    }
    let expected: Vec<f32> = data(n, 5).iter().map(|v| 3.0 * v).collect();
    assert_eq!(y.to_vec().unwrap(), expected);
    // A capture dropped without end() is discarded and the stream usable again.
    {
        let _abandoned = f.stream.begin_capture().unwrap();
    }
    assert!(!f.stream.is_capturing().unwrap());
    assert!(f.device.take_deferred_errors().is_empty());
}

/// A buffer dropped by another thread while the stream it belongs to is capturing must
/// not put its free into the graph (CUDA refuses that with an invalid-value error): it is
/// freed when the capture ends, and the graph holds only the capturing thread's work.
#[test]
#[ignore = "needs a GPU"]
fn a_buffer_dropped_during_another_threads_capture_is_freed_after_it() {
    // Alone: it counts the pool's bytes in use.
    let f = exclusive_fixture();
    let add = add_kernel(&f.module);
    let n = 1024;
    let x = DeviceBuffer::from_slice(&f.stream, &data(n, 7)).unwrap();
    let mut y = DeviceBuffer::<f32>::zeroed(&f.stream, n).unwrap();
    let doomed: Vec<DeviceBuffer<f32>> = (0..16)
        .map(|_| DeviceBuffer::<f32>::zeroed(&f.stream, 4096).unwrap())
        .collect();
    f.stream.synchronize().unwrap();
    let (used_before, _) = f.device.pool_usage().unwrap();
    let cfg = LaunchConfig::for_elements(n, 128).unwrap();
    let capture = f.stream.begin_capture().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(move || drop(doomed)).join().unwrap();
    });
    add.launch(&f.stream, &cfg, (x.as_slice(), y.as_slice_mut(), n as u32))
        .unwrap();
    let graph = capture.end().unwrap();
    let exec = graph.instantiate().unwrap();
    // SAFETY: x and y outlive the replay, which finishes before y is read.
    unsafe { exec.launch(&f.stream).unwrap() };
    assert_eq!(y.to_vec().unwrap(), data(n, 7));
    f.stream.synchronize().unwrap();
    assert!(f.device.take_deferred_errors().is_empty());
    let (used_after, _) = f.device.pool_usage().unwrap();
    assert!(
        used_after + 16 * 4096 * 4 <= used_before,
        "the dropped buffers were not freed: {used_before} -> {used_after} bytes in use"
    );
}

#[test]
#[ignore = "needs a GPU"]
fn threads_with_their_own_streams_run_at_once() {
    let _memory = shared_memory();
    let device = Device::new(0).unwrap();
    let module = Arc::new(load_kernels(&device));
    let handles: Vec<_> = (0..8u32)
        .map(|t| {
            let device = device.clone();
            let module = module.clone();
            std::thread::spawn(move || {
                let stream = device.new_stream().unwrap();
                let scale = scale_kernel(&module);
                for round in 0..20u32 {
                    let n = 1000 + (t * 37 + round) as usize;
                    let host = data(n, t * 100 + round);
                    let mut pinned = PinnedHostBuffer::from_slice(&device, &host).unwrap();
                    let mut x = DeviceBuffer::<f32>::alloc(&stream, n).unwrap();
                    x.copy_from_pinned_async(&mut pinned).unwrap();
                    let mut y = DeviceBuffer::<f32>::alloc(&stream, n).unwrap();
                    let cfg = LaunchConfig::for_elements(n, 256).unwrap();
                    scale
                        .launch(
                            &stream,
                            &cfg,
                            (x.as_slice(), y.as_slice_mut(), t as f32, n as u32),
                        )
                        .unwrap();
                    y.copy_to_pinned_async(&mut pinned).unwrap();
                    let expected: Vec<f32> = host.iter().map(|v| t as f32 * v).collect();
                    assert_eq!(pinned.as_slice().unwrap(), &expected[..]);
                }
                stream.synchronize().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker thread");
    }
}

#[test]
#[ignore = "needs a GPU"]
fn ten_thousand_alloc_free_cycles_do_not_grow_memory() {
    let f = exclusive_fixture();
    // Warm up the pool, then measure.
    for _ in 0..10 {
        drop(DeviceBuffer::<u8>::alloc(&f.stream, 1 << 20).unwrap());
    }
    f.stream.synchronize().unwrap();
    let before = f.device.memory_info().unwrap();
    let (_, reserved_before) = f.device.pool_usage().unwrap();
    for i in 0..10_000usize {
        let size = 1024 + (i % 97) * 4096;
        let mut b = DeviceBuffer::<u8>::alloc(&f.stream, size).unwrap();
        if i % 1000 == 0 {
            b.fill_bytes(1).unwrap();
        }
    }
    f.stream.synchronize().unwrap();
    let after = f.device.memory_info().unwrap();
    let (used, reserved_after) = f.device.pool_usage().unwrap();
    eprintln!(
        "free before {} after {}; pool reserved {reserved_before} -> {reserved_after}, used {used}",
        before.free, after.free
    );
    assert_eq!(used, 0, "pool memory still handed out");
    assert!(
        before.free.abs_diff(after.free) <= 64 << 20,
        "device memory in use grew"
    );
    assert!(reserved_after <= reserved_before.max(64 << 20));
}

#[test]
#[ignore = "needs a GPU"]
fn a_thousand_module_loads_do_not_grow_memory() {
    let _memory = exclusive_memory();
    let device = Device::new(0).unwrap();
    let stream = device.new_stream().unwrap();
    let code = compile(KERNELS, "reload.hip", &options(&device))
        .unwrap()
        .code;
    for _ in 0..10 {
        drop(Module::load(&device, &code).unwrap());
    }
    let before = device.memory_info().unwrap();
    for i in 0..1000 {
        let module = Module::load(&device, &code).unwrap();
        if i % 100 == 0 {
            // SAFETY: `empty` takes no parameters.
            let empty: TypedKernel<()> = unsafe { module.function("empty").unwrap().into_typed() };
            empty
                .launch(&stream, &LaunchConfig::for_elements(1, 32).unwrap(), ())
                .unwrap();
        }
    }
    stream.synchronize().unwrap();
    let after = device.memory_info().unwrap();
    eprintln!("free before {} after {}", before.free, after.free);
    assert!(
        before.free.abs_diff(after.free) <= 16 << 20,
        "module loads leak device memory"
    );
}
