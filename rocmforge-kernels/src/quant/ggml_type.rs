//! [`GgmlType`]: every tensor type of ggml, with ggml's numeric ids, names and sizes.
//!
//! Ids, names, block sizes and type sizes are those of ggml's own sources
//! (`enum ggml_type` in ggml.h, `type_traits` in ggml.c, the block structs of
//! ggml-common.h), as vendored in llama-cpp-python 0.3.36 (GGML_TYPE_COUNT = 43).
//! `tests/fixtures/quant/types.tsv` holds the table that ggml's
//! `ggml_get_type_traits` returns, and `tests/quant_fixtures.rs` checks this
//! file against it for every id.

use std::fmt;

use crate::error::shape_error;
use crate::Result;

/// A ggml tensor type, with the numeric id that GGUF files store.
///
/// The variant names are ggml's own (`GGML_TYPE_Q4_K` → [`GgmlType::Q4_K`]) so that
/// code here can be read side by side with ggml's. Ids 4, 5 (Q4_2, Q4_3), 31–33
/// (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) and 36–38 (IQ4_NL_4_4, …) were removed from
/// ggml and have no variant: [`GgmlType::from_id`] returns `None` for them.
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32 = 0,
    /// 16-bit IEEE float (binary16).
    F16 = 1,
    /// 32 weights: f16 scale, 4-bit quants (18 bytes).
    Q4_0 = 2,
    /// 32 weights: f16 scale and min, 4-bit quants (20 bytes).
    Q4_1 = 3,
    /// 32 weights: f16 scale, 5-bit quants (22 bytes).
    Q5_0 = 6,
    /// 32 weights: f16 scale and min, 5-bit quants (24 bytes).
    Q5_1 = 7,
    /// 32 weights: f16 scale, 8-bit quants (34 bytes).
    Q8_0 = 8,
    /// 32 weights: f16 scale and f16 scaled sum, 8-bit quants (36 bytes); an
    /// intermediate type of ggml's dot products.
    Q8_1 = 9,
    /// 256-weight super-block, 2-bit quants (84 bytes).
    Q2_K = 10,
    /// 256-weight super-block, 3-bit quants (110 bytes).
    Q3_K = 11,
    /// 256-weight super-block, 4-bit quants (144 bytes).
    Q4_K = 12,
    /// 256-weight super-block, 5-bit quants (176 bytes).
    Q5_K = 13,
    /// 256-weight super-block, 6-bit quants (210 bytes).
    Q6_K = 14,
    /// 256-weight super-block, f32 scale, 8-bit quants and sums (292 bytes); an
    /// intermediate type of ggml's dot products.
    Q8_K = 15,
    /// Importance-matrix 2-bit, 2.0625 bits per weight (66 bytes per 256).
    IQ2_XXS = 16,
    /// Importance-matrix 2-bit, 2.3125 bits per weight (74 bytes per 256).
    IQ2_XS = 17,
    /// Importance-matrix 3-bit, 3.0625 bits per weight (98 bytes per 256).
    IQ3_XXS = 18,
    /// Importance-matrix 1-bit, 1.5625 bits per weight (50 bytes per 256).
    IQ1_S = 19,
    /// Non-linear 4-bit, 32 weights (18 bytes).
    IQ4_NL = 20,
    /// Importance-matrix 3-bit, 3.4375 bits per weight (110 bytes per 256).
    IQ3_S = 21,
    /// Importance-matrix 2-bit, 2.5625 bits per weight (82 bytes per 256).
    IQ2_S = 22,
    /// Non-linear 4-bit super-block (136 bytes per 256).
    IQ4_XS = 23,
    /// 8-bit signed integer.
    I8 = 24,
    /// 16-bit signed integer.
    I16 = 25,
    /// 32-bit signed integer.
    I32 = 26,
    /// 64-bit signed integer.
    I64 = 27,
    /// 64-bit IEEE float.
    F64 = 28,
    /// Importance-matrix 1-bit, 1.75 bits per weight (56 bytes per 256).
    IQ1_M = 29,
    /// bfloat16 (the upper half of an f32).
    BF16 = 30,
    /// Ternary, 1.6875 bits per weight (54 bytes per 256).
    TQ1_0 = 34,
    /// Ternary, 2.0625 bits per weight (66 bytes per 256).
    TQ2_0 = 35,
    /// Microscaling FP4: E8M0 scale, 32 E2M1 values (17 bytes).
    MXFP4 = 39,
    /// NVIDIA FP4: four UE4M3 scales, 64 E2M1 values (36 bytes).
    NVFP4 = 40,
    /// 1-bit: f16 scale, 128 sign bits (18 bytes).
    Q1_0 = 41,
    /// 2-bit: f16 scale, 64 two-bit values (18 bytes).
    Q2_0 = 42,
}

/// Everything ggml's `type_traits` says about one type.
struct Traits {
    /// ggml's `type_name`.
    name: &'static str,
    /// ggml's `blck_size`: elements per block.
    block_size: usize,
    /// ggml's `type_size`: bytes per block.
    type_size: usize,
    /// ggml's `is_quantized`.
    quantized: bool,
}

/// Shorthand constructor for the table below.
const fn t(name: &'static str, block_size: usize, type_size: usize, quantized: bool) -> Traits {
    Traits {
        name,
        block_size,
        type_size,
        quantized,
    }
}

impl GgmlType {
    /// Every type, in id order.
    pub const ALL: [GgmlType; 35] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ3_XXS,
        GgmlType::IQ1_S,
        GgmlType::IQ4_NL,
        GgmlType::IQ3_S,
        GgmlType::IQ2_S,
        GgmlType::IQ4_XS,
        GgmlType::I8,
        GgmlType::I16,
        GgmlType::I32,
        GgmlType::I64,
        GgmlType::F64,
        GgmlType::IQ1_M,
        GgmlType::BF16,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
        GgmlType::MXFP4,
        GgmlType::NVFP4,
        GgmlType::Q1_0,
        GgmlType::Q2_0,
    ];

    /// The type with ggml id `id`, or `None` for an id that ggml never had or removed.
    pub const fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            39 => MXFP4,
            40 => NVFP4,
            41 => Q1_0,
            42 => Q2_0,
            _ => return None,
        })
    }

    /// The type whose ggml name ([`GgmlType::name`]) is `name` (case-sensitive,
    /// as ggml spells it: `"q4_K"`, `"bf16"`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// ggml's numeric id (what a GGUF tensor header stores).
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// ggml's row of `type_traits` for this type.
    const fn traits(self) -> Traits {
        use GgmlType::*;
        // Values as ggml's ggml_get_type_traits reports them (see types.tsv).
        match self {
            F32 => t("f32", 1, 4, false),
            F16 => t("f16", 1, 2, false),
            Q4_0 => t("q4_0", 32, 18, true),
            Q4_1 => t("q4_1", 32, 20, true),
            Q5_0 => t("q5_0", 32, 22, true),
            Q5_1 => t("q5_1", 32, 24, true),
            Q8_0 => t("q8_0", 32, 34, true),
            Q8_1 => t("q8_1", 32, 36, true),
            Q2_K => t("q2_K", 256, 84, true),
            Q3_K => t("q3_K", 256, 110, true),
            Q4_K => t("q4_K", 256, 144, true),
            Q5_K => t("q5_K", 256, 176, true),
            Q6_K => t("q6_K", 256, 210, true),
            Q8_K => t("q8_K", 256, 292, true),
            IQ2_XXS => t("iq2_xxs", 256, 66, true),
            IQ2_XS => t("iq2_xs", 256, 74, true),
            IQ3_XXS => t("iq3_xxs", 256, 98, true),
            IQ1_S => t("iq1_s", 256, 50, true),
            IQ4_NL => t("iq4_nl", 32, 18, true),
            IQ3_S => t("iq3_s", 256, 110, true),
            IQ2_S => t("iq2_s", 256, 82, true),
            IQ4_XS => t("iq4_xs", 256, 136, true),
            I8 => t("i8", 1, 1, false),
            I16 => t("i16", 1, 2, false),
            I32 => t("i32", 1, 4, false),
            I64 => t("i64", 1, 8, false),
            F64 => t("f64", 1, 8, false),
            IQ1_M => t("iq1_m", 256, 56, true),
            BF16 => t("bf16", 1, 2, false),
            TQ1_0 => t("tq1_0", 256, 54, true),
            TQ2_0 => t("tq2_0", 256, 66, true),
            MXFP4 => t("mxfp4", 32, 17, true),
            NVFP4 => t("nvfp4", 64, 36, true),
            Q1_0 => t("q1_0", 128, 18, true),
            Q2_0 => t("q2_0", 64, 18, true),
        }
    }

    /// ggml's name of the type (`ggml_type_name`), e.g. `"q4_K"`, `"f16"`.
    pub const fn name(self) -> &'static str {
        self.traits().name
    }

    /// Elements per block (`ggml_blck_size`); 1 for the plain number types.
    pub const fn block_size(self) -> usize {
        self.traits().block_size
    }

    /// Bytes per block (`ggml_type_size`).
    pub const fn type_size(self) -> usize {
        self.traits().type_size
    }

    /// Whether ggml counts the type as quantized (`ggml_is_quantized`): true for
    /// every block type, false for F32, F16, BF16, F64 and the integer types.
    pub const fn is_quantized(self) -> bool {
        self.traits().quantized
    }

    /// Whether [`dequantize_row`](super::dequantize_row) implements this type
    /// (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K).
    pub const fn is_dequantizable(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K
        )
    }

    /// Whether [`quantize_row`](super::quantize_row) implements this type (the
    /// same set as [`GgmlType::is_dequantizable`]: ggml's reference quantizers).
    pub const fn is_quantizable(self) -> bool {
        self.is_dequantizable()
    }

    /// Bytes that `n_elements` elements of this type occupy (`ggml_row_size`).
    ///
    /// Errors (never panics) when `n_elements` is not a multiple of
    /// [`GgmlType::block_size`] — ggml cannot store part of a block — or when the
    /// byte count does not fit in `usize` (sizes come from untrusted files).
    pub fn row_bytes(self, n_elements: usize) -> Result<usize> {
        let blocks = self.n_blocks(n_elements)?;
        blocks.checked_mul(self.type_size()).ok_or_else(|| {
            shape_error(
                "row_bytes",
                format!(
                    "{n_elements} elements of {} take more than usize::MAX bytes",
                    self.name()
                ),
            )
        })
    }

    /// Blocks that `n_elements` elements of this type occupy; errors when
    /// `n_elements` is not a multiple of [`GgmlType::block_size`].
    pub fn n_blocks(self, n_elements: usize) -> Result<usize> {
        let bs = self.block_size();
        if n_elements % bs != 0 {
            return Err(shape_error(
                "row_bytes",
                format!(
                    "{n_elements} elements of {} are not a multiple of its block size {bs}",
                    self.name()
                ),
            ));
        }
        Ok(n_elements / bs)
    }
}

impl fmt::Display for GgmlType {
    /// Writes ggml's name of the type (`q4_K`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u32> for GgmlType {
    type Error = u32;

    /// [`GgmlType::from_id`], giving back the unknown id as the error.
    fn try_from(id: u32) -> std::result::Result<Self, u32> {
        Self::from_id(id).ok_or(id)
    }
}

impl From<GgmlType> for u32 {
    /// [`GgmlType::id`].
    fn from(t: GgmlType) -> u32 {
        t.id()
    }
}
