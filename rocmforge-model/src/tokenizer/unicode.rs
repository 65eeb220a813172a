//! Codepoint classification and the GPT-2 byte-to-unicode mapping, exactly as llama.cpp
//! (src/unicode.cpp) has them: the tables come from llama.cpp's own `unicode-data.cpp`
//! (see `gen_unicode_data.py`), so categories agree with llama.cpp even where the Unicode
//! version Rust ships differs.

use super::unicode_data::{FLAG_RANGES, LOWERCASE_TO_ASCII, WHITESPACE};

pub(crate) const UNDEFINED: u16 = 0x0001;
pub(crate) const NUMBER: u16 = 0x0002;
pub(crate) const LETTER: u16 = 0x0004;
pub(crate) const ACCENT_MARK: u16 = 0x0010;
pub(crate) const PUNCTUATION: u16 = 0x0020;
pub(crate) const SYMBOL: u16 = 0x0040;
pub(crate) const MASK_CATEGORIES: u16 = 0x00FF;
pub(crate) const WHITESPACE_FLAG: u16 = 0x0100;

/// llama.cpp's `unicode_cpt_flags` as its bit pattern. `Flags(0)` is what llama.cpp's
/// splitters return for a position outside the current fragment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(pub(crate) u16);

impl Flags {
    #[inline]
    pub(crate) fn bits(self) -> u16 {
        self.0
    }
    #[inline]
    pub(crate) fn is_letter(self) -> bool {
        self.0 & LETTER != 0
    }
    #[inline]
    pub(crate) fn is_number(self) -> bool {
        self.0 & NUMBER != 0
    }
    #[inline]
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & WHITESPACE_FLAG != 0
    }
    #[inline]
    pub(crate) fn is_accent_mark(self) -> bool {
        self.0 & ACCENT_MARK != 0
    }
    #[inline]
    pub(crate) fn category(self) -> u16 {
        self.0 & MASK_CATEGORIES
    }
}

/// The flags of a codepoint (llama.cpp's `unicode_cpt_flags_from_cpt`).
pub(crate) fn flags(cpt: u32) -> Flags {
    if cpt >= 0x110000 {
        return Flags(UNDEFINED);
    }
    // FLAG_RANGES[0].0 == 0, so the partition point is at least 1.
    let idx = FLAG_RANGES.partition_point(|&(start, _)| start <= cpt);
    let mut bits = FLAG_RANGES[idx.saturating_sub(1)].1;
    if WHITESPACE.binary_search(&cpt).is_ok() {
        bits |= WHITESPACE_FLAG;
    }
    Flags(bits)
}

/// llama.cpp's `unicode_tolower`, restricted to the codepoints whose lowercase is ASCII:
/// the only use is comparing the result with ASCII letters.
pub(crate) fn tolower_for_ascii_compare(cpt: u32) -> u32 {
    match LOWERCASE_TO_ASCII.binary_search_by_key(&cpt, |&(c, _)| c) {
        Ok(i) => u32::from(LOWERCASE_TO_ASCII[i].1),
        Err(_) => cpt,
    }
}

/// GPT-2's reversible byte-to-unicode mapping (llama.cpp `unicode_byte_to_utf8_map`).
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut assigned = [false; 256];
    for b in (0x21u32..=0x7E).chain(0xA1..=0xAC).chain(0xAE..=0xFF) {
        table[b as usize] = char::from_u32(b).unwrap_or('\0');
        assigned[b as usize] = true;
    }
    let mut n = 0u32;
    for b in 0..256usize {
        if !assigned[b] {
            table[b] = char::from_u32(256 + n).unwrap_or('\0');
            n += 1;
        }
    }
    table
}

/// The inverse of [`byte_to_char_table`]: indexed by codepoint (all are below 0x144).
pub(crate) fn char_to_byte_table(forward: &[char; 256]) -> Vec<Option<u8>> {
    let mut inv = vec![None; 0x144];
    for (b, &c) in forward.iter().enumerate() {
        if let Some(slot) = inv.get_mut(c as usize) {
            *slot = Some(b as u8);
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_match_llama_cpp_categories() {
        assert!(flags('a' as u32).is_letter());
        assert!(flags('7' as u32).is_number());
        assert!(flags(' ' as u32).is_whitespace());
        assert!(flags(0x3000).is_whitespace());
        assert!(flags(0x0661).is_number()); // ARABIC-INDIC DIGIT ONE
        assert!(flags(0x0301).is_accent_mark());
        assert_eq!(flags('!' as u32).category(), PUNCTUATION);
        assert_eq!(flags('$' as u32).category(), SYMBOL);
        assert_eq!(flags(0x10FFFF).bits(), UNDEFINED);
        assert_eq!(flags(0x110000).bits(), UNDEFINED);
    }

    #[test]
    fn byte_table_roundtrips() {
        let fwd = byte_to_char_table();
        let inv = char_to_byte_table(&fwd);
        assert_eq!(fwd[b' ' as usize], 'Ġ');
        assert_eq!(fwd[b'\n' as usize], 'Ċ');
        for b in 0..=255u8 {
            assert_eq!(inv[fwd[b as usize] as usize], Some(b));
        }
    }

    #[test]
    fn tolower_ascii() {
        assert_eq!(tolower_for_ascii_compare('S' as u32), 's' as u32);
        assert_eq!(tolower_for_ascii_compare(0x212A), 'k' as u32);
        assert_eq!(tolower_for_ascii_compare('x' as u32), 'x' as u32);
    }
}
