//! Wiring: configuration → database → repositories → use cases → HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, App, HttpServer};
use api::AppState;
use domain::checkout::{CheckoutService, CheckoutSettings, CheckoutUrls};
use domain::dispatch::WebhookService;
use domain::ports::SystemClock;
use domain::session::SessionService;
use domain::webhook::WebhookSecrets;
use domain::webhook::WebhookSender;
use persistence::{
    CheckoutRepository, Database, DbOptions, KeyUsage, MerchantRepository, SessionRepository, WebhookRepository,
};
use sandbox::Sandbox;

use crate::config::{public_url_of, Config, Environment};
use crate::dev::{DevSecrets, DEV_KID};
use crate::usage::NotingKeyUse;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] persistence::RepoError),
    /// The listener could not be bound.
    #[error("cannot listen on {address} (CHECKOUT_BIND): {source}")]
    Bind {
        /// `CHECKOUT_BIND`.
        address: String,
        /// Why (in use, not an address of this machine, …).
        source: std::io::Error,
    },
    /// The development secrets file could not be used.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The configuration lacks something only now known to be needed.
    #[error("{0}")]
    Config(String),
}

/// Opens the database of `config` and applies pending migrations.
pub fn open_database(config: &Config) -> Result<Database, StartError> {
    let (database, applied) = migrate(config)?;
    if !applied.is_empty() {
        log::info!("applied migrations: {}", applied.join(", "));
    }
    Ok(database)
}

/// Opens the database of `config`, applies pending migrations and says which.
pub fn migrate(config: &Config) -> Result<(Database, Vec<String>), StartError> {
    let database = Database::connect(&DbOptions {
        url: config.database_url.clone(),
        pool_size: config.pool_size,
        lock_wait: config.idempotency_wait,
    })?;
    let applied = database.migrate()?;
    Ok((database, applied))
}

/// Runs one background job on the blocking pool and counts it.
async fn run_job(
    metrics: &api::metrics::Metrics,
    job: &str,
    work: impl FnOnce() -> Result<usize, String> + Send + 'static,
) {
    let outcome = match actix_web::web::block(work).await.map_err(|e| e.to_string()).and_then(|r| r) {
        Ok(rows) => {
            metrics.job_rows.with_label_values(&[job]).inc_by(rows as u64);
            if rows > 0 {
                log::info!(job = job, rows = rows; "{job}: {rows} rows");
            }
            "ok"
        }
        Err(error) => {
            log::warn!(job = job; "{job}: {error}");
            "error"
        }
    };
    metrics.job_runs.with_label_values(&[job, outcome]).inc();
}

/// Every `interval`: frees charges whose process died mid-way, expires sessions past their end
/// (even when nobody looks) and purges idempotency records past retention. Each replica runs these; every change is a compare-and-set
/// or an idempotent delete, so replicas never fight. They stop with the server.
fn spawn_jobs(
    sessions: SessionService,
    checkout: CheckoutService,
    usage: (Arc<KeyUsage>, MerchantRepository),
    metrics: api::metrics::Metrics,
    interval: std::time::Duration,
) {
    actix_web::rt::spawn(async move {
        let mut ticks = actix_web::rt::time::interval(interval);
        loop {
            ticks.tick().await;
            let stuck = sessions.clone();
            run_job(&metrics, "release_stuck_charges", move || {
                stuck.release_stuck_charges(SWEEP_BATCH).map_err(|e| e.to_string())
            })
            .await;
            let sessions = sessions.clone();
            run_job(&metrics, "expire_sessions", move || sessions.expire_due(SWEEP_BATCH).map_err(|e| e.to_string()))
                .await;
            let checkout = checkout.clone();
            run_job(&metrics, "purge_idempotency", move || checkout.purge_idempotency().map_err(|e| e.to_string()))
                .await;
            let (usage, merchants) = usage.clone();
            run_job(&metrics, "record_key_use", move || usage.flush(&merchants).map_err(|e| e.to_string())).await;
        }
    });
}

/// Delivers webhooks: every `interval`, sends what is due (in parallel), records the outcomes.
fn spawn_dispatcher(webhooks: WebhookService, metrics: api::metrics::Metrics, interval: std::time::Duration) {
    actix_web::rt::spawn(async move {
        let mut ticks = actix_web::rt::time::interval(interval);
        loop {
            ticks.tick().await;
            let webhooks = webhooks.clone();
            run_job(&metrics, "deliver_webhooks", move || {
                webhooks.dispatch_once(WEBHOOK_BATCH).map_err(|e| e.to_string())
            })
            .await;
        }
    });
}

/// Most deliveries one dispatch sends.
const WEBHOOK_BATCH: i64 = 50;

/// Most sessions one sweep expires.
const SWEEP_BATCH: i64 = 500;

fn duration(value: std::time::Duration, setting: &str) -> Result<chrono::Duration, StartError> {
    chrono::Duration::from_std(value).map_err(|_| StartError::Config(format!("{setting} is too large")))
}

/// The server's secret: `CHECKOUT_TOKEN_SECRET`, or in development the generated one.
pub fn server_secret(config: &Config, dev: Option<&DevSecrets>) -> Result<domain::secret::Secret, StartError> {
    config
        .token_secret
        .clone()
        .or_else(|| dev.map(DevSecrets::token_secret))
        .ok_or_else(|| StartError::Config("CHECKOUT_TOKEN_SECRET is required in production".into()))
}

/// The webhook use cases over `database`.
pub fn webhook_service(
    config: &Config,
    database: &Database,
    secret: domain::secret::Secret,
) -> Result<WebhookService, StartError> {
    let sender = webhook_http::HttpSender::new(config.webhooks_allow_internal).map_err(StartError::Config)?;
    Ok(webhook_service_with(config, database, secret, Arc::new(sender)))
}

/// The webhook use cases over `database`, sending with `sender`.
pub fn webhook_service_with(
    config: &Config,
    database: &Database,
    secret: domain::secret::Secret,
    sender: Arc<dyn WebhookSender>,
) -> WebhookService {
    WebhookService::new(
        Arc::new(WebhookRepository::new(database.clone())),
        sender,
        Arc::new(SystemClock),
        WebhookSecrets::new(secret),
        config.environment == Environment::Production,
    )
}

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    public_url: String,
    server: Server,
    database: Database,
    usage: (Arc<KeyUsage>, MerchantRepository),
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("port", &self.port).finish_non_exhaustive()
    }
}

impl Application {
    /// Binds the listener (port 0 picks a free port), then opens the database and wires the
    /// services: an address in use is found before anything is created or migrated. Must be
    /// called inside an actix system.
    pub fn build(config: Config) -> Result<Self, StartError> {
        let bind_error = |source| StartError::Bind { address: config.bind.clone(), source };
        let listener = TcpListener::bind(&config.bind).map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        let public_url = if config.public_url_follows_bind { public_url_of(bound) } else { config.public_url.clone() };
        let database = open_database(&config)?;
        let dev = match config.environment {
            Environment::Development => Some(DevSecrets::load_or_create(&config.dev_secrets_file)?),
            Environment::Production => None,
        };
        let token_secret = server_secret(&config, dev.as_ref())?;
        let mut claim_keys = config.claim_keys.clone();
        if let Some(signer) = dev.as_ref().and_then(DevSecrets::claim_signer) {
            claim_keys.insert(DEV_KID, signer.verifying_key());
        }
        let webhooks = webhook_service(&config, &database, token_secret.clone())?;
        let urls = CheckoutUrls::new(&public_url, token_secret);
        let usage = Arc::new(KeyUsage::default());
        let merchants = MerchantRepository::noting_use(database.clone(), usage.clone());
        let sessions = SessionService::new(
            Arc::new(SessionRepository::new(database.clone())),
            Arc::new(Sandbox),
            Arc::new(SystemClock),
        );
        let metrics = api::metrics::Metrics::new();

        let checkout = CheckoutService::new(
            Arc::new(NotingKeyUse::new(Arc::new(CheckoutRepository::new(database.clone())), usage.clone())),
            Arc::new(SystemClock),
            claim_keys,
            urls.clone(),
            CheckoutSettings {
                session_ttl: duration(config.session_ttl, "CHECKOUT_SESSION_TTL_SECONDS")?,
                idempotency_ttl: duration(config.idempotency_ttl, "CHECKOUT_IDEMPOTENCY_TTL_SECONDS")?,
            },
        );
        let usage = (usage, merchants.clone());
        spawn_jobs(sessions.clone(), checkout.clone(), usage.clone(), metrics.clone(), config.sweep_interval);
        spawn_dispatcher(webhooks.clone(), metrics.clone(), config.webhook_poll);
        let state = AppState {
            webhooks,
            limiter: api::ratelimit::RateLimiter::new(config.rate_limit, config.rate_burst).map(Arc::new),
            metrics: metrics.clone(),
            checkout,
            sessions,
            urls,
            merchants: Arc::new(merchants),
            diagnostics: Arc::new(database.clone()),
            require_https: config.environment == Environment::Production,
        };
        let port = bound.port();
        let mut server = HttpServer::new(move || {
            App::new().wrap(middleware::from_fn(api::observe::requests)).configure(api::configure(state.clone()))
        })
        .listen(listener)?;
        server = server.shutdown_timeout(config.shutdown_timeout.as_secs());
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        Ok(Self { port, public_url, server: server.run(), database, usage })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base of every checkout URL: `CHECKOUT_PUBLIC_URL`, or the bound address.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The database the server uses.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (graceful: in-flight requests finish) or a stop via the handle.
    /// Then writes the key uses noted since the last sweep.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let (usage, merchants) = self.usage;
        match actix_web::web::block(move || usage.flush(&merchants)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => log::warn!("record_key_use at shutdown: {error}"),
            Err(error) => log::warn!("record_key_use at shutdown: {error}"),
        }
        served
    }
}
