//! The RFC 6455 handshake values the pair computes itself.
//!
//! The front answers the client's `Sec-WebSocket-Key` with its own
//! `Sec-WebSocket-Accept`; the sidecar sends the app a fresh key and checks the
//! app's accept against it. The key never crosses the HTTP/2 hop
//! (RFC 8441 §5 (N11)).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

/// The only WebSocket version h2hop speaks (RFC 6455 §4.1 (N41)).
pub const VERSION: &str = "13";

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2 (N42)).
pub fn accept_for(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    STANDARD.encode(sha.finalize())
}

/// A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes (RFC 6455 §4.1 (N40)).
pub fn fresh_key() -> String {
    let nonce: [u8; 16] = rand::random();
    STANDARD.encode(nonce)
}

/// True when a client's key is base64 that decodes to exactly 16 bytes
/// (RFC 6455 §4.1; anything else is a malformed handshake, §4.2.1 (N47)).
pub fn is_valid_key(key: &[u8]) -> bool {
    matches!(STANDARD.decode(key), Ok(nonce) if nonce.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6455 §1.3 worked example (N42).
    const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    #[test]
    fn accept_matches_rfc6455_example() {
        assert_eq!(accept_for(SAMPLE_KEY.as_bytes()), SAMPLE_ACCEPT);
    }

    /// RFC 6455 §4.1 (N40): 16-byte nonce, different every time.
    #[test]
    fn fresh_keys_are_valid_and_differ() {
        let first = fresh_key();
        let second = fresh_key();
        assert!(is_valid_key(first.as_bytes()));
        assert_eq!(first.len(), 24);
        assert_ne!(first, second);
    }

    #[test]
    fn keys_of_the_wrong_length_or_alphabet_are_invalid() {
        assert!(is_valid_key(SAMPLE_KEY.as_bytes()));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZQ=="));
        assert!(!is_valid_key(b"not base64 at all!!!!!!!"));
        assert!(!is_valid_key(b""));
    }
}
