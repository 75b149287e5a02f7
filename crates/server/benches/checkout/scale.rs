//! Cost at scale: the same runs against a database that already holds a million orders, and
//! creates while the sweeper works through a backlog.

use chrono::{Duration, Utc};
use diesel::connection::SimpleConnection;
use domain::ids::MerchantId;
use serde_json::{json, Value};

use crate::load::Run;
use crate::machine::{Meter, Split};
use crate::{line, median, ratio, Bench, Target};

/// What seeded orders are.
#[derive(Clone, Copy)]
pub enum Seed {
    /// Paid orders of the past day, with their idempotency records (within retention), completed
    /// sessions and `order.created` events.
    History,
    /// Pending orders whose sessions ended a minute ago (the sweeper's to expire), with
    /// idempotency records past retention (the purge's to delete).
    Due,
}

/// Inserts `n` orders of `merchant` with everything a create writes, directly with SQL, in batches.
pub fn seed(target: &Target, merchant: MerchantId, n: usize, kind: Seed, prefix: &str) {
    let fmt = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let now = Utc::now();
    let (order, payment, session, expires, idem_created) = match kind {
        Seed::History => {
            ("paid", "succeeded", "complete", fmt(now + Duration::minutes(30)), fmt(now - Duration::hours(1)))
        }
        Seed::Due => ("pending", "pending", "open", fmt(now - Duration::minutes(1)), "2020-01-01 00:00:00".to_owned()),
    };
    let created = fmt(now - Duration::hours(1));
    let batch = 100_000;
    let mut conn = target.db.conn().unwrap();
    for from in (0..n).step_by(batch) {
        let to = (from + batch).min(n);
        let series =
            format!("WITH RECURSIVE s(i) AS (SELECT {} UNION ALL SELECT i + 1 FROM s WHERE i < {to})", from + 1);
        // Well-formed ids (26 Crockford digits, so the service can read the rows back), distinct per
        // seed: a zero, the seed's letter, zeros, then the row's number in 13 digits.
        assert!(prefix.len() == 1 && "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&*prefix.to_uppercase()));
        let id = |kind: &str| format!("'{kind}_0{}00000000000' || (i + 1000000000000)", prefix.to_uppercase());
        let (o, pay, e) = (id("ord"), id("pay"), id("evt"));
        let p = prefix;
        conn.batch_execute(&format!(
            "BEGIN;
            {series} INSERT INTO orders (id, merchant_id, livemode, claim_id, claim_issuer, consumer_id, experience_id,
              distribution_id, currency, amount_total, status, expires_at, created_at, updated_at, version, cancellation_reason)
              SELECT {o}, '{merchant}', FALSE, '{p}c' || i, 'admission', 'cus_seed', 'exp_1', NULL, 'usd', 6500,
              '{order}', '{expires}', '{created}', '{created}', 1, NULL FROM s;
            {series} INSERT INTO order_items (order_id, position, sku, name, quantity, unit_amount, amount)
              SELECT {o}, 0, 'TEE-1', 'Tee', 2, 2500, 5000 FROM s
              UNION ALL SELECT {o}, 1, 'CAP-1', 'Cap', 1, 1500, 1500 FROM s;
            {series} INSERT INTO payments (id, order_id, amount, currency, status, created_at, updated_at, failed_attempts)
              SELECT {pay}, {o}, 6500, 'usd', '{payment}', '{created}', '{created}', 0 FROM s;
            {series} INSERT INTO checkout_sessions (order_id, token_hash, mode, success_url, cancel_url, status, expires_at,
              created_at, updated_at)
              SELECT {o}, '{p}t' || i, 'hosted', 'https://shop.example/success', 'https://shop.example/cancel',
              '{session}', '{expires}', '{created}', '{created}' FROM s;
            {series} INSERT INTO idempotency_keys (merchant_id, livemode, idempotency_key, fingerprint, outcome, created_at)
              SELECT '{merchant}', FALSE, '{p}k' || i, 'f', '{{\"outcome\":\"created\"}}', '{idem_created}' FROM s;
            {series} INSERT INTO webhook_events (id, merchant_id, livemode, event_type, payload, created_at)
              SELECT {e}, '{merchant}', FALSE, 'order.created', '{{}}', '{created}' FROM s;
            COMMIT;"
        ))
        .unwrap();
    }
    // Settle what a bulk load leaves behind before anything is measured: statistics, and on
    // PostgreSQL the vacuum of freshly inserted tables (autovacuum would otherwise do it during the
    // runs that follow) and the checkpoint of the load's WAL. Only this database's own tables: an
    // empty one analyzed now would keep statistics that say it is empty while a run fills it.
    let settle: Vec<String> = match &target.schema {
        Some(schema) => {
            let tables =
                ["orders", "order_items", "payments", "checkout_sessions", "idempotency_keys", "webhook_events"];
            let tables: Vec<String> = tables.iter().map(|t| format!("{schema}.{t}")).collect();
            vec![format!("VACUUM ANALYZE {}", tables.join(", ")), "CHECKPOINT".into()]
        }
        // No ANALYZE on SQLite: the service never runs it, and with statistics SQLite (built with
        // STAT4) prepares every statement that compares a bound value to an indexed column
        // again on each execution.
        None => vec!["PRAGMA wal_checkpoint(TRUNCATE)".into()],
    };
    for statement in &settle {
        conn.batch_execute(statement).unwrap();
    }
}

/// Creates and replays on an empty database and on one holding `BENCH_SCALE_ORDERS` orders,
/// alternating, in the same run.
pub fn flat_cost(bench: &Bench, backend: &'static str) -> Value {
    let orders: usize = crate::env_or("BENCH_SCALE_ORDERS", 1_000_000);
    println!("\n== {backend}: cost at scale (empty against {orders} orders, {} connections)", bench.connections);
    let empty = bench.target(backend, "empty");
    let full = bench.target(backend, "full");
    let (empty_merchant, empty_key) = bench.merchant(&empty);
    let (full_merchant, full_key) = bench.merchant(&full);
    let started = std::time::Instant::now();
    seed(&full, full_merchant, orders, Seed::History, "s");
    println!("  seeded {orders} orders in {:.0} s", started.elapsed().as_secs_f64());
    let empty_server = bench.server(&empty, &[]);
    let full_server = bench.server(&full, &[]);
    let mut runs: [Vec<(Run, Split)>; 4] = Default::default();
    for round in 0..bench.rounds {
        for (i, (server, merchant, key)) in
            [(&empty_server, empty_merchant, &empty_key), (&full_server, full_merchant, &full_key)]
                .into_iter()
                .enumerate()
        {
            let (create, split, sent) =
                bench.creates(server, merchant, key, bench.connections, &format!("scale{i}{round}"));
            runs[i * 2].push((create, split));
            runs[i * 2 + 1].push(bench.replays(server, key, &sent, &format!("scale-replay{i}{round}")));
        }
    }
    let [ec, er, fc, fr] = runs.map(median);
    line("empty: creates", &ec.0, Some(&ec.1));
    line("empty: replays", &er.0, Some(&er.1));
    line(&format!("{orders} orders: creates"), &fc.0, Some(&fc.1));
    line(&format!("{orders} orders: replays"), &fr.0, Some(&fr.1));
    let targets = vec![
        ratio("creates with orders ÷ empty", fc.0.rate / ec.0.rate, 0.90, true),
        ratio("replays with orders ÷ empty", fr.0.rate / er.0.rate, 0.90, true),
    ];
    json!({
        "backend": backend, "scenario": "scale", "orders": orders,
        "empty": {"creates": ec.0.json(), "replays": er.0.json()},
        "full": {"creates": fc.0.json(), "replays": fr.0.json()},
        "targets": targets,
    })
}

/// Creates at full speed while the sweeper expires 100,000 sessions and purges 100,000 idempotency
/// records, against the same creates with nothing to sweep.
pub fn sweep(bench: &Bench, backend: &'static str) -> Value {
    let backlog: usize = crate::env_or("BENCH_SWEEP_BACKLOG", 100_000);
    println!("\n== {backend}: creates while the sweeper works through {backlog} sessions and records");
    let mut results = Vec::new();
    for (label, due) in [("nothing to sweep", false), ("sweeping", true)] {
        let target = bench.target(backend, "sweep");
        let (merchant, key) = bench.merchant(&target);
        if due {
            seed(&target, merchant, backlog, Seed::Due, "d");
        }
        // The first sweep starts with the server; later ones every second.
        let server = bench.server(&target, &[("CHECKOUT_SWEEP_INTERVAL_SECONDS", "1".into())]);
        let meter = Meter::start(Some(server.pid()));
        let (run, _, _) = bench.creates(&server, merchant, &key, bench.connections, &format!("sweep{due}"));
        let split = meter.stop();
        let expired = crate::count(&target, "SELECT COUNT(*) AS n FROM checkout_sessions WHERE status = 'expired'");
        let left = crate::count(&target, "SELECT COUNT(*) AS n FROM idempotency_keys WHERE created_at < '2021-01-01'");
        line(label, &run, Some(&split));
        if due {
            println!(
                "  during the run: {expired} of {backlog} sessions expired, {} of {backlog} records purged",
                backlog as i64 - left
            );
        }
        results.push((run, expired, backlog as i64 - left));
    }
    let ratio_p99 = results[1].0.p99_ms / results[0].0.p99_ms;
    let targets = vec![ratio("create p99 while sweeping ÷ without", ratio_p99, 2.0, false)];
    json!({
        "backend": backend, "scenario": "sweep", "backlog": backlog,
        "without": results[0].0.json(), "with": results[1].0.json(),
        "expired_during_run": results[1].1, "purged_during_run": results[1].2,
        "targets": targets,
    })
}
