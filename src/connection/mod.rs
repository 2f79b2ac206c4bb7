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
//! - **a bound on queued requests**: while a request without a body is served, and while a
//!   write is waiting for the client to read, nothing more is read from the connection; between
//!   two requests' starts at most [`IDLE_READ_BYTES`] are read, more only once actix-http has
//!   asked again without starting a request (a head longer than that, still arriving). A
//!   client that pipelines requests therefore has at most the requests in about a kilobyte
//!   decoded and waiting at a time (actix-http decodes every complete head it has read: about
//!   5 KB of memory each, measured), and the answers to them; one that reads no answer is closed
//!   at the write deadline.
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
    /// Whether the request being served has a body to read.
    reads_body: Cell<bool>,
    /// Since when no request has been served.
    idle_since: Cell<Instant>,
    /// The wrapper's reader, waiting for the request being served to end.
    reader: RefCell<Option<Waker>>,
}

impl Activity {
    fn new() -> Self {
        Self {
            serving: Cell::new(0),
            started: Cell::new(0),
            reads_body: Cell::new(false),
            idle_since: Cell::new(Instant::now()),
            reader: RefCell::new(None),
        }
    }

    fn start(self: &Rc<Self>, reads_body: bool) -> Serving {
        self.serving.set(self.serving.get() + 1);
        self.started.set(self.started.get() + 1);
        self.reads_body.set(reads_body);
        Serving(Rc::clone(self))
    }

    /// Whether the wrapper may read now: `Some(true)` without bound (a body is being read),
    /// `Some(false)` within the idle budget (between requests), `None` not at all.
    fn may_read(&self) -> Option<bool> {
        match self.serving.get() {
            0 => Some(false),
            _ if self.reads_body.get() => Some(true),
            _ => None,
        }
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

/// A request being served; its end, when dropped.
struct Serving(Rc<Activity>);

impl Drop for Serving {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .serving
            .set(activity.serving.get().saturating_sub(1));
        if activity.serving.get() == 0 {
            activity.reads_body.set(false);
            activity.idle_since.set(Instant::now());
            if let Some(reader) = activity.reader.borrow_mut().take() {
                reader.wake();
            }
        }
    }
}

/// Middleware, outermost: marks a request as served on its connection until its response is
/// ready (the wrapper then times its writes and the next head).
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let reads_body = req.headers().contains_key(header::CONTENT_LENGTH)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let _serving = req
        .conn_data::<Rc<Activity>>()
        .map(|activity| activity.start(reads_body));
    next.call(req).await
}
