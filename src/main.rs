//! Entry point: load `.env`, start logging, parse the command line, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use textdrop::cli::{self, Cli};
use textdrop::config::{vars, Settings};

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            eprintln!("textdrop: cannot read .env: {err}");
            return ExitCode::FAILURE;
        }
    }
    let mut logger = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(vars::RUST_LOG.default),
    );
    // Whatever RUST_LOG says, the database drivers and TLS log at most info: their debug and
    // trace lines quote statements' parameters (session state, files) and TLS handshakes.
    for module in cli::QUIET_MODULES {
        logger.filter_module(module, log::LevelFilter::Info);
    }
    logger.init();

    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("textdrop: invalid configuration: {err}");
            return ExitCode::FAILURE;
        }
    };
    match cli::run(cli, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("textdrop: {err:#}");
            ExitCode::FAILURE
        }
    }
}
