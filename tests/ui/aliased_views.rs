// A kernel's output view is exclusive: the same buffer cannot also be read through another view.
use rocmforge::prelude::*;

fn main() -> Result<()> {
    let device = Device::new(0)?;
    let stream = device.new_stream()?;
    let mut buffer = DeviceBuffer::<f32>::zeroed(&stream, 16)?;
    let input = buffer.as_slice();
    let output = buffer.as_slice_mut();
    let _ = (input.len(), output.len());
    Ok(())
}
