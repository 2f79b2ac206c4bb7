//! The key an upload rotates a session to. It is derived, not drawn: an HMAC under a server
//! secret of the old key, the new state and the uploaded file's SHA-256. The same upload sent
//! again with the same old key (the second request of a double click, a browser retrying after
//! a lost reply, a rotation run again after a lost database connection) arrives at the same
//! key, so the store can tell it from any other upload: the old record names its successor's
//! id, and only a request holding the old key and the same file computes that id again. It is
//! then answered as the success it was, with the new key.
//!
//! Nothing of it is stored: the record keeps the SHA-256 of the new key as its id, as every
//! record does, and the file's digest lives only while the request does. Without the server
//! secret (which stays in the process, derived from `SECRET_KEY`), no one computes a successor
//! key, even holding the old key and the file.

use actix_session::storage::SessionKey;
use ring::{hkdf, hmac};
use sha2::{Digest, Sha256};

/// The digest an uploaded file is recognised by: its text's SHA-256.
pub type FileDigest = [u8; 32];

/// The SHA-256 of `text`, computed where the file is decoded (off the request's thread for a
/// big one).
pub fn file_digest(text: &str) -> FileDigest {
    Sha256::digest(text.as_bytes()).into()
}

/// The characters of a session key, as `actix_session::storage::generate_session_key` draws
/// them.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The server secret rotations are derived under. Cheap to clone.
#[derive(Clone)]
pub struct RotationKey(hmac::Key);

impl RotationKey {
    /// A secret for this process only: retries are recognised until it restarts.
    pub fn random() -> Self {
        let rng = ring::rand::SystemRandom::new();
        Self(hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system's random source"))
    }

    /// The secret derived from the cookie key material `master` (HKDF-SHA256, a label of its
    /// own), so that every instance sharing `SECRET_KEY` derives the same keys.
    pub fn derived_from(master: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"textdrop").extract(master);
        let okm = prk
            .expand(&[b"session key rotation"], hmac::HMAC_SHA256)
            .expect("an HMAC key's length is a valid HKDF output");
        Self(hmac::Key::from(okm))
    }

    /// The key a rotation from `old` to `state` with a file of digest `file` gives: 64
    /// characters of the alphabet session keys use.
    pub fn successor(&self, old: &SessionKey, state: &str, file: &FileDigest) -> SessionKey {
        let mut chars = String::with_capacity(64);
        for block in [1u8, 2] {
            let mut mac = hmac::Context::with_key(&self.0);
            mac.update(b"textdrop rotation v1\0");
            mac.update(&[block]);
            mac.update(old.as_ref().as_bytes());
            mac.update(b"\0");
            mac.update(&Sha256::digest(state.as_bytes()));
            mac.update(file);
            let tag = mac.sign();
            chars.extend(
                tag.as_ref()
                    .iter()
                    .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()])),
            );
        }
        SessionKey::try_from(chars).expect("64 characters make a session key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> SessionKey {
        SessionKey::try_from(c.to_string().repeat(64)).expect("a key")
    }

    #[test]
    fn the_same_upload_from_the_same_key_rotates_to_the_same_key_and_nothing_else_does() {
        let secret = RotationKey::derived_from(b"0123456789abcdef0123456789abcdef");
        let file = file_digest("a line\n");
        let first = secret.successor(&key('a'), "{\"file\":1}", &file);
        assert_eq!(first.as_ref().len(), 64);
        assert!(first.as_ref().bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(
            secret.successor(&key('a'), "{\"file\":1}", &file).as_ref(),
            first.as_ref()
        );
        for other in [
            secret.successor(&key('b'), "{\"file\":1}", &file),
            secret.successor(&key('a'), "{\"file\":2}", &file),
            secret.successor(&key('a'), "{\"file\":1}", &file_digest("another line\n")),
            RotationKey::derived_from(b"another secret, also 32 bytes long").successor(
                &key('a'),
                "{\"file\":1}",
                &file,
            ),
            RotationKey::random().successor(&key('a'), "{\"file\":1}", &file),
        ] {
            assert_ne!(other.as_ref(), first.as_ref());
        }
    }
}
