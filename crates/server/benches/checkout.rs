//! `POST /checkout` throughput and latency against the raw database limit, measured in one run.
//!
//! For each backend: the raw limit is the same one-transaction insert done directly (a plain diesel
//! loop on SQLite, `pgbench -M prepared` on PostgreSQL) at the same concurrency; then creates and
//! replays go through the real server over loopback HTTP. Run it with `scripts/bench`.
//!
//! With `BENCH_SCENARIOS=webhooks` (or `scripts/bench webhooks`) it measures webhook lag instead:
//! creates run at full speed for `BENCH_WEBHOOK_SECONDS` (10) across 10 merchants, each with an
//! endpoint on a local receiver that answers at once, and the time from each create's answer (its
//! commit) to its `order.created` reaching the receiver is reported as p50/p99, with the
//! deliveries a second during the load.
//!
//! Settings: `BENCH_REQUESTS` (default 3000), `BENCH_CONCURRENCY` (16), `BENCH_ROUNDS` (3),
//! `BENCH_BACKENDS` (`sqlite,postgres`), `BENCH_DATABASE_URL` (a PostgreSQL database to make
//! schemas in), `BENCH_PGBENCH_MODE` (`prepared`), `BENCH_SCENARIOS` (`throughput`, `webhooks`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Text, Timestamp};
use domain::claim::{ClaimItem, ClaimPayload, ClaimSigner};
use domain::ids::MerchantId;
use domain::livemode::Livemode;
use domain::ports::SystemClock;
use domain::secret::{random_token, sha256_hex};
use persistence::{Database, DbOptions};
use serde_json::{json, Value};
use server::config::Config;
use server::startup::{merchant_service, Application};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Throughput and latency of one measured run.
struct Stats {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn line(&self, label: &str) -> String {
        format!(
            "{label:<28} {:>9.0} /s   p50 {:>7.2} ms   p99 {:>7.2} ms",
            self.rate,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3
        )
    }
}

/// Runs `work(i)` for i in 0..n on `concurrency` threads; each thread sets itself up once.
fn measure<S>(
    n: usize,
    concurrency: usize,
    setup: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize) + Sync,
) -> Stats {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| {
                    let mut state = setup();
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return mine;
                        }
                        let t = Instant::now();
                        work(&mut state, i);
                        mine.push(t.elapsed());
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Stats { rate: n as f64 / elapsed.as_secs_f64(), p50: at(0.50), p99: at(0.99) }
}

const FINGERPRINT: &str = "9f2c2b5a3c1d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";
const OUTCOME: &str = r#"{"outcome":"created","orderId":"ord_01M891Q31ZEN69RTCHWETWGCCE","paymentId":"pay_01M891Q31ZEN69RTCHWHGCDHGW","mode":"hosted","expiresAt":"2026-11-25T10:03:42.000Z"}"#;

/// SQLite's raw limit: the statements a checkout runs, in one `BEGIN IMMEDIATE` transaction, on
/// one connection (SQLite has one writer; more connections only contend for its lock).
fn sqlite_raw(path: &str, merchant: &str, n: usize) -> Stats {
    measure(
        n,
        1,
        || {
            let mut conn = SqliteConnection::establish(path).unwrap();
            conn.batch_execute(
                "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 PRAGMA foreign_keys = ON;",
            )
            .unwrap();
            conn
        },
        |conn, i| {
            let id = format!("{i}-{}", &random_token().expose()[..12]);
            let now = Utc::now().naive_utc();
            conn.immediate_transaction(|c| {
                diesel::sql_query(
                    "INSERT INTO idempotency_keys (merchant_id, livemode, idempotency_key, fingerprint, outcome, \
                     created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind::<Text, _>(merchant)
                .bind::<Bool, _>(false)
                .bind::<Text, _>(&id)
                .bind::<Text, _>(FINGERPRINT)
                .bind::<Text, _>(OUTCOME)
                .bind::<Timestamp, _>(now)
                .execute(c)?;
                diesel::sql_query(
                    "INSERT INTO orders (id, merchant_id, livemode, claim_id, claim_issuer, consumer_id, \
                     experience_id, currency, amount_total, status, expires_at, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, 'admission', 'cus_bench', 'exp_1', 'usd', 6500, 'pending', ?, ?, ?) \
                     ON CONFLICT DO NOTHING",
                )
                .bind::<Text, _>(&id)
                .bind::<Text, _>(merchant)
                .bind::<Bool, _>(false)
                .bind::<Text, _>(&id)
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now)
                .execute(c)?;
                diesel::sql_query(
                    "INSERT INTO order_items (order_id, position, sku, name, quantity, unit_amount, amount) \
                     VALUES (?, ?, 'TEE-1', 'Tee', 2, 2500, 5000), (?, ?, 'CAP-1', 'Cap', 1, 1500, 1500)",
                )
                .bind::<Text, _>(&id)
                .bind::<Integer, _>(0)
                .bind::<Text, _>(&id)
                .bind::<Integer, _>(1)
                .execute(c)?;
                diesel::sql_query(
                    "INSERT INTO payments (id, order_id, amount, currency, status, created_at, updated_at) \
                     VALUES (?, ?, ?, 'usd', 'pending', ?, ?)",
                )
                .bind::<Text, _>(&id)
                .bind::<Text, _>(&id)
                .bind::<BigInt, _>(6500)
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now)
                .execute(c)?;
                diesel::sql_query(
                    "INSERT INTO checkout_sessions (order_id, token_hash, mode, success_url, cancel_url, status, \
                     expires_at, created_at, updated_at) VALUES (?, ?, 'hosted', 'https://shop.example/success', \
                     'https://shop.example/cancel', 'open', ?, ?, ?)",
                )
                .bind::<Text, _>(&id)
                .bind::<Text, _>(sha256_hex(id.as_bytes()))
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now)
                .execute(c)?;
                Ok::<_, diesel::result::Error>(())
            })
            .unwrap();
        },
    )
}

/// PostgreSQL's raw limit: pgbench running the same statements, prepared, at the same concurrency.
fn postgres_raw(admin_url: &str, schema: &str, merchant: &str, n: usize, concurrency: usize) -> Option<Stats> {
    let script = format!(
        "\\set r random(1, 9000000000000000000)\n\
         BEGIN;\n\
         INSERT INTO idempotency_keys (merchant_id, livemode, idempotency_key, fingerprint, outcome, created_at) \
         VALUES ('{merchant}', false, 'k' || :client_id || '-' || :r, '{FINGERPRINT}', '{OUTCOME}', now()) \
         ON CONFLICT DO NOTHING;\n\
         INSERT INTO orders (id, merchant_id, livemode, claim_id, claim_issuer, consumer_id, experience_id, currency, \
         amount_total, status, expires_at, created_at, updated_at) VALUES ('o' || :client_id || '-' || :r, \
         '{merchant}', false, 'c' || :client_id || '-' || :r, 'admission', 'cus_bench', 'exp_1', 'usd', 6500, \
         'pending', now(), now(), now()) ON CONFLICT DO NOTHING;\n\
         INSERT INTO order_items (order_id, position, sku, name, quantity, unit_amount, amount) VALUES \
         ('o' || :client_id || '-' || :r, 0, 'TEE-1', 'Tee', 2, 2500, 5000), \
         ('o' || :client_id || '-' || :r, 1, 'CAP-1', 'Cap', 1, 1500, 1500);\n\
         INSERT INTO payments (id, order_id, amount, currency, status, created_at, updated_at) VALUES \
         ('p' || :client_id || '-' || :r, 'o' || :client_id || '-' || :r, 6500, 'usd', 'pending', now(), now());\n\
         INSERT INTO checkout_sessions (order_id, token_hash, mode, success_url, cancel_url, status, expires_at, \
         created_at, updated_at) VALUES ('o' || :client_id || '-' || :r, md5('t' || :client_id || '-' || :r), \
         'hosted', 'https://shop.example/success', 'https://shop.example/cancel', 'open', now(), now(), now());\n\
         END;\n"
    );
    let path = std::env::temp_dir().join(format!("checkout-bench-{schema}.sql"));
    std::fs::write(&path, script).unwrap();
    let per_client = n.div_ceil(concurrency);
    let output = std::process::Command::new("pgbench")
        .args(["-n", "-M", std::env::var("BENCH_PGBENCH_MODE").as_deref().unwrap_or("prepared"), "-j", "2"])
        .args(["-c", &concurrency.to_string(), "-t", &per_client.to_string(), "-f"])
        .arg(&path)
        .arg(admin_url)
        .env("PGOPTIONS", format!("-c search_path={schema}"))
        .output();
    let _ = std::fs::remove_file(&path);
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("pgbench failed: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("pgbench is not available ({e}); skipping the PostgreSQL raw limit");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text.lines().find_map(|l| l.strip_prefix("tps = "))?.split_whitespace().next()?.parse().ok()?;
    let latency: f64 =
        text.lines().find_map(|l| l.strip_prefix("latency average = "))?.split_whitespace().next()?.parse().ok()?;
    let average = Duration::from_secs_f64(latency / 1e3);
    Some(Stats { rate: tps, p50: average, p99: average })
}

struct Server {
    address: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_server(database_url: &str, signer: &ClaimSigner, dir: &std::path::Path) -> Server {
    let mut settings: HashMap<&str, String> = [
        ("DATABASE_URL", database_url.to_owned()),
        ("CHECKOUT_BIND", "127.0.0.1:0".into()),
        ("CHECKOUT_CLAIM_KEYS", format!("{}:{}", signer.kid(), signer.public_key())),
        ("CHECKOUT_TOKEN_SECRET", "bench-token-secret-of-at-least-32-characters".into()),
        ("CHECKOUT_DEV_SECRETS_FILE", dir.join("dev.json").display().to_string()),
    ]
    .into_iter()
    .collect();
    // The server's own tuning settings pass through, so they can be compared.
    for name in ["DATABASE_POOL_SIZE", "CHECKOUT_WORKERS"] {
        if let Ok(value) = std::env::var(name) {
            settings.insert(name, value);
        }
    }
    let config = Config::from_lookup(|name| settings.get(name).cloned()).unwrap();
    let (sender, receiver) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(config).unwrap();
            sender.send((app.port(), app.handle())).unwrap();
            app.run_until_stopped().await.unwrap();
        })
    });
    let (port, handle) = receiver.recv().unwrap();
    Server { address: format!("http://127.0.0.1:{port}/checkout"), handle, thread: Some(thread) }
}

/// One create's body: a fresh claim for `merchant`, unique per `round` and `i`.
fn body(signer: &ClaimSigner, merchant: MerchantId, round: usize, i: usize) -> String {
    let items = vec![
        ClaimItem { sku: "TEE-1".into(), name: "Tee".into(), quantity: 2, unit_amount: 2500 },
        ClaimItem { sku: "CAP-1".into(), name: "Cap".into(), quantity: 1, unit_amount: 1500 },
    ];
    let claim = signer.sign(&ClaimPayload {
        jti: format!("clm_bench_{round}_{i}"),
        experience_id: Some("exp_1".into()),
        ..ClaimPayload::new(merchant, items, Utc::now(), 3600)
    });
    json!({
        "checkoutClaim": claim,
        "mode": "hosted",
        "successUrl": "https://shop.example/success",
        "cancelUrl": "https://shop.example/cancel",
        "idempotencyKey": format!("bench-{round}-{i}"),
    })
    .to_string()
}

fn bodies(signer: &ClaimSigner, merchant: &str, n: usize, round: usize) -> Vec<String> {
    let merchant: MerchantId = merchant.parse().unwrap();
    (0..n).map(|i| body(signer, merchant, round, i)).collect()
}

fn http_load(server: &Server, key: &str, bodies: &[String], concurrency: usize, expect_replayed: bool) -> Stats {
    measure(
        bodies.len(),
        concurrency,
        || ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build(),
        |agent, i| {
            let response = agent
                .post(&server.address)
                .set("Authorization", &format!("Bearer {key}"))
                .set("Content-Type", "application/json")
                .send_string(&bodies[i])
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(response.header("idempotent-replayed").is_some(), expect_replayed);
        },
    )
}

fn merchant_with_key(database: &Database) -> (String, String) {
    let merchants = merchant_service(database, std::sync::Arc::new(SystemClock));
    let merchant = merchants.create_merchant("Bench Merchant").unwrap();
    let (_, key) = merchants.create_key(merchant.id, Livemode::Test).unwrap();
    (merchant.id.to_string(), key.secret().expose().to_owned())
}

fn open(url: &str) -> Database {
    let db = Database::connect(&DbOptions {
        url: url.into(),
        pool_size: 2,
        lock_wait: Duration::from_secs(10),
        queue_timeout: Duration::from_secs(10),
    })
    .unwrap();
    db.migrate().unwrap();
    db
}

fn report(backend: &str, raw: Option<Stats>, creates: Stats, replays: Stats) -> Value {
    println!("{}", raw.as_ref().map(|r| r.line(&format!("{backend} raw insert limit"))).unwrap_or_default());
    println!("{}", creates.line(&format!("{backend} POST /checkout create")));
    println!("{}", replays.line(&format!("{backend} POST /checkout replay")));
    let create_ratio = raw.as_ref().map(|r| creates.rate / r.rate);
    if let Some(ratio) = create_ratio {
        println!("{backend}: creates at {:.0} % of the raw limit (aim: at least 80 %)", ratio * 100.0);
    }
    println!("{backend}: replays at {:.1}x the create rate (aim: at least 2x)", replays.rate / creates.rate);
    json!({
        "backend": backend,
        "raw_per_s": raw.as_ref().map(|r| r.rate),
        "create_per_s": creates.rate,
        "create_p50_ms": creates.p50.as_secs_f64() * 1e3,
        "create_p99_ms": creates.p99.as_secs_f64() * 1e3,
        "replay_per_s": replays.rate,
        "replay_p50_ms": replays.p50.as_secs_f64() * 1e3,
        "replay_p99_ms": replays.p99.as_secs_f64() * 1e3,
        "create_to_raw": create_ratio,
        "replay_to_create": replays.rate / creates.rate,
    })
}

/// The median of each figure over rounds.
fn median(mut runs: Vec<Stats>) -> Stats {
    let mid = runs.len() / 2;
    let pick = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[mid]
    };
    let mut rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
    let mut p50s: Vec<f64> = runs.iter().map(|r| r.p50.as_secs_f64()).collect();
    let mut p99s: Vec<f64> = runs.iter().map(|r| r.p99.as_secs_f64()).collect();
    runs.clear();
    Stats {
        rate: pick(&mut rates),
        p50: Duration::from_secs_f64(pick(&mut p50s)),
        p99: Duration::from_secs_f64(pick(&mut p99s)),
    }
}

/// Alternates raw and HTTP rounds, so that a noisy moment on the machine hits both alike, and
/// reports medians; replays re-send the last round's requests.
fn compare(
    backend: &str,
    rounds: usize,
    mut raw: impl FnMut() -> Option<Stats>,
    mut creates: impl FnMut(usize) -> (Stats, Vec<String>),
    replays: impl FnOnce(&[String]) -> Stats,
) -> Value {
    let (mut raw_runs, mut create_runs, mut last) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        raw_runs.extend(raw());
        let (stats, bodies) = creates(round);
        create_runs.push(stats);
        last = bodies;
    }
    let raw = (!raw_runs.is_empty()).then(|| median(raw_runs));
    report(backend, raw, median(create_runs), replays(&last))
}

/// A webhook receiver on loopback that answers 200 at once and notes when each order's
/// `order.created` arrived.
struct Receiver {
    url: String,
    arrivals: std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>>,
}

impl Receiver {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let arrivals = std::sync::Arc::new(std::sync::Mutex::new(HashMap::new()));
        let noted = arrivals.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let noted = noted.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let (mut line, mut length) = (String::new(), 0usize);
                    while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                        line.clear();
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_ok() {
                        let at = Instant::now();
                        let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                        if let Some(order) = event["data"]["id"].as_str() {
                            noted.lock().unwrap().entry(order.to_owned()).or_insert(at);
                        }
                    }
                    let mut stream = stream;
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                });
            }
        });
        Self { url, arrivals }
    }

    fn arrived(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }
}

/// Creates at full speed for `seconds` across ten merchants with an endpoint each, then the lag
/// from each create's answer to its `order.created` arriving.
fn webhook_lag(backend: &str, url: &str, signer: &ClaimSigner, dir: &std::path::Path, concurrency: usize) -> Value {
    let seconds: u64 = env_or("BENCH_WEBHOOK_SECONDS", 10);
    let database = open(url);
    let receiver = Receiver::start();
    let server = start_server(url, signer, dir);
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let endpoint_url = server.address.replace("/checkout", "/webhook-endpoints");
    let merchants: Vec<(MerchantId, String)> = (0..10)
        .map(|_| {
            let (merchant, key) = merchant_with_key(&database);
            agent
                .post(&endpoint_url)
                .set("Authorization", &format!("Bearer {key}"))
                .send_string(&json!({ "url": receiver.url, "events": ["order.created"] }).to_string())
                .unwrap();
            (merchant.parse().unwrap(), key)
        })
        .collect();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let created: Vec<(String, Instant)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| {
                    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                    let mut mine = Vec::new();
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let (merchant, key) = &merchants[i % merchants.len()];
                        let answer: Value = agent
                            .post(&server.address)
                            .set("Authorization", &format!("Bearer {key}"))
                            .set("Content-Type", "application/json")
                            .send_string(&body(signer, *merchant, 0, i))
                            .unwrap_or_else(|e| panic!("request {i}: {e}"))
                            .into_json()
                            .unwrap();
                        mine.push((answer["orderId"].as_str().unwrap().to_owned(), Instant::now()));
                    }
                    mine
                })
            })
            .collect();
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect()
    });
    let load = started.elapsed();
    let during_load = receiver.arrived();
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    while receiver.arrived() < created.len() && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let drained = started.elapsed();
    let arrivals = receiver.arrivals.lock().unwrap().clone();
    let mut lags: Vec<f64> = created
        .iter()
        .filter_map(|(order, at)| {
            arrivals.get(order).map(|arrived| arrived.saturating_duration_since(*at).as_secs_f64())
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let quantile = |q: f64| lags.get(((lags.len() as f64 * q) as usize).min(lags.len().saturating_sub(1))).copied();
    let (p50, p99) = (quantile(0.5).unwrap_or(f64::NAN), quantile(0.99).unwrap_or(f64::NAN));
    let creates_per_s = created.len() as f64 / load.as_secs_f64();
    let delivered_per_s = during_load as f64 / load.as_secs_f64();
    println!(
        "{backend} webhooks: {} creates in {:.1} s ({creates_per_s:.0}/s) across 10 endpoints; {during_load} delivered \
         during the load ({delivered_per_s:.0}/s), all {} after {:.1} s",
        created.len(),
        load.as_secs_f64(),
        lags.len(),
        drained.as_secs_f64()
    );
    println!(
        "{backend} webhook lag, commit to receipt: p50 {:.0} ms, p99 {:.0} ms (aim: p99 at most 1,000 ms)",
        p50 * 1e3,
        p99 * 1e3
    );
    drop(server);
    json!({
        "backend": backend,
        "scenario": "webhooks",
        "creates": created.len(),
        "create_per_s": creates_per_s,
        "delivered_during_load_per_s": delivered_per_s,
        "undelivered": created.len() - lags.len(),
        "lag_p50_ms": p50 * 1e3,
        "lag_p99_ms": p99 * 1e3,
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let n: usize = env_or("BENCH_REQUESTS", 3000);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 16);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let backends: String = env_or("BENCH_BACKENDS", "sqlite,postgres".to_owned());
    let scenarios: String = env_or("BENCH_SCENARIOS", "throughput".to_owned());
    let dir = std::env::temp_dir().join(format!("checkout-bench-{}", &random_token().expose()[..10]));
    std::fs::create_dir_all(&dir).unwrap();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("{n} requests per run, {concurrency} concurrent clients, median of {rounds} rounds, {cores} cores");
    let signer = ClaimSigner::generate();

    if backends.contains("sqlite") && scenarios.contains("webhooks") {
        let url = format!("sqlite://{}", dir.join("hooks.db").display());
        println!("RESULT {}", webhook_lag("sqlite", &url, &signer, &dir, concurrency));
    }

    if backends.contains("sqlite") && scenarios.contains("throughput") {
        let raw_path = dir.join("raw.db").display().to_string();
        let raw_db = open(&format!("sqlite://{raw_path}"));
        let (raw_merchant, _) = merchant_with_key(&raw_db);
        let url = format!("sqlite://{}", dir.join("app.db").display());
        let (merchant, key) = merchant_with_key(&open(&url));
        let server = start_server(&url, &signer, &dir);
        let result = compare(
            "sqlite",
            rounds,
            || Some(sqlite_raw(&raw_path, &raw_merchant, n)),
            |round| {
                let requests = bodies(&signer, &merchant, n, round);
                (http_load(&server, &key, &requests, concurrency, false), requests)
            },
            |requests| http_load(&server, &key, requests, concurrency, true),
        );
        println!("RESULT {result}");
    }

    if backends.contains("postgres") {
        let admin = std::env::var("BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = PgConnection::establish(&admin).expect("BENCH_DATABASE_URL must reach PostgreSQL");
        let schemas = ["bench_raw", "bench_app", "bench_hooks"]
            .map(|s| format!("{s}_{}", &random_token().expose()[..8].to_lowercase()));
        for schema in &schemas {
            conn.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        }
        let url_for = |schema: &str| {
            let sep = if admin.contains('?') { '&' } else { '?' };
            format!("{admin}{sep}options=-csearch_path%3D{schema}")
        };
        if scenarios.contains("webhooks") {
            println!("RESULT {}", webhook_lag("postgres", &url_for(&schemas[2]), &signer, &dir, concurrency));
        }
        if scenarios.contains("throughput") {
            postgres_throughput(&admin, &schemas, &url_for, &signer, &dir, (n, concurrency, rounds));
        }
        for schema in &schemas {
            conn.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn postgres_throughput(
    admin: &str,
    schemas: &[String],
    url_for: &dyn Fn(&str) -> String,
    signer: &ClaimSigner,
    dir: &std::path::Path,
    (n, concurrency, rounds): (usize, usize, usize),
) {
    {
        let (raw_merchant, _) = merchant_with_key(&open(&url_for(&schemas[0])));
        let url = url_for(&schemas[1]);
        let (merchant, key) = merchant_with_key(&open(&url));
        let server = start_server(&url, signer, dir);
        let result = compare(
            "postgres",
            rounds,
            || postgres_raw(admin, &schemas[0], &raw_merchant, n, concurrency),
            |round| {
                let requests = bodies(signer, &merchant, n, round);
                (http_load(&server, &key, &requests, concurrency, false), requests)
            },
            |requests| http_load(&server, &key, requests, concurrency, true),
        );
        drop(server);
        println!("RESULT {result}");
    }
}
