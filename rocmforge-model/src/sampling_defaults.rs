//! The sampling settings a model file recommends (`general.sampling.*`).
//!
//! llama.cpp defines these keys (gguf-py `Keys.General.SAMPLING_*`) so that a GGUF can
//! carry the settings its authors recommend; `llama-cli` and `llama-server` start from them
//! when the user gives none. rocmforge reads the same keys, with the same meaning, and
//! applies them under whatever the caller sets explicitly.
//!
//! A GGUF is untrusted: a key that is present but holds a non-number or a value out of
//! range is an error naming the key, not a silent fallback.

use crate::generate::SamplingParams;
use crate::gguf::{GgufMetadata, GgufValue};
use crate::{ModelError, Result};

/// `general.sampling.temp`.
pub const KEY_TEMPERATURE: &str = "general.sampling.temp";
/// `general.sampling.top_k`.
pub const KEY_TOP_K: &str = "general.sampling.top_k";
/// `general.sampling.top_p`.
pub const KEY_TOP_P: &str = "general.sampling.top_p";
/// `general.sampling.min_p`.
pub const KEY_MIN_P: &str = "general.sampling.min_p";
/// `general.sampling.penalty_repeat`.
pub const KEY_REPEAT_PENALTY: &str = "general.sampling.penalty_repeat";
/// `general.sampling.penalty_last_n`.
pub const KEY_REPEAT_LAST_N: &str = "general.sampling.penalty_last_n";

/// Sampling settings, each one optional: what a model file recommends, or a program's
/// fallback for files that recommend nothing. [`SamplingDefaults::apply`] writes the
/// present ones into a [`SamplingParams`].
///
/// ```
/// use rocmforge_model::generate::{SamplingDefaults, SamplingParams};
///
/// // What SmolLM2-Instruct's model card uses (temperature 0.2, top-p 0.9), for files
/// // that carry no `general.sampling.*` keys.
/// let card = SamplingDefaults { temperature: Some(0.2), top_p: Some(0.9), ..Default::default() };
/// let from_file = SamplingDefaults::default(); // SamplingDefaults::from_metadata(file.metadata())?
/// let params = from_file.or(card).apply(SamplingParams::default());
/// assert_eq!((params.temperature, params.top_p), (0.2, 0.9));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SamplingDefaults {
    /// Temperature (`0` is greedy).
    pub temperature: Option<f32>,
    /// Top-k (`0` keeps every token).
    pub top_k: Option<usize>,
    /// Top-p (`1` keeps every token).
    pub top_p: Option<f32>,
    /// Min-p (`0` keeps every token).
    pub min_p: Option<f32>,
    /// Repetition penalty (`1` is none).
    pub repeat_penalty: Option<f32>,
    /// How many recent tokens the penalties look at.
    pub repeat_last_n: Option<usize>,
}

impl SamplingDefaults {
    /// The `general.sampling.*` keys of a GGUF's metadata. Absent keys stay `None`;
    /// llama.cpp's "disabled" values map to rocmforge's (`top_k <= 0` keeps every token).
    /// The keys rocmforge does not sample with (`sequence`, XTC, mirostat) are ignored.
    pub fn from_metadata(metadata: &GgufMetadata) -> Result<Self> {
        let top_k = integer(metadata, KEY_TOP_K)?.map(|k| usize::try_from(k).unwrap_or(0));
        let repeat_last_n = match integer(metadata, KEY_REPEAT_LAST_N)? {
            None => None,
            Some(n) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            // llama.cpp reads -1 as "the whole context".
            Some(-1) => Some(usize::MAX),
            Some(n) => return Err(invalid(KEY_REPEAT_LAST_N, &n.to_string(), "-1 or more")),
        };
        Ok(SamplingDefaults {
            temperature: number_in(metadata, KEY_TEMPERATURE, 0.0, f32::MAX, "0 or more")?,
            top_k,
            top_p: number_in(metadata, KEY_TOP_P, 0.0, 1.0, "between 0 and 1")?,
            min_p: number_in(metadata, KEY_MIN_P, 0.0, 1.0, "between 0 and 1")?,
            repeat_penalty: number_in(
                metadata,
                KEY_REPEAT_PENALTY,
                f32::MIN_POSITIVE,
                f32::MAX,
                "above 0",
            )?,
            repeat_last_n,
        })
    }

    /// True when no setting is present.
    pub fn is_empty(&self) -> bool {
        *self == SamplingDefaults::default()
    }

    /// Each setting from `self` where present, else from `fallback`.
    pub fn or(self, fallback: SamplingDefaults) -> SamplingDefaults {
        SamplingDefaults {
            temperature: self.temperature.or(fallback.temperature),
            top_k: self.top_k.or(fallback.top_k),
            top_p: self.top_p.or(fallback.top_p),
            min_p: self.min_p.or(fallback.min_p),
            repeat_penalty: self.repeat_penalty.or(fallback.repeat_penalty),
            repeat_last_n: self.repeat_last_n.or(fallback.repeat_last_n),
        }
    }

    /// `params` with every present setting written over it.
    pub fn apply(&self, mut params: SamplingParams) -> SamplingParams {
        if let Some(t) = self.temperature {
            params.temperature = t;
        }
        if let Some(k) = self.top_k {
            params.top_k = k;
        }
        if let Some(p) = self.top_p {
            params.top_p = p;
        }
        if let Some(p) = self.min_p {
            params.min_p = p;
        }
        if let Some(r) = self.repeat_penalty {
            params.repeat_penalty = r;
        }
        if let Some(n) = self.repeat_last_n {
            params.repeat_last_n = n;
        }
        params
    }
}

/// An integer key (any integer type; a float holding a whole number is accepted too, as
/// llama.cpp parses the value's text).
fn integer(metadata: &GgufMetadata, key: &str) -> Result<Option<i64>> {
    let Some(value) = metadata.get(key) else {
        return Ok(None);
    };
    if let Some(i) = value.as_integer() {
        return i64::try_from(i)
            .map(Some)
            .map_err(|_| invalid(key, &i.to_string(), "an i64"));
    }
    match float(value) {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => Ok(Some(x as i64)),
        _ => Err(invalid(key, &value.type_description(), "an integer")),
    }
}

/// A number key, checked to lie in `lo..=hi`.
fn number_in(
    metadata: &GgufMetadata,
    key: &str,
    lo: f32,
    hi: f32,
    expected: &str,
) -> Result<Option<f32>> {
    let Some(value) = metadata.get(key) else {
        return Ok(None);
    };
    let x = float(value)
        .or_else(|| value.as_integer().map(|i| i as f64))
        .ok_or_else(|| invalid(key, &value.type_description(), "a number"))?;
    let x32 = x as f32;
    if !x32.is_finite() || x32 < lo || x32 > hi {
        return Err(invalid(key, &x.to_string(), expected));
    }
    Ok(Some(x32))
}

fn float(value: &GgufValue) -> Option<f64> {
    match value {
        GgufValue::F32(x) => Some(f64::from(*x)),
        GgufValue::F64(x) => Some(*x),
        _ => None,
    }
}

fn invalid(key: &str, got: &str, expected: &str) -> ModelError {
    ModelError::InvalidSampling(format!(
        "the model file's {key} is {got}; expected {expected}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(entries: &[(&str, GgufValue)]) -> GgufMetadata {
        let mut m = GgufMetadata::new();
        for (k, v) in entries {
            m.insert(*k, v.clone()).unwrap();
        }
        m
    }

    #[test]
    fn absent_keys_give_empty_defaults_that_change_nothing() {
        let d = SamplingDefaults::from_metadata(&GgufMetadata::new()).unwrap();
        assert!(d.is_empty());
        assert_eq!(
            d.apply(SamplingParams::default()),
            SamplingParams::default()
        );
    }

    #[test]
    fn every_key_is_read_with_llama_cpp_meaning() {
        let d = SamplingDefaults::from_metadata(&metadata(&[
            (KEY_TEMPERATURE, GgufValue::F32(0.6)),
            (KEY_TOP_K, GgufValue::I32(20)),
            (KEY_TOP_P, GgufValue::F32(0.95)),
            (KEY_MIN_P, GgufValue::F64(0.0)),
            (KEY_REPEAT_PENALTY, GgufValue::F32(1.1)),
            (KEY_REPEAT_LAST_N, GgufValue::I32(-1)),
            (
                "general.sampling.sequence",
                GgufValue::from("top_k;temperature"),
            ),
        ]))
        .unwrap();
        assert_eq!(
            d,
            SamplingDefaults {
                temperature: Some(0.6),
                top_k: Some(20),
                top_p: Some(0.95),
                min_p: Some(0.0),
                repeat_penalty: Some(1.1),
                repeat_last_n: Some(usize::MAX),
            }
        );
        let p = d.apply(SamplingParams::default());
        assert_eq!(
            (p.temperature, p.top_k, p.top_p, p.min_p),
            (0.6, 20, 0.95, 0.0)
        );
        // llama.cpp's "top_k <= 0: disabled" is rocmforge's 0.
        let d = SamplingDefaults::from_metadata(&metadata(&[(KEY_TOP_K, GgufValue::I32(-1))]));
        assert_eq!(d.unwrap().top_k, Some(0));
        // Whole-number floats for integer keys, integers for float keys.
        let d = SamplingDefaults::from_metadata(&metadata(&[
            (KEY_TOP_K, GgufValue::F32(64.0)),
            (KEY_TEMPERATURE, GgufValue::U32(1)),
        ]))
        .unwrap();
        assert_eq!((d.top_k, d.temperature), (Some(64), Some(1.0)));
    }

    #[test]
    fn hostile_values_are_errors_naming_the_key() {
        for (key, value) in [
            (KEY_TEMPERATURE, GgufValue::F32(f32::NAN)),
            (KEY_TEMPERATURE, GgufValue::F32(-0.5)),
            (KEY_TEMPERATURE, GgufValue::F64(1e300)),
            (KEY_TOP_P, GgufValue::F32(1.5)),
            (KEY_MIN_P, GgufValue::from("high")),
            (KEY_REPEAT_PENALTY, GgufValue::F32(0.0)),
            (KEY_REPEAT_LAST_N, GgufValue::I32(-7)),
            (KEY_TOP_K, GgufValue::F32(2.5)),
            (KEY_TOP_K, GgufValue::Bool(true)),
        ] {
            let err = SamplingDefaults::from_metadata(&metadata(&[(key, value.clone())]))
                .expect_err(&format!("{key} = {value:?} must be rejected"));
            assert!(matches!(err, ModelError::InvalidSampling(_)), "{err}");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn the_file_wins_over_the_fallback_field_by_field() {
        let file = SamplingDefaults {
            top_k: Some(64),
            ..Default::default()
        };
        let card = SamplingDefaults {
            temperature: Some(0.2),
            top_k: Some(40),
            ..Default::default()
        };
        let both = file.or(card);
        assert_eq!((both.temperature, both.top_k), (Some(0.2), Some(64)));
    }
}
