//! Which password exchanges a PostgreSQL connection takes part in. The server chooses how a
//! client authenticates, and with libpq's (and tokio-postgres's) defaults a server that asks
//! for the password in clear text gets it: over `sslmode=prefer` an active attacker strips
//! TLS and asks; over `require` it terminates TLS with a certificate of its own and asks. So
//! The store watches the server's authentication request ([`AuthGuard`], on the socket, and
//! inside TLS) and refuses, before the password is sent:
//! - by default, a clear-text password request on any connection that is not verified TLS
//!   (`verify-ca`, `verify-full`), unless the server is on this machine (a loopback address or
//!   a Unix socket), where no one stands between;
//! - with `require_auth` in the database URL (libpq 16's parameter: `password`, `md5`,
//!   `scram-sha-256`, `none`, comma-separated, or all negated with `!`), any method it does not
//!   allow, wherever the server is.
//!
//! SCRAM (PostgreSQL's default since 14) never sends the password; with `channel_binding=require`
//! (tokio-postgres's parameter, in the URL too) it also refuses a TLS connection that someone
//! terminates in the middle. MD5 is allowed by default: it sends no password, but a digest an
//! attacker can attack offline (`require_auth=scram-sha-256` refuses it).
//!
//! It also tells whether the connection was encrypted (the server agreed to TLS), for the
//! warning `connect` gives once about a plain connection to another machine.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

/// The protocol's code for "authenticated"; the others a server may ask with.
const AUTH_OK: u32 = 0;
const AUTH_CLEARTEXT: u32 = 3;
const AUTH_MD5: u32 = 5;
const AUTH_SASL: u32 = 10;
const AUTH_SASL_CONTINUE: u32 = 11;
const AUTH_SASL_FINAL: u32 = 12;

/// The first 8 bytes a client sends to ask for TLS (the SSLRequest message).
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// What `require_auth` allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequireAuth {
    /// Not given: clear text refused where the connection is not safe (see the module's doc).
    Default,
    /// Only these methods (codes; `AUTH_OK` for `none`).
    Only(Vec<u32>),
    /// Any method but these.
    Not(Vec<u32>),
}

impl RequireAuth {
    /// Parses libpq's `require_auth` value.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let names: Vec<&str> = value.split(',').map(str::trim).collect();
        let negated = names.iter().all(|n| n.starts_with('!'));
        if !negated && names.iter().any(|n| n.starts_with('!')) {
            return Err(format!(
                "require_auth `{value}` mixes methods and negated ones; give one kind"
            ));
        }
        let codes = names
            .iter()
            .map(|name| match name.trim_start_matches('!') {
                "password" => Ok(AUTH_CLEARTEXT),
                "md5" => Ok(AUTH_MD5),
                "scram-sha-256" => Ok(AUTH_SASL),
                "none" => Ok(AUTH_OK),
                other => Err(format!(
                    "require_auth method `{other}` is not supported; expected password, md5, \
                     scram-sha-256 or none"
                )),
            })
            .collect::<Result<Vec<u32>, String>>()?;
        Ok(if negated {
            Self::Not(codes)
        } else {
            Self::Only(codes)
        })
    }
}

/// What one connection may agree to, and what it found out.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) require: RequireAuth,
    /// The server is on this machine (loopback, Unix socket).
    pub(crate) local: bool,
    /// Set once the server agrees to TLS.
    pub(crate) encrypted: Arc<AtomicBool>,
}

impl Policy {
    /// Whether the server may authenticate this connection with `method` (over verified TLS
    /// or not); `Err` with the reason for the log and the startup error.
    fn allows(&self, method: u32, verified: bool) -> Result<(), String> {
        let allowed = match &self.require {
            RequireAuth::Only(methods) => methods.contains(&method),
            RequireAuth::Not(methods) => !methods.contains(&method),
            RequireAuth::Default => method != AUTH_CLEARTEXT || verified || self.local,
        };
        if allowed {
            return Ok(());
        }
        Err(match (method, &self.require) {
            (AUTH_CLEARTEXT, RequireAuth::Default) => "the database server asked for the \
                 password in clear text over a connection that is not verified TLS: refused, \
                 the password was not sent (use SCRAM on the server, or sslmode=verify-full, \
                 or allow it with require_auth=password in the database URL)"
                .to_owned(),
            (AUTH_OK, _) => "the database server let the connection in without the \
                 authentication require_auth asks for: refused"
                .to_owned(),
            (method, _) => format!(
                "the database server asked for {}, which require_auth in the database URL does \
                 not allow: refused, the password was not sent",
                match method {
                    AUTH_CLEARTEXT => "the password in clear text",
                    AUTH_MD5 => "an MD5 password digest",
                    AUTH_SASL => "SCRAM",
                    _ => "an authentication method this crate does not know",
                }
            ),
        })
    }
}

/// Where the watch is in the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet: the client's first bytes say whether it asks for TLS.
    Start,
    /// TLS asked for: the server's one-byte answer comes next.
    SslAnswer,
    /// The server's messages, until authentication ends.
    Messages,
    /// Authenticated, or TLS (watched inside by its own guard): nothing more to see.
    Done,
}

/// A stream of a PostgreSQL connection, watched until authentication ends (see the module's
/// doc).
pub(crate) struct AuthGuard<S> {
    inner: S,
    policy: Policy,
    /// Inside verified TLS.
    verified: bool,
    phase: Phase,
    /// The client's first bytes, while they are fewer than an SSLRequest's.
    first: Vec<u8>,
    /// The current message's type and length, as far as read.
    head: Vec<u8>,
    /// The start of an authentication request's body (its method), as far as read.
    method: Vec<u8>,
    /// Bytes of the current message still to pass.
    skip: usize,
    /// Whether the server asked for a method before saying "authenticated".
    asked: bool,
}

impl<S> AuthGuard<S> {
    /// The socket itself: the client's first bytes say whether TLS follows.
    pub(crate) fn socket(inner: S, policy: Policy) -> Self {
        Self::new(inner, policy, false, Phase::Start)
    }

    /// Inside TLS (verified or not): the server's messages from the first byte.
    fn inside_tls(inner: S, policy: Policy, verified: bool) -> Self {
        Self::new(inner, policy, verified, Phase::Messages)
    }

    fn new(inner: S, policy: Policy, verified: bool, phase: Phase) -> Self {
        Self {
            inner,
            policy,
            verified,
            phase,
            first: Vec::new(),
            head: Vec::new(),
            method: Vec::new(),
            skip: 0,
            asked: false,
        }
    }

    /// Watches bytes the client writes (the first ones only).
    fn sent(&mut self, bytes: &[u8]) {
        if self.phase != Phase::Start {
            return;
        }
        let wanted = SSL_REQUEST.len() - self.first.len();
        self.first
            .extend_from_slice(&bytes[..wanted.min(bytes.len())]);
        if self.first.len() == SSL_REQUEST.len() {
            self.phase = if self.first == SSL_REQUEST {
                Phase::SslAnswer
            } else {
                Phase::Messages
            };
        }
    }

    /// Watches bytes the server sent; `Err` when they ask for what the policy refuses.
    fn received(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            match self.phase {
                Phase::Done => return Ok(()),
                // The client has not sent its first bytes: nothing to read yet.
                Phase::Start => return Ok(()),
                Phase::SslAnswer => {
                    if bytes[0] == b'S' {
                        self.policy.encrypted.store(true, Ordering::Relaxed);
                        self.phase = Phase::Done;
                        return Ok(());
                    }
                    self.phase = Phase::Messages;
                    bytes = &bytes[1..];
                }
                Phase::Messages => bytes = self.message_bytes(bytes)?,
            }
        }
        Ok(())
    }

    /// Takes what `bytes` holds of the current message; the rest.
    fn message_bytes<'b>(&mut self, mut bytes: &'b [u8]) -> Result<&'b [u8], String> {
        if self.skip > 0 {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            return Ok(&bytes[n..]);
        }
        if self.head.len() < 5 {
            let n = (5 - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.head.len() < 5 {
                return Ok(bytes);
            }
            if self.head[0] != b'R' {
                let length =
                    u32::from_be_bytes([self.head[1], self.head[2], self.head[3], self.head[4]]);
                self.skip = (length as usize).saturating_sub(4);
                self.head.clear();
                return Ok(bytes);
            }
        }
        // An authentication message: its method first.
        let n = (4 - self.method.len()).min(bytes.len());
        self.method.extend_from_slice(&bytes[..n]);
        bytes = &bytes[n..];
        if self.method.len() < 4 {
            return Ok(bytes);
        }
        let length = u32::from_be_bytes([self.head[1], self.head[2], self.head[3], self.head[4]]);
        let method = u32::from_be_bytes([
            self.method[0],
            self.method[1],
            self.method[2],
            self.method[3],
        ]);
        self.skip = (length as usize).saturating_sub(8);
        self.head.clear();
        self.method.clear();
        match method {
            AUTH_OK => {
                if !self.asked {
                    self.policy.allows(AUTH_OK, self.verified)?;
                }
                self.phase = Phase::Done;
            }
            AUTH_SASL_CONTINUE | AUTH_SASL_FINAL => {}
            method => {
                self.asked = true;
                self.policy.allows(method, self.verified)?;
            }
        }
        Ok(bytes)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let outcome = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = outcome {
            if this.phase != Phase::Done {
                if let Err(refused) = this.received(&buf.filled()[before..]) {
                    log::error!("{refused}");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        refused,
                    )));
                }
            }
        }
        outcome
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = outcome {
            this.sent(&data[..n]);
        }
        outcome
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for AuthGuard<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// A TLS connector whose streams are watched inside, as [`AuthGuard::inside_tls`].
pub(crate) struct GuardedTls<T> {
    pub(crate) inner: T,
    pub(crate) policy: Policy,
    /// Whether the connector verifies the server's certificate.
    pub(crate) verified: bool,
}

impl<S, T> TlsConnect<S> for GuardedTls<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
    T::Stream: 'static,
{
    type Stream = AuthGuard<T::Stream>;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, T::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let (policy, verified) = (self.policy, self.verified);
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let tls = handshake.await?;
            Ok(AuthGuard::inside_tls(tls, policy, verified))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(require: RequireAuth, local: bool) -> Policy {
        Policy {
            require,
            local,
            encrypted: Arc::default(),
        }
    }

    /// A server message of type `kind` with `body`.
    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn auth(method: u32) -> Vec<u8> {
        message(b'R', &method.to_be_bytes())
    }

    /// What a guard on a plain socket says of `server` (sent a byte at a time, then whole).
    fn verdict(policy: Policy, ask_tls: bool, server: &[u8]) -> Result<(), String> {
        let mut whole = Ok(());
        for split in [1, server.len().max(1)] {
            let mut guard = AuthGuard::socket((), policy.clone());
            guard.sent(if ask_tls {
                &SSL_REQUEST
            } else {
                b"\0\0\0\x29\0\x03\0\0"
            });
            whole = server
                .chunks(split)
                .try_for_each(|chunk| guard.received(chunk));
        }
        whole
    }

    #[test]
    fn a_clear_text_request_over_a_plain_remote_connection_is_refused() {
        let plain = policy(RequireAuth::Default, false);
        let refused = verdict(plain.clone(), false, &auth(AUTH_CLEARTEXT));
        assert!(refused.is_err_and(|why| why.contains("clear text")));
        // Stripped TLS: the server said no to TLS, then asks.
        let mut stripped = b"N".to_vec();
        stripped.extend(auth(AUTH_CLEARTEXT));
        assert!(verdict(plain.clone(), true, &stripped).is_err());
        // After other messages, as long as authentication is not over.
        let mut later = message(b'N', b"notice\0");
        later.extend(auth(AUTH_CLEARTEXT));
        assert!(verdict(plain.clone(), false, &later).is_err());
        // SCRAM, MD5 and trust pass; so does anything once authenticated.
        let mut scram = auth(AUTH_SASL);
        scram.extend(auth(AUTH_SASL_CONTINUE));
        scram.extend(auth(AUTH_SASL_FINAL));
        scram.extend(auth(AUTH_OK));
        scram.extend(auth(AUTH_CLEARTEXT));
        assert!(verdict(plain.clone(), false, &scram).is_ok());
        assert!(verdict(plain.clone(), false, &auth(AUTH_MD5)).is_ok());
        // On this machine, or as require_auth allows it: passed.
        assert!(verdict(
            policy(RequireAuth::Default, true),
            false,
            &auth(AUTH_CLEARTEXT)
        )
        .is_ok());
        let allowed = RequireAuth::parse("password").expect("valid");
        assert!(verdict(policy(allowed, false), false, &auth(AUTH_CLEARTEXT)).is_ok());
    }

    #[test]
    fn tls_agreed_on_the_socket_is_watched_inside_and_said_encrypted() {
        let plain = policy(RequireAuth::Default, false);
        let mut guard = AuthGuard::socket((), plain.clone());
        guard.sent(&SSL_REQUEST);
        // The TLS handshake's bytes after `S` are not messages.
        assert!(guard.received(b"S\x16\x03\x01garbage").is_ok());
        assert!(plain.encrypted.load(Ordering::Relaxed));
        let mut unverified = AuthGuard::inside_tls((), plain.clone(), false);
        assert!(unverified.received(&auth(AUTH_CLEARTEXT)).is_err());
        let mut verified = AuthGuard::inside_tls((), plain, true);
        assert!(verified.received(&auth(AUTH_CLEARTEXT)).is_ok());
    }

    #[test]
    fn require_auth_reads_as_libpq_does() {
        assert_eq!(
            RequireAuth::parse("scram-sha-256,md5"),
            Ok(RequireAuth::Only(vec![AUTH_SASL, AUTH_MD5]))
        );
        assert_eq!(
            RequireAuth::parse("!password,!md5"),
            Ok(RequireAuth::Not(vec![AUTH_CLEARTEXT, AUTH_MD5]))
        );
        assert!(RequireAuth::parse("password,!md5").is_err());
        assert!(RequireAuth::parse("kerberos").is_err());
        let scram_only = policy(RequireAuth::parse("scram-sha-256").expect("valid"), true);
        assert!(verdict(scram_only.clone(), false, &auth(AUTH_MD5)).is_err());
        // Let in without any exchange (trust) while SCRAM is required: refused.
        assert!(verdict(scram_only, false, &auth(AUTH_OK)).is_err());
        let or_none = policy(
            RequireAuth::parse("scram-sha-256,none").expect("valid"),
            true,
        );
        assert!(verdict(or_none, false, &auth(AUTH_OK)).is_ok());
    }
}
