// A view borrows its buffer: it cannot outlive it (the view never frees, the buffer does).
use rocmforge::prelude::*;

fn main() -> Result<()> {
    let device = Device::new(0)?;
    let stream = device.new_stream()?;
    let view = {
        let buffer = DeviceBuffer::<f32>::zeroed(&stream, 16)?;
        buffer.as_slice()
    };
    let _ = view.len();
    Ok(())
}
