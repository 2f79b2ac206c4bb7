//! The command line: `serve` (the default), `migrate` and `cleanup`.

use clap::{Parser, Subcommand};

use crate::clock::Clock;
use crate::config::Settings;
use crate::session::cleanup::{self, SweepLimits};
use crate::startup::{connect_and_migrate, Application};
use actix_web::web;
use std::time::Duration;

/// Upload a text file, see it back: anonymous server-side sessions in SQL that clean up after
/// themselves. Configured through the environment and `.env` (see .env.example).
#[derive(Debug, Parser)]
#[command(name = "textdrop", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Run pending migrations, then serve HTTP until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Run pending migrations and exit.
    Migrate,
    /// Delete expired sessions once (in batches), print how many went and how long it took.
    Cleanup,
    /// Print live and expired session counts and the oldest expiry.
    Stats,
}

/// Runs the command `cli` names with `settings`.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            connect_and_migrate(&settings).await?;
            println!(
                "migrations are up to date on {}",
                settings.database_url.location()
            );
        }
        Command::Cleanup => {
            let pool = connect_and_migrate(&settings).await?;
            // The same batched path as the task, but with no time budget: run to the end.
            let limits = SweepLimits {
                time_budget: Duration::MAX,
                ..settings.sweep_limits()
            };
            let report = cleanup::run_cleanup(&pool, &Clock::system(), limits).await?;
            if report.skipped {
                println!("another instance is sweeping right now; run again later");
            }
            println!(
                "deleted {} expired session(s) in {} ms ({} batch(es))",
                report.deleted,
                report.elapsed.as_millis(),
                report.batches
            );
        }
        Command::Stats => {
            let pool = connect_and_migrate(&settings).await?;
            let now = Clock::system().now();
            let counts = web::block(move || -> anyhow::Result<_> {
                Ok(cleanup::count_sessions(&mut *pool.get()?, now)?)
            })
            .await??;
            println!("live sessions:    {}", counts.live);
            println!("expired sessions: {} (waiting for cleanup)", counts.expired);
            match counts.oldest_expiry {
                Some(at) => println!("oldest expiry:    {at} UTC"),
                None => println!("oldest expiry:    none (no rows)"),
            }
        }
    }
    Ok(())
}
