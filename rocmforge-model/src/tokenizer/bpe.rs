//! The merge loops of llama.cpp's two BPE flavours: `llm_tokenizer_bpe_session` (merges
//! by rank) and `llm_tokenizer_spm_session` (merges by token score, SentencePiece style).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::TokenId;

#[derive(Clone, Copy)]
struct Symbol {
    prev: Option<usize>,
    next: Option<usize>,
    start: usize,
    len: usize,
}

/// Splits `text` into one symbol per UTF-8 character, chained.
fn char_symbols(text: &str) -> Vec<Symbol> {
    let n = text.chars().count();
    let mut symbols = Vec::with_capacity(n);
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            prev: i.checked_sub(1),
            next: if i + 1 < n { Some(i + 1) } else { None },
            start,
            len: c.len_utf8(),
        });
    }
    symbols
}

/// Merges `right` into `left` and unlinks it.
fn merge(symbols: &mut [Symbol], left: usize, right: usize) {
    let rnext = symbols[right].next;
    symbols[left].len += symbols[right].len;
    symbols[right].len = 0;
    symbols[left].next = rnext;
    if let Some(n) = rnext {
        symbols[n].prev = Some(left);
    }
}

#[derive(PartialEq, Eq)]
struct RankBigram {
    rank: u32,
    left: usize,
    right: usize,
    size: usize,
}

impl Ord for RankBigram {
    // BinaryHeap pops the greatest: the lowest rank, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for RankBigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The merge ranks: `"left right"` (llama.cpp splits a merge line at its first space
/// after the first byte) to rank; the first occurrence of a pair wins.
pub(crate) struct MergeRanks {
    ranks: HashMap<String, u32>,
}

impl MergeRanks {
    pub(crate) fn new(merges: &[String]) -> Self {
        let mut ranks = HashMap::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            // `word.find(' ', 1)`: the search starts at byte 1.
            let pos = m
                .as_bytes()
                .iter()
                .skip(1)
                .position(|&b| b == b' ')
                .map(|p| p + 1);
            if pos.is_some() {
                ranks.entry(m.clone()).or_insert(i as u32);
            }
        }
        Self { ranks }
    }

    fn rank(&self, left: &str, right: &str, buf: &mut String) -> Option<u32> {
        // A stored left part never contains a space after its first byte.
        if left.len() > 1 && left.as_bytes()[1..].contains(&b' ') {
            return None;
        }
        buf.clear();
        buf.push_str(left);
        buf.push(' ');
        buf.push_str(right);
        self.ranks.get(buf.as_str()).copied()
    }
}

/// Merges one pre-tokenized (and byte-encoded) word by rank; returns the final symbols as
/// string slices of `word`.
pub(crate) fn bpe_merge<'w>(word: &'w str, ranks: &MergeRanks) -> Vec<&'w str> {
    let mut symbols = char_symbols(word);
    let mut heap = BinaryHeap::new();
    let mut buf = String::new();
    let text = |s: &Symbol| &word[s.start..s.start + s.len];

    let push = |heap: &mut BinaryHeap<RankBigram>,
                symbols: &[Symbol],
                left: Option<usize>,
                right: Option<usize>,
                buf: &mut String| {
        let (Some(l), Some(r)) = (left, right) else {
            return;
        };
        let (ls, rs) = (&symbols[l], &symbols[r]);
        if let Some(rank) = ranks.rank(text(ls), text(rs), buf) {
            heap.push(RankBigram {
                rank,
                left: l,
                right: r,
                size: ls.len + rs.len,
            });
        }
    };

    for i in 1..symbols.len() {
        push(&mut heap, &symbols, Some(i - 1), Some(i), &mut buf);
    }
    while let Some(b) = heap.pop() {
        let (l, r) = (symbols[b.left], symbols[b.right]);
        // Outdated: one side was merged away or grew since the pair was queued.
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        merge(&mut symbols, b.left, b.right);
        let prev = symbols[b.left].prev;
        let next = symbols[b.left].next;
        push(&mut heap, &symbols, prev, Some(b.left), &mut buf);
        push(&mut heap, &symbols, Some(b.left), next, &mut buf);
    }
    symbols.iter().filter(|s| s.len > 0).map(text).collect()
}

struct ScoreBigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for ScoreBigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ScoreBigram {}
impl Ord for ScoreBigram {
    // BinaryHeap pops the greatest: the highest score, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}
impl PartialOrd for ScoreBigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What the SentencePiece merge loop needs from the vocabulary.
pub(crate) trait SpmVocab {
    fn token(&self, text: &str) -> Option<TokenId>;
    fn score(&self, id: TokenId) -> f32;
    /// The byte-fallback token of a byte (`<0xXX>`), if any.
    fn byte_token(&self, byte: u8) -> Option<TokenId>;
}

/// llama.cpp `llm_tokenizer_spm_session::tokenize` on text whose spaces are already
/// escaped to `▁`. Appends ids to `out`.
///
/// llama.cpp re-segments a final symbol that is not a token through the pair that produced
/// it; but a pair is only queued when its text is a token, so a symbol that is not a token
/// was never merged and is one character: it goes straight to byte fallback here.
pub(crate) fn spm_tokenize(text: &str, vocab: &impl SpmVocab, out: &mut Vec<TokenId>) {
    let mut symbols = char_symbols(text);
    let mut heap = BinaryHeap::new();

    let try_add = |heap: &mut BinaryHeap<ScoreBigram>,
                   symbols: &[Symbol],
                   left: Option<usize>,
                   right: Option<usize>| {
        let (Some(l), Some(r)) = (left, right) else {
            return;
        };
        let start = symbols[l].start;
        let size = symbols[l].len + symbols[r].len;
        let Some(piece) = text.get(start..start + size) else {
            return;
        };
        let Some(id) = vocab.token(piece) else {
            return;
        };
        heap.push(ScoreBigram {
            score: vocab.score(id),
            left: l,
            right: r,
            size,
        });
    };

    for i in 1..symbols.len() {
        try_add(&mut heap, &symbols, Some(i - 1), Some(i));
    }
    while let Some(b) = heap.pop() {
        let (l, r) = (symbols[b.left], symbols[b.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        merge(&mut symbols, b.left, b.right);
        let prev = symbols[b.left].prev;
        let next = symbols[b.left].next;
        try_add(&mut heap, &symbols, prev, Some(b.left));
        try_add(&mut heap, &symbols, Some(b.left), next);
    }

    let mut i = if symbols.is_empty() { None } else { Some(0) };
    while let Some(idx) = i {
        let s = symbols[idx];
        let piece = &text[s.start..s.start + s.len];
        match vocab.token(piece) {
            Some(id) => out.push(id),
            None => {
                for &byte in piece.as_bytes() {
                    if let Some(id) = vocab.byte_token(byte) {
                        out.push(id);
                    }
                }
            }
        }
        i = s.next;
    }
}
