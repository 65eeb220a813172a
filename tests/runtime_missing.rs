//! With `ROCMFORGE_HIP_LIB` naming a file that does not exist, asking for a GPU is a
//! `RuntimeNotFound` error that names the path — not a panic, not a link error.
//! (One test in this binary: the runtime is loaded once per process.)

use rocmforge::sys::LoadError;
use rocmforge::{Device, Error};

#[test]
fn missing_runtime_names_the_path_tried() {
    const PATH: &str = "/nonexistent/rocmforge-test/libamdhip64.so.6";
    std::env::set_var("ROCMFORGE_HIP_LIB", PATH);
    std::env::remove_var("ROCMFORGE_PLATFORM");
    let err = Device::count().unwrap_err();
    let Error::Load(LoadError::RuntimeNotFound { tried }) = &err else {
        panic!("expected RuntimeNotFound, got {err:?}");
    };
    assert_eq!(tried.len(), 1, "{tried:?}");
    assert_eq!(tried[0].path.to_str(), Some(PATH));
    assert!(err.to_string().contains(PATH), "{err}");
    // Asking again gives the same answer (the failed load is remembered, no retry storm).
    assert!(matches!(
        Device::new(0),
        Err(Error::Load(LoadError::RuntimeNotFound { .. }))
    ));
    // Compiling needs the runtime too.
    let compile = rocmforge::compile("", "x", &rocmforge::CompileOptions::for_arch("gfx906"));
    assert!(matches!(compile, Err(Error::Load(_))));
}
