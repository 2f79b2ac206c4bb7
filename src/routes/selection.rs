//! Lines a link selects: `?line=40` or `?lines=3-5,10-12,40`, each range highlighted, the page
//! landing on the first. Without JavaScript a range is made with two clicks: while the last
//! part of a selection is one line, every line number's link ends a range there; once it is a
//! range, every line number's link starts another (up to [`MAX_RANGES`]).

use std::fmt::Write as _;

/// The most ranges one selection holds; a longer `lines=` is a bad address.
pub const MAX_RANGES: usize = 16;

/// Why a `lines=` or `line=` value is not a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectionError {
    /// A part is not a line number or `A-B`.
    NotARange,
    /// More than [`MAX_RANGES`] parts.
    TooMany,
}

impl std::fmt::Display for SelectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotARange => {
                f.write_str("a line is a whole number, and lines are ranges such as 3-5,10-12,40")
            }
            Self::TooMany => write!(f, "a link selects at most {MAX_RANGES} ranges of lines"),
        }
    }
}

/// One or more ranges of lines, in the order the link gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Each range as (first, last), first ≤ last.
    ranges: Vec<(usize, usize)>,
    /// The last part was written as one line (`40`, not `40-40`): the next click ends it.
    open: bool,
}

fn number(raw: &str) -> Result<usize, SelectionError> {
    raw.trim().parse().map_err(|_| SelectionError::NotARange)
}

impl Selection {
    /// One line, as `?line=N` selects it (open: the next click makes a range).
    pub fn line(raw: &str) -> Result<Self, SelectionError> {
        let line = number(raw)?;
        Ok(Self {
            ranges: vec![(line, line)],
            open: true,
        })
    }

    /// The ranges of a `?lines=` value: comma-separated `A-B` (either way round) or `N`; empty
    /// parts are skipped, and at least one range is needed.
    pub fn parse(raw: &str) -> Result<Self, SelectionError> {
        let mut ranges = Vec::new();
        let mut open = false;
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if ranges.len() == MAX_RANGES {
                return Err(SelectionError::TooMany);
            }
            let (from, to) = match part.split_once('-') {
                Some((from, to)) => (number(from)?, number(to)?),
                None => {
                    let line = number(part)?;
                    (line, line)
                }
            };
            open = !part.contains('-');
            ranges.push((from.min(to), from.max(to)));
        }
        if ranges.is_empty() {
            return Err(SelectionError::NotARange);
        }
        Ok(Self { ranges, open })
    }

    /// The line the page lands on: the first range's first line.
    pub fn first_line(&self) -> usize {
        self.ranges[0].0
    }

    /// Whether line `n` is selected.
    pub fn contains(&self, n: usize) -> bool {
        self.ranges
            .iter()
            .any(|&(from, to)| (from..=to).contains(&n))
    }

    /// The selection as a query parameter, `line=N` or `lines=…`, URL-safe as it stands.
    pub fn query(&self) -> (&'static str, String) {
        match self.ranges.as_slice() {
            [(from, to)] if from == to && self.open => ("line", from.to_string()),
            _ => ("lines", self.spec(self.ranges.len())),
        }
    }

    /// The first `count` ranges as a `lines=` value.
    fn spec(&self, count: usize) -> String {
        let mut out = String::new();
        for (i, &(from, to)) in self.ranges[..count].iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let open_last = self.open && i + 1 == self.ranges.len();
            if from == to && (open_last || i + 1 < self.ranges.len()) {
                let _ = write!(out, "{from}");
            } else {
                let _ = write!(out, "{from}-{to}");
            }
        }
        out
    }

    /// What a line number's link starts with while this selection is shown (the line's own
    /// number follows): `/action?lines=…,N-` to end the open range at it, `/action?lines=…,`
    /// to start another, `/action?line=` when the selection is full.
    pub fn link_start(&self) -> String {
        if self.open {
            let (last, _) = self.ranges[self.ranges.len() - 1];
            let before = self.spec(self.ranges.len() - 1);
            let comma = if before.is_empty() { "" } else { "," };
            format!("/action?lines={before}{comma}{last}-")
        } else if self.ranges.len() < MAX_RANGES {
            format!("/action?lines={},", self.spec(self.ranges.len()))
        } else {
            "/action?line=".to_owned()
        }
    }

    /// The selection as a person reads it: "line 40", "lines 3–5, 10–12 and 40".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|&(from, to)| {
                if from == to {
                    from.to_string()
                } else {
                    format!("{from}–{to}")
                }
            })
            .collect();
        match parts.as_slice() {
            [one] if self.ranges[0].0 == self.ranges[0].1 => format!("line {one}"),
            [one] => format!("lines {one}"),
            [rest @ .., last] => format!("lines {} and {last}", rest.join(", ")),
            [] => String::new(),
        }
    }

    /// Whether the next line-number click ends a range (rather than starting one).
    pub fn is_open(&self) -> bool {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_in_the_order_given() {
        let s = Selection::parse("3-5, 12-10,40").expect("ranges");
        assert_eq!(s.ranges, [(3, 5), (10, 12), (40, 40)]);
        assert!(s.is_open());
        assert_eq!(s.first_line(), 3);
        assert!(s.contains(4) && s.contains(10) && s.contains(40));
        assert!(!s.contains(6) && !s.contains(39));
        assert_eq!(s.describe(), "lines 3–5, 10–12 and 40");
        assert_eq!(s.query(), ("lines", "3-5,10-12,40".into()));
        assert_eq!(
            Selection::parse("7,").expect("one").query(),
            ("line", "7".into())
        );
        assert_eq!(
            Selection::parse("7-7").expect("one").query(),
            ("lines", "7-7".into())
        );
        assert_eq!(Selection::line("9").expect("one").describe(), "line 9");
        assert_eq!(
            Selection::parse("9-11").expect("one").describe(),
            "lines 9–11"
        );
    }

    #[test]
    fn bad_and_long_selections_are_refused() {
        for bad in ["", ",", "x", "1-", "-3", "1-2-3", "4,y"] {
            assert_eq!(
                Selection::parse(bad),
                Err(SelectionError::NotARange),
                "{bad}"
            );
        }
        let most = vec!["1"; MAX_RANGES].join(",");
        assert!(Selection::parse(&most).is_ok());
        assert_eq!(
            Selection::parse(&format!("{most},2")),
            Err(SelectionError::TooMany)
        );
    }

    #[test]
    fn two_clicks_make_a_range_and_a_third_starts_another() {
        let one = Selection::line("10").expect("line");
        assert_eq!(one.link_start(), "/action?lines=10-");
        let range = Selection::parse("10-14").expect("range");
        assert_eq!(range.link_start(), "/action?lines=10-14,");
        let more = Selection::parse("10-14,20").expect("ranges");
        assert_eq!(more.link_start(), "/action?lines=10-14,20-");
        let full = Selection::parse(&vec!["1-2"; MAX_RANGES].join(",")).expect("full");
        assert_eq!(full.link_start(), "/action?line=");
    }
}
