//! Steady-state work of every kind never synchronizes the whole device: the NVIDIA
//! adapter counts every context-wide synchronization it performs (explicit or implicit,
//! such as pinned allocation and release), and the count must not move.
//!
//! Its own test binary, with one test: the counter is process-wide, so other tests
//! running at the same time would move it.

use rocmforge_hip::{
    compile, CompileOptions, Device, DeviceBuffer, DeviceMemory, DeviceMemoryMut, In, LaunchConfig,
    Module, Out, PinnedHostBuffer, TypedKernel,
};

const SCALE: &str = r#"
extern "C" __global__ void scale(const float* x, float* y, float a, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i];
}"#;

#[test]
#[ignore = "needs a GPU"]
fn steady_state_work_never_synchronizes_the_whole_device() {
    let device = Device::new(0).unwrap();
    let stream = device.new_stream().unwrap();
    let code = compile(
        SCALE,
        "scale.hip",
        &CompileOptions::for_arch(&device.properties().arch_name),
    )
    .unwrap();
    let module = Module::load(&device, &code.code).unwrap();
    // SAFETY: matches `scale`, which checks i < n.
    let scale: TypedKernel<(In<f32>, Out<f32>, f32, u32)> =
        unsafe { module.function("scale").unwrap().into_typed() };
    let n = 5000;
    let host: Vec<f32> = (0..n).map(|i| i as f32).collect();
    // Start-up: pinned memory is allocated once (a page-locked allocation is a
    // synchronization point on NVIDIA) and reused from the device's pool after that.
    drop(PinnedHostBuffer::<f32>::new(&device, n).unwrap());
    let before = rocmforge_sys::nvidia::context_synchronizations();

    for round in 0..20 {
        let mut pinned = PinnedHostBuffer::from_slice(&device, &host).unwrap();
        let mut x = DeviceBuffer::<f32>::alloc(&stream, n).unwrap();
        x.copy_from_pinned_async(&mut pinned).unwrap();
        let mut y = DeviceBuffer::<f32>::zeroed(&stream, n).unwrap();
        let cfg = LaunchConfig::for_elements(n, 256).unwrap();
        scale
            .launch(
                &stream,
                &cfg,
                (x.as_slice(), y.as_slice_mut(), 0.5, n as u32),
            )
            .unwrap();
        let other = device.new_stream().unwrap();
        other.wait_event(&stream.record_event().unwrap()).unwrap();
        y.move_to_stream(&other).unwrap();
        y.copy_to_pinned_async(&mut pinned).unwrap();
        assert_eq!(pinned.as_slice().unwrap()[2], 1.0, "round {round}");
        let mut z = DeviceBuffer::<f32>::alloc(&other, n).unwrap();
        z.copy_from_device(&y).unwrap();
        assert_eq!(z.to_vec().unwrap()[4], 2.0);
        drop((x, y, z)); // stream-ordered frees
        other.synchronize().unwrap();
    }
    stream.synchronize().unwrap();
    assert_eq!(
        rocmforge_sys::nvidia::context_synchronizations(),
        before,
        "a device-wide synchronization happened in steady state"
    );
    assert!(device.take_deferred_errors().is_empty());
}
