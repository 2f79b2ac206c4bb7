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

use actix_session::storage::SessionKey;
use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, SET_COOKIE};
use actix_web::middleware::Next;
use chrono::NaiveDateTime;

use crate::limits::Reservation;
use crate::session::records::Loaded;
use crate::session::rotation::FileDigest;

/// A file on its way from the upload handler to the store, with its digest (what a retry of
/// the same upload is recognised by) and the room reserved for it under the storage cap.
#[derive(Debug)]
pub struct PendingFile {
    pub text: String,
    pub digest: FileDigest,
    pub reservation: Reservation,
}

/// The superseded record this request's cookie names: an upload replaced it under a new key.
#[derive(Debug)]
pub struct Superseded {
    /// The request's session key, which the record was stored under.
    pub key: SessionKey,
    /// The id of the record that replaced it.
    pub successor: Option<String>,
    /// Until when the page shows it (the end of the grace period); `None`: past it.
    pub shown_until: Option<NaiveDateTime>,
    /// The seconds the cookie is still worth (till `shown_until`), for the response's
    /// `Max-Age`.
    pub cookie_secs: i64,
}

impl Clone for Superseded {
    fn clone(&self) -> Self {
        Self {
            key: copy_of(&self.key),
            successor: self.successor.clone(),
            shown_until: self.shown_until,
            cookie_secs: self.cookie_secs,
        }
    }
}

/// Another `SessionKey` with the same value (the type is not `Clone`).
pub fn copy_of(key: &SessionKey) -> SessionKey {
    SessionKey::try_from(key.as_ref().to_owned()).expect("a valid key stays valid")
}

#[derive(Default)]
struct RequestScope {
    wants_file: bool,
    loaded: Cell<Option<Loaded>>,
    loaded_id: RefCell<Option<String>>,
    loaded_file: RefCell<Option<String>>,
    superseded: RefCell<Option<Superseded>>,
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
    SCOPE
        .scope(RequestScope::default(), within_scope(req, next))
        .await
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
    SCOPE.scope(scope, within_scope(req, next)).await
}

/// The rest of the request, then what the scope says of its response: a cookie that names a
/// superseded record is worth only the rest of its grace period, so the `Max-Age` the session
/// middleware re-sends (a full lifetime) is cut to that.
async fn within_scope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    if let Some(superseded) = superseded().filter(|s| s.shown_until.is_some()) {
        limit_cookies(response.headers_mut(), superseded.cookie_secs);
    }
    Ok(response)
}

/// Cuts the `Max-Age` of every cookie set with one to at most `secs`.
fn limit_cookies(headers: &mut actix_web::http::header::HeaderMap, secs: i64) {
    let limit = actix_web::cookie::time::Duration::seconds(secs.max(1));
    let cut_one = |value: &HeaderValue| -> Option<HeaderValue> {
        let mut cookie = Cookie::parse(value.to_str().ok()?.to_owned()).ok()?;
        if cookie.max_age().is_none_or(|age| age <= limit) {
            return None;
        }
        cookie.set_max_age(limit);
        cookie.set_expires(None);
        HeaderValue::from_str(&cookie.to_string()).ok()
    };
    let values: Vec<HeaderValue> = headers.get_all(SET_COOKIE).cloned().collect();
    if values.iter().all(|value| cut_one(value).is_none()) {
        return;
    }
    let cut: Vec<HeaderValue> = values
        .iter()
        .map(|value| cut_one(value).unwrap_or_else(|| value.clone()))
        .collect();
    headers.remove(SET_COOKIE);
    for value in cut {
        headers.append(SET_COOKIE, value);
    }
}

/// Runs `f` on this request's scope; `None` outside one.
fn with<T>(f: impl FnOnce(&RequestScope) -> T) -> Option<T> {
    SCOPE.try_with(f).ok()
}

/// Whether this request's page shows the file, so `load` should fetch it.
pub fn wants_file() -> bool {
    with(|scope| scope.wants_file).unwrap_or(false)
}

/// Remembers what `load` found for this request (the record `id`), and the file if it
/// fetched it.
pub fn remember_loaded(id: String, loaded: Loaded, file: Option<String>) {
    with(|scope| {
        scope.loaded.set(Some(loaded));
        *scope.loaded_id.borrow_mut() = Some(id);
        *scope.loaded_file.borrow_mut() = file;
    });
}

/// The id of the record `load` found for this request.
pub fn loaded_id() -> Option<String> {
    with(|scope| scope.loaded_id.borrow().clone()).flatten()
}

/// What `load` found for this request, if a live session was loaded in this scope.
pub fn loaded() -> Option<Loaded> {
    with(|scope| scope.loaded.get()).flatten()
}

/// Remembers that this request's cookie names a superseded record.
pub fn remember_superseded(superseded: Superseded) {
    with(|scope| scope.superseded.replace(Some(superseded)));
}

/// The superseded record this request's cookie names, if it names one.
pub fn superseded() -> Option<Superseded> {
    with(|scope| scope.superseded.borrow().clone()).flatten()
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

/// Runs `work` inside a fresh request scope holding `file` as the pending upload (unit tests of
/// the store).
#[cfg(test)]
pub(crate) async fn with_pending_file<T>(
    file: PendingFile,
    work: impl std::future::Future<Output = T>,
) -> T {
    let scope = RequestScope {
        pending_file: RefCell::new(Some(file)),
        ..Default::default()
    };
    SCOPE.scope(scope, work).await
}
