//! Finding a word in the stored file: `/action?q=word` lists the lines that hold it, with their
//! numbers (each a link to its place), the matches marked. The query is a literal string (no
//! pattern syntax), at most [`MAX_QUERY_CHARS`] characters, matched case-insensitively unless
//! `case=1`; the scan is one pass of the `regex` crate's linear-time engine over the file.

use std::fmt::Write as _;

use regex::{Regex, RegexBuilder};
use serde::Serialize;

use crate::routes::paging::LINES_PER_PAGE;
use crate::templates::escape_into;

/// The longest query accepted; longer gets the 400 page.
pub const MAX_QUERY_CHARS: usize = 200;

/// Bytes of a matching line shown on each side of its first match; the rest is cut (`…`).
const CONTEXT_BYTES: usize = 240;

/// A compiled query.
pub struct Query(Regex);

impl Query {
    /// The query for `words`, or `None` when it is longer than [`MAX_QUERY_CHARS`].
    pub fn new(words: &str, match_case: bool) -> Option<Self> {
        if words.chars().count() > MAX_QUERY_CHARS {
            return None;
        }
        RegexBuilder::new(&regex::escape(words))
            .case_insensitive(!match_case)
            .build()
            .ok()
            .map(Self)
    }
}

/// One page of results, and how many there are in all.
#[derive(Debug, Serialize)]
pub struct Results {
    /// Lines that hold the query at least once.
    pub matching_lines: usize,
    pub number: usize,
    pub count: usize,
    /// The page's lines, as HTML (see [`results_html`]); not serialized.
    #[serde(skip)]
    pub html: String,
}

/// Results page `number` (from 1) of `query` in `text`; `None` when there is no such page (a
/// search without matches has one empty page). Each line link carries `link_query`.
pub fn search(text: &str, query: &Query, number: usize, link_query: &str) -> Option<Results> {
    let first = (number.checked_sub(1)?).checked_mul(LINES_PER_PAGE)?;
    let mut matching_lines = 0;
    let mut html = String::new();
    for (index, line) in crate::routes::lines::lines(text).enumerate() {
        if !query.0.is_match(line) {
            continue;
        }
        if (first..first + LINES_PER_PAGE).contains(&matching_lines) {
            line_html(&mut html, index + 1, line, &query.0, link_query);
        }
        matching_lines += 1;
    }
    let count = matching_lines.div_ceil(LINES_PER_PAGE).max(1);
    (number <= count).then_some(Results {
        matching_lines,
        number,
        count,
        html,
    })
}

/// One matching line: its linked number, and the text around its first match (at most
/// [`CONTEXT_BYTES`] each side), escaped, every match in that stretch in `<mark>`.
fn line_html(out: &mut String, number: usize, line: &str, query: &Regex, link_query: &str) {
    let (first, first_end) = query.find(line).map_or((0, 0), |m| (m.start(), m.end()));
    let start = floor_boundary(line, first.saturating_sub(CONTEXT_BYTES));
    let end = floor_boundary(line, (first_end + CONTEXT_BYTES).min(line.len()));
    let shown = &line[start..end];
    let _ = write!(
        out,
        "<span class=\"line\"><a class=\"n\" data-n=\"{number}\" aria-label=\"Line {number}\" \
         href=\"/action?line={number}{link_query}#L{number}\"></a>"
    );
    if start > 0 {
        out.push('…');
    }
    let mut done = 0;
    for found in query.find_iter(shown) {
        escape_into(out, &shown[done..found.start()]);
        out.push_str("<mark>");
        escape_into(out, found.as_str());
        out.push_str("</mark>");
        done = found.end();
    }
    escape_into(out, &shown[done..]);
    if end < line.len() {
        out.push('…');
    }
    out.push_str("</span>\n");
}

/// The largest character boundary of `text` at or below `at`.
fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_lines_are_counted_listed_and_marked() {
        let text = "Alpha beta\nnothing here\nALPHA <b>alpha</b>\n";
        let query = Query::new("alpha", false).expect("a query");
        let results = search(text, &query, 1, "").expect("page 1");
        assert_eq!((results.matching_lines, results.count), (2, 1));
        assert!(results
            .html
            .contains("href=\"/action?line=1#L1\"></a><mark>Alpha</mark> beta</span>"));
        assert!(results.html.contains(
            "#L3\"></a><mark>ALPHA</mark> &lt;b&gt;<mark>alpha</mark>&lt;&#x2F;b&gt;</span>"
        ));
        assert!(!results.html.contains("L2"));

        let exact = Query::new("alpha", true).expect("a query");
        assert_eq!(search(text, &exact, 1, "").expect("page").matching_lines, 1);
        assert!(search(text, &query, 2, "").is_none());
    }

    #[test]
    fn queries_are_literal_and_bounded() {
        let text = "a.b\naxb\n(x)\n";
        let dot = Query::new("a.b", false).expect("a query");
        assert_eq!(search(text, &dot, 1, "").expect("page").matching_lines, 1);
        assert!(Query::new("(", false).is_some());
        assert!(Query::new(&"é".repeat(MAX_QUERY_CHARS), false).is_some());
        assert!(Query::new(&"é".repeat(MAX_QUERY_CHARS + 1), false).is_none());
    }

    #[test]
    fn results_are_paged_and_long_lines_cut_around_the_match() {
        let text: String = (1..=1_200).map(|n| format!("hit {n}\n")).collect();
        let query = Query::new("hit", false).expect("a query");
        let third = search(&text, &query, 3, "").expect("page 3");
        assert_eq!((third.matching_lines, third.count), (1_200, 3));
        assert!(third.html.contains("#L1001\"") && third.html.contains("#L1200\""));
        assert!(!third.html.contains("#L1000\""));

        let long = format!("{}needle{}\n", "é".repeat(1_000), "x".repeat(5_000));
        let needle = Query::new("NEEDLE", false).expect("a query");
        let html = search(&long, &needle, 1, "").expect("page").html;
        assert!(html.contains("…") && html.contains("<mark>needle</mark>"));
        assert!(html.len() < 1_000, "{}", html.len());
    }
}
