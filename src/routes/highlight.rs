//! Source code highlighted on the server by syntect (its Sublime Text grammars, on the pure-Rust
//! `fancy-regex` engine): each token in a `<span class="hl-…">` of a few kinds (keyword,
//! string, comment, number, constant, function, type, builtin), coloured by the stylesheet in a
//! light and a dark palette, never by inline styles, so the CSP stays strict. Spans never cross
//! a line, so each line of a page stays one `<span class="line">` with its number and link.
//!
//! A grammar's state runs from line 1, so page N costs every line before it: a file is
//! highlighted only within [`Budget`] (lines, bytes, longest line), which bounds any page by
//! the whole file. Past it the page is plain and says why, with a link that tries anyway; that
//! try, and every highlighting, stops at a deadline checked inside the loop, line by line.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use syntect::parsing::{ParseState, Scope, ScopeStack, SyntaxReference, SyntaxSet};

use crate::templates::escape_into;

/// What a file may hold to be highlighted without being asked: its lines, bytes, and longest
/// line. Measured (docs/benchmarks.md): a file at these bounds highlights in tens of ms.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub lines: usize,
    pub bytes: usize,
    pub longest_line: usize,
}

/// The bound for highlighting a file unasked.
pub const BUDGET: Budget = Budget {
    lines: 5_000,
    bytes: 64 * 1024,
    longest_line: 2_000,
};

/// The bound for a file highlighted because the visitor asked (`?lang=`) past [`BUDGET`]: no
/// line or byte count, but lines longer than this are never handed to the grammar (the page
/// shows them plain), and the work stops at [`HARD_LIMIT`].
pub const ASKED_LONGEST_LINE: usize = 4 * 1024;

/// The longest highlighting runs, whatever was asked; checked between lines.
pub const HARD_LIMIT: Duration = Duration::from_millis(1_500);

/// The grammars, loaded once per process (a few milliseconds: [`warm`] does it at startup, off
/// the workers).
pub fn syntaxes() -> &'static SyntaxSet {
    static SET: OnceLock<SyntaxSet> = OnceLock::new();
    SET.get_or_init(SyntaxSet::load_defaults_newlines)
}

/// Loads the grammars on a thread of its own, so that no request waits for them.
pub fn warm() {
    std::thread::spawn(|| {
        syntaxes();
    });
}

/// A language to highlight in.
pub type Language = &'static SyntaxReference;

/// The language named by `?lang=` (a grammar's name or one of its file extensions, any case);
/// `Ok(None)` for `plain`; `Err` for a name no grammar has.
pub fn named(lang: &str) -> Result<Option<Language>, ()> {
    let lang = lang.trim();
    if lang.eq_ignore_ascii_case("plain") {
        return Ok(None);
    }
    match syntaxes().find_syntax_by_token(lang) {
        Some(syntax) if !is_plain(syntax) => Ok(Some(syntax)),
        _ => Err(()),
    }
}

fn is_plain(syntax: &SyntaxReference) -> bool {
    syntax.name == "Plain Text"
}

/// What a file's name says of its language.
#[derive(Debug, Clone, Copy)]
pub enum ByName {
    /// A plain-text name (`.txt`, `.log`…): not highlighted, its content not looked at.
    Plain,
    Language(Language),
    /// No grammar knows the name: the content may say.
    Unknown,
}

/// The language of a file named `name`: by its extension (any case), or its whole name (as
/// `Makefile`). A hash lookup, no regex.
pub fn detect_by_name(name: &str) -> ByName {
    let set = syntaxes();
    let found = name
        .rsplit_once('.')
        .and_then(|(_, ext)| {
            set.find_syntax_by_extension(ext)
                .or_else(|| set.find_syntax_by_extension(&ext.to_ascii_lowercase()))
        })
        .or_else(|| set.find_syntax_by_extension(name));
    match found {
        Some(syntax) if is_plain(syntax) => ByName::Plain,
        Some(syntax) => ByName::Language(syntax),
        None if name.to_ascii_lowercase().ends_with(".log") => ByName::Plain,
        None => ByName::Unknown,
    }
}

/// The most of a first line the grammars' first-line patterns are tried on.
const FIRST_LINE_BYTES: usize = 256;

/// The language `text` names itself: a shebang or a first-line mode (`#!/usr/bin/env python3`,
/// `-*- mode: ruby -*-`, on its first 256 bytes), then a Vim modeline (`vim: set ft=rust:`) in
/// its first or last five lines.
pub fn detect_by_content(text: &str) -> Option<Language> {
    let set = syntaxes();
    let first_line = crate::routes::lines::lines(text).next().unwrap_or("");
    let mut end = first_line.len().min(FIRST_LINE_BYTES);
    while !first_line.is_char_boundary(end) {
        end -= 1;
    }
    let first_line = &first_line[..end];
    set.find_syntax_by_first_line(first_line)
        .or_else(|| emacs_mode(first_line).and_then(|mode| set.find_syntax_by_token(mode)))
        .or_else(|| vim_modeline(text).and_then(|ft| set.find_syntax_by_token(ft)))
        .filter(|syntax| !is_plain(syntax))
}

/// The language of a file named `name` holding `text`, by its name, then its content. `None`:
/// plain text.
#[cfg(test)]
pub fn detect(name: &str, text: &str) -> Option<Language> {
    match detect_by_name(name) {
        ByName::Plain => None,
        ByName::Language(language) => Some(language),
        ByName::Unknown => detect_by_content(text),
    }
}

/// `ruby` of an Emacs first line `-*- mode: ruby -*-` or `-*- ruby -*-`.
fn emacs_mode(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("-*-")?;
    let (inner, _) = rest.split_once("-*-")?;
    let inner = inner.trim();
    let mode = inner
        .split(';')
        .find_map(|part| {
            let (key, value) = part.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("mode")
                .then_some(value.trim())
        })
        .unwrap_or(inner);
    (!mode.is_empty() && !mode.contains(':')).then_some(mode)
}

/// The `ft=` or `filetype=` of a Vim modeline (`vim: set ft=rust:`, `vi: ft=python`) in the
/// first or last five lines of `text`.
fn vim_modeline(text: &str) -> Option<&str> {
    let lines: Vec<&str> = crate::routes::lines::lines(text).take(5).collect();
    let tail_start = text.len().saturating_sub(2_048);
    let tail_start = (0..=tail_start)
        .rev()
        .find(|&at| text.is_char_boundary(at))
        .unwrap_or(0);
    let tail: Vec<&str> = crate::routes::lines::lines(&text[tail_start..])
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .take(5)
        .collect();
    lines.into_iter().chain(tail).find_map(|line| {
        let at = line.find("vim:").or_else(|| line.find("vi:"))?;
        line[at..]
            .split(|c: char| c.is_whitespace() || c == ':')
            .find_map(|word| {
                word.strip_prefix("ft=")
                    .or_else(|| word.strip_prefix("filetype="))
            })
            .filter(|ft| !ft.is_empty())
    })
}

/// The language list for the page's `?lang=` choice: every grammar's name, sorted.
pub fn names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<&'static str> = syntaxes()
            .syntaxes()
            .iter()
            .filter(|s| !is_plain(s))
            .map(|s| s.name.as_str())
            .collect();
        names.sort_by_key(|n| n.to_lowercase());
        names.dedup();
        names
    })
}

/// The `<option>`s of the page's language list, HTML: "automatic", "plain text", then every
/// grammar's name, `selected` on `chosen` ("plain" for plain text; none: automatic). Built once
/// per process; a page copies it and marks its choice.
pub fn options_html(chosen: Option<&str>) -> String {
    static OPTIONS: OnceLock<String> = OnceLock::new();
    let all = OPTIONS.get_or_init(|| {
        let mut html = String::from(
            "<option value=\"\">automatic</option><option value=\"plain\">plain text</option>",
        );
        for name in names() {
            html.push_str("<option>");
            escape_into(&mut html, name);
            html.push_str("</option>");
        }
        html
    });
    let Some(chosen) = chosen else {
        return all.clone();
    };
    let (plain, marked) = if chosen == "plain" {
        (
            "<option value=\"plain\">".to_owned(),
            "<option value=\"plain\" selected>".to_owned(),
        )
    } else {
        let mut escaped = String::new();
        escape_into(&mut escaped, chosen);
        (
            format!("<option>{escaped}</option>"),
            format!("<option selected>{escaped}</option>"),
        )
    };
    all.replacen(&plain, &marked, 1)
}

/// Why a page was not (wholly) highlighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// [`HARD_LIMIT`] passed before the page's last line.
    TimedOut,
    /// A line longer than the bound stood before the page's end.
    LongLine,
}

/// Where a grammar resumes: its state at the start of line `line`, which starts at byte
/// `offset` of the text.
#[derive(Debug, Clone)]
pub struct Resume {
    pub line: usize,
    offset: usize,
    state: ParseState,
    stack: ScopeStack,
}

impl Resume {
    /// The state at line 1.
    pub fn start(language: Language) -> Self {
        Self {
            line: 1,
            offset: 0,
            state: ParseState::new(language),
            stack: ScopeStack::new(),
        }
    }
}

/// What [`highlight_from`] made.
#[derive(Debug)]
pub struct Highlighted {
    /// The lines `first..` as HTML, in order (fewer when it stopped).
    pub lines: Vec<String>,
    pub stopped: Option<Stopped>,
    /// The states at the starts of the lines asked for in `marks` that it reached.
    pub resumes: Vec<Resume>,
}

/// The page's lines `first..=last` (numbers from 1) of `text` highlighted in `language`, each
/// as HTML (escaped, spans closed within the line), parsing from line 1; stops at `deadline`
/// or at a line longer than `longest_line`, giving what it has and why it stopped.
#[cfg(test)]
pub fn highlight_lines(
    text: &str,
    language: Language,
    first: usize,
    last: usize,
    longest_line: usize,
    deadline: Instant,
) -> (Vec<String>, Option<Stopped>) {
    let done = highlight_from(
        text,
        Resume::start(language),
        first,
        last,
        longest_line,
        deadline,
        &[],
    );
    (done.lines, done.stopped)
}

/// Lines `first..=last` of `text` highlighted, parsing from `from` (at or before `first`), as
/// [`highlight_lines`]; keeps the state at the start of each line in `marks` (ascending) it
/// passes, so that a later page can resume there instead of at line 1.
pub fn highlight_from(
    text: &str,
    from: Resume,
    first: usize,
    last: usize,
    longest_line: usize,
    deadline: Instant,
    marks: &[usize],
) -> Highlighted {
    let set = syntaxes();
    let Resume {
        line: start,
        offset,
        mut state,
        mut stack,
    } = from;
    let mut done = Highlighted {
        lines: Vec::with_capacity(last.saturating_sub(first) + 1),
        stopped: None,
        resumes: Vec::new(),
    };
    let mut marks = marks.iter().copied().filter(|&m| m > start).peekable();
    let mut with_newline = String::new();
    let mut classes = Classes::default();
    for (index, (at_byte, line)) in crate::routes::lines::lines_from(text, offset).enumerate() {
        let number = start + index;
        if marks.peek() == Some(&number) {
            marks.next();
            done.resumes.push(Resume {
                line: number,
                offset: at_byte,
                state: state.clone(),
                stack: stack.clone(),
            });
        }
        if number > last {
            break;
        }
        if index % 32 == 31 && Instant::now() >= deadline {
            done.stopped = Some(Stopped::TimedOut);
            return done;
        }
        if line.len() > longest_line {
            done.stopped = Some(Stopped::LongLine);
            return done;
        }
        with_newline.clear();
        with_newline.push_str(line);
        with_newline.push('\n');
        let Ok(ops) = state.parse_line(&with_newline, set) else {
            done.stopped = Some(Stopped::LongLine);
            return done;
        };
        if number < first {
            for (_, op) in &ops {
                let _ = stack.apply(op);
            }
            continue;
        }
        let mut html = String::with_capacity(line.len() + 64);
        let mut at = 0;
        let mut open: Option<&'static str> = None;
        for (i, op) in &ops {
            let i = (*i).min(line.len());
            if i > at {
                token(&mut html, &mut open, classes.of(&stack), &line[at..i]);
                at = i;
            }
            let _ = stack.apply(op);
        }
        if at < line.len() {
            token(&mut html, &mut open, classes.of(&stack), &line[at..]);
        }
        if open.is_some() {
            html.push_str("</span>");
        }
        done.lines.push(html);
    }
    done
}

/// Where grammars can resume in recently shown files: per file and language, the states at its
/// pages' starts, so that reading page after page costs a page each, and a page seen once is
/// never parsed from line 1 again. Bounded: [`RESUMES_KEPT`] states in all, the least recently
/// used file's dropped first.
pub struct Resumes {
    inner: Mutex<ResumesInner>,
}

/// The most states [`Resumes`] keeps (each a few hundred bytes: a grammar's context stack).
pub const RESUMES_KEPT: usize = 8_192;

#[derive(Default)]
struct ResumesInner {
    files: HashMap<String, (u64, BTreeMap<usize, Resume>)>,
    held: usize,
    tick: u64,
}

impl Resumes {
    /// The process's cache.
    pub fn shared() -> &'static Resumes {
        static SHARED: OnceLock<Resumes> = OnceLock::new();
        SHARED.get_or_init(Resumes::new)
    }

    fn new() -> Resumes {
        Resumes {
            inner: Mutex::new(ResumesInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ResumesInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest state kept for `key` at or before line `line`.
    pub fn before(&self, key: &str, line: usize) -> Option<Resume> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let (used, states) = inner.files.get_mut(key)?;
        *used = tick;
        states.range(..=line).next_back().map(|(_, r)| r.clone())
    }

    /// Keeps `resumes` for `key`, dropping the least recently used files' states past the bound.
    pub fn keep(&self, key: &str, resumes: Vec<Resume>) {
        if resumes.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner
            .files
            .entry(key.to_owned())
            .or_insert_with(|| (tick, BTreeMap::new()));
        entry.0 = tick;
        let before = entry.1.len();
        for resume in resumes {
            entry.1.insert(resume.line, resume);
        }
        let added = entry.1.len() - before;
        inner.held += added;
        while inner.held > RESUMES_KEPT {
            let Some(oldest) = inner
                .files
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((_, states)) = inner.files.remove(&oldest) {
                inner.held -= states.len();
            }
        }
    }

    /// States held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().held
    }
}

/// Appends `text` in the span of `class`, continuing the open span when it is the same.
fn token(
    html: &mut String,
    open: &mut Option<&'static str>,
    class: Option<&'static str>,
    text: &str,
) {
    if *open != class {
        if open.is_some() {
            html.push_str("</span>");
        }
        if let Some(class) = class {
            html.push_str("<span class=\"");
            html.push_str(class);
            html.push_str("\">");
        }
        *open = class;
    }
    escape_into(html, text);
}

/// The class of a scope stack: that of its innermost scope that has one.
#[derive(Default)]
struct Classes(HashMap<Scope, Option<&'static str>>);

impl Classes {
    fn of(&mut self, stack: &ScopeStack) -> Option<&'static str> {
        stack
            .as_slice()
            .iter()
            .rev()
            .find_map(|scope| *self.0.entry(*scope).or_insert_with(|| class(*scope)))
    }
}

/// The kind of token a scope names, by the TextMate scope conventions.
fn class(scope: Scope) -> Option<&'static str> {
    let name = scope.build_string();
    let kinds: [(&str, &'static str); 11] = [
        ("comment", "hl-comment"),
        ("string", "hl-string"),
        ("constant.numeric", "hl-number"),
        ("constant.character.escape", "hl-escape"),
        ("constant", "hl-constant"),
        ("keyword.operator", "hl-operator"),
        ("keyword", "hl-keyword"),
        ("storage", "hl-keyword"),
        ("entity.name.function", "hl-function"),
        ("support.function", "hl-builtin"),
        ("entity.name", "hl-type"),
    ];
    kinds
        .iter()
        .find(|(prefix, _)| {
            name == *prefix
                || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
        })
        .map(|(_, class)| *class)
        .or_else(|| {
            (name.starts_with("support.type") || name.starts_with("support.class"))
                .then_some("hl-type")
        })
        .or_else(|| {
            name.starts_with("variable.function")
                .then_some("hl-function")
        })
        .or_else(|| {
            name.starts_with("variable.language")
                .then_some("hl-constant")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn lines_of(name: &str, text: &str) -> Vec<String> {
        let language = detect(name, text).expect("a language");
        let count = crate::routes::lines::lines(text).count();
        let (lines, stopped) = highlight_lines(text, language, 1, count, 4_096, far());
        assert_eq!(stopped, None);
        lines
    }

    #[test]
    fn languages_are_found_by_name_first_line_and_modeline() {
        let name = |file: &str, text: &str| detect(file, text).map(|s| s.name.as_str());
        assert_eq!(name("main.rs", ""), Some("Rust"));
        assert_eq!(name("SCRIPT.PY", ""), Some("Python"));
        assert_eq!(
            name("run", "#!/bin/sh\necho hi\n"),
            Some("Bourne Again Shell (bash)")
        );
        assert_eq!(name("tool", "#!/usr/bin/env python3\n"), Some("Python"));
        assert_eq!(name("notes", "# -*- mode: ruby -*-\n"), Some("Ruby"));
        assert_eq!(
            name("x", "fn main() {}\n// vim: set ft=rust:\n"),
            Some("Rust")
        );
        assert_eq!(name("notes.txt", "just words\n"), None);
        assert_eq!(name("Makefile", "all:\n"), Some("Makefile"));
        assert!(named("plain").expect("plain").is_none());
        assert_eq!(
            named("rust").expect("rust").map(|s| s.name.as_str()),
            Some("Rust")
        );
        assert_eq!(
            named("py").expect("py").map(|s| s.name.as_str()),
            Some("Python")
        );
        assert!(named("klingon").is_err());
        assert!(names().contains(&"Rust") && !names().contains(&"Plain Text"));
        assert!(options_html(Some("Rust")).contains("<option selected>Rust</option>"));
        assert!(options_html(Some("C#")).contains("<option selected>C#</option>"));
        assert!(options_html(Some("plain")).contains("<option value=\"plain\" selected>"));
        assert!(!options_html(None).contains("selected"));
    }

    #[test]
    fn tokens_get_their_kind_and_spans_close_within_the_line() {
        let lines = lines_of("a.rs", "fn main() {\n    let s = \"<hi>\"; // note\n}\n");
        assert_eq!(lines.len(), 3);
        for (line, token) in [
            (0, "<span class=\"hl-keyword\">fn</span>"),
            (0, "<span class=\"hl-function\">main</span>"),
            (1, "<span class=\"hl-string\">&quot;&lt;hi&gt;&quot;</span>"),
            (1, "<span class=\"hl-comment\">&#x2F;&#x2F; note</span>"),
        ] {
            assert!(lines[line].contains(token), "{token} in {}", lines[line]);
        }
        for line in &lines {
            assert_eq!(
                line.matches("<span").count(),
                line.matches("</span>").count()
            );
        }
    }

    #[test]
    fn a_comment_across_lines_is_closed_and_reopened_on_each() {
        let lines = lines_of("a.py", "x = 1\ns = '''doc\nstill doc\n'''\ny = 2\n");
        assert_eq!(
            lines[2], "<span class=\"hl-string\">still doc</span>",
            "{lines:?}"
        );
        assert!(lines[4].contains("hl-number"), "{lines:?}");
    }

    #[test]
    fn later_pages_carry_the_state_and_the_bounds_stop_the_work() {
        let text = "/* open\nstill\n*/\nfn f() {}\n";
        let rust = named("rust").expect("rust").expect("a language");
        let (page, stopped) = highlight_lines(text, rust, 2, 2, 4_096, far());
        assert_eq!((page.len(), stopped), (1, None));
        assert_eq!(page[0], "<span class=\"hl-comment\">still</span>");
        let long = format!("fn a() {{}}\n{}\nfn b() {{}}\n", "x".repeat(100));
        let (page, stopped) = highlight_lines(&long, rust, 1, 3, 50, far());
        assert_eq!((page.len(), stopped), (1, Some(Stopped::LongLine)));
        let many = "fn f() {}\n".repeat(10_000);
        let started = Instant::now();
        let (page, stopped) = highlight_lines(&many, rust, 1, 10_000, 4_096, Instant::now());
        assert_eq!(stopped, Some(Stopped::TimedOut));
        assert!(page.len() < 32, "stopped inside the loop: {}", page.len());
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn a_page_resumed_from_a_kept_state_is_the_same_as_from_line_one() {
        let text =
            "/* a comment\nacross lines */\nfn f() {}\nlet s = \"a string\nacross lines\";\n"
                .repeat(60);
        let rust = named("rust").expect("rust").expect("a language");
        let count = crate::routes::lines::lines(&text).count();
        let whole = highlight_from(
            &text,
            Resume::start(rust),
            1,
            count,
            4_096,
            far(),
            &[101, 105],
        );
        assert_eq!(whole.stopped, None);
        let kept: Vec<usize> = whole.resumes.iter().map(|r| r.line).collect();
        assert_eq!(kept, [101, 105]);
        let resumed = highlight_from(
            &text,
            whole.resumes[1].clone(),
            105,
            count,
            4_096,
            far(),
            &[],
        );
        assert_eq!(resumed.lines, whole.lines[104..]);
        // Line 105 is inside a string that opened on line 104: the state carried it.
        assert!(
            whole.lines[104].starts_with("<span class=\"hl-string\">"),
            "{}",
            whole.lines[104]
        );

        let cache = Resumes::new();
        cache.keep("a", whole.resumes.clone());
        assert_eq!(cache.before("a", 103).map(|r| r.line), Some(101));
        assert_eq!(cache.before("a", 150).map(|r| r.line), Some(105));
        assert_eq!(cache.before("a", 100).map(|r| r.line), None);
        assert!(cache.before("b", 150).is_none());
        // Bounded: many files' states push out the least recently used.
        let one = whole.resumes[0].clone();
        for n in 0..RESUMES_KEPT {
            cache.keep(&format!("f{n}"), vec![one.clone()]);
        }
        assert!(cache.held() <= RESUMES_KEPT);
        assert!(cache.before("a", 150).is_none(), "the oldest went first");
    }

    /// What highlighting costs (run with `--release --ignored --nocapture`; docs/benchmarks.md
    /// quotes it): Rust source at the budget's bytes, all of it (the last page's cost).
    #[test]
    #[ignore]
    fn highlight_cost() {
        let source = include_str!("paging.rs");
        let text = source.repeat(BUDGET.bytes / source.len());
        let count = crate::routes::lines::lines(&text).count();
        let rust = named("rust").expect("rust").expect("a language");
        let _ = syntaxes();
        let mut times: Vec<Duration> = (0..7)
            .map(|_| {
                let started = Instant::now();
                let first = count.saturating_sub(499).max(1);
                let (lines, _) = highlight_lines(&text, rust, first, count, 4_096, far());
                assert_eq!(lines.len(), count - first + 1);
                started.elapsed()
            })
            .collect();
        times.sort();
        let load = Instant::now();
        let _ = SyntaxSet::load_defaults_newlines();
        eprintln!(
            "highlight_cost: {} bytes, {count} lines of Rust to the last page: median {:?}; \
             loading the grammars {:?}",
            text.len(),
            times[times.len() / 2],
            load.elapsed()
        );
    }
}
