//! How textdrop cuts a text into lines, the same way everywhere (the line count at upload, the
//! pages, search, the line-ending census): a line ends at `\n`, at `\r\n`, or at a `\r` not
//! followed by `\n` (old Mac files, and the carriage returns a progress bar writes over itself).
//! A last line without an ending counts; a text's final ending starts no empty line, as with
//! `str::lines`.

/// The lines of `text` from byte `from` on (which must start a line), each with the byte
/// offset it starts at, its ending not included: found with `memchr2`, bytes at a time.
pub fn lines_from(text: &str, from: usize) -> impl Iterator<Item = (usize, &str)> {
    let bytes = text.as_bytes();
    let mut at = from;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let start = at;
        let (end, next) = match memchr::memchr2(b'\n', b'\r', &bytes[start..]) {
            Some(i) => {
                let end = start + i;
                let next = if bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n') {
                    end + 2
                } else {
                    end + 1
                };
                (end, next)
            }
            None => (bytes.len(), bytes.len()),
        };
        at = next;
        Some((start, &text[start..end]))
    })
}

/// The lines of `text`, as [`lines_from`] cuts them.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    lines_from(text, 0).map(|(_, line)| line)
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
    #[serde(rename = "CR (classic Mac)")]
    Cr,
    #[serde(rename = "mixed")]
    Mixed,
}

/// The line-ending style of `text`, and whether it ends without a line break (a non-empty
/// text whose last line has no ending).
pub fn line_endings(text: &str) -> (LineEndings, bool) {
    let (mut lf, mut crlf, mut cr) = (0usize, 0usize, 0usize);
    let bytes = text.as_bytes();
    for at in memchr::memchr2_iter(b'\n', b'\r', bytes) {
        match bytes[at] {
            b'\n' if at > 0 && bytes[at - 1] == b'\r' => crlf += 1,
            b'\n' => lf += 1,
            _ if bytes.get(at + 1) == Some(&b'\n') => {}
            _ => cr += 1,
        }
    }
    let style = match (lf, crlf, cr) {
        (0, 0, 0) => LineEndings::None,
        (_, 0, 0) => LineEndings::Lf,
        (0, _, 0) => LineEndings::Crlf,
        (0, 0, _) => LineEndings::Cr,
        _ => LineEndings::Mixed,
    };
    let open = !text.is_empty() && !text.ends_with('\n') && !text.ends_with('\r');
    (style, open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str) -> Vec<&str> {
        lines(text).collect()
    }

    #[test]
    fn every_ending_ends_a_line() {
        assert_eq!(cut("a\nb\n"), ["a", "b"]);
        assert_eq!(cut("a\r\nb"), ["a", "b"]);
        assert_eq!(cut("a\rb\rc\r"), ["a", "b", "c"]);
        assert_eq!(cut("a\r\rb"), ["a", "", "b"]);
        assert_eq!(cut("a\n\r\nb\r"), ["a", "", "b"]);
        assert_eq!(cut("\r"), [""]);
        assert!(cut("").is_empty());
        // Where no carriage return stands alone, the same as `str::lines`.
        for text in ["x\n\ny", "\r\n\r\n", "é\r\nü", "no end"] {
            assert_eq!(cut(text), text.lines().collect::<Vec<_>>(), "{text:?}");
        }
        let offsets: Vec<usize> = lines_from("ab\rcd\r\nef", 0).map(|(at, _)| at).collect();
        assert_eq!(offsets, [0, 3, 7]);
        assert_eq!(lines_from("ab\rcd", 3).collect::<Vec<_>>(), [(3, "cd")]);
    }

    #[test]
    fn line_endings_are_told_apart() {
        assert_eq!(line_endings("a\nb\n"), (LineEndings::Lf, false));
        assert_eq!(line_endings("a\r\nb"), (LineEndings::Crlf, true));
        assert_eq!(line_endings("a\rb\r"), (LineEndings::Cr, false));
        assert_eq!(line_endings("a\r\nb\n"), (LineEndings::Mixed, false));
        assert_eq!(line_endings("a\rb\n"), (LineEndings::Mixed, false));
        assert_eq!(line_endings("one line"), (LineEndings::None, true));
        assert_eq!(line_endings(""), (LineEndings::None, false));
    }
}
