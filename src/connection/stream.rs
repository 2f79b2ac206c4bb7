//! The accepted socket, with the deadlines of [`super`]: reads are held back while a request
//! without a body is served or a write waits, and fail once the next head is late; writes fail
//! once they make no progress for the write deadline.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::{Activity, ConnectionLimits, IDLE_READ_BYTES};
use crate::limits::Claim;

/// An accepted connection under its deadlines.
pub struct GuardedStream {
    io: TcpStream,
    limits: ConnectionLimits,
    activity: Rc<Activity>,
    /// When the connection last wrote something (or started).
    last_write: Instant,
    /// Since when a write has been waiting for the client to read.
    write_stalled_since: Option<Instant>,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// Bytes read since the last request started (or the budget was renewed).
    idle_read: usize,
    /// The requests started when `idle_read` was last reset.
    started_seen: u64,
    /// Whether the budget ran out and the reader was sent back once since.
    yielded: bool,
    /// Its place in its client's share of connections, given back when it closes.
    _claim: Claim,
}

fn late(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

/// Whether `timer`, set to `deadline`, has passed; if not, the task is woken when it does.
fn passed(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if Instant::now() >= deadline {
        return true;
    }
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

impl GuardedStream {
    pub fn new(io: TcpStream, limits: ConnectionLimits, claim: Claim) -> Self {
        let now = Instant::now();
        Self {
            io,
            limits,
            activity: Rc::new(Activity::new()),
            last_write: now,
            write_stalled_since: None,
            read_timer: Box::pin(tokio::time::sleep_until(now + limits.head)),
            write_timer: Box::pin(tokio::time::sleep_until(now + limits.write)),
            idle_read: 0,
            started_seen: 0,
            yielded: false,
            _claim: claim,
        }
    }

    /// What the connection's requests share with it.
    pub fn activity(&self) -> Rc<Activity> {
        Rc::clone(&self.activity)
    }

    /// While idle, the deadline for the next request head.
    fn head_deadline(&self) -> Option<Instant> {
        let idle_since = self.activity.idle_since()?;
        Some(idle_since.max(self.last_write) + self.limits.head)
    }

    /// A write (or flush) outcome, with the write deadline applied to `Pending`; `wrote` says
    /// whether a ready outcome wrote bytes (only that moves the head deadline).
    fn timed_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
        wrote: impl FnOnce(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match outcome {
            Poll::Pending => {
                let stalled_since = *self.write_stalled_since.get_or_insert_with(Instant::now);
                if passed(&mut self.write_timer, stalled_since + self.limits.write, cx) {
                    return Poll::Ready(Err(late("the client read nothing for the write timeout")));
                }
                Poll::Pending
            }
            ready => {
                if self.write_stalled_since.take().is_some() {
                    // Reads were held back while the write waited.
                    if let Some(reader) = self.activity.reader.borrow_mut().take() {
                        reader.wake();
                    }
                }
                if matches!(&ready, Poll::Ready(Ok(value)) if wrote(value)) {
                    self.last_write = Instant::now();
                }
                ready
            }
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = this.head_deadline() {
            if passed(&mut this.read_timer, deadline, cx) {
                return Poll::Ready(Err(late("no request head within the head timeout")));
            }
        }
        let may_read = match this.activity.may_read() {
            Some(_) if this.write_stalled_since.is_some() => None,
            may_read => may_read,
        };
        let Some(unbounded) = may_read else {
            // Woken when the request ends or the write moves on.
            this.activity.wait_for_the_end(cx.waker());
            return Poll::Pending;
        };
        if unbounded {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        // Between requests: the idle budget, renewed by each request's start, or when actix-http
        // asks again after the reader was sent back once without starting one (the head is
        // longer than the budget and still arriving).
        if this.activity.started() != this.started_seen {
            this.started_seen = this.activity.started();
            this.idle_read = 0;
            this.yielded = false;
        }
        if this.idle_read >= IDLE_READ_BYTES {
            if !this.yielded {
                this.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.idle_read = 0;
            this.yielded = false;
        }
        let room = (IDLE_READ_BYTES - this.idle_read).min(buf.remaining());
        let mut small = [0u8; IDLE_READ_BYTES];
        let mut limited = ReadBuf::new(&mut small[..room]);
        let outcome = Pin::new(&mut this.io).poll_read(cx, &mut limited);
        if let Poll::Ready(Ok(())) = outcome {
            this.idle_read += limited.filled().len();
            buf.put_slice(limited.filled());
        }
        outcome
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_write(cx, data);
        this.timed_write(cx, outcome, |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.timed_write(cx, outcome, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_flush(cx);
        this.timed_write(cx, outcome, |()| false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
