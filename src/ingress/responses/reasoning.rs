//! `encrypted_content`: the proxy's own authenticated encoding of a reasoning item's text.
//!
//! Clients that keep no server state (Codex sends `store: false`) replay the reasoning items of
//! earlier turns with their `encrypted_content`, and expect the model to see that reasoning
//! again. Hunyuan has no such blob, so the proxy makes one: the reasoning text, tagged with
//! HMAC-SHA256 under a server secret, in standard base64:
//!
//! ```text
//! base64( 0x01 version | 32-byte tag | UTF-8 text )      tag = HMAC-SHA256(secret, label | 0x01 | text)
//! ```
//!
//! It is *authenticated*, not encrypted: whoever holds the blob can read the text (the client
//! saw that text in the stream anyway). What the tag buys is that the proxy only ever puts
//! text it wrote itself back into a prompt: a tampered blob, one made under another secret
//! (another proxy, a restart with an ephemeral secret) or OpenAI's own opaque blobs open to
//! `None` and are ignored, never an error.
//!
//! HMAC is built from `sha2` in a few lines (RFC 2104) and checked against RFC 4231's vectors.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// The encoding's version byte.
const VERSION: u8 = 1;
/// Domain separation, so a tag made here is never valid for another use of the same secret.
const LABEL: &[u8] = b"hunyuan-proxy/responses/reasoning";
/// SHA-256's block size.
const BLOCK: usize = 64;
/// Tag length in bytes.
const TAG: usize = 32;

/// HMAC-SHA256 of the concatenation of `parts` under `key` (RFC 2104).
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Compares two tags without an early exit.
fn same_tag(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Seals reasoning text into `encrypted_content` and opens it again.
///
/// Cheap to clone (the secret is shared). `Debug` never shows the secret.
#[derive(Clone)]
pub struct ReasoningCodec {
    secret: Arc<[u8]>,
}

impl fmt::Debug for ReasoningCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReasoningCodec { secret: <redacted> }")
    }
}

impl Default for ReasoningCodec {
    /// An [ephemeral](Self::ephemeral) codec.
    fn default() -> Self {
        Self::ephemeral()
    }
}

impl ReasoningCodec {
    /// A codec under `secret`. Every replica that should open another's blobs needs the same
    /// secret; any length works, 32 random bytes is plenty.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        ReasoningCodec {
            secret: Arc::from(secret.as_ref()),
        }
    }

    /// A codec under a secret made for this process (32 bytes of the thread CSPRNG, seeded
    /// from the operating system). Blobs it seals open only in this process: after a restart
    /// replayed reasoning is ignored, which costs the model its old reasoning, nothing more.
    pub fn ephemeral() -> Self {
        Self::new(super::random_bytes())
    }

    /// The `encrypted_content` for `text`.
    pub fn seal(&self, text: &str) -> String {
        let tag = hmac_sha256(&self.secret, &[LABEL, &[VERSION], text.as_bytes()]);
        let mut raw = Vec::with_capacity(1 + TAG + text.len());
        raw.push(VERSION);
        raw.extend_from_slice(&tag);
        raw.extend_from_slice(text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    /// The text sealed in `blob`, or `None` when it is not one of this codec's blobs (tampered,
    /// another secret, another format, not base64, not UTF-8).
    pub fn open(&self, blob: &str) -> Option<String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(blob.trim())
            .ok()?;
        if raw.len() < 1 + TAG || raw[0] != VERSION {
            return None;
        }
        let (tag, text) = raw[1..].split_at(TAG);
        let want = hmac_sha256(&self.secret, &[LABEL, &[VERSION], text]);
        if !same_tag(tag, &want) {
            return None;
        }
        String::from_utf8(text.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1.
        let tag = hmac_sha256(&[0x0b; 20], &[b"Hi There"]);
        assert_eq!(
            hex(&tag),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2, the message split in two parts.
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let tag = hmac_sha256(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex(&tag),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn sealed_text_opens_again() {
        let codec = ReasoningCodec::new("s3cret");
        let text = "The user wants a list; ls -la shows hidden files. 思考";
        assert_eq!(codec.open(&codec.seal(text)).as_deref(), Some(text));
        assert_eq!(codec.open(&codec.seal("")).as_deref(), Some(""));
    }

    #[test]
    fn tampered_or_foreign_content_is_ignored() {
        let codec = ReasoningCodec::new("s3cret");
        let blob = codec.seal("keep the plan");
        // Another secret.
        assert_eq!(ReasoningCodec::new("other").open(&blob), None);
        // One flipped bit in the text.
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&blob)
            .unwrap();
        *raw.last_mut().unwrap() ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(&raw);
        assert_eq!(codec.open(&tampered), None);
        // OpenAI's own opaque blobs, garbage, empty.
        assert_eq!(codec.open("gAAAAABoZ2x1ZV9vcGFxdWVfYmxvYg=="), None);
        assert_eq!(codec.open("not base64 at all!"), None);
        assert_eq!(codec.open(""), None);
    }

    #[test]
    fn ephemeral_codecs_do_not_open_each_other() {
        let a = ReasoningCodec::ephemeral();
        let b = ReasoningCodec::ephemeral();
        assert_eq!(b.open(&a.seal("x")), None);
        assert_eq!(a.clone().open(&a.seal("x")).as_deref(), Some("x"));
        assert!(!format!("{a:?}").contains(&hex(&a.secret)));
    }
}
