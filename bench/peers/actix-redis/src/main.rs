//! The bench's minimal actix-session peer: the textdrop pages on actix-web with
//! actix-session's own `RedisSessionStore`.

use actix_multipart::Multipart;
use actix_session::config::PersistentSession;
use actix_session::storage::RedisSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{time, Key};
use actix_web::http::header;
use actix_web::{web, App, HttpResponse, HttpServer};
use futures_util::StreamExt;

#[path = "../../page.rs"]
mod page;

use page::{page, Stored, FORM};

const LIMIT: usize = 1 << 20;

async fn upload(session: Session, mut payload: Multipart) -> HttpResponse {
    while let Some(Ok(mut field)) = payload.next().await {
        if field.name() != Some("textfile") {
            continue;
        }
        let name = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .unwrap_or("file.txt")
            .to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let Ok(chunk) = chunk else {
                return HttpResponse::BadRequest().body("unreadable upload");
            };
            if bytes.len() + chunk.len() > LIMIT {
                return HttpResponse::PayloadTooLarge().finish();
            }
            bytes.extend_from_slice(&chunk);
        }
        let Ok(text) = String::from_utf8(bytes) else {
            return HttpResponse::UnprocessableEntity().body("not UTF-8 text");
        };
        if session.insert("file", Stored { name, text }).is_err() {
            return HttpResponse::InternalServerError().finish();
        }
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/action"))
            .finish();
    }
    HttpResponse::BadRequest().body("no textfile part")
}

async fn action(session: Session) -> HttpResponse {
    match session.get::<Stored>("file") {
        Ok(Some(file)) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(page(&file)),
        Ok(None) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body("<!doctype html><p>No file yet.</p>"),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let port: u16 = std::env::var("PORT").expect("PORT").parse().expect("a port");
    let store = RedisSessionStore::new(url).await.expect("connect to Redis");
    let key = Key::generate();
    HttpServer::new(move || {
        App::new()
            .wrap(
                SessionMiddleware::builder(store.clone(), key.clone())
                    .cookie_secure(false)
                    .session_lifecycle(
                        PersistentSession::default().session_ttl(time::Duration::days(1)),
                    )
                    .build(),
            )
            .route("/", web::get().to(|| async { HttpResponse::Ok().content_type("text/html; charset=utf-8").body(FORM) }))
            .route("/", web::post().to(upload))
            .route("/action", web::get().to(action))
            .route("/readyz", web::get().to(|| async { "ok" }))
    })
    .workers(2)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
