//! The HTML templates, embedded in the binary so it runs from any directory.
//!
//! They are parsed once: [`init`] at startup turns a broken template into a startup error.
//! Names end in `.html`, so Tera escapes every value; nothing untrusted is marked `safe`.

use std::sync::OnceLock;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use tera::{Context, Tera};

const SOURCES: [(&str, &str); 4] = [
    ("base.html", include_str!("../templates/base.html")),
    ("greeting.html", include_str!("../templates/greeting.html")),
    ("action.html", include_str!("../templates/action.html")),
    ("error.html", include_str!("../templates/error.html")),
];

static TERA: OnceLock<Tera> = OnceLock::new();

fn parse() -> tera::Result<Tera> {
    let mut tera = Tera::default();
    // All at once, so `{% extends %}` finds its parent whatever the order.
    tera.add_raw_templates(SOURCES)?;
    Ok(tera)
}

/// Parses the templates; call once at startup so a broken template stops the process there.
pub fn init() -> tera::Result<()> {
    if TERA.get().is_none() {
        let _ = TERA.set(parse()?);
    }
    Ok(())
}

fn tera() -> &'static Tera {
    TERA.get_or_init(|| parse().expect("embedded templates parse (checked by init and tests)"))
}

/// Renders `name` to HTML. A render failure is a bug: it is logged with its cause and `None`
/// returned. Blocking work for a big context: callers with one render off the executor.
pub fn render(name: &str, context: &Context) -> Option<String> {
    match tera().render(name, context) {
        Ok(body) => Some(body),
        Err(err) => {
            let cause = std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default();
            log::error!("rendering {name} failed: {err}: {cause}");
            None
        }
    }
}

/// `body` (from [`render`]) as an HTML response with `status`; `None` is an opaque 500.
pub fn html(status: StatusCode, body: Option<String>) -> HttpResponse {
    match body {
        Some(body) => HttpResponse::build(status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type(mime_html())
            .body(body),
        None => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body("Internal server error"),
    }
}

/// Renders `name` as an HTML response with `status` (see [`render`] and [`html`]).
pub fn page(status: StatusCode, name: &str, context: &Context) -> HttpResponse {
    html(status, render(name, context))
}

/// Appends `text` to `out` HTML-escaped exactly as Tera's autoescape does
/// ([`tera::escape_html`]), without an allocation per call.
pub fn escape_into(out: &mut String, text: &str) {
    let mut done = 0;
    for (at, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            b'/' => "&#x2F;",
            _ => continue,
        };
        // ASCII bytes are always character boundaries.
        out.push_str(&text[done..at]);
        out.push_str(entity);
        done = at + 1;
    }
    out.push_str(&text[done..]);
}

fn mime_html() -> &'static str {
    "text/html; charset=utf-8"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_into_escapes_as_tera_does() {
        let text = "a&b<c>d\"e'f/g é\u{202e} &amp; </script>";
        let mut out = String::from("kept:");
        escape_into(&mut out, text);
        assert_eq!(out, format!("kept:{}", tera::escape_html(text)));
    }

    #[test]
    fn every_template_parses_and_escapes_html() {
        let tera = parse().expect("templates parse");
        let mut ctx = Context::new();
        ctx.insert("title", "Oops");
        ctx.insert("message", "<script>alert(1)</script>");
        let html = tera.render("error.html", &ctx).expect("renders");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }
}
