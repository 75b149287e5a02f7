//! The operator CLI: one binary serves, migrates and administers. Output is JSON on stdout.

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use domain::claim::{ClaimItem, ClaimPayload, ClaimSigner};
use domain::dispatch::EndpointError;
use domain::ids::{ApiKeyId, EndpointId, EventId, MerchantId};
use domain::merchant::{ApiKeySummary, Livemode, Merchant, MerchantStatus};
use domain::ports::MerchantStore;
use domain::secret::ApiKeySecret;
use persistence::MerchantRepository;
use serde_json::{json, Value};

use crate::config::{Config, Environment};
use crate::dev::DevSecrets;
use crate::startup::{migrate, open_database, server_secret, webhook_service};

/// The Fanfare Checkout API server.
#[derive(Debug, Parser)]
#[command(name = "checkout-server", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
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
    /// Make a new signing secret (printed once); the old one keeps signing for 24 hours.
    RotateSecret {
        /// `we_…`
        endpoint_id: String,
    },
    /// List deliveries, newest first.
    Deliveries {
        /// `pending`, `delivered` or `failed`.
        #[arg(long)]
        status: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Send an event again to every endpoint it was for.
    Resend {
        /// `evt_…`
        event_id: String,
    },
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
    /// Base64url private key, as `claim keygen` prints it.
    #[arg(long, env = "CHECKOUT_CLAIM_PRIVATE_KEY", hide_env_values = true)]
    private_key: Option<String>,
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

/// A failed command: printed as JSON on stderr, exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Machine-readable.
    pub error: &'static str,
    /// For people.
    pub message: String,
}

impl CliError {
    fn new(error: &'static str, message: impl Into<String>) -> Self {
        Self { error, message: message.into() }
    }

    /// The JSON printed on stderr.
    pub fn to_json(&self) -> Value {
        json!({ "error": self.error, "message": self.message })
    }
}

fn store_error(error: impl std::fmt::Display) -> CliError {
    CliError::new("database_error", error.to_string())
}

fn merchants(config: &Config) -> Result<MerchantRepository, CliError> {
    Ok(MerchantRepository::new(open_database(config).map_err(store_error)?))
}

fn parse_id<T: std::str::FromStr<Err = domain::ids::InvalidId>>(text: &str) -> Result<T, CliError> {
    text.parse().map_err(|e: domain::ids::InvalidId| CliError::new("invalid_id", e.to_string()))
}

/// Runs one administrative command.
pub fn run(command: Command, config: &Config) -> Result<Value, CliError> {
    match command {
        Command::Serve => Err(CliError::new("usage", "serve is not an administrative command")),
        Command::Migrate => {
            let (database, applied) = migrate(config).map_err(store_error)?;
            Ok(json!({ "status": "migrated", "database": database.backend(), "applied": applied }))
        }
        Command::Merchant(MerchantCommand::Create { name }) => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(CliError::new("invalid_name", "a merchant name is 1 to 200 characters"));
            }
            let merchant = create_merchant(&merchants(config)?, name)?;
            Ok(json!(merchant))
        }
        Command::Merchant(MerchantCommand::Suspend { merchant_id }) => {
            set_status(config, &merchant_id, MerchantStatus::Suspended)
        }
        Command::Merchant(MerchantCommand::Activate { merchant_id }) => {
            set_status(config, &merchant_id, MerchantStatus::Active)
        }
        Command::Key(KeyCommand::Create { merchant, live }) => {
            let merchant_id = parse_id(&merchant)?;
            let livemode = if live { Livemode::Live } else { Livemode::Test };
            let (summary, secret) = create_key(&merchants(config)?, merchant_id, livemode)?;
            let mut out = json!(summary);
            out["secret"] = json!(secret.secret().expose());
            Ok(out)
        }
        Command::Key(KeyCommand::Revoke { key_id }) => {
            let id: ApiKeyId = parse_id(&key_id)?;
            let revoked = merchants(config)?.revoke_api_key(id, Utc::now()).map_err(store_error)?;
            revoked.map(|key| json!(key)).ok_or_else(|| CliError::new("not_found", format!("no key {key_id}")))
        }
        Command::Claim(ClaimCommand::Keygen) => {
            let signer = ClaimSigner::generate();
            Ok(json!({
                "kid": signer.kid(),
                "privateKey": signer.private_key().expose(),
                "publicKey": signer.public_key(),
                "claimKeysEntry": format!("{}:{}", signer.kid(), signer.public_key()),
            }))
        }
        Command::Claim(ClaimCommand::Issue(args)) => issue_claim(args, config).map(Value::String),
        Command::Webhook(command) => webhook(command, config),
    }
}

fn webhook(command: WebhookCommand, config: &Config) -> Result<Value, CliError> {
    let database = open_database(config).map_err(store_error)?;
    let dev = match config.environment {
        Environment::Development => Some(DevSecrets::load_or_create(&config.dev_secrets_file).map_err(store_error)?),
        Environment::Production => None,
    };
    let secret = server_secret(config, dev.as_ref()).map_err(|e| CliError::new("configuration", e.to_string()))?;
    let webhooks = webhook_service(config, &database, secret, std::sync::Arc::new(domain::ports::SystemClock))
        .map_err(|e| CliError::new("configuration", e.to_string()))?;
    let endpoint_error = |e: EndpointError| match e {
        EndpointError::NotFound => CliError::new("not_found", "no such merchant or endpoint"),
        EndpointError::Store(e) => store_error(e),
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
            let endpoints = webhooks.endpoints(None).map_err(store_error)?;
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
        WebhookCommand::RotateSecret { endpoint_id } => {
            let id: EndpointId = parse_id(&endpoint_id)?;
            let (endpoint, secret) = webhooks.rotate_secret(id).map_err(endpoint_error)?;
            let mut out = api::endpoint_json(&endpoint, Some(&secret));
            out["previousSecretValidUntil"] = json!(endpoint.previous_until.map(domain::checkout::format_time));
            Ok(out)
        }
        WebhookCommand::Deliveries { status, limit } => {
            Ok(json!(webhooks.deliveries(status.as_deref(), limit).map_err(store_error)?))
        }
        WebhookCommand::Resend { event_id } => {
            let id: EventId = parse_id(&event_id)?;
            let resent = webhooks.resend(id).map_err(store_error)?;
            if resent == 0 {
                return Err(CliError::new("not_found", format!("no deliveries of {event_id}")));
            }
            Ok(json!({ "eventId": event_id, "deliveries": resent }))
        }
    }
}

fn set_status(config: &Config, merchant_id: &str, status: MerchantStatus) -> Result<Value, CliError> {
    let id = parse_id(merchant_id)?;
    let merchant = merchants(config)?.set_merchant_status(id, status).map_err(store_error)?;
    merchant.map(|m| json!(m)).ok_or_else(|| CliError::new("not_found", format!("no merchant {merchant_id}")))
}

/// Creates an active merchant.
pub fn create_merchant(store: &dyn MerchantStore, name: &str) -> Result<Merchant, CliError> {
    let merchant = Merchant {
        id: MerchantId::new(),
        name: name.to_owned(),
        status: MerchantStatus::Active,
        created_at: Utc::now(),
    };
    store.create_merchant(&merchant).map_err(store_error)?;
    Ok(merchant)
}

/// Creates a key for a merchant; the secret is returned once.
pub fn create_key(
    store: &dyn MerchantStore,
    merchant_id: MerchantId,
    livemode: Livemode,
) -> Result<(ApiKeySummary, ApiKeySecret), CliError> {
    let secret = ApiKeySecret::generate(livemode);
    let summary = ApiKeySummary {
        id: ApiKeyId::new(),
        merchant_id,
        livemode,
        hint: secret.hint(),
        created_at: Utc::now(),
        revoked_at: None,
    };
    if !store.create_api_key(&summary, &secret.hash()).map_err(store_error)? {
        return Err(CliError::new("not_found", format!("no merchant {merchant_id}")));
    }
    Ok((summary, secret))
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

fn issue_claim(args: IssueArgs, config: &Config) -> Result<String, CliError> {
    let signer = match (args.kid, args.private_key) {
        (Some(kid), Some(private_key)) => ClaimSigner::from_private(kid, &private_key)
            .ok_or_else(|| CliError::new("invalid_key", "the private key is not 32 bytes of base64url"))?,
        (None, None) if config.environment == Environment::Development => {
            DevSecrets::load_or_create(&config.dev_secrets_file)
                .ok()
                .and_then(|dev| dev.claim_signer())
                .ok_or_else(|| CliError::new("invalid_key", "the development claim key could not be read"))?
        }
        _ => {
            return Err(CliError::new(
                "usage",
                "give both --kid and --private-key (in development, neither uses the development key)",
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
    Ok(signer.sign(&payload))
}
