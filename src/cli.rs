//! The command line: `serve` (the default), `migrate` and `cleanup`.

use clap::{Parser, Subcommand};

use crate::clock::Clock;
use crate::config::Settings;
use crate::session::cleanup;
use crate::startup::{connect_and_migrate, Application};

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
    /// Delete expired sessions once, print how many went, and exit.
    Cleanup,
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
            let report = cleanup::run_cleanup(&pool, &Clock::system()).await?;
            println!(
                "deleted {} expired session(s) in {} ms",
                report.deleted,
                report.elapsed.as_millis()
            );
        }
    }
    Ok(())
}
