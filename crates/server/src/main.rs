//! `checkout-server`: serves the Checkout API (default) or runs an operator command.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use server::cli::{self, Cli, CliError, Command, Format, Settings};
use server::config::{ConfigError, Environment, LogFormat};
use server::startup::Application;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A missing .env is normal; the environment alone is enough.
    let _ = dotenvy::dotenv();
    let args = match Cli::try_parse() {
        Ok(args) => args,
        Err(help) if matches!(help.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = help.print();
            return ExitCode::SUCCESS;
        }
        Err(missing) if missing.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return fail(&CliError::missing_command(&std::env::args().collect::<Vec<_>>()))
        }
        Err(error) => return fail(&CliError::usage(error.render().to_string())),
    };
    let log_format = match LogFormat::parse(args.settings.lookup("LOG_FORMAT").as_deref()) {
        Ok(format) => format,
        // Refused before any command runs; the whole configuration's problems when it is read.
        Err(why) => return fail(&args.settings.config().err().unwrap_or_else(|| ConfigError(vec![why]).into())),
    };
    init_logging(&args.settings, log_format);
    let outcome = match args.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&args.settings),
        command => cli::run(command, &args.settings).map(|value| print(&value, args.format)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// One JSON line on stderr, and the error's exit status.
fn fail(error: &CliError) -> ExitCode {
    eprintln!("{}", error.to_json());
    ExitCode::from(error.status())
}

fn print(value: &serde_json::Value, format: Format) {
    match (value, format) {
        (serde_json::Value::String(text), _) => println!("{text}"),
        (value, Format::Json) => println!("{value}"),
        (value, Format::Table) => print!("{}", cli::table(value)),
    }
}

/// Checks the whole configuration, then binds, opens the database and serves: a mistake is found
/// before anything is created.
fn serve(settings: &Settings) -> Result<(), CliError> {
    let config = settings.config()?;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config.clone())?;
        if config.environment == Environment::Development {
            let banner = server::development_banner(&config, app.database(), app.public_url())
                .map_err(|e| CliError::new("development_setup", e))?;
            println!("{banner}");
        }
        log::info!(
            "Checkout API listening on {} (port {}), database: {}",
            config.bind,
            app.port(),
            app.database().backend()
        );
        app.run_until_stopped().await.map_err(|e| CliError::new("server_error", e.to_string()))
    })
}

/// `RUST_LOG` filters; `LOG_FORMAT=json` writes one JSON object per line with the record's fields
/// (`request_id`, `route`, `status`, …) beside `timestamp`, `level`, `target` and `message`.
fn init_logging(settings: &Settings, format: LogFormat) {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&settings.lookup("RUST_LOG").unwrap_or_else(|| "info".into()));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            use std::io::Write;
            let mut fields = JsonFields(serde_json::Map::new());
            let _ = record.key_values().visit(&mut fields);
            let mut line = fields.0;
            line.insert("timestamp".into(), domain::time::format_time(chrono::Utc::now()).into());
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
