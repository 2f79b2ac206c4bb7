//! GET /action shows the stored file back as escaped text, a page at a time, with when it will
//! be deleted; POST /forget deletes it at once.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use tera::Context;

use crate::config::Settings;
use crate::error::AppError;
use crate::routes::paging;
use crate::session::scope;
use crate::session::TextdropSession;
use crate::storage::SessionStorage;
use crate::templates;

/// Files up to this size render on the request's own thread (measured: a 16 KiB page renders
/// in well under a millisecond); bigger ones on the blocking pool.
const RENDER_INLINE_BYTES: usize = 16 * 1024;

/// The query /action understands: `?page=N`.
#[derive(Debug, serde::Deserialize)]
pub struct ActionQuery {
    #[serde(default)]
    page: Option<String>,
}

/// GET /action
pub async fn show(
    session: TextdropSession,
    settings: web::Data<Settings>,
    storage: web::Data<SessionStorage>,
    query: web::Query<ActionQuery>,
) -> Result<HttpResponse, AppError> {
    let mut context = Context::new();
    let lifetime = settings.session.lifetime;
    context.insert("lifetime", &human_duration(lifetime.as_secs()));
    let (Some(info), Some(text)) = (session.file(), scope::take_loaded_file()) else {
        return Ok(templates::page(StatusCode::OK, "action.html", &context));
    };
    let number = match query.page.as_deref() {
        None => 1,
        Some(raw) => raw.parse::<usize>().map_err(|_| AppError::NotFound)?,
    };
    if let Some((kept_until, deadline)) = storage.kept_until(lifetime) {
        let shown = |at: chrono::NaiveDateTime| at.format("%Y-%m-%d %H:%M UTC").to_string();
        context.insert("kept_until", &shown(kept_until));
        context.insert("deadline", &deadline.map(shown));
    }
    context.insert("file", &info);
    let small = text.len() <= RENDER_INLINE_BYTES;
    let mut render = move || {
        let page = paging::page(&text, number)?;
        context.insert("page", &page);
        context.insert("lines_html", &paging::lines_html(&page.lines));
        Some(templates::render("action.html", &context))
    };
    // A small file renders in microseconds, less than a hop to the blocking pool costs;
    // splitting and escaping a big one is real CPU work: off the async executor.
    let body = if small {
        render()
    } else {
        web::block(render)
            .await
            .map_err(|err| AppError::Internal(err.into()))?
    };
    let body = body.ok_or(AppError::NotFound)?;
    Ok(templates::html(StatusCode::OK, body))
}

/// POST /forget: the row and the cookie go now; the form page confirms.
pub async fn forget(session: TextdropSession) -> HttpResponse {
    session.purge();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/?forgotten=1"))
        .finish()
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
    use super::human_duration;

    #[test]
    fn lifetimes_read_naturally() {
        assert_eq!(human_duration(86_400), "1 day");
        assert_eq!(human_duration(7_200), "2 hours");
        assert_eq!(human_duration(1_800), "30 minutes");
        assert_eq!(human_duration(90), "90 seconds");
    }
}
