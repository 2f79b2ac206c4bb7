//! What one request's session store calls and its handler share, without the session state:
//! the record `load` found (its expiry and creation time, and the file when the page asked for
//! it), the one pending write a request carries (an uploaded file, which rotates the key), and
//! whether a store call failed because the storage could not be reached.
//!
//! actix-session keeps the store and the handler apart, but it calls `load`, the handler, then
//! `save`/`update`/`update_ttl` inside the one request future; a task-local scope around that
//! future ([`request_scope`], a middleware) is all the memory needed. Outside a scope (a store
//! used on its own, as in tests) nothing is remembered and the store asks the database instead.
//!
//! The file travels here rather than through the session map because actix-session's map holds
//! JSON texts: a file inserted there is escaped (up to 6 bytes per byte) and copied several
//! times. Here it stays the one `String` the upload decoded.

use std::cell::{Cell, RefCell};

use crate::limits::Reservation;
use crate::session::records::Loaded;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

/// A file on its way from the upload handler to the store, with the room reserved for it
/// under the storage cap.
#[derive(Debug)]
pub struct PendingFile {
    pub text: String,
    pub reservation: Reservation,
}

#[derive(Default)]
struct RequestScope {
    wants_file: bool,
    loaded: Cell<Option<Loaded>>,
    loaded_file: RefCell<Option<String>>,
    pending_file: RefCell<Option<PendingFile>>,
    store_unavailable: Cell<bool>,
    rotation_conflict: Cell<bool>,
}

tokio::task_local! {
    static SCOPE: RequestScope;
}

/// Middleware: runs the rest of the request (the session middleware and the handler) inside a
/// fresh scope. The store does not load the file.
pub async fn request_scope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    SCOPE.scope(RequestScope::default(), next.call(req)).await
}

/// Middleware: [`request_scope`] for a page that shows the file: `load` fetches it in the same
/// query as the session and leaves it for [`take_loaded_file`].
pub async fn request_scope_with_file(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let scope = RequestScope {
        wants_file: true,
        ..Default::default()
    };
    SCOPE.scope(scope, next.call(req)).await
}

/// Runs `f` on this request's scope; `None` outside one.
fn with<T>(f: impl FnOnce(&RequestScope) -> T) -> Option<T> {
    SCOPE.try_with(f).ok()
}

/// Whether this request's page shows the file, so `load` should fetch it.
pub fn wants_file() -> bool {
    with(|scope| scope.wants_file).unwrap_or(false)
}

/// Remembers what `load` found for this request, and the file if it fetched it.
pub fn remember_loaded(loaded: Loaded, file: Option<String>) {
    with(|scope| {
        scope.loaded.set(Some(loaded));
        *scope.loaded_file.borrow_mut() = file;
    });
}

/// What `load` found for this request, if a live session was loaded in this scope.
pub fn loaded() -> Option<Loaded> {
    with(|scope| scope.loaded.get()).flatten()
}

/// The file `load` fetched for this request (pages that asked for it).
pub fn take_loaded_file() -> Option<String> {
    with(|scope| scope.loaded_file.take()).flatten()
}

/// Hands an uploaded file to the store's `save`/`update` at the end of this request: `update`
/// rotates the session's key to store it. Outside a scope the file is dropped (and its
/// reservation released).
pub fn put_pending_file(file: PendingFile) {
    with(|scope| scope.pending_file.replace(Some(file)));
}

/// Whether this request's handler uploaded a file.
pub fn has_pending_file() -> bool {
    with(|scope| scope.pending_file.borrow().is_some()).unwrap_or(false)
}

/// The file this request's handler uploaded, for the store to write.
pub fn take_pending_file() -> Option<PendingFile> {
    with(|scope| scope.pending_file.take()).flatten()
}

/// Records that a store call of this request failed because the storage was unreachable.
pub fn mark_store_unavailable() {
    with(|scope| scope.store_unavailable.set(true));
}

/// Records that this request's upload was refused because another upload had just superseded
/// its session (two tabs, one cookie).
pub fn mark_rotation_conflict() {
    with(|scope| scope.rotation_conflict.set(true));
}

/// Whether this request's upload lost a race with another upload of the same session.
pub fn rotation_conflict() -> bool {
    with(|scope| scope.rotation_conflict.get()).unwrap_or(false)
}

/// Whether a store call of this request failed because the storage was unreachable.
pub fn store_unavailable() -> bool {
    with(|scope| scope.store_unavailable.get()).unwrap_or(false)
}
