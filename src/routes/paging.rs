//! Pages of a stored file: /action shows one page at a time, so a file of a million lines (or
//! one line of a megabyte) never becomes one huge page. A page holds up to [`LINES_PER_PAGE`]
//! lines and [`BYTES_PER_PAGE`] bytes of text; a longer line is shown in pieces, the later ones
//! marked as continuing it.

use serde::Serialize;

use crate::routes::lines::{line_endings, lines_from, LineEndings};
use crate::routes::selection::Selection;

/// The most lines a page shows.
pub const LINES_PER_PAGE: usize = 500;
/// The most bytes of text a page shows (before HTML escaping).
pub const BYTES_PER_PAGE: usize = 64 * 1024;

/// How much a page holds: at most `lines` lines and `bytes` bytes of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub lines: usize,
    pub bytes: usize,
}

/// A plain page: [`LINES_PER_PAGE`] lines, [`BYTES_PER_PAGE`] bytes.
pub const PLAIN: Shape = Shape {
    lines: LINES_PER_PAGE,
    bytes: BYTES_PER_PAGE,
};

/// A highlighted page, smaller: the grammar costs about 2 ms per KB (docs/benchmarks.md), so
/// a page of at most 8 KiB keeps a first page's p99 under 50 ms.
pub const HIGHLIGHTED: Shape = Shape {
    lines: 100,
    bytes: 8 * 1024,
};

/// One shown line, or a piece of a long one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line<'a> {
    /// Its number in the file, from 1.
    pub number: usize,
    pub text: &'a str,
    /// This piece continues the line above.
    pub continued: bool,
}

/// Page `number` (from 1) of a text, and how many pages it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<'a> {
    pub number: usize,
    pub count: usize,
    /// Shown through [`lines_html`], not serialized into the template's context.
    #[serde(skip)]
    pub lines: Vec<Line<'a>>,
    /// The 1-based number of the first and last line shown (of the file's lines).
    pub first_line: usize,
    pub last_line: usize,
}

/// The pieces of one line as pages show them: cut at character boundaries into pieces of at
/// most `max` bytes, each with its offset in the line and whether it continues the line.
fn cut(line: &str, max: usize) -> impl Iterator<Item = (usize, &str, bool)> {
    let mut rest = line;
    let mut offset = 0;
    let mut continued = false;
    std::iter::from_fn(move || {
        if rest.is_empty() && continued {
            return None;
        }
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, after) = rest.split_at(end);
        let item = (offset, piece, continued);
        offset += end;
        rest = after;
        continued = true;
        Some(item)
    })
}

/// Where one page starts: the byte offset of its first piece, the number of that piece's line
/// and the piece's offset in its line (0: the page starts with a whole line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Start {
    line_offset: usize,
    line: usize,
    piece_offset: usize,
}

/// Where every page of a text starts, and what the page header says of the whole text: built
/// once for a file (one pass, `memchr` for the line ends), after which any page is cut in time
/// proportional to the page, not the file, and the page holding a line is found by bisection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageIndex {
    shape: Shape,
    starts: Vec<Start>,
    lines: usize,
    longest_line: usize,
    endings: LineEndings,
    no_final_newline: bool,
}

impl PageIndex {
    /// The index of `text` in plain pages. An empty text has one empty page.
    #[cfg(test)]
    pub fn of(text: &str) -> Self {
        Self::of_shape(text, PLAIN)
    }

    /// The index of `text` in pages of `shape`.
    pub fn of_shape(text: &str, shape: Shape) -> Self {
        let mut starts = vec![Start {
            line_offset: 0,
            line: 1,
            piece_offset: 0,
        }];
        let (mut lines_here, mut bytes_here) = (0usize, 0usize);
        let mut lines = 0;
        let mut longest_line = 0;
        for (number, (line_offset, line)) in lines_from(text, 0).enumerate() {
            lines = number + 1;
            longest_line = longest_line.max(line.len());
            if line.len() <= shape.bytes {
                // The common case, one piece: no cutting.
                if lines_here == shape.lines || bytes_here + line.len() > shape.bytes {
                    starts.push(Start {
                        line_offset,
                        line: lines,
                        piece_offset: 0,
                    });
                    (lines_here, bytes_here) = (0, 0);
                }
                lines_here += 1;
                bytes_here += line.len();
                continue;
            }
            for (piece_offset, piece, _) in cut(line, shape.bytes) {
                if lines_here == shape.lines || bytes_here + piece.len() > shape.bytes {
                    starts.push(Start {
                        line_offset,
                        line: lines,
                        piece_offset,
                    });
                    (lines_here, bytes_here) = (0, 0);
                }
                lines_here += 1;
                bytes_here += piece.len();
            }
        }
        let (endings, no_final_newline) = line_endings(text);
        Self {
            shape,
            starts,
            lines,
            longest_line,
            endings,
            no_final_newline,
        }
    }

    /// The lines that start pages `pages` (from 1) with a whole line, in order (a page that
    /// starts inside a long line has no such line).
    pub fn page_start_lines(&self, pages: std::ops::RangeInclusive<usize>) -> Vec<usize> {
        let (from, to) = (pages.start().saturating_sub(1), *pages.end());
        self.starts
            .get(from..to.min(self.starts.len()))
            .unwrap_or_default()
            .iter()
            .filter(|s| s.piece_offset == 0)
            .map(|s| s.line)
            .collect()
    }

    /// How many pages the text has (at least one).
    pub fn count(&self) -> usize {
        self.starts.len()
    }

    /// How many lines the text has.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// The bytes of the text's longest line.
    pub fn longest_line(&self) -> usize {
        self.longest_line
    }

    /// The text's line-ending style, and whether it ends without a newline.
    pub fn endings(&self) -> (LineEndings, bool) {
        (self.endings, self.no_final_newline)
    }

    /// The memory the index takes, for the cache's bound.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.starts.len() * std::mem::size_of::<Start>()
    }

    /// The page that holds line `line`'s first piece, or `None` when the text has no such line.
    pub fn page_of_line(&self, line: usize) -> Option<usize> {
        if line == 0 || line > self.lines {
            return None;
        }
        // The last page whose first piece belongs to a line at or before `line`, and that
        // does not start in the middle of `line` itself (its first piece is on an earlier
        // page).
        let after = self
            .starts
            .partition_point(|s| s.line < line || (s.line == line && s.piece_offset == 0));
        Some(after.max(1))
    }

    /// Page `number` (from 1) of `text` (the text this index was built from), or `None` when
    /// it has no such page.
    pub fn page<'a>(&self, text: &'a str, number: usize) -> Option<Page<'a>> {
        let start = *self.starts.get(number.checked_sub(1)?)?;
        let end = self.starts.get(number).copied();
        let mut shown = Vec::new();
        'lines: for (index, (line_offset, line)) in lines_from(text, start.line_offset).enumerate()
        {
            let number = start.line + index;
            for (piece_offset, piece, continued) in cut(line, self.shape.bytes) {
                if index == 0 && piece_offset < start.piece_offset {
                    continue;
                }
                if end.is_some_and(|end| {
                    (line_offset, piece_offset) >= (end.line_offset, end.piece_offset)
                }) {
                    break 'lines;
                }
                shown.push(Line {
                    number,
                    text: piece,
                    continued,
                });
            }
        }
        let first_line = shown.first().map_or(0, |l| l.number);
        let last_line = shown.last().map_or(0, |l| l.number);
        Some(Page {
            number,
            count: self.count(),
            lines: shown,
            first_line,
            last_line,
        })
    }
}

/// How a page's lines are shown: which to highlight, where each line number's link goes (see
/// [`Selection::link_start`]), and what every line link carries besides its line number (the
/// page's other settings, such as `&wrap=0`).
#[derive(Debug, Clone)]
pub struct Shown<'a> {
    pub selection: Option<&'a Selection>,
    /// The link's address up to the line's number, e.g. `/action?line=`.
    pub link_start: &'a str,
    pub link_query: &'a str,
    /// The page's first lines as highlighted HTML (see `highlight`), in order; the lines past
    /// them are escaped as they are.
    pub highlighted: &'a [String],
}

impl Default for Shown<'_> {
    fn default() -> Self {
        Self {
            selection: None,
            link_start: "/action?line=",
            link_query: "",
            highlighted: &[],
        }
    }
}

/// A page's lines as the file view shows them, HTML-escaped: one `<span class="line">` per line
/// (`line continued` for the later pieces of a long one; `hl` when highlighted), each followed
/// by a newline. A line's first piece has `id="L{n}"` and begins with an empty link to
/// `{link_start}{n}{link_query}#L{n}` whose number the stylesheet draws (`data-n`), so that
/// copying the text copies no numbers. Built here in one buffer rather than by a template loop.
pub fn lines_html(lines: &[Line<'_>], shown: &Shown<'_>) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(lines.iter().map(|l| l.text.len() + 120).sum());
    for (i, line) in lines.iter().enumerate() {
        let lit = shown.selection.is_some_and(|s| s.contains(line.number));
        let class = match (line.continued, lit) {
            (false, false) => "line",
            (false, true) => "line hl",
            (true, false) => "line continued",
            (true, true) => "line continued hl",
        };
        if line.continued {
            let _ = write!(out, "<span class=\"{class}\"><span class=\"n\"></span>");
        } else {
            let n = line.number;
            let _ = write!(
                out,
                "<span class=\"{class}\" id=\"L{n}\"><a class=\"n\" data-n=\"{n}\" \
                 aria-label=\"Line {n}\" href=\"{}{n}{}#L{n}\"></a>",
                shown.link_start, shown.link_query
            );
        }
        match shown.highlighted.get(i) {
            Some(html) => out.push_str(html),
            None => crate::templates::escape_into(&mut out, line.text),
        }
        out.push_str("</span>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(text: &str, number: usize) -> Option<Page<'_>> {
        PageIndex::of(text).page(text, number)
    }

    fn page_of_line(text: &str, line: usize) -> Option<usize> {
        PageIndex::of(text).page_of_line(line)
    }

    /// Pages as they were cut before the index: every line of the text walked for each page.
    fn reference_pages(text: &str, shape: Shape) -> Vec<Vec<(usize, String, bool)>> {
        let mut pages: Vec<Vec<(usize, String, bool)>> = vec![Vec::new()];
        let (mut lines_here, mut bytes_here) = (0, 0);
        for (index, line) in crate::routes::lines::lines(text).enumerate() {
            let mut rest = line;
            let mut continued = false;
            loop {
                if rest.is_empty() && continued {
                    break;
                }
                let mut cut = rest.len().min(shape.bytes);
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                let (piece, after) = rest.split_at(cut);
                if lines_here == shape.lines || bytes_here + piece.len() > shape.bytes {
                    pages.push(Vec::new());
                    (lines_here, bytes_here) = (0, 0);
                }
                lines_here += 1;
                bytes_here += piece.len();
                pages
                    .last_mut()
                    .expect("a page")
                    .push((index + 1, piece.to_owned(), continued));
                rest = after;
                continued = true;
            }
        }
        pages
    }

    #[test]
    fn the_index_cuts_every_page_as_walking_the_whole_text_did() {
        let long = "é".repeat(BYTES_PER_PAGE + 7);
        let texts = [
            String::new(),
            "\n".into(),
            "a".into(),
            "a\r\nb\r\n".into(),
            "a\n\n\nb".into(),
            "x\r".into(),
            "old\rmac\r\rfile\r".into(),
            "a\rb\r\nc\nd".into(),
            "\r\n\r\n".into(),
            (1..=1_234).map(|n| format!("line {n}\n")).collect(),
            format!("short\n{long}\n{long}{long}\nafter"),
            format!("{}\n", "y".repeat(3 * BYTES_PER_PAGE)),
            "ab\n".repeat(40_000),
            (0..3_000)
                .map(|n| format!("{}\n", "z".repeat(n % 300)))
                .collect(),
        ];
        for (text, shape) in texts.iter().flat_map(|t| [(t, PLAIN), (t, HIGHLIGHTED)]) {
            let index = PageIndex::of_shape(text, shape);
            let reference = reference_pages(text, shape);
            assert_eq!(index.count(), reference.len(), "{:.40?}", text);
            assert_eq!(index.lines(), crate::routes::lines::lines(text).count());
            assert_eq!(
                index.longest_line(),
                crate::routes::lines::lines(text)
                    .map(str::len)
                    .max()
                    .unwrap_or(0)
            );
            for (number, expected) in reference.iter().enumerate() {
                let page = index.page(text, number + 1).expect("a page");
                let got: Vec<(usize, String, bool)> = page
                    .lines
                    .iter()
                    .map(|l| (l.number, l.text.to_owned(), l.continued))
                    .collect();
                assert_eq!(&got, expected, "page {} of {:.40?}", number + 1, text);
                for (line, _, continued) in expected {
                    if !continued {
                        assert_eq!(index.page_of_line(*line), Some(number + 1));
                    }
                }
            }
            assert!(index.page(text, reference.len() + 1).is_none());
            assert!(index.page(text, 0).is_none());
        }
    }

    #[test]
    fn a_small_file_is_one_page() {
        let first = page("one\r\ntwo\n", 1).expect("page 1");
        assert_eq!((first.number, first.count), (1, 1));
        let texts: Vec<&str> = first.lines.iter().map(|l| l.text).collect();
        assert_eq!(texts, ["one", "two"]);
        assert_eq!((first.first_line, first.last_line), (1, 2));
        assert!(page("one\n", 2).is_none());
        assert!(page("", 1).is_some_and(|p| p.lines.is_empty()));
    }

    #[test]
    fn a_million_empty_lines_make_two_thousand_pages_of_500() {
        let text = "\n".repeat(1_000_000);
        let last = page(&text, 2_000).expect("the last page");
        assert_eq!(last.count, 2_000);
        assert_eq!(last.lines.len(), LINES_PER_PAGE);
        assert_eq!((last.first_line, last.last_line), (999_501, 1_000_000));
    }

    #[test]
    fn a_line_is_found_on_its_page_and_linked_without_its_number_in_the_text() {
        let text: String = (1..=1_200).map(|n| format!("line {n}\n")).collect();
        assert_eq!(page_of_line(&text, 1), Some(1));
        assert_eq!(page_of_line(&text, 500), Some(1));
        assert_eq!(page_of_line(&text, 501), Some(2));
        assert_eq!(page_of_line(&text, 1_200), Some(3));
        assert_eq!(page_of_line(&text, 1_201), None);
        assert_eq!(page_of_line(&text, 0), None);

        let second = page(&text, 2).expect("page 2");
        let selection = Selection::parse("502-503").expect("a range");
        let html = lines_html(
            &second.lines[..2],
            &Shown {
                selection: Some(&selection),
                link_start: "/action?line=",
                link_query: "&amp;wrap=0",
                highlighted: &[],
            },
        );
        assert_eq!(
            html,
            "<span class=\"line\" id=\"L501\"><a class=\"n\" data-n=\"501\" aria-label=\"Line 501\" \
             href=\"/action?line=501&amp;wrap=0#L501\"></a>line 501</span>\n\
             <span class=\"line hl\" id=\"L502\"><a class=\"n\" data-n=\"502\" aria-label=\"Line 502\" \
             href=\"/action?line=502&amp;wrap=0#L502\"></a>line 502</span>\n"
        );
    }

    #[test]
    fn a_long_line_is_shown_in_pieces_across_pages() {
        let line = "é".repeat(BYTES_PER_PAGE); // two bytes each: two pages' worth
        let text = format!("short\n{line}\nafter\n");
        let pages: Vec<Page<'_>> = (1..=4).map(|n| page(&text, n).expect("a page")).collect();
        assert_eq!(pages[0].count, 4);
        assert_eq!(pages[0].lines[0].text, "short");
        assert!(pages
            .iter()
            .all(|p| p.lines.iter().map(|l| l.text.len()).sum::<usize>() <= BYTES_PER_PAGE));
        assert!(!pages[1].lines[0].continued && pages[2].lines[0].continued);
        assert_eq!((pages[2].first_line, pages[2].last_line), (2, 2));
        let whole: String = pages[1..3]
            .iter()
            .flat_map(|p| p.lines.iter())
            .map(|l| l.text)
            .collect();
        assert_eq!(whole, line, "nothing lost at the cuts");
        assert_eq!(pages[3].lines[0].text, "after");
    }
}
