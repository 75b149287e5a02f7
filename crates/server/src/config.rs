//! Configuration from the environment (and `.env`), checked once at start-up: every problem is
//! found here, before anything is created, bound or migrated.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use domain::claim::{ClaimKeyError, ClaimKeys};
use domain::secret::Secret;

/// Development (the default) or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local work: `http` URLs allowed, development secrets made on first use.
    Development,
    /// Real merchants: every safety setting is required.
    Production,
}

/// Everything the server reads from its environment. Its `Debug` hides the database password.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`
    pub database_url: String,
    /// `DATABASE_POOL_SIZE`
    pub pool_size: u32,
    /// `CHECKOUT_BIND`
    pub bind: String,
    /// `CHECKOUT_PUBLIC_URL`, or (unset) `http://localhost:<port>` of the bound address
    pub public_url: String,
    /// Whether `public_url` was derived from `CHECKOUT_BIND` (so it follows the port really bound).
    pub public_url_follows_bind: bool,
    /// `CHECKOUT_CLAIM_KEYS`, refusing claims that live longer than
    /// `CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS` (default 3600)
    pub claim_keys: ClaimKeys,
    /// `CHECKOUT_SESSION_TTL_SECONDS`
    pub session_ttl: Duration,
    /// `CHECKOUT_IDEMPOTENCY_TTL_SECONDS`
    pub idempotency_ttl: Duration,
    /// `CHECKOUT_RATE_LIMIT_PER_SECOND`: requests per merchant and mode (0: no limit)
    pub rate_limit: u32,
    /// `CHECKOUT_RATE_LIMIT_BURST`
    pub rate_burst: u32,
    /// `CHECKOUT_WEBHOOK_POLL_MS`
    pub webhook_poll: Duration,
    /// `CHECKOUT_WEBHOOK_TIMEOUT_SECONDS`: how long one delivery may take, all in
    pub webhook_timeout: Duration,
    /// `CHECKOUT_PAY_ATTEMPTS_MAX`: declined cards after which a checkout closes
    pub pay_attempts_max: u32,
    /// `CHECKOUT_WEBHOOKS_ALLOW_INTERNAL` (development default: yes; production: no)
    pub webhooks_allow_internal: bool,
    /// `CHECKOUT_SHUTDOWN_TIMEOUT_SECONDS`
    pub shutdown_timeout: Duration,
    /// `CHECKOUT_SWEEP_INTERVAL_SECONDS`
    pub sweep_interval: Duration,
    /// `CHECKOUT_TOKEN_SECRET`
    pub token_secret: Option<Secret>,
    /// `CHECKOUT_IDEMPOTENCY_WAIT_MS`
    pub idempotency_wait: Duration,
    /// `CHECKOUT_QUEUE_TIMEOUT_MS`
    pub queue_timeout: Duration,
    /// `CHECKOUT_ENV`
    pub environment: Environment,
    /// `CHECKOUT_DEV_SECRETS_FILE`
    pub dev_secrets_file: String,
    /// `CHECKOUT_WORKERS` (default: one per core)
    pub workers: Option<usize>,
    /// `CHECKOUT_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE` and `…_BURST`: failed authentications per
    /// client address, a minute and at once (0: no limit)
    pub auth_failure_limit: (u32, u32),
    /// `CHECKOUT_RATE_LIMIT_PAGE_POSTS_PER_MINUTE` and `…_BURST`: checkout page form posts per
    /// client address, a minute and at once (0: no limit)
    pub page_post_limit: (u32, u32),
    /// `CHECKOUT_TRUSTED_PROXIES`: peers whose `X-Forwarded-For` names the client
    pub trusted_proxies: api::ratelimit::Networks,
    /// `LOG_FORMAT`: text (the default) or json
    pub log_format: LogFormat,
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `env_logger`'s text lines (the default).
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `text` or `json` in any case; unset is text. The error names the setting.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None => Ok(LogFormat::Text),
            Some(text) if text.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(text) if text.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(other) => Err(format!("LOG_FORMAT must be text or json, not {other:?}")),
        }
    }

    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &persistence::redacted_url(&self.database_url))
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// Settings that are missing, malformed or unsafe; each names its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// Shortest `CHECKOUT_TOKEN_SECRET` accepted.
pub const MIN_TOKEN_SECRET_LEN: usize = 32;

/// Longest `CHECKOUT_WEBHOOK_TIMEOUT_SECONDS`: a delivery's lease (90 s) must outlast its send.
pub const MAX_WEBHOOK_TIMEOUT_SECONDS: u64 = 60;

/// Most connections per pool (`DATABASE_POOL_SIZE`): more only exhausts the database server.
pub const MAX_POOL_SIZE: u32 = 1000;

/// Most HTTP worker threads (`CHECKOUT_WORKERS`).
pub const MAX_WORKERS: usize = 1024;

/// Shortest `CHECKOUT_WEBHOOK_POLL_MS`: faster only polls the database for nothing.
pub const MIN_WEBHOOK_POLL_MS: u64 = 10;

/// The values each whole-number setting may take, by variable: `(name, min, max)`. Everything
/// outside is refused by name, so nothing is clamped silently and no value reaches a library that
/// would panic on it (actix's workers, r2d2's timeouts, timers that overflow).
pub const RANGES: &[(&str, u64, u64)] = &[
    ("DATABASE_POOL_SIZE", 1, MAX_POOL_SIZE as u64),
    ("CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS", 1, 7 * 86_400),
    ("CHECKOUT_SESSION_TTL_SECONDS", 1, 7 * 86_400),
    ("CHECKOUT_IDEMPOTENCY_TTL_SECONDS", 1, 30 * 86_400),
    ("CHECKOUT_IDEMPOTENCY_WAIT_MS", 1, 60_000),
    ("CHECKOUT_QUEUE_TIMEOUT_MS", 1, 60_000),
    ("CHECKOUT_WEBHOOK_POLL_MS", MIN_WEBHOOK_POLL_MS, 86_400_000),
    ("CHECKOUT_WEBHOOK_TIMEOUT_SECONDS", 1, MAX_WEBHOOK_TIMEOUT_SECONDS),
    ("CHECKOUT_PAY_ATTEMPTS_MAX", 1, 100),
    ("CHECKOUT_SWEEP_INTERVAL_SECONDS", 1, 86_400),
    ("CHECKOUT_SHUTDOWN_TIMEOUT_SECONDS", 0, 3_600),
    ("CHECKOUT_WORKERS", 1, MAX_WORKERS as u64),
    ("CHECKOUT_RATE_LIMIT_PER_SECOND", 0, 1_000_000),
    ("CHECKOUT_RATE_LIMIT_BURST", 0, 2_000_000),
    ("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", 0, 1_000_000),
    ("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_BURST", 0, 1_000_000),
    ("CHECKOUT_RATE_LIMIT_PAGE_POSTS_PER_MINUTE", 0, 1_000_000),
    ("CHECKOUT_RATE_LIMIT_PAGE_POSTS_BURST", 0, 1_000_000),
];

/// A whole-number setting: its default when unset, else its value if it lies in its [`RANGES`];
/// otherwise the problem (naming the range) is noted and the default stands in.
fn number<T>(get: &impl Fn(&str) -> Option<String>, name: &str, default: T, problems: &mut Vec<String>) -> T
where
    T: std::str::FromStr + Copy,
    u64: TryFrom<T>,
{
    let Some(text) = get(name) else { return default };
    let (min, max) =
        RANGES.iter().find(|(known, ..)| *known == name).map_or((0, u64::MAX), |&(_, min, max)| (min, max));
    match text.trim().parse::<T>() {
        Ok(value) if u64::try_from(value).is_ok_and(|v| (min..=max).contains(&v)) => value,
        _ => {
            problems.push(format!("{name} must be a whole number from {min} to {max}, not {text:?}"));
            default
        }
    }
}

/// A yes/no setting: `true`/`false` in any case, or `1`/`0`; `default` when unset.
fn boolean(get: &impl Fn(&str) -> Option<String>, name: &str, default: bool, problems: &mut Vec<String>) -> bool {
    match get(name).as_deref().map(str::trim) {
        None => default,
        Some("1") => true,
        Some("0") => false,
        Some(text) if text.eq_ignore_ascii_case("true") => true,
        Some(text) if text.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            problems.push(format!("{name} must be true or false (any case), or 1 or 0, not {other:?}"));
            default
        }
    }
}

/// Production default of `CHECKOUT_RATE_LIMIT_PER_SECOND`.
pub const DEFAULT_MERCHANT_RATE: u32 = 200;
/// Production default of `CHECKOUT_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE`.
pub const DEFAULT_AUTH_FAILURES: u32 = 30;
/// Production default of `CHECKOUT_RATE_LIMIT_PAGE_POSTS_PER_MINUTE`.
pub const DEFAULT_PAGE_POSTS: u32 = 60;

/// `CHECKOUT_RATE_LIMIT_<NAME>_PER_MINUTE` and `…_BURST` (which defaults to a minute's worth).
fn per_minute(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u32,
    problems: &mut Vec<String>,
) -> (u32, u32) {
    let rate_name = format!("CHECKOUT_RATE_LIMIT_{name}_PER_MINUTE");
    let rate = number(get, &rate_name, default, problems);
    let burst_name = format!("CHECKOUT_RATE_LIMIT_{name}_BURST");
    let burst = number(get, &burst_name, rate, problems);
    burst_of_a_limit_that_is_on(&rate_name, rate, &burst_name, burst, problems);
    (rate, burst)
}

/// A limit that is on lets at least one request through at once: a burst of 0 would refuse
/// everything, so it is refused rather than quietly read as 1.
fn burst_of_a_limit_that_is_on(rate_name: &str, rate: u32, burst_name: &str, burst: u32, problems: &mut Vec<String>) {
    if rate > 0 && burst == 0 {
        problems.push(format!(
            "{burst_name} must be at least 1 while {rate_name} is on ({rate}); set {rate_name}=0 to turn the limit off"
        ));
    }
}

/// `CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS` alone, for `claim issue`, which signs claims without
/// needing the rest of the configuration (production's keys, say).
pub fn claim_max_lifetime(get: impl Fn(&str) -> Option<String>) -> Result<i64, ConfigError> {
    let mut problems = Vec::new();
    let max: u32 = number(
        &get,
        "CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS",
        domain::claim::DEFAULT_MAX_LIFETIME_SECONDS as u32,
        &mut problems,
    );
    if problems.is_empty() {
        Ok(i64::from(max))
    } else {
        Err(ConfigError(problems))
    }
}

impl Config {
    /// The request limits these settings ask for.
    pub fn limits(&self) -> api::ratelimit::LimitSettings {
        use api::ratelimit::{LimitSettings, Rate};
        LimitSettings {
            merchant: Rate::per_second(self.rate_limit, self.rate_burst),
            auth_failures: Rate::per_minute(self.auth_failure_limit.0, self.auth_failure_limit.1),
            page_posts: Rate::per_minute(self.page_post_limit.0, self.page_post_limit.1),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `get`, reporting every problem at once.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let environment = match get("CHECKOUT_ENV").as_deref().map(str::trim) {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                problems.push(format!("CHECKOUT_ENV must be development or production, not {other:?}"));
                Environment::Development
            }
        };
        let claim_keys = ClaimKeys::parse(&get("CHECKOUT_CLAIM_KEYS").unwrap_or_default()).unwrap_or_else(
            |ClaimKeyError { entry, reason }| {
                problems.push(format!("CHECKOUT_CLAIM_KEYS: entry {entry:?}: {reason}"));
                ClaimKeys::default()
            },
        );
        let claim_max_lifetime: u32 = number(
            &get,
            "CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS",
            domain::claim::DEFAULT_MAX_LIFETIME_SECONDS as u32,
            &mut problems,
        );
        let claim_keys = claim_keys.with_max_lifetime(i64::from(claim_max_lifetime));
        let session_ttl: u64 = number(&get, "CHECKOUT_SESSION_TTL_SECONDS", 1800, &mut problems);
        let idempotency_ttl: u64 = number(&get, "CHECKOUT_IDEMPOTENCY_TTL_SECONDS", 86_400, &mut problems);
        // Limits are on by default in production, off in development.
        let on = |production: u32| if environment == Environment::Production { production } else { 0 };
        let rate_limit: u32 = number(&get, "CHECKOUT_RATE_LIMIT_PER_SECOND", on(DEFAULT_MERCHANT_RATE), &mut problems);
        let rate_burst: u32 = number(&get, "CHECKOUT_RATE_LIMIT_BURST", rate_limit.saturating_mul(2), &mut problems);
        burst_of_a_limit_that_is_on(
            "CHECKOUT_RATE_LIMIT_PER_SECOND",
            rate_limit,
            "CHECKOUT_RATE_LIMIT_BURST",
            rate_burst,
            &mut problems,
        );
        let bind = get("CHECKOUT_BIND").unwrap_or_else(|| "127.0.0.1:4805".into());
        let bound = match bind.to_socket_addrs().map(|mut all| all.next()) {
            Ok(Some(address)) => Some(address),
            _ => {
                problems.push(format!("CHECKOUT_BIND must be host:port (e.g. 127.0.0.1:4805), not {bind:?}"));
                None
            }
        };
        let public_url_follows_bind = get("CHECKOUT_PUBLIC_URL").is_none();
        let public_url = match get("CHECKOUT_PUBLIC_URL") {
            Some(url) => url,
            None => bound.map_or_else(|| "http://localhost:4805".into(), public_url_of),
        };
        if let Err(why) = check_public_url(&public_url) {
            problems.push(format!("CHECKOUT_PUBLIC_URL must be {why}, not {public_url:?}"));
        }
        let lower = public_url.to_ascii_lowercase();
        let token_secret = get("CHECKOUT_TOKEN_SECRET").map(Secret::new);
        if token_secret.as_ref().is_some_and(|s| s.expose().len() < MIN_TOKEN_SECRET_LEN) {
            problems.push(format!("CHECKOUT_TOKEN_SECRET must be at least {MIN_TOKEN_SECRET_LEN} characters"));
        }
        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://data/checkout.db".into());
        if let Err(why) = check_database_url(&database_url) {
            let shown = persistence::redacted_url(&database_url);
            problems.push(format!("DATABASE_URL {why}, not {shown:?}"));
        }
        let config = Config {
            database_url,
            pool_size: number(&get, "DATABASE_POOL_SIZE", 10, &mut problems),
            bind,
            public_url,
            public_url_follows_bind,
            claim_keys,
            session_ttl: Duration::from_secs(session_ttl),
            idempotency_ttl: Duration::from_secs(idempotency_ttl),
            rate_limit,
            rate_burst,
            webhook_poll: Duration::from_millis(number(&get, "CHECKOUT_WEBHOOK_POLL_MS", 200, &mut problems)),
            webhook_timeout: Duration::from_secs(number(&get, "CHECKOUT_WEBHOOK_TIMEOUT_SECONDS", 15, &mut problems)),
            pay_attempts_max: number(&get, "CHECKOUT_PAY_ATTEMPTS_MAX", 5, &mut problems),
            webhooks_allow_internal: boolean(
                &get,
                "CHECKOUT_WEBHOOKS_ALLOW_INTERNAL",
                environment == Environment::Development,
                &mut problems,
            ),
            shutdown_timeout: Duration::from_secs(number(&get, "CHECKOUT_SHUTDOWN_TIMEOUT_SECONDS", 30, &mut problems)),
            sweep_interval: Duration::from_secs(number(&get, "CHECKOUT_SWEEP_INTERVAL_SECONDS", 15, &mut problems)),
            token_secret,
            idempotency_wait: Duration::from_millis(number(&get, "CHECKOUT_IDEMPOTENCY_WAIT_MS", 5000, &mut problems)),
            queue_timeout: Duration::from_millis(number(&get, "CHECKOUT_QUEUE_TIMEOUT_MS", 2000, &mut problems)),
            environment,
            dev_secrets_file: get("CHECKOUT_DEV_SECRETS_FILE").unwrap_or_else(|| "data/dev-secrets.json".into()),
            workers: get("CHECKOUT_WORKERS").map(|_| number(&get, "CHECKOUT_WORKERS", 1, &mut problems)),
            auth_failure_limit: per_minute(&get, "AUTH_FAILURES", on(DEFAULT_AUTH_FAILURES), &mut problems),
            page_post_limit: per_minute(&get, "PAGE_POSTS", on(DEFAULT_PAGE_POSTS), &mut problems),
            trusted_proxies: api::ratelimit::Networks::parse(&get("CHECKOUT_TRUSTED_PROXIES").unwrap_or_default())
                .unwrap_or_else(|e| {
                    problems.push(format!("CHECKOUT_TRUSTED_PROXIES: {e}"));
                    api::ratelimit::Networks::default()
                }),
            log_format: LogFormat::parse(get("LOG_FORMAT").as_deref()).unwrap_or_else(|why| {
                problems.push(why);
                LogFormat::Text
            }),
        };
        if config.environment == Environment::Production {
            if config.claim_keys.is_empty() {
                problems.push("CHECKOUT_CLAIM_KEYS is required in production (kid:publicKey pairs)".into());
            }
            if !lower.starts_with("https://") {
                problems.push(format!("CHECKOUT_PUBLIC_URL must be https in production, not {:?}", config.public_url));
            }
            if config.webhooks_allow_internal {
                problems.push("CHECKOUT_WEBHOOKS_ALLOW_INTERNAL may not be true in production (SSRF)".into());
            }
            if config.token_secret.is_none() {
                problems.push(format!(
                    "CHECKOUT_TOKEN_SECRET is required in production (at least {MIN_TOKEN_SECRET_LEN} random characters)"
                ));
            }
            problems.extend(development_claim_keys(
                &get("CHECKOUT_CLAIM_KEYS").unwrap_or_default(),
                &config.dev_secrets_file,
            ));
        } else if let Err(error) = crate::dev::DevSecrets::read(&config.dev_secrets_file) {
            problems.push(format!("CHECKOUT_DEV_SECRETS_FILE: {error}"));
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(problems))
        }
    }
}

impl Config {
    /// The effective configuration, by variable, as `config check` prints it: secrets redacted,
    /// defaults filled in.
    pub fn describe(&self) -> serde_json::Value {
        let secret = match &self.token_secret {
            Some(_) => "[redacted]".to_owned(),
            None => format!("(development: generated into {})", self.dev_secrets_file),
        };
        let kids: Vec<&str> = self.claim_keys.kids().collect();
        serde_json::json!({
            "status": "ok",
            "environment": match self.environment {
                Environment::Development => "development",
                Environment::Production => "production",
            },
            "settings": {
                "DATABASE_URL": persistence::redacted_url(&self.database_url),
                "DATABASE_POOL_SIZE": self.pool_size,
                "CHECKOUT_BIND": self.bind,
                "CHECKOUT_PUBLIC_URL": self.public_url,
                "CHECKOUT_CLAIM_KEYS": kids,
                "CHECKOUT_TOKEN_SECRET": secret,
                "CHECKOUT_SESSION_TTL_SECONDS": self.session_ttl.as_secs(),
                "CHECKOUT_IDEMPOTENCY_TTL_SECONDS": self.idempotency_ttl.as_secs(),
                "CHECKOUT_IDEMPOTENCY_WAIT_MS": self.idempotency_wait.as_millis() as u64,
                "CHECKOUT_QUEUE_TIMEOUT_MS": self.queue_timeout.as_millis() as u64,
                "CHECKOUT_WEBHOOK_POLL_MS": self.webhook_poll.as_millis() as u64,
                "CHECKOUT_WEBHOOK_TIMEOUT_SECONDS": self.webhook_timeout.as_secs(),
                "CHECKOUT_PAY_ATTEMPTS_MAX": self.pay_attempts_max,
                "CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS": self.claim_keys.max_lifetime_seconds(),
                "CHECKOUT_WEBHOOKS_ALLOW_INTERNAL": self.webhooks_allow_internal,
                "CHECKOUT_SWEEP_INTERVAL_SECONDS": self.sweep_interval.as_secs(),
                "CHECKOUT_DEV_SECRETS_FILE": self.dev_secrets_file,
                "CHECKOUT_WORKERS": self.workers,
                "CHECKOUT_RATE_LIMIT_PER_SECOND": self.rate_limit,
                "CHECKOUT_RATE_LIMIT_BURST": self.rate_burst,
                "CHECKOUT_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE": self.auth_failure_limit.0,
                "CHECKOUT_RATE_LIMIT_AUTH_FAILURES_BURST": self.auth_failure_limit.1,
                "CHECKOUT_RATE_LIMIT_PAGE_POSTS_PER_MINUTE": self.page_post_limit.0,
                "CHECKOUT_RATE_LIMIT_PAGE_POSTS_BURST": self.page_post_limit.1,
                "CHECKOUT_TRUSTED_PROXIES": self.trusted_proxies.to_string(),
                "CHECKOUT_SHUTDOWN_TIMEOUT_SECONDS": self.shutdown_timeout.as_secs(),
                "LOG_FORMAT": self.log_format.as_str(),
            },
        })
    }
}

/// The public URL of a bound address when `CHECKOUT_PUBLIC_URL` is unset: `localhost` for a
/// loopback or all-interfaces address (as the contract's local server), the address otherwise.
pub fn public_url_of(address: SocketAddr) -> String {
    let ip = address.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        format!("http://localhost:{}", address.port())
    } else {
        format!("http://{address}")
    }
}

/// What a public URL must be, if `url` is not: an absolute http(s) URL with a host, and nothing
/// that would make every page URL odd (credentials, a query, a fragment).
fn check_public_url(url: &str) -> Result<(), &'static str> {
    const WANTED: &str = "an absolute http(s) URL with a host (e.g. https://checkout.example.com)";
    let parsed = url::Url::parse(url).map_err(|_| WANTED)?;
    // The URL standard reads `https:///x` as host `x`; whoever wrote it meant no such host.
    let authority = url.split_once("://").map_or("", |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none_or(str::is_empty)
        || authority.is_empty()
    {
        return Err(WANTED);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a URL without credentials");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("a URL without a query or fragment");
    }
    Ok(())
}

/// Whether this binary can open `url`: a known scheme, and no TLS demanded of a libpq built
/// without it.
fn check_database_url(url: &str) -> Result<(), String> {
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !(postgres || url.starts_with("sqlite://") || url.starts_with("sqlite:")) {
        return Err("must start with sqlite:// or postgres://".into());
    }
    let demands_tls = ["sslmode=require", "sslmode=verify-ca", "sslmode=verify-full"].iter().any(|m| url.contains(m));
    if postgres && demands_tls && !persistence::POSTGRES_TLS {
        return Err("asks for TLS (sslmode), but this build's libpq has none: build with \
                    `--features postgres-tls` (needs OpenSSL's headers) or drop sslmode"
            .into());
    }
    Ok(())
}

/// Production problems with `CHECKOUT_CLAIM_KEYS`: a development key trusted by production would
/// let anyone with the development secrets file (or its well-known kid) mint claims.
fn development_claim_keys(list: &str, dev_secrets_file: &str) -> Vec<String> {
    let dev_public = crate::dev::DevSecrets::read(dev_secrets_file)
        .ok()
        .flatten()
        .and_then(|dev| dev.claim_signer())
        .map(|signer| signer.public_key());
    let mut problems = Vec::new();
    for (kid, public) in list.split(',').filter_map(|entry| entry.trim().split_once(':')) {
        if kid == crate::dev::DEV_KID {
            problems.push(format!(
                "CHECKOUT_CLAIM_KEYS may not trust kid {kid:?} in production: it names the development claim key"
            ));
        } else if dev_public.as_deref() == Some(public.trim()) {
            problems.push(format!(
                "CHECKOUT_CLAIM_KEYS entry {kid:?} is the development claim key of {dev_secrets_file}: \
                 production may not trust it"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use domain::claim::ClaimSigner;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_need_no_setting() {
        let config = config(&[]).map_err(|e| e.to_string());
        let config = config.as_ref().map(|c| (c.database_url.as_str(), c.bind.as_str(), c.session_ttl.as_secs()));
        assert_eq!(config, Ok(("sqlite://data/checkout.db", "127.0.0.1:4805", 1800)));
    }

    #[test]
    fn production_names_every_missing_or_unsafe_setting() {
        let error = config(&[("CHECKOUT_ENV", "production")]).err().map(|e| e.0).unwrap_or_default();
        let text = error.join("\n");
        assert!(text.contains("CHECKOUT_CLAIM_KEYS"), "{text}");
        assert!(text.contains("CHECKOUT_PUBLIC_URL"), "{text}");
        assert!(text.contains("CHECKOUT_TOKEN_SECRET"), "{text}");
    }

    #[test]
    fn production_starts_with_safe_settings() {
        let signer = ClaimSigner::generate();
        let keys = format!("{}:{}", signer.kid(), signer.public_key());
        let secret = "s".repeat(MIN_TOKEN_SECRET_LEN);
        let result = config(&[
            ("CHECKOUT_ENV", "production"),
            ("CHECKOUT_CLAIM_KEYS", &keys),
            ("CHECKOUT_PUBLIC_URL", "https://checkout.example"),
            ("CHECKOUT_TOKEN_SECRET", &secret),
        ]);
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn malformed_values_are_reported_not_defaulted() {
        let error =
            config(&[("CHECKOUT_SESSION_TTL_SECONDS", "soon"), ("CHECKOUT_ENV", "staging")]).err().map(|e| e.0.len());
        assert_eq!(error, Some(2));
    }

    #[test]
    fn limits_are_on_in_production_and_off_in_development() {
        use api::ratelimit::Rate;
        let development = config(&[]).map(|c| c.limits()).map_err(|e| e.to_string());
        let development = development.as_ref().map(|l| (l.merchant.count, l.auth_failures.count, l.page_posts.count));
        assert_eq!(development, Ok((0, 0, 0)));
        let signer = ClaimSigner::generate();
        let keys = format!("{}:{}", signer.kid(), signer.public_key());
        let secret = "s".repeat(MIN_TOKEN_SECRET_LEN);
        let production = [
            ("CHECKOUT_ENV", "production"),
            ("CHECKOUT_CLAIM_KEYS", keys.as_str()),
            ("CHECKOUT_PUBLIC_URL", "https://checkout.example"),
            ("CHECKOUT_TOKEN_SECRET", secret.as_str()),
        ];
        let limits = config(&production).map(|c| c.limits()).map_err(|e| e.to_string());
        let limits = limits.as_ref().map(|l| (l.merchant, l.auth_failures, l.page_posts));
        assert_eq!(
            limits,
            Ok((
                Rate::per_second(DEFAULT_MERCHANT_RATE, 2 * DEFAULT_MERCHANT_RATE),
                Rate::per_minute(DEFAULT_AUTH_FAILURES, DEFAULT_AUTH_FAILURES),
                Rate::per_minute(DEFAULT_PAGE_POSTS, DEFAULT_PAGE_POSTS),
            ))
        );
        let off = [&production[..], &[("CHECKOUT_RATE_LIMIT_PAGE_POSTS_PER_MINUTE", "0")]].concat();
        assert_eq!(config(&off).map(|c| c.limits().page_posts.count).ok(), Some(0), "an operator may turn one off");
        let set = config(&[
            ("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", "5"),
            ("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_BURST", "2"),
            ("CHECKOUT_TRUSTED_PROXIES", "10.0.0.0/8"),
        ]);
        let set = set.map(|c| c.limits()).map_err(|e| e.to_string());
        assert_eq!(set.as_ref().map(|l| l.auth_failures), Ok(Rate::per_minute(5, 2)));
        assert!(set.as_ref().is_ok_and(|l| l.trusted_proxies.contains("10.1.1.1".parse().unwrap())));
    }

    #[test]
    fn malformed_limits_and_proxies_are_named() {
        let error =
            config(&[("CHECKOUT_RATE_LIMIT_PAGE_POSTS_BURST", "lots"), ("CHECKOUT_TRUSTED_PROXIES", "lb.internal")])
                .err()
                .map(|e| e.0.join("\n"))
                .unwrap_or_default();
        assert!(error.contains("CHECKOUT_RATE_LIMIT_PAGE_POSTS_BURST"), "{error}");
        assert!(error.contains("CHECKOUT_TRUSTED_PROXIES"), "{error}");
    }

    #[test]
    fn a_public_url_needs_a_host_and_nothing_odd() {
        for wrong in [
            "https://",
            "https:///checkout",
            "https://:443",
            "ftp://x.example",
            "checkout.example",
            "https://u:p@x.example",
            "https://x.example/?a=1",
        ] {
            assert!(check_public_url(wrong).is_err(), "{wrong}");
        }
        for right in
            ["https://checkout.example", "http://localhost:4805", "https://x.example/base/", "http://[::1]:8080"]
        {
            assert_eq!(check_public_url(right), Ok(()), "{right}");
        }
    }

    #[test]
    fn the_default_public_url_follows_the_bound_address() {
        let url = |bind| config(&[("CHECKOUT_BIND", bind)]).map(|c| c.public_url).unwrap_or_default();
        assert_eq!(url("127.0.0.1:4931"), "http://localhost:4931");
        assert_eq!(url("0.0.0.0:8080"), "http://localhost:8080");
        assert_eq!(url("192.0.2.7:4805"), "http://192.0.2.7:4805");
        let explicit = config(&[("CHECKOUT_BIND", "127.0.0.1:4931"), ("CHECKOUT_PUBLIC_URL", "https://pay.example")]);
        assert_eq!(
            explicit.map(|c| (c.public_url, c.public_url_follows_bind)).ok(),
            Some(("https://pay.example".into(), false))
        );
    }

    #[test]
    fn every_whole_number_setting_is_refused_outside_its_range_by_name() {
        for &(name, min, max) in RANGES {
            let problems = |value: String| config(&[(name, &value)]).err().map(|e| e.0).unwrap_or_default();
            assert_eq!(problems(min.to_string()), Vec::<String>::new(), "{name}={min}");
            assert_eq!(problems(max.to_string()), Vec::<String>::new(), "{name}={max}");
            let mut wrong = vec![(max + 1).to_string(), "-1".to_owned(), "lots".to_owned()];
            wrong.extend(min.checked_sub(1).map(|below| below.to_string()));
            for value in wrong {
                let text = problems(value.clone()).join("\n");
                assert!(
                    text.contains(&format!("{name} must be a whole number from {min} to {max}")),
                    "{name}={value}: {text}"
                );
            }
        }
        let refused = |name: &str, value: &str| config(&[(name, value)]).err().map(|e| e.0.join("\n"));
        assert!(refused("CHECKOUT_WORKERS", "0").is_some_and(|t| t.contains("from 1")), "actix panics on 0 workers");
        assert!(refused("CHECKOUT_WEBHOOK_POLL_MS", "0").is_some_and(|t| t.contains("from 10")), "never clamped");
        assert!(refused("CHECKOUT_SWEEP_INTERVAL_SECONDS", "0").is_some_and(|t| t.contains("from 1")));
        assert!(refused("DATABASE_POOL_SIZE", "100000").is_some_and(|t| t.contains("to 1000")));
    }

    #[test]
    fn every_whole_number_setting_read_has_a_range() {
        let read = std::sync::Mutex::new(Vec::new());
        let _ = Config::from_lookup(|name| {
            read.lock().map(|mut names| names.push(name.to_owned())).ok();
            None
        });
        let numeric = ["_SECONDS", "_MS", "_SIZE", "_MAX", "WORKERS", "_PER_SECOND", "_PER_MINUTE", "_BURST"];
        for name in read.into_inner().unwrap_or_default() {
            if numeric.iter().any(|end| name.ends_with(end)) {
                assert!(RANGES.iter().any(|(ranged, ..)| *ranged == name), "{name} has no range");
            }
        }
    }

    #[test]
    fn a_burst_of_zero_is_refused_while_its_limit_is_on() {
        let problems = |pairs: &[(&str, &str)]| config(pairs).err().map(|e| e.0.join("\n")).unwrap_or_default();
        let on = problems(&[("CHECKOUT_RATE_LIMIT_PER_SECOND", "10"), ("CHECKOUT_RATE_LIMIT_BURST", "0")]);
        assert!(on.contains("CHECKOUT_RATE_LIMIT_BURST must be at least 1"), "{on}");
        let on = problems(&[
            ("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", "5"),
            ("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_BURST", "0"),
        ]);
        assert!(on.contains("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_BURST must be at least 1"), "{on}");
        let off = config(&[("CHECKOUT_RATE_LIMIT_PER_SECOND", "0"), ("CHECKOUT_RATE_LIMIT_BURST", "0")]);
        assert!(off.is_ok(), "a limit that is off needs no burst: {off:?}");
    }

    #[test]
    fn booleans_are_true_or_false_in_any_case_or_one_or_zero() {
        let allow = |value: &str| {
            config(&[("CHECKOUT_WEBHOOKS_ALLOW_INTERNAL", value)]).map(|c| c.webhooks_allow_internal).map_err(|e| e.0)
        };
        for yes in ["true", "TRUE", "True", "1", " true "] {
            assert_eq!(allow(yes), Ok(true), "{yes}");
        }
        for no in ["false", "FALSE", "0"] {
            assert_eq!(allow(no), Ok(false), "{no}");
        }
        for wrong in ["yes", "no", "on", "2"] {
            let problems = allow(wrong).err().unwrap_or_default().join("\n");
            assert!(problems.contains("true or false (any case), or 1 or 0"), "{wrong}: {problems}");
        }
    }

    #[test]
    fn the_log_format_is_text_or_json_and_shown() {
        let format =
            |value: &str| config(&[("LOG_FORMAT", value)]).map(|c| c.describe()["settings"]["LOG_FORMAT"].clone());
        assert_eq!(format("JSON").ok(), Some(serde_json::json!("json")));
        assert_eq!(config(&[]).map(|c| c.describe()["settings"]["LOG_FORMAT"].clone()).ok(), Some("text".into()));
        let refused = format("xml").err().map(|e| e.0.join("\n")).unwrap_or_default();
        assert!(refused.contains("LOG_FORMAT must be text or json"), "{refused}");
    }

    #[test]
    fn the_error_never_shows_the_token_secret() {
        let error = config(&[("CHECKOUT_TOKEN_SECRET", "short-secret-value")]).err().map(|e| e.to_string());
        let text = error.unwrap_or_default();
        assert!(text.contains("CHECKOUT_TOKEN_SECRET"));
        assert!(!text.contains("short-secret-value"));
    }
}
