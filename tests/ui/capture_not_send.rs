// A graph capture is bound to the thread that began it (thread-local capture mode).
use rocmforge::prelude::*;

fn main() -> Result<()> {
    let device = Device::new(0)?;
    let stream = device.new_stream()?;
    std::thread::scope(|s| {
        let capture = stream.begin_capture().unwrap();
        s.spawn(move || drop(capture));
    });
    Ok(())
}
