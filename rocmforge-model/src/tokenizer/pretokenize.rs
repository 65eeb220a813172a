//! Splitting text into words before the BPE merges, as llama.cpp's `unicode_regex_split`
//! does it.
//!
//! llama.cpp applies a list of regexes in order, each one refining the fragments the
//! previous ones produced (text between matches stays a fragment of its own). The common
//! regexes (GPT-2, Llama 3, Qwen2, Qwen3.5, newline runs) are not run as regexes at all
//! but by hand-written scanners, which differ from a real regex engine in small ways (for
//! example `\s+(?!\S)` at the end of a fragment, and unassigned codepoints). Those
//! scanners are ported here line by line. Any other regex goes through llama.cpp's
//! fallback: the text is "collapsed" (every non-ASCII codepoint becomes one placeholder
//! per Unicode category, non-ASCII whitespace becomes `\v`) and `\p{..}` in the regex
//! becomes a class of the placeholder plus the ASCII members, then a backtracking engine
//! (here `fancy-regex`, in llama.cpp `std::regex`) runs on that.

use super::unicode::{self, Flags, ACCENT_MARK, LETTER, NUMBER, PUNCTUATION, SYMBOL};
use super::TokenizerError;

const OUT_OF_RANGE: u32 = u32::MAX;

const RE_GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const RE_LLAMA3_ORIG: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_NEWLINES: &str = r"[^\n]+|[\n]+";
/// Regexes llama.cpp handles with custom code that is not ported.
const RE_UNSUPPORTED: &[&str] = &[r"\p{Han}+", r"\p{AFMoE_digits}", r"\d{1,3}(?=(?:\d{3})*\b)"];

/// The category names llama.cpp recognises in its regexes, and the category each stands
/// for (the letter subcategories all collapse to LETTER, as in llama.cpp).
const UCAT: &[(&str, u16)] = &[
    (r"\p{N}", NUMBER),
    (r"\p{L}", LETTER),
    (r"\p{P}", PUNCTUATION),
    (r"\p{M}", ACCENT_MARK),
    (r"\p{S}", SYMBOL),
    (r"\p{Lu}", LETTER),
    (r"\p{Ll}", LETTER),
    (r"\p{Lt}", LETTER),
    (r"\p{Lm}", LETTER),
    (r"\p{Lo}", LETTER),
];

/// Placeholder characters of the collapsed text (llama.cpp uses the bytes 0xD0..0xD5).
const COLLAPSED_OTHER: char = '\u{E0D0}';

fn collapsed_char(category: u16) -> Option<char> {
    match category {
        NUMBER => Some('\u{E0D1}'),
        LETTER => Some('\u{E0D2}'),
        PUNCTUATION => Some('\u{E0D3}'),
        ACCENT_MARK => Some('\u{E0D4}'),
        SYMBOL => Some('\u{E0D5}'),
        _ => None,
    }
}

/// The ASCII members of each category, as class content (llama.cpp's `k_ucat_map`).
fn collapsed_ascii_members(category: u16) -> &'static str {
    match category {
        NUMBER => "0-9",
        LETTER => "A-Za-z",
        PUNCTUATION => r"!-#%-*,-/:-;?-@\[-\]_\{\}",
        SYMBOL => r"\$\+<->\^`\|~",
        _ => "",
    }
}

enum Rule {
    Gpt2,
    /// Llama 3 / Qwen2 / Qwen3.5 scanners: `digits` is the longest digit group (3 or 1);
    /// `marks` lets letter runs take combining marks (Qwen3.5).
    Llama3Like {
        digits: usize,
        marks: bool,
    },
    Newlines,
    Regex {
        re: Box<fancy_regex::Regex>,
        collapsed: bool,
    },
}

/// A compiled list of splitting regexes.
pub(crate) struct PreTokenizer {
    rules: Vec<Rule>,
}

impl PreTokenizer {
    pub(crate) fn new(regexes: &[&str]) -> Result<Self, TokenizerError> {
        let mut rules = Vec::with_capacity(regexes.len());
        for &expr in regexes {
            let rule = match expr {
                RE_GPT2 => Rule::Gpt2,
                RE_LLAMA3 | RE_LLAMA3_ORIG => Rule::Llama3Like {
                    digits: 3,
                    marks: false,
                },
                RE_QWEN2 => Rule::Llama3Like {
                    digits: 1,
                    marks: false,
                },
                RE_QWEN35 => Rule::Llama3Like { digits: 1, marks: true },
                RE_NEWLINES => Rule::Newlines,
                _ if RE_UNSUPPORTED.contains(&expr) => {
                    return Err(TokenizerError::UnsupportedRegex {
                        regex: expr.to_string(),
                        reason: "llama.cpp splits with it by custom code that rocmforge does not implement".to_string(),
                    })
                }
                _ => compile_fallback(expr)?,
            };
            rules.push(rule);
        }
        Ok(Self { rules })
    }

    /// Splits `text` into words (llama.cpp `unicode_regex_split`, before byte encoding).
    pub(crate) fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, TokenizerError> {
        let cpts: Vec<u32> = text.chars().map(u32::from).collect();
        let flags: Vec<Flags> = cpts.iter().map(|&c| unicode::flags(c)).collect();
        let mut offsets = vec![cpts.len()];
        for rule in &self.rules {
            offsets = match rule {
                Rule::Gpt2 => split_gpt2(&cpts, &flags, &offsets),
                Rule::Llama3Like { digits, marks } => {
                    split_llama3_like(&cpts, &flags, &offsets, *digits, *marks)
                }
                Rule::Newlines => split_newlines(&cpts, &offsets),
                Rule::Regex { re, collapsed } => {
                    split_regex(re, *collapsed, &cpts, &flags, &offsets)?
                }
            };
        }
        // Codepoint lengths back to string slices.
        let mut byte_pos: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        byte_pos.push(text.len());
        let mut words = Vec::with_capacity(offsets.len());
        let mut start = 0usize;
        for len in offsets {
            let end = start + len;
            if let (Some(&a), Some(&b)) = (byte_pos.get(start), byte_pos.get(end)) {
                if b > a {
                    words.push(&text[a..b]);
                }
            }
            start = end;
        }
        Ok(words)
    }
}

fn compile_fallback(expr: &str) -> Result<Rule, TokenizerError> {
    let use_collapsed = UCAT.iter().any(|(name, _)| expr.contains(name));
    let translated = if use_collapsed {
        if !expr.is_ascii() {
            return Err(TokenizerError::UnsupportedRegex {
                regex: expr.to_string(),
                reason: "it mixes Unicode categories with non-ASCII characters (llama.cpp rejects it too)".to_string(),
            });
        }
        collapse_regex(expr)
    } else {
        expr.to_string()
    };
    let translated = ecmascript_to_rust(&translated);
    let re =
        fancy_regex::Regex::new(&translated).map_err(|e| TokenizerError::UnsupportedRegex {
            regex: expr.to_string(),
            reason: format!("it does not compile as `{translated}`: {e}"),
        })?;
    Ok(Rule::Regex {
        re: Box::new(re),
        collapsed: use_collapsed,
    })
}

/// llama.cpp's rewriting of `\p{..}` for the collapsed text.
fn collapse_regex(expr: &str) -> String {
    let b = expr.as_bytes();
    let mut out = String::with_capacity(expr.len() + 16);
    let mut inside = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'[' && (i == 0 || b[i - 1] != b'\\') {
            out.push('[');
            inside = true;
            i += 1;
            continue;
        }
        if inside && b[i] == b']' && i > 0 && b[i - 1] != b'\\' {
            out.push(']');
            inside = false;
            i += 1;
            continue;
        }
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'p' && b[i + 2] == b'{' {
            if let Some(rel) = expr[i + 3..].find('}') {
                let closing = i + 3 + rel;
                if closing <= i + 10 {
                    let pat = &expr[i..=closing];
                    if let Some(&(_, cat)) = UCAT.iter().find(|(n, _)| *n == pat) {
                        if !inside {
                            out.push('[');
                        }
                        if let Some(c) = collapsed_char(cat) {
                            out.push_str(&format!("\\x{{{:X}}}", c as u32));
                        }
                        out.push_str(collapsed_ascii_members(cat));
                        if !inside {
                            out.push(']');
                        }
                        i = closing + 1;
                        continue;
                    }
                }
            }
        }
        // ASCII only here (checked by the caller).
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// Adjusts ECMAScript regex syntax that means something else to fancy-regex: `\d` and
/// `\w` are ASCII-only in ECMAScript, and inside a class `[` is a literal while Rust reads
/// it as a nested class (likewise `&&`, `--` and `~~` are set operators in Rust).
fn ecmascript_to_rust(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len() + 8);
    let mut in_class = false;
    let mut prev: Option<char> = None;
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(n) = chars.next() else {
                out.push_str("\\\\");
                break;
            };
            match (n, in_class) {
                ('d', false) => out.push_str("[0-9]"),
                ('d', true) => out.push_str("0-9"),
                ('D', false) => out.push_str("[^0-9]"),
                ('w', false) => out.push_str("[0-9A-Za-z_]"),
                ('w', true) => out.push_str("0-9A-Za-z_"),
                ('W', false) => out.push_str("[^0-9A-Za-z_]"),
                _ => {
                    out.push('\\');
                    out.push(n);
                }
            }
            prev = None;
            continue;
        }
        if in_class {
            match c {
                ']' => in_class = false,
                '[' => {
                    out.push_str("\\[");
                    prev = None;
                    continue;
                }
                '&' | '-' | '~' if prev == Some(c) => {
                    out.push('\\');
                    out.push(c);
                    prev = None;
                    continue;
                }
                _ => {}
            }
        } else if c == '[' {
            in_class = true;
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

/// One fragment of the codepoint sequence, with llama.cpp's `_get_cpt`, `_get_flags` and
/// `_add_token` helpers.
struct Frag<'a> {
    cpts: &'a [u32],
    flags: &'a [Flags],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Frag<'_> {
    #[inline]
    fn cpt(&self, pos: usize) -> u32 {
        if pos >= self.ini && pos < self.end {
            self.cpts[pos]
        } else {
            OUT_OF_RANGE
        }
    }
    #[inline]
    fn fl(&self, pos: usize) -> Flags {
        if pos >= self.ini && pos < self.end {
            self.flags[pos]
        } else {
            Flags::default()
        }
    }
    #[inline]
    fn add(&mut self, end: usize) -> usize {
        let len = end.saturating_sub(self.prev_end);
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

fn is_contraction_1(c: u32) -> bool {
    c == 's' as u32 || c == 't' as u32 || c == 'm' as u32 || c == 'd' as u32
}

fn is_contraction_2(c: u32, cn: u32) -> bool {
    ((c == 'r' as u32 || c == 'v' as u32) && cn == 'e' as u32)
        || (c == 'l' as u32 && cn == 'l' as u32)
}

const CR: u32 = '\r' as u32;
const LF: u32 = '\n' as u32;
const SPACE: u32 = ' ' as u32;
const APOSTROPHE: u32 = '\'' as u32;

/// llama.cpp `unicode_regex_split_custom_gpt2`.
fn split_gpt2(cpts: &[u32], flags: &[Flags], offsets: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    for &offset in offsets {
        let ini = start;
        let end = (start + offset).min(cpts.len());
        start = end;
        let mut f = Frag {
            cpts,
            flags,
            ini,
            end,
            prev_end: ini,
            out: &mut out,
        };
        let mut pos = ini;
        while pos < end {
            let cpt = f.cpt(pos);
            let fl = f.fl(pos);

            // 's|'t|'re|'ve|'m|'ll|'d
            if cpt == APOSTROPHE && pos + 1 < end {
                let next = f.cpt(pos + 1);
                if is_contraction_1(next) {
                    pos += f.add(pos + 2);
                    continue;
                }
                if pos + 2 < end && is_contraction_2(next, f.cpt(pos + 2)) {
                    pos += f.add(pos + 3);
                    continue;
                }
            }

            let mut fl2 = if cpt == SPACE { f.fl(pos + 1) } else { fl };
            // <space>?\p{L}+
            if fl2.is_letter() {
                pos += usize::from(cpt == SPACE);
                while fl2.is_letter() {
                    pos += 1;
                    fl2 = f.fl(pos);
                }
                f.add(pos);
                continue;
            }
            // <space>?\p{N}+
            if fl2.is_number() {
                pos += usize::from(cpt == SPACE);
                while fl2.is_number() {
                    pos += 1;
                    fl2 = f.fl(pos);
                }
                f.add(pos);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+
            let other =
                |x: Flags| !(x.is_whitespace() || x.is_letter() || x.is_number()) && x.bits() != 0;
            if other(fl2) {
                pos += usize::from(cpt == SPACE);
                while other(fl2) {
                    pos += 1;
                    fl2 = f.fl(pos);
                }
                f.add(pos);
                continue;
            }

            let mut num_ws = 0usize;
            while f.fl(pos + num_ws).is_whitespace() {
                num_ws += 1;
            }
            // \s+(?!\S)
            if num_ws > 1 && f.cpt(pos + num_ws) != OUT_OF_RANGE {
                pos += num_ws - 1;
                f.add(pos);
                continue;
            }
            // \s+
            if num_ws > 0 {
                pos += num_ws;
                f.add(pos);
                continue;
            }
            // no match
            pos += 1;
            f.add(pos);
        }
    }
    out
}

/// llama.cpp `unicode_regex_split_custom_llama3` (digits 3), `..._qwen2` (digits 1) and
/// `..._qwen35` (digits 1, marks).
fn split_llama3_like(
    cpts: &[u32],
    flags: &[Flags],
    offsets: &[usize],
    digits: usize,
    marks: bool,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    let wordish = |x: Flags| x.is_letter() || (marks && x.is_accent_mark());
    for &offset in offsets {
        let ini = start;
        let end = (start + offset).min(cpts.len());
        start = end;
        let mut f = Frag {
            cpts,
            flags,
            ini,
            end,
            prev_end: ini,
            out: &mut out,
        };
        let mut pos = ini;
        while pos < end {
            let cpt = f.cpt(pos);
            let fl = f.fl(pos);

            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if cpt == APOSTROPHE && pos + 1 < end {
                let next = unicode::tolower_for_ascii_compare(f.cpt(pos + 1));
                if is_contraction_1(next) {
                    pos += f.add(pos + 2);
                    continue;
                }
                if pos + 2 < end {
                    let next2 = unicode::tolower_for_ascii_compare(f.cpt(pos + 2));
                    if is_contraction_2(next, next2) {
                        pos += f.add(pos + 3);
                        continue;
                    }
                }
            }

            // [^\r\n\p{L}\p{N}]?\p{L}+   (Qwen3.5: [\p{L}\p{M}]+)
            if !(cpt == CR || cpt == LF || fl.is_number())
                && (wordish(fl) || wordish(f.fl(pos + 1)))
            {
                pos += 1;
                while wordish(f.fl(pos)) {
                    pos += 1;
                }
                f.add(pos);
                continue;
            }

            // \p{N}{1,3}   (Qwen: \p{N})
            if fl.is_number() {
                if digits == 1 {
                    pos += 1;
                    f.add(pos);
                    continue;
                }
                let mut group = pos;
                while f.fl(pos).is_number() {
                    pos += 1;
                    if pos - group >= digits {
                        f.add(pos);
                        group = pos;
                    }
                }
                f.add(pos);
                continue;
            }

            // <space>?[^\s\p{L}\p{N}]+[\r\n]*   (Qwen3.5 also excludes \p{M})
            let other = |x: Flags| {
                !(x.is_whitespace()
                    || x.is_letter()
                    || x.is_number()
                    || (marks && x.is_accent_mark()))
            };
            let mut fl2 = if cpt == SPACE { f.fl(pos + 1) } else { fl };
            if other(fl2) && fl.bits() != 0 {
                pos += usize::from(cpt == SPACE);
                while other(fl2) && fl2.bits() != 0 {
                    pos += 1;
                    fl2 = f.fl(pos);
                }
                let mut c2 = f.cpt(pos);
                while c2 == CR || c2 == LF {
                    pos += 1;
                    c2 = f.cpt(pos);
                }
                f.add(pos);
                continue;
            }

            let mut num_ws = 0usize;
            let mut last_end_r_or_n = 0usize;
            while f.fl(pos + num_ws).is_whitespace() {
                let c2 = f.cpt(pos + num_ws);
                if c2 == CR || c2 == LF {
                    last_end_r_or_n = pos + num_ws + 1;
                }
                num_ws += 1;
            }
            // \s*[\r\n]+
            if last_end_r_or_n > 0 {
                pos = last_end_r_or_n;
                f.add(pos);
                continue;
            }
            // \s+(?!\S)
            if num_ws > 1 && f.cpt(pos + num_ws) != OUT_OF_RANGE {
                pos += num_ws - 1;
                f.add(pos);
                continue;
            }
            // \s+
            if num_ws > 0 {
                pos += num_ws;
                f.add(pos);
                continue;
            }
            // no match
            pos += 1;
            f.add(pos);
        }
    }
    out
}

/// llama.cpp `unicode_regex_split_custom_newlines`: `[^\n]+|[\n]+`.
fn split_newlines(cpts: &[u32], offsets: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    for &offset in offsets {
        let ini = start;
        let end = (start + offset).min(cpts.len());
        start = end;
        let mut pos = ini;
        while pos < end {
            let is_nl = cpts[pos] == LF;
            let run = pos;
            while pos < end && (cpts[pos] == LF) == is_nl {
                pos += 1;
            }
            out.push(pos - run);
        }
    }
    out
}

/// llama.cpp `unicode_regex_split_stl` on the collapsed (or whitespace-normalised) text.
fn split_regex(
    re: &fancy_regex::Regex,
    collapsed: bool,
    cpts: &[u32],
    flags: &[Flags],
    offsets: &[usize],
) -> Result<Vec<usize>, TokenizerError> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    let mut frag = String::new();
    let mut byte_to_cpt: Vec<usize> = Vec::new();
    for &offset in offsets {
        let ini = start;
        let end = (start + offset).min(cpts.len());
        start = end;
        frag.clear();
        byte_to_cpt.clear();
        for i in ini..end {
            let c = if cpts[i] < 0x80 {
                char::from_u32(cpts[i]).unwrap_or(COLLAPSED_OTHER)
            } else if flags[i].is_whitespace() {
                '\u{0B}'
            } else if collapsed {
                collapsed_char(flags[i].category()).unwrap_or(COLLAPSED_OTHER)
            } else {
                char::from_u32(cpts[i]).unwrap_or(COLLAPSED_OTHER)
            };
            for _ in 0..c.len_utf8() {
                byte_to_cpt.push(i - ini);
            }
            frag.push(c);
        }
        byte_to_cpt.push(end - ini);

        let mut last = 0usize; // in codepoints, relative to ini
        let mut search = 0usize; // in bytes
        while search <= frag.len() {
            let m = re
                .find_from_pos(&frag, search)
                .map_err(|e| TokenizerError::RegexRuntime {
                    reason: e.to_string(),
                })?;
            let Some(m) = m else { break };
            let (ms, me) = (byte_to_cpt[m.start()], byte_to_cpt[m.end()]);
            if ms > last {
                out.push(ms - last);
            }
            if me > ms {
                out.push(me - ms);
            }
            last = me;
            if m.end() > m.start() {
                search = m.end();
            } else {
                // Empty match: step over one character.
                match frag[m.end()..].chars().next() {
                    Some(c) => search = m.end() + c.len_utf8(),
                    None => break,
                }
            }
        }
        if last < end - ini {
            out.push(end - ini - last);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(regexes: &[&str], text: &str) -> Vec<String> {
        PreTokenizer::new(regexes)
            .unwrap()
            .split(text)
            .unwrap()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn gpt2_whitespace_lookahead() {
        assert_eq!(split(&[RE_GPT2], "a   b"), ["a", "  ", " b"]);
        assert_eq!(split(&[RE_GPT2], "a   "), ["a", "   "]);
        assert_eq!(split(&[RE_GPT2], "don't"), ["don", "'t"]);
    }

    #[test]
    fn smollm_isolates_digits() {
        let re = [r"\p{N}", RE_GPT2];
        assert_eq!(split(&re, "abc 123"), ["abc", " ", "1", "2", "3"]);
    }

    #[test]
    fn llama3_digit_groups_and_newlines() {
        assert_eq!(split(&[RE_LLAMA3], "12345"), ["123", "45"]);
        assert_eq!(split(&[RE_LLAMA3], "a\n\n b"), ["a", "\n\n", " b"]);
        assert_eq!(split(&[RE_LLAMA3], "I'M"), ["I", "'M"]);
    }

    #[test]
    fn regex_translation() {
        assert_eq!(collapse_regex(r"\p{N}"), r"[\x{E0D1}0-9]");
        assert_eq!(collapse_regex(r"[^\s\p{L}]"), r"[^\s\x{E0D2}A-Za-z]");
        assert_eq!(ecmascript_to_rust(r"\d{3}[\d]"), r"[0-9]{3}[0-9]");
        assert_eq!(ecmascript_to_rust(r"[[a]"), r"[\[a]");
    }
}
