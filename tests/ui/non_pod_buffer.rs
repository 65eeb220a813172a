// Device memory holds plain bytes: types with pointers or destructors cannot live there.
use rocmforge::prelude::*;

fn main() -> Result<()> {
    let device = Device::new(0)?;
    let stream = device.new_stream()?;
    let _strings = DeviceBuffer::<String>::alloc(&stream, 4)?;
    Ok(())
}
