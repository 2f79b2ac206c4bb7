//! Opening a MySQL or MariaDB connection: mysql_async (pure Rust) under diesel-async, TLS
//! through rustls, every connection in READ COMMITTED and UTC.
//!
//! `ssl-mode` in the URL means what it means to the `mysql` client, and the default is the
//! client's (`PREFERRED`):
//! - `DISABLED`: plain TCP;
//! - `PREFERRED` (default): TLS when the server offers it, else plain; the certificate is not
//!   checked;
//! - `REQUIRED`: TLS or no connection; the certificate is not checked;
//! - `VERIFY_CA`: TLS, and the certificate must chain to a trusted root;
//! - `VERIFY_IDENTITY`: that, and it must name the host connected to.
//!
//! Trusted roots are the file `ssl-ca` names (PEM) and the Mozilla roots mysql_async carries
//! (webpki-roots).

use crate::backends::pool::Opens;
use diesel::{ConnectionError, ConnectionResult};
use diesel_async::AsyncMysqlConnection;
use mysql_async::{DriverError, Opts, OptsBuilder, SslOpts};

use crate::backends::pool::one_line;

/// What every connection runs first. READ COMMITTED: InnoDB then takes no gap locks for the
/// sweeper's range deletes, which would otherwise deadlock with inserts of new sessions. Times
/// are bound as UTC values; the session time zone is set to UTC all the same, for anyone
/// reading the table with NOW().
const SESSION_SETUP: [&str; 2] = [
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET time_zone = '+00:00'",
];

/// The `mysql` client's `--ssl-mode`, as this crate supports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    fn parse(raw: &str) -> Result<Self, String> {
        Ok(match raw.to_ascii_uppercase().replace('-', "_").as_str() {
            "DISABLED" => Self::Disabled,
            "PREFERRED" => Self::Preferred,
            "REQUIRED" => Self::Required,
            "VERIFY_CA" => Self::VerifyCa,
            "VERIFY_IDENTITY" => Self::VerifyIdentity,
            _ => {
                return Err(format!(
                    "ssl-mode `{raw}` is not supported; expected DISABLED, PREFERRED, REQUIRED, \
                     VERIFY_CA or VERIFY_IDENTITY"
                ))
            }
        })
    }
}

/// How to open connections to one MySQL database, parsed once from its URL.
pub(crate) struct Opener {
    opts: OptsBuilder,
    mode: SslMode,
    tls: Option<SslOpts>,
    /// How long a statement on these connections may run or wait for a lock.
    statement_timeout: Option<std::time::Duration>,
}

impl Opener {
    async fn open_plain(&self) -> ConnectionResult<AsyncMysqlConnection> {
        let conn = match mysql_async::Conn::new(self.opts.clone().ssl_opts(self.tls.clone())).await
        {
            Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer))
                if self.mode == SslMode::Preferred =>
            {
                mysql_async::Conn::new(self.opts.clone()).await
            }
            other => other,
        }
        .map_err(|e| ConnectionError::BadConnection(one_line(&e.to_string())))?;
        AsyncMysqlConnection::try_from(conn).await
    }
}

/// Sets the session's lock waits and statement time to `timeout` (whole seconds, at least 1:
/// the lock waits take no less). MariaDB knows `max_statement_time` (seconds), MySQL
/// `max_execution_time` (milliseconds, reads only): whichever the server refuses is the other
/// server's.
async fn set_statement_timeout(
    conn: &mut AsyncMysqlConnection,
    timeout: std::time::Duration,
) -> ConnectionResult<()> {
    use diesel_async::SimpleAsyncConnection;
    let secs = timeout.as_secs().max(1);
    let failed = |e: diesel::result::Error| {
        ConnectionError::BadConnection(format!("could not set the statement timeout: {e}"))
    };
    conn.batch_execute(&format!(
        "SET SESSION lock_wait_timeout = {secs}, innodb_lock_wait_timeout = {secs}"
    ))
    .await
    .map_err(failed)?;
    if conn
        .batch_execute(&format!("SET SESSION max_statement_time = {secs}"))
        .await
        .is_err()
    {
        conn.batch_execute(&format!("SET SESSION max_execution_time = {}", secs * 1000))
            .await
            .map_err(failed)?;
    }
    Ok(())
}

/// Lifts what [`Opener::with_statement_timeout`] set, for a migration's connection: a
/// migration may rewrite or index a big table.
pub(crate) async fn lift_statement_timeout(
    conn: &mut AsyncMysqlConnection,
) -> diesel::QueryResult<()> {
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute(
        "SET SESSION lock_wait_timeout = DEFAULT, innodb_lock_wait_timeout = DEFAULT",
    )
    .await?;
    if conn
        .batch_execute("SET SESSION max_statement_time = 0")
        .await
        .is_err()
    {
        conn.batch_execute("SET SESSION max_execution_time = 0")
            .await?;
    }
    Ok(())
}

impl Opens for Opener {
    type Conn = AsyncMysqlConnection;

    /// Parses `url` (`mysql://` or `mariadb://`); `ssl-mode` and `ssl-ca` are taken out and
    /// handled here, the rest goes to mysql_async. Errors never repeat the URL.
    fn parse(url: &str) -> Result<Self, String> {
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_owned(),
        };
        let (base, query) = url.split_once('?').unwrap_or((&url, ""));
        let (mut mode, mut root_cert) = (SslMode::Preferred, None);
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("ssl-mode" | "ssl_mode" | "sslmode", value)) => mode = SslMode::parse(value)?,
                Some(("ssl-ca" | "ssl_ca", path)) => root_cert = Some(path.to_owned()),
                _ => rest.push(pair),
            }
        }
        let driver_url = match rest.is_empty() {
            true => base.to_owned(),
            false => format!("{base}?{}", rest.join("&")),
        };
        let opts = Opts::from_url(&driver_url)
            .map_err(|e| format!("is not a MySQL URL mysql_async accepts: {e}"))?;
        let opts = OptsBuilder::from_opts(opts)
            .init(SESSION_SETUP.to_vec())
            // diesel-async keeps its own statement cache; rows "found", not "changed", as
            // Diesel's MySQL backend and PostgreSQL count them.
            .stmt_cache_size(0)
            .client_found_rows(true);
        let tls = match mode {
            SslMode::Disabled => None,
            _ => {
                let mut ssl = SslOpts::default()
                    .with_danger_accept_invalid_certs(matches!(
                        mode,
                        SslMode::Preferred | SslMode::Required
                    ))
                    .with_danger_skip_domain_validation(mode != SslMode::VerifyIdentity);
                if let Some(path) = root_cert {
                    ssl = ssl.with_root_certs(vec![std::path::PathBuf::from(path).into()]);
                }
                Some(ssl)
            }
        };
        Ok(Self {
            opts,
            mode,
            tls,
            statement_timeout: None,
        })
    }

    /// Every statement on the connections this opens stops after `timeout`: lock waits, row
    /// (`innodb_lock_wait_timeout`) and table or metadata (`lock_wait_timeout`), and the
    /// statement's time (MariaDB's `max_statement_time`, MySQL's `max_execution_time`, which
    /// covers reads only). Migrations lift them on their own connection.
    fn with_statement_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Opens one connection; `PREFERRED` falls back to plain TCP when the server has no TLS.
    async fn open(&self) -> ConnectionResult<AsyncMysqlConnection> {
        let mut conn = self.open_plain().await?;
        if let Some(timeout) = self.statement_timeout {
            set_statement_timeout(&mut conn, timeout).await?;
        }
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_mode_is_taken_out_of_the_url_and_checked() {
        let opener = Opener::parse("mariadb://u:p@db:3306/x?ssl-mode=disabled").expect("valid");
        assert_eq!(opener.mode, SslMode::Disabled);
        assert!(opener.tls.is_none());
        let default = Opener::parse("mysql://db/x").expect("valid");
        assert_eq!(
            default.mode,
            SslMode::Preferred,
            "the mysql client's default"
        );
        let verify = Opener::parse("mysql://db/x?ssl-mode=VERIFY_IDENTITY").expect("valid");
        let tls = verify.tls.expect("TLS options");
        assert!(!tls.accept_invalid_certs() && !tls.skip_domain_validation());
        let err = Opener::parse("mysql://u:hunter2@db/x?ssl-mode=sometimes").err();
        let err = err.expect("not a mode");
        assert!(
            err.contains("`sometimes`") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
