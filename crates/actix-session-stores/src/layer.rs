//! The per-request layer an application mounts around actix-session's middleware, and what a
//! handler can ask it.
//!
//! actix-session 0.11 calls the store's `load`, then the handler, then `save`, `update`,
//! `update_ttl` or `delete`, all inside one request future, and keeps the store and the
//! handler apart. A task-local scope around that future ([`request_scope`], a middleware)
//! lets them share what the store alone cannot know:
//! - **`Session::renew()` is one rotation.** actix-session turns it into `delete(old)` then
//!   `save(state)`, which a store cannot tell from a purge followed by a new session. Inside a
//!   scope the store holds the delete back: a `save` that follows in the same request makes
//!   the two one atomic rotation (the new key written, the old one superseded and kept,
//!   read-only, for the grace period); a delete with no `save` after it (a purge) runs when
//!   the request ends and removes the session's whole chain of keys.
//! - **An attachment**: a large value ([`Attachment`]) stored in a column of its own, not in
//!   the state map (which holds JSON texts: a large text inserted there is escaped and copied
//!   several times). [`attach`] hands it to the store's write at the end of the request, under
//!   a new key (storing an attachment rotates the key, as `renew` does); a page mounted with
//!   [`request_scope_with_attachment`] gets it back with [`take_loaded_attachment`], read in
//!   the same query as the session. Other requests never read it.
//! - **503 rather than 500**: a store call that failed because the storage did not answer
//!   makes the request end in a [`StoreFailure`] of kind [`FailureKind::Unavailable`] (and a
//!   write refused because another request had just rotated the same session, in one of kind
//!   [`FailureKind::Conflict`]), so the application can show a "try again" page.
//! - **A superseded key** (see [`superseded`]): the cookie a rotation replaced, while its grace
//!   period lasts; the response's cookie is then cut to the rest of that grace.
//!
//! Mount it *outside* the session middleware (in actix-web, the middleware added last runs
//! first):
//!
//! ```
//! use actix_session::{storage::CookieSessionStore, SessionMiddleware};
//! use actix_session_stores::layer;
//! use actix_web::{cookie::Key, middleware::from_fn, web, App, HttpResponse};
//!
//! let app = App::new()
//!     .wrap(SessionMiddleware::new(CookieSessionStore::default(), Key::generate()))
//!     .wrap(from_fn(layer::request_scope))
//!     .route("/", web::get().to(HttpResponse::Ok));
//! ```
//!
//! Without the layer the store still works, as actix-session's stores do: `renew` is a delete
//! and a new session, and a failure is actix-session's 500.

use std::cell::{Cell, RefCell};
use std::fmt;

use actix_session::storage::SessionKey;
use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, SET_COOKIE};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use chrono::NaiveDateTime;
use futures_util::future::LocalBoxFuture;

use crate::session::records::Loaded;

/// A large value stored beside a session's state, in a column (or hash field) of its own:
/// one per session, replaced by the next one attached.
pub struct Attachment {
    pub(crate) text: String,
    pub(crate) digest: Option<[u8; 32]>,
    pub(crate) on_stored: Option<Box<dyn FnOnce(u64)>>,
}

impl Attachment {
    /// An attachment holding `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            digest: None,
            on_stored: None,
        }
    }

    /// The text's SHA-256, when the caller has it already (computed off the worker thread
    /// for a large text); otherwise the store computes it when it rotates the key. A wrong
    /// digest only stops a write sent twice from being recognised as the same.
    pub fn with_sha256(mut self, digest: [u8; 32]) -> Self {
        self.digest = Some(digest);
        self
    }

    /// Calls `done` once the store has written the attachment, with the bytes it takes as
    /// stored (compressed and sealed: see [`stored_bytes_at_most`](Self::stored_bytes_at_most)).
    /// If the write fails or never happens, `done` is dropped uncalled (so a guard it owns is
    /// released).
    pub fn on_stored(mut self, done: impl FnOnce(u64) + 'static) -> Self {
        self.on_stored = Some(Box::new(done));
        self
    }

    /// The most bytes an attachment of `text_bytes` takes as stored: a text that does not
    /// compress is sealed as it is, in base64 (4 bytes for 3) with a nonce, a header and a tag.
    /// Text usually takes far less (see [`on_stored`](Self::on_stored)).
    ///
    /// ```
    /// use actix_session_stores::layer::Attachment;
    /// assert_eq!(Attachment::stored_bytes_at_most(0), 3 + 44);
    /// assert!(Attachment::stored_bytes_at_most(3 << 20) < 4200 << 10);
    /// ```
    pub fn stored_bytes_at_most(text_bytes: usize) -> u64 {
        crate::seal::stored_len_at_most(text_bytes) as u64
    }

    /// The attachment's text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("bytes", &self.text.len())
            .finish_non_exhaustive()
    }
}

/// The superseded key a request's cookie carries: a rotation replaced it with a new key.
#[derive(Debug)]
pub struct Superseded {
    pub(crate) key: SessionKey,
    pub(crate) successor: Option<String>,
    pub(crate) shown_until: Option<NaiveDateTime>,
    pub(crate) cookie_secs: i64,
}

impl Superseded {
    /// Until when (UTC) the key still reads the previous state, read-only; `None`: its grace
    /// period is over and it reads nothing.
    pub fn shown_until(&self) -> Option<NaiveDateTime> {
        self.shown_until
    }
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
pub(crate) fn copy_of(key: &SessionKey) -> SessionKey {
    SessionKey::try_from(key.as_ref().to_owned()).expect("a valid key stays valid")
}

/// Why a request's session store call failed, as the layer tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The storage did not answer: try again later (503).
    Unavailable,
    /// A write from a key another request had just rotated away was refused (409).
    Conflict,
}

/// The error a request ends in when its session store call failed in a way the visitor can
/// act on: 503 when the storage did not answer, 409 on a rotation conflict. Find it with
/// `err.as_error::<StoreFailure>()` in an outer middleware to render a page of your own.
#[derive(Debug)]
pub struct StoreFailure {
    kind: FailureKind,
}

impl StoreFailure {
    /// What failed.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }
}

impl fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            FailureKind::Unavailable => "the session storage did not answer",
            FailureKind::Conflict => "another request had just replaced this session's key",
        })
    }
}

impl std::error::Error for StoreFailure {}

impl ResponseError for StoreFailure {
    fn status_code(&self) -> StatusCode {
        match self.kind {
            FailureKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            FailureKind::Conflict => StatusCode::CONFLICT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).finish()
    }
}

/// A delete the store held back until it knows whether a `save` follows (a renew) or not (a
/// purge).
pub(crate) struct HeldDelete {
    pub(crate) key: SessionKey,
    pub(crate) run: Box<dyn FnOnce() -> LocalBoxFuture<'static, anyhow::Result<()>>>,
}

#[derive(Default)]
struct RequestScope {
    wants_attachment: bool,
    loaded: Cell<Option<Loaded>>,
    loaded_sealed: Cell<bool>,
    loaded_id: RefCell<Option<String>>,
    loaded_attachment: RefCell<Option<String>>,
    superseded: RefCell<Option<Superseded>>,
    pending: RefCell<Option<Attachment>>,
    held_delete: RefCell<Option<HeldDelete>>,
    store_unavailable: Cell<bool>,
    rotation_conflict: Cell<bool>,
}

tokio::task_local! {
    static SCOPE: RequestScope;
}

/// Middleware: runs the rest of the request (the session middleware and the handler) inside a
/// fresh scope. The store does not read the attachment.
pub async fn request_scope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    SCOPE
        .scope(RequestScope::default(), within_scope(req, next))
        .await
}

/// Middleware: [`request_scope`] for a page that shows the attachment: `load` reads it in the
/// same query as the session and leaves it for [`take_loaded_attachment`].
pub async fn request_scope_with_attachment(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let scope = RequestScope {
        wants_attachment: true,
        ..Default::default()
    };
    SCOPE.scope(scope, within_scope(req, next)).await
}

/// The rest of the request; then a held delete (a purge) runs, a failure becomes a
/// [`StoreFailure`] when the visitor can act on it, and a cookie naming a superseded key is
/// cut to the rest of its grace period (the session middleware re-sends a full lifetime).
async fn within_scope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let result = next.call(req).await;
    let held = with(|scope| scope.held_delete.take()).flatten();
    let result = match (result, held) {
        (Ok(response), Some(held)) => match (held.run)().await {
            Ok(()) => Ok(response),
            Err(err) => {
                log::error!("session store: delete failed: {err:#}");
                Err(actix_web::error::ErrorInternalServerError(err))
            }
        },
        (result, _) => result,
    };
    let mut response = match result {
        Ok(response) => response,
        Err(err) => {
            let kind = if rotation_conflict() {
                Some(FailureKind::Conflict)
            } else if store_unavailable() {
                Some(FailureKind::Unavailable)
            } else {
                None
            };
            return Err(match kind {
                Some(kind) => StoreFailure { kind }.into(),
                None => err,
            });
        }
    };
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

/// Whether this request runs inside [`request_scope`] or [`request_scope_with_attachment`].
pub fn in_scope() -> bool {
    with(|_| ()).is_some()
}

/// Hands `attachment` to the store's write at the end of this request, which stores it under
/// a new key (the session is rotated, as by `Session::renew()`). Insert something into the
/// session too, or actix-session writes nothing. Returns the attachment back outside a
/// scope, where it cannot be stored.
pub fn attach(attachment: Attachment) -> Result<(), Attachment> {
    let mut attachment = Some(attachment);
    with(|scope| scope.pending.replace(attachment.take()));
    attachment.map_or(Ok(()), Err)
}

/// The attachment `load` read for this request (a page mounted with
/// [`request_scope_with_attachment`] whose session has one). Takes it: a second call gets
/// `None`.
pub fn take_loaded_attachment() -> Option<String> {
    with(|scope| scope.loaded_attachment.take()).flatten()
}

/// The id (hex SHA-256 of the key) of the record `load` found for this request, if any: a
/// name for the session that never reveals the key, fit for caches.
pub fn loaded_id() -> Option<String> {
    with(|scope| scope.loaded_id.borrow().clone()).flatten()
}

/// The superseded key this request's cookie carries, if it carries one.
pub fn superseded() -> Option<Superseded> {
    with(|scope| scope.superseded.borrow().clone()).flatten()
}

/// Whether this request's page asked for the attachment, so `load` should read it.
pub(crate) fn wants_attachment() -> bool {
    with(|scope| scope.wants_attachment).unwrap_or(false)
}

/// Remembers what `load` found for this request (the record `id`, whether it is sealed), and
/// the attachment (opened) if it read it.
pub(crate) fn remember_loaded(
    id: String,
    loaded: Loaded,
    sealed: bool,
    attachment: Option<String>,
) {
    with(|scope| {
        scope.loaded.set(Some(loaded));
        scope.loaded_sealed.set(sealed);
        *scope.loaded_id.borrow_mut() = Some(id);
        *scope.loaded_attachment.borrow_mut() = attachment;
    });
}

/// What `load` found for this request, if a live session was loaded in this scope, and
/// whether its record is sealed.
pub(crate) fn loaded() -> Option<(Loaded, bool)> {
    with(|scope| {
        scope
            .loaded
            .get()
            .map(|loaded| (loaded, scope.loaded_sealed.get()))
    })
    .flatten()
}

/// Remembers that this request's cookie names a superseded record.
pub(crate) fn remember_superseded(superseded: Superseded) {
    with(|scope| scope.superseded.replace(Some(superseded)));
}

/// Whether this request's handler attached something.
pub(crate) fn has_pending() -> bool {
    with(|scope| scope.pending.borrow().is_some()).unwrap_or(false)
}

/// What this request's handler attached, for the store to write.
pub(crate) fn take_pending() -> Option<Attachment> {
    with(|scope| scope.pending.take()).flatten()
}

/// Holds a delete back until the end of the request; `Err` gives it back outside a scope.
pub(crate) fn hold_delete(held: HeldDelete) -> Result<(), HeldDelete> {
    let mut held = Some(held);
    with(|scope| scope.held_delete.replace(held.take()));
    held.map_or(Ok(()), Err)
}

/// The key of a delete held back in this request (a renew's, when a `save` follows), taken:
/// the delete will not run.
pub(crate) fn take_held_delete() -> Option<SessionKey> {
    with(|scope| scope.held_delete.take())
        .flatten()
        .map(|held| held.key)
}

/// Records that a store call of this request failed because the storage was unreachable.
pub(crate) fn mark_store_unavailable() {
    with(|scope| scope.store_unavailable.set(true));
}

/// Records that this request's write was refused because another request had just rotated its
/// session (two tabs, one cookie).
pub(crate) fn mark_rotation_conflict() {
    with(|scope| scope.rotation_conflict.set(true));
}

fn rotation_conflict() -> bool {
    with(|scope| scope.rotation_conflict.get()).unwrap_or(false)
}

fn store_unavailable() -> bool {
    with(|scope| scope.store_unavailable.get()).unwrap_or(false)
}

/// Runs `work` inside a fresh request scope holding `attachment` as pending (unit tests of the
/// store).
#[cfg(all(test, feature = "sqlite"))]
pub(crate) async fn with_pending<T>(
    attachment: Attachment,
    work: impl std::future::Future<Output = T>,
) -> T {
    let scope = RequestScope {
        pending: RefCell::new(Some(attachment)),
        ..Default::default()
    };
    SCOPE.scope(scope, work).await
}
