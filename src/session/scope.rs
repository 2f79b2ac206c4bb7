//! What one request's session store calls and its handler share: the expiry `load` saw, and
//! whether a store call failed because the storage could not be reached.
//!
//! actix-session keeps the store and the handler apart, but it calls `load` and then
//! `update_ttl`/`update` inside the one request future; a task-local scope around that future
//! ([`request_scope`], a middleware) is all the memory needed. Outside a scope (a store used
//! on its own, as in tests) nothing is remembered, and the store falls back to asking the
//! database.

use std::cell::Cell;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use chrono::NaiveDateTime;

#[derive(Default)]
struct RequestScope {
    loaded_expiry: Cell<Option<NaiveDateTime>>,
    store_unavailable: Cell<bool>,
}

tokio::task_local! {
    static SCOPE: RequestScope;
}

/// Middleware: runs the rest of the request (the session middleware and the handler) inside a
/// fresh scope.
pub async fn request_scope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    SCOPE.scope(RequestScope::default(), next.call(req)).await
}

/// Remembers the expiry of the row `load` found for this request.
pub fn remember_loaded_expiry(expires_at: NaiveDateTime) {
    let _ = SCOPE.try_with(|scope| scope.loaded_expiry.set(Some(expires_at)));
}

/// The expiry `load` found for this request, if a row was loaded in this scope.
pub fn loaded_expiry() -> Option<NaiveDateTime> {
    SCOPE
        .try_with(|scope| scope.loaded_expiry.get())
        .ok()
        .flatten()
}

/// Records that a store call of this request failed because the storage was unreachable.
pub fn mark_store_unavailable() {
    let _ = SCOPE.try_with(|scope| scope.store_unavailable.set(true));
}

/// Whether a store call of this request failed because the storage was unreachable.
pub fn store_unavailable() -> bool {
    SCOPE
        .try_with(|scope| scope.store_unavailable.get())
        .unwrap_or(false)
}
