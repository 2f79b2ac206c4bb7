//! The command line: `serve` (the default), `migrate`, `cleanup`, `stats`, `sessions copy`,
//! `backup` and `healthcheck`.

use std::time::Duration;

use clap::{Parser, Subcommand};

use actix_session_stores::{migrations, Backend, Clock, DatabaseUrl, Maintenance, Storage};

use crate::config::Settings;
use crate::progress::Progress;
use crate::startup::Application;
use crate::storage::{in_textdrops_words, store_config};

/// Upload a text file, see it back: anonymous server-side sessions in SQL that clean up after
/// themselves.
///
/// Configured through environment variables, or a `.env` file in the working directory: every
/// variable, its default and the values it accepts are in the README's "Configuration" table
/// and in .env.example.
#[derive(Debug, Parser)]
#[command(name = "textdrop", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run pending migrations, then serve HTTP until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Run pending migrations and exit (whatever MIGRATE_ON_STARTUP says).
    Migrate {
        /// Print the SQL of the pending migrations as textdrop would run them (its lock
        /// statements commented out) and change nothing: for a DBA to apply.
        #[arg(long)]
        print_sql: bool,
        /// Change nothing; exit 1 when a migration is pending, 0 when none is (for deploy and
        /// readiness scripts).
        #[arg(long, conflicts_with = "print_sql")]
        check: bool,
    },
    /// Delete expired sessions once (in batches), print how many went and how long it took.
    Cleanup,
    /// Print live and expired session counts and the oldest expiry.
    Stats,
    /// Move sessions between storages (see `textdrop sessions copy --help`).
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Ask the server on HOST:PORT for /readyz; exit 0 when ready, 1 otherwise (for HEALTHCHECK).
    Healthcheck,
    /// Write a consistent copy of the SQLite database to FILE while textdrop serves (never over
    /// an existing file). Restore: stop textdrop, put the copy in the database's place (and
    /// delete its -wal and -shm files), start it.
    Backup {
        /// Where the copy goes (on the same volume, then copied out).
        #[arg(value_name = "FILE")]
        to: std::path::PathBuf,
    },
}

/// What `textdrop sessions` does.
#[derive(Debug, Subcommand, Clone, PartialEq, Eq)]
pub enum SessionsCommand {
    /// Copy every live session (state, file, times, a rotation's superseded record) from one
    /// storage to another, in batches, skipping expired ones. The destination is migrated
    /// first. Run again, it copies nothing twice and never overwrites a session that is newer
    /// in the destination; Ctrl-C stops it after the batch in flight. Ends with counts and a
    /// check that the destination holds every session copied; exits 1 if one is missing.
    ///
    /// A URL given here shows in the process list: leave a password-bearing one out and set
    /// PREVIOUS_DATABASE_URL and DATABASE_URL instead.
    Copy {
        /// The storage to copy from, in any DATABASE_URL form [default: PREVIOUS_DATABASE_URL].
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// The storage to copy into [default: DATABASE_URL].
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// Sessions read and written per batch at most; fewer when files are big (a batch aims
        /// at 32 MiB in memory).
        #[arg(long, value_name = "N", default_value_t = actix_session_stores::DEFAULT_BATCH,
              value_parser = clap::value_parser!(u16).range(1..=10_000))]
        batch_size: u16,
    },
    /// Delete every session written before sealed records (still stored as plain text) now,
    /// rather than wait for them to expire (SESSION_MAX_LIFETIME_SECS at the latest). Their
    /// visitors start again; `textdrop stats` counts them. SQL storages; on Redis see
    /// docs/operations.md.
    DropPlain,
}

/// Libraries whose debug and trace lines would quote what visitors sent (statement parameters)
/// or TLS handshakes: they log at most info, whatever RUST_LOG says.
pub const QUIET_MODULES: [&str; 5] = [
    "tokio_postgres",
    "mysql_async",
    "rustls",
    "tokio_rustls",
    "redis",
];

/// What the maintenance commands say when the storage needs no maintenance.
const NOTHING_TO_MAINTAIN: &str =
    "nothing to do: this storage needs no migrations and expires sessions itself";

/// Runs the command `cli` names with `settings`.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Backup { to } => {
            let backend = settings.database.url.backend();
            anyhow::ensure!(
                backend == Backend::Sqlite,
                "`textdrop backup` copies a SQLite database; back {backend} up with its own \
                 tools (pg_dump, mysqldump, Redis's RDB or AOF): see docs/operations.md"
            );
            Storage::backup(&store_config(&settings, 1), to.clone())
                .await
                .map_err(in_textdrops_words)?;
            println!(
                "backed up {} to {}",
                settings.database.url.location(),
                to.display()
            );
        }
        Command::Healthcheck => {
            let (host, port) = (settings.server.host.clone(), settings.server.port);
            actix_web::rt::task::spawn_blocking(move || healthcheck(&host, port)).await??;
        }
        Command::Migrate {
            print_sql: true, ..
        } => match pending(&settings).await? {
            Some(plan) => print!("{}", plan.script()),
            None => println!("{NOTHING_TO_MAINTAIN}"),
        },
        Command::Migrate { check: true, .. } => {
            if Storage::expires_sessions_itself(&settings.database.url) {
                // Nothing to migrate, but a check that says "fine" must have reached it.
                crate::storage::connect(&settings, 1).await?;
            }
            match pending(&settings).await? {
                Some(plan) if !plan.pending.is_empty() => anyhow::bail!(
                    "{} migration(s) pending on {}: {} (`textdrop migrate` applies them)",
                    plan.pending.len(),
                    plan.database,
                    plan.names()
                ),
                Some(plan) => println!("no migration pending on {}", plan.database),
                None => println!("{NOTHING_TO_MAINTAIN}"),
            }
        }
        Command::Migrate { .. } => {
            if maintenance(&settings, Migrations::Run).await?.is_some() {
                println!(
                    "migrations are up to date on {}",
                    settings.database.url.location()
                );
            }
        }
        Command::Cleanup => {
            if let Some(sql) = maintenance(&settings, Migrations::Applied).await? {
                let report = sql.cleanup_once().await.map_err(in_textdrops_words)?;
                if report.skipped {
                    println!("another instance is sweeping right now; run again later");
                }
                println!(
                    "deleted {} expired session(s) in {} ms ({} batch(es){})",
                    report.deleted,
                    report.elapsed.as_millis(),
                    report.batches,
                    if report.walked { ", table walk" } else { "" }
                );
            }
        }
        Command::Sessions {
            command: SessionsCommand::DropPlain,
        } => {
            if let Some(sql) = maintenance(&settings, Migrations::Applied).await? {
                let dropped = sql.delete_plain().await.map_err(in_textdrops_words)?;
                println!("deleted {dropped} plain session record(s)");
            }
        }
        Command::Sessions {
            command:
                SessionsCommand::Copy {
                    from,
                    to,
                    batch_size,
                },
        } => {
            let from = storage_url("--from", from, settings.database.previous_url.clone())?;
            let to = storage_url("--to", to, Some(settings.database.url.clone()))?;
            println!(
                "copying sessions from {} to {}",
                from.location(),
                to.location()
            );
            let report = copy(&settings, from, to, batch_size.into()).await?;
            for line in report.lines() {
                println!("{line}");
            }
            if report.interrupted {
                anyhow::bail!(
                    "interrupted: run the same command again to copy the rest (what is \
                     there already is not copied twice)"
                );
            }
            anyhow::ensure!(
                report.missing == 0,
                "{} session(s) copied are missing in the destination",
                report.missing
            );
            anyhow::ensure!(
                report.skipped == 0,
                "{} session(s) could not be copied (named above): everything else was",
                report.skipped
            );
        }
        Command::Stats => {
            if let Some(sql) = maintenance(&settings, Migrations::Applied).await? {
                let counts = sql.counts().await.map_err(in_textdrops_words)?;
                println!("live sessions:    {}", counts.live);
                println!("expired sessions: {} (waiting for cleanup)", counts.expired);
                println!("sealed sessions:  {}", counts.sealed);
                println!(
                    "plain sessions:   {} (written before sealing; `textdrop sessions \
                     drop-plain` deletes them)",
                    counts.plain
                );
                match counts.oldest_expiry {
                    Some(at) => {
                        println!("oldest expiry:    {} UTC", at.format("%Y-%m-%d %H:%M:%S"))
                    }
                    None => println!("oldest expiry:    none (no rows)"),
                }
                let now = Clock::system().now();
                match counts.oldest_expiry.filter(|_| counts.expired > 0) {
                    Some(at) => println!(
                        "oldest expired:   {} s ago",
                        (now - at).num_seconds().max(0)
                    ),
                    None => println!("oldest expired:   none"),
                }
            }
        }
    }
    Ok(())
}

/// The migrations the database the settings name has not applied, read without changing it.
async fn pending(settings: &Settings) -> anyhow::Result<Option<migrations::Plan>> {
    migrations::pending(&store_config(settings, 1))
        .await
        .map_err(in_textdrops_words)
}

/// `textdrop sessions copy`: every live session of `from` into `to`, with a progress bar (or
/// log lines), stopping after the batch in flight on Ctrl-C.
async fn copy(
    settings: &Settings,
    from: DatabaseUrl,
    to: DatabaseUrl,
    batch: usize,
) -> anyhow::Result<actix_session_stores::CopyReport> {
    if from == to {
        anyhow::bail!(
            "--from and --to name the same storage ({})",
            from.location()
        );
    }
    let stopping = std::rc::Rc::new(std::cell::Cell::new(false));
    let listener = {
        let stopping = std::rc::Rc::clone(&stopping);
        actix_web::rt::spawn(async move {
            if actix_web::rt::signal::ctrl_c().await.is_ok() {
                log::warn!("copy: Ctrl-C: stopping after the batch in flight");
                stopping.set(true);
            }
        })
    };
    let mut progress: Option<Progress> = None;
    let copied = actix_session_stores::copy_sessions(
        &store_config(settings, 1),
        from,
        to,
        batch,
        |read, total| {
            progress
                .get_or_insert_with(|| Progress::new(total))
                .advance(read);
        },
        || stopping.get(),
    )
    .await;
    listener.abort();
    if let Some(progress) = progress {
        progress.finish();
    }
    copied.map_err(|err| match err.kind() {
        actix_session_stores::ErrorKind::MigrationsPending => {
            anyhow::anyhow!("{err}: run `textdrop migrate` with DATABASE_URL set to it first")
        }
        _ => in_textdrops_words(err),
    })
}

/// The storage `flag` names, else `default` (from the environment); the error never repeats
/// the URL (it may hold a password).
fn storage_url(
    flag: &str,
    given: Option<String>,
    default: Option<DatabaseUrl>,
) -> anyhow::Result<DatabaseUrl> {
    match given {
        Some(raw) => {
            DatabaseUrl::parse(&raw).map_err(|err| anyhow::anyhow!("{flag}: {}", err.problem()))
        }
        None => default.ok_or_else(|| {
            anyhow::anyhow!("{flag} is needed (or PREVIOUS_DATABASE_URL, which it defaults to)")
        }),
    }
}

/// What a maintenance command does about migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Migrations {
    /// Runs the pending ones (`migrate`).
    Run,
    /// Needs every one applied, and changes nothing (`stats`, `cleanup`): a database that
    /// does not exist is not created, one that was never migrated is said so.
    Applied,
}

/// The storage's maintenance side, connected (and migrated, or checked to be); or `None`,
/// after saying so, when it has none (a Redis that answers).
async fn maintenance(
    settings: &Settings,
    migrations: Migrations,
) -> anyhow::Result<Option<Maintenance>> {
    let mut settings = settings.clone();
    settings.database.migrate_on_startup = migrations == Migrations::Run;
    settings.database.previous_url = None;
    if migrations == Migrations::Applied {
        if let Some(plan) = pending(&settings).await? {
            anyhow::ensure!(
                plan.pending.is_empty(),
                "{} migration(s) pending on {} ({}): this command reads and cleans a migrated \
                 database only; check DATABASE_URL, or run `textdrop migrate` first",
                plan.pending.len(),
                plan.database,
                plan.names()
            );
        }
    }
    let storage = crate::storage::connect(&settings, 1).await?;
    let maintenance = storage.maintenance();
    if maintenance.is_none() {
        println!("{NOTHING_TO_MAINTAIN}");
    }
    Ok(maintenance)
}

/// GETs /readyz from the server these settings describe, with plain std networking (the
/// container image has no curl). A wildcard bind address is asked on loopback.
fn healthcheck(host: &str, port: u16) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};

    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "::1",
        other => other,
    };
    let timeout = Duration::from_secs(3);
    let address = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host}:{port} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| anyhow::anyhow!("not ready: cannot connect to {address}: {e}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut answer = String::new();
    stream.take(256).read_to_string(&mut answer)?;
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        println!("ready");
        Ok(())
    } else {
        anyhow::bail!("not ready: /readyz answered `{status}`")
    }
}
