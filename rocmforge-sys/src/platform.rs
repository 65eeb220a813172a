//! Which GPU platform a runtime drives, and how the user chooses it.

use std::fmt;

/// The platform behind the HIP function table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// AMD ROCm: `libamdhip64` and hiprtc, loaded at run time.
    Amd,
    /// NVIDIA: rocmforge's own adapter onto the CUDA driver API and NVRTC.
    Nvidia,
}

impl Platform {
    /// The lower-case name used by `ROCMFORGE_PLATFORM` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Amd => "amd",
            Platform::Nvidia => "nvidia",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the user asked for: one platform, or the first that loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlatformChoice {
    /// AMD first, then NVIDIA.
    #[default]
    Auto,
    /// Only this platform.
    Only(Platform),
}

/// The environment variable that picks the platform: `amd`, `nvidia` or `auto`.
pub const PLATFORM_ENV: &str = "ROCMFORGE_PLATFORM";

impl PlatformChoice {
    /// Parses a `ROCMFORGE_PLATFORM` value (case-insensitive, surrounding blanks ignored).
    /// An empty value means `auto`. Returns `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(PlatformChoice::Auto),
            "amd" | "rocm" | "hip" => Some(PlatformChoice::Only(Platform::Amd)),
            "nvidia" | "cuda" => Some(PlatformChoice::Only(Platform::Nvidia)),
            _ => None,
        }
    }

    /// The platforms to try, in order.
    pub fn candidates(self) -> &'static [Platform] {
        match self {
            PlatformChoice::Auto => &[Platform::Amd, Platform::Nvidia],
            PlatformChoice::Only(Platform::Amd) => &[Platform::Amd],
            PlatformChoice::Only(Platform::Nvidia) => &[Platform::Nvidia],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_known_names() {
        assert_eq!(
            PlatformChoice::parse("amd"),
            Some(PlatformChoice::Only(Platform::Amd))
        );
        assert_eq!(
            PlatformChoice::parse(" NVIDIA "),
            Some(PlatformChoice::Only(Platform::Nvidia))
        );
        assert_eq!(PlatformChoice::parse(""), Some(PlatformChoice::Auto));
        assert_eq!(PlatformChoice::parse("Auto"), Some(PlatformChoice::Auto));
        assert_eq!(PlatformChoice::parse("intel"), None);
    }

    #[test]
    fn auto_tries_amd_first() {
        assert_eq!(
            PlatformChoice::Auto.candidates(),
            &[Platform::Amd, Platform::Nvidia]
        );
    }

    proptest! {
        #[test]
        fn parse_is_case_insensitive(name in prop::sample::select(vec!["amd", "nvidia", "auto"]), upper in any::<u32>()) {
            let mixed: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| if upper >> (i % 32) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect();
            prop_assert_eq!(PlatformChoice::parse(&mixed), PlatformChoice::parse(name));
        }

        #[test]
        fn unknown_names_are_rejected(s in "[a-z]{1,12}") {
            prop_assume!(!["amd", "rocm", "hip", "nvidia", "cuda", "auto"].contains(&s.as_str()));
            prop_assert_eq!(PlatformChoice::parse(&s), None);
        }
    }
}
