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

use std::sync::{Arc, OnceLock};

use diesel::{ConnectionError, ConnectionResult};
use diesel_async::AsyncPgConnection;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres::config::SslMode as DriverSslMode;

use crate::backends::pool::one_line;

/// libpq's `sslmode`, as textdrop supports it.
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

/// How to open connections to one PostgreSQL database, parsed once from `DATABASE_URL`.
pub(crate) struct Opener {
    config: tokio_postgres::Config,
    tls: Option<Arc<ClientConfig>>,
}

impl Opener {
    /// Parses `url`; `sslmode` and `sslrootcert` are taken out and handled here (tokio-postgres
    /// knows neither `verify-*` mode), the rest goes to tokio-postgres. Errors never repeat the
    /// URL.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut mode, mut root_cert) = (SslMode::Prefer, None);
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = SslMode::parse(value)?,
                Some(("sslrootcert", path)) => root_cert = Some(path.to_owned()),
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
        Ok(Self { config, tls })
    }

    /// Every statement on the connections this opens stops after `timeout`, whether it runs
    /// or waits for a lock (`statement_timeout` and `lock_timeout`, sent with the startup
    /// packet, after any `options` the URL gives). Migrations lift both on their own
    /// connection.
    pub(crate) fn with_statement_timeout(mut self, timeout: std::time::Duration) -> Self {
        let ms = timeout.as_millis();
        let options = format!(
            "{} -c statement_timeout={ms} -c lock_timeout={ms}",
            self.config.get_options().unwrap_or_default()
        );
        self.config.options(options.trim_start());
        self
    }

    /// Opens one connection; its driver task runs on the calling runtime.
    pub(crate) async fn open(&self) -> ConnectionResult<AsyncPgConnection> {
        let failed = |e: tokio_postgres::Error| {
            let mut message = one_line(&e.to_string());
            if let Some(cause) = std::error::Error::source(&e) {
                message = format!("{message}: {}", one_line(&cause.to_string()));
            }
            ConnectionError::BadConnection(message)
        };
        match &self.tls {
            None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(failed)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
            Some(tls) => {
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let (client, connection) = self.config.connect(connector).await.map_err(failed)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
        }
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
