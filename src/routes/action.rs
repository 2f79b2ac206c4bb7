//! GET /action shows the stored file back as escaped text, with when it will be deleted;
//! POST /forget deletes it at once.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use tera::Context;

use crate::clock::Clock;
use crate::config::Settings;
use crate::session::TextdropSession;
use crate::storage::SessionStorage;
use crate::templates;

/// GET /action
pub async fn show(
    session: TextdropSession,
    settings: web::Data<Settings>,
    storage: web::Data<SessionStorage>,
    clock: web::Data<Clock>,
) -> HttpResponse {
    let mut context = Context::new();
    let lifetime = settings.session.lifetime;
    context.insert("lifetime", &human_duration(lifetime.as_secs()));
    if let Some(file) = session.file() {
        let kept_until = storage
            .kept_until(clock.now(), lifetime)
            .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string());
        context.insert("kept_until", &kept_until);
        context.insert("line_count", &file.lines.len());
        context.insert("file", &file);
    }
    templates::page(StatusCode::OK, "action.html", &context)
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
