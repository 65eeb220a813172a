// Launching without a declared signature is unsafe: nothing checks the arguments.
use rocmforge::prelude::*;

fn main() -> Result<()> {
    let device = Device::new(0)?;
    let stream = device.new_stream()?;
    let module = Module::load(&device, &[0u8; 16])?;
    let kernel = module.function("k")?;
    kernel.launch_raw(&stream, &LaunchConfig::for_elements(1, 1)?, &mut [])?;
    Ok(())
}
