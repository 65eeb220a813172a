//! A loaded GPU runtime: the HIP function table, hiprtc, and where they came from.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::amd_loader::{self, HIP_LIB_ENV};
use crate::bindings::hip::hipError_t;
use crate::platform::PLATFORM_ENV;
use crate::{nvidia, HipApi, HiprtcApi, LoadError, Platform, PlatformChoice};

/// How to find the runtime. [`LoadOptions::from_env`] reads the documented variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Which platform(s) to try.
    pub platform: PlatformChoice,
    /// An explicit `libamdhip64` path (`ROCMFORGE_HIP_LIB`). When set, and the platform is
    /// `Auto`, only AMD is tried: the user named a HIP library.
    pub hip_library: Option<PathBuf>,
    /// The ROCm install root (`ROCM_PATH`).
    pub rocm_path: Option<PathBuf>,
}

impl LoadOptions {
    /// Reads `ROCMFORGE_PLATFORM`, `ROCMFORGE_HIP_LIB` and `ROCM_PATH`.
    pub fn from_env() -> Result<Self, LoadError> {
        let platform = match std::env::var(PLATFORM_ENV) {
            Ok(value) => PlatformChoice::parse(&value).ok_or(LoadError::UnknownPlatform(value))?,
            Err(_) => PlatformChoice::Auto,
        };
        let non_empty = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Ok(Self {
            platform,
            hip_library: non_empty(HIP_LIB_ENV),
            rocm_path: non_empty("ROCM_PATH"),
        })
    }

    /// The platforms these options try, in order.
    pub fn platforms(&self) -> &'static [Platform] {
        match (self.platform, &self.hip_library) {
            (PlatformChoice::Auto, Some(_)) => &[Platform::Amd],
            (choice, _) => choice.candidates(),
        }
    }
}

/// A loaded runtime. Immutable once loaded; the libraries stay loaded for its lifetime.
pub struct Runtime {
    platform: Platform,
    library: PathBuf,
    version: i32,
    hip: HipApi,
    hiprtc: Result<HiprtcApi, LoadError>,
    compile_lock: Mutex<()>,
    _libraries: Vec<libloading::Library>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("platform", &self.platform)
            .field("library", &self.library)
            .field("version", &self.version)
            .field("hiprtc", &self.hiprtc.is_ok())
            .finish()
    }
}

impl Runtime {
    /// Loads a runtime as `options` say. Every path tried is listed in the error.
    pub fn load(options: &LoadOptions) -> Result<Runtime, LoadError> {
        let mut tried = Vec::new();
        let platforms = options.platforms();
        // With several platforms to try, one that loads but sees no GPU (a ROCm install
        // on an NVIDIA machine) is kept only as a fallback: the next one may have a GPU.
        // The fallback still matters without any GPU: hiprtc compiles for AMD targets.
        let mut fallback: Option<Runtime> = None;
        for (i, &platform) in platforms.iter().enumerate() {
            let loaded = match platform {
                Platform::Amd => {
                    let candidates = amd_loader::hip_library_candidates(
                        options.hip_library.as_deref(),
                        options.rocm_path.as_deref(),
                    );
                    amd_loader::load(&candidates, &mut tried)?
                        .map(|amd| (amd.hip, amd.hiprtc, amd.path, amd.libraries))
                }
                Platform::Nvidia => {
                    nvidia::load(&mut tried)?.map(|nv| (nv.hip, nv.hiprtc, nv.library, Vec::new()))
                }
            };
            let Some((hip, hiprtc, library, libraries)) = loaded else {
                continue;
            };
            let version = runtime_version(&hip, platform, &library)?;
            let runtime = Runtime {
                platform,
                library,
                version,
                hip,
                hiprtc,
                compile_lock: Mutex::new(()),
                _libraries: libraries,
            };
            let last = i + 1 == platforms.len();
            if last || runtime.sees_a_device() {
                return Ok(runtime);
            }
            tried.push(crate::LoadAttempt {
                platform,
                path: runtime.library.clone(),
                reason: "loaded, but it sees no GPU; trying the next platform".to_string(),
            });
            fallback.get_or_insert(runtime);
        }
        fallback.ok_or(LoadError::RuntimeNotFound { tried })
    }

    /// Whether `hipGetDeviceCount` reports at least one device.
    fn sees_a_device(&self) -> bool {
        let mut count = 0;
        // SAFETY: hipInit takes flags 0; `count` is a valid out-pointer.
        unsafe {
            let _ = (self.hip.hipInit)(0);
            (self.hip.hipGetDeviceCount)(&mut count) == hipError_t::hipSuccess && count > 0
        }
    }

    /// The runtime of this process, loaded on first use from [`LoadOptions::from_env`].
    /// The outcome (success or the error) is kept: the environment is read once.
    pub fn global() -> Result<&'static Runtime, LoadError> {
        static RUNTIME: OnceLock<Result<Runtime, LoadError>> = OnceLock::new();
        RUNTIME
            .get_or_init(|| LoadOptions::from_env().and_then(|options| Runtime::load(&options)))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The platform behind the function table.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The library the runtime came from (the CUDA driver for the NVIDIA adapter).
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// `hipRuntimeGetVersion`: `major * 10^7 + minor * 10^5 + patch` on AMD; the CUDA
    /// driver version (e.g. 13000) on NVIDIA.
    pub fn version(&self) -> i32 {
        self.version
    }

    /// The HIP function table.
    pub fn hip(&self) -> &HipApi {
        &self.hip
    }

    /// Held while a program is created, compiled and read back. hiprtc is not safe to use
    /// from several threads at once: HIP 5.2's crashes (SIGSEGV, reproduced on Debian's
    /// libamdhip64 5.2 with two tests compiling in parallel; see also ROCm/hip#3826 and
    /// ROCm/rocFFT#422). A poisoned lock is still a lock: compilation state lives in the
    /// program objects, not behind it.
    pub fn compile_lock(&self) -> MutexGuard<'_, ()> {
        self.compile_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The hiprtc function table, or why it could not be loaded.
    pub fn hiprtc(&self) -> Result<&HiprtcApi, LoadError> {
        self.hiprtc.as_ref().map_err(Clone::clone)
    }
}

fn runtime_version(hip: &HipApi, platform: Platform, library: &Path) -> Result<i32, LoadError> {
    let mut version = 0;
    // SAFETY: `version` is a valid out-pointer; hipRuntimeGetVersion needs no device.
    let status = unsafe { (hip.hipRuntimeGetVersion)(&mut version) };
    if status != hipError_t::hipSuccess {
        return Err(LoadError::InitFailed {
            platform,
            library: library.to_path_buf(),
            call: "hipRuntimeGetVersion",
            code: status.0 as i32,
        });
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_hip_library_restricts_auto_to_amd() {
        let options = LoadOptions {
            hip_library: Some("/x.so".into()),
            ..Default::default()
        };
        assert_eq!(options.platforms(), &[Platform::Amd]);
        let options = LoadOptions {
            platform: PlatformChoice::Only(Platform::Nvidia),
            hip_library: Some("/x.so".into()),
            ..Default::default()
        };
        assert_eq!(options.platforms(), &[Platform::Nvidia]);
    }

    #[test]
    fn missing_explicit_library_names_the_path() {
        let options = LoadOptions {
            hip_library: Some("/nonexistent/rocmforge/libamdhip64.so".into()),
            ..Default::default()
        };
        let err = Runtime::load(&options).unwrap_err();
        let LoadError::RuntimeNotFound { tried } = &err else {
            panic!("expected RuntimeNotFound, got {err}");
        };
        assert_eq!(tried.len(), 1);
        assert_eq!(
            tried[0].path,
            PathBuf::from("/nonexistent/rocmforge/libamdhip64.so")
        );
        assert!(err
            .to_string()
            .contains("/nonexistent/rocmforge/libamdhip64.so"));
    }
}
