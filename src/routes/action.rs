//! GET /action: the stored file, shown back as escaped text.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use tera::Context;

use crate::session::TextdropSession;
use crate::templates;

pub async fn show(session: TextdropSession) -> HttpResponse {
    let mut context = Context::new();
    if let Some(file) = session.file() {
        context.insert("line_count", &file.lines.len());
        context.insert("file", &file);
    }
    templates::page(StatusCode::OK, "action.html", &context)
}
