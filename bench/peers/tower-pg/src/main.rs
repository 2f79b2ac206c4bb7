//! The bench's tower-sessions peer: the textdrop pages on axum with tower-sessions' SQLx
//! PostgreSQL store.

use axum::extract::{DefaultBodyLimit, Multipart};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions;
use tower_sessions_sqlx_store::PostgresStore;

#[path = "../../page.rs"]
mod page;

use page::{page, Stored, FORM};


async fn upload(session: Session, mut multipart: Multipart) -> Response {
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() != Some("textfile") {
            continue;
        }
        let name = field.file_name().unwrap_or("file.txt").to_owned();
        let Ok(bytes) = field.bytes().await else {
            return (StatusCode::BAD_REQUEST, "unreadable upload").into_response();
        };
        let Ok(text) = String::from_utf8(bytes.to_vec()) else {
            return (StatusCode::UNPROCESSABLE_ENTITY, "not UTF-8 text").into_response();
        };
        if session.insert("file", Stored { name, text }).await.is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        return Redirect::to("/action").into_response();
    }
    (StatusCode::BAD_REQUEST, "no textfile part").into_response()
}

async fn action(session: Session) -> Response {
    match session.get::<Stored>("file").await {
        Ok(Some(file)) => Html(page(&file)).into_response(),
        Ok(None) => Html("<!doctype html><p>No file yet.</p>").into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let port: u16 = std::env::var("PORT").expect("PORT").parse().expect("a port");
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect(&url)
        .await
        .expect("connect to PostgreSQL");
    let store = PostgresStore::new(pool);
    store.migrate().await.expect("migrate");
    let sessions = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(1)));
    let app = Router::new()
        .route("/", get(|| async { Html(FORM) }).post(upload))
        .route("/action", get(action))
        .route("/readyz", get(|| async { "ok" }))
        .layer(sessions)
        .layer(DefaultBodyLimit::max(1 << 20));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
