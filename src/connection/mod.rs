//! Deadlines every connection gets of its own, whatever actix-http does.
//!
//! actix-http times a connection's *first* request head only (`client_request_timeout`); after
//! it, its keep-alive timer is cleared as soon as the next request's first bytes arrive, so a
//! client that sends one request and then half of a second holds the connection for ever. It
//! also has no write timeout, and keeps answering the requests a client pipelines while the
//! client reads none of the answers, queueing them in memory. actix-web's maintainers leave
//! such timeouts to the application (actix-web #928). So the accepted socket is wrapped
//! ([`GuardedStream`], under actix-http's `HttpService`) and the app tells the wrapper when a
//! request is being served ([`track_requests`], the outermost middleware). The wrapper then
//! enforces:
//! - **a head deadline**: while no request is being served (from the connection's start, and
//!   from the end of each response's writes), the next request must reach the app within
//!   `REQUEST_HEAD_TIMEOUT_SECS`, or the connection is closed. This covers every request's
//!   head, the idle keep-alive time, and the rest of a body the app did not read;
//! - **a write deadline**: a write that makes no progress for `WRITE_TIMEOUT_SECS` closes the
//!   connection;
//! - **a bound on queued requests**: a request being served reads no more than the body it
//!   declares (its `Content-Length`; a chunked body at most twice the largest upload with its
//!   framing), so with a body of none (`Content-Length: 0` too) and while a write is waiting
//!   for the client to read, nothing more is read from the connection; between
//!   two requests' starts at most [`IDLE_READ_BYTES`] are read, more only once actix-http has
//!   asked again without starting a request (a head longer than that, still arriving). A
//!   client that pipelines requests therefore has at most the requests in about a kilobyte
//!   decoded and waiting at a time (actix-http decodes every complete head it has read: about
//!   5 KB of memory each, measured), and the answers to them; one that reads no answer is closed
//!   at the write deadline.
//!
//! While a request is served, the wrapper reads nothing, but it still sees the client close its
//! side (a peek, not a read): the end reaches actix-http, which stops the connection and drops
//! the request's work where it waits (a view in line for its turn, a query not yet sent), since
//! half-closed connections are not kept (`h1_allow_half_closed(false)` in `startup`). A request
//! is answered to a client still there, or not at all.
//!
//! A request with a body (an upload) is read at full speed: its own bounds (size, buffer room,
//! `UPLOAD_TIMEOUT_SECS`) are the guard's, in `routes::guard`.

mod stream;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use tokio::time::Instant;

pub use stream::GuardedStream;

/// Bytes read between two requests' starts before actix-http must ask again: a request head of
/// ordinary size, little enough that a burst of pipelined requests read at once stays small.
pub const IDLE_READ_BYTES: usize = 1024;

/// The deadlines of every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request head must reach the app within this long of the connection's start or of the
    /// previous response's last write.
    pub head: Duration,
    /// A write that makes no progress for this long closes the connection.
    pub write: Duration,
}

/// What one connection's requests tell its wrapper. Shared by the wrapper and the requests of
/// its connection, on the worker's thread.
#[derive(Debug)]
pub struct Activity {
    /// Requests being served (0 or 1 over HTTP/1).
    serving: Cell<usize>,
    /// Requests started so far.
    started: Cell<u64>,
    /// The bytes the request being served may still read: what is left of the body it
    /// declared.
    body_left: Cell<usize>,
    /// Since when no request has been served.
    idle_since: Cell<Instant>,
    /// The wrapper's reader, waiting for the request being served to end.
    reader: RefCell<Option<Waker>>,
    /// Whether the client closed its side while a request was served.
    peer_closed: Cell<bool>,
}

impl Activity {
    fn new() -> Self {
        Self {
            serving: Cell::new(0),
            started: Cell::new(0),
            body_left: Cell::new(0),
            idle_since: Cell::new(Instant::now()),
            reader: RefCell::new(None),
            peer_closed: Cell::new(false),
        }
    }

    /// The client closed its side of the connection.
    fn peer_closed(&self) {
        self.peer_closed.set(true);
    }

    fn start(self: &Rc<Self>, body: usize) -> Serving {
        self.serving.set(self.serving.get() + 1);
        self.started.set(self.started.get() + 1);
        self.body_left.set(body);
        Serving(Rc::clone(self))
    }

    /// What the wrapper may read now.
    fn may_read(&self) -> MayRead {
        match self.serving.get() {
            0 => MayRead::Idle,
            _ => match self.body_left.get() {
                0 => MayRead::Nothing,
                left => MayRead::Body(left),
            },
        }
    }

    /// `n` bytes of the served request's body were read.
    fn body_read(&self, n: usize) {
        self.body_left.set(self.body_left.get().saturating_sub(n));
    }

    fn started(&self) -> u64 {
        self.started.get()
    }

    fn idle_since(&self) -> Option<Instant> {
        (self.serving.get() == 0).then(|| self.idle_since.get())
    }

    fn wait_for_the_end(&self, waker: &Waker) {
        *self.reader.borrow_mut() = Some(waker.clone());
    }
}

/// What a connection may read at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MayRead {
    /// Between requests: within the idle budget.
    Idle,
    /// A body being read: up to this many bytes more.
    Body(usize),
    /// A request without a body left to read is served: nothing.
    Nothing,
}

/// A request being served; its end, when dropped.
struct Serving(Rc<Activity>);

impl Drop for Serving {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .serving
            .set(activity.serving.get().saturating_sub(1));
        if activity.serving.get() == 0 {
            activity.body_left.set(0);
            activity.idle_since.set(Instant::now());
            if let Some(reader) = activity.reader.borrow_mut().take() {
                reader.wake();
            }
        }
    }
}

/// The bytes a request may read from its connection: the `Content-Length` it declares, at most
/// the largest body the app accepts (`largest`); a chunked body, with its framing, at most
/// twice that; none without either header.
pub fn body_allowance(headers: &header::HeaderMap, largest: usize) -> usize {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return largest.saturating_mul(2);
    }
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(0, |length| {
            usize::try_from(length).unwrap_or(usize::MAX).min(largest)
        })
}

/// Whether the client of `req`'s connection has closed it: work for the request that has not
/// started yet need not be done (actix-http drops the request's future soon after).
pub fn client_gone(req: &actix_web::HttpRequest) -> bool {
    req.conn_data::<Rc<Activity>>()
        .is_some_and(|activity| activity.peer_closed.get())
}

/// Middleware, outermost: marks a request as served on its connection until its response is
/// ready (the wrapper then times its writes and the next head), with the body it may read.
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let largest = req
        .app_data::<actix_web::web::Data<crate::config::Settings>>()
        .map_or(0, |settings| {
            settings.limits.max_upload_bytes + crate::limits::FRAMING_ALLOWANCE
        });
    let body = body_allowance(req.headers(), largest);
    let _serving = req
        .conn_data::<Rc<Activity>>()
        .map(|activity| activity.start(body));
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{
        self, HeaderMap, HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING,
    };

    use super::body_allowance;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_request_may_read_the_body_it_declares_and_no_more() {
        assert_eq!(body_allowance(&headers(&[]), 1000), 0);
        assert_eq!(body_allowance(&headers(&[(CONTENT_LENGTH, "0")]), 1000), 0);
        assert_eq!(
            body_allowance(&headers(&[(CONTENT_LENGTH, "12")]), 1000),
            12
        );
        assert_eq!(
            body_allowance(&headers(&[(CONTENT_LENGTH, "99999999999")]), 1000),
            1000
        );
        assert_eq!(body_allowance(&headers(&[(CONTENT_LENGTH, "x")]), 1000), 0);
        assert_eq!(
            body_allowance(&headers(&[(TRANSFER_ENCODING, "chunked")]), 1000),
            2000
        );
    }
}
