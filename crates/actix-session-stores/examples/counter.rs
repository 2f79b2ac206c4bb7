//! A visit counter whose sessions live in SQLite: `cargo run --example counter`, then open
//! http://127.0.0.1:8080 and reload. `DATABASE_URL` and `ADDR` change where.
use actix_session::{Session, SessionMiddleware};
use actix_session_stores::{layer, Config, DatabaseUrl, Storage};
use actix_web::{cookie::Key, middleware::from_fn, web, App, HttpServer};

async fn count(session: Session) -> actix_web::Result<String> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    Ok(format!("visit {visits}\n"))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://counter.db".into());
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let storage = Storage::connect(Config::new(DatabaseUrl::parse(&url)?)).await?;
    let cleanup = storage.spawn_cleanup(); // expired rows go every 5 minutes
    let key = Key::generate(); // a real app derives it from a secret it keeps
    let server = HttpServer::new(move || {
        let sessions = SessionMiddleware::builder(storage.store(), key.clone())
            .cookie_secure(false) // plain http on loopback
            .build();
        App::new()
            .wrap(sessions)
            .wrap(from_fn(layer::request_scope))
            .route("/", web::get().to(count))
    })
    .bind(addr)?;
    println!("listening on http://{}", server.addrs()[0]);
    server.run().await?;
    if let Some(cleanup) = cleanup {
        cleanup.stop().await;
    }
    Ok(())
}
