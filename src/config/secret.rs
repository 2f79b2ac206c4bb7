//! The session cookie's key material, which never shows in logs or `Debug` output.

use std::fmt;

/// Key material for the session cookie. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// The least key material `Key::derive_from` accepts.
    pub const MIN_LEN: usize = 32;

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl TryFrom<&str> for SecretKey {
    type Error = String;

    fn try_from(value: &str) -> Result<Self, String> {
        if value.len() < Self::MIN_LEN {
            return Err(format!(
                "must be at least {} bytes long (it is {}); generate one with `openssl rand -hex 32`",
                Self::MIN_LEN,
                value.len()
            ));
        }
        Ok(Self(value.as_bytes().to_vec()))
    }
}
