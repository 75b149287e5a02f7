//! Drop-day benchmarks of `POST /checkout`, measured from outside: the server is the release
//! binary in a process of its own, load comes from `wrk` (closed loop) or a fixed-rate open loop,
//! and the raw limits run the service's own create without the service (`pgbench -M prepared` on
//! PostgreSQL, one connection on SQLite), all in the same run, so that every target is a ratio of
//! figures measured side by side. Run it with `scripts/bench` (see there for the scenarios).
//!
//! Settings: `BENCH_SCENARIOS` (comma-separated: `throughput`, `burst`, `scale`, `sweep`,
//! `webhooks`, `replicas`, `profile`), `BENCH_BACKENDS` (`sqlite,postgres`), `BENCH_SECONDS` (10,
//! per run), `BENCH_ROUNDS` (3), `BENCH_CONNECTIONS` (32), `BENCH_SCALE_ORDERS` (1,000,000),
//! `BENCH_SWEEP_BACKLOG` (100,000), `BENCH_DATABASE_URL` (a PostgreSQL database to make schemas
//! in). The server's `DATABASE_POOL_SIZE`, `CHECKOUT_WORKERS`, `CHECKOUT_QUEUE_TIMEOUT_MS`,
//! `CHECKOUT_SWEEP_INTERVAL_SECONDS` and `CHECKOUT_WEBHOOK_POLL_MS` pass through to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod load;
mod machine;
mod raw;
mod replicas;
mod scale;
mod server;
mod webhooks;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use domain::claim::ClaimSigner;
use domain::ids::MerchantId;
use domain::livemode::Livemode;
use domain::ports::SystemClock;
use domain::secret::random_token;
use load::Run;
use machine::{Meter, Split};
use persistence::{Database, DbOptions};
use serde_json::{json, Value};
use server::Server;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What every scenario shares.
struct Bench {
    dir: std::path::PathBuf,
    signer: ClaimSigner,
    seconds: u64,
    rounds: usize,
    connections: usize,
    admin_url: String,
    /// PostgreSQL schemas made by this run, dropped at the end.
    schemas: std::sync::Mutex<Vec<String>>,
}

/// A database of one backend for one purpose: its URL, and the bench's own connection pool.
struct Target {
    url: String,
    /// The PostgreSQL schema, if on PostgreSQL.
    schema: Option<String>,
    db: Database,
}

impl Bench {
    /// A fresh, migrated database of `backend` named `name`.
    fn target(&self, backend: &'static str, name: &str) -> Target {
        let (url, schema) = if backend == "sqlite" {
            (format!("sqlite://{}", self.dir.join(format!("{name}.db")).display()), None)
        } else {
            let schema = format!("bench_{name}_{}", &random_token().expose()[..8].to_lowercase());
            let mut conn = PgConnection::establish(&self.admin_url).expect("BENCH_DATABASE_URL must reach PostgreSQL");
            conn.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
            self.schemas.lock().unwrap().push(schema.clone());
            let sep = if self.admin_url.contains('?') { '&' } else { '?' };
            (format!("{}{sep}options=-csearch_path%3D{schema}", self.admin_url), Some(schema))
        };
        let db = Database::connect(&DbOptions {
            url: url.clone(),
            pool_size: 2,
            lock_wait: Duration::from_secs(30),
            queue_timeout: Duration::from_secs(30),
        })
        .unwrap();
        db.migrate().unwrap();
        Target { url, schema, db }
    }

    /// A merchant with a test-mode key in `target`.
    fn merchant(&self, target: &Target) -> (MerchantId, String) {
        let merchants = ::server::startup::merchant_service(&target.db, std::sync::Arc::new(SystemClock));
        let merchant = merchants.create_merchant("Bench Merchant").unwrap();
        let (_, key) = merchants.create_key(merchant.id, Livemode::Test).unwrap();
        (merchant.id, key.secret().expose().to_owned())
    }

    fn server(&self, target: &Target, extra: &[(&str, String)]) -> Server {
        Server::start(&target.url, &self.signer, &self.dir, extra)
    }

    /// Enough fresh bodies for a closed-loop run of `seconds` at up to `rate` a second, in a file.
    fn bodies(&self, merchant: MerchantId, tag: &str, count: usize) -> (std::path::PathBuf, Vec<String>) {
        let bodies = load::bodies(&self.signer, merchant, tag, count);
        (load::bodies_file(&self.dir, tag, &bodies), bodies)
    }

    /// Closed-loop creates through wrk for `seconds`, with the CPU split; the bodies it used.
    fn creates(
        &self,
        server: &Server,
        merchant: MerchantId,
        key: &str,
        connections: usize,
        tag: &str,
    ) -> (Run, Split, Vec<String>) {
        // Fast refusals (a burst with a tight queue timeout) go through bodies quicker than creates.
        let per_second = if connections > 100 { 16_000 } else { 8_000 };
        let (file, bodies) = self.bodies(merchant, tag, self.seconds as usize * per_second);
        let meter = Meter::start(Some(server.pid()));
        let run = load::wrk(&server.url("/checkout"), key, &file, connections, self.seconds);
        let split = meter.stop();
        if run.replayed > 0 {
            eprintln!("warning: {tag}: {} bodies were sent twice (more than {} requests)", run.replayed, bodies.len());
        }
        // The first bodies were all answered; those in flight when wrk stopped may not have been.
        let answered = (run.created as usize).saturating_sub(connections);
        let sent: Vec<String> = bodies.into_iter().take(answered).collect();
        (run, split, sent)
    }

    /// Closed-loop replays of `bodies` (each created before) through wrk.
    fn replays(&self, server: &Server, key: &str, bodies: &[String], tag: &str) -> (Run, Split) {
        let file = load::bodies_file(&self.dir, tag, bodies);
        let meter = Meter::start(Some(server.pid()));
        let run = load::wrk(&server.url("/checkout"), key, &file, self.connections, self.seconds);
        (run, meter.stop())
    }
}

/// The median run of several, by rate, with its CPU split.
fn median(mut runs: Vec<(Run, Split)>) -> (Run, Split) {
    runs.sort_by(|a, b| a.0.rate.total_cmp(&b.0.rate));
    runs.swap_remove(runs.len() / 2)
}

fn line(label: &str, run: &Run, split: Option<&Split>) {
    println!("{label:<34} {}", run.text());
    if let Some(split) = split {
        println!("{:<34} {}", "", split.text());
    }
}

fn ratio(name: &str, value: f64, target: f64, at_least: bool) -> Value {
    let met = if at_least { value >= target } else { value <= target };
    println!(
        "  {name}: {value:.2} (target {} {target}) {}",
        if at_least { "≥" } else { "≤" },
        if met { "met" } else { "MISSED" }
    );
    json!({ "name": name, "value": value, "target": target, "met": met })
}

/// Creates and replays against the raw limit, and the open loop at half the peak.
fn throughput(bench: &Bench, backend: &'static str) -> Value {
    println!(
        "\n== {backend}: throughput ({} connections, {} s runs, median of {})",
        bench.connections, bench.seconds, bench.rounds
    );
    let app = bench.target(backend, "app");
    let (merchant, key) = bench.merchant(&app);
    let server = bench.server(&app, &[]);
    let raw_target = bench.target(backend, "raw");
    let (raw_merchant, _) = bench.merchant(&raw_target);
    let seven = (backend == "postgres").then(|| {
        let target = bench.target(backend, "seven");
        let (m, _) = bench.merchant(&target);
        (target, m)
    });
    let (mut raws, mut sevens, mut creates, mut last) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..bench.rounds {
        let meter = Meter::start(None);
        let raw = match &raw_target.schema {
            None => Some(raw::sqlite(&raw_target.db, raw_merchant, bench.seconds as usize * 3_000)),
            Some(schema) => {
                let (script, constants) = raw::pgbench_script(&raw::records(raw_merchant, round));
                raw::pgbench(&bench.admin_url, schema, &script, &constants, bench.connections, bench.seconds)
            }
        };
        let split = meter.stop();
        raws.extend(raw.map(|r| (r, split)));
        if let Some((target, m)) = &seven {
            let meter = Meter::start(None);
            let script = raw::seven_statement_script(&m.to_string());
            if let Some(run) = raw::pgbench(
                &bench.admin_url,
                target.schema.as_deref().unwrap(),
                &script,
                &[],
                bench.connections,
                bench.seconds,
            ) {
                sevens.push((run, meter.stop()));
            }
        }
        let (run, split, sent) = bench.creates(&server, merchant, &key, bench.connections, &format!("c{round}"));
        creates.push((run, split));
        last = sent;
    }
    let (create, create_split) = median(creates);
    let (replay, replay_split) = bench.replays(&server, &key, &last, "replays");
    let half = create.rate / 2.0;
    let open_bodies = load::bodies(&bench.signer, merchant, "open", (half * bench.seconds as f64) as usize);
    let meter = Meter::start(Some(server.pid()));
    let open = load::open_loop(&server.url("/checkout"), &key, &open_bodies, half, 16);
    let open_split = meter.stop();
    let rss = machine::peak_rss_mib(server.pid());

    let raw = (!raws.is_empty()).then(|| median(raws));
    let raw_label = if backend == "postgres" {
        "raw: pgbench, the service's statement"
    } else {
        "raw: the same transaction, 1 conn"
    };
    if let Some((r, s)) = &raw {
        line(raw_label, r, Some(s));
    }
    let seven = (!sevens.is_empty()).then(|| median(sevens));
    if let Some((r, s)) = &seven {
        line("raw: pgbench, seven statements", r, Some(s));
    }
    line("creates (wrk)", &create, Some(&create_split));
    line("replays (wrk)", &replay, Some(&replay_split));
    line(&format!("open loop at {half:.0}/s (half of peak)"), &open, Some(&open_split));
    println!("  server peak RSS {rss:.0} MiB");
    let mut targets = vec![];
    if let Some((r, _)) = &raw {
        targets.push(ratio("creates ÷ raw limit", create.rate / r.rate, 0.85, true));
    }
    targets.push(ratio("replays ÷ creates", replay.rate / create.rate, 5.0, true));
    targets.push(ratio("open-loop p99 at half of peak (ms)", open.p99_ms, 10.0, false));
    json!({
        "backend": backend, "scenario": "throughput",
        "raw": raw.map(|(r, s)| json!({"run": r.json(), "cpu": split_json(&s)})),
        "seven_statements": seven.map(|(r, s)| json!({"run": r.json(), "cpu": split_json(&s)})),
        "creates": {"run": create.json(), "cpu": split_json(&create_split)},
        "replays": {"run": replay.json(), "cpu": split_json(&replay_split)},
        "open_loop": {"rate": half, "run": open.json(), "cpu": split_json(&open_split)},
        "server_peak_rss_mib": rss,
        "targets": targets,
    })
}

fn split_json(s: &Split) -> Value {
    json!({"server": s.server, "generator": s.generator, "rest": s.rest})
}

/// 1,000 connections at once, with the default queue timeout and with a tight one.
fn burst(bench: &Bench, backend: &'static str) -> Value {
    println!("\n== {backend}: burst (1,000 connections, {} s)", bench.seconds);
    let mut results = Vec::new();
    for (label, timeout) in [("default queue timeout (2,000 ms)", None), ("queue timeout 100 ms", Some("100"))] {
        let app = bench.target(backend, "burst");
        let (merchant, key) = bench.merchant(&app);
        let extra: Vec<(&str, String)> =
            timeout.map(|t| ("CHECKOUT_QUEUE_TIMEOUT_MS", t.to_owned())).into_iter().collect();
        let server = bench.server(&app, &extra);
        let (run, split, _) = bench.creates(&server, merchant, &key, 1_000, &format!("burst{}", results.len()));
        line(label, &run, Some(&split));
        let rss = machine::peak_rss_mib(server.pid());
        println!("  server peak RSS {rss:.0} MiB");
        results.push(json!({"label": label, "run": run.json(), "cpu": split_json(&split), "server_peak_rss_mib": rss}));
    }
    json!({"backend": backend, "scenario": "burst", "runs": results})
}

/// Where a create's time goes: `perf record` across the machine while wrk runs creates, then the
/// share of each process and the server's hottest functions.
fn profile(bench: &Bench, backend: &'static str) -> Value {
    println!(
        "\n== {backend}: profiles of creates and replays ({} connections, {} s each)",
        bench.connections, bench.seconds
    );
    let app = bench.target(backend, "profile");
    let (merchant, key) = bench.merchant(&app);
    let server = bench.server(&app, &[]);
    let (file, bodies) = bench.bodies(merchant, "profile", bench.seconds as usize * 8_000);
    let mut results = Vec::new();
    for what in ["creates", "replays"] {
        let file = if what == "creates" {
            file.clone()
        } else {
            let created = crate::count(&app, "SELECT COUNT(*) AS n FROM orders") as usize;
            load::bodies_file(&bench.dir, "profile-replays", &bodies[..created.saturating_sub(bench.connections)])
        };
        let data = bench.dir.join(format!("perf-{backend}-{what}.data"));
        let Ok(mut perf) = std::process::Command::new("perf")
            .args(["record", "-a", "-F", "499", "-o"])
            .arg(&data)
            .args(["--", "sleep", &bench.seconds.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            eprintln!("perf is not available");
            return json!({"backend": backend, "scenario": "profile", "skipped": "no perf"});
        };
        let meter = Meter::start(Some(server.pid()));
        let run = load::wrk(&server.url("/checkout"), &key, &file, bench.connections, bench.seconds);
        let split = meter.stop();
        let _ = perf.wait();
        line(&format!("{what} while profiled"), &run, Some(&split));
        let report = |args: &[&str], most: usize| {
            let out = std::process::Command::new("perf")
                .args(["report", "--stdio", "--no-children", "--percent-limit", "0.3", "-i"])
                .arg(&data)
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            out.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .take(most)
                .map(|l| l.split_whitespace().filter(|w| *w != "-").collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
        };
        let by_process = report(&["--sort", "comm"], 12);
        let pid = server.pid().to_string();
        let in_server = report(&["--pid", &pid, "--sort", "dso,symbol"], 40);
        println!("  {what}, by process:\n    {}", by_process.join("\n    "));
        println!("  {what}, hottest in the server:\n    {}", in_server.join("\n    "));
        results.push(json!({"what": what, "run": run.json(), "by_process": by_process, "server": in_server}));
    }
    json!({"backend": backend, "scenario": "profile", "profiles": results})
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The one number `sql` (`SELECT COUNT(*) AS n …`) answers, in `target`.
fn count(target: &Target, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(&mut *target.db.conn().unwrap()).unwrap().n
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let bench = Bench {
        dir: std::env::temp_dir().join(format!("checkout-bench-{}", &random_token().expose()[..10])),
        signer: ClaimSigner::generate(),
        seconds: env_or("BENCH_SECONDS", 10),
        rounds: env_or("BENCH_ROUNDS", 3),
        connections: env_or("BENCH_CONNECTIONS", 32),
        admin_url: std::env::var("BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        schemas: Default::default(),
    };
    std::fs::create_dir_all(&bench.dir).unwrap();
    let backends: String = env_or("BENCH_BACKENDS", "sqlite,postgres".to_owned());
    let scenarios: String = env_or("BENCH_SCENARIOS", "throughput".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "{cores} cores; server: release build, its own process, default tuning (a worker per core, pool of 10), \
         development mode, merchant rate limit off"
    );
    for backend in ["sqlite", "postgres"].into_iter().filter(|b| backends.contains(b)) {
        for scenario in scenarios.split(',').map(str::trim) {
            let result = match scenario {
                "throughput" => throughput(&bench, backend),
                "burst" => burst(&bench, backend),
                "webhooks" => webhooks::lag(&bench, backend),
                "scale" => scale::flat_cost(&bench, backend),
                "sweep" => scale::sweep(&bench, backend),
                "replicas" => replicas::replicas(&bench, backend),
                "profile" => profile(&bench, backend),
                other => {
                    eprintln!("unknown scenario {other}");
                    continue;
                }
            };
            println!("RESULT {result}");
        }
    }
    if let Ok(mut conn) = PgConnection::establish(&bench.admin_url) {
        for schema in bench.schemas.lock().unwrap().iter() {
            let _ = conn.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
    let _ = std::fs::remove_dir_all(&bench.dir);
}
