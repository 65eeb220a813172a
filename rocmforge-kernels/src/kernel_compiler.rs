//! Compiles the library's kernel sources for one target, through the disk cache.

use rocmforge_hip::{compile, CompileOptions, Device, Module};

use crate::{CacheKey, CompileTarget, KernelCache, KernelSource, Result};

/// Compiles kernel sources for one [`CompileTarget`], reusing cached code objects.
#[derive(Debug, Clone)]
pub struct KernelCompiler {
    target: CompileTarget,
    cache: Option<KernelCache>,
}

impl KernelCompiler {
    /// A compiler for `target` using the default cache directory (if any).
    pub fn new(target: CompileTarget) -> Self {
        Self {
            target,
            cache: KernelCache::default_dir().map(KernelCache::new),
        }
    }

    /// A compiler for `device`.
    pub fn for_device(device: &Device) -> Self {
        Self::new(CompileTarget::for_device(device))
    }

    /// Uses `cache` (or none) instead of the default.
    pub fn with_cache(mut self, cache: Option<KernelCache>) -> Self {
        self.cache = cache;
        self
    }

    /// The target.
    pub fn target(&self) -> &CompileTarget {
        &self.target
    }

    /// The compiler options for this target.
    pub fn options(&self) -> CompileOptions {
        CompileOptions::for_arch(&self.target.arch).define("WAVE_SIZE", self.target.wave_size)
    }

    /// The code object of `source`: from the cache, else compiled (and then cached; a
    /// cache that cannot be written is not an error — the code object is still good).
    pub fn compile(&self, source: &KernelSource) -> Result<Vec<u8>> {
        let text = source.full_source();
        let options = self.options();
        let key = CacheKey::new(
            &text,
            &self.target.arch,
            &self.target.runtime,
            &options.to_args(),
        );
        if let Some(code) = self.cache.as_ref().and_then(|cache| cache.load(&key)) {
            return Ok(code);
        }
        let code = compile(&text, source.name, &options)?.code;
        if let Some(cache) = &self.cache {
            let _ = cache.store(&key, &code);
        }
        Ok(code)
    }

    /// Compiles (or fetches) `source` and loads it on `device`.
    pub fn load(&self, device: &Device, source: &KernelSource) -> Result<Module> {
        let code = self.compile(source)?;
        Ok(Module::load(device, &code)?)
    }
}
