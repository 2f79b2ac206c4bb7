//! A database URL: which storage it names, what the driver is given, and how it may be shown.

use std::fmt;

/// The storages a [`DatabaseUrl`] can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (and the databases that speak its protocol).
    Postgres,
    /// A SQLite file.
    Sqlite,
    /// MySQL or MariaDB.
    Mysql,
    /// Not SQL: sessions in Redis, which expires keys itself.
    Redis,
    /// Sessions in a Redis Cluster (`redis+cluster://` with the seed nodes).
    RedisCluster,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
            Backend::Redis => "redis",
            Backend::RedisCluster => "redis cluster",
        })
    }
}

/// Every URL scheme a [`DatabaseUrl`] accepts, with the storage it names (a plain path is
/// SQLite too).
pub const SCHEMES: [(&str, Backend); 7] = [
    ("postgres", Backend::Postgres),
    ("postgresql", Backend::Postgres),
    ("mysql", Backend::Mysql),
    ("mariadb", Backend::Mysql),
    ("redis", Backend::Redis),
    ("redis+cluster", Backend::RedisCluster),
    ("sqlite", Backend::Sqlite),
];

/// A validated database URL. Its `Debug` and `Display` never show a password.
///
/// ```
/// use actix_session_stores::{Backend, DatabaseUrl};
///
/// let url = DatabaseUrl::parse("postgres://app:hunter2@db:5432/app")?;
/// assert_eq!(url.backend(), Backend::Postgres);
/// assert_eq!(url.to_string(), "postgres://app:***@db:5432/app");
/// assert!(DatabaseUrl::parse("ftp://db").is_err());
/// # Ok::<(), actix_session_stores::UrlError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// What the driver is given: the full URL for the servers, the path or `file:` URI for
    /// SQLite.
    target: String,
}

/// Why a text is no database URL: what form was expected. Never repeats the URL, which may
/// hold a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError(String);

impl UrlError {
    /// What is wrong, as a sentence's predicate ("has the unsupported scheme `ftp`; …"), to
    /// follow the name of the setting the URL came from.
    pub fn problem(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the database URL {}", self.0)
    }
}

impl std::error::Error for UrlError {}

/// The forms a database URL may take, for error messages.
const EXPECTED: &str = "expected postgres://, postgresql://, mysql://, mariadb://, redis://, \
     redis+cluster://HOST:PORT,…, sqlite://PATH, file:PATH or a plain file path";

impl DatabaseUrl {
    /// Parses a server URL (`postgres://…`, `mysql://…`, `redis://…`, …), `sqlite://PATH`
    /// (`sqlite:///abs/path` for an absolute path), `file:PATH` or a plain path. The error says
    /// what form was expected and never repeats the URL (it may hold a password).
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        Self::parse_text(raw).map_err(UrlError)
    }

    fn parse_text(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(format!("is empty; {EXPECTED}"));
        }
        let backend = match raw.split_once("://").map(|(scheme, _)| scheme) {
            Some(scheme) => SCHEMES
                .iter()
                .find(|(name, _)| *name == scheme)
                .map(|(_, backend)| *backend)
                .ok_or_else(|| format!("has the unsupported scheme `{scheme}`; {EXPECTED}"))?,
            None => Backend::Sqlite,
        };
        if backend == Backend::Sqlite {
            check_sqlite_path(raw)?;
        }
        Ok(Self {
            backend,
            target: raw.to_owned(),
        })
    }

    /// The storage it names.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `redis+cluster://[user:password@]host:port,host:port,…`: one `redis://` URL per seed
    /// node, the credentials repeated for each. May hold a password: never log them.
    pub fn cluster_nodes(&self) -> Vec<String> {
        let rest = self
            .target
            .strip_prefix("redis+cluster://")
            .unwrap_or_default();
        let (userinfo, hosts) = match rest.rsplit_once('@') {
            Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
            None => (String::new(), rest),
        };
        let hosts = hosts.split(['/', '?']).next().unwrap_or_default();
        hosts
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(|host| format!("redis://{userinfo}{host}"))
            .collect()
    }

    /// What the driver is given. It may hold a password: never log it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The URL with any password replaced by `***`, fit for logs and error messages.
    ///
    /// The user information is everything between `://` and the *last* `@`, so a password
    /// holding `/`, `?`, `:` or `@` is never shown in part; query parameters (which may carry
    /// `password=`) are left out.
    pub fn redacted(&self) -> String {
        if self.backend == Backend::Sqlite {
            return self.target.clone();
        }
        let Some((scheme, rest)) = self.target.split_once("://") else {
            return "***".into();
        };
        let (userinfo, after) = match rest.rsplit_once('@') {
            Some((userinfo, after)) => (Some(userinfo), after),
            None => (None, rest),
        };
        let (host, tail) = match after.find(['/', '?']) {
            Some(i) => after.split_at(i),
            None => (after, ""),
        };
        let path = tail.split('?').next().unwrap_or_default();
        let user = match userinfo {
            Some(userinfo) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@"),
                None => format!("{userinfo}@"),
            },
            None => String::new(),
        };
        format!("{scheme}://{user}{host}{path}")
    }

    /// The host (and port) of a server URL, or the file of a SQLite one.
    pub fn location(&self) -> String {
        if self.backend == Backend::Sqlite {
            return self.target.clone();
        }
        let rest = self.target.split_once("://").map_or("", |(_, r)| r);
        let after = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let host = after.split(['/', '?']).next().unwrap_or_default();
        if host.is_empty() {
            "localhost".into()
        } else {
            host.to_owned()
        }
    }
}

/// A SQLite name must name a file that pooled connections can share, and a plain path must
/// look like a path.
fn check_sqlite_path(raw: &str) -> Result<(), String> {
    let uri = raw
        .strip_prefix("sqlite://")
        .or_else(|| raw.strip_prefix("file:"));
    if uri.is_none() && (raw.contains('=') || raw.contains(char::is_whitespace)) {
        // A libpq keyword string ("host=db user=app password=…") is not a path: never create
        // a file of that name, and never repeat it (it may hold a password).
        return Err(format!(
            "is neither a URL nor a file path (it has `=` or whitespace, like a libpq keyword \
             string); {EXPECTED}"
        ));
    }
    let path = uri.unwrap_or(raw);
    let bare_path = path.split('?').next().unwrap_or_default();
    if bare_path.is_empty() {
        return Err(
            "names no SQLite file; expected sqlite://PATH, e.g. sqlite://sessions.db".into(),
        );
    }
    if bare_path == ":memory:" || raw.contains("mode=memory") {
        return Err(
            "names an in-memory SQLite database, which pooled connections would not \
                    share; use a file path such as sqlite://sessions.db"
                .into(),
        );
    }
    Ok(())
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_pick_their_backend_and_hide_the_password() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db.internal:5433/app?sslmode=require")
            .expect("valid");
        assert_eq!(url.backend(), Backend::Postgres);
        assert_eq!(url.redacted(), "postgres://app:***@db.internal:5433/app");
        assert_eq!(url.location(), "db.internal:5433");
        assert!(!format!("{url:?} {url}").contains("s3cret"));
        let url = DatabaseUrl::parse("mysql://app:s3cret@maria:3307/app").expect("valid");
        assert_eq!(url.backend(), Backend::Mysql);
        assert_eq!(url.redacted(), "mysql://app:***@maria:3307/app");
        assert_eq!(url.location(), "maria:3307");
        let url = DatabaseUrl::parse("postgresql://db/x").expect("valid");
        assert_eq!(url.backend(), Backend::Postgres);
        let url = DatabaseUrl::parse("redis+cluster://:pw@r1:7001,r2:7002").expect("valid");
        assert_eq!(url.backend(), Backend::RedisCluster);
        assert_eq!(url.location(), "r1:7001,r2:7002");
        assert_eq!(
            url.cluster_nodes(),
            ["redis://:pw@r1:7001", "redis://:pw@r2:7002"]
        );
        assert!(!url.redacted().contains("pw"));
        let url = DatabaseUrl::parse("redis://:pw@cache:6379/2").expect("valid");
        assert_eq!(url.backend(), Backend::Redis);
        assert_eq!(url.redacted(), "redis://:***@cache:6379/2");
        assert_eq!(url.location(), "cache:6379");
    }

    #[test]
    fn a_password_with_url_delimiters_is_never_shown_in_part() {
        for (raw, password) in [
            ("postgres://app:qz/jx?vk@db:5432/app", "qz/jx?vk"),
            ("mysql://app:qz@jx:w/vk@maria:3306/app", "qz@jx:w/vk"),
            ("redis://:qz?jx/vk@cache:6379/0", "qz?jx/vk"),
        ] {
            let url = DatabaseUrl::parse(raw).expect(raw);
            let shown = format!("{} {} {url:?}", url.redacted(), url.location());
            for piece in [&password[..2], &password[password.len() - 2..]] {
                assert!(!shown.contains(piece), "{raw}: {shown}");
            }
            assert!(shown.contains(":***@"), "{raw}: {shown}");
        }
    }

    #[test]
    fn sqlite_forms_and_plain_paths_pick_sqlite() {
        for raw in [
            "sqlite://app.db",
            "sqlite:///tmp/t.db",
            "file:t.db",
            "file:t.db?mode=rwc",
            "data/t.db",
            "c:t.db",
        ] {
            let url = DatabaseUrl::parse(raw).expect(raw);
            assert_eq!(url.backend(), Backend::Sqlite, "{raw}");
        }
    }

    #[test]
    fn every_scheme_parses_to_its_backend() {
        for (scheme, backend) in SCHEMES {
            let url = DatabaseUrl::parse(&format!("{scheme}://host:1/x")).expect(scheme);
            assert_eq!(url.backend(), backend, "{scheme}");
            assert!(EXPECTED.contains(&format!("{scheme}://")), "{scheme}");
        }
    }

    #[test]
    fn unsupported_or_empty_urls_are_rejected_with_every_expected_form() {
        let err = DatabaseUrl::parse_text("ftp://root:pw@localhost/db").expect_err("ftp");
        assert!(err.contains("`ftp`"), "{err}");
        for form in ["postgres://", "mysql://", "redis://", "sqlite://PATH"] {
            assert!(err.contains(form), "{form}: {err}");
        }
        assert!(!err.contains("pw"));
        let empty = DatabaseUrl::parse_text("").expect_err("empty");
        assert!(empty.contains("redis://"), "{empty}");
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        for keywords in [
            "host=db user=app password=hunter2",
            "host=127.0.0.1 user=postgres password=hunter2:x dbname=x",
            "password=hunter2:x",
            "dbname=x\tuser=y",
        ] {
            let err = DatabaseUrl::parse_text(keywords).expect_err(keywords);
            assert!(err.contains("neither a URL nor a file path"), "{err}");
            assert!(!err.contains("hunter2") && !err.contains("host="), "{err}");
        }
        assert!(DatabaseUrl::parse("my data/t.db").is_err());
        assert!(DatabaseUrl::parse("sqlite://:memory:").is_err());
    }
}
