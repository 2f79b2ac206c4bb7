//! This crate's own semantics beyond actix-session's suite: `Session::renew()` inside the
//! request layer is one rotation, and the key it replaced reads the previous state, read-only,
//! for the grace period; `Session::purge()` from the new key removes the old one too.

use std::time::Duration;

use actix_session::{Session, SessionMiddleware};
use actix_session_stores::layer;
use actix_web::cookie::{Cookie, Key};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse};
use libtest_mimic::Failed;

use crate::databases::Kind;

async fn show(session: Session) -> actix_web::Result<HttpResponse> {
    let counter = session.get::<i32>("counter")?.unwrap_or(0);
    let user = session.get::<String>("user")?.unwrap_or_default();
    Ok(HttpResponse::Ok().body(format!("{user}:{counter}")))
}

async fn bump(session: Session) -> actix_web::Result<HttpResponse> {
    let counter = session.get::<i32>("counter")?.unwrap_or(0) + 1;
    session.insert("counter", counter)?;
    show(session).await
}

async fn login(session: Session) -> actix_web::Result<HttpResponse> {
    session.insert("user", "ferris")?;
    session.renew();
    show(session).await
}

async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok().body("bye")
}

/// The session cookie a response set.
fn cookie_of(response: &awc::ClientResponse<impl Sized>) -> Option<Cookie<'static>> {
    response
        .cookies()
        .ok()?
        .iter()
        .find(|c| c.name() == "id")
        .map(|c| c.clone().into_owned())
}

pub fn renew_within_grace(kind: Kind, server: &str) -> Result<(), Failed> {
    crate::on_storage(
        kind,
        server,
        |config| config.session.rotation_grace = Duration::from_secs(60),
        |storage| {
            Box::pin(async move {
                let key = Key::generate();
                let srv = actix_test::start(move || {
                    App::new()
                        .wrap(SessionMiddleware::new(storage.store(), key.clone()))
                        .wrap(from_fn(layer::request_scope))
                        .route("/", web::get().to(show))
                        .route("/bump", web::post().to(bump))
                        .route("/login", web::post().to(login))
                        .route("/logout", web::post().to(logout))
                });
                let body = |mut response: awc::ClientResponse<_>| async move {
                    String::from_utf8(response.body().await.expect("a body").to_vec())
                        .expect("UTF-8")
                };

                let bumped = srv.post("/bump").send().await.expect("bump");
                let old = cookie_of(&bumped).expect("a session cookie");
                let logged_in = srv
                    .post("/login")
                    .cookie(old.clone())
                    .send()
                    .await
                    .expect("login");
                let new = cookie_of(&logged_in).expect("a new cookie");
                assert_ne!(old.value(), new.value(), "renew gives a new key");
                assert_eq!(body(logged_in).await, "ferris:1");

                // The old key still reads the state from before the renew: a delete followed
                // by a save would have removed it.
                let seen = srv.get("/").cookie(old.clone()).send().await.expect("get");
                assert_eq!(body(seen).await, ":1", "the old key within its grace");
                // Read-only: a write through it changes nothing under the old key.
                srv.post("/bump")
                    .cookie(old.clone())
                    .send()
                    .await
                    .expect("bump");
                let seen = srv.get("/").cookie(old.clone()).send().await.expect("get");
                assert_eq!(body(seen).await, ":1", "the old record was not written");
                let seen = srv.get("/").cookie(new.clone()).send().await.expect("get");
                assert_eq!(body(seen).await, "ferris:1");

                // A purge from the new key removes the old one with it.
                srv.post("/logout")
                    .cookie(new.clone())
                    .send()
                    .await
                    .expect("logout");
                let seen = srv.get("/").cookie(new).send().await.expect("get");
                assert_eq!(body(seen).await, ":0", "the purged key reads nothing");
                let seen = srv.get("/").cookie(old).send().await.expect("get");
                assert_eq!(body(seen).await, ":0", "the old key went with it");
            })
        },
    )
}
