// Freeing is tied to ownership: a dropped buffer cannot be launched on or read.
use rocmforge::prelude::*;

fn main() -> Result<()> {
    let device = Device::new(0)?;
    let stream = device.new_stream()?;
    let buffer = DeviceBuffer::<f32>::zeroed(&stream, 16)?;
    drop(buffer);
    let _ = buffer.to_vec()?;
    Ok(())
}
