//! Settings, read from the environment once at startup and validated.
//!
//! Every error names the variable and the form it expects, in one line. Secrets (the cookie key
//! material, a database password) are never printed, not even by `Debug`.

use std::fmt;
use std::time::Duration;

use crate::db::{DatabaseUrl, DEFAULT_DATABASE_URL};

/// Everything textdrop can be told through its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    /// Cookie key material; `None` means a random key for this process only.
    pub secret_key: Option<SecretKey>,
    pub host: String,
    pub port: u16,
    /// How long a session lives after the visitor's last request.
    pub session_lifetime: Duration,
    /// `true`: persistent cookie with Max-Age; `false`: browser-session cookie.
    pub session_permanent: bool,
    /// How often expired rows are deleted; `None` disables the task.
    pub cleanup_interval: Option<Duration>,
    pub max_upload_bytes: usize,
    pub cookie_secure: bool,
    pub database_pool_size: u32,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Benchmarks only: keep the session state in the cookie (actix-session's
    /// `CookieSessionStore`) to measure the web layer without a server-side store.
    pub bench_cookie_sessions: bool,
    /// Rows the cleanup deletes per statement.
    pub cleanup_batch_size: i64,
    /// How long startup keeps retrying an unreachable database before giving up.
    pub database_connect_timeout: Duration,
}

/// A configuration problem, shown to the operator as one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// Key material for the session cookie. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// The least key material `Key::derive_from` accepts.
    pub const MIN_LEN: usize = 32;

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl TryFrom<&str> for SecretKey {
    type Error = String;

    fn try_from(value: &str) -> Result<Self, String> {
        if value.len() < Self::MIN_LEN {
            return Err(format!(
                "must be at least {} bytes long (it is {}); generate one with `openssl rand -hex 32`",
                Self::MIN_LEN,
                value.len()
            ));
        }
        Ok(Self(value.as_bytes().to_vec()))
    }
}

/// Largest accepted SESSION_LIFETIME_SECS: ten years.
const MAX_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// Largest accepted MAX_UPLOAD_BYTES: the file is kept in the session row.
const MAX_UPLOAD_LIMIT: usize = 64 * 1024 * 1024;

impl Settings {
    /// How much one cleanup run may do.
    pub fn sweep_limits(&self) -> crate::session::cleanup::SweepLimits {
        crate::session::cleanup::SweepLimits {
            batch_size: self.cleanup_batch_size,
            ..Default::default()
        }
    }

    /// Reads the process environment (after `.env` has been loaded by `main`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    /// An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let database_url = {
            let raw = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
            DatabaseUrl::parse(&raw).map_err(|problem| ConfigError {
                variable: "DATABASE_URL",
                problem,
            })?
        };
        let secret_key = match get("SECRET_KEY") {
            None => None,
            Some(raw) => {
                Some(
                    SecretKey::try_from(raw.as_str()).map_err(|problem| ConfigError {
                        variable: "SECRET_KEY",
                        problem,
                    })?,
                )
            }
        };
        let host = get("HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
        let port = parse_number::<u16>(&get, "PORT", 8080, 0, u16::MAX)?;
        let lifetime =
            parse_number::<u64>(&get, "SESSION_LIFETIME_SECS", 86_400, 1, MAX_LIFETIME_SECS)?;
        let session_permanent = parse_bool(&get, "SESSION_PERMANENT", true)?;
        let cleanup =
            parse_number::<u64>(&get, "CLEANUP_INTERVAL_SECS", 300, 0, MAX_LIFETIME_SECS)?;
        let max_upload_bytes =
            parse_number::<usize>(&get, "MAX_UPLOAD_BYTES", 1_048_576, 1, MAX_UPLOAD_LIMIT)?;
        let cookie_secure = parse_bool(&get, "COOKIE_SECURE", false)?;
        let database_pool_size = parse_number::<u32>(&get, "DATABASE_POOL_SIZE", 10, 1, 512)?;
        let bench_cookie_sessions = parse_bool(&get, "TEXTDROP_BENCH_COOKIE_SESSIONS", false)?;
        let shutdown_grace = parse_number::<u64>(&get, "SHUTDOWN_GRACE_SECS", 10, 0, 3600)?;
        let cleanup_batch_size =
            parse_number::<i64>(&get, "CLEANUP_BATCH_SIZE", 5_000, 1, 1_000_000)?;
        let connect_timeout =
            parse_number::<u64>(&get, "DATABASE_CONNECT_TIMEOUT_SECS", 30, 0, 3600)?;

        Ok(Self {
            database_url,
            secret_key,
            host,
            port,
            session_lifetime: Duration::from_secs(lifetime),
            session_permanent,
            cleanup_interval: (cleanup > 0).then(|| Duration::from_secs(cleanup)),
            max_upload_bytes,
            cookie_secure,
            database_pool_size,
            database_connect_timeout: Duration::from_secs(connect_timeout),
            cleanup_batch_size,
            shutdown_grace: Duration::from_secs(shutdown_grace),
            bench_cookie_sessions,
        })
    }
}

fn parse_number<T>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(value) if value >= min && value <= max => Ok(value),
        _ => Err(ConfigError {
            variable,
            problem: format!("expected a whole number from {min} to {max}, got `{raw}`"),
        }),
    }
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError {
            variable,
            problem: format!("expected true or false, got `{raw}`"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_need_no_environment() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.database_url.redacted(), "sqlite://textdrop.db");
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8080));
        assert_eq!(s.session_lifetime, Duration::from_secs(86_400));
        assert!(s.session_permanent);
        assert_eq!(s.cleanup_interval, Some(Duration::from_secs(300)));
        assert_eq!(s.max_upload_bytes, 1_048_576);
        assert!(!s.cookie_secure);
        assert!(s.secret_key.is_none());
    }

    #[test]
    fn zero_cleanup_interval_disables_the_task() {
        let s = settings(&[("CLEANUP_INTERVAL_SECS", "0")]).expect("valid");
        assert_eq!(s.cleanup_interval, None);
    }

    #[test]
    fn each_invalid_value_names_its_variable_and_expected_form() {
        for (var, value, expected) in [
            ("PORT", "eighty", "whole number from 0 to 65535"),
            ("SESSION_LIFETIME_SECS", "0", "whole number from 1"),
            ("SESSION_LIFETIME_SECS", "-5", "whole number"),
            ("SESSION_PERMANENT", "maybe", "true or false"),
            ("COOKIE_SECURE", "2", "true or false"),
            ("MAX_UPLOAD_BYTES", "1e6", "whole number"),
            ("DATABASE_POOL_SIZE", "0", "whole number from 1"),
            (
                "DATABASE_CONNECT_TIMEOUT_SECS",
                "a while",
                "whole number from 0",
            ),
            ("CLEANUP_INTERVAL_SECS", "soon", "whole number"),
            ("DATABASE_URL", "mysql://x", "postgres://"),
            ("SECRET_KEY", "short", "at least 32 bytes"),
        ] {
            let err = settings(&[(var, value)]).expect_err(var);
            assert_eq!(err.variable, var);
            assert!(err.to_string().starts_with(var), "{err}");
            assert!(err.problem.contains(expected), "{var}: {err}");
        }
    }

    #[test]
    fn secret_key_is_never_shown_by_debug() {
        let secret = "a-very-long-secret-key-material-0123456789";
        let s = settings(&[
            ("SECRET_KEY", secret),
            ("DATABASE_URL", "postgres://u:hunter2@db/textdrop"),
        ])
        .expect("valid");
        let shown = format!("{s:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(s.secret_key.expect("set").as_bytes(), secret.as_bytes());
    }
}
