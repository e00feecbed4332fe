//! Cache keys: a 32-byte digest that a request knows how to compute.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// A 32-byte content digest (SHA-256) used as a cache key.
///
/// Keys are digests of content, never process-random hashes, so the same input gives the same
/// key in every process (and in a shared store, on every replica).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The first 12 hex digits, enough to tell entries apart in a log line.
    pub fn short(&self) -> String {
        hex(&self.0[..6])
    }

    /// All 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// A request that names its own cache entry.
///
/// [`CacheLayer`](super::CacheLayer) wraps any service whose request implements this trait. Two
/// requests with the same key must be answerable with the same response.
pub trait CacheKey {
    /// The key of the response to this request.
    fn cache_key(&self) -> Digest;
}

/// Hashes a [`Digest`] by taking 8 of its bytes: the key is already a uniform hash, so hashing
/// it again (with a process-random seed) would only cost time.
#[derive(Debug, Clone, Copy, Default)]
pub struct DigestHashBuilder;

impl BuildHasher for DigestHashBuilder {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// The hasher of [`DigestHashBuilder`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `Digest` hashes as its 32-byte array (a length prefix, then the bytes); fold every
        // write so that any other use still spreads.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_usize(&mut self, _len: usize) {
        // The array length prefix is the same for every key: ignore it.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_is_twelve_hex_digits() {
        let d = Digest([0xab; 32]);
        assert_eq!(d.short(), "abababababab");
        assert_eq!(d.to_hex().len(), 64);
    }

    #[test]
    fn digest_hasher_is_deterministic_and_spreads() {
        let hash = |d: &Digest| DigestHashBuilder.hash_one(d);
        let a = Digest([1; 32]);
        let mut b = a;
        b.0[0] = 2;
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
    }
}
