//! Every query of the hot path and of the background jobs finds its rows through an index on
//! PostgreSQL. The server runs a day of work (creates, replays, pages, charges, cancels, webhooks,
//! the sweeper expiring sessions, resolving a stuck charge and purging idempotency records) on a
//! schema whose statistics say every table is empty, the case where PostgreSQL likes scans best.
//! The server prices sequential scans out on its connections (`enable_seqscan = off`), so a query
//! that still scans a table has no index to use, and PostgreSQL's statistics count it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use domain::claim::ClaimSigner;

use crate::helpers::{Backend, Hold, LoopbackServer, TestApp, TestDb};

#[derive(QueryableByName)]
struct Scans {
    #[diesel(sql_type = Text)]
    relname: String,
    #[diesel(sql_type = BigInt)]
    seq_scan: i64,
}

/// Sequential scans per table of `schema` so far, once every backend that worked on them has
/// reported (the numbers stop moving).
fn settled_scans(admin: &str, schema: &str) -> BTreeMap<String, i64> {
    let read = || -> BTreeMap<String, i64> {
        let mut conn = PgConnection::establish(admin).expect("admin connection");
        diesel::sql_query(
            "SELECT relname::text AS relname, seq_scan FROM pg_stat_user_tables \
             WHERE schemaname = $1 AND relname <> '__diesel_schema_migrations'",
        )
        .bind::<Text, _>(schema)
        .load::<Scans>(&mut conn)
        .expect("statistics")
        .into_iter()
        .map(|s| (s.relname, s.seq_scan))
        .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(1_200));
        let now = read();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// A server as it runs in production (only its jobs are stepped by the test, not by timers).
fn spawn(test_db: TestDb, signer: ClaimSigner) -> TestApp {
    TestApp::spawn_on(
        test_db,
        signer,
        &[("CHECKOUT_WEBHOOK_POLL_MS", "3600000"), ("CHECKOUT_SWEEP_INTERVAL_SECONDS", "3600")],
    )
}

#[derive(QueryableByName)]
struct Table {
    #[diesel(sql_type = Text)]
    tablename: String,
}

/// Analyzes every table of `schema` while it is empty: its statistics then tell the planner that
/// a scan of one page is the cheapest way to any row, and a plan cached from that keeps scanning
/// as the table grows.
fn analyze_empty(admin: &str, schema: &str) {
    let mut conn = PgConnection::establish(admin).expect("admin connection");
    let tables = diesel::sql_query("SELECT tablename::text AS tablename FROM pg_tables WHERE schemaname = $1")
        .bind::<Text, _>(schema)
        .load::<Table>(&mut conn)
        .expect("tables");
    for table in tables {
        diesel::sql_query(format!("ANALYZE \"{schema}\".\"{}\"", table.tablename)).execute(&mut conn).expect("analyze");
    }
}

fn a_day_of_work(app: &TestApp) {
    let receiver = LoopbackServer::start(|_| (200, "text/plain", String::new()));
    let merchant = app.new_merchant();
    let hooks = serde_json::json!({ "url": format!("{}/hooks", receiver.address) }).to_string();
    assert_eq!(app.post_raw("/webhook-endpoints", Some(&merchant.key), &hooks).status, 201);
    let auth = format!("Bearer {}", merchant.key);

    let body = app.checkout_body(&merchant);
    let (page, order_id) = app.create_checkout(&merchant, &body);
    assert_eq!(app.post_checkout(&merchant.key, &body).header("idempotent-replayed"), Some("true"));
    let claim = body["checkoutClaim"].as_str().unwrap();
    assert_eq!(app.post_checkout(&merchant.key, &app.body_with(claim)).status, 409);
    app.get_order(&merchant.key, &order_id);
    assert_eq!(app.pay(&page, "4000000000000002").status, 402);
    assert_eq!(app.pay(&page, "4242424242424242").status, 303);

    let (cancelled_page, _) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let form_token = app.form_token(&cancelled_page);
    app.post_form(&format!("{cancelled_page}/cancel"), &[("form_token", &form_token)]);
    let (_, cancelled) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.cancel_order(&merchant.key, &cancelled).status, 200);

    // A charge whose answer is lost, resolved by asking the provider.
    let (stuck, _) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    std::thread::scope(|scope| {
        app.provider.hold(Hold::AfterCharging);
        let pay = scope.spawn(|| app.pay(&stuck, "4242424242424242"));
        app.provider.wait_for_held(1);
        app.clock.advance(chrono::Duration::minutes(3));
        app.sweep();
        app.provider.release();
        pay.join().unwrap();
    });

    let webhooks = app.jobs.webhooks();
    while webhooks.dispatch_once(10).unwrap() > 0 {}
    app.request("GET", "/webhook-endpoints", &[("Authorization", &auth)]);

    // Sessions run out, then idempotency records pass retention.
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    app.clock.advance(chrono::Duration::minutes(31));
    app.sweep();
    app.clock.advance(chrono::Duration::hours(25));
    app.sweep();
}

#[test]
fn the_hot_path_and_the_jobs_never_scan_a_table() {
    let test_db = TestDb::new(Backend::Postgres);
    let (admin, schema) = test_db.postgres_schema().expect("a PostgreSQL schema");
    let signer = ClaimSigner::generate();
    // The schema first, in a process of its own: building it scans tables, and that is not the
    // server's work.
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_checkout-server"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", &test_db.url)
        .env("RUST_LOG", "error")
        .output()
        .expect("run checkout-server migrate");
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    analyze_empty(&admin, &schema);
    let before = settled_scans(&admin, &schema);
    let app = spawn(test_db.shared(), signer);
    a_day_of_work(&app);
    drop(app);
    let scanned: Vec<String> = settled_scans(&admin, &schema)
        .into_iter()
        .map(|(table, scans)| (scans - before.get(&table).copied().unwrap_or(0), table))
        .filter(|(scans, _)| *scans > 0)
        .map(|(scans, table)| format!("{table}: {scans} sequential scans"))
        .collect();
    assert!(scanned.is_empty(), "queries without an index: {scanned:#?}");
}
