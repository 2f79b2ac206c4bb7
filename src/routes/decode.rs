//! An uploaded file's bytes as text: UTF-8 as it is, anything else a text editor would open
//! (UTF-16 with its byte-order mark, the Windows and ISO code pages, KOI8-R, Shift_JIS, EUC-KR,
//! GBK, Big5) converted to UTF-8 with `encoding_rs`, the encoding told by the byte-order mark or
//! guessed by `chardetng`.
//!
//! A file that is *mostly* UTF-8 stays UTF-8: when at least [`UTF8_MAJORITY`] times as many
//! well-formed multi-byte characters as malformed sequences are in it (a file cut in the middle
//! of a character, as `head -c` does; a stray byte; a Latin-1 line in a UTF-8 file), each
//! malformed sequence is shown as U+FFFD and the page says how many bytes were replaced. Only a
//! file with (next to) no well-formed multi-byte character goes to the guess: a legacy file's
//! bytes above 0x7F are almost never well-formed UTF-8.
//!
//! Terminal escape sequences (the colours and cursor moves CI logs and `script` write: `ESC [
//! … m`, `ESC ] … BEL`, and the other `ESC` sequences) are text, not binary: they are removed,
//! and the page says how many were.
//!
//! Only what looks binary is refused (422), once decoded and with escape sequences removed:
//! - a NUL character (a `00` byte, or a `00 00` unit in UTF-16: text never holds one), or
//! - more than [`MAX_JUNK_PER_MILLE`] per mille of the characters U+FFFD (bytes that are no
//!   character) or control characters other than tab, line feed, carriage return and form
//!   feed: 10 in 1,000 pass, 11 in 1,000 do not.

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8};

use crate::routes::refusal::UploadError;

/// Characters per thousand that may be replacement or stray control characters before a file
/// counts as binary: a text with a few odd bytes is shown, a binary file is not.
pub const MAX_JUNK_PER_MILLE: usize = 10;

/// How many well-formed multi-byte UTF-8 characters per malformed sequence make a file that is
/// not valid UTF-8 count as UTF-8 all the same.
pub const UTF8_MAJORITY: usize = 2;

/// A decoded upload.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    /// Lines, ending at `\n` or `\r\n`.
    pub lines: usize,
    /// The encoding the file was converted from (`windows-1252`, `UTF-16LE`, …); `None` for
    /// UTF-8.
    pub converted_from: Option<&'static str>,
    /// Bytes of a (mostly) UTF-8 file that were no UTF-8 and are shown as U+FFFD.
    pub replaced_bytes: usize,
    /// Terminal escape sequences removed.
    pub escapes_removed: usize,
}

/// Decodes an uploaded file (see the module's rules). A UTF-8 byte-order mark is dropped.
pub fn decode_text(bytes: &[u8]) -> Result<Decoded, UploadError> {
    let mut replaced_bytes = 0;
    let (text, converted_from) = match Encoding::for_bom(bytes) {
        Some((encoding, bom)) if encoding == UTF_16LE || encoding == UTF_16BE => {
            let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
            (text.into_owned(), Some(encoding.name()))
        }
        Some((_, bom)) => {
            replaced_bytes = utf8_census(&bytes[bom..]).malformed_bytes;
            (utf8_lossy(&bytes[bom..]), None)
        }
        None => match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_owned(), None),
            Err(_) => {
                let census = utf8_census(bytes);
                if census.mostly_utf8() {
                    replaced_bytes = census.malformed_bytes;
                    (utf8_lossy(bytes), None)
                } else {
                    let encoding = guess(bytes);
                    let (text, _) = encoding.decode_without_bom_handling(bytes);
                    (text.into_owned(), Some(encoding.name()))
                }
            }
        },
    };
    let (text, escapes_removed) = strip_escapes(text);
    if text.contains('\0') || looks_binary(&text) {
        return Err(UploadError::NotText);
    }
    let lines = crate::routes::lines::lines(&text).count();
    Ok(Decoded {
        text,
        lines,
        converted_from,
        replaced_bytes,
        escapes_removed,
    })
}

/// UTF-8 with each malformed sequence replaced by U+FFFD (counted by the binary rule).
fn utf8_lossy(bytes: &[u8]) -> String {
    let (text, _) = UTF_8.decode_without_bom_handling(bytes);
    text.into_owned()
}

/// What a walk over bytes as UTF-8 found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Utf8Census {
    /// Well-formed characters of two bytes or more.
    multibyte: usize,
    /// Malformed sequences (each one U+FFFD once decoded), and their bytes.
    malformed: usize,
    malformed_bytes: usize,
}

impl Utf8Census {
    fn mostly_utf8(&self) -> bool {
        self.multibyte > 0 && self.multibyte >= UTF8_MAJORITY * self.malformed
    }
}

fn utf8_census(mut bytes: &[u8]) -> Utf8Census {
    let mut census = Utf8Census::default();
    loop {
        let (valid, rest) = match std::str::from_utf8(bytes) {
            Ok(valid) => (valid, None),
            Err(err) => {
                let (valid, rest) = bytes.split_at(err.valid_up_to());
                let valid = std::str::from_utf8(valid).expect("valid up to here");
                let bad = err.error_len().unwrap_or(rest.len());
                (valid, Some((bad, &rest[bad..])))
            }
        };
        census.multibyte += valid.chars().filter(|c| c.len_utf8() > 1).count();
        match rest {
            None => return census,
            Some((bad, rest)) => {
                census.malformed += 1;
                census.malformed_bytes += bad;
                bytes = rest;
            }
        }
    }
}

/// The encoding `chardetng` guesses for bytes that are not UTF-8.
fn guess(bytes: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    detector.guess(None, false)
}

/// `text` without its terminal escape sequences, and how many there were: CSI (`ESC [`,
/// parameters, a final byte), OSC (`ESC ]` to BEL or `ESC \\`), and the two- and three-byte
/// `ESC` sequences (charset designations, keypad modes). An `ESC` that starts none of them
/// stays (and counts as a control character).
fn strip_escapes(text: String) -> (String, usize) {
    if !text.contains('\u{1b}') {
        return (text, 0);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut at, mut kept_from, mut removed) = (0, 0, 0);
    while let Some(found) = memchr::memchr(0x1b, &bytes[at..]) {
        let esc = at + found;
        let end = escape_end(bytes, esc);
        if let Some(end) = end {
            out.push_str(&text[kept_from..esc]);
            kept_from = end;
            removed += 1;
            at = end;
        } else {
            at = esc + 1;
        }
    }
    out.push_str(&text[kept_from..]);
    (out, removed)
}

/// Where the escape sequence starting at `bytes[esc]` (an `ESC`) ends, if it is one.
fn escape_end(bytes: &[u8], esc: usize) -> Option<usize> {
    let next = *bytes.get(esc + 1)?;
    match next {
        b'[' => {
            let mut at = esc + 2;
            while let Some(&b) = bytes.get(at) {
                match b {
                    0x20..=0x3f => at += 1,
                    0x40..=0x7e => return Some(at + 1),
                    _ => return None,
                }
            }
            None
        }
        b']' => {
            let mut at = esc + 2;
            // At most a line's worth: a title or a hyperlink.
            while at < bytes.len() && at < esc + 4096 {
                match bytes[at] {
                    0x07 => return Some(at + 1),
                    0x1b if bytes.get(at + 1) == Some(&b'\\') => return Some(at + 2),
                    b'\n' => return None,
                    _ => at += 1,
                }
            }
            None
        }
        // Charset designations and the like: ESC, an intermediate byte, a final byte.
        0x20..=0x2f => match bytes.get(esc + 2) {
            Some(0x30..=0x7e) => Some(esc + 3),
            _ => None,
        },
        // ESC and one final byte: keypad modes, index, reset…
        0x30..=0x7e => Some(esc + 2),
        _ => None,
    }
}

/// Whether more than [`MAX_JUNK_PER_MILLE`] per mille of `text`'s characters are replacement
/// characters or control characters other than tab, line feed, carriage return and form feed.
fn looks_binary(text: &str) -> bool {
    let (mut chars, mut junk) = (0usize, 0usize);
    for c in text.chars() {
        chars += 1;
        let stray_control = c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}');
        if c == char::REPLACEMENT_CHARACTER || stray_control {
            junk += 1;
        }
    }
    junk * 1000 > chars * MAX_JUNK_PER_MILLE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(bytes: &[u8]) -> (String, usize, Option<&'static str>) {
        let d = decode_text(bytes).expect("text");
        (d.text, d.lines, d.converted_from)
    }

    #[test]
    fn utf8_is_kept_and_its_bom_dropped() {
        assert_eq!(
            decoded(b"\xEF\xBB\xBFone\r\ntwo\n\nfour\n"),
            ("one\r\ntwo\n\nfour\n".into(), 4, None)
        );
        assert_eq!(decoded(b"no newline").1, 1);
        assert_eq!(decoded(b"").1, 0);
    }

    #[test]
    fn utf16_with_a_bom_is_converted() {
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for unit in "Grüße\r\nПривет\n".encode_utf16() {
            le.extend(unit.to_le_bytes());
            be.extend(unit.to_be_bytes());
        }
        assert_eq!(
            decoded(&le),
            ("Grüße\r\nПривет\n".into(), 2, Some("UTF-16LE"))
        );
        assert_eq!(decoded(&be).2, Some("UTF-16BE"));
    }

    #[test]
    fn legacy_code_pages_are_detected_and_converted() {
        // "Café crème, naïve façade: déjà vu" in windows-1252.
        let latin = b"Caf\xE9 cr\xE8me, na\xEFve fa\xE7ade: d\xE9j\xE0 vu. \x93Quoted\x94 \x80 5\n";
        let (text, _, from) = decoded(latin);
        assert_eq!(from, Some("windows-1252"));
        assert!(text.starts_with("Café crème, naïve façade: déjà vu. “Quoted” € 5"));

        let (russian, _, _) = encoding_rs::WINDOWS_1251
            .encode("Съешь же ещё этих мягких французских булок, да выпей чаю.\n");
        let (text, _, from) = decoded(&russian);
        assert_eq!(from, Some("windows-1251"));
        assert!(text.starts_with("Съешь же ещё"), "{text}");

        let (japanese, _, _) =
            encoding_rs::SHIFT_JIS.encode("いろはにほへと ちりぬるを わかよたれそ つねならむ\n");
        assert_eq!(decoded(&japanese).2, Some("Shift_JIS"));
    }

    #[test]
    fn binary_is_refused() {
        assert_eq!(decode_text(b"abc\0def"), Err(UploadError::NotText));
        assert_eq!(
            decode_text(b"\xEF\xBB\xBFabc\0def"),
            Err(UploadError::NotText)
        );
        // Mostly control bytes, no NUL.
        let noise: Vec<u8> = (1u8..32).cycle().take(4096).collect();
        assert_eq!(decode_text(&noise), Err(UploadError::NotText));
        // A few stray control characters in a long text are shown.
        let mut text = "a line of text\n".repeat(100).into_bytes();
        text.push(0x1B);
        assert!(decode_text(&text).is_ok());
    }

    #[test]
    fn mostly_utf8_stays_utf8_with_its_bad_bytes_replaced_and_counted() {
        // Russian UTF-8 with one stray byte: not "converted from GBK".
        let mut russian = "Съешь же ещё этих мягких французских булок.\n"
            .repeat(100)
            .into_bytes();
        russian.insert(40, 0xFF);
        let d = decode_text(&russian).expect("text");
        assert_eq!(d.converted_from, None);
        assert_eq!(d.replaced_bytes, 1);
        assert!(d.text.starts_with("Съешь же ещё"), "{:.60}", d.text);
        assert_eq!(d.text.matches('\u{FFFD}').count(), 1);

        // Cut in the middle of a character, as `head -c` does: neither mojibake nor binary.
        for text in [
            "Größere Dateien, “quotes” — und mehr.\n".repeat(20),
            "Привет, мир! Как дела?\n".repeat(30),
            "いろはにほへと ちりぬるを\n".repeat(30),
        ] {
            // In the middle of the last character of more than one byte.
            let (at, last) = text
                .char_indices()
                .rfind(|(_, c)| c.len_utf8() > 1)
                .expect("a multi-byte character");
            let cut = &text.as_bytes()[..at + last.len_utf8() - 1];
            let d = decode_text(cut).expect("a cut file is text");
            assert_eq!(d.converted_from, None, "{:.30}", d.text);
            assert!(d.text.starts_with(&text[..12]));
            assert!(d.replaced_bytes > 0 && d.replaced_bytes < 4);
        }

        // 100 good UTF-8 lines and one Latin-1 line: the good lines stay good.
        let mut mixed = "Grüße aus München\n".repeat(100).into_bytes();
        mixed.extend(b"Caf\xE9 cr\xE8me br\xFBl\xE9e\n");
        let d = decode_text(&mixed).expect("text");
        assert_eq!(d.converted_from, None);
        assert_eq!(d.replaced_bytes, 4);
        assert!(d.text.starts_with("Grüße aus München\n"));

        // A legacy file has (next to) no well-formed multi-byte character: still converted.
        let latin = b"Caf\xE9 cr\xE8me, na\xEFve fa\xE7ade\n".repeat(10);
        assert_eq!(
            decode_text(&latin).expect("text").converted_from,
            Some("windows-1252")
        );
    }

    #[test]
    fn terminal_escape_sequences_are_removed_and_counted() {
        let log = "\x1b[32m ok \x1b[0m test one\n\x1b[1;31mFAILED\x1b[0m two\n\x1b]0;title\x07done\x1b(B\n";
        let d = decode_text(log.as_bytes()).expect("a log is text");
        assert_eq!(d.text, " ok  test one\nFAILED two\ndone\n");
        assert_eq!(d.escapes_removed, 6);
        // A lone ESC is not a sequence: it stays, a control character.
        let (text, removed) = strip_escapes("a\x1b\nb\x1b".to_owned());
        assert_eq!((text.as_str(), removed), ("a\x1b\nb\x1b", 0));
        // Colour codes on every line of a long log are not "binary".
        let long = "\x1b[36m[12:00:01]\x1b[0m step\n".repeat(1_000);
        assert!(decode_text(long.as_bytes()).is_ok());
    }

    #[test]
    fn the_binary_rule_holds_at_its_edges() {
        // 10 stray control characters in 1,000 characters pass; 11 do not.
        let text = |junk: usize| {
            let mut text = "x".repeat(1_000 - junk);
            text.push_str(&"\u{1}".repeat(junk));
            text
        };
        assert!(decode_text(text(10).as_bytes()).is_ok());
        assert_eq!(decode_text(text(11).as_bytes()), Err(UploadError::NotText));
        // Replaced bytes count the same way.
        let mut bytes = "é".repeat(500).into_bytes(); // 500 characters
        bytes.extend([0xFF; 5]);
        assert!(decode_text(&bytes).is_ok(), "5 in 505");
        let mut more = "é".repeat(500).into_bytes();
        more.extend([0xFF, b'a'].repeat(6));
        assert_eq!(decode_text(&more), Err(UploadError::NotText), "6 in 512");
        // Tab, line feed, carriage return and form feed are text.
        assert!(decode_text("a\tb\r\nc\u{c}d\n".repeat(100).as_bytes()).is_ok());
    }
}
