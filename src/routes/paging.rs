//! Pages of a stored file: /action shows one page at a time, so a file of a million lines (or
//! one line of a megabyte) never becomes one huge page. A page holds up to [`LINES_PER_PAGE`]
//! lines and [`BYTES_PER_PAGE`] bytes of text; a longer line is shown in pieces, the later ones
//! marked as continuing it.

use serde::Serialize;

/// The most lines a page shows.
pub const LINES_PER_PAGE: usize = 500;
/// The most bytes of text a page shows (before HTML escaping).
pub const BYTES_PER_PAGE: usize = 64 * 1024;

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

/// The pieces of `text` as pages show them: each line, cut at character boundaries into pieces
/// of at most [`BYTES_PER_PAGE`] bytes, with the number of the line it belongs to.
fn pieces(text: &str) -> impl Iterator<Item = (usize, Line<'_>)> {
    text.lines().enumerate().flat_map(|(index, line)| {
        let mut rest = line;
        let mut continued = false;
        std::iter::from_fn(move || {
            if rest.is_empty() && continued {
                return None;
            }
            let mut cut = rest.len().min(BYTES_PER_PAGE);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (piece, after) = rest.split_at(cut);
            let line = Line {
                number: index + 1,
                text: piece,
                continued,
            };
            rest = after;
            continued = true;
            Some((index + 1, line))
        })
    })
}

/// How a page's lines are shown: which to highlight, and what every line link carries besides
/// its line number (the page's other settings, such as `&wrap=0`).
#[derive(Debug, Clone, Default)]
pub struct Shown<'a> {
    pub highlight: Option<std::ops::RangeInclusive<usize>>,
    pub link_query: &'a str,
}

/// A page's lines as the file view shows them, HTML-escaped: one `<span class="line">` per line
/// (`line continued` for the later pieces of a long one; `hl` when highlighted), each followed
/// by a newline. A line's first piece has `id="L{n}"` and begins with an empty link to
/// `/action?line={n}#L{n}` whose number the stylesheet draws (`data-n`), so that copying the
/// text copies no numbers. Built here in one buffer rather than by a template loop.
pub fn lines_html(lines: &[Line<'_>], shown: &Shown<'_>) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(lines.iter().map(|l| l.text.len() + 120).sum());
    for line in lines {
        let lit = shown
            .highlight
            .as_ref()
            .is_some_and(|range| range.contains(&line.number));
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
                 aria-label=\"Line {n}\" href=\"/action?line={n}{}#L{n}\"></a>",
                shown.link_query
            );
        }
        crate::templates::escape_into(&mut out, line.text);
        out.push_str("</span>\n");
    }
    out
}

/// The page that holds line `line`'s first piece, or `None` when the text has no such line.
pub fn page_of_line(text: &str, line: usize) -> Option<usize> {
    let mut current = 1;
    let (mut lines_here, mut bytes_here) = (0, 0);
    for (number, piece) in pieces(text) {
        if lines_here == LINES_PER_PAGE || bytes_here + piece.text.len() > BYTES_PER_PAGE {
            current += 1;
            (lines_here, bytes_here) = (0, 0);
        }
        lines_here += 1;
        bytes_here += piece.text.len();
        if number == line {
            return Some(current);
        }
        if number > line {
            break;
        }
    }
    None
}

/// Page `number` of `text`, or `None` when it has no such page. An empty text has one empty
/// page.
pub fn page(text: &str, number: usize) -> Option<Page<'_>> {
    let mut current = 1;
    let (mut lines_here, mut bytes_here) = (0, 0);
    let mut shown = Vec::new();
    let (mut first_line, mut last_line) = (0, 0);
    for (line_number, piece) in pieces(text) {
        if lines_here == LINES_PER_PAGE || bytes_here + piece.text.len() > BYTES_PER_PAGE {
            current += 1;
            (lines_here, bytes_here) = (0, 0);
        }
        lines_here += 1;
        bytes_here += piece.text.len();
        if current == number {
            if shown.is_empty() {
                first_line = line_number;
            }
            last_line = line_number;
            shown.push(piece);
        }
    }
    (1..=current).contains(&number).then_some(Page {
        number,
        count: current,
        lines: shown,
        first_line,
        last_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_file_is_one_page() {
        let page = page("one\r\ntwo\n", 1).expect("page 1");
        assert_eq!((page.number, page.count), (1, 1));
        let texts: Vec<&str> = page.lines.iter().map(|l| l.text).collect();
        assert_eq!(texts, ["one", "two"]);
        assert_eq!((page.first_line, page.last_line), (1, 2));
        assert!(super::page("one\n", 2).is_none());
        assert!(super::page("", 1).is_some_and(|p| p.lines.is_empty()));
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
        let html = lines_html(
            &second.lines[..2],
            &Shown {
                highlight: Some(502..=503),
                link_query: "&amp;wrap=0",
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
