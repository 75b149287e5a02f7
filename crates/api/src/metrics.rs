//! Prometheus metrics: requests by route and status, latency histograms, checkout outcomes, claim
//! rejections, rate-limit refusals, pool occupancy and the background jobs. Served as text at `GET /metrics`.

use domain::ports::PoolStats;
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the service exports, registered once per process.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Requests being answered now.
    pub in_flight: IntGauge,
    /// Checkouts created (first answers, not replays).
    pub checkouts_created: IntCounter,
    /// Stored answers sent again.
    pub replays: IntCounter,
    /// Idempotency refusals, by `kind` (`key_reused`, `in_progress`).
    pub idempotency_conflicts: IntCounterVec,
    /// Claims refused, by `reason` (`claim_expired`, …).
    pub claim_rejections: IntCounterVec,
    /// Requests refused by a rate limit, by `limit` (`merchant`, `auth_failures`, `page_posts`).
    pub rate_limited: IntCounterVec,
    /// Clients (merchants, addresses) a rate limit holds a bucket for, by `limit`.
    pub rate_limit_keys: IntGaugeVec,
    pool_in_use: IntGaugeVec,
    pool_idle: IntGaugeVec,
    pool_queued: IntGaugeVec,
    pool_refused: IntCounterVec,
    /// Background job runs, by `job` (`expire_sessions`, `purge_idempotency`) and `outcome`.
    pub job_runs: IntCounterVec,
    /// Rows a background job changed, by `job`.
    pub job_rows: IntCounterVec,
}

/// Registers a metric made from constant names and labels, which cannot fail.
fn register<M: Collector + Clone + 'static>(registry: &Registry, name: &str, made: prometheus::Result<M>) -> M {
    let metric = made.unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, name, IntCounter::new(name, help))
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, name, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauges(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    register(registry, name, IntGaugeVec::new(Opts::new(name, help), &["pool"]))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("checkout".into()), None).unwrap_or_else(|e| unreachable!("a valid prefix: {e}"));
        let latency = register(
            &registry,
            "http_request_duration_seconds",
            HistogramVec::new(
                HistogramOpts::new("http_request_duration_seconds", "Time to answer a request, by route.")
                    .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                &["route"],
            ),
        );
        Self {
            requests: counters(
                &registry,
                "http_requests_total",
                "Requests answered, by route and status.",
                &["route", "status"],
            ),
            latency,
            in_flight: register(
                &registry,
                "http_requests_in_flight",
                IntGauge::new("http_requests_in_flight", "Requests received and not yet answered."),
            ),
            checkouts_created: counter(&registry, "checkouts_created_total", "Checkouts created."),
            replays: counter(&registry, "idempotent_replays_total", "Stored answers sent again for a reused key."),
            idempotency_conflicts: counters(
                &registry,
                "idempotency_conflicts_total",
                "Idempotency refusals (key reused with another request, or still in progress).",
                &["kind"],
            ),
            claim_rejections: counters(
                &registry,
                "claim_rejections_total",
                "Checkout claims refused, by reason.",
                &["reason"],
            ),
            rate_limited: counters(
                &registry,
                "rate_limited_total",
                "Requests refused by a rate limit, by limit.",
                &["limit"],
            ),
            rate_limit_keys: register(
                &registry,
                "rate_limit_keys",
                IntGaugeVec::new(Opts::new("rate_limit_keys", "Clients a rate limit holds a bucket for."), &["limit"]),
            ),
            pool_in_use: gauges(&registry, "db_pool_connections_in_use", "Database connections checked out."),
            pool_idle: gauges(&registry, "db_pool_connections_idle", "Database connections open and idle."),
            pool_queued: gauges(&registry, "db_pool_queued", "Callers waiting for a database connection."),
            pool_refused: counters(
                &registry,
                "db_pool_refused_total",
                "Callers refused at once because their wait for a connection would exceed CHECKOUT_QUEUE_TIMEOUT_MS.",
                &["pool"],
            ),
            job_runs: counters(
                &registry,
                "job_runs_total",
                "Background job runs, by job and outcome.",
                &["job", "outcome"],
            ),
            job_rows: counters(&registry, "job_rows_total", "Rows changed by background jobs, by job.", &["job"]),
            registry,
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.requests.with_label_values(&[route, &status.to_string()]).inc();
        self.latency.with_label_values(&[route]).observe(seconds);
    }

    /// The text exposition, with the pools' occupancy as of now.
    pub fn render(&self, pools: &[PoolStats]) -> String {
        for pool in pools {
            self.pool_in_use.with_label_values(&[pool.name]).set(i64::from(pool.in_use));
            self.pool_idle.with_label_values(&[pool.name]).set(i64::from(pool.idle));
            self.pool_queued.with_label_values(&[pool.name]).set(i64::from(pool.queued));
            let refused = self.pool_refused.with_label_values(&[pool.name]);
            refused.inc_by(pool.refused.saturating_sub(refused.get()));
        }
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("metrics: {error}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
