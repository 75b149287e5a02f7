//! Wiring: configuration → database → repositories → use cases → HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, App, HttpServer};
use api::views::WireEnvelopes;
use api::AppState;
use domain::checkout::{Authenticator, CheckoutService, CheckoutSettings, CheckoutUrls};
use domain::merchants::MerchantService;
use domain::orders::Orders;
use domain::page::PageService;
use domain::ports::PaymentProvider;
use domain::ports::WebhookSender;
use domain::ports::{Clock, SystemClock};
use domain::sweeper::Sweeper;
use domain::webhook::WebhookSecrets;
use domain::webhooks::{Lanes, WebhookService};
use persistence::{
    CheckoutRepository, Database, DbOptions, KeyUsage, MerchantRepository, OrderRepository, WebhookRepository,
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
        queue_timeout: config.queue_timeout,
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

/// The background jobs of one replica, also run on demand (tests, tools).
#[derive(Clone, Debug)]
pub struct Jobs {
    sweeper: Sweeper,
    checkout: CheckoutService,
    webhooks: WebhookService,
    /// Key uses noted in memory, and where to write them.
    usage: (Arc<KeyUsage>, MerchantRepository),
}

impl Jobs {
    /// Resolves stuck charges and refunds stray ones (asking the provider), expires sessions past
    /// their end and purges idempotency records past retention: one sweep. Returns the rows each
    /// job changed.
    pub fn sweep(&self) -> Result<[usize; 3], String> {
        Ok([
            self.sweeper.release_stuck_charges(SWEEP_BATCH).map_err(|e| e.to_string())?,
            expire_backlog(&self.sweeper, std::time::Duration::MAX)?,
            self.checkout.purge_idempotency().map_err(|e| e.to_string())?,
        ])
    }

    /// The webhook dispatcher's use cases.
    pub fn webhooks(&self) -> &WebhookService {
        &self.webhooks
    }

    /// Writes the key uses noted since the last time; returns how many keys.
    pub fn record_key_use(&self) -> Result<usize, String> {
        let (usage, merchants) = &self.usage;
        usage.flush(merchants).map_err(|e| e.to_string())
    }
}

/// Every `interval`: resolves charges whose answer was lost, expires sessions past their end (even
/// when nobody looks), purges idempotency records past retention and writes the key uses noted. Each replica runs these;
/// every change applies to the version it read, or is an idempotent delete, so replicas never
/// fight. They stop with the server.
fn spawn_jobs(jobs: Jobs, metrics: api::metrics::Metrics, interval: std::time::Duration) {
    actix_web::rt::spawn(async move {
        let mut ticks = actix_web::rt::time::interval(interval);
        loop {
            ticks.tick().await;
            let stuck = jobs.sweeper.clone();
            run_job(&metrics, "release_stuck_charges", move || {
                stuck.release_stuck_charges(SWEEP_BATCH).map_err(|e| e.to_string())
            })
            .await;
            let sweeper = jobs.sweeper.clone();
            run_job(&metrics, "expire_sessions", move || expire_backlog(&sweeper, interval / 2)).await;
            let checkout = jobs.checkout.clone();
            run_job(&metrics, "purge_idempotency", move || checkout.purge_idempotency().map_err(|e| e.to_string()))
                .await;
            let usage = jobs.clone();
            run_job(&metrics, "record_key_use", move || usage.record_key_use()).await;
        }
    });
}

/// Delivers webhooks. Every `interval` it asks which endpoints have a delivery due, and serves
/// each (that this replica is not serving already) on a worker of its own: the worker sends that
/// endpoint's deliveries one after another, in order, until none is due or its slice is over.
/// Endpoints proceed in parallel; an endpoint that answers gets its next event as soon as it
/// acknowledged the last. Endpoints that answered slowly lately are served on a few workers of
/// their own ([`Lanes`]), so however many there are, they never hold up one that answers.
fn spawn_dispatcher(webhooks: WebhookService, metrics: api::metrics::Metrics, interval: std::time::Duration) {
    use std::cell::RefCell;
    use std::rc::Rc;

    actix_web::rt::spawn(async move {
        let lanes = Rc::new(RefCell::new(Lanes::new(FAST_WORKERS, SLOW_WORKERS)));
        let mut ticks = actix_web::rt::time::interval(interval);
        loop {
            ticks.tick().await;
            let (room, busy) = (lanes.borrow().room(), lanes.borrow().busy());
            if room == 0 {
                continue;
            }
            let lister = webhooks.clone();
            let limit = i64::try_from(room + busy).unwrap_or(i64::MAX);
            let due = match actix_web::web::block(move || lister.due_endpoints(limit)).await {
                Ok(Ok(due)) => due,
                Ok(Err(error)) => {
                    log::warn!(job = "deliver_webhooks"; "deliver_webhooks: {error}");
                    metrics.job_runs.with_label_values(&["deliver_webhooks", "error"]).inc();
                    continue;
                }
                Err(error) => {
                    log::warn!(job = "deliver_webhooks"; "deliver_webhooks: {error}");
                    continue;
                }
            };
            for endpoint in due {
                if lanes.borrow_mut().admit(endpoint, webhooks.now()).is_none() {
                    continue;
                }
                let (webhooks, metrics, lanes) = (webhooks.clone(), metrics.clone(), lanes.clone());
                actix_web::rt::spawn(async move {
                    let worker = webhooks.clone();
                    let drained = actix_web::web::block(move || worker.drain(endpoint, WEBHOOK_DRAIN, slice())).await;
                    let drained = match drained {
                        Ok(Ok(drained)) => {
                            metrics.job_rows.with_label_values(&["deliver_webhooks"]).inc_by(drained.attempts as u64);
                            metrics.job_runs.with_label_values(&["deliver_webhooks", "ok"]).inc();
                            Some(drained)
                        }
                        Ok(Err(error)) => {
                            log::warn!(job = "deliver_webhooks"; "deliver_webhooks: {error}");
                            metrics.job_runs.with_label_values(&["deliver_webhooks", "error"]).inc();
                            None
                        }
                        Err(error) => {
                            log::warn!(job = "deliver_webhooks"; "deliver_webhooks: {error}");
                            None
                        }
                    };
                    lanes.borrow_mut().finished(endpoint, drained, webhooks.now());
                });
            }
        }
    });
}

/// Endpoints one replica serves at once on the fast lane (each on a blocking thread while it sends).
const FAST_WORKERS: usize = 48;

/// Endpoints one replica serves at once on the slow lane.
const SLOW_WORKERS: usize = 16;

/// Deliveries a worker sends to one endpoint before it hands the endpoint back.
const WEBHOOK_DRAIN: usize = 1_000;

/// How long a worker serves one endpoint before it hands it back, so that endpoints with long
/// queues share the workers with the rest (longest waiting first).
fn slice() -> chrono::Duration {
    chrono::Duration::seconds(2)
}

/// Most sessions or charges one batch of a sweep handles.
const SWEEP_BATCH: i64 = 500;

/// Expires sessions past their end, a batch at a time, until none is due or `budget` has gone (a
/// backlog, after downtime or a drop, is worked off at once rather than a batch a sweep). Expiries
/// are written a few at a time, each write short, so creates interleave with them.
fn expire_backlog(sweeper: &Sweeper, budget: std::time::Duration) -> Result<usize, String> {
    let started = std::time::Instant::now();
    let mut expired = 0;
    loop {
        let batch = sweeper.expire_due(SWEEP_BATCH).map_err(|e| e.to_string())?;
        expired += batch;
        if (batch as i64) < SWEEP_BATCH || started.elapsed() >= budget {
            return Ok(expired);
        }
    }
}

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
    clock: Arc<dyn Clock>,
) -> Result<WebhookService, StartError> {
    let sender = webhook_http::HttpSender::with_timeout(config.webhooks_allow_internal, config.webhook_timeout)
        .map_err(StartError::Config)?;
    Ok(webhook_service_with(config, database, secret, Arc::new(sender), clock))
}

/// The webhook use cases over `database`, sending with `sender`.
pub fn webhook_service_with(
    config: &Config,
    database: &Database,
    secret: domain::secret::Secret,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
) -> WebhookService {
    WebhookService::new(
        Arc::new(WebhookRepository::new(database.clone())),
        sender,
        clock,
        WebhookSecrets::new(secret),
        Arc::new(WireEnvelopes),
        config.environment == Environment::Production,
    )
    .allowing_internal_hosts(config.webhooks_allow_internal)
}

/// The operator's merchant and key use cases over `database`.
pub fn merchant_service(database: &Database, clock: Arc<dyn Clock>) -> MerchantService {
    MerchantService::new(Arc::new(MerchantRepository::new(database.clone())), clock)
}

/// What the server talks to besides its database and webhook endpoints. The default is the
/// sandbox provider and the wall clock; tests put their own in their place.
#[derive(Clone)]
pub struct Adapters {
    /// Charges cards.
    pub provider: Arc<dyn PaymentProvider>,
    /// Tells the time to every rule (expiry, claims, retries).
    pub clock: Arc<dyn Clock>,
}

impl Default for Adapters {
    fn default() -> Self {
        Self { provider: Arc::new(Sandbox::new()), clock: Arc::new(SystemClock) }
    }
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters").field("provider", &self.provider.name()).finish()
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    public_url: String,
    server: Server,
    database: Database,
    jobs: Jobs,
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
        Self::build_with(config, Adapters::default())
    }

    /// As [`Self::build`], with the given adapters.
    pub fn build_with(config: Config, adapters: Adapters) -> Result<Self, StartError> {
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
        let webhooks = webhook_service(&config, &database, token_secret.clone(), adapters.clock.clone())?;
        let urls = CheckoutUrls::new(&public_url, token_secret);
        let usage = Arc::new(KeyUsage::default());
        let merchants = MerchantRepository::noting_use(database.clone(), usage.clone());
        let orders = Orders::new(
            Arc::new(OrderRepository::new(database.clone())),
            adapters.provider,
            adapters.clock.clone(),
            Arc::new(WireEnvelopes),
            i32::try_from(config.pay_attempts_max).unwrap_or(i32::MAX),
        );
        let metrics = api::metrics::Metrics::new();
        let limits = Arc::new(api::ratelimit::Limits::new(&config.limits(), metrics.clone()));
        log::info!("request limits: {limits}");

        let checkout = CheckoutService::new(
            Arc::new(NotingKeyUse::new(
                Arc::new(CheckoutRepository::new(database.clone(), Arc::new(WireEnvelopes))),
                usage.clone(),
            )),
            adapters.clock.clone(),
            claim_keys,
            urls.clone(),
            CheckoutSettings {
                session_ttl: duration(config.session_ttl, "CHECKOUT_SESSION_TTL_SECONDS")?,
                idempotency_ttl: duration(config.idempotency_ttl, "CHECKOUT_IDEMPOTENCY_TTL_SECONDS")?,
            },
            Arc::new(WireEnvelopes),
        )
        .with_limit(limits.clone());
        let jobs = Jobs {
            sweeper: Sweeper::new(orders.clone()),
            checkout: checkout.clone(),
            webhooks: webhooks.clone(),
            usage: (usage, merchants.clone()),
        };
        spawn_jobs(jobs.clone(), metrics.clone(), config.sweep_interval);
        spawn_dispatcher(webhooks.clone(), metrics.clone(), config.webhook_poll);
        let state = AppState {
            webhooks,
            limits,
            metrics: metrics.clone(),
            checkout,
            pages: PageService::new(orders.clone()),
            orders,
            urls,
            authenticator: Authenticator::new(Arc::new(merchants), adapters.clock.clone()),
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
        Ok(Self { port, public_url, server: server.run(), database, jobs })
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

    /// The background jobs, to run on demand.
    pub fn jobs(&self) -> Jobs {
        self.jobs.clone()
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (graceful: in-flight requests finish) or a stop via the handle.
    /// Then writes the key uses noted since the last sweep.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let jobs = self.jobs;
        match actix_web::web::block(move || jobs.record_key_use()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => log::warn!("record_key_use at shutdown: {error}"),
            Err(error) => log::warn!("record_key_use at shutdown: {error}"),
        }
        served
    }
}
