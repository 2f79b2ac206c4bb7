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

use super::{Activity, ConnectionLimits, MayRead, IDLE_READ_BYTES};
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

impl GuardedStream {
    /// Whether the client closed its side of the connection (a read would give its end, or an
    /// error such as a reset), looked at without reading a byte: `Some` with what a read
    /// returns then. `None` while it is open; the task is woken if that changes, unless bytes
    /// it sent already wait to be read (a pipelined request), which say it was open.
    fn peer_gone(&mut self, cx: &mut Context<'_>) -> Option<io::Result<()>> {
        let mut byte = [0u8; 1];
        let mut peeked = ReadBuf::new(&mut byte);
        match self.io.poll_peek(cx, &mut peeked) {
            Poll::Ready(Ok(0)) => {
                self.activity.peer_closed();
                Some(Ok(()))
            }
            Poll::Ready(Err(err)) => {
                self.activity.peer_closed();
                Some(Err(err))
            }
            Poll::Ready(Ok(_)) | Poll::Pending => None,
        }
    }

    /// Reads at most `left` bytes of a body: straight into `buf` when it has no more room than
    /// that, else through a buffer of `left` bytes (once a request, at its body's end).
    fn read_body(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        left: usize,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() <= left {
            let before = buf.filled().len();
            let outcome = Pin::new(&mut self.io).poll_read(cx, buf);
            self.activity.body_read(buf.filled().len() - before);
            return outcome;
        }
        let mut rest = vec![0u8; left];
        let mut limited = ReadBuf::new(&mut rest);
        let outcome = Pin::new(&mut self.io).poll_read(cx, &mut limited);
        if let Poll::Ready(Ok(())) = outcome {
            self.activity.body_read(limited.filled().len());
            buf.put_slice(limited.filled());
        }
        outcome
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
            _ if this.write_stalled_since.is_some() => MayRead::Nothing,
            may_read => may_read,
        };
        match may_read {
            MayRead::Nothing => {
                // Woken when the request ends or the write moves on.
                this.activity.wait_for_the_end(cx.waker());
                // Nothing is read, but a client that closed its side is seen at once: its end
                // reaches actix-http, which drops the request's work (half-closed connections
                // are not kept; see `startup`).
                return match this.peer_gone(cx) {
                    Some(gone) => Poll::Ready(gone),
                    None => Poll::Pending,
                };
            }
            MayRead::Body(left) => return this.read_body(cx, buf, left),
            MayRead::Idle => {}
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::Duration;

    use super::*;
    use crate::limits::{ClientShares, TrustedProxies};

    /// A guarded server side of a loopback connection whose client has sent `sent`.
    async fn guarded_with(sent: &[u8]) -> (GuardedStream, std::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, peer) = listener.accept().await.expect("accept");
        client.write_all(sent).expect("send");
        let claim = ClientShares::new(8, TrustedProxies::default())
            .claim(peer.ip())
            .expect("a place");
        let limits = ConnectionLimits {
            head: Duration::from_secs(5),
            write: Duration::from_secs(5),
        };
        (GuardedStream::new(server, limits, claim), client)
    }

    /// One read of at most 64 bytes, or `None` when none is ready within 300 ms.
    async fn read_some(stream: &mut GuardedStream) -> Option<Vec<u8>> {
        let mut bytes = [0u8; 64];
        let read = std::future::poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut bytes);
            Pin::new(&mut *stream)
                .poll_read(cx, &mut buf)
                .map(|outcome| outcome.map(|()| buf.filled().to_vec()))
        });
        tokio::time::timeout(Duration::from_millis(300), read)
            .await
            .ok()
            .map(|outcome| outcome.expect("read"))
    }

    #[tokio::test]
    async fn a_served_request_reads_its_declared_body_and_nothing_after_it() {
        let (mut stream, _client) = guarded_with(b"body|GET / HTTP/1.1").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let activity = stream.activity();

        let serving = activity.start(5);
        assert_eq!(read_some(&mut stream).await.as_deref(), Some(&b"body|"[..]));
        // The body is read: the pipelined request behind it waits for the response.
        assert_eq!(read_some(&mut stream).await, None);
        drop(serving);
        assert_eq!(
            read_some(&mut stream).await.as_deref(),
            Some(&b"GET / HTTP/1.1"[..])
        );
    }

    #[tokio::test]
    async fn a_served_request_with_an_empty_body_reads_nothing() {
        let (mut stream, _client) = guarded_with(b"GET / HTTP/1.1").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let activity = stream.activity();

        let serving = activity.start(0);
        assert_eq!(read_some(&mut stream).await, None);
        drop(serving);
        assert!(read_some(&mut stream).await.is_some());
    }
}
