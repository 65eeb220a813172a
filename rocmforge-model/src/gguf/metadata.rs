//! [`GgufMetadata`]: the key-value pairs of a GGUF file, with typed getters.

use std::borrow::Cow;
use std::collections::HashMap;

use super::error::{GgufError, Result};
use super::value::{GgufArray, GgufString, GgufValue};

/// The metadata of a GGUF file: key-value pairs in file order, keys unique.
///
/// The typed getters (`get_u32`, `get_f32`, `get_str`, `get_str_array`, …)
/// return [`GgufError::MissingKey`] for an absent key and
/// [`GgufError::TypeMismatch`] naming the key and both types for a value of
/// another type. Integers widen the way llama.cpp's model loader tolerates:
/// an integer getter accepts a value of any integer type that holds a number
/// representable in the type asked for (a `u32` hyper-parameter stored as `i32`
/// or `u64` is read; `-1` asked for as `u32` is [`GgufError::OutOfRange`]).
/// `get_f64` accepts `f32`; `get_f32` does not accept `f64` (it would round).
/// Use [`OptionalKey::optional`](super::OptionalKey::optional) for optional keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GgufMetadata {
    entries: Vec<(String, GgufValue)>,
    index: HashMap<String, usize>,
}

impl GgufMetadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `n` entries.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
        }
    }

    /// Number of key-value pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pairs in file (or insertion) order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &GgufValue)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys in file (or insertion) order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Position of `key` in file order.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// The value of `key`, of any type.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Adds a pair; [`GgufError::DuplicateKey`] when `key` is already present.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<GgufValue>) -> Result<()> {
        let key = key.into();
        if let Some(&first) = self.index.get(&key) {
            return Err(GgufError::DuplicateKey {
                key,
                index: self.entries.len() as u64,
                first_index: first as u64,
                offset: None,
            });
        }
        self.push_new(key, value.into());
        Ok(())
    }

    /// Sets `key` to `value`, replacing a present value in place (keeping its
    /// position) or appending; returns the old value.
    pub fn set(
        &mut self,
        key: impl Into<String>,
        value: impl Into<GgufValue>,
    ) -> Option<GgufValue> {
        let key = key.into();
        let value = value.into();
        match self.index.get(&key) {
            Some(&i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.push_new(key, value);
                None
            }
        }
    }

    /// Removes `key`, returning its value; later pairs move up one position.
    pub fn remove(&mut self, key: &str) -> Option<GgufValue> {
        let i = self.index.remove(key)?;
        let (_, value) = self.entries.remove(i);
        for (k, _) in &self.entries[i..] {
            if let Some(p) = self.index.get_mut(k.as_str()) {
                *p -= 1;
            }
        }
        Some(value)
    }

    /// Appends a key known to be absent.
    pub(crate) fn push_new(&mut self, key: String, value: GgufValue) {
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
    }

    /// The value of `key`, or [`GgufError::MissingKey`].
    pub fn require(&self, key: &str) -> Result<&GgufValue> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    /// `general.architecture` (e.g. `llama`, `qwen2`): the architecture is taken
    /// from this key only, never guessed from tensor names.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// An integer of any integer type, checked to fit `T`.
    fn get_int<T: TryFrom<i128>>(&self, key: &str, expected: &'static str) -> Result<T> {
        let value = self.require(key)?;
        let Some(x) = value.as_integer() else {
            return Err(mismatch(key, expected, value.type_description()));
        };
        T::try_from(x).map_err(|_| GgufError::OutOfRange {
            key: key.to_string(),
            found: value.value_type(),
            value: x,
            at: String::new(),
            expected,
        })
    }

    /// `u8` (any integer type holding a value in `0..=255`).
    pub fn get_u8(&self, key: &str) -> Result<u8> {
        self.get_int(key, "u8")
    }

    /// `u16` (any integer type holding a value that fits).
    pub fn get_u16(&self, key: &str) -> Result<u16> {
        self.get_int(key, "u16")
    }

    /// `u32` (any integer type holding a value that fits): `get_u32("llama.block_count")`.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_int(key, "u32")
    }

    /// `i32` (any integer type holding a value that fits).
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.get_int(key, "i32")
    }

    /// `u64` (any integer type holding a non-negative value).
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_int(key, "u64")
    }

    /// `i64` (any integer type holding a value that fits).
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.get_int(key, "i64")
    }

    /// An integer as `usize` (any integer type holding a value that fits).
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        self.get_int(key, "usize")
    }

    /// `f32` (only `f32`: an `f64` would be rounded).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        match self.require(key)? {
            GgufValue::F32(x) => Ok(*x),
            v => Err(mismatch(key, "f32", v.type_description())),
        }
    }

    /// `f64` (`f64`, or `f32` widened exactly).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        match self.require(key)? {
            GgufValue::F64(x) => Ok(*x),
            GgufValue::F32(x) => Ok(f64::from(*x)),
            v => Err(mismatch(key, "f64", v.type_description())),
        }
    }

    /// `bool`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            GgufValue::Bool(x) => Ok(*x),
            v => Err(mismatch(key, "bool", v.type_description())),
        }
    }

    /// A string value as stored (possibly not UTF-8).
    pub fn get_string(&self, key: &str) -> Result<&GgufString> {
        match self.require(key)? {
            GgufValue::String(s) => Ok(s),
            v => Err(mismatch(key, "string", v.type_description())),
        }
    }

    /// A string value as `&str`; [`GgufError::ValueNotUtf8`] when it is not UTF-8.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let s = self.get_string(key)?;
        s.as_str().map_err(|e| GgufError::ValueNotUtf8 {
            key: key.to_string(),
            at: String::new(),
            valid_up_to: e.valid_up_to(),
        })
    }

    /// An array of any element type.
    pub fn get_array(&self, key: &str) -> Result<&GgufArray> {
        match self.require(key)? {
            GgufValue::Array(a) => Ok(a),
            v => Err(mismatch(key, "array", v.type_description())),
        }
    }

    /// An array of strings, as stored (possibly not UTF-8).
    pub fn get_string_array(&self, key: &str) -> Result<&[GgufString]> {
        match self.get_array(key)? {
            GgufArray::String(v) => Ok(v),
            a => Err(mismatch(key, "array of string", a.type_description())),
        }
    }

    /// An array of strings as `&str`s; [`GgufError::ValueNotUtf8`] naming the
    /// first element that is not UTF-8.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let strings = self.get_string_array(key)?;
        strings
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str().map_err(|e| GgufError::ValueNotUtf8 {
                    key: key.to_string(),
                    at: format!(" (element {i})"),
                    valid_up_to: e.valid_up_to(),
                })
            })
            .collect()
    }

    /// An array of `f32`.
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32]> {
        match self.get_array(key)? {
            GgufArray::F32(v) => Ok(v),
            a => Err(mismatch(key, "array of f32", a.type_description())),
        }
    }

    /// An array of `i32`: borrowed when stored as `i32`, converted (each element
    /// checked) from any other integer element type.
    pub fn get_i32_array(&self, key: &str) -> Result<Cow<'_, [i32]>> {
        match self.get_array(key)? {
            GgufArray::I32(v) => Ok(Cow::Borrowed(v)),
            a => convert_int_array(key, a, "array of i32", "i32").map(Cow::Owned),
        }
    }

    /// An array of `u32`: borrowed when stored as `u32`, converted (each element
    /// checked) from any other integer element type.
    pub fn get_u32_array(&self, key: &str) -> Result<Cow<'_, [u32]>> {
        match self.get_array(key)? {
            GgufArray::U32(v) => Ok(Cow::Borrowed(v)),
            a => convert_int_array(key, a, "array of u32", "u32").map(Cow::Owned),
        }
    }
}

/// [`GgufError::TypeMismatch`].
fn mismatch(key: &str, expected: &'static str, found: String) -> GgufError {
    GgufError::TypeMismatch {
        key: key.to_string(),
        expected,
        found,
    }
}

/// Converts an integer array element by element into `T`.
fn convert_int_array<T: TryFrom<i128>>(
    key: &str,
    array: &GgufArray,
    expected_array: &'static str,
    expected_elem: &'static str,
) -> Result<Vec<T>> {
    fn conv<S: Copy + Into<i128>, T: TryFrom<i128>>(
        key: &str,
        v: &[S],
        found: super::GgufValueType,
        expected: &'static str,
    ) -> Result<Vec<T>> {
        v.iter()
            .enumerate()
            .map(|(i, &x)| {
                let x: i128 = x.into();
                T::try_from(x).map_err(|_| GgufError::OutOfRange {
                    key: key.to_string(),
                    found,
                    value: x,
                    at: format!(" (element {i})"),
                    expected,
                })
            })
            .collect()
    }
    let found = array.elem_type();
    match array {
        GgufArray::U8(v) => conv(key, v, found, expected_elem),
        GgufArray::I8(v) => conv(key, v, found, expected_elem),
        GgufArray::U16(v) => conv(key, v, found, expected_elem),
        GgufArray::I16(v) => conv(key, v, found, expected_elem),
        GgufArray::U32(v) => conv(key, v, found, expected_elem),
        GgufArray::I32(v) => conv(key, v, found, expected_elem),
        GgufArray::U64(v) => conv(key, v, found, expected_elem),
        GgufArray::I64(v) => conv(key, v, found, expected_elem),
        a => Err(mismatch(key, expected_array, a.type_description())),
    }
}
