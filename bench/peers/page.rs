//! What both peers show, shared by `#[path]`: the upload form and the file's page (its name and
//! first 40 lines, HTML-escaped).

use serde::{Deserialize, Serialize};

pub const FORM: &str = "<!doctype html><html><head><title>textdrop</title></head><body>\
<form method=\"post\" action=\"/\" enctype=\"multipart/form-data\">\
<input type=\"file\" name=\"textfile\"><button>Upload</button></form></body></html>";

/// The uploaded file as the session holds it.
#[derive(Serialize, Deserialize)]
pub struct Stored {
    pub name: String,
    pub text: String,
}

fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

pub fn page(file: &Stored) -> String {
    let mut out = String::with_capacity(file.text.len() + 512);
    out.push_str("<!doctype html><html><head><title>textdrop</title></head><body><h1>");
    escape(&mut out, &file.name);
    out.push_str("</h1><ol>");
    for line in file.text.lines().take(40) {
        out.push_str("<li>");
        escape(&mut out, line);
        out.push_str("</li>");
    }
    out.push_str("</ol></body></html>");
    out
}
