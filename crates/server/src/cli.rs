//! The operator CLI: one binary serves, migrates and administers. Output is JSON on stdout
//! (`--format table` for people); every failure is one JSON line `{"error", "message"}` on stderr
//! with a stable exit status ([`exit`]).

use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use domain::claim::{ClaimItem, ClaimKeys, ClaimPayload, ClaimSigner};
use domain::ids::{ApiKeyId, EndpointId, EventId, MerchantId};
use domain::livemode::Livemode;
use domain::merchant::{ApiKeySummary, MerchantStatus};
use domain::merchants::{MerchantError, MerchantService};
use domain::ports::WebhookSender;
use domain::ports::{StoreError, SystemClock};
use domain::webhook::EventType;
use domain::webhooks::EndpointError;
use persistence::RepoError;
use serde_json::{json, Value};

use crate::config::{Config, ConfigError, Environment};
use crate::dev::DevSecrets;
use crate::startup::{merchant_service, migrate, open_database, server_secret, webhook_service_with, StartError};

/// Exit statuses: stable, for scripts.
pub mod exit {
    /// The command failed (no such merchant, key or endpoint; a refused value; a failing webhook
    /// endpoint; an address in use; …).
    pub const FAILURE: u8 = 1;
    /// The command line or the configuration is wrong; nothing was done.
    pub const USAGE: u8 = 2;
    /// The database cannot be reached; retrying later may succeed.
    pub const UNAVAILABLE: u8 = 3;
}

const EXIT_STATUSES: &str = "\
Output: JSON on stdout (--format table for people). A failure prints one JSON line
{\"error\": \"…\", \"message\": \"…\"} on stderr and exits with:
  1  the command failed (not found, refused value, failing endpoint, address in use, …)
  2  usage or configuration error: nothing was done
  3  the database is unreachable: retry later";

/// The Fanfare Checkout API server.
#[derive(Debug, Parser)]
#[command(name = "checkout-server", version, about, after_help = EXIT_STATUSES)]
pub struct Cli {
    /// The configuration (each setting also from its environment variable or `.env`).
    #[command(flatten)]
    pub settings: Settings,
    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON value (the default: for scripts).
    Json,
    /// An aligned table (for people).
    Table,
}

/// Every setting, as a flag or its environment variable (see the README's Configuration for the
/// defaults). Values are checked by [`Config`], all problems at once.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Configuration (flag or environment variable; .env is read too)")]
pub struct Settings {
    /// sqlite://PATH or postgres://user@host/db [default: sqlite://data/checkout.db]
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
    /// Connections per pool, 1-1000 [default: 10]
    #[arg(long, global = true, env = "DATABASE_POOL_SIZE", value_name = "N")]
    database_pool_size: Option<String>,
    /// Listen address, host:port [default: 127.0.0.1:4805]
    #[arg(long, global = true, env = "CHECKOUT_BIND", value_name = "HOST:PORT")]
    bind: Option<String>,
    /// Base of every checkoutUrl [default: http://localhost:PORT, PORT from CHECKOUT_BIND]
    #[arg(long, global = true, env = "CHECKOUT_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Trusted claim-verifying keys: kid:publicKey[,kid:publicKey…] (required in production)
    #[arg(long, global = true, env = "CHECKOUT_CLAIM_KEYS", value_name = "LIST")]
    claim_keys: Option<String>,
    /// Server secret, at least 32 characters (required in production; prefer the environment)
    #[arg(long, global = true, env = "CHECKOUT_TOKEN_SECRET", hide_env_values = true, value_name = "SECRET")]
    token_secret: Option<String>,
    /// How long a checkout session lives, 1-604800 [default: 1800]
    #[arg(long, global = true, env = "CHECKOUT_SESSION_TTL_SECONDS", value_name = "SECONDS")]
    session_ttl_seconds: Option<String>,
    /// How long an idempotency key's first answer is replayed, 1-2592000 [default: 86400]
    #[arg(long, global = true, env = "CHECKOUT_IDEMPOTENCY_TTL_SECONDS", value_name = "SECONDS")]
    idempotency_ttl_seconds: Option<String>,
    /// Longest wait for a held idempotency key or a database lock, 1-60000 [default: 5000]
    #[arg(long, global = true, env = "CHECKOUT_IDEMPOTENCY_WAIT_MS", value_name = "MS")]
    idempotency_wait_ms: Option<String>,
    /// Longest wait for a database connection: a request that would wait longer is answered 503 at
    /// once, 1-60000 [default: 2000]
    #[arg(long, global = true, env = "CHECKOUT_QUEUE_TIMEOUT_MS", value_name = "MS")]
    queue_timeout_ms: Option<String>,
    /// How often the webhook dispatcher looks for endpoints with deliveries due, 10-86400000
    /// [default: 200]
    #[arg(long, global = true, env = "CHECKOUT_WEBHOOK_POLL_MS", value_name = "MS")]
    webhook_poll_ms: Option<String>,
    /// How long one webhook delivery may take in all, 1-60 (connecting at most 5) [default: 15]
    #[arg(long, global = true, env = "CHECKOUT_WEBHOOK_TIMEOUT_SECONDS", value_name = "SECONDS")]
    webhook_timeout_seconds: Option<String>,
    /// Declined cards after which a checkout closes for good, 1-100 [default: 5]
    #[arg(long, global = true, env = "CHECKOUT_PAY_ATTEMPTS_MAX", value_name = "N")]
    pay_attempts_max: Option<String>,
    /// Longest claim lifetime accepted, exp - iat, 1-604800 [default: 3600]
    #[arg(long, global = true, env = "CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS", value_name = "SECONDS")]
    claim_max_lifetime_seconds: Option<String>,
    /// Whether webhooks may reach private addresses: true or false (any case), 1 or 0 [default:
    /// development true, production false]
    #[arg(long, global = true, env = "CHECKOUT_WEBHOOKS_ALLOW_INTERNAL", value_name = "BOOL")]
    webhooks_allow_internal: Option<String>,
    /// How often each replica runs its background jobs, 1-86400 [default: 15]
    #[arg(long, global = true, env = "CHECKOUT_SWEEP_INTERVAL_SECONDS", value_name = "SECONDS")]
    sweep_interval_seconds: Option<String>,
    /// development or production [default: development]
    #[arg(long = "env", global = true, env = "CHECKOUT_ENV", value_name = "ENV")]
    environment: Option<String>,
    /// Development only: where generated secrets are kept [default: data/dev-secrets.json]
    #[arg(long, global = true, env = "CHECKOUT_DEV_SECRETS_FILE", value_name = "PATH")]
    dev_secrets_file: Option<String>,
    /// HTTP worker threads, 1-1024 [default: one per core]
    #[arg(long, global = true, env = "CHECKOUT_WORKERS", value_name = "N")]
    workers: Option<String>,
    /// Requests a second per merchant and mode and replica, 0 for no limit [default: production
    /// 200, development 0]
    #[arg(long, global = true, env = "CHECKOUT_RATE_LIMIT_PER_SECOND", value_name = "N")]
    rate_limit_per_second: Option<String>,
    /// Requests a merchant may make at once, at least 1 while the rate is on [default: twice the rate]
    #[arg(long, global = true, env = "CHECKOUT_RATE_LIMIT_BURST", value_name = "N")]
    rate_limit_burst: Option<String>,
    /// Failed authentications a minute per client address, 0 for no limit [default: production
    /// 30, development 0]
    #[arg(long, global = true, env = "CHECKOUT_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", value_name = "N")]
    rate_limit_auth_failures_per_minute: Option<String>,
    /// Failed authentications a client address may make at once [default: the rate]
    #[arg(long, global = true, env = "CHECKOUT_RATE_LIMIT_AUTH_FAILURES_BURST", value_name = "N")]
    rate_limit_auth_failures_burst: Option<String>,
    /// Checkout page form posts a minute per client address, 0 for no limit [default: production
    /// 60, development 0]
    #[arg(long, global = true, env = "CHECKOUT_RATE_LIMIT_PAGE_POSTS_PER_MINUTE", value_name = "N")]
    rate_limit_page_posts_per_minute: Option<String>,
    /// Page form posts a client address may make at once [default: the rate]
    #[arg(long, global = true, env = "CHECKOUT_RATE_LIMIT_PAGE_POSTS_BURST", value_name = "N")]
    rate_limit_page_posts_burst: Option<String>,
    /// Proxies whose X-Forwarded-For names the client: addresses or networks, comma-separated
    #[arg(long, global = true, env = "CHECKOUT_TRUSTED_PROXIES", value_name = "LIST")]
    trusted_proxies: Option<String>,
    /// How long SIGTERM/SIGINT waits for in-flight requests, 0-3600 [default: 30]
    #[arg(long, global = true, env = "CHECKOUT_SHUTDOWN_TIMEOUT_SECONDS", value_name = "SECONDS")]
    shutdown_timeout_seconds: Option<String>,
    /// Log filter, env_logger syntax [default: info]
    #[arg(long = "log", global = true, env = "RUST_LOG", value_name = "FILTER")]
    rust_log: Option<String>,
    /// text or json [default: text]
    #[arg(long, global = true, env = "LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<String>,
}

impl Settings {
    /// Each setting with its variable's name.
    pub fn named(&self) -> [(&'static str, &Option<String>); 29] {
        [
            ("DATABASE_URL", &self.database_url),
            ("DATABASE_POOL_SIZE", &self.database_pool_size),
            ("CHECKOUT_BIND", &self.bind),
            ("CHECKOUT_PUBLIC_URL", &self.public_url),
            ("CHECKOUT_CLAIM_KEYS", &self.claim_keys),
            ("CHECKOUT_TOKEN_SECRET", &self.token_secret),
            ("CHECKOUT_SESSION_TTL_SECONDS", &self.session_ttl_seconds),
            ("CHECKOUT_IDEMPOTENCY_TTL_SECONDS", &self.idempotency_ttl_seconds),
            ("CHECKOUT_IDEMPOTENCY_WAIT_MS", &self.idempotency_wait_ms),
            ("CHECKOUT_QUEUE_TIMEOUT_MS", &self.queue_timeout_ms),
            ("CHECKOUT_WEBHOOK_POLL_MS", &self.webhook_poll_ms),
            ("CHECKOUT_WEBHOOK_TIMEOUT_SECONDS", &self.webhook_timeout_seconds),
            ("CHECKOUT_PAY_ATTEMPTS_MAX", &self.pay_attempts_max),
            ("CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS", &self.claim_max_lifetime_seconds),
            ("CHECKOUT_WEBHOOKS_ALLOW_INTERNAL", &self.webhooks_allow_internal),
            ("CHECKOUT_SWEEP_INTERVAL_SECONDS", &self.sweep_interval_seconds),
            ("CHECKOUT_ENV", &self.environment),
            ("CHECKOUT_DEV_SECRETS_FILE", &self.dev_secrets_file),
            ("CHECKOUT_WORKERS", &self.workers),
            ("CHECKOUT_RATE_LIMIT_PER_SECOND", &self.rate_limit_per_second),
            ("CHECKOUT_RATE_LIMIT_BURST", &self.rate_limit_burst),
            ("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", &self.rate_limit_auth_failures_per_minute),
            ("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_BURST", &self.rate_limit_auth_failures_burst),
            ("CHECKOUT_RATE_LIMIT_PAGE_POSTS_PER_MINUTE", &self.rate_limit_page_posts_per_minute),
            ("CHECKOUT_RATE_LIMIT_PAGE_POSTS_BURST", &self.rate_limit_page_posts_burst),
            ("CHECKOUT_TRUSTED_PROXIES", &self.trusted_proxies),
            ("CHECKOUT_SHUTDOWN_TIMEOUT_SECONDS", &self.shutdown_timeout_seconds),
            ("RUST_LOG", &self.rust_log),
            ("LOG_FORMAT", &self.log_format),
        ]
    }

    /// The value of a setting (flag, else variable), `None` when unset or empty. A variable that
    /// has no flag here is read from the environment.
    pub fn lookup(&self, name: &str) -> Option<String> {
        match self.named().into_iter().find(|(known, _)| *known == name) {
            Some((_, value)) => value.clone(),
            None => std::env::var(name).ok(),
        }
        .filter(|value| !value.is_empty())
    }

    /// The configuration these settings make, checked.
    pub fn config(&self) -> Result<Config, CliError> {
        Config::from_lookup(|name| self.lookup(name)).map_err(CliError::from)
    }
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage merchants.
    #[command(subcommand)]
    Merchant(MerchantCommand),
    /// Manage merchants' secret API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Make claim-signing keys and sign claims (for development and tests).
    #[command(subcommand)]
    Claim(ClaimCommand),
    /// Manage webhook endpoints and deliveries.
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

/// `config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check every setting, touching nothing, and print the effective configuration (secrets
    /// redacted); exit status 2 and every problem when something is wrong.
    Check,
}

/// `webhook …`
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register an endpoint; its signing secret (whsec_…) is printed once.
    Add {
        /// `mer_…`
        #[arg(long)]
        merchant: String,
        /// Where deliveries are posted (https in production).
        #[arg(long)]
        url: String,
        /// An event type to receive (repeat; default: all).
        #[arg(long = "event")]
        events: Vec<String>,
        /// Receive live-mode events instead of test-mode ones.
        #[arg(long)]
        live: bool,
    },
    /// List endpoints (not removed).
    List {
        /// Only this merchant's.
        #[arg(long)]
        merchant: Option<String>,
    },
    /// Remove an endpoint.
    Remove {
        /// `we_…`
        endpoint_id: String,
    },
    /// Enable an endpoint (one a 410 Gone disabled, say): it receives new events again.
    /// Deliveries cancelled while it was disabled stay cancelled; resend them with `webhook resend`.
    Enable {
        /// `we_…`
        endpoint_id: String,
    },
    /// Disable an endpoint: it receives nothing until enabled, and its pending deliveries end as
    /// cancelled.
    Disable {
        /// `we_…`
        endpoint_id: String,
    },
    /// Make a new signing secret (printed once); the old one keeps signing for 24 hours.
    RotateSecret {
        /// `we_…`
        endpoint_id: String,
    },
    /// List deliveries, newest first.
    Deliveries {
        /// Only deliveries in this status.
        #[arg(long, value_enum)]
        status: Option<DeliveryStatus>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Send an event again to every endpoint it was for.
    Resend {
        /// `evt_…`
        event_id: String,
    },
    /// Send a signed sample event to an endpoint now and show its answer (status, the start of
    /// its body, latency). Nothing is stored; exit status 1 unless it answers 2xx.
    Test {
        /// `we_…`
        endpoint_id: String,
        /// The sample's event type.
        #[arg(long = "type", default_value = "order.completed", value_name = "EVENT_TYPE")]
        event_type: String,
    },
}

/// Where a webhook delivery stands, as `webhook deliveries --status` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Answered 2xx.
    Delivered,
    /// Out of attempts, or answered 410 Gone.
    Failed,
    /// Its endpoint was removed or disabled before it was delivered.
    Cancelled,
}

impl DeliveryStatus {
    /// As stored.
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
}

/// `merchant …`
#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Create an active merchant.
    Create {
        /// Shown to consumers on checkout pages.
        #[arg(long)]
        name: String,
    },
    /// List merchants, oldest first.
    List,
    /// Suspend a merchant: all its keys answer 403 until it is activated.
    Suspend {
        /// `mer_…`
        merchant_id: String,
    },
    /// Activate a suspended merchant.
    Activate {
        /// `mer_…`
        merchant_id: String,
    },
}

/// `key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a secret key; the secret is printed once and only its hash is kept.
    Create {
        /// `mer_…`
        #[arg(long)]
        merchant: String,
        /// A live-mode key (`sk_live_…`) instead of a test-mode one.
        #[arg(long)]
        live: bool,
    },
    /// List keys (never their secrets): mode, hint, created, revoked, expiry and last use.
    List {
        /// Only this merchant's (`mer_…`).
        #[arg(long)]
        merchant: Option<String>,
    },
    /// Replace a key: a new one (printed once) for the same merchant and mode, while the old one
    /// keeps working until the expiry, then answers 403. A key is rolled once: an expiring or
    /// expired key is refused (revoke it to end it now, or roll the key that replaced it).
    Roll {
        /// `key_…`
        key_id: String,
        /// How long the old key keeps working: `0` (now), or a number with s, m, h or d (`24h`).
        #[arg(long, value_name = "DURATION")]
        expires_in: String,
    },
    /// Revoke a key: it answers 403 from now on.
    Revoke {
        /// `key_…`
        key_id: String,
    },
}

/// `claim …`
#[derive(Debug, Subcommand)]
pub enum ClaimCommand {
    /// Make an Ed25519 key pair; trust it with CHECKOUT_CLAIM_KEYS=kid:publicKey.
    Keygen,
    /// Sign a claim and print the compact JWS.
    Issue(IssueArgs),
}

/// `claim issue …`
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Key id of the signing key (default in development: the development key).
    #[arg(long)]
    kid: Option<String>,
    /// Base64url private key, as `claim keygen` prints it (may start with `-`). Prefer the
    /// variable or --private-key-file: a command line is kept in shell history.
    #[arg(long, env = "CHECKOUT_CLAIM_PRIVATE_KEY", hide_env_values = true, allow_hyphen_values = true)]
    private_key: Option<String>,
    /// A file holding the private key (surrounding whitespace ignored); wins over the others.
    #[arg(long, value_name = "PATH")]
    private_key_file: Option<std::path::PathBuf>,
    /// The merchant that may redeem the claim.
    #[arg(long)]
    merchant: String,
    /// ISO 4217 currency code.
    #[arg(long, default_value = "usd")]
    currency: String,
    /// `sku=…,name=…,quantity=…,unitAmount=…` (repeat for more items).
    #[arg(long = "item", required = true)]
    items: Vec<String>,
    /// Lifetime of the claim.
    #[arg(long, default_value_t = 900)]
    ttl_seconds: i64,
    /// The consumer (`sub`).
    #[arg(long, default_value = "cus_cli")]
    subject: String,
    /// The claim id (`jti`); random by default.
    #[arg(long)]
    jti: Option<String>,
}

/// A failed command: one JSON line on stderr, exit status [`CliError::status`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Machine-readable.
    pub error: &'static str,
    /// For people, on one line.
    pub message: String,
    /// More fields for the JSON (e.g. a webhook endpoint's answer).
    pub details: serde_json::Map<String, Value>,
}

/// Puts a message that may span lines (libpq's do) on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl CliError {
    /// A failure with a code and a message.
    pub fn new(error: &'static str, message: impl Into<String>) -> Self {
        Self { error, message: one_line(&message.into()), details: serde_json::Map::new() }
    }

    /// A wrong command line.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new("usage", message)
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_owned(), value);
        self
    }

    /// The exit status: see [`exit`].
    pub fn status(&self) -> u8 {
        match self.error {
            "usage" | "configuration" => exit::USAGE,
            "database_unavailable" => exit::UNAVAILABLE,
            _ => exit::FAILURE,
        }
    }

    /// A command that needs a subcommand got none (`checkout-server merchant`): a short usage
    /// error naming the subcommands, rather than the whole help on one line. `args` is the
    /// command line, program name first.
    pub fn missing_command(args: &[String]) -> Self {
        use clap::CommandFactory;
        let mut command = Cli::command();
        let mut path = vec!["checkout-server".to_owned()];
        for arg in args.iter().skip(1) {
            if let Some(sub) = command.find_subcommand(arg).cloned() {
                path.push(arg.clone());
                command = sub;
            }
        }
        let names: Vec<&str> = command.get_subcommands().filter(|c| !c.is_hide_set()).map(|c| c.get_name()).collect();
        let path = path.join(" ");
        Self::usage(format!("`{path}` needs a command: {}; `{path} --help` says what each does", names.join(", ")))
            .with("commands", json!(names))
    }

    /// The JSON printed on stderr.
    pub fn to_json(&self) -> Value {
        let mut out = self.details.clone();
        out.insert("error".into(), json!(self.error));
        out.insert("message".into(), json!(self.message));
        Value::Object(out)
    }
}

impl From<ConfigError> for CliError {
    fn from(ConfigError(problems): ConfigError) -> Self {
        CliError::new("configuration", format!("invalid configuration: {}", problems.join("; ")))
            .with("problems", json!(problems))
    }
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(why) => {
                CliError::new("database_unavailable", format!("the database is unavailable: {why}"))
            }
            other => CliError::new("database_error", other.to_string()),
        }
    }
}

impl From<StartError> for CliError {
    fn from(error: StartError) -> Self {
        match error {
            StartError::Database(RepoError::Unavailable(why)) => {
                CliError::new("database_unavailable", format!("cannot reach the database (DATABASE_URL): {why}"))
            }
            StartError::Database(other) => CliError::new("database_error", other.to_string()),
            bind @ StartError::Bind { .. } => CliError::new("address_unavailable", bind.to_string()),
            StartError::Config(why) => CliError::new("configuration", why),
            StartError::Io(why) => CliError::new("io_error", why.to_string()),
        }
    }
}

impl From<MerchantError> for CliError {
    fn from(error: MerchantError) -> Self {
        match error {
            MerchantError::InvalidName(why) => CliError::new("invalid_name", why.to_string()),
            not_found @ (MerchantError::MerchantNotFound(_) | MerchantError::KeyNotFound(_)) => {
                CliError::new("not_found", not_found.to_string())
            }
            revoked @ MerchantError::KeyRevoked(_) => CliError::new("key_revoked", revoked.to_string()),
            rolled @ MerchantError::KeyAlreadyRolled { id, expires_at, .. } => {
                CliError::new("key_already_rolled", rolled.to_string())
                    .with("keyId", json!(id.to_string()))
                    .with("expiresAt", json!(domain::time::format_time(expires_at)))
            }
            MerchantError::Store(error) => CliError::from(error),
        }
    }
}

/// The merchant use cases over the configured database, on the wall clock.
fn merchants(config: &Config) -> Result<MerchantService, CliError> {
    Ok(merchant_service(&open_database(config)?, Arc::new(SystemClock)))
}

fn parse_id<T: std::str::FromStr<Err = domain::ids::InvalidId>>(text: &str) -> Result<T, CliError> {
    text.parse().map_err(|e: domain::ids::InvalidId| CliError::new("invalid_id", e.to_string()))
}

/// `0`, `now`, or a whole number followed by `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" || text == "now" {
        return Some(Duration::zero());
    }
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let number: i64 = number.parse().ok().filter(|n| (0..=10_000_000).contains(n))?;
    match unit {
        "s" => Some(Duration::seconds(number)),
        "m" => Some(Duration::minutes(number)),
        "h" => Some(Duration::hours(number)),
        "d" => Some(Duration::days(number)),
        _ => None,
    }
}

/// Runs one command other than `serve`. The configuration is read only by commands that need it,
/// so `claim keygen` works before production is configured.
pub fn run(command: Command, settings: &Settings) -> Result<Value, CliError> {
    match command {
        Command::Serve => Err(CliError::usage("serve is not an administrative command")),
        Command::Migrate => {
            let (database, applied) = migrate(&settings.config()?)?;
            Ok(json!({ "status": "migrated", "database": database.backend(), "applied": applied }))
        }
        Command::Config(ConfigCommand::Check) => Ok(settings.config()?.describe()),
        Command::Merchant(MerchantCommand::Create { name }) => {
            Ok(json!(merchants(&settings.config()?)?.create_merchant(&name)?))
        }
        Command::Merchant(MerchantCommand::List) => Ok(json!(merchants(&settings.config()?)?.merchants()?)),
        Command::Merchant(MerchantCommand::Suspend { merchant_id }) => {
            set_status(&settings.config()?, &merchant_id, MerchantStatus::Suspended)
        }
        Command::Merchant(MerchantCommand::Activate { merchant_id }) => {
            set_status(&settings.config()?, &merchant_id, MerchantStatus::Active)
        }
        Command::Key(command) => key(command, &settings.config()?),
        Command::Claim(ClaimCommand::Keygen) => {
            let signer = ClaimSigner::generate();
            Ok(json!({
                "kid": signer.kid(),
                "privateKey": signer.private_key().expose(),
                "publicKey": signer.public_key(),
                "claimKeysEntry": format!("{}:{}", signer.kid(), signer.public_key()),
            }))
        }
        Command::Claim(ClaimCommand::Issue(args)) => issue_claim(args, settings).map(Value::String),
        Command::Webhook(command) => webhook(command, &settings.config()?),
    }
}

/// A key as the CLI prints it: `livemode` a boolean, as the API and `webhook list` write it,
/// with `mode` (`test`/`live`) beside it for people.
fn key_json(key: &ApiKeySummary) -> Value {
    let mut out = json!(key);
    out["livemode"] = json!(key.livemode.is_live());
    out["mode"] = json!(key.livemode);
    out
}

fn key(command: KeyCommand, config: &Config) -> Result<Value, CliError> {
    match command {
        KeyCommand::Create { merchant, live } => {
            let merchant_id = parse_id(&merchant)?;
            let livemode = if live { Livemode::Live } else { Livemode::Test };
            let (summary, secret) = merchants(config)?.create_key(merchant_id, livemode)?;
            let mut out = key_json(&summary);
            out["secret"] = json!(secret.secret().expose());
            Ok(out)
        }
        KeyCommand::List { merchant } => {
            let merchant: Option<MerchantId> = merchant.as_deref().map(parse_id).transpose()?;
            Ok(merchants(config)?.keys(merchant)?.iter().map(key_json).collect())
        }
        KeyCommand::Roll { key_id, expires_in } => {
            let id: ApiKeyId = parse_id(&key_id)?;
            let wait = parse_duration(&expires_in).ok_or_else(|| {
                CliError::usage(format!(
                    "--expires-in must be 0 or a number with s, m, h or d (24h), not {expires_in:?}"
                ))
            })?;
            let rolled = merchants(config)?.roll_key(id, wait)?;
            let mut out = key_json(&rolled.key);
            out["secret"] = json!(rolled.secret.secret().expose());
            out["previous"] = key_json(&rolled.previous);
            Ok(out)
        }
        KeyCommand::Revoke { key_id } => {
            let id: ApiKeyId = parse_id(&key_id)?;
            Ok(key_json(&merchants(config)?.revoke_key(id)?))
        }
    }
}

/// The HTTP sender, keeping the start of the last answer's body for `webhook test`.
struct Capturing {
    sender: webhook_http::HttpSender,
    body: Mutex<Option<String>>,
}

/// How much of an endpoint's answer `webhook test` shows.
const ANSWER_SHOWN: usize = 512;

impl WebhookSender for Capturing {
    fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> Result<u16, String> {
        let answer = self.sender.exchange(url, headers, body, ANSWER_SHOWN)?;
        if let Ok(mut kept) = self.body.lock() {
            *kept = Some(answer.body);
        }
        Ok(answer.status)
    }
}

fn webhook(command: WebhookCommand, config: &Config) -> Result<Value, CliError> {
    let database = open_database(config)?;
    let dev = match config.environment {
        Environment::Development => Some(DevSecrets::load_or_create(&config.dev_secrets_file).map_err(StartError::Io)?),
        Environment::Production => None,
    };
    let secret = server_secret(config, dev.as_ref())?;
    let sender = webhook_http::HttpSender::with_timeout(config.webhooks_allow_internal, config.webhook_timeout)
        .map_err(StartError::Config)?;
    let capture = Arc::new(Capturing { sender, body: Mutex::new(None) });
    let webhooks =
        webhook_service_with(config, &database, secret, capture.clone(), Arc::new(domain::ports::SystemClock));
    let endpoint_error = |e: EndpointError| match e {
        EndpointError::NotFound => CliError::new("not_found", "no such merchant or endpoint"),
        EndpointError::Store(e) => CliError::from(e),
        other => CliError::new("invalid_endpoint", other.to_string()),
    };
    match command {
        WebhookCommand::Add { merchant, url, events, live } => {
            let merchant: MerchantId = parse_id(&merchant)?;
            let livemode = if live { Livemode::Live } else { Livemode::Test };
            let (endpoint, secret) =
                webhooks.add_endpoint(merchant, livemode, &url, &events).map_err(endpoint_error)?;
            Ok(api::endpoint_json(&endpoint, Some(&secret)))
        }
        WebhookCommand::List { merchant } => {
            let merchant: Option<MerchantId> = merchant.as_deref().map(parse_id).transpose()?;
            let endpoints = webhooks.endpoints(None)?;
            let shown: Vec<Value> = endpoints
                .iter()
                .filter(|e| merchant.is_none_or(|m| e.merchant_id == m))
                .map(|e| api::endpoint_json(e, None))
                .collect();
            Ok(json!(shown))
        }
        WebhookCommand::Remove { endpoint_id } => {
            let id: EndpointId = parse_id(&endpoint_id)?;
            webhooks.remove_endpoint(id, None).map_err(endpoint_error)?;
            Ok(json!({ "id": endpoint_id, "removed": true }))
        }
        WebhookCommand::Enable { endpoint_id } => {
            let id: EndpointId = parse_id(&endpoint_id)?;
            Ok(api::endpoint_json(&webhooks.enable_endpoint(id, None).map_err(endpoint_error)?, None))
        }
        WebhookCommand::Disable { endpoint_id } => {
            let id: EndpointId = parse_id(&endpoint_id)?;
            Ok(api::endpoint_json(&webhooks.disable_endpoint(id, None).map_err(endpoint_error)?, None))
        }
        WebhookCommand::RotateSecret { endpoint_id } => {
            let id: EndpointId = parse_id(&endpoint_id)?;
            let (endpoint, secret) = webhooks.rotate_secret(id).map_err(endpoint_error)?;
            let mut out = api::endpoint_json(&endpoint, Some(&secret));
            out["previousSecretValidUntil"] = json!(endpoint.previous_until.map(domain::time::format_time));
            Ok(out)
        }
        WebhookCommand::Deliveries { status, limit } => {
            Ok(json!(webhooks.deliveries(status.map(DeliveryStatus::as_str), limit)?))
        }
        WebhookCommand::Resend { event_id } => {
            let id: EventId = parse_id(&event_id)?;
            let resent = webhooks.resend(id)?;
            if resent == 0 {
                return Err(CliError::new("not_found", format!("no deliveries of {event_id}")));
            }
            Ok(json!({ "eventId": event_id, "deliveries": resent }))
        }
        WebhookCommand::Test { endpoint_id, event_type } => {
            let id: EndpointId = parse_id(&endpoint_id)?;
            let kind = EventType::parse(&event_type).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                CliError::usage(format!("--type must be one of {}, not {event_type:?}", known.join(", ")))
            })?;
            let (due, answer, took) = webhooks.send_test_event(id, kind).map_err(endpoint_error)?;
            let body = capture.body.lock().ok().and_then(|mut kept| kept.take());
            let mut out = json!({
                "endpointId": endpoint_id,
                "url": due.endpoint.url,
                "eventId": due.event_id.to_string(),
                "type": kind.as_str(),
                "latencyMs": took.as_millis(),
            });
            match answer {
                Ok(status) if (200..300).contains(&status) => {
                    out["status"] = json!(status);
                    out["body"] = json!(body);
                    Ok(out)
                }
                Ok(status) => {
                    out["status"] = json!(status);
                    out["body"] = json!(body);
                    let message = format!("the endpoint answered {status} in {} ms", took.as_millis());
                    Err(CliError::new("webhook_failed", message).with("answer", out))
                }
                Err(why) => {
                    out["status"] = Value::Null;
                    out["failure"] = json!(why);
                    Err(CliError::new("webhook_failed", format!("no answer: {why}")).with("answer", out))
                }
            }
        }
    }
}

fn set_status(config: &Config, merchant_id: &str, status: MerchantStatus) -> Result<Value, CliError> {
    let id = parse_id(merchant_id)?;
    Ok(json!(merchants(config)?.set_status(id, status)?))
}

fn parse_item(text: &str) -> Result<ClaimItem, CliError> {
    let bad = |why: String| CliError::new("invalid_item", format!("--item {text:?}: {why}"));
    let (mut sku, mut name, mut quantity, mut unit_amount) = (None, None, None, None);
    for pair in text.split(',') {
        let (key, value) = pair.split_once('=').ok_or_else(|| bad(format!("{pair:?} is not key=value")))?;
        let number = || value.trim().parse::<i64>().map_err(|_| bad(format!("{key} must be a whole number")));
        match key.trim() {
            "sku" => sku = Some(value.trim().to_owned()),
            "name" => name = Some(value.trim().to_owned()),
            "quantity" => quantity = Some(number()?),
            "unitAmount" => unit_amount = Some(number()?),
            other => return Err(bad(format!("unknown field {other:?}"))),
        }
    }
    match (sku, name, quantity, unit_amount) {
        (Some(sku), Some(name), Some(quantity), Some(unit_amount)) => {
            Ok(ClaimItem { sku, name, quantity, unit_amount })
        }
        _ => Err(bad("sku, name, quantity and unitAmount are all required".into())),
    }
}

fn issue_claim(args: IssueArgs, settings: &Settings) -> Result<String, CliError> {
    let private_key = match &args.private_key_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::new("invalid_key", format!("--private-key-file {}: {e}", path.display())))?,
        ),
        None => args.private_key,
    };
    let signer = match (args.kid, private_key) {
        (Some(kid), Some(private_key)) => ClaimSigner::from_private(kid, private_key.trim())
            .ok_or_else(|| CliError::new("invalid_key", "the private key is not 32 bytes of base64url"))?,
        (None, None) => {
            if settings.lookup("CHECKOUT_ENV").is_some_and(|env| env.trim() == "production") {
                return Err(CliError::usage("give --kid and the private key: production has no development key"));
            }
            let config = settings.config()?;
            DevSecrets::load_or_create(&config.dev_secrets_file)
                .ok()
                .and_then(|dev| dev.claim_signer())
                .ok_or_else(|| CliError::new("invalid_key", "the development claim key could not be read"))?
        }
        _ => {
            return Err(CliError::usage(
                "give --kid and the private key (--private-key, --private-key-file or \
                 CHECKOUT_CLAIM_PRIVATE_KEY); in development, neither uses the development key",
            ))
        }
    };
    let merchant: MerchantId = parse_id(&args.merchant)?;
    let items = args.items.iter().map(|i| parse_item(i)).collect::<Result<Vec<_>, _>>()?;
    let mut payload = ClaimPayload {
        sub: args.subject,
        currency: args.currency,
        ..ClaimPayload::new(merchant, items, Utc::now(), args.ttl_seconds)
    };
    if let Some(jti) = args.jti {
        payload.jti = jti;
    }
    let claim = signer.sign(&payload);
    // Checked as the server checks it (its rules and lifetime), so that nothing is signed that
    // the server would refuse.
    let mut keys = ClaimKeys::default()
        .with_max_lifetime(crate::config::claim_max_lifetime(|name| settings.lookup(name)).map_err(CliError::from)?);
    keys.insert(signer.kid(), signer.verifying_key());
    keys.verify(&claim, merchant, Utc::now()).map_err(|why| {
        CliError::new("invalid_claim", format!("the server would refuse this claim ({}): {why}", why.reason()))
            .with("reason", json!(why.reason()))
    })?;
    Ok(claim)
}

/// Columns shown first in a table, in this order; others follow alphabetically.
const LEADING_COLUMNS: [&str; 9] = ["id", "name", "merchantId", "mode", "livemode", "status", "hint", "url", "events"];

/// `value` as an aligned text table: a list of objects as one row each, an object as one row per
/// field. Empty values show as `-`.
pub fn table(value: &Value) -> String {
    let cell = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    let rows: Vec<Vec<String>> = match value {
        Value::Array(items) => {
            let mut columns: Vec<String> = Vec::new();
            for item in items.iter().filter_map(Value::as_object) {
                for key in item.keys() {
                    if !columns.contains(key) {
                        columns.push(key.clone());
                    }
                }
            }
            let rank = |c: &String| LEADING_COLUMNS.iter().position(|l| l == c).unwrap_or(LEADING_COLUMNS.len());
            columns.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
            let body = items.iter().map(|item| columns.iter().map(|c| cell(item.get(c))).collect());
            std::iter::once(columns.clone()).chain(body).collect()
        }
        Value::Object(fields) => fields
            .iter()
            .flat_map(|(key, value)| match value {
                // One level of nesting (config check's settings) reads better as dotted rows.
                Value::Object(inner) => {
                    inner.iter().map(|(k, v)| vec![format!("{key}.{k}"), cell(Some(v))]).collect::<Vec<_>>()
                }
                other => vec![vec![key.clone(), cell(Some(other))]],
            })
            .collect(),
        other => vec![vec![cell(Some(other))]],
    };
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("0"), Some(Duration::zero()));
        assert_eq!(parse_duration("90s"), Some(Duration::seconds(90)));
        assert_eq!(parse_duration("24h"), Some(Duration::hours(24)));
        assert_eq!(parse_duration("7d"), Some(Duration::days(7)));
        for wrong in ["", "h", "-1h", "1.5h", "1w", "soon"] {
            assert_eq!(parse_duration(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn tables_lead_with_the_id_and_align_columns() {
        let rows = json!([{"hint": "abcd", "id": "key_1", "revokedAt": null}, {"hint": "ef", "id": "key_22"}]);
        assert_eq!(table(&rows), "id      hint  revokedAt\nkey_1   abcd  -\nkey_22  ef    -\n");
        assert_eq!(table(&json!({"a": 1, "b": "x"})), "a  1\nb  x\n");
        assert_eq!(table(&json!({"s": {"K": null}, "z": [1]})), "s.K  -\nz    [1]\n");
    }
}
