//! The key a rotation gives a session. It is derived, not drawn: an HMAC under a server secret
//! of the old key, the new state and the attachment's SHA-256. The same write sent again with
//! the same old key (the second request of a double click, a browser retrying after a lost
//! reply, a rotation run again after a lost database connection) arrives at the same key, so
//! the store can tell it from any other: the old record names its successor's id, and only a
//! request holding the old key, the same state and the same attachment computes that id again.
//! It is then answered as the success it was, with the new key.
//!
//! Nothing of it is stored: the record keeps the SHA-256 of the new key as its id, as every
//! record does, and the attachment's digest lives only while the request does. Without the
//! server secret (which stays in the process, derived from the application's key material), no
//! one computes a successor key, even holding the old key and the attachment.

use actix_session::storage::SessionKey;
use ring::{hkdf, hmac};
use sha2::{Digest, Sha256};

/// The digest an attachment is recognised by: its text's SHA-256.
pub(crate) type AttachmentDigest = [u8; 32];

/// The SHA-256 of `text`.
pub(crate) fn attachment_digest(text: &str) -> AttachmentDigest {
    Sha256::digest(text.as_bytes()).into()
}

/// The characters of a session key, as `actix_session::storage::generate_session_key` draws
/// them.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The server secret rotated keys are derived under. Cheap to clone; `Debug` shows nothing of
/// it.
#[derive(Clone)]
pub struct RotationKey {
    key: hmac::Key,
    /// What every MAC starts with: the label, so that two applications never derive the same
    /// keys.
    domain: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for RotationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotationKey(…)")
    }
}

impl RotationKey {
    /// A secret for this process only: retries are recognised until it restarts.
    pub fn random() -> Self {
        let rng = ring::rand::SystemRandom::new();
        Self {
            key: hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system's random source"),
            domain: Self::domain("session key"),
        }
    }

    /// The secret derived from key material `master` (the cookie key's, say) and a `label`
    /// naming the application (HKDF-SHA256: the label is the salt), so that every instance
    /// sharing both derives the same keys and recognises a write sent again to another one.
    ///
    /// ```
    /// use actix_session_stores::RotationKey;
    ///
    /// let key = RotationKey::derived_from(&[7; 64], "my-app");
    /// assert_eq!(format!("{key:?}"), "RotationKey(…)");
    /// ```
    pub fn derived_from(master: &[u8], label: &str) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, label.as_bytes()).extract(master);
        let okm = prk
            .expand(&[b"session key rotation"], hmac::HMAC_SHA256)
            .expect("an HMAC key's length is a valid HKDF output");
        Self {
            key: hmac::Key::from(okm),
            domain: Self::domain(label),
        }
    }

    fn domain(label: &str) -> std::sync::Arc<[u8]> {
        format!("{label} rotation v1\0").into_bytes().into()
    }

    /// The key a rotation from `old` to `state` with an attachment of digest `attachment`
    /// gives: 64 characters of the alphabet session keys use.
    pub(crate) fn successor(
        &self,
        old: &SessionKey,
        state: &str,
        attachment: &AttachmentDigest,
    ) -> SessionKey {
        let mut chars = String::with_capacity(64);
        for block in [1u8, 2] {
            let mut mac = hmac::Context::with_key(&self.key);
            mac.update(&self.domain);
            mac.update(&[block]);
            mac.update(old.as_ref().as_bytes());
            mac.update(b"\0");
            mac.update(&Sha256::digest(state.as_bytes()));
            mac.update(attachment);
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
        let secret = RotationKey::derived_from(b"0123456789abcdef0123456789abcdef", "app");
        let file = attachment_digest("a line\n");
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
            secret.successor(
                &key('a'),
                "{\"file\":1}",
                &attachment_digest("another line\n"),
            ),
            RotationKey::derived_from(b"another secret, also 32 bytes long", "app").successor(
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
