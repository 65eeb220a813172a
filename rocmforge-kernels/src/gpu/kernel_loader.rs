//! Compiles and loads kernel sources for one device, once each.

use std::collections::HashMap;

use parking_lot::Mutex;
use rocmforge_hip::{Device, Module};

use crate::{KernelCompiler, KernelSource, Result};

/// Loads each kernel source at most once per loader (compiled at first use, through the
/// disk cache), for one device.
#[derive(Debug)]
pub struct KernelLoader {
    device: Device,
    compiler: KernelCompiler,
    modules: Mutex<HashMap<&'static str, Module>>,
}

impl KernelLoader {
    /// A loader for `device`, compiling for its exact arch and wave size.
    pub fn new(device: &Device) -> Self {
        Self::with_compiler(device, KernelCompiler::for_device(device))
    }

    /// A loader with an explicit compiler (e.g. another cache directory).
    pub fn with_compiler(device: &Device, compiler: KernelCompiler) -> Self {
        Self {
            device: device.clone(),
            compiler,
            modules: Mutex::new(HashMap::new()),
        }
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The module of `source`, compiling and loading it on first use.
    pub fn module(&self, source: &KernelSource) -> Result<Module> {
        if let Some(module) = self.modules.lock().get(source.name) {
            return Ok(module.clone());
        }
        // Compile outside the lock: it takes long, and two threads racing here only
        // cost one redundant compile (hiprtc itself is serialized below us).
        let module = self.compiler.load(&self.device, source)?;
        Ok(self
            .modules
            .lock()
            .entry(source.name)
            .or_insert(module)
            .clone())
    }
}
