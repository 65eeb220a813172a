// Declaring a kernel's signature is a promise the compiler cannot check.
use rocmforge::prelude::*;

fn main() -> Result<()> {
    let device = Device::new(0)?;
    let module = Module::load(&device, &[0u8; 16])?;
    let _typed = module.function("k")?.into_typed::<(In<f32>, Out<f32>, u32)>();
    Ok(())
}
