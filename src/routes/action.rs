//! GET /action shows the stored file back as escaped text, a page at a time, with when it will
//! be deleted: numbered lines a link can point at (`?line=N`, `?lines=3-5,10-12,40`, see
//! `selection`), a search (`?q=words`), wrapping switched off with `?wrap=0`. A Markdown file
//! is shown rendered (`?view=source` for its numbered lines, the default for a link to lines,
//! a page or a search).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use tera::Context;

use crate::config::Settings;
use crate::connection::client_gone;
use crate::error::AppError;
use crate::limits::FileShown;
use crate::routes::highlight::{self, Language};
use crate::routes::index_cache::IndexCache;
use crate::routes::markdown;
use crate::routes::paging::{self, PageIndex};
use crate::routes::search;
use crate::routes::selection::Selection;
use crate::session::TextdropSession;
use crate::templates;
use actix_session_stores::layer;
use actix_session_stores::Storage;

/// Files up to this size render on the request's own thread (measured: a 16 KiB page renders
/// in well under a millisecond); bigger ones on the blocking pool.
const RENDER_INLINE_BYTES: usize = 16 * 1024;

/// The query /action understands: `page=N`, `line=N`, `lines=A-B,C-D,E`, `q=words` with
/// `case=1`, `wrap=0`.
#[derive(Debug, serde::Deserialize)]
pub struct ActionQuery {
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    line: Option<String>,
    #[serde(default)]
    lines: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    case: Option<String>,
    #[serde(default)]
    wrap: Option<String>,
    #[serde(default)]
    view: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

/// The language a page's lines are highlighted in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lang {
    /// Found from the file (its name, then its first line or a modeline).
    Auto,
    /// `?lang=plain`: not highlighted.
    Plain,
    /// `?lang=NAME`: this grammar (its name), even past the highlighting budget.
    Named(&'static str),
}

/// What the page is asked to show.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Page N of the lines.
    Page(usize),
    /// Selected lines, highlighted: on the page holding the first (or page N, given).
    Lines(Selection, Option<usize>),
    /// A Markdown file rendered as a document.
    Rendered,
    /// Page N of the lines matching a search.
    Search {
        words: String,
        case: bool,
        page: usize,
    },
}

/// The parsed query: what to show, whether long lines wrap, and whether the file is Markdown
/// (which has a rendered view and a source view).
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    target: Target,
    wrap: bool,
    markdown: bool,
    lang: Lang,
}

fn flag(value: Option<&str>, name: &str, default: bool) -> Result<bool, AppError> {
    match value {
        None => Ok(default),
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(_) => Err(AppError::BadValue(format!("{name} takes 1 or 0"))),
    }
}

impl View {
    fn parse(query: &ActionQuery, markdown: bool) -> Result<Self, AppError> {
        let wrap = flag(query.wrap.as_deref(), "wrap", true)?;
        let lang = match query.lang.as_deref() {
            None | Some("") => Lang::Auto,
            Some(name) => match highlight::named(name) {
                Ok(None) => Lang::Plain,
                Ok(Some(language)) => Lang::Named(language.name.as_str()),
                Err(()) => {
                    return Err(AppError::BadValue(
                        "lang takes plain or a language from the list on the page".into(),
                    ))
                }
            },
        };
        let rendered = match query.view.as_deref() {
            None => None,
            Some("rendered") => Some(true),
            Some("source") => Some(false),
            Some(_) => return Err(AppError::BadValue("view takes rendered or source".into())),
        };
        let case = flag(query.case.as_deref(), "case", false)?;
        let asked_page = match query.page.as_deref() {
            None => None,
            Some(raw) => Some(
                raw.trim()
                    .parse::<usize>()
                    .map_err(|_| AppError::BadValue("a page is a whole number".into()))?,
            ),
        };
        let page = asked_page.unwrap_or(1);
        let bad = |e: crate::routes::selection::SelectionError| AppError::BadValue(e.to_string());
        let target = match (
            query.q.as_deref(),
            query.line.as_deref(),
            query.lines.as_deref(),
        ) {
            (Some(words), _, _) if !words.is_empty() => {
                if words.chars().count() > search::MAX_QUERY_CHARS {
                    return Err(AppError::SearchTooLong);
                }
                Target::Search {
                    words: words.to_owned(),
                    case,
                    page,
                }
            }
            (_, _, Some(ranges)) => {
                Target::Lines(Selection::parse(ranges).map_err(bad)?, asked_page)
            }
            (_, Some(line), None) => Target::Lines(Selection::line(line).map_err(bad)?, asked_page),
            // A Markdown file is rendered unless its source is asked for, or a page of it.
            _ if markdown && rendered.unwrap_or(asked_page.is_none()) => Target::Rendered,
            _ => Target::Page(page),
        };
        Ok(Self {
            target,
            wrap,
            markdown,
            lang,
        })
    }

    /// The `lang` parameter the page's links carry: the one asked for, if any.
    fn lang_param(&self) -> Option<(&'static str, String)> {
        match self.lang {
            Lang::Auto => None,
            Lang::Plain => Some(("lang", "plain".into())),
            Lang::Named(name) => Some(("lang", encoded(name))),
        }
    }

    /// What every link on the page carries besides its own parameters (HTML-escaped).
    fn link_query(&self) -> String {
        let mut query = String::new();
        if let Some((name, value)) = self.lang_param() {
            query.push_str(&format!("&amp;{name}={value}"));
        }
        if !self.wrap {
            query.push_str("&amp;wrap=0");
        }
        query
    }
}

/// An `/action` address with `params` (already URL-encoded, so no character in them needs
/// escaping) and the view's wrap setting, its `&` escaped for an HTML attribute.
fn action_url(params: &[(&str, String)], wrap: bool) -> String {
    let mut pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !wrap {
        pairs.push("wrap=0".into());
    }
    if pairs.is_empty() {
        "/action".into()
    } else {
        format!("/action?{}", pairs.join("&amp;"))
    }
}

fn encoded(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|pair| pair.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// The page's links to other pages of the same view: previous, next, and the same page with
/// wrapping switched.
#[derive(Debug, Default, serde::Serialize)]
struct Links {
    prev: Option<String>,
    next: Option<String>,
    wrap: String,
    nowrap: String,
}

/// GET /action
pub async fn show(
    req: HttpRequest,
    session: TextdropSession,
    settings: web::Data<Settings>,
    storage: web::Data<Storage>,
    indexes: web::Data<IndexCache>,
    query: web::Query<ActionQuery>,
) -> Result<HttpResponse, AppError> {
    let mut context = Context::new();
    let lifetime = settings.session.lifetime;
    context.insert("lifetime", &human_duration(lifetime.as_secs()));
    let (Some(info), Some(text)) = (session.file(), layer::take_loaded_attachment()) else {
        return Ok(templates::page(StatusCode::OK, "action.html", &context));
    };
    let view = View::parse(&query, markdown::is_markdown(&info.name))?;
    // A superseded key shows the previous version until its grace ends, and says so; the
    // current one says how long the file is kept.
    if let Some(until) = layer::superseded().and_then(|s| s.shown_until()) {
        context.insert(
            "previous_until",
            &until.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        );
    } else if let Some((kept_until, deadline)) = storage.kept_until(lifetime) {
        let shown = |at: chrono::NaiveDateTime| at.format("%Y-%m-%d %H:%M UTC").to_string();
        context.insert("kept_until", &shown(kept_until));
        context.insert("deadline", &deadline.map(shown));
    }
    context.insert("file", &info);
    context.insert("wrap", &view.wrap);
    let shown = text.len() as u64;
    let id = layer::loaded_id();
    let cached = id.as_deref().and_then(|id| indexes.get(id, text.len()));
    // A small file, or a big one whose page index is cached, renders a page in microseconds,
    // less than a hop to the blocking pool costs; indexing a big file or searching it is real
    // CPU work: off the async executor.
    // Highlighting is milliseconds of CPU for a page (docs/benchmarks.md): never inline.
    let highlighting = match view.lang {
        _ if !matches!(view.target, Target::Page(_) | Target::Lines(..)) => Highlighting::Off,
        Lang::Plain => Highlighting::Off,
        Lang::Named(name) => highlight::syntaxes()
            .find_syntax_by_name(name)
            .map_or(Highlighting::Off, Highlighting::Asked),
        Lang::Auto => match highlight::detect_by_name(&info.name) {
            highlight::ByName::Plain => Highlighting::Off,
            highlight::ByName::Language(language) => Highlighting::Found(language),
            highlight::ByName::Unknown => Highlighting::ByContent,
        },
    };
    let inline = highlighting == Highlighting::Off
        && (text.len() <= RENDER_INLINE_BYTES
            || (cached.is_some() && matches!(view.target, Target::Page(_) | Target::Lines(..))));
    let indexes = (**indexes).clone();
    let render = move || {
        let index = cached.unwrap_or_else(|| indexes.index_of(id.as_deref(), &text, paging::PLAIN));
        let highlighted_index = || indexes.index_of(id.as_deref(), &text, paging::HIGHLIGHTED);
        fill(
            &text,
            &index,
            highlighted_index,
            id.as_deref(),
            &view,
            highlighting,
            context,
        )
        .map(|c| templates::render("action.html", &c))
    };
    let body = if inline {
        render()
    } else if client_gone(&req) {
        // Nobody to show it to: not worth a thread.
        return Ok(HttpResponse::NoContent().finish());
    } else {
        web::block(render)
            .await
            .map_err(|err| AppError::Internal(err.into()))?
    };
    let body = body.ok_or(AppError::NotFound)?;
    let mut response = templates::html(StatusCode::OK, body);
    response.extensions_mut().insert(FileShown(shown));
    Ok(response)
}

/// Whether and in what a page's lines are highlighted.
#[derive(Debug, Clone, Copy)]
enum Highlighting {
    Off,
    /// Found from the file's name: within the budget only.
    Found(Language),
    /// No language from the name: the first line or a modeline may name one.
    ByContent,
    /// Asked for with `?lang=`: past the budget too, within the hard limit.
    Asked(Language),
}

impl PartialEq for Highlighting {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Off, Self::Off) | (Self::ByContent, Self::ByContent) => true,
            (Self::Found(a), Self::Found(b)) | (Self::Asked(a), Self::Asked(b)) => {
                std::ptr::eq(*a, *b)
            }
            _ => false,
        }
    }
}

/// The page's lines or search results for `view` of `text`, whose page index is `index`;
/// `None` for a page that does not exist.
fn fill(
    text: &str,
    index: &PageIndex,
    highlighted_index: impl FnOnce() -> std::sync::Arc<PageIndex>,
    id: Option<&str>,
    view: &View,
    highlighting: Highlighting,
    mut context: Context,
) -> Option<Context> {
    let (endings, no_final_newline) = index.endings();
    context.insert("endings", &endings);
    context.insert("no_final_newline", &no_final_newline);
    let too_long_to_render;
    let view = if view.target == Target::Rendered {
        if text.len() <= markdown::MAX_RENDERED_BYTES {
            context.insert("rendered_html", &markdown::render(text));
            context.insert("is_rendered", &true);
            context.insert(
                "markdown",
                &serde_json::json!({
                    "rendered": true,
                    "other": action_url(&[("view", "source".into())], view.wrap),
                }),
            );
            context.insert("links", &Links::default());
            return Some(context);
        }
        context.insert(
            "note",
            &format!(
                "This Markdown file is longer than {} KiB, so it is shown as numbered source.",
                markdown::MAX_RENDERED_BYTES / 1024
            ),
        );
        too_long_to_render = View {
            target: Target::Page(1),
            ..view.clone()
        };
        &too_long_to_render
    } else {
        if view.markdown {
            context.insert(
                "markdown",
                &serde_json::json!({
                    "rendered": false,
                    "other": action_url(&[], view.wrap),
                }),
            );
        }
        view
    };
    let link_query = view.link_query();
    let link_query = link_query.as_str();
    let mut links = Links::default();
    let base: Vec<(&str, String)> = match &view.target {
        Target::Search { words, case, .. } => {
            let mut base = vec![("q", encoded(words))];
            if *case {
                base.push(("case", "1".into()));
            }
            base
        }
        Target::Lines(selection, _) => {
            let (name, value) = selection.query();
            vec![(name, value)]
        }
        Target::Page(_) if view.markdown => vec![("view", "source".into())],
        Target::Page(_) => Vec::new(),
        Target::Rendered => unreachable!("rendered above"),
    };
    let base: Vec<(&str, String)> = base.into_iter().chain(view.lang_param()).collect();
    // A selection's pages name their number even when it is 1: without it the link would
    // land on the selection's own page.
    let selecting = matches!(view.target, Target::Lines(..));
    let page_url = |number: usize| {
        let mut params = base.clone();
        if number > 1 || selecting {
            params.push(("page", number.to_string()));
        }
        action_url(&params, view.wrap)
    };
    let (number, count) = match &view.target {
        Target::Search { words, case, page } => {
            let query = search::Query::new(words, *case)?;
            let results = match search::search(text, &query, *page, link_query) {
                Some(results) => results,
                None => {
                    // Past the last page of results (or 0): the last page, said so.
                    let count = search::search(text, &query, 1, link_query)?.count;
                    context.insert("note", &no_such_page(*page, count));
                    search::search(text, &query, count, link_query)?
                }
            };
            context.insert("search", &serde_json::json!({
                "words": words,
                "case": case,
                "matching_lines": results.matching_lines,
                "other_case": action_url(&[("q", encoded(words)), ("case", if *case { "0" } else { "1" }.into())], view.wrap),
                "all_lines": action_url(&[], view.wrap),
            }));
            context.insert("has_lines", &!results.html.is_empty());
            context.insert("lines_html", &results.html);
            context.insert(
                "page",
                &serde_json::json!({"number": results.number, "count": results.count}),
            );
            (results.number, results.count)
        }
        Target::Page(_) | Target::Lines(..) | Target::Rendered => {
            let (asked, selection) = match &view.target {
                Target::Page(number) => (Some(*number), None),
                Target::Lines(selection, page) => (*page, Some(selection)),
                Target::Search { .. } | Target::Rendered => unreachable!("handled above"),
            };
            // A highlighted file is cut in smaller pages (`paging::HIGHLIGHTED`): the grammar
            // costs every byte it shows.
            let language = decide_highlighting(text, index, highlighting, view, &mut context);
            let shaped;
            let index = match language {
                Some(_) => {
                    shaped = highlighted_index();
                    &*shaped
                }
                None => index,
            };
            let number = match (asked, selection) {
                (Some(number), _) if (1..=index.count()).contains(&number) => number,
                (Some(number), _) => {
                    context.insert("note", &no_such_page(number, index.count()));
                    index.count()
                }
                (None, Some(selection)) => match index.page_of_line(selection.first_line()) {
                    Some(number) => number,
                    None => {
                        let note = past_the_end(selection.first_line(), index.lines());
                        context.insert("note", &note);
                        index.count()
                    }
                },
                (None, None) => 1,
            };
            let page = index.page(text, number)?;
            let highlighted = match language {
                Some(language) => highlight_page(text, index, &page, language, id, &mut context),
                None => Vec::new(),
            };
            if page.first_line > 0 {
                let chosen = match view.lang {
                    Lang::Plain => Some("plain"),
                    _ => context.get("language").and_then(|l| l.as_str()),
                };
                context.insert("language_options", &highlight::options_html(chosen));
                context.insert("has_language_options", &true);
            }
            let link_start = selection.map(Selection::link_start);
            if let Some(selection) = selection {
                context.insert(
                    "selection",
                    &serde_json::json!({
                        "lines": selection.describe(),
                        "open": selection.is_open(),
                        "clear": page_url_plain(number, view.wrap),
                    }),
                );
            }
            let shown = paging::Shown {
                selection,
                link_start: link_start.as_deref().unwrap_or("/action?line="),
                link_query,
                highlighted: &highlighted,
            };
            let lines_html = paging::lines_html(&page.lines, &shown);
            context.insert("has_lines", &!lines_html.is_empty());
            context.insert("lines_html", &lines_html);
            context.insert("page", &page);
            (page.number, page.count)
        }
    };
    links.prev = (number > 1).then(|| page_url(number - 1));
    links.next = (number < count).then(|| page_url(number + 1));
    let here: Vec<(&str, String)> = {
        let mut here = base.clone();
        match view.target {
            Target::Lines(_, Some(_)) => here.push(("page", number.to_string())),
            Target::Lines(_, None) => {}
            _ if number > 1 => here.push(("page", number.to_string())),
            _ => {}
        }
        here
    };
    links.wrap = action_url(&here, true);
    links.nowrap = action_url(&here, false);
    context.insert("links", &links);
    Some(context)
}

/// The language the page's lines are highlighted in, and whether it was asked for: `None` when
/// none applies, or when the file is past the budget unasked (then the page offers to try).
fn decide_highlighting(
    text: &str,
    index: &PageIndex,
    highlighting: Highlighting,
    view: &View,
    context: &mut Context,
) -> Option<(Language, bool)> {
    let (language, asked) = match highlighting {
        Highlighting::Off => return None,
        Highlighting::Found(language) => (language, false),
        Highlighting::Asked(language) => (language, true),
        Highlighting::ByContent => (highlight::detect_by_content(text)?, false),
    };
    let budget = highlight::BUDGET;
    let within = index.lines() <= budget.lines
        && text.len() <= budget.bytes
        && index.longest_line() <= budget.longest_line;
    if !asked && !within {
        // A Markdown file's source stays the source (its plain address is the rendered view).
        let mut params = Vec::new();
        if view.markdown {
            params.push(("view", "source".to_owned()));
        }
        params.push(("lang", encoded(&language.name)));
        context.insert(
            "highlight_offer",
            &serde_json::json!({
                "why": format!(
                    "This file is not highlighted: it is past what is highlighted at once ({} \
                     lines, {} KiB, or a line of {} characters).",
                    budget.lines,
                    budget.bytes / 1024,
                    budget.longest_line
                ),
                "url": action_url(&params, view.wrap),
                "language": language.name,
                "seconds": highlight::HARD_LIMIT.as_secs_f32(),
            }),
        );
        return None;
    }
    Some((language, asked))
}

/// The page's lines highlighted in `language` (asked for: past the budget), as far as the hard
/// limit and the longest line allow (empty: plain); what the page says about it goes into
/// `context`.
fn highlight_page(
    text: &str,
    index: &PageIndex,
    page: &paging::Page<'_>,
    (language, asked): (Language, bool),
    id: Option<&str>,
    context: &mut Context,
) -> Vec<String> {
    if page.first_line == 0 {
        return Vec::new();
    }
    let budget = highlight::BUDGET;
    let longest = if asked {
        highlight::ASKED_LONGEST_LINE
    } else {
        budget.longest_line
    };
    let deadline = std::time::Instant::now() + highlight::HARD_LIMIT;
    // Resume where a page seen before left the grammar, not at line 1; keep the state at the
    // start of each page passed on the way, and of the next one.
    let key = id.map(|id| format!("{id}/{}/{}", language.name, text.len()));
    let resumes = highlight::Resumes::shared();
    let from = key
        .as_deref()
        .and_then(|key| resumes.before(key, page.first_line))
        .unwrap_or_else(|| highlight::Resume::start(language));
    let marks = index.page_start_lines(1..=page.number + 1);
    let done = highlight::highlight_from(
        text,
        from,
        page.first_line,
        page.last_line,
        longest,
        deadline,
        &marks,
    );
    if let Some(key) = key {
        resumes.keep(&key, done.resumes);
    }
    let (lines, stopped) = (done.lines, done.stopped);
    context.insert("language", &language.name);
    if let Some(stopped) = stopped {
        let why =
            match stopped {
                highlight::Stopped::TimedOut => format!(
                    "Highlighting stopped after {} s, so {} shown plain.",
                    highlight::HARD_LIMIT.as_secs_f32(),
                    if lines.is_empty() {
                        "this page is"
                    } else {
                        "the rest of this page is"
                    }
                ),
                highlight::Stopped::LongLine => {
                    format!(
                "Highlighting stopped at a line longer than {} characters, so {} shown plain.",
                longest,
                if lines.is_empty() { "this page is" } else { "the rest of this page is" }
            )
                }
            };
        context.insert("highlight_stopped", &why);
    }
    lines
}

/// Page `number` of the file without a selection or search.
fn page_url_plain(number: usize, wrap: bool) -> String {
    if number > 1 {
        action_url(&[("page", number.to_string())], wrap)
    } else {
        action_url(&[], wrap)
    }
}

/// The note for a page number past the end of the file (or 0).
fn no_such_page(page: usize, pages: usize) -> String {
    let plural = if pages == 1 { "" } else { "s" };
    format!("There is no page {page}: the file has {pages} page{plural}. This is its last page.")
}

/// The note for a line number past the end of the file.
fn past_the_end(line: usize, lines: usize) -> String {
    let plural = if lines == 1 { "" } else { "s" };
    format!("There is no line {line}: the file has {lines} line{plural}. This is its last page.")
}

/// A lifetime as a person says it: "24 hours", "30 minutes", "2 days", "90 seconds".
pub(crate) fn human_duration(secs: u64) -> String {
    let (amount, unit) = match secs {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    let plural = if amount == 1 { "" } else { "s" };
    format!("{amount} {unit}{plural}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &str) -> ActionQuery {
        serde_urlencoded::from_str(pairs).expect("a query")
    }

    #[test]
    fn queries_name_what_to_show() {
        let view = |pairs: &str| View::parse(&query(pairs), false).map_err(|e| e.to_string());
        assert_eq!(view("").map(|v| v.target), Ok(Target::Page(1)));
        assert_eq!(view("page=3").map(|v| v.target), Ok(Target::Page(3)));
        let selected = |raw: &str, page: Option<usize>| {
            Ok(Target::Lines(Selection::parse(raw).expect("ranges"), page))
        };
        assert_eq!(view("line=12").map(|v| v.target), selected("12", None));
        assert_eq!(
            view("lines=40-20").map(|v| v.target),
            selected("20-40", None)
        );
        assert_eq!(
            view("lines=3-5,10-12,40&page=2").map(|v| v.target),
            selected("3-5,10-12,40", Some(2))
        );
        assert_eq!(
            view("q=a+b&case=1&page=2").map(|v| v.target),
            Ok(Target::Search {
                words: "a b".into(),
                case: true,
                page: 2
            })
        );
        assert_eq!(view("q=&line=3").map(|v| v.target), selected("3", None));
        assert!(view(&format!("lines={}", vec!["1"; 17].join(","))).is_err());
        assert_eq!(view("wrap=0").map(|v| v.wrap), Ok(false));
        assert!(view("line=x").is_err());
        assert!(view("lines=1-y").is_err());
        assert!(view("wrap=maybe").is_err());
        assert_eq!(
            view(&format!("q={}", "a".repeat(201))),
            Err("search too long".into())
        );
    }

    #[test]
    fn markdown_is_rendered_unless_its_lines_are_asked_for() {
        let view = |pairs: &str| View::parse(&query(pairs), true).map(|v| v.target).ok();
        assert_eq!(view(""), Some(Target::Rendered));
        assert_eq!(view("view=rendered"), Some(Target::Rendered));
        assert_eq!(view("view=source"), Some(Target::Page(1)));
        assert_eq!(view("page=2"), Some(Target::Page(2)));
        assert!(matches!(view("line=3"), Some(Target::Lines(..))));
        assert!(matches!(view("q=x"), Some(Target::Search { .. })));
        assert!(View::parse(&query("view=pretty"), true).is_err());
        // Only Markdown has a rendered view.
        assert_eq!(
            View::parse(&query("view=rendered"), false)
                .map(|v| v.target)
                .ok(),
            Some(Target::Page(1))
        );
    }

    #[test]
    fn links_keep_the_view() {
        assert_eq!(action_url(&[], true), "/action");
        assert_eq!(
            action_url(&[("q", encoded("a&b c")), ("page", "2".into())], false),
            "/action?q=a%26b+c&amp;page=2&amp;wrap=0"
        );
    }

    #[test]
    fn lifetimes_read_naturally() {
        assert_eq!(human_duration(86_400), "1 day");
        assert_eq!(human_duration(7_200), "2 hours");
        assert_eq!(human_duration(1_800), "30 minutes");
        assert_eq!(human_duration(90), "90 seconds");
    }
}
