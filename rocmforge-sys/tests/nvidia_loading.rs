//! The NVIDIA adapter without a GPU: what a machine without NVIDIA's driver gets, and
//! the adapter's pure translations through the public API.

use std::path::PathBuf;

use rocmforge_sys::bindings::hip::hipError_t;
use rocmforge_sys::nvidia::{self, cuda_types::CUresult};
use rocmforge_sys::{LoadError, LoadOptions, Platform, PlatformChoice, Runtime};

#[test]
fn without_a_driver_nvidia_is_runtime_not_found_naming_libcuda() {
    let options = LoadOptions {
        platform: PlatformChoice::Only(Platform::Nvidia),
        ..Default::default()
    };
    match Runtime::load(&options) {
        Err(LoadError::RuntimeNotFound { tried }) => {
            let paths: Vec<PathBuf> = tried.iter().map(|t| t.path.clone()).collect();
            assert_eq!(
                paths,
                vec![PathBuf::from("libcuda.so.1"), PathBuf::from("libcuda.so")],
                "{tried:?}"
            );
            assert!(tried
                .iter()
                .all(|t| t.platform == Platform::Nvidia && !t.reason.is_empty()));
            let message = LoadError::RuntimeNotFound { tried }.to_string();
            assert!(message.contains("[nvidia] libcuda.so.1"), "{message}");
        }
        Err(other) => panic!("expected RuntimeNotFound, got {other}"),
        Ok(runtime) => {
            // A machine with the NVIDIA driver: the adapter loaded instead.
            assert_eq!(runtime.platform(), Platform::Nvidia);
            assert!(runtime.library().to_string_lossy().contains("libcuda"));
        }
    }
}

#[test]
fn a_bogus_driver_path_is_named_in_the_error() {
    let bogus = PathBuf::from("/nonexistent/rocmforge-test/libcuda.so.1");
    let err = nvidia::probe_driver(std::slice::from_ref(&bogus)).unwrap_err();
    let LoadError::RuntimeNotFound { tried } = &err else {
        panic!("expected RuntimeNotFound, got {err}");
    };
    assert_eq!(tried.len(), 1);
    assert_eq!(tried[0].path, bogus);
    assert!(err
        .to_string()
        .contains("/nonexistent/rocmforge-test/libcuda.so.1"));
}

#[test]
fn driver_and_nvrtc_search_order() {
    assert_eq!(
        nvidia::driver_library_candidates(),
        vec![PathBuf::from("libcuda.so.1"), PathBuf::from("libcuda.so")]
    );
    let nvrtc = nvidia::nvrtc_library_candidates(Some(std::path::Path::new("/cuda")));
    assert_eq!(
        nvrtc.first(),
        Some(&PathBuf::from("/cuda/lib64/libnvrtc.so.13"))
    );
    assert!(nvrtc.contains(&PathBuf::from("/usr/local/cuda/lib64/libnvrtc.so.12")));
    assert_eq!(nvrtc.last(), Some(&PathBuf::from("libnvrtc.so")));
}

#[test]
fn public_error_mapping() {
    assert_eq!(
        nvidia::map_cuda_error(CUresult::CUDA_ERROR_OUT_OF_MEMORY),
        hipError_t::hipErrorOutOfMemory
    );
    assert_eq!(
        nvidia::map_cuda_error(CUresult::CUDA_ERROR_NOT_READY),
        hipError_t::hipErrorNotReady
    );
    assert_eq!(
        nvidia::cuda_error_name(CUresult(700)),
        Some("CUDA_ERROR_ILLEGAL_ADDRESS")
    );
    assert_eq!(
        nvidia::hip_error_name(hipError_t::hipErrorIllegalAddress),
        Some("hipErrorIllegalAddress")
    );
}

#[test]
fn public_option_translation_and_arch_names() {
    let arch = nvidia::arch_name(9, 0);
    assert_eq!(arch, "sm_90");
    let t =
        nvidia::translate_options(&[format!("--offload-arch={arch}"), "-O3".into()], None).unwrap();
    assert_eq!(t.options, vec!["--gpu-architecture=sm_90".to_string()]);
}

#[test]
fn counters_start_at_zero_without_a_gpu() {
    // Nothing in this binary uses a GPU, so nothing can have synchronized one.
    assert_eq!(nvidia::context_synchronizations(), 0);
}
