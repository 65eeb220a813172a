// Host access to pinned memory cannot overlap an async copy into it.
use rocmforge::prelude::*;

fn main() -> Result<()> {
    let device = Device::new(0)?;
    let stream = device.new_stream()?;
    let buffer = DeviceBuffer::<f32>::zeroed(&stream, 16)?;
    let mut pinned = PinnedHostBuffer::<f32>::new(&device, 16)?;
    let host = pinned.as_slice()?;
    buffer.copy_to_pinned_async(&mut pinned)?;
    let _ = host[0];
    Ok(())
}
