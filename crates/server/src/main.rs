//! `checkout-server`: serves the Checkout API (default) or runs an operator command.

use std::process::ExitCode;

use clap::Parser;
use server::cli::{self, Cli, Command};
use server::config::{Config, Environment};
use server::startup::Application;

fn main() -> ExitCode {
    // A missing .env is normal; the environment alone is enough.
    let _ = dotenvy::dotenv();
    init_logging();
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

/// `RUST_LOG` filters; `LOG_FORMAT=json` writes one JSON object per line with the record's fields
/// (`request_id`, `route`, `status`, …) beside `timestamp`, `level`, `target` and `message`.
fn init_logging() {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.format(|buf, record| {
            use std::io::Write;
            let mut fields = JsonFields(serde_json::Map::new());
            let _ = record.key_values().visit(&mut fields);
            let mut line = fields.0;
            line.insert("timestamp".into(), domain::checkout::format_time(chrono::Utc::now()).into());
            line.insert("level".into(), record.level().as_str().into());
            line.insert("target".into(), record.target().into());
            line.insert("message".into(), record.args().to_string().into());
            writeln!(buf, "{}", serde_json::Value::Object(line))
        });
    }
    builder.init();
}

struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for JsonFields {
    fn visit_pair(&mut self, key: log::kv::Key<'kvs>, value: log::kv::Value<'kvs>) -> Result<(), log::kv::Error> {
        let json = if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else if let Some(f) = value.to_f64() {
            f.into()
        } else if let Some(b) = value.to_bool() {
            b.into()
        } else {
            value.to_string().into()
        };
        self.0.insert(key.to_string(), json);
        Ok(())
    }
}
