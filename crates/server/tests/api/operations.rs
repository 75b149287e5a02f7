//! What an operator relies on: health, readiness, request ids, metrics, the rate limit, retention,
//! logs that keep secrets out, and a graceful stop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use domain::claim::{ClaimPayload, ClaimSigner};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, TestDb};
use crate::on_both_backends;

fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend);
    let live = app.request("GET", "/healthz", &[]);
    assert_eq!((live.status, live.json()["status"].as_str()), (200, Some("ok")));
    let ready = app.request("GET", "/readyz", &[]);
    assert_eq!((ready.status, ready.json()["status"].as_str()), (200, Some("ready")));
    // A schema behind the code is not ready.
    app.execute("DELETE FROM __diesel_schema_migrations");
    let behind = app.request("GET", "/readyz", &[]);
    assert_eq!(behind.status, 503);
    assert_eq!(behind.json()["error"], "unavailable");
}

fn metrics_count_requests_and_outcomes(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);
    assert_eq!(app.post_checkout(&merchant.key, &body).status, 200);
    assert_eq!(app.post_checkout(&merchant.key, &body).status, 200);
    let mut reused = app.checkout_body(&merchant);
    reused["idempotencyKey"] = body["idempotencyKey"].clone();
    assert_eq!(app.post_checkout(&merchant.key, &reused).status, 422);
    let mut expired = app.claim_payload(&merchant);
    expired.iat -= 3600;
    expired.exp = expired.iat + 60;
    assert_eq!(app.post_checkout(&merchant.key, &app.body_with(&app.signer.sign(&expired))).status, 400);

    let metrics = app.request("GET", "/metrics", &[]);
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain"));
    for line in [
        "checkout_checkouts_created_total 1",
        "checkout_idempotent_replays_total 1",
        "checkout_idempotency_conflicts_total{kind=\"key_reused\"} 1",
        "checkout_claim_rejections_total{reason=\"claim_expired\"} 1",
        "checkout_http_requests_total{route=\"/checkout\",status=\"200\"} 2",
        "checkout_http_requests_total{route=\"/checkout\",status=\"422\"} 1",
    ] {
        assert!(metrics.text.lines().any(|l| l == line), "{line} missing from:\n{}", metrics.text);
    }
    for family in [
        "checkout_http_request_duration_seconds_bucket",
        "checkout_db_pool_connections_in_use",
        "checkout_db_pool_connections_idle",
    ] {
        assert!(metrics.text.contains(family), "{family} missing");
    }
}

fn idempotency_records_are_purged_after_retention(backend: Backend) {
    // The test sweeps by hand.
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_SWEEP_INTERVAL_SECONDS", "3600")]);
    let merchant = app.new_merchant();
    let old = app.checkout_body(&merchant);
    assert_eq!(app.post_checkout(&merchant.key, &old).status, 200);
    // A day passes (CHECKOUT_IDEMPOTENCY_TTL_SECONDS, 86400 by default); then another request.
    app.clock.advance(chrono::Duration::days(1) + chrono::Duration::seconds(1));
    assert_eq!(app.post_checkout(&merchant.key, &app.checkout_body(&merchant)).status, 200);
    let key = old["idempotencyKey"].as_str().unwrap();
    assert_eq!(app.sweep()[2], 1, "only the old record goes");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM idempotency_keys"), 1);
    assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM idempotency_keys WHERE idempotency_key = '{key}'")), 0);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM orders"), 2, "orders stay");
}

fn a_backlog_of_stale_records_is_purged_whole_in_short_batches(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_SWEEP_INTERVAL_SECONDS", "3600")]);
    app.wait_for_first_sweep();
    let merchant = app.new_merchant();
    // More than two batches of records past retention, all made at the same instant.
    app.execute(&format!(
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2345) \
         INSERT INTO idempotency_keys (merchant_id, livemode, idempotency_key, fingerprint, outcome, created_at) \
         SELECT '{}', FALSE, 'old-' || i, 'x', '{{}}', '2020-01-01 00:00:00' FROM s",
        merchant.id
    ));
    let fresh = app.checkout_body(&merchant);
    assert_eq!(app.post_checkout(&merchant.key, &fresh).status, 200);
    assert_eq!(app.sweep()[2], 2345);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM idempotency_keys"), 1, "the fresh record stays");
    let replayed = app.post_checkout(&merchant.key, &fresh);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
}

fn a_backlog_of_ended_sessions_larger_than_a_batch_expires_in_one_sweep(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_SWEEP_INTERVAL_SECONDS", "3600")]);
    app.wait_for_first_sweep();
    let merchant = app.new_merchant();
    let orders: Vec<String> =
        (0..520).map(|_| app.create_checkout(&merchant, &app.checkout_body(&merchant)).1).collect();
    app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(app.sweep()[1], 520, "more than one batch of 500");
    for order in [&orders[0], &orders[519]] {
        assert_eq!(app.get_order(&merchant.key, order)["status"], "expired");
    }
    assert_eq!(app.sweep()[1], 0, "nothing is expired twice");
}

on_both_backends!(
    a_backlog_of_ended_sessions_larger_than_a_batch_expires_in_one_sweep,
    health_and_readiness,
    metrics_count_requests_and_outcomes,
    idempotency_records_are_purged_after_retention,
    a_backlog_of_stale_records_is_purged_whole_in_short_batches,
);

#[test]
fn request_ids_are_kept_or_made_and_always_returned() {
    let app = TestApp::spawn(Backend::Sqlite);
    let kept = app.request("GET", "/healthz", &[("X-Request-Id", "trace-42.a")]);
    assert_eq!(kept.header("x-request-id"), Some("trace-42.a"));
    let made = app.request("GET", "/healthz", &[]);
    assert!(made.header("x-request-id").unwrap().starts_with("req_"));
    let odd = app.request("GET", "/healthz", &[("X-Request-Id", "has spaces and <html>")]);
    assert!(odd.header("x-request-id").unwrap().starts_with("req_"), "an unsafe id is replaced");
    let error = app.request("GET", "/nowhere", &[]);
    assert!(error.header("x-request-id").is_some(), "errors carry one too");
}

#[test]
fn a_merchant_over_its_rate_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("CHECKOUT_RATE_LIMIT_PER_SECOND", "1"), ("CHECKOUT_RATE_LIMIT_BURST", "2")],
    );
    let busy = app.new_merchant();
    let calm = app.new_merchant();
    let statuses: Vec<u16> = (0..3).map(|_| app.post_checkout(&busy.key, &app.checkout_body(&busy)).status).collect();
    assert_eq!(statuses, [200, 200, 429]);
    let limited = app.post_checkout(&busy.key, &app.checkout_body(&busy));
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"], "rate_limited");
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(app.post_checkout(&calm.key, &app.checkout_body(&calm)).status, 200, "merchants have their own buckets");
    assert!(app.request("GET", "/metrics", &[]).text.contains("checkout_rate_limited_total{limit=\"merchant\"} 2"));
}

/// A line of the banner after `prefix`, trimmed.
fn after<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines.iter().find_map(|l| l.trim().strip_prefix(prefix)).unwrap_or_else(|| panic!("no {prefix:?} in {lines:#?}"))
}

#[test]
fn logs_are_json_keep_secrets_out_and_sigterm_lets_requests_finish() {
    let db = TestDb::new(Backend::Sqlite);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_checkout-server"))
        .current_dir(db.dir())
        .env_clear()
        .env("CHECKOUT_BIND", format!("127.0.0.1:{port}"))
        .env("CHECKOUT_PUBLIC_URL", &address)
        .env("CHECKOUT_IDEMPOTENCY_WAIT_MS", "20000")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let banner: Vec<String> = receiver.iter().take_while(|l| !l.starts_with("More claims")).collect();
    let key = format!("sk_test_{}", after(&banner, "sk_test_"));
    let body: Value = serde_json::from_str(after(&banner, "-d '").trim_end_matches('\'')).unwrap();
    let claim = body["checkoutClaim"].as_str().unwrap().to_owned();
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    // The status, or the transport error as text.
    let post = |body: &Value| -> Result<u16, String> {
        match agent
            .post(&format!("{address}/checkout"))
            .set("Authorization", &format!("Bearer {key}"))
            .send_json(body.clone())
        {
            Ok(response) => Ok(response.status()),
            Err(ureq::Error::Status(status, _)) => Ok(status),
            Err(error) => Err(error.to_string()),
        }
    };
    let created: Value = agent
        .post(&format!("{address}/checkout"))
        .set("Authorization", &format!("Bearer {key}"))
        .send_json(body.clone())
        .unwrap()
        .into_json()
        .unwrap();
    let page_url = created["checkoutUrl"].as_str().unwrap().to_owned();
    let token = page_url.rsplit('/').next().unwrap().to_owned();
    assert_eq!(agent.get(&page_url).call().unwrap().status(), 200);

    // A request stuck behind a held write lock is in flight when SIGTERM arrives.
    let secrets: Value =
        serde_json::from_str(&std::fs::read_to_string(db.dir().join("data/dev-secrets.json")).unwrap()).unwrap();
    let signer = ClaimSigner::from_private("dev", secrets["claimPrivateKey"].as_str().unwrap()).unwrap();
    let merchant = secrets["demoMerchantId"].as_str().unwrap().parse().unwrap();
    let items = vec![domain::claim::ClaimItem { sku: "S".into(), name: "Sock".into(), quantity: 1, unit_amount: 900 }];
    let mut second = body.clone();
    second["checkoutClaim"] = Value::from(signer.sign(&ClaimPayload::new(merchant, items, chrono::Utc::now(), 600)));
    second["idempotencyKey"] = Value::from("in-flight");
    let mut holder = SqliteConnection::establish(&db.dir().join("data/checkout.db").display().to_string()).unwrap();
    holder.batch_execute("PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE").unwrap();
    let in_flight = std::thread::scope(|scope| {
        let request = scope.spawn(|| post(&second));
        // The request is in flight once the server counts it (beside the metrics request itself).
        let deadline = Instant::now() + Duration::from_secs(30);
        while in_flight(&agent, &address) < 2 {
            assert!(Instant::now() < deadline, "the request never reached the server");
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        // Shutdown has begun once the listener is closed.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "the server kept listening after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
        holder.batch_execute("ROLLBACK").unwrap();
        request.join().unwrap()
    });

    assert_eq!(in_flight, Ok(200), "the in-flight request finished");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");

    let logs = logs.join().unwrap();
    assert!(!logs.is_empty());
    for secret in [key.as_str(), &key[8..], claim.as_str(), token.as_str()] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
    let lines: Vec<Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["target"] == "access").collect();
    let checkout = access.iter().find(|l| l["route"] == "/checkout").expect("an access line for /checkout");
    assert!(checkout["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(checkout["merchant_id"], secrets["demoMerchantId"]);
    assert_eq!(checkout["status"], 200);
    assert!(access.iter().any(|l| l["route"] == "/c/{token}"), "page routes are logged by pattern");
}

/// The server's `checkout_http_requests_in_flight`, read from `/metrics`.
fn in_flight(agent: &ureq::Agent, address: &str) -> i64 {
    let text = agent.get(&format!("{address}/metrics")).call().unwrap().into_string().unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("checkout_http_requests_in_flight "))
        .expect("the in-flight gauge")
        .trim()
        .parse()
        .unwrap()
}
