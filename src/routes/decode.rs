//! An uploaded file's bytes as text: UTF-8 as it is, anything else a text editor would open
//! (UTF-16 with its byte-order mark, the Windows and ISO code pages, KOI8-R, Shift_JIS, EUC-KR,
//! GBK, Big5) converted to UTF-8 with `encoding_rs`, the encoding told by the byte-order mark or
//! guessed by `chardetng`. Only what looks binary is refused:
//!
//! - a NUL character once decoded (a `00` byte, or a `00 00` unit in UTF-16: text never holds
//!   one), or
//! - once decoded, more than [`MAX_JUNK_PER_MILLE`] per mille of the characters are U+FFFD
//!   (bytes the encoding has no character for) or control characters other than tab, line
//!   feed, carriage return and form feed.

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8};

use crate::routes::refusal::UploadError;

/// Characters per thousand that may be replacement or stray control characters before a file
/// counts as binary: a text with a few odd bytes is shown, a binary file is not.
pub const MAX_JUNK_PER_MILLE: usize = 10;

/// A decoded upload.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    /// Lines, ending at `\n` or `\r\n`.
    pub lines: usize,
    /// The encoding the file was converted from (`windows-1252`, `UTF-16LE`, …); `None` for
    /// UTF-8.
    pub converted_from: Option<&'static str>,
}

/// Decodes an uploaded file (see the module's rules). A UTF-8 byte-order mark is dropped.
pub fn decode_text(bytes: &[u8]) -> Result<Decoded, UploadError> {
    let (text, converted_from) = match Encoding::for_bom(bytes) {
        Some((encoding, bom)) if encoding == UTF_16LE || encoding == UTF_16BE => {
            let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
            (text.into_owned(), Some(encoding.name()))
        }
        Some((_, bom)) => (utf8_after_bom(&bytes[bom..]), None),
        None => match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_owned(), None),
            Err(_) => {
                let encoding = guess(bytes);
                let (text, _) = encoding.decode_without_bom_handling(bytes);
                (text.into_owned(), Some(encoding.name()))
            }
        },
    };
    if text.contains('\0') || looks_binary(&text) {
        return Err(UploadError::NotText);
    }
    let lines = text.lines().count();
    Ok(Decoded {
        text,
        lines,
        converted_from,
    })
}

/// After a UTF-8 byte-order mark: the text, with any invalid sequence replaced (and counted by
/// the binary rule).
fn utf8_after_bom(bytes: &[u8]) -> String {
    let (text, _) = UTF_8.decode_without_bom_handling(bytes);
    text.into_owned()
}

/// The encoding `chardetng` guesses for bytes that are not UTF-8.
fn guess(bytes: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    detector.guess(None, false)
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

/// How a text's lines end, as the file page says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LineEndings {
    /// No line break at all.
    None,
    #[serde(rename = "LF")]
    Lf,
    #[serde(rename = "CRLF")]
    Crlf,
    #[serde(rename = "mixed (LF and CRLF)")]
    Mixed,
}

/// The line-ending style of `text`, and whether it ends without a newline (a non-empty text
/// whose last line has no line break).
pub fn line_endings(text: &str) -> (LineEndings, bool) {
    let (mut lf, mut crlf) = (0usize, 0usize);
    let bytes = text.as_bytes();
    for (at, _) in text.match_indices('\n') {
        if at > 0 && bytes[at - 1] == b'\r' {
            crlf += 1;
        } else {
            lf += 1;
        }
    }
    let style = match (lf, crlf) {
        (0, 0) => LineEndings::None,
        (_, 0) => LineEndings::Lf,
        (0, _) => LineEndings::Crlf,
        _ => LineEndings::Mixed,
    };
    (style, !text.is_empty() && !text.ends_with('\n'))
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
    fn line_endings_are_told_apart() {
        assert_eq!(line_endings("a\nb\n"), (LineEndings::Lf, false));
        assert_eq!(line_endings("a\r\nb"), (LineEndings::Crlf, true));
        assert_eq!(line_endings("a\r\nb\n"), (LineEndings::Mixed, false));
        assert_eq!(line_endings("one line"), (LineEndings::None, true));
        assert_eq!(line_endings(""), (LineEndings::None, false));
    }
}
