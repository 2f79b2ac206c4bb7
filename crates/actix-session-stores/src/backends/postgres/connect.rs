//! Opening a PostgreSQL connection: tokio-postgres under diesel-async, TLS through rustls.
//!
//! `sslmode` and `sslrootcert` in the URL mean what they mean to libpq, and the default is
//! libpq's (`prefer`):
//! - `disable`: plain TCP;
//! - `prefer` (default): TLS when the server offers it, else plain; the certificate is not
//!   checked (as libpq does without a root certificate);
//! - `require`: TLS or no connection; the certificate is not checked;
//! - `verify-ca`: TLS, and the certificate must chain to a trusted root;
//! - `verify-full`: that, and it must name the host connected to.
//!
//! Trusted roots are the file `sslrootcert` names (PEM), or else the system's trust store
//! (`rustls-native-certs`: what the operating system trusts, so an operator's private CA
//! installed there works; the container image carries Debian's `ca-certificates`).

use crate::backends::pool::Opens;
use std::sync::{Arc, OnceLock};

use diesel::{ConnectionError, ConnectionResult};
use diesel_async::AsyncPgConnection;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::MakeTlsConnect;

use super::auth::{AuthGuard, GuardedTls, Policy, RequireAuth};

use crate::backends::pool::one_line;

/// libpq's `sslmode`, as this crate supports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(raw: &str) -> Result<Self, String> {
        Ok(match raw {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode `{other}` is not supported; expected disable, prefer, require, \
                     verify-ca or verify-full"
                ))
            }
        })
    }
}

/// How to open connections to one PostgreSQL database, parsed once from its URL.
pub(crate) struct Opener {
    config: tokio_postgres::Config,
    tls: Option<Arc<ClientConfig>>,
    /// Whether TLS is verified (`verify-ca`, `verify-full`).
    verified: bool,
    /// What the server may ask the password with (`require_auth`, see `auth`).
    require: RequireAuth,
}

impl Opener {
    /// A socket to the first host of the URL that answers (its `hostaddr` when given), within
    /// the URL's `connect_timeout`; and the host's name for TLS, and whether it is on this
    /// machine.
    async fn socket(&self) -> ConnectionResult<(Socket, Host)> {
        let hosts = self.config.get_hosts();
        let ports = self.config.get_ports();
        let port_of = |n: usize| ports.get(n).or(ports.first()).copied().unwrap_or(5432);
        let timeout = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(std::time::Duration::from_secs(30));
        let mut last = String::from("no host to connect to");
        for (n, host) in hosts.iter().enumerate() {
            let port = port_of(n);
            let opened = match host {
                tokio_postgres::config::Host::Tcp(name) => {
                    let address = self.config.get_hostaddrs().get(n).copied();
                    let local = address.map_or_else(
                        || {
                            name == "localhost"
                                || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
                        },
                        |ip| ip.is_loopback(),
                    );
                    let connect = async {
                        let stream = match address {
                            Some(ip) => TcpStream::connect((ip, port)).await?,
                            None => TcpStream::connect((name.as_str(), port)).await?,
                        };
                        stream.set_nodelay(true)?;
                        std::io::Result::Ok(stream)
                    };
                    tokio::time::timeout(timeout, connect)
                        .await
                        .map_err(|_| format!("{name}:{port}: no answer within {timeout:?}"))
                        .and_then(|r| r.map_err(|e| format!("{name}:{port}: {e}")))
                        .map(|stream| {
                            (
                                Socket::Tcp(stream),
                                Host {
                                    name: name.clone(),
                                    local,
                                },
                            )
                        })
                }
                tokio_postgres::config::Host::Unix(dir) => {
                    let path = dir.join(format!(".s.PGSQL.{port}"));
                    tokio::time::timeout(timeout, UnixStream::connect(&path))
                        .await
                        .map_err(|_| format!("{}: no answer within {timeout:?}", path.display()))
                        .and_then(|r| r.map_err(|e| format!("{}: {e}", path.display())))
                        .map(|stream| {
                            (
                                Socket::Unix(stream),
                                Host {
                                    name: "localhost".into(),
                                    local: true,
                                },
                            )
                        })
                }
            };
            match opened {
                Ok(opened) => return Ok(opened),
                Err(why) => last = why,
            }
        }
        Err(ConnectionError::BadConnection(format!(
            "error connecting to server: {last}"
        )))
    }
}

/// The host a connection went to.
struct Host {
    /// Its name, as TLS checks the certificate against it.
    name: String,
    /// On this machine: a loopback address or a Unix socket.
    local: bool,
}

/// The socket under a connection: TCP, or a Unix socket on this machine.
pub(crate) enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Where a connection's driver sends the notifications it receives: (process id of the
/// session that sent it, payload).
pub(crate) type Notifications = tokio::sync::mpsc::UnboundedSender<(i32, String)>;

/// Runs a connection's I/O on the calling runtime, as tokio-postgres wants, until its client is
/// dropped or the server closes it (the client then reports the connection closed, and the
/// pool drops it). Notifications go to `notifications`, when given.
fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notifications: Option<Notifications>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut messages = std::pin::pin!(futures_util::stream::poll_fn(move |cx| {
            connection.poll_message(cx)
        }));
        while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(notice)) => {
                    if let Some(to) = &notifications {
                        let _ = to.send((notice.process_id(), notice.payload().to_owned()));
                    }
                }
                Ok(tokio_postgres::AsyncMessage::Notice(notice)) => {
                    log::info!("{}: {}", notice.severity(), notice.message());
                }
                Ok(_) => {}
                Err(err) => {
                    log::debug!("a database connection ended: {err}");
                    break;
                }
            }
        }
    });
}

/// Says once per process that the database connection is not encrypted, to another machine.
fn warn_once_unencrypted(host: &str) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        log::warn!(
            "the connection to the database at {host} is not encrypted: what the store \
             keeps crosses the network in clear (the server refused TLS, or the database URL \
             says sslmode=disable); use sslmode=verify-full"
        );
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trust store, read once.
fn system_roots() -> &'static Vec<CertificateDer<'static>> {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for err in &found.errors {
            log::warn!("reading the system's trusted certificates: {err}");
        }
        found.certs
    })
}

/// The roots `root_cert` names, or the system's.
fn roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert: cannot read {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert: {path}: {e}"))?;
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert: {path}: {e}"))?;
            }
        }
        None => {
            let (added, _ignored) = store.add_parsable_certificates(system_roots().clone());
            if added == 0 {
                log::warn!("no trusted certificates found in the system's trust store");
            }
        }
    }
    Ok(store)
}

/// rustls' client configuration for `mode`.
fn client_config(mode: SslMode, root_cert: Option<&str>) -> Result<ClientConfig, String> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            Arc::new(AnyCertificate(provider.clone()))
        }
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(root_cert)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("TLS roots: {e}"))?;
            match mode {
                SslMode::VerifyCa => Arc::new(ChainOnly(webpki)),
                _ => webpki,
            }
        }
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// `prefer` and `require`: encrypted, the certificate unchecked (libpq's behaviour without a
/// root certificate); the handshake's signatures are still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must reach a trusted root; the name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl Opens for Opener {
    type Conn = AsyncPgConnection;

    /// Parses `url`; `sslmode` and `sslrootcert` are taken out and handled here (tokio-postgres
    /// knows neither `verify-*` mode), the rest goes to tokio-postgres. Errors never repeat the
    /// URL.
    fn parse(url: &str) -> Result<Self, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut mode, mut root_cert) = (SslMode::Prefer, None);
        let mut require = RequireAuth::Default;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = SslMode::parse(value)?,
                Some(("sslrootcert", path)) => root_cert = Some(path.to_owned()),
                Some(("require_auth", value)) => require = RequireAuth::parse(value)?,
                _ => rest.push(pair),
            }
        }
        let driver_url = match rest.is_empty() {
            true => base.to_owned(),
            false => format!("{base}?{}", rest.join("&")),
        };
        let mut config: tokio_postgres::Config = driver_url
            .parse()
            .map_err(|e| format!("is not a PostgreSQL URL tokio-postgres accepts: {e}"))?;
        config.ssl_mode(match mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            _ => DriverSslMode::Require,
        });
        let tls = match mode {
            SslMode::Disable => None,
            _ => Some(Arc::new(client_config(mode, root_cert.as_deref())?)),
        };
        Ok(Self {
            config,
            tls,
            verified: matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull),
            require,
        })
    }

    /// Every statement on the connections this opens stops after `timeout`, whether it runs
    /// or waits for a lock (`statement_timeout` and `lock_timeout`, sent with the startup
    /// packet, after any `options` the URL gives). Migrations lift both on their own
    /// connection.
    fn with_statement_timeout(mut self, timeout: std::time::Duration) -> Self {
        let ms = timeout.as_millis();
        let options = format!(
            "{} -c statement_timeout={ms} -c lock_timeout={ms}",
            self.config.get_options().unwrap_or_default()
        );
        self.config.options(options.trim_start());
        self
    }

    /// Opens one connection; its driver task runs on the calling runtime.
    async fn open(&self) -> ConnectionResult<AsyncPgConnection> {
        AsyncPgConnection::try_from(self.client(None).await?).await
    }
}

impl Opener {
    /// Opens one connection as tokio-postgres' client; its driver task runs on the calling
    /// runtime and sends the payloads of the notifications it receives to `notifications`.
    /// The socket is opened here (each host of the URL in turn) and watched until the server
    /// has authenticated it ([`AuthGuard`]): a password exchange the policy refuses ends the
    /// connection before the password is sent.
    pub(crate) async fn client(
        &self,
        notifications: Option<Notifications>,
    ) -> ConnectionResult<tokio_postgres::Client> {
        let failed = |e: tokio_postgres::Error| {
            let mut message = one_line(&e.to_string());
            if let Some(cause) = std::error::Error::source(&e) {
                message = format!("{message}: {}", one_line(&cause.to_string()));
            }
            ConnectionError::BadConnection(message)
        };
        let (socket, host) = self.socket().await?;
        let policy = Policy {
            require: self.require.clone(),
            local: host.local,
            encrypted: Arc::default(),
        };
        let guarded = AuthGuard::socket(socket, policy.clone());
        let client = match &self.tls {
            None => {
                let (client, connection) = self
                    .config
                    .connect_raw(guarded, tokio_postgres::NoTls)
                    .await
                    .map_err(failed)?;
                drive(connection, notifications);
                client
            }
            Some(tls) => {
                let mut maker = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let inner = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<
                    AuthGuard<Socket>,
                >>::make_tls_connect(&mut maker, &host.name)
                .map_err(|e| ConnectionError::BadConnection(one_line(&e.to_string())))?;
                let connector = GuardedTls {
                    inner,
                    policy: policy.clone(),
                    verified: self.verified,
                };
                let (client, connection) = self
                    .config
                    .connect_raw(guarded, connector)
                    .await
                    .map_err(failed)?;
                drive(connection, notifications);
                client
            }
        };
        if !policy.encrypted.load(std::sync::atomic::Ordering::Relaxed) && !host.local {
            warn_once_unencrypted(&host.name);
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_the_url_and_checked() {
        let opener = Opener::parse("postgres://u:p@db:5432/x?sslmode=disable&application_name=t")
            .expect("valid");
        assert_eq!(opener.config.get_ssl_mode(), DriverSslMode::Disable);
        assert!(opener.tls.is_none());
        assert_eq!(opener.config.get_application_name(), Some("t"));
        let default = Opener::parse("postgres://db/x").expect("valid");
        assert_eq!(
            default.config.get_ssl_mode(),
            DriverSslMode::Prefer,
            "libpq's default"
        );
        assert!(default.tls.is_some());
        let full = Opener::parse("postgres://db/x?sslmode=verify-full").expect("valid");
        assert_eq!(full.config.get_ssl_mode(), DriverSslMode::Require);
        let err = Opener::parse("postgres://u:hunter2@db/x?sslmode=allow").err();
        let err = err.expect("allow is not supported");
        assert!(err.contains("`allow`") && !err.contains("hunter2"), "{err}");
        let missing = Opener::parse("postgres://db/x?sslmode=verify-ca&sslrootcert=/nowhere.pem");
        assert!(missing.err().expect("no file").contains("/nowhere.pem"));
    }
}
