//! The on-disk cache of compiled kernels.
//!
//! Compiling the kernels takes seconds; a process that starts often should not pay it
//! each time. Code objects are stored under `$XDG_CACHE_HOME/rocmforge/` (or
//! `~/.cache/rocmforge/`), one file per key. The key hashes everything that changes the
//! output: the source (with the prelude), the exact arch, the runtime and its version,
//! the compile options and rocmforge's version.
//!
//! Each file carries a header with the payload's length and SHA-256, so a truncated or
//! corrupt entry is detected, removed and rebuilt. Writes go to a temporary file in the
//! same directory, then `rename` over the final name: two processes compiling at once
//! each write their own temporary and the last rename wins, with whole files only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"RFKCACHE";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// What identifies one compiled code object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// Hashes every input of a compilation.
    pub fn new(source: &str, arch: &str, runtime: &str, options: &[String]) -> Self {
        let mut hash = Sha256::new();
        for part in [
            env!("CARGO_PKG_VERSION"),
            source,
            arch,
            runtime,
            &options.join("\u{1f}"),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        CacheKey(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A directory of cached code objects.
#[derive(Debug, Clone)]
pub struct KernelCache {
    dir: PathBuf,
}

impl KernelCache {
    /// `$XDG_CACHE_HOME/rocmforge`, else `$HOME/.cache/rocmforge`; `None` when neither
    /// variable is set (then kernels are compiled every time).
    pub fn default_dir() -> Option<PathBuf> {
        let nonempty = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        nonempty("XDG_CACHE_HOME")
            .or_else(|| nonempty("HOME").map(|home| home.join(".cache")))
            .map(|base| base.join("rocmforge"))
    }

    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.co", key.as_str()))
    }

    /// The cached code object for `key`, if present and intact. A damaged entry is
    /// removed (so that it is rebuilt) and reported as absent.
    pub fn load(&self, key: &CacheKey) -> Option<Vec<u8>> {
        let path = self.path(key);
        let bytes = fs::read(&path).ok()?;
        match decode(&bytes) {
            Some(payload) => Some(payload.to_vec()),
            None => {
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `code` under `key`, atomically.
    pub fn store(&self, key: &CacheKey, code: &[u8]) -> Result<()> {
        let cache_error = |path: &Path, e: std::io::Error| Error::Cache {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        fs::create_dir_all(&self.dir).map_err(|e| cache_error(&self.dir, e))?;
        let final_path = self.path(key);
        let tmp_path = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            key.as_str(),
            std::process::id(),
            unique_suffix()
        ));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp_path)?;
            file.write_all(&encode(code))?;
            file.sync_all()?;
            fs::rename(&tmp_path, &final_path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp_path);
            cache_error(&final_path, e)
        })
    }
}

/// Distinguishes temporaries of threads of one process.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Header (magic, format version, payload length, SHA-256 of the payload) + payload.
pub(crate) fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(payload);
    out
}

/// The payload of an intact entry.
pub(crate) fn decode(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return None;
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().ok()?);
    let len = u64::from_le_bytes(bytes[12..20].try_into().ok()?);
    let payload = &bytes[HEADER_LEN..];
    if version != FORMAT_VERSION || len != payload.len() as u64 || payload.is_empty() {
        return None;
    }
    (Sha256::digest(payload).as_slice() == &bytes[20..52]).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rocmforge-cache-test-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn store_then_load() {
        let cache = KernelCache::new(temp_dir("roundtrip"));
        let key = CacheKey::new("src", "gfx90a", "hip 5.2", &["-O3".into()]);
        assert!(cache.load(&key).is_none());
        cache.store(&key, b"code object").unwrap();
        assert_eq!(cache.load(&key).unwrap(), b"code object");
        let _ = fs::remove_dir_all(cache.dir());
    }

    #[test]
    fn corrupt_and_truncated_entries_are_dropped() {
        let cache = KernelCache::new(temp_dir("corrupt"));
        let key = CacheKey::new("src", "gfx906", "hip", &[]);
        cache.store(&key, &[7u8; 1000]).unwrap();
        let path = cache.path(&key);
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_LEN + 10] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(cache.load(&key).is_none());
        assert!(!path.exists(), "a corrupt entry is removed");
        cache.store(&key, &[7u8; 1000]).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(cache.load(&key).is_none());
        let _ = fs::remove_dir_all(cache.dir());
    }

    #[test]
    fn concurrent_writers_leave_a_whole_file() {
        let cache = KernelCache::new(temp_dir("concurrent"));
        let key = CacheKey::new("src", "sm_90", "cuda", &[]);
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let cache = cache.clone();
                let key = key.clone();
                s.spawn(move || cache.store(&key, &vec![i; 100_000]).unwrap());
            }
        });
        let loaded = cache.load(&key).unwrap();
        assert_eq!(loaded.len(), 100_000);
        assert!(loaded.iter().all(|&b| b == loaded[0]));
        let leftovers = fs::read_dir(cache.dir()).unwrap().count();
        assert_eq!(leftovers, 1, "temporary files left behind");
        let _ = fs::remove_dir_all(cache.dir());
    }

    #[test]
    fn keys_differ_by_every_input() {
        let base = CacheKey::new("s", "a", "r", &["o".into()]);
        assert_ne!(base, CacheKey::new("s2", "a", "r", &["o".into()]));
        assert_ne!(base, CacheKey::new("s", "a2", "r", &["o".into()]));
        assert_ne!(base, CacheKey::new("s", "a", "r2", &["o".into()]));
        assert_ne!(base, CacheKey::new("s", "a", "r", &["o2".into()]));
        // Length-prefixed parts: moving a boundary changes the key.
        assert_ne!(
            CacheKey::new("ab", "c", "r", &[]),
            CacheKey::new("a", "bc", "r", &[])
        );
    }

    proptest! {
        #[test]
        fn decode_never_accepts_damage(payload in proptest::collection::vec(any::<u8>(), 1..512), flip in any::<usize>()) {
            let mut bytes = encode(&payload);
            prop_assert_eq!(decode(&bytes), Some(&payload[..]));
            let i = flip % bytes.len();
            bytes[i] ^= 0x40;
            prop_assert!(decode(&bytes).is_none());
        }

        #[test]
        fn truncation_is_detected(payload in proptest::collection::vec(any::<u8>(), 1..512), cut in any::<usize>()) {
            let bytes = encode(&payload);
            let cut = cut % bytes.len();
            prop_assert!(decode(&bytes[..cut]).is_none());
        }
    }
}
