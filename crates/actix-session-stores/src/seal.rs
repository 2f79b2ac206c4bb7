//! Sealed records: a record's state and attachment are compressed, then sealed under a key
//! derived from the visitor's own session key, so that a copy of the storage (a dump, a
//! backup, a replica, a Redis RDB file, a `copy_sessions` destination) reveals none of them.
//! The server never holds that key between requests: only the cookie does.
//!
//! - The key: HKDF-SHA256 of the session key, one output per purpose (state, attachment).
//! - The seal: ChaCha20-Poly1305 with a random 96-bit nonce stored beside the value, and as
//!   associated data the format's version, the purpose, the record's stored id (so that a
//!   sealed value moved into another row does not open) and the value's header.
//! - The header: whether the bytes are zstd-compressed (level 3, chosen by measurement: see
//!   docs/benchmarks.md, "Codecs") and the decoded length, which bounds decompression: a
//!   value cannot expand past what was written.
//! - The stored form is text, so that every backend keeps it in the column or field it has
//!   (no table rewrite, no migration): `s1.` followed by the URL-safe base64 of
//!   `flags (1) | decoded length (4, big-endian) | nonce (12) | ciphertext | tag (16)`.
//!
//! A stored state that does not start with `s1.` was written before sealing (it is JSON, so it
//! starts with `{`); its record stays plain, attachment included, until it expires.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use crate::session::records::{StoreError, StoreResult};

/// What every sealed value starts with: the format, version 1.
pub const PREFIX: &str = "s1.";

/// Values shorter than this are sealed without compression (a state of a few fields gains
/// nothing from it).
const COMPRESS_FROM: usize = 256;

/// The zstd level (docs/benchmarks.md, "Codecs": 10 MB of text in 1/4.8 to 1/6.4 of its size
/// in about 50 ms, opened in about 10 ms).
const LEVEL: i32 = 3;

/// Values at least this long are sealed and opened on the blocking pool, not on the worker:
/// zstd 3 takes about 5 µs per KB to compress, so 16 KiB is about 80 µs.
pub const OFF_WORKER_FROM: usize = 16 * 1024;

/// The longest value that opens: a recorded length above it is refused before anything is
/// allocated.
pub const MAX_DECODED: usize = 1 << 30;

const COMPRESSED: u8 = 1;
const HEADER: usize = 1 + 4;
const TAG: usize = 16;
const SALT: &[u8] = b"actix-session-stores/seal/v1";

/// What a sealed value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The session state.
    State,
    /// The attachment.
    Attachment,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::State => b"state",
            Purpose::Attachment => b"attachment",
        }
    }
}

/// Why a sealed value did not open. Its message never holds the key or the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Not the stored form of a sealed value (truncated, not base64).
    #[error("a sealed value is malformed")]
    Malformed,
    /// The seal does not verify: tampered with, moved from another record, or sealed under
    /// another key.
    #[error(
        "a sealed value does not open under this session's key (tampered, moved or another key)"
    )]
    Refused,
    /// The recorded length is past [`MAX_DECODED`], or the decompressed bytes do not match it.
    #[error("a sealed value does not decompress to its recorded length")]
    Length,
    /// The opened bytes are not UTF-8 text.
    #[error("a sealed value is not text")]
    NotText,
}

/// The keys one session key derives: one per purpose.
pub struct SealKeys {
    state: LessSafeKey,
    attachment: LessSafeKey,
}

impl SealKeys {
    /// The keys of `session_key` (HKDF-SHA256, a label per purpose).
    pub fn of(session_key: &str) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(session_key.as_bytes());
        let derive = |purpose: Purpose| {
            let info = [purpose.label()];
            let okm = prk
                .expand(&info, &CHACHA20_POLY1305)
                .expect("one ChaCha20-Poly1305 key is within HKDF-SHA256's output length");
            LessSafeKey::new(UnboundKey::from(okm))
        };
        Self {
            state: derive(Purpose::State),
            attachment: derive(Purpose::Attachment),
        }
    }

    /// The key of `purpose` alone, to move to another thread.
    pub fn take(self, purpose: Purpose) -> PurposeKey {
        let key = match purpose {
            Purpose::State => self.state,
            Purpose::Attachment => self.attachment,
        };
        PurposeKey { key, purpose }
    }

    /// Seals `plain`, the `purpose` value of the record stored under `id`.
    pub fn seal(&self, purpose: Purpose, id: &str, plain: &str) -> String {
        seal_with(self.key(purpose), purpose, id, plain)
    }

    /// Opens `stored`, the sealed `purpose` value of the record stored under `id`.
    pub fn open(&self, purpose: Purpose, id: &str, stored: &str) -> Result<String, OpenError> {
        open_with(self.key(purpose), purpose, id, stored)
    }

    fn key(&self, purpose: Purpose) -> &LessSafeKey {
        match purpose {
            Purpose::State => &self.state,
            Purpose::Attachment => &self.attachment,
        }
    }
}

/// One purpose's key, which can move to the blocking pool with the value.
pub struct PurposeKey {
    key: LessSafeKey,
    purpose: Purpose,
}

impl PurposeKey {
    /// [`SealKeys::seal`] with this key.
    pub fn seal(&self, id: &str, plain: &str) -> String {
        seal_with(&self.key, self.purpose, id, plain)
    }

    /// [`SealKeys::open`] with this key.
    pub fn open(&self, id: &str, stored: &str) -> Result<String, OpenError> {
        open_with(&self.key, self.purpose, id, stored)
    }
}

/// The longest stored form of a value of `plain_len` bytes (one that does not compress).
pub fn stored_len_at_most(plain_len: usize) -> usize {
    PREFIX.len() + (HEADER + NONCE_LEN + plain_len + TAG).div_ceil(3) * 4
}

/// Whether `stored` is a sealed value (rather than one written before sealing).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

fn aad(purpose: Purpose, id: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(PREFIX.len() + 12 + id.len() + HEADER);
    aad.extend_from_slice(PREFIX.as_bytes());
    aad.extend_from_slice(purpose.label());
    aad.push(0);
    aad.extend_from_slice(id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(header);
    aad
}

thread_local! {
    /// This thread's zstd contexts for values shorter than [`OFF_WORKER_FROM`] (a worker's:
    /// making a context costs more than compressing a 2 KB value). Longer values, on the
    /// blocking pool, get a context of their own, freed with them.
    static CONTEXTS: std::cell::RefCell<Option<(zstd::bulk::Compressor<'static>, zstd::bulk::Decompressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `work` on this thread's contexts (made on first use); `None` when they cannot be made.
fn with_contexts<T>(
    work: impl FnOnce(
        &mut zstd::bulk::Compressor<'static>,
        &mut zstd::bulk::Decompressor<'static>,
    ) -> Option<T>,
) -> Option<T> {
    CONTEXTS.with(|contexts| {
        let mut contexts = contexts.borrow_mut();
        if contexts.is_none() {
            *contexts = Some((
                zstd::bulk::Compressor::new(LEVEL).ok()?,
                zstd::bulk::Decompressor::new().ok()?,
            ));
        }
        let (compressor, decompressor) = contexts.as_mut()?;
        work(compressor, decompressor)
    })
}

fn compress(plain: &[u8]) -> Option<Vec<u8>> {
    if plain.len() < OFF_WORKER_FROM {
        with_contexts(|compressor, _| compressor.compress(plain).ok())
    } else {
        zstd::bulk::compress(plain, LEVEL).ok()
    }
}

/// At most `decoded` bytes out of `payload`.
fn decompress(payload: &[u8], decoded: usize) -> Option<Vec<u8>> {
    if decoded < OFF_WORKER_FROM {
        with_contexts(|_, decompressor| decompressor.decompress(payload, decoded).ok())
    } else {
        zstd::bulk::decompress(payload, decoded).ok()
    }
}

fn seal_with(key: &LessSafeKey, purpose: Purpose, id: &str, plain: &str) -> String {
    let plain = plain.as_bytes();
    let compressed = (plain.len() >= COMPRESS_FROM)
        .then(|| compress(plain))
        .flatten()
        .filter(|packed| packed.len() < plain.len());
    let (flags, payload): (u8, &[u8]) = match &compressed {
        Some(packed) => (COMPRESSED, packed),
        None => (0, plain),
    };
    let decoded = u32::try_from(plain.len()).expect("a sealed value is below 4 GiB");
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .expect("the system's random source works");
    seal_payload(key, purpose, id, [flags.into(), decoded], nonce, payload)
}

/// The stored form of `payload` (compressed or not, as `flags` says, of `decoded` bytes when
/// opened) sealed with `nonce`.
fn seal_payload(
    key: &LessSafeKey,
    purpose: Purpose,
    id: &str,
    [flags, decoded]: [u32; 2],
    nonce: [u8; NONCE_LEN],
    payload: &[u8],
) -> String {
    let mut body = Vec::with_capacity(HEADER + NONCE_LEN + payload.len() + TAG);
    body.push(flags as u8);
    body.extend_from_slice(&decoded.to_be_bytes());
    body.extend_from_slice(&nonce);
    let start = body.len();
    body.extend_from_slice(payload);
    let aad = aad(purpose, id, &body[..HEADER]);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut body[start..],
        )
        .expect("ChaCha20-Poly1305 seals any length below 256 GiB");
    body.extend_from_slice(tag.as_ref());
    let mut out = String::with_capacity(PREFIX.len() + body.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(&body, &mut out);
    out
}

fn open_with(
    key: &LessSafeKey,
    purpose: Purpose,
    id: &str,
    stored: &str,
) -> Result<String, OpenError> {
    let encoded = stored.strip_prefix(PREFIX).ok_or(OpenError::Malformed)?;
    let mut body = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| OpenError::Malformed)?;
    if body.len() < HEADER + NONCE_LEN + TAG {
        return Err(OpenError::Malformed);
    }
    let header: [u8; HEADER] = body[..HEADER].try_into().expect("checked length");
    let nonce: [u8; NONCE_LEN] = body[HEADER..HEADER + NONCE_LEN]
        .try_into()
        .expect("checked length");
    let aad = aad(purpose, id, &header);
    let payload = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut body[HEADER + NONCE_LEN..],
        )
        .map_err(|_| OpenError::Refused)?;
    let decoded = u32::from_be_bytes(header[1..].try_into().expect("four bytes")) as usize;
    if decoded > MAX_DECODED {
        return Err(OpenError::Length);
    }
    let bytes = if header[0] & COMPRESSED != 0 {
        decompress(payload, decoded).ok_or(OpenError::Length)?
    } else {
        payload.to_vec()
    };
    if bytes.len() != decoded {
        return Err(OpenError::Length);
    }
    String::from_utf8(bytes).map_err(|_| OpenError::NotText)
}

/// Seals `plain` with `key`; a long value on the blocking pool.
pub async fn seal_off_worker(key: PurposeKey, id: String, plain: String) -> StoreResult<String> {
    if plain.len() < OFF_WORKER_FROM {
        return Ok(key.seal(&id, &plain));
    }
    actix_web::web::block(move || key.seal(&id, &plain))
        .await
        .map_err(|err| StoreError::failed(format!("sealing a value: {err}")))
}

/// Opens `stored` with `key`; a long value on the blocking pool.
pub async fn open_off_worker(
    key: PurposeKey,
    id: String,
    stored: String,
) -> StoreResult<Result<String, OpenError>> {
    if stored.len() < OFF_WORKER_FROM {
        return Ok(key.open(&id, &stored));
    }
    actix_web::web::block(move || key.open(&id, &stored))
        .await
        .map_err(|err| StoreError::failed(format!("opening a sealed value: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a-session-key-of-the-kind-actix-session-generates-0123456789abcd";
    const ID: &str = "0f3a";

    fn log_text(lines: usize) -> String {
        (0..lines)
            .map(|i| {
                format!(
                    "2026-12-06T12:00:{:02} GET /page/{i} 200 {}\n",
                    i % 60,
                    i * 7
                )
            })
            .collect()
    }

    #[test]
    fn a_sealed_value_opens_under_its_key_and_shows_nothing_of_itself() {
        let keys = SealKeys::of(KEY);
        for plain in ["", "{\"n\":1}", &log_text(2000)] {
            let sealed = keys.seal(Purpose::Attachment, ID, plain);
            assert!(is_sealed(&sealed));
            if !plain.is_empty() {
                assert!(!sealed.contains("GET /page"), "the text shows through");
            }
            assert_eq!(
                keys.open(Purpose::Attachment, ID, &sealed).as_deref(),
                Ok(plain)
            );
        }
    }

    #[test]
    fn a_value_that_does_not_compress_takes_its_bound_at_most() {
        let keys = SealKeys::of(KEY);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: String = (0..100_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'!' + (state % 94) as u8)
            })
            .collect();
        let sealed = keys.seal(Purpose::Attachment, ID, &noise);
        assert!(sealed.len() <= stored_len_at_most(noise.len()));
        assert!(sealed.len() > noise.len(), "noise compressed by base64?");
    }

    #[test]
    fn text_is_compressed_and_two_seals_of_one_value_differ() {
        let keys = SealKeys::of(KEY);
        let plain = log_text(20_000);
        let one = keys.seal(Purpose::Attachment, ID, &plain);
        let two = keys.seal(Purpose::Attachment, ID, &plain);
        assert_ne!(one, two, "a nonce was reused");
        assert!(
            one.len() * 4 < plain.len(),
            "{} bytes stored for {}",
            one.len(),
            plain.len()
        );
    }

    #[test]
    fn another_key_id_purpose_or_byte_does_not_open() {
        let keys = SealKeys::of(KEY);
        let sealed = keys.seal(Purpose::State, ID, "{\"file\":\"secret.txt\"}");
        let other = SealKeys::of("another-session-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG");
        assert_eq!(
            other.open(Purpose::State, ID, &sealed),
            Err(OpenError::Refused)
        );
        assert_eq!(
            keys.open(Purpose::State, "0f3b", &sealed),
            Err(OpenError::Refused)
        );
        assert_eq!(
            keys.open(Purpose::Attachment, ID, &sealed),
            Err(OpenError::Refused)
        );
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).expect("ASCII");
        assert_eq!(
            keys.open(Purpose::State, ID, &changed),
            Err(OpenError::Refused)
        );
        let truncated = &sealed[..sealed.len() - 30];
        assert!(keys.open(Purpose::State, ID, truncated).is_err());
        assert_eq!(
            keys.open(Purpose::State, ID, "s1.!!"),
            Err(OpenError::Malformed)
        );
        assert_eq!(
            keys.open(Purpose::State, ID, "{}"),
            Err(OpenError::Malformed)
        );
    }

    /// What one read of a 40-line, 2.5 KB file costs: the keys derived, the state and the
    /// file opened (`cargo test --release -p actix-session-stores --lib seal_cost -- --ignored
    /// --nocapture`; the figure is in docs/benchmarks.md).
    #[test]
    #[ignore = "a measurement, run by hand in release"]
    fn seal_cost() {
        let state = r#"{"v":1,"state":{"file":{"name":"notes.txt","size":2560,"lines":40}}}"#;
        let file = log_text(40);
        let keys = SealKeys::of(KEY);
        let sealed_state = keys.seal(Purpose::State, ID, state);
        let sealed_file = keys.seal(Purpose::Attachment, ID, &file);
        let mut times = Vec::new();
        for _ in 0..21 {
            let started = std::time::Instant::now();
            for _ in 0..1000 {
                let keys = SealKeys::of(KEY);
                let s = keys.open(Purpose::State, ID, &sealed_state).expect("opens");
                let f = keys
                    .open(Purpose::Attachment, ID, &sealed_file)
                    .expect("opens");
                std::hint::black_box((s, f));
            }
            times.push(started.elapsed() / 1000);
        }
        times.sort();
        let open = times[10];
        let mut times = Vec::new();
        for _ in 0..21 {
            let started = std::time::Instant::now();
            for _ in 0..1000 {
                let keys = SealKeys::of(KEY);
                let s = keys.seal(Purpose::State, ID, state);
                let f = keys.seal(Purpose::Attachment, ID, &file);
                std::hint::black_box((s, f));
            }
            times.push(started.elapsed() / 1000);
        }
        times.sort();
        println!(
            "file {} bytes, stored {}; open (keys, state, file): {:?}; seal: {:?} (medians of 21 × 1000)",
            file.len(),
            sealed_file.len(),
            open,
            times[10]
        );
    }

    /// A long value is sealed and opened on the blocking pool: the worker's other tasks run
    /// meanwhile (on the worker itself they could not, its runtime has one thread).
    #[actix_web::test]
    async fn a_long_value_is_sealed_and_opened_off_the_worker() {
        use std::cell::Cell;
        use std::rc::Rc;
        let plain = log_text(150_000);
        assert!(plain.len() > 6 << 20);
        let ticks = Rc::new(Cell::new(0u32));
        let ticker = actix_web::rt::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    actix_web::rt::time::sleep(std::time::Duration::from_millis(1)).await;
                    ticks.set(ticks.get() + 1);
                }
            }
        });
        actix_web::rt::time::sleep(std::time::Duration::from_millis(5)).await;
        let key = || SealKeys::of(KEY).take(Purpose::Attachment);
        let before = ticks.get();
        let started = std::time::Instant::now();
        let sealed = seal_off_worker(key(), ID.into(), plain.clone())
            .await
            .expect("sealed");
        let sealing = (ticks.get() - before, started.elapsed());
        let before = ticks.get();
        let started = std::time::Instant::now();
        let opened = open_off_worker(key(), ID.into(), sealed)
            .await
            .expect("ran")
            .expect("opens");
        let opening = (ticks.get() - before, started.elapsed());
        ticker.abort();
        assert_eq!(opened, plain);
        // Only meaningful when the work took a few milliseconds, as it does for 6 MB.
        for (ticks, took) in [sealing, opening] {
            if took > std::time::Duration::from_millis(20) {
                assert!(
                    ticks >= 2,
                    "{ticks} ticks in {took:?}: the worker was blocked"
                );
            }
        }
    }

    #[test]
    fn decompression_stops_at_the_recorded_length() {
        // A value sealed under the right key whose payload expands past its recorded length
        // (what a forged header would claim) does not open.
        let keys = SealKeys::of(KEY);
        let bomb = zstd::bulk::compress(&vec![b'a'; 1 << 20], 19).expect("compress");
        let stored = seal_payload(
            keys.key(Purpose::Attachment),
            Purpose::Attachment,
            ID,
            [u32::from(COMPRESSED), 1000],
            [7u8; NONCE_LEN],
            &bomb,
        );
        assert_eq!(
            keys.open(Purpose::Attachment, ID, &stored),
            Err(OpenError::Length)
        );
    }
}
