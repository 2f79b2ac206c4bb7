//! Every environment variable textdrop reads, declared once: its name, its default, the values
//! it accepts and one line of help. `Settings` parses through these declarations, and a test
//! checks the README's configuration table and `.env.example` against them.

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
    pub help: &'static str,
}

const fn whole(min: u64, max: u64) -> Kind {
    Kind::Whole { min, max }
}

/// Ten years, the longest lifetime or interval accepted.
const TEN_YEARS: u64 = 10 * 365 * 24 * 3600;

pub const DATABASE_URL: Var = Var {
    name: "DATABASE_URL",
    default: "sqlite://textdrop.db",
    kind: Kind::Text,
    help: "where sessions live: sqlite://PATH, postgres://…, redis://HOST:PORT/DB",
};
pub const SECRET_KEY: Var = Var {
    name: "SECRET_KEY",
    default: "",
    kind: Kind::Text,
    help: "cookie key material, at least 32 bytes; unset: a random key per process",
};
pub const HOST: Var = Var {
    name: "HOST",
    default: "127.0.0.1",
    kind: Kind::Text,
    help: "address to listen on (0.0.0.0 in a container)",
};
pub const PORT: Var = Var {
    name: "PORT",
    default: "8080",
    kind: whole(0, 65_535),
    help: "port to listen on",
};
pub const SESSION_LIFETIME_SECS: Var = Var {
    name: "SESSION_LIFETIME_SECS",
    default: "86400",
    kind: whole(1, TEN_YEARS),
    help: "a session ends this long after the visitor's last request",
};
pub const SESSION_PERMANENT: Var = Var {
    name: "SESSION_PERMANENT",
    default: "true",
    kind: Kind::Bool,
    help: "true: persistent cookie with Max-Age; false: browser-session cookie",
};
pub const COOKIE_SECURE: Var = Var {
    name: "COOKIE_SECURE",
    default: "false",
    kind: Kind::Bool,
    help: "mark the cookie Secure (HTTPS only); turn on behind TLS",
};
pub const CLEANUP_INTERVAL_SECS: Var = Var {
    name: "CLEANUP_INTERVAL_SECS",
    default: "300",
    kind: whole(0, TEN_YEARS),
    help: "how often expired rows are deleted; 0 disables the task",
};
pub const CLEANUP_BATCH_SIZE: Var = Var {
    name: "CLEANUP_BATCH_SIZE",
    default: "5000",
    kind: whole(1, 1_000_000),
    help: "rows deleted per statement, each batch its own short transaction",
};
pub const MAX_UPLOAD_BYTES: Var = Var {
    name: "MAX_UPLOAD_BYTES",
    default: "1048576",
    kind: whole(1, 64 * 1024 * 1024),
    help: "largest accepted upload; larger gets 413",
};
pub const DATABASE_POOL_SIZE: Var = Var {
    name: "DATABASE_POOL_SIZE",
    default: "10",
    kind: whole(1, 512),
    help: "connections in the pool",
};
pub const DATABASE_CONNECT_TIMEOUT_SECS: Var = Var {
    name: "DATABASE_CONNECT_TIMEOUT_SECS",
    default: "30",
    kind: whole(0, 3_600),
    help: "how long startup retries an unreachable database; 0 tries once",
};
pub const SHUTDOWN_GRACE_SECS: Var = Var {
    name: "SHUTDOWN_GRACE_SECS",
    default: "10",
    kind: whole(0, 3_600),
    help: "after SIGTERM, how long requests in flight may take to finish",
};
pub const RUST_LOG: Var = Var {
    name: "RUST_LOG",
    default: "info,actix_session=warn",
    kind: Kind::Text,
    help: "log filter (env_logger syntax)",
};

/// Every variable, in the order the README and `.env.example` list them.
pub const ALL: &[Var] = &[
    DATABASE_URL,
    SECRET_KEY,
    HOST,
    PORT,
    SESSION_LIFETIME_SECS,
    SESSION_PERMANENT,
    COOKIE_SECURE,
    CLEANUP_INTERVAL_SECS,
    CLEANUP_BATCH_SIZE,
    MAX_UPLOAD_BYTES,
    DATABASE_POOL_SIZE,
    DATABASE_CONNECT_TIMEOUT_SECS,
    SHUTDOWN_GRACE_SECS,
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
}
