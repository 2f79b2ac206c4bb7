//! Settings, read from the environment once at startup, validated, and grouped by what they
//! configure (server, database, session, cleanup, limits).
//!
//! Each variable is declared once in [`vars`] (name, default, accepted values); parsing goes
//! through those declarations. Every error names the variable and the form it expects, in one
//! line. Secrets (the cookie key material, a database password) are never printed, not even by
//! `Debug`.

mod env;
mod secret;
pub mod vars;

use std::time::Duration;

use crate::limits::{ForwardedHeader, TrustedProxies};
pub use actix_session_stores::{Backend, CleanupMode, DatabaseUrl, SCHEMES};
use env::Env;
pub use secret::SecretKey;

/// Everything textdrop can be told through its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub session: SessionSettings,
    pub cleanup: CleanupSettings,
    pub limits: LimitSettings,
}

/// Where and how the HTTP server listens.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Open connections accepted at once.
    pub max_connections: usize,
    /// Open connections one client address may hold.
    pub max_connections_per_client: u32,
    /// A request head must arrive within this long of the connection's start or of the
    /// previous response's last write.
    pub request_head_timeout: Duration,
    /// A write that makes no progress this long closes its connection.
    pub write_timeout: Duration,
    /// Where `/metrics` is served; `None`: nowhere.
    pub metrics_addr: Option<String>,
}

/// Splits `max_connections` between `cores` workers (actix counts connections per worker):
/// the number of workers and each one's cap, so that the total never exceeds the setting. At
/// least one connection per worker: a setting lower than the core count means fewer workers.
pub fn split_connections(max_connections: usize, cores: usize) -> (usize, usize) {
    let workers = cores.clamp(1, max_connections.max(1));
    (workers, max_connections / workers)
}

/// Which storage holds the sessions, and how to reach it.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    /// The storage sessions are moving from (`PREVIOUS_DATABASE_URL`): a session not found in
    /// `url` is moved over from there when its visitor comes back.
    pub previous_url: Option<DatabaseUrl>,
    pub pool_size: u32,
    /// How long startup keeps retrying an unreachable database before giving up.
    pub connect_timeout: Duration,
    /// How long one statement may run or wait for a lock (SQL databases).
    pub statement_timeout: Duration,
    /// Whether startup runs pending migrations (else it refuses to start while some are).
    pub migrate_on_startup: bool,
    /// The read cache: when it is on, its bytes per process, how long an entry is served.
    pub read_cache: ReadCacheSettings,
}

/// `READ_CACHE`, `READ_CACHE_BYTES` and `READ_CACHE_MAX_AGE_SECS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadCacheSettings {
    pub mode: ReadCacheMode,
    pub bytes: usize,
    pub max_age: Duration,
}

/// `READ_CACHE`: when the read cache is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadCacheMode {
    /// On where the storage is PostgreSQL (every instance hears the others' writes) or SQLite
    /// (one process serves the file); off on MySQL/MariaDB and Redis.
    Auto,
    On,
    Off,
}

impl ReadCacheSettings {
    /// Whether the cache is on for the storage `url` names.
    pub fn is_on_for(&self, url: &DatabaseUrl) -> bool {
        match self.mode {
            ReadCacheMode::On => true,
            ReadCacheMode::Off => false,
            ReadCacheMode::Auto => {
                matches!(url.backend(), Backend::Postgres | Backend::Sqlite)
            }
        }
    }
}

/// `READ_CACHE`: `auto`, `on` or `off`.
fn parse_read_cache_mode(raw: &str) -> Result<ReadCacheMode, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(ReadCacheMode::Auto),
        "on" => Ok(ReadCacheMode::On),
        "off" => Ok(ReadCacheMode::Off),
        _ => Err(format!("expected auto, on or off, got `{raw}`")),
    }
}

/// The session cookie and how long a session lives.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// Cookie key material; `None` means a random key for this process only.
    pub secret_key: Option<SecretKey>,
    /// Former cookie key material, still accepted (and re-made under `secret_key`).
    pub previous_keys: Vec<SecretKey>,
    /// How long a session lives after the visitor's last request.
    pub lifetime: Duration,
    /// How long after its upload a file is deleted at the latest; `None`: no bound.
    pub max_lifetime: Option<Duration>,
    /// `true`: persistent cookie with Max-Age; `false`: browser-session cookie.
    pub permanent: bool,
    pub cookie_secure: bool,
    /// How long the previous key of an upload shows the previous file; zero: not at all.
    pub rotation_grace: Duration,
}

/// `CLEANUP_MODE`: how a PostgreSQL-compatible database elects its sweeper.
fn parse_cleanup_mode(raw: &str) -> Result<CleanupMode, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(CleanupMode::Auto),
        "postgres" => Ok(CleanupMode::Postgres),
        "portable" => Ok(CleanupMode::Portable),
        _ => Err(format!("expected auto, postgres or portable, got `{raw}`")),
    }
}

/// `PREVIOUS_SECRET_KEYS`: comma-separated key material, each at least 32 bytes, at most
/// `MAX_PREVIOUS_KEYS` of them. The error never repeats a key.
fn parse_previous_keys(raw: &str) -> Result<Vec<SecretKey>, String> {
    use crate::session::MAX_PREVIOUS_KEYS;
    let keys: Vec<&str> = raw.split(',').map(str::trim).collect();
    if keys.len() > MAX_PREVIOUS_KEYS {
        return Err(format!(
            "holds {} keys: at most {MAX_PREVIOUS_KEYS} (drop the oldest; each is tried on \
             every cookie the current key does not open)",
            keys.len()
        ));
    }
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            SecretKey::try_from(*key).map_err(|problem| format!("key {}: {problem}", i + 1))
        })
        .collect()
}

/// A database URL setting's value, or what is wrong with it (never repeating it).
fn parse_url(raw: &str) -> Result<DatabaseUrl, String> {
    DatabaseUrl::parse(raw).map_err(|err| err.problem().to_owned())
}

/// The task that deletes expired rows.
#[derive(Clone, Debug)]
pub struct CleanupSettings {
    /// How often expired rows are deleted; `None` disables the task.
    pub interval: Option<Duration>,
    pub mode: CleanupMode,
    /// Rows deleted per statement.
    pub batch_size: i64,
}

/// What anonymous visitors may make the server hold.
#[derive(Clone, Debug)]
pub struct LimitSettings {
    pub max_upload_bytes: usize,
    /// Uploads per client address and minute; 0: unlimited.
    pub uploads_per_minute: u32,
    pub trusted_proxies: TrustedProxies,
    /// The one header a trusted proxy names the client in.
    pub forwarded_header: ForwardedHeader,
    /// Bytes all files may take together; `None`: unlimited.
    pub max_stored_bytes: Option<u64>,
    /// The whole upload body must arrive within this long.
    pub upload_timeout: Duration,
    /// Bytes of upload bodies held at once.
    pub upload_buffer_bytes: u64,
    /// How long an upload waits for room in the buffer.
    pub upload_queue: Duration,
    /// File pages prepared at once (`MAX_VIEWS_IN_FLIGHT`).
    pub max_views_in_flight: u32,
    /// Bytes of files one address may view a minute (`VIEW_BYTES_PER_MINUTE`); 0: unlimited.
    pub view_bytes_per_minute: u64,
    /// How long a file page waits for its turn (`VIEW_QUEUE_SECS`).
    pub view_queue: Duration,
}

/// A configuration problem, shown to the operator as one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl Settings {
    /// Reads the process environment (after `.env` has been loaded by `main`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    /// An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use vars::*;
        let env = Env { lookup };
        // Unset or empty means "a random key"; a value of blanks is a mistake, not a wish.
        if let Some(raw) = (env.lookup)(SECRET_KEY.name) {
            if !raw.is_empty() && raw.trim().is_empty() {
                return Err(ConfigError {
                    variable: SECRET_KEY.name,
                    problem: "is blank (only whitespace): set at least 32 bytes of key material, \
                              or leave it empty for a random key"
                        .into(),
                });
            }
        }
        let secret_key = match (env.raw(&SECRET_KEY), env.raw(&SECRET_KEY_FILE)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError {
                    variable: SECRET_KEY_FILE.name,
                    problem: "is set beside SECRET_KEY: set one of them".into(),
                })
            }
            (Some(raw), None) => {
                Some(env.parsed(&SECRET_KEY, |_| SecretKey::try_from(raw.as_str()))?)
            }
            (None, Some(path)) => Some(env.parsed(&SECRET_KEY_FILE, |_| {
                let text = std::fs::read_to_string(path.trim())
                    .map_err(|e| format!("cannot read {}: {e}", path.trim()))?;
                SecretKey::try_from(text.trim_end_matches(['\r', '\n']))
                    .map_err(|problem| format!("{}: the key {problem}", path.trim()))
            })?),
            (None, None) => None,
        };
        let previous_keys = match env.raw(&PREVIOUS_SECRET_KEYS) {
            None => Vec::new(),
            Some(_) if secret_key.is_none() => {
                return Err(ConfigError {
                    variable: PREVIOUS_SECRET_KEYS.name,
                    problem: "is set without SECRET_KEY (or SECRET_KEY_FILE): set the new key \
                              there"
                        .into(),
                })
            }
            Some(_) => env.parsed(&PREVIOUS_SECRET_KEYS, parse_previous_keys)?,
        };
        let metrics_addr = env.raw(&METRICS_ADDR).map(|raw| raw.trim().to_owned());
        if let Some(addr) = &metrics_addr {
            env.parsed(&METRICS_ADDR, |_| parse_listen_address(addr))?;
        }
        let settings = Self {
            server: ServerSettings {
                host: env.text(&HOST),
                port: env.whole(&PORT)?,
                shutdown_grace: env.secs(&SHUTDOWN_GRACE_SECS)?,
                max_connections: env.whole(&MAX_CONNECTIONS)?,
                max_connections_per_client: env.whole(&MAX_CONNECTIONS_PER_CLIENT)?,
                request_head_timeout: env.secs(&REQUEST_HEAD_TIMEOUT_SECS)?,
                write_timeout: env.secs(&WRITE_TIMEOUT_SECS)?,
                metrics_addr,
            },
            database: DatabaseSettings {
                url: match env.raw(&DATABASE_URL_FILE) {
                    None => env.parsed(&DATABASE_URL, parse_url)?,
                    Some(_) if env.raw(&DATABASE_URL).is_some() => {
                        return Err(ConfigError {
                            variable: DATABASE_URL_FILE.name,
                            problem: "is set beside DATABASE_URL: set one of them".into(),
                        })
                    }
                    // The error names the file, never repeats what is in it.
                    Some(path) => env.parsed(&DATABASE_URL_FILE, |_| {
                        let text = std::fs::read_to_string(path.trim())
                            .map_err(|e| format!("cannot read {}: {e}", path.trim()))?;
                        parse_url(text.trim())
                            .map_err(|problem| format!("{}: the URL in it {problem}", path.trim()))
                    })?,
                },
                previous_url: match env.raw(&PREVIOUS_DATABASE_URL) {
                    None => None,
                    Some(_) => Some(env.parsed(&PREVIOUS_DATABASE_URL, parse_url)?),
                },
                pool_size: env.whole(&DATABASE_POOL_SIZE)?,
                connect_timeout: env.secs(&DATABASE_CONNECT_TIMEOUT_SECS)?,
                statement_timeout: env.secs(&DATABASE_STATEMENT_TIMEOUT_SECS)?,
                migrate_on_startup: env.bool(&MIGRATE_ON_STARTUP)?,
                read_cache: ReadCacheSettings {
                    mode: env.parsed(&READ_CACHE, parse_read_cache_mode)?,
                    bytes: env.whole(&READ_CACHE_BYTES)?,
                    max_age: env.secs(&READ_CACHE_MAX_AGE_SECS)?,
                },
            },
            session: SessionSettings {
                secret_key,
                previous_keys,
                lifetime: env.secs(&SESSION_LIFETIME_SECS)?,
                max_lifetime: env
                    .optional(&SESSION_MAX_LIFETIME_SECS)?
                    .map(Duration::from_secs),
                permanent: env.bool(&SESSION_PERMANENT)?,
                cookie_secure: env.bool(&COOKIE_SECURE)?,
                rotation_grace: env.secs(&ROTATION_GRACE_SECS)?,
            },
            cleanup: CleanupSettings {
                interval: env
                    .optional(&CLEANUP_INTERVAL_SECS)?
                    .map(Duration::from_secs),
                mode: env.parsed(&CLEANUP_MODE, parse_cleanup_mode)?,
                batch_size: env.whole(&CLEANUP_BATCH_SIZE)?,
            },
            limits: LimitSettings {
                max_upload_bytes: env.whole(&MAX_UPLOAD_BYTES)?,
                uploads_per_minute: env.whole(&UPLOADS_PER_MINUTE)?,
                trusted_proxies: env.parsed(&TRUSTED_PROXIES, TrustedProxies::parse)?,
                forwarded_header: env.parsed(&FORWARDED_HEADER, ForwardedHeader::parse)?,
                max_stored_bytes: env.optional(&MAX_STORED_BYTES)?,
                upload_timeout: env.secs(&UPLOAD_TIMEOUT_SECS)?,
                upload_buffer_bytes: env.whole(&UPLOAD_BUFFER_BYTES)?,
                upload_queue: env.secs(&UPLOAD_QUEUE_SECS)?,
                max_views_in_flight: env.whole(&MAX_VIEWS_IN_FLIGHT)?,
                view_bytes_per_minute: env.whole(&VIEW_BYTES_PER_MINUTE)?,
                view_queue: env.secs(&VIEW_QUEUE_SECS)?,
            },
        };
        if settings.database.previous_url.as_ref() == Some(&settings.database.url) {
            return Err(ConfigError {
                variable: PREVIOUS_DATABASE_URL.name,
                problem: "names the same storage as DATABASE_URL: set it to the storage \
                          sessions are moving from, or leave it unset"
                    .into(),
            });
        }
        // The buffer must hold one upload of the largest size, framing included.
        let largest = settings.limits.max_upload_bytes + crate::limits::FRAMING_ALLOWANCE;
        if settings.limits.upload_buffer_bytes < largest as u64 {
            return Err(ConfigError {
                variable: UPLOAD_BUFFER_BYTES.name,
                problem: format!(
                    "must be at least MAX_UPLOAD_BYTES + 16 KiB ({largest}), got {}",
                    settings.limits.upload_buffer_bytes
                ),
            });
        }
        Ok(settings)
    }
}

/// A `host:port` to listen on, checked without resolving it.
fn parse_listen_address(raw: &str) -> Result<(), String> {
    match raw.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "expected host:port such as 127.0.0.1:9464, got `{raw}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::vars::Kind;
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
        assert_eq!(s.database.url.redacted(), "sqlite://textdrop.db");
        assert_eq!((s.server.host.as_str(), s.server.port), ("127.0.0.1", 8080));
        assert_eq!(s.session.lifetime, Duration::from_secs(86_400));
        assert!(s.session.permanent);
        assert_eq!(s.cleanup.interval, Some(Duration::from_secs(300)));
        assert_eq!(s.cleanup.batch_size, 5_000);
        assert_eq!(s.limits.max_upload_bytes, 1_048_576);
        assert_eq!(s.database.pool_size, 10);
        assert_eq!(s.database.connect_timeout, Duration::from_secs(30));
        assert_eq!(s.server.shutdown_grace, Duration::from_secs(10));
        assert!(!s.session.cookie_secure);
        assert!(s.session.secret_key.is_none());
    }

    #[test]
    fn every_declared_default_is_inside_its_declared_range() {
        for var in vars::ALL {
            if let Kind::Whole { min, max } = var.kind {
                let value: u64 = var.default.parse().expect(var.name);
                assert!((min..=max).contains(&value), "{}", var.name);
            }
            if var.kind == Kind::Bool {
                assert!(["true", "false"].contains(&var.default), "{}", var.name);
            }
        }
    }

    #[test]
    fn the_upload_buffer_holds_one_largest_upload_at_least() {
        let fits = settings(&[
            ("MAX_UPLOAD_BYTES", "1000"),
            ("UPLOAD_BUFFER_BYTES", "17384"),
        ]);
        assert_eq!(fits.expect("valid").limits.upload_buffer_bytes, 17_384);
        let err = settings(&[
            ("MAX_UPLOAD_BYTES", "1000"),
            ("UPLOAD_BUFFER_BYTES", "17383"),
        ])
        .expect_err("one byte short");
        assert_eq!(err.variable, "UPLOAD_BUFFER_BYTES");
        let defaults = settings(&[]).expect("valid");
        assert_eq!(defaults.session.rotation_grace, Duration::from_secs(60));
        assert_eq!(defaults.limits.upload_queue, Duration::from_secs(2));
    }

    #[test]
    fn connections_are_split_so_the_total_never_exceeds_the_setting() {
        assert_eq!(split_connections(1024, 2), (2, 512));
        assert_eq!(split_connections(1025, 2), (2, 512));
        assert_eq!(
            split_connections(1, 2),
            (1, 1),
            "one worker when one connection"
        );
        assert_eq!(split_connections(3, 4), (3, 1));
        for (max, cores) in [(1, 2), (2, 2), (7, 4), (1000, 3)] {
            let (workers, each) = split_connections(max, cores);
            assert!(workers * each <= max && each >= 1, "{max} on {cores}");
        }
    }

    #[test]
    fn zero_cleanup_interval_disables_the_task() {
        let s = settings(&[("CLEANUP_INTERVAL_SECS", "0")]).expect("valid");
        assert_eq!(s.cleanup.interval, None);
    }

    #[test]
    fn each_invalid_value_names_its_variable_and_expected_form() {
        for (var, value, expected) in [
            ("PORT", "eighty", "whole number from 0 to 65535"),
            ("PORT", "65536", "whole number from 0 to 65535"),
            ("SESSION_LIFETIME_SECS", "0", "whole number from 1"),
            ("SESSION_LIFETIME_SECS", "-5", "whole number"),
            ("SESSION_PERMANENT", "maybe", "true or false"),
            ("COOKIE_SECURE", "2", "true or false"),
            ("MAX_UPLOAD_BYTES", "1e6", "whole number"),
            ("DATABASE_POOL_SIZE", "0", "whole number from 1"),
            ("CLEANUP_BATCH_SIZE", "0", "whole number from 1"),
            ("SHUTDOWN_GRACE_SECS", "3601", "whole number from 0 to 3600"),
            (
                "DATABASE_CONNECT_TIMEOUT_SECS",
                "a while",
                "whole number from 0",
            ),
            ("CLEANUP_INTERVAL_SECS", "soon", "whole number"),
            ("CLEANUP_MODE", "cockroach", "auto, postgres or portable"),
            ("FORWARDED_HEADER", "both", "x-forwarded-for or forwarded"),
            ("DATABASE_URL", "ftp://x", "postgres://"),
            ("SECRET_KEY", "short", "at least 32 bytes"),
            ("SECRET_KEY", "   \t ", "is blank"),
            ("ROTATION_GRACE_SECS", "3601", "whole number from 0 to 3600"),
            ("UPLOAD_QUEUE_SECS", "61", "whole number from 0 to 60"),
            ("READ_CACHE", "sometimes", "auto, on or off"),
            ("READ_CACHE_BYTES", "1024", "whole number from 65536"),
            (
                "READ_CACHE_MAX_AGE_SECS",
                "0",
                "whole number from 1 to 3600",
            ),
            (
                "UPLOAD_BUFFER_BYTES",
                "1048576",
                "at least MAX_UPLOAD_BYTES + 16 KiB (1064960)",
            ),
        ] {
            let err = settings(&[(var, value)]).expect_err(var);
            assert_eq!(err.variable, var);
            assert!(err.to_string().starts_with(var), "{err}");
            assert!(err.problem.contains(expected), "{var}: {err}");
        }
    }

    #[test]
    fn previous_keys_are_bounded_checked_and_need_a_current_key() {
        let key = "a-very-long-secret-key-material-0123456789";
        let old = "an-older-secret-key-material-of-length-0123456789";
        let with =
            |previous: &str| settings(&[("SECRET_KEY", key), ("PREVIOUS_SECRET_KEYS", previous)]);
        let s = with(&format!("{old}, {key}x")).expect("two keys");
        assert_eq!(s.session.previous_keys.len(), 2);
        assert_eq!(s.session.previous_keys[0].as_bytes(), old.as_bytes());

        let five = [old; crate::session::MAX_PREVIOUS_KEYS + 1].join(",");
        let err = with(&five).expect_err("too many");
        assert_eq!(err.variable, "PREVIOUS_SECRET_KEYS");
        assert!(err.problem.contains("at most 4"), "{err}");
        let err = with(&format!("{old},short")).expect_err("a short key");
        assert!(
            err.problem.starts_with("key 2: must be at least 32 bytes"),
            "{err}"
        );
        assert!(!err.to_string().contains(old), "a key repeated: {err}");
        let err = settings(&[("PREVIOUS_SECRET_KEYS", old)]).expect_err("no SECRET_KEY");
        assert!(err.problem.contains("without SECRET_KEY"), "{err}");
        assert!(format!("{s:?}").find(old).is_none(), "a key in Debug");
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
        assert_eq!(
            s.session.secret_key.expect("set").as_bytes(),
            secret.as_bytes()
        );
    }

    #[test]
    fn the_secret_key_may_come_from_a_file_but_not_from_both() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("secret");
        let key = "a-secret-key-from-a-file-0123456789abcdef";
        std::fs::write(&file, format!("{key}\n")).expect("write");
        let path = file.display().to_string();
        let s = settings(&[("SECRET_KEY_FILE", &path)]).expect("valid");
        assert_eq!(
            s.session.secret_key.expect("set").as_bytes(),
            key.as_bytes()
        );
        let both = settings(&[("SECRET_KEY_FILE", &path), ("SECRET_KEY", key)]);
        assert!(both
            .expect_err("refused")
            .to_string()
            .contains("SECRET_KEY_FILE"));
        std::fs::write(&file, "postgres://textdrop:hunter2@db:5432/textdrop\n").expect("write");
        let from_file = settings(&[("DATABASE_URL_FILE", &path)]).expect("valid");
        assert_eq!(from_file.database.url.location(), "db:5432");
        let both = settings(&[
            ("DATABASE_URL_FILE", &path),
            ("DATABASE_URL", "sqlite://x.db"),
        ]);
        assert!(both
            .expect_err("refused")
            .to_string()
            .contains("DATABASE_URL_FILE"));
        let missing = settings(&[("SECRET_KEY_FILE", "/nowhere/secret")]);
        let err = missing.expect_err("refused").to_string();
        assert!(
            err.contains("/nowhere/secret") && err.contains("SECRET_KEY_FILE"),
            "{err}"
        );
        std::fs::write(&file, "short\n").expect("write");
        let short = settings(&[("SECRET_KEY_FILE", &path)])
            .expect_err("refused")
            .to_string();
        assert!(
            short.contains("at least 32 bytes") && !short.contains("short\n"),
            "{short}"
        );
    }
}
