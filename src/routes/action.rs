//! GET /action shows the stored file back as escaped text, with when it will be deleted;
//! POST /forget deletes it at once.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use chrono::Duration;
use tera::Context;

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Backend;
use crate::session::store::expiry_after_this_request;
use crate::session::TextdropSession;
use crate::templates;

/// GET /action
pub async fn show(
    session: TextdropSession,
    settings: web::Data<Settings>,
    clock: web::Data<Clock>,
) -> HttpResponse {
    let mut context = Context::new();
    let lifetime = settings.session_lifetime;
    context.insert("lifetime", &human_duration(lifetime.as_secs()));
    if let Some(file) = session.file() {
        let ttl = Duration::seconds(lifetime.as_secs() as i64);
        let now = clock.now();
        // Redis: actix-session renews the key's TTL on every request, so a lifetime from now.
        let redis = settings.database_url.backend() == Backend::Redis;
        let kept_until = expiry_after_this_request(now, ttl)
            .or_else(|| redis.then(|| now + ttl))
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
