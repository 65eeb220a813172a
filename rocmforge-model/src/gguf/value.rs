//! Metadata values: [`GgufValueType`], [`GgufValue`], [`GgufArray`] and [`GgufString`].

use std::borrow::Cow;
use std::fmt;

/// The type tag of a GGUF metadata value (`gguf_type` in ggml), with ggml's ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum GgufValueType {
    /// `GGUF_TYPE_UINT8`.
    U8 = 0,
    /// `GGUF_TYPE_INT8`.
    I8 = 1,
    /// `GGUF_TYPE_UINT16`.
    U16 = 2,
    /// `GGUF_TYPE_INT16`.
    I16 = 3,
    /// `GGUF_TYPE_UINT32`.
    U32 = 4,
    /// `GGUF_TYPE_INT32`.
    I32 = 5,
    /// `GGUF_TYPE_FLOAT32`.
    F32 = 6,
    /// `GGUF_TYPE_BOOL` (one byte, 0 or 1).
    Bool = 7,
    /// `GGUF_TYPE_STRING` (u64 byte length, then the bytes, no NUL).
    String = 8,
    /// `GGUF_TYPE_ARRAY` (u32 element type, u64 element count, then the elements).
    Array = 9,
    /// `GGUF_TYPE_UINT64`.
    U64 = 10,
    /// `GGUF_TYPE_INT64`.
    I64 = 11,
    /// `GGUF_TYPE_FLOAT64`.
    F64 = 12,
}

impl GgufValueType {
    /// Every value type, in id order.
    pub const ALL: [GgufValueType; 13] = [
        GgufValueType::U8,
        GgufValueType::I8,
        GgufValueType::U16,
        GgufValueType::I16,
        GgufValueType::U32,
        GgufValueType::I32,
        GgufValueType::F32,
        GgufValueType::Bool,
        GgufValueType::String,
        GgufValueType::Array,
        GgufValueType::U64,
        GgufValueType::I64,
        GgufValueType::F64,
    ];

    /// The type with GGUF id `id`, or `None` for an id outside `0..=12`.
    pub const fn from_id(id: u32) -> Option<Self> {
        use GgufValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The GGUF id of the type.
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// A short name: `u8`, `i32`, `f32`, `bool`, `string`, `array`, …
    pub const fn name(self) -> &'static str {
        use GgufValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// The fewest bytes one value of this type takes in a file: the width of a
    /// number, 8 for a string (its length), 12 for an array (type and count).
    /// Counts read from a file are checked against this before anything is allocated.
    pub const fn min_encoded_size(self) -> usize {
        use GgufValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
            String => 8,
            Array => 12,
        }
    }

    /// Whether the type is one of the eight integer types.
    pub const fn is_integer(self) -> bool {
        use GgufValueType::*;
        matches!(self, U8 | I8 | U16 | I16 | U32 | I32 | U64 | I64)
    }
}

impl fmt::Display for GgufValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A GGUF string: bytes with a length, meant to be UTF-8.
///
/// Keys and tensor names must be valid UTF-8 (the reader rejects them otherwise),
/// but string *values* are kept exactly as stored, because llama.cpp treats them
/// as byte strings and a converted vocabulary may hold a token that is not valid
/// UTF-8 on its own. [`GgufString::as_str`] checks on access, and the typed
/// getters ([`GgufMetadata::get_str`](super::GgufMetadata::get_str) …) return an
/// error naming the key (and the element) when the bytes are not UTF-8;
/// [`GgufString::as_bytes`] always gives the raw bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GgufString(Vec<u8>);

impl GgufString {
    /// A string of arbitrary bytes (they need not be UTF-8).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The string, or the UTF-8 error when the bytes are not valid UTF-8.
    pub fn as_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// The string with invalid UTF-8 replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for GgufString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Ok(s) => fmt::Debug::fmt(s, f),
            Err(_) => write!(f, "b{:?}", self.to_string_lossy()),
        }
    }
}

impl fmt::Display for GgufString {
    /// Writes the string, with invalid UTF-8 replaced by U+FFFD.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl From<&str> for GgufString {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl From<String> for GgufString {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}

impl PartialEq<str> for GgufString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for GgufString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// One metadata value.
///
/// Equality compares floats by their bits (so `NaN == NaN` for the same NaN and
/// `0.0 != -0.0`): two values are equal exactly when they are written the same.
#[derive(Clone, Debug)]
pub enum GgufValue {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `f32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// `string`.
    String(GgufString),
    /// `array` (of any type, including arrays).
    Array(GgufArray),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
}

impl GgufValue {
    /// The type tag of the value.
    pub fn value_type(&self) -> GgufValueType {
        use GgufValue as V;
        match self {
            V::U8(_) => GgufValueType::U8,
            V::I8(_) => GgufValueType::I8,
            V::U16(_) => GgufValueType::U16,
            V::I16(_) => GgufValueType::I16,
            V::U32(_) => GgufValueType::U32,
            V::I32(_) => GgufValueType::I32,
            V::F32(_) => GgufValueType::F32,
            V::Bool(_) => GgufValueType::Bool,
            V::String(_) => GgufValueType::String,
            V::Array(_) => GgufValueType::Array,
            V::U64(_) => GgufValueType::U64,
            V::I64(_) => GgufValueType::I64,
            V::F64(_) => GgufValueType::F64,
        }
    }

    /// The type as error messages name it: `u32`, `string`, `array of i32`,
    /// `array of array`.
    pub fn type_description(&self) -> String {
        match self {
            GgufValue::Array(a) => a.type_description(),
            v => v.value_type().name().to_string(),
        }
    }

    /// The value of an integer type, widened to `i128`; `None` for the other types.
    pub fn as_integer(&self) -> Option<i128> {
        use GgufValue as V;
        Some(match *self {
            V::U8(x) => x.into(),
            V::I8(x) => x.into(),
            V::U16(x) => x.into(),
            V::I16(x) => x.into(),
            V::U32(x) => x.into(),
            V::I32(x) => x.into(),
            V::U64(x) => x.into(),
            V::I64(x) => x.into(),
            _ => return None,
        })
    }

    /// The string, when the value is a string.
    pub fn as_string(&self) -> Option<&GgufString> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The array, when the value is an array.
    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Depth of array nesting: 0 for a scalar or string, 1 for an array of
    /// scalars, 2 for an array of arrays of scalars, …
    pub fn array_depth(&self) -> usize {
        match self {
            GgufValue::Array(a) => a.depth(),
            _ => 0,
        }
    }
}

impl PartialEq for GgufValue {
    fn eq(&self, other: &Self) -> bool {
        use GgufValue as V;
        match (self, other) {
            (V::U8(a), V::U8(b)) => a == b,
            (V::I8(a), V::I8(b)) => a == b,
            (V::U16(a), V::U16(b)) => a == b,
            (V::I16(a), V::I16(b)) => a == b,
            (V::U32(a), V::U32(b)) => a == b,
            (V::I32(a), V::I32(b)) => a == b,
            (V::F32(a), V::F32(b)) => a.to_bits() == b.to_bits(),
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::String(a), V::String(b)) => a == b,
            (V::Array(a), V::Array(b)) => a == b,
            (V::U64(a), V::U64(b)) => a == b,
            (V::I64(a), V::I64(b)) => a == b,
            (V::F64(a), V::F64(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

/// A metadata array: a typed vector per element type.
///
/// An array of arrays holds [`GgufArray`]s, each with its own element type (GGUF
/// stores the element type of every inner array). Equality compares floats by bits.
#[derive(Clone, Debug)]
pub enum GgufArray {
    /// Array of `u8`.
    U8(Vec<u8>),
    /// Array of `i8`.
    I8(Vec<i8>),
    /// Array of `u16`.
    U16(Vec<u16>),
    /// Array of `i16`.
    I16(Vec<i16>),
    /// Array of `u32`.
    U32(Vec<u32>),
    /// Array of `i32`.
    I32(Vec<i32>),
    /// Array of `f32`.
    F32(Vec<f32>),
    /// Array of `bool`.
    Bool(Vec<bool>),
    /// Array of strings.
    String(Vec<GgufString>),
    /// Array of arrays.
    Array(Vec<GgufArray>),
    /// Array of `u64`.
    U64(Vec<u64>),
    /// Array of `i64`.
    I64(Vec<i64>),
    /// Array of `f64`.
    F64(Vec<f64>),
}

/// Applies `$body` to the vector inside any variant of a [`GgufArray`].
macro_rules! with_vec {
    ($arr:expr, $v:ident => $body:expr) => {
        match $arr {
            GgufArray::U8($v) => $body,
            GgufArray::I8($v) => $body,
            GgufArray::U16($v) => $body,
            GgufArray::I16($v) => $body,
            GgufArray::U32($v) => $body,
            GgufArray::I32($v) => $body,
            GgufArray::F32($v) => $body,
            GgufArray::Bool($v) => $body,
            GgufArray::String($v) => $body,
            GgufArray::Array($v) => $body,
            GgufArray::U64($v) => $body,
            GgufArray::I64($v) => $body,
            GgufArray::F64($v) => $body,
        }
    };
}

impl GgufArray {
    /// The element type.
    pub fn elem_type(&self) -> GgufValueType {
        use GgufArray as A;
        match self {
            A::U8(_) => GgufValueType::U8,
            A::I8(_) => GgufValueType::I8,
            A::U16(_) => GgufValueType::U16,
            A::I16(_) => GgufValueType::I16,
            A::U32(_) => GgufValueType::U32,
            A::I32(_) => GgufValueType::I32,
            A::F32(_) => GgufValueType::F32,
            A::Bool(_) => GgufValueType::Bool,
            A::String(_) => GgufValueType::String,
            A::Array(_) => GgufValueType::Array,
            A::U64(_) => GgufValueType::U64,
            A::I64(_) => GgufValueType::I64,
            A::F64(_) => GgufValueType::F64,
        }
    }

    /// An empty array of element type `ty`.
    pub fn empty(ty: GgufValueType) -> Self {
        use GgufValueType as T;
        match ty {
            T::U8 => GgufArray::U8(Vec::new()),
            T::I8 => GgufArray::I8(Vec::new()),
            T::U16 => GgufArray::U16(Vec::new()),
            T::I16 => GgufArray::I16(Vec::new()),
            T::U32 => GgufArray::U32(Vec::new()),
            T::I32 => GgufArray::I32(Vec::new()),
            T::F32 => GgufArray::F32(Vec::new()),
            T::Bool => GgufArray::Bool(Vec::new()),
            T::String => GgufArray::String(Vec::new()),
            T::Array => GgufArray::Array(Vec::new()),
            T::U64 => GgufArray::U64(Vec::new()),
            T::I64 => GgufArray::I64(Vec::new()),
            T::F64 => GgufArray::F64(Vec::new()),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_vec!(self, v => v.len())
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The type as error messages name it: `array of string`, `array of array`.
    pub fn type_description(&self) -> String {
        format!("array of {}", self.elem_type().name())
    }

    /// Nesting depth: 1 for an array of scalars or strings, 1 + the deepest inner
    /// array for an array of arrays (an empty array of arrays counts 1).
    pub fn depth(&self) -> usize {
        match self {
            GgufArray::Array(inner) => 1 + inner.iter().map(GgufArray::depth).max().unwrap_or(0),
            _ => 1,
        }
    }

    /// Element `i` as a [`GgufValue`] (cloned), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<GgufValue> {
        use GgufArray as A;
        use GgufValue as V;
        Some(match self {
            A::U8(v) => V::U8(*v.get(i)?),
            A::I8(v) => V::I8(*v.get(i)?),
            A::U16(v) => V::U16(*v.get(i)?),
            A::I16(v) => V::I16(*v.get(i)?),
            A::U32(v) => V::U32(*v.get(i)?),
            A::I32(v) => V::I32(*v.get(i)?),
            A::F32(v) => V::F32(*v.get(i)?),
            A::Bool(v) => V::Bool(*v.get(i)?),
            A::String(v) => V::String(v.get(i)?.clone()),
            A::Array(v) => V::Array(v.get(i)?.clone()),
            A::U64(v) => V::U64(*v.get(i)?),
            A::I64(v) => V::I64(*v.get(i)?),
            A::F64(v) => V::F64(*v.get(i)?),
        })
    }
}

impl PartialEq for GgufArray {
    fn eq(&self, other: &Self) -> bool {
        use GgufArray as A;
        fn bits_eq<T: Copy, B: PartialEq>(a: &[T], b: &[T], bits: fn(T) -> B) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| bits(x) == bits(y))
        }
        match (self, other) {
            (A::U8(a), A::U8(b)) => a == b,
            (A::I8(a), A::I8(b)) => a == b,
            (A::U16(a), A::U16(b)) => a == b,
            (A::I16(a), A::I16(b)) => a == b,
            (A::U32(a), A::U32(b)) => a == b,
            (A::I32(a), A::I32(b)) => a == b,
            (A::F32(a), A::F32(b)) => bits_eq(a, b, f32::to_bits),
            (A::Bool(a), A::Bool(b)) => a == b,
            (A::String(a), A::String(b)) => a == b,
            (A::Array(a), A::Array(b)) => a == b,
            (A::U64(a), A::U64(b)) => a == b,
            (A::I64(a), A::I64(b)) => a == b,
            (A::F64(a), A::F64(b)) => bits_eq(a, b, f64::to_bits),
            _ => false,
        }
    }
}

/// `From` conversions of scalars and vectors into values and arrays.
macro_rules! from_impls {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for GgufValue {
            fn from(x: $t) -> Self {
                GgufValue::$variant(x)
            }
        }
        impl From<Vec<$t>> for GgufArray {
            fn from(v: Vec<$t>) -> Self {
                GgufArray::$variant(v)
            }
        }
        impl From<&[$t]> for GgufArray {
            fn from(v: &[$t]) -> Self {
                GgufArray::$variant(v.to_vec())
            }
        }
        impl From<Vec<$t>> for GgufValue {
            fn from(v: Vec<$t>) -> Self {
                GgufValue::Array(GgufArray::$variant(v))
            }
        }
        impl From<&[$t]> for GgufValue {
            fn from(v: &[$t]) -> Self {
                GgufValue::Array(GgufArray::$variant(v.to_vec()))
            }
        }
    )*};
}

from_impls!(
    u8 => U8,
    i8 => I8,
    u16 => U16,
    i16 => I16,
    u32 => U32,
    i32 => I32,
    f32 => F32,
    bool => Bool,
    u64 => U64,
    i64 => I64,
    f64 => F64,
    GgufString => String,
    GgufArray => Array,
);

impl From<&str> for GgufValue {
    fn from(s: &str) -> Self {
        GgufValue::String(s.into())
    }
}

impl From<String> for GgufValue {
    fn from(s: String) -> Self {
        GgufValue::String(s.into())
    }
}

impl From<Vec<String>> for GgufArray {
    fn from(v: Vec<String>) -> Self {
        GgufArray::String(v.into_iter().map(GgufString::from).collect())
    }
}

impl From<Vec<&str>> for GgufArray {
    fn from(v: Vec<&str>) -> Self {
        GgufArray::String(v.into_iter().map(GgufString::from).collect())
    }
}

impl From<&[&str]> for GgufArray {
    fn from(v: &[&str]) -> Self {
        GgufArray::String(v.iter().copied().map(GgufString::from).collect())
    }
}

impl From<Vec<String>> for GgufValue {
    fn from(v: Vec<String>) -> Self {
        GgufValue::Array(v.into())
    }
}

impl From<Vec<&str>> for GgufValue {
    fn from(v: Vec<&str>) -> Self {
        GgufValue::Array(v.into())
    }
}

impl From<&[&str]> for GgufValue {
    fn from(v: &[&str]) -> Self {
        GgufValue::Array(v.into())
    }
}
