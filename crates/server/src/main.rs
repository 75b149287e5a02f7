//! `checkout-server`: serves the Checkout API (default) or runs an operator command.

use std::process::ExitCode;

use clap::Parser;
use server::cli::{self, Cli, Command};
use server::config::{Config, Environment};
use server::startup::Application;

fn main() -> ExitCode {
    // A missing .env is normal; the environment alone is enough.
    let _ = dotenvy::dotenv();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("checkout-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    match args.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        command => match cli::run(command, &config) {
            Ok(serde_json::Value::String(text)) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Ok(value) => {
                println!("{value}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{}", error.to_json());
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(config: Config) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config.clone()).map_err(|e| e.to_string())?;
        if config.environment == Environment::Development {
            let banner = server::development_banner(&config, app.database())?;
            println!("{banner}");
        }
        log::info!(
            "Checkout API listening on {} (port {}), database: {}",
            config.bind,
            app.port(),
            app.database().backend()
        );
        app.run_until_stopped().await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("checkout-server: {error}");
            ExitCode::FAILURE
        }
    }
}
