//! A Markdown file read as a document: CommonMark (with tables, strikethrough and footnotes) by
//! pulldown-cmark, then sanitized by ammonia.
//!
//! - No raw HTML passes: an HTML block is shown as a code block of its text, inline HTML as
//!   text. ammonia then removes anything its allow-list does not hold, should the renderer ever
//!   let a tag through.
//! - Links get `rel="nofollow noopener noreferrer"`; `javascript:` and other unlisted schemes are
//!   removed.
//! - Images are never loaded: each becomes a link to its address, "image: alt text", so the
//!   visitor's browser fetches nothing it was not asked to (the CSP, `default-src 'self'`, would
//!   block a remote image anyway).
//! - Headings get ids (`md-` and their text, lowercased; `-1`, `-2` for repeats, never one of
//!   the line ids `L{n}`) and a `§` link to themselves.
//!
//! Rendering is linear in the text, bounded by [`MAX_RENDERED_BYTES`]; a longer file shows its
//! numbered source instead.

use std::collections::HashMap;
use std::sync::OnceLock;

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};

/// The longest Markdown file rendered; a longer one is shown as numbered source, with a
/// sentence saying why.
pub const MAX_RENDERED_BYTES: usize = 256 * 1024;

/// Whether a file of this name is Markdown (`.md`, `.markdown`, any case).
pub fn is_markdown(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown")
}

/// `text` rendered as sanitized HTML.
pub fn render(text: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_SMART_PUNCTUATION;
    let events = defang(Parser::new_ext(text, options));
    let events = anchor_headings(events);
    let mut html = String::with_capacity(text.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    sanitizer().clean(&html).to_string()
}

/// The parser's events with raw HTML made text and images made links.
fn defang<'a>(parser: Parser<'a>) -> Vec<Event<'a>> {
    let mut events = Vec::new();
    for event in parser {
        match event {
            Event::Start(Tag::HtmlBlock) => events.push(Event::Start(Tag::CodeBlock(
                CodeBlockKind::Fenced(CowStr::Borrowed("html")),
            ))),
            Event::End(TagEnd::HtmlBlock) => events.push(Event::End(TagEnd::CodeBlock)),
            Event::Html(html) | Event::InlineHtml(html) => events.push(Event::Text(html)),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                events.push(Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }));
                events.push(Event::Text(CowStr::Borrowed("image: ")));
            }
            Event::End(TagEnd::Image) => events.push(Event::End(TagEnd::Link)),
            other => events.push(other),
        }
    }
    events
}

/// Each heading with an id made from its text, and a `§` link to itself at its end. The link
/// is the only HTML textdrop adds; it is added after [`defang`], so no visitor's HTML is.
fn anchor_headings(events: Vec<Event<'_>>) -> Vec<Event<'_>> {
    let mut out = Vec::with_capacity(events.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut heading: Option<(usize, String)> = None;
    for event in events {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                heading = Some((out.len(), String::new()));
                out.push(Event::Start(Tag::Heading {
                    level,
                    id: None,
                    classes: Vec::new(),
                    attrs: Vec::new(),
                }));
            }
            Event::Text(ref text) | Event::Code(ref text) if heading.is_some() => {
                if let Some((_, words)) = heading.as_mut() {
                    words.push_str(text);
                }
                out.push(event);
            }
            Event::End(TagEnd::Heading(level)) => {
                if let Some((at, words)) = heading.take() {
                    let slug = unique(&mut seen, slug(&words));
                    if let Event::Start(Tag::Heading { id, .. }) = &mut out[at] {
                        *id = Some(CowStr::from(slug.clone()));
                    }
                    out.push(Event::InlineHtml(CowStr::from(format!(
                        " <a class=\"anchor\" href=\"#{slug}\" aria-label=\"Link to this \
                         section\">§</a>"
                    ))));
                }
                out.push(Event::End(TagEnd::Heading(level)));
            }
            other => out.push(other),
        }
    }
    out
}

/// A heading's id: `md-` and its letters and digits lowercased, words joined by `-`.
fn slug(words: &str) -> String {
    let mut slug = String::from("md-");
    let mut dash = false;
    for c in words.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if dash && slug.len() > 3 {
                slug.push('-');
            }
            dash = false;
            slug.push(c);
        } else if c.is_whitespace() || c == '-' || c == '_' {
            dash = true;
        }
        if slug.len() >= 80 {
            break;
        }
    }
    if slug.len() == 3 {
        slug.push_str("section");
    }
    slug
}

/// `slug`, or `slug-N` when it was given before.
fn unique(seen: &mut HashMap<String, usize>, slug: String) -> String {
    let count = seen.entry(slug.clone()).or_insert(0);
    *count += 1;
    if *count == 1 {
        slug
    } else {
        format!("{slug}-{}", *count - 1)
    }
}

/// ammonia's defaults (no script, style or event attributes; http, https and mailto links)
/// without images, with heading ids and the anchor links' class and label.
fn sanitizer() -> &'static ammonia::Builder<'static> {
    static SANITIZER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    SANITIZER.get_or_init(|| {
        let mut builder = ammonia::Builder::default();
        builder
            .link_rel(Some("nofollow noopener noreferrer"))
            .rm_tags(["img"])
            .add_tag_attributes("a", ["aria-label"])
            .add_allowed_classes("a", ["anchor"]);
        for heading in ["h1", "h2", "h3", "h4", "h5", "h6"] {
            builder.add_tag_attributes(heading, ["id"]);
        }
        builder
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_lists_and_code_are_rendered_with_anchors() {
        let html = render(
            "# Read me\n\nSome *words*.\n\n- one\n- two\n\n## Read me\n\n```rust\nfn main() {}\n```\n",
        );
        assert!(
            html.contains("<h1 id=\"md-read-me\">Read me <a class=\"anchor\" href=\"#md-read-me\""),
            "{html}"
        );
        assert!(html.contains("<h2 id=\"md-read-me-1\">"), "{html}");
        assert!(html.contains("<ul>\n<li>one</li>"), "{html}");
        assert!(
            html.contains("<pre><code>fn main() {}\n</code></pre>"),
            "{html}"
        );
        assert!(html.contains("<em>words</em>"));
    }

    #[test]
    fn no_raw_html_passes() {
        let html = render(
            "<script>alert(1)</script>\n\nHi <img src=x onerror=alert(2)> there\n\n\
             <div onclick=\"x()\">block</div>\n\n[a](javascript:alert(3)) [b](https://example.com)\n",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<div"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "shown as text: {html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(2)&gt;"),
            "{html}"
        );
        assert!(
            html.contains(
                "<a href=\"https://example.com\" rel=\"nofollow noopener noreferrer\">b</a>"
            ),
            "{html}"
        );
    }

    #[test]
    fn images_become_links_and_are_never_loaded() {
        let html = render("![a cat](https://example.com/cat.png)\n");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("<a href=\"https://example.com/cat.png\" rel=\"nofollow noopener noreferrer\">image: a cat</a>"),
            "{html}"
        );
    }

    #[test]
    fn slugs_are_plain_and_never_line_ids() {
        assert_eq!(slug("Hello, World!"), "md-hello-world");
        assert_eq!(slug("  déjà  vu_2 "), "md-déjà-vu-2");
        assert_eq!(slug("!!!"), "md-section");
        assert!(slug(&"x".repeat(500)).len() <= 80);
        assert!(is_markdown("README.MD") && is_markdown("a.markdown") && !is_markdown("md.txt"));
    }

    /// What rendering the longest Markdown file costs (run with `--release --ignored
    /// --nocapture`; docs/benchmarks.md quotes it).
    #[test]
    #[ignore]
    fn markdown_cost() {
        let section = "## A section\n\nSome *prose* with `code`, a [link](https://example.com) \
                       and more words to read.\n\n- an item\n- another\n\n```rust\nfn main() {}\n```\n\n";
        let text = section.repeat(MAX_RENDERED_BYTES / section.len());
        let mut times: Vec<std::time::Duration> = (0..11)
            .map(|_| {
                let started = std::time::Instant::now();
                let html = render(&text);
                assert!(html.len() > text.len());
                started.elapsed()
            })
            .collect();
        times.sort();
        eprintln!(
            "markdown_cost: {} bytes rendered, median {:?}",
            text.len(),
            times[times.len() / 2]
        );
    }
}
