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
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(vars::RUST_LOG.default),
    )
    .init();

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
