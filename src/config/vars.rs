//! Every environment variable textdrop reads, declared once: its name, its default and the
//! values it accepts. `Settings` parses through these declarations, and a test checks the
//! README's configuration table and `.env.example` against them.

/// What values a variable accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number in `min..=max`.
    Whole { min: u64, max: u64 },
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// Free text, checked by the code that uses it.
    Text,
}

/// One environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    pub name: &'static str,
    /// The value used when the variable is unset or empty; `""` means "unset" is meaningful
    /// of itself (a random key, no listener).
    pub default: &'static str,
    pub kind: Kind,
}

const fn var(name: &'static str, default: &'static str, kind: Kind) -> Var {
    Var {
        name,
        default,
        kind,
    }
}

const fn whole(min: u64, max: u64) -> Kind {
    Kind::Whole { min, max }
}

/// Ten years, the longest lifetime or interval accepted.
const TEN_YEARS: u64 = 10 * 365 * 24 * 3600;

/// Where sessions live: `sqlite://PATH`, `postgres://…`, `redis://HOST:PORT/DB`.
pub const DATABASE_URL: Var = var("DATABASE_URL", "sqlite://textdrop.db", Kind::Text);
/// A file whose one line is DATABASE_URL (a container secret: the URL holds the password).
/// Not both.
pub const DATABASE_URL_FILE: Var = var("DATABASE_URL_FILE", "", Kind::Text);
/// The storage sessions are moving from: a session not found in DATABASE_URL is read there,
/// moved over and deleted there (unset: none). Same forms as DATABASE_URL.
pub const PREVIOUS_DATABASE_URL: Var = var("PREVIOUS_DATABASE_URL", "", Kind::Text);
/// Cookie key material, at least 32 bytes; unset: a random key per process.
pub const SECRET_KEY: Var = var("SECRET_KEY", "", Kind::Text);
/// A file holding SECRET_KEY (a container secret, such as /run/secrets/textdrop_secret_key);
/// its one line is the key. Not both.
pub const SECRET_KEY_FILE: Var = var("SECRET_KEY_FILE", "", Kind::Text);
/// Former SECRET_KEY values, comma-separated (at most 4): a cookie made under one is still
/// accepted and re-made under SECRET_KEY. Unset: none.
pub const PREVIOUS_SECRET_KEYS: Var = var("PREVIOUS_SECRET_KEYS", "", Kind::Text);
/// Address to listen on (0.0.0.0 in a container).
pub const HOST: Var = var("HOST", "127.0.0.1", Kind::Text);
/// Port to listen on.
pub const PORT: Var = var("PORT", "8080", whole(0, 65_535));
/// A session ends this long after the visitor's last request.
pub const SESSION_LIFETIME_SECS: Var = var("SESSION_LIFETIME_SECS", "86400", whole(1, TEN_YEARS));
/// A stored file is deleted at most this long after its upload, however often it is visited;
/// 0: no bound.
pub const SESSION_MAX_LIFETIME_SECS: Var =
    var("SESSION_MAX_LIFETIME_SECS", "604800", whole(0, TEN_YEARS));
/// `true`: persistent cookie with Max-Age; `false`: browser-session cookie.
pub const SESSION_PERMANENT: Var = var("SESSION_PERMANENT", "true", Kind::Bool);
/// Mark the cookie Secure (HTTPS only).
pub const COOKIE_SECURE: Var = var("COOKIE_SECURE", "false", Kind::Bool);
/// After an upload, the previous key shows the previous file, read-only, this long; 0: it is
/// deleted at once.
pub const ROTATION_GRACE_SECS: Var = var("ROTATION_GRACE_SECS", "60", whole(0, 3_600));
/// How often expired rows are deleted; 0 disables the task.
pub const CLEANUP_INTERVAL_SECS: Var = var("CLEANUP_INTERVAL_SECS", "300", whole(0, TEN_YEARS));
/// `auto`, `postgres` or `portable`: how the sweeper (and startup migrations) elect one
/// instance on a PostgreSQL-compatible database.
pub const CLEANUP_MODE: Var = var("CLEANUP_MODE", "auto", Kind::Text);
/// Rows deleted per statement, each batch its own short transaction.
pub const CLEANUP_BATCH_SIZE: Var = var("CLEANUP_BATCH_SIZE", "5000", whole(1, 1_000_000));
/// Largest accepted upload; larger gets 413.
pub const MAX_UPLOAD_BYTES: Var = var("MAX_UPLOAD_BYTES", "1048576", whole(1, 64 << 20));
/// Uploads per client address and minute; 0: unlimited.
pub const UPLOADS_PER_MINUTE: Var = var("UPLOADS_PER_MINUTE", "30", whole(0, 1_000_000));
/// Proxies whose X-Forwarded-For/Forwarded headers name the client (CIDRs, comma-separated).
pub const TRUSTED_PROXIES: Var = var("TRUSTED_PROXIES", "", Kind::Text);
/// The one header a trusted proxy names the client in: `x-forwarded-for` or `forwarded`.
pub const FORWARDED_HEADER: Var = var("FORWARDED_HEADER", "x-forwarded-for", Kind::Text);
/// Bytes all sessions' files may take together; 0: unlimited.
pub const MAX_STORED_BYTES: Var = var("MAX_STORED_BYTES", "1073741824", whole(0, 1 << 50));
/// The whole upload body must arrive within this many seconds, else 408.
pub const UPLOAD_TIMEOUT_SECS: Var = var("UPLOAD_TIMEOUT_SECS", "30", whole(1, 3_600));
/// Bytes of upload bodies held at once, across all uploads; at least MAX_UPLOAD_BYTES + 16 KiB.
pub const UPLOAD_BUFFER_BYTES: Var =
    var("UPLOAD_BUFFER_BYTES", "16777216", whole(1, 4_294_967_295));
/// How long an upload waits for room in the upload buffer before 503.
pub const UPLOAD_QUEUE_SECS: Var = var("UPLOAD_QUEUE_SECS", "2", whole(0, 60));
/// File pages (/action, /action/raw) being prepared at once across the instance; past it, a view
/// waits up to VIEW_QUEUE_SECS for its turn, then 503. One client address holds a quarter of
/// them while others wait.
pub const MAX_VIEWS_IN_FLIGHT: Var = var("MAX_VIEWS_IN_FLIGHT", "16", whole(1, 100_000));
/// Bytes of files one client address may view a minute (a quarter of it at once); past it, a
/// view waits (up to VIEW_QUEUE_SECS), then 429. 0: unlimited.
pub const VIEW_BYTES_PER_MINUTE: Var =
    var("VIEW_BYTES_PER_MINUTE", "1073741824", whole(0, 1 << 50));
/// How long a file page waits for its turn before 503.
pub const VIEW_QUEUE_SECS: Var = var("VIEW_QUEUE_SECS", "5", whole(0, 60));
/// Open connections the instance accepts; more wait in the listen queue.
pub const MAX_CONNECTIONS: Var = var("MAX_CONNECTIONS", "1024", whole(1, 1_000_000));
/// Open connections one client address may hold; past it, new ones are closed at once.
pub const MAX_CONNECTIONS_PER_CLIENT: Var =
    var("MAX_CONNECTIONS_PER_CLIENT", "256", whole(1, 1_000_000));
/// A request head must arrive within this long of the connection's start or of the previous
/// response.
pub const REQUEST_HEAD_TIMEOUT_SECS: Var = var("REQUEST_HEAD_TIMEOUT_SECS", "5", whole(1, 300));
/// A connection whose writes make no progress this long is closed.
pub const WRITE_TIMEOUT_SECS: Var = var("WRITE_TIMEOUT_SECS", "10", whole(1, 3_600));
/// Connections in the pool.
pub const DATABASE_POOL_SIZE: Var = var("DATABASE_POOL_SIZE", "10", whole(1, 512));
/// How long startup retries an unreachable database; 0 tries once.
pub const DATABASE_CONNECT_TIMEOUT_SECS: Var =
    var("DATABASE_CONNECT_TIMEOUT_SECS", "30", whole(0, 3_600));
/// Every statement on a SQL database is stopped after this long (the server's statement and
/// lock timeouts, and this side's own deadline a second later): the request gets 503.
pub const DATABASE_STATEMENT_TIMEOUT_SECS: Var =
    var("DATABASE_STATEMENT_TIMEOUT_SECS", "5", whole(1, 3_600));
/// `false`: startup runs no migration, and refuses to start while one is pending (for
/// deployments whose database user has no DDL rights: `textdrop migrate --print-sql`).
pub const MIGRATE_ON_STARTUP: Var = var("MIGRATE_ON_STARTUP", "true", Kind::Bool);
/// The read cache: `auto` (on for PostgreSQL, which tells every instance of a write, and
/// SQLite, which one process serves; off for MySQL/MariaDB and Redis), `on` or `off`.
pub const READ_CACHE: Var = var("READ_CACHE", "auto", Kind::Text);
/// Bytes of session records each process keeps in memory when the read cache is on.
pub const READ_CACHE_BYTES: Var = var("READ_CACHE_BYTES", "67108864", whole(65_536, 1 << 34));
/// How long a cached record may be served after it was read: how stale a read can be when
/// another instance's write is not heard (PostgreSQL tells every instance at once).
pub const READ_CACHE_MAX_AGE_SECS: Var = var("READ_CACHE_MAX_AGE_SECS", "5", whole(1, 3_600));
/// After SIGTERM, how long requests in flight may take to finish.
pub const SHUTDOWN_GRACE_SECS: Var = var("SHUTDOWN_GRACE_SECS", "10", whole(0, 3_600));
/// Where `/metrics` is served (host:port); unset: nowhere. Never the public port.
pub const METRICS_ADDR: Var = var("METRICS_ADDR", "", Kind::Text);
/// Log filter (env_logger syntax).
pub const RUST_LOG: Var = var("RUST_LOG", "info,actix_session=warn", Kind::Text);

/// Every variable, in the order the README and `.env.example` list them.
pub const ALL: &[Var] = &[
    DATABASE_URL,
    DATABASE_URL_FILE,
    PREVIOUS_DATABASE_URL,
    SECRET_KEY,
    SECRET_KEY_FILE,
    PREVIOUS_SECRET_KEYS,
    HOST,
    PORT,
    SESSION_LIFETIME_SECS,
    SESSION_MAX_LIFETIME_SECS,
    SESSION_PERMANENT,
    COOKIE_SECURE,
    ROTATION_GRACE_SECS,
    CLEANUP_INTERVAL_SECS,
    CLEANUP_MODE,
    CLEANUP_BATCH_SIZE,
    MAX_UPLOAD_BYTES,
    UPLOADS_PER_MINUTE,
    TRUSTED_PROXIES,
    FORWARDED_HEADER,
    MAX_STORED_BYTES,
    UPLOAD_TIMEOUT_SECS,
    UPLOAD_BUFFER_BYTES,
    UPLOAD_QUEUE_SECS,
    MAX_VIEWS_IN_FLIGHT,
    VIEW_BYTES_PER_MINUTE,
    VIEW_QUEUE_SECS,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
    REQUEST_HEAD_TIMEOUT_SECS,
    WRITE_TIMEOUT_SECS,
    DATABASE_POOL_SIZE,
    DATABASE_CONNECT_TIMEOUT_SECS,
    DATABASE_STATEMENT_TIMEOUT_SECS,
    MIGRATE_ON_STARTUP,
    READ_CACHE,
    READ_CACHE_BYTES,
    READ_CACHE_MAX_AGE_SECS,
    SHUTDOWN_GRACE_SECS,
    METRICS_ADDR,
    RUST_LOG,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, default)` of each row of the README's configuration table, whose rows look like
    /// ``| `NAME` | `default` | meaning |`` (or `| (unset) |` for no default).
    fn readme_rows() -> Vec<(String, String)> {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("a Configuration section");
        table
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let default = cells.get(2)?;
                let default = default
                    .strip_prefix('`')
                    .and_then(|d| d.strip_suffix('`'))
                    .unwrap_or(if *default == "(unset)" { "" } else { default });
                Some((name.to_owned(), default.to_owned()))
            })
            .filter(|(name, _)| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect()
    }

    /// `(name, default)` of each variable `.env.example` sets, or leaves commented out as
    /// `# NAME=` (unset by default).
    fn env_example_rows() -> Vec<(String, String)> {
        include_str!("../../.env.example")
            .lines()
            .filter_map(|line| {
                let line = line.strip_prefix("# ").unwrap_or(line);
                let (name, value) = line.split_once('=')?;
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
                    .then(|| (name.to_owned(), value.to_owned()))
            })
            .collect()
    }

    fn declared() -> Vec<(String, String)> {
        ALL.iter()
            .map(|v| (v.name.to_owned(), v.default.to_owned()))
            .collect()
    }

    #[test]
    fn the_readme_lists_every_variable_with_its_default() {
        assert_eq!(readme_rows(), declared());
    }

    #[test]
    fn env_example_lists_every_variable_with_its_default() {
        assert_eq!(env_example_rows(), declared());
    }

    #[test]
    fn every_database_url_scheme_is_documented_where_operators_look() {
        let readme = include_str!("../../README.md");
        let url_row = readme
            .lines()
            .find(|line| line.starts_with("| `DATABASE_URL` |"))
            .expect("the README's DATABASE_URL row");
        for (document, text) in [
            (".env.example", include_str!("../../.env.example")),
            ("README's DATABASE_URL row", url_row),
            ("docs/security.md", include_str!("../../docs/security.md")),
        ] {
            for (scheme, _) in crate::config::SCHEMES {
                assert!(
                    text.contains(&format!("{scheme}://")),
                    "{document} does not name {scheme}://"
                );
            }
        }
    }
}
