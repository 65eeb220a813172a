//! The kernel sources compiled into the library, and the prelude they share.

/// The header prepended to every source: wave size, shuffles, half/bf16 conversion.
pub const PRELUDE: &str = include_str!("../kernels/prelude.h");

/// One `.hip` file: compiled into one code object holding its kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSource {
    /// File name, e.g. `elementwise.hip`.
    pub name: &'static str,
    /// The source text (without the prelude).
    pub source: &'static str,
    /// The `extern "C"` kernels it defines.
    pub kernels: &'static [&'static str],
}

impl KernelSource {
    /// The text handed to the compiler: prelude, then the source.
    pub fn full_source(&self) -> String {
        format!("{PRELUDE}\n#line 1 \"{}\"\n{}", self.name, self.source)
    }
}

/// Elementwise ops and casts.
pub const ELEMENTWISE: KernelSource = KernelSource {
    name: "elementwise.hip",
    source: include_str!("../kernels/elementwise.hip"),
    kernels: &[
        "rf_add_f32",
        "rf_mul_f32",
        "rf_scale_f32",
        "rf_silu_f32",
        "rf_gelu_f32",
        "rf_swiglu_f32",
        "rf_f32_to_f16",
        "rf_f16_to_f32",
        "rf_f32_to_bf16",
        "rf_bf16_to_f32",
    ],
};

/// Every source of the library.
pub const ALL_SOURCES: &[KernelSource] = &[ELEMENTWISE];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kernel_is_defined_in_its_source() {
        for source in ALL_SOURCES {
            for kernel in source.kernels {
                let definition = format!("void {kernel}(");
                assert!(
                    source.source.contains(&definition),
                    "{kernel} is listed for {} but not defined there",
                    source.name
                );
            }
        }
    }

    #[test]
    fn every_defined_kernel_is_listed() {
        for source in ALL_SOURCES {
            for line in source.source.lines() {
                if let Some(rest) = line.strip_prefix("extern \"C\" __global__ void ") {
                    let name = rest.split('(').next().unwrap_or_default();
                    assert!(
                        source.kernels.contains(&name),
                        "{name} in {} is not listed",
                        source.name
                    );
                }
            }
        }
    }
}
