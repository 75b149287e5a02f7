//! The operator's day: listing merchants and keys, rolling a key, knowing when a key was last used,
//! signing claims without the key in shell history, and trying a webhook endpoint.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::claim::ClaimSigner;
use serde_json::{json, Value};

use crate::helpers::{Backend, Incoming, LoopbackServer, TestApp, TestDb};
use crate::on_both_backends;

const BIN: &str = env!("CARGO_BIN_EXE_checkout-server");
const VERIFY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/webhooks");

fn run(db: &TestDb, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(db.dir()).env_clear().env("DATABASE_URL", &db.url).env("RUST_LOG", "warn");
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("run checkout-server")
}

fn json_out(db: &TestDb, args: &[&str]) -> Value {
    let output = run(db, args, &[]);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn error_out(output: &Output) -> (i32, Value) {
    let error = serde_json::from_slice(&output.stderr)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().unwrap(), error)
}

fn merchants_and_keys_are_listed_for_people_and_scripts(backend: Backend) {
    let db = TestDb::new(backend);
    let first = json_out(&db, &["merchant", "create", "--name", "First Shop"]);
    let second = json_out(&db, &["merchant", "create", "--name", "Second Shop"]);
    let listed = json_out(&db, &["merchant", "list"]);
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first["id"].as_str().unwrap(), second["id"].as_str().unwrap()], "oldest first");

    let merchant = first["id"].as_str().unwrap();
    let test_key = json_out(&db, &["key", "create", "--merchant", merchant]);
    let live_key = json_out(&db, &["key", "create", "--merchant", merchant, "--live"]);
    json_out(&db, &["key", "create", "--merchant", second["id"].as_str().unwrap()]);
    json_out(&db, &["key", "revoke", test_key["id"].as_str().unwrap()]);
    let keys = json_out(&db, &["key", "list", "--merchant", merchant]);
    assert_eq!(keys.as_array().unwrap().len(), 2, "only this merchant's: {keys}");
    let listed_test = &keys[0];
    assert_eq!(listed_test["id"], test_key["id"]);
    // `livemode` is a boolean, as the API writes it; `mode` says it in words.
    assert_eq!((&listed_test["livemode"], &keys[1]["livemode"]), (&json!(false), &json!(true)));
    assert_eq!((listed_test["mode"].as_str(), keys[1]["mode"].as_str()), (Some("test"), Some("live")));
    assert_eq!(
        (&test_key["livemode"], &live_key["livemode"], &live_key["mode"]),
        (&json!(false), &json!(true), &json!("live"))
    );
    assert_eq!(listed_test["hint"], test_key["hint"]);
    assert!(listed_test["createdAt"].is_string() && listed_test["revokedAt"].is_string());
    assert!(listed_test["lastUsedAt"].is_null() && listed_test["expiresAt"].is_null());
    assert!(keys.as_array().unwrap().iter().all(|k| k.get("secret").is_none()), "never a secret");
    assert_eq!(json_out(&db, &["key", "list"]).as_array().unwrap().len(), 3);

    let table = run(&db, &["key", "list", "--merchant", merchant, "--format", "table"], &[]);
    let table = String::from_utf8(table.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "a header and a row per key:\n{table}");
    assert!(lines[0].starts_with("id ") && lines[0].contains("lastUsedAt"), "{table}");
    assert!(lines[2].starts_with(live_key["id"].as_str().unwrap()), "{table}");
}

fn a_rolled_key_works_until_its_expiry_then_answers_403(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let old_id = merchant.key_id.to_string();
    let rolled = json_out(&app.test_db, &["key", "roll", &old_id, "--expires-in", "1h"]);
    let new_key = rolled["secret"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("sk_test_"), "same mode: {rolled}");
    assert_eq!(rolled["merchantId"], merchant.id.to_string());
    assert_eq!(rolled["previous"]["id"], old_id.as_str());
    assert_eq!(
        (&rolled["livemode"], &rolled["previous"]["livemode"], &rolled["mode"]),
        (&json!(false), &json!(false), &json!("test"))
    );
    let expires: chrono::DateTime<chrono::Utc> = rolled["previous"]["expiresAt"].as_str().unwrap().parse().unwrap();
    let hour = (expires - chrono::Utc::now()).num_seconds();
    assert!((3500..=3600).contains(&hour), "the old key works for the hour: {rolled}");

    assert_eq!(app.post_checkout(&merchant.key, &app.checkout_body(&merchant)).status, 200, "the old key still works");
    let with_new = crate::helpers::TestMerchant { key: new_key.clone(), ..merchant.clone() };
    assert_eq!(app.post_checkout(&new_key, &app.checkout_body(&with_new)).status, 200, "and so does the new one");

    // A key is rolled once: rolling it again would mint another secret each time.
    let keys = |app: &TestApp| json_out(&app.test_db, &["key", "list"]).as_array().unwrap().len();
    assert_eq!(keys(&app), 2);
    for again in ["0", "48h"] {
        let (status, error) = error_out(&run(&app.test_db, &["key", "roll", &old_id, "--expires-in", again], &[]));
        assert_eq!((status, error["error"].as_str()), (1, Some("key_already_rolled")), "{error}");
        assert_eq!((&error["keyId"], &error["expiresAt"]), (&json!(old_id), &rolled["previous"]["expiresAt"]));
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(&old_id) && message.contains("expires at"), "{message}");
        assert!(message.contains(&format!("key revoke {old_id}")) && message.contains("roll the key that replaced it"));
    }
    assert_eq!(keys(&app), 2, "no key was made");
    assert_eq!(app.post_checkout(&merchant.key, &app.checkout_body(&merchant)).status, 200, "nor the expiry moved");

    // Revoking ends it now.
    json_out(&app.test_db, &["key", "revoke", &old_id]);
    let refused = app.post_checkout(&merchant.key, &app.checkout_body(&merchant));
    assert_eq!((refused.status, refused.json()["error"].as_str()), (403, Some("forbidden")), "{}", refused.text);
    let order = app.request(
        "GET",
        "/orders/ord_01M891Q13DE788PCK3TYQBZJ40",
        &[("Authorization", &format!("Bearer {}", merchant.key))],
    );
    assert_eq!(order.status, 403, "on every endpoint");
    assert_eq!(app.post_checkout(&new_key, &app.checkout_body(&with_new)).status, 200);

    let (status, error) = error_out(&run(&app.test_db, &["key", "roll", &old_id, "--expires-in", "1h"], &[]));
    assert_eq!((status, error["error"].as_str()), (1, Some("key_revoked")));

    // The new key rolls in its turn; once expired, it is not rolled again either.
    let new_id = rolled["id"].as_str().unwrap();
    let next = json_out(&app.test_db, &["key", "roll", new_id, "--expires-in", "0"]);
    assert_eq!(next["previous"]["id"], new_id);
    let (status, error) = error_out(&run(&app.test_db, &["key", "roll", new_id, "--expires-in", "0"], &[]));
    assert_eq!((status, error["error"].as_str()), (1, Some("key_already_rolled")), "{error}");
    assert!(error["message"].as_str().unwrap().contains("expired at"), "{error}");
    assert_eq!(keys(&app), 3, "one key per roll");
    let (status, error) = error_out(&run(&app.test_db, &["key", "roll", &old_id, "--expires-in", "soon"], &[]));
    assert_eq!((status, error["error"].as_str()), (2, Some("usage")));
    let (status, _) =
        error_out(&run(&app.test_db, &["key", "roll", "key_01M891Q13DE788PCK3TYQBZJ40", "--expires-in", "1h"], &[]));
    assert_eq!(status, 1);
}

fn racing_rolls_of_one_key_make_one_key(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let racers = 8;
    let barrier = std::sync::Barrier::new(racers);
    let rolled: Vec<bool> = std::thread::scope(|scope| {
        let rolls: Vec<_> = (0..racers)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    app.merchants.roll_key(merchant.key_id, chrono::Duration::hours(1))
                })
            })
            .collect();
        rolls
            .into_iter()
            .map(|roll| match roll.join().unwrap() {
                Ok(_) => true,
                Err(domain::merchants::MerchantError::KeyAlreadyRolled { .. }) => false,
                Err(other) => panic!("{other}"),
            })
            .collect()
    });
    assert_eq!(rolled.iter().filter(|made| **made).count(), 1, "one roll wins: {rolled:?}");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM api_keys"), 2, "and makes the one new key");
}

fn last_use_is_written_in_batches_never_on_the_requests_path(backend: Backend) {
    // The sweep runs once at start, then not for an hour: what the requests wrote is all there is.
    let mut app = TestApp::spawn_with(backend, &[("CHECKOUT_SWEEP_INTERVAL_SECONDS", "3600")]);
    app.wait_for_first_sweep();
    let merchant = app.new_merchant();
    let idle = app.new_merchant();
    let before = app.count("SELECT COUNT(*) AS n FROM api_keys WHERE last_used_at IS NOT NULL");
    assert_eq!(before, 0);
    for _ in 0..3 {
        assert_eq!(app.post_checkout(&merchant.key, &app.checkout_body(&merchant)).status, 200);
    }
    let order = app.request("GET", "/webhook-endpoints", &[("Authorization", &format!("Bearer {}", merchant.key))]);
    assert_eq!(order.status, 200);
    let used = "SELECT COUNT(*) AS n FROM api_keys WHERE last_used_at IS NOT NULL";
    assert_eq!(app.count(used), 0, "no request wrote last_used_at");

    app.stop();
    let key = merchant.key_id.to_string();
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) AS n FROM api_keys WHERE id = '{key}' AND last_used_at IS NOT NULL")),
        1
    );
    assert_eq!(app.count(used), 1, "written at shutdown, for the key that was used only");
    let listed = json_out(&app.test_db, &["key", "list", "--merchant", &merchant.id.to_string()]);
    assert!(listed[0]["lastUsedAt"].is_string(), "{listed}");
    let listed = json_out(&app.test_db, &["key", "list", "--merchant", &idle.id.to_string()]);
    assert!(listed[0]["lastUsedAt"].is_null());
}

fn the_sweep_writes_last_use_while_the_server_runs(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_SWEEP_INTERVAL_SECONDS", "1")]);
    let merchant = app.new_merchant();
    assert_eq!(app.post_checkout(&merchant.key, &app.checkout_body(&merchant)).status, 200);
    let used =
        format!("SELECT COUNT(*) AS n FROM api_keys WHERE id = '{}' AND last_used_at IS NOT NULL", merchant.key_id);
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.count(&used) == 0 {
        assert!(Instant::now() < deadline, "the sweep never wrote the key's last use");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A webhook receiver on loopback that answers `status` and keeps what it got.
fn receiver(status: u16) -> (LoopbackServer, Arc<Mutex<Vec<Incoming>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let server = LoopbackServer::start(move |request| {
        kept.lock().unwrap().push(request);
        (status, "text/plain", format!("answered {status} by the test receiver"))
    });
    (server, received)
}

/// What `docs/webhooks/verify.js` (Node) and `verify.py` (Python) say of a delivery.
fn verified_by_snippets(secret: &str, delivery: &Incoming, body: &str, now: Option<i64>) -> (String, String) {
    let timestamp = delivery.header("x-fanfare-timestamp");
    let signature = delivery.header("x-fanfare-signature");
    let node_now = now.map_or("undefined".to_owned(), |n| n.to_string());
    let js = format!(
        "const {{ verify }} = require({dir:?} + '/verify.js'); \
         console.log(verify({secret:?}, {timestamp:?}, {signature:?}, Buffer.from({body:?}, 'utf8'), {node_now}))",
        dir = VERIFY_DIR,
    );
    let node = Command::new("node").args(["-e", &js]).output().expect("node is on the machine");
    assert!(node.status.success(), "{}", String::from_utf8_lossy(&node.stderr));
    let py_now = now.map_or("None".to_owned(), |n| n.to_string());
    let py = format!(
        "import sys; sys.path.insert(0, {dir:?}); from verify import verify; \
         print(verify({secret:?}, {timestamp:?}, {signature:?}, {body:?}.encode(), now={py_now}))",
        dir = VERIFY_DIR,
    );
    let python = Command::new("python3").args(["-c", &py]).output().expect("python3");
    assert!(python.status.success(), "{}", String::from_utf8_lossy(&python.stderr));
    let text = |o: Output| String::from_utf8(o.stdout).unwrap().trim().to_lowercase();
    (text(node), text(python))
}

fn webhook_test_sends_a_signed_sample_that_both_snippets_verify(backend: Backend) {
    let db = TestDb::new(backend);
    let merchant = json_out(&db, &["merchant", "create", "--name", "Hook Shop"]);
    let merchant = merchant["id"].as_str().unwrap();
    let (server, received) = receiver(200);
    let url = format!("{}/hooks", server.address);
    let endpoint = json_out(&db, &["webhook", "add", "--merchant", merchant, "--url", &url]);
    let (id, secret) = (endpoint["id"].as_str().unwrap(), endpoint["secret"].as_str().unwrap());

    let answer = json_out(&db, &["webhook", "test", id, "--type", "payment.failed"]);
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"], "answered 200 by the test receiver");
    assert!(answer["latencyMs"].is_u64() && answer["eventId"].as_str().unwrap().starts_with("evt_"), "{answer}");
    let delivery = received.lock().unwrap().remove(0);
    let event = delivery.json();
    assert_eq!((event["type"].as_str(), event["id"].as_str()), (Some("payment.failed"), answer["eventId"].as_str()));
    assert_eq!(event["merchantId"], merchant);
    assert_eq!(event["data"]["payment"]["status"], "failed");
    assert_eq!(delivery.header("x-fanfare-webhook-id"), id);
    assert_eq!(verified_by_snippets(secret, &delivery, &delivery.body, None), ("true".into(), "true".into()));
    let tampered = delivery.body.replace("usd", "eur");
    assert_eq!(verified_by_snippets(secret, &delivery, &tampered, None), ("false".into(), "false".into()));
    assert_eq!(
        app_count(&db, "SELECT COUNT(*) AS n FROM webhook_events"),
        0,
        "a test event is sent, never stored or retried"
    );

    let default_type = json_out(&db, &["webhook", "test", id]);
    assert_eq!(default_type["type"], "order.completed");

    let (failing, _) = receiver(500);
    let broken = json_out(&db, &["webhook", "add", "--merchant", merchant, "--url", &format!("{}/h", failing.address)]);
    let output = run(&db, &["webhook", "test", broken["id"].as_str().unwrap()], &[]);
    let (status, error) = error_out(&output);
    assert_eq!((status, error["error"].as_str()), (1, Some("webhook_failed")), "{error}");
    assert_eq!(error["answer"]["status"], 500);
    assert!(error["message"].as_str().unwrap().contains("500"));
    let (status, error) = error_out(&run(&db, &["webhook", "test", "we_01M891Q13DE788PCK3TYQBZJ40"], &[]));
    assert_eq!((status, error["error"].as_str()), (1, Some("not_found")));
    let (status, _) = error_out(&run(&db, &["webhook", "test", id, "--type", "order.eaten"], &[]));
    assert_eq!(status, 2);
}

fn app_count(db: &TestDb, sql: &str) -> i64 {
    crate::helpers::count(&db.database(), sql)
}

on_both_backends!(
    merchants_and_keys_are_listed_for_people_and_scripts,
    a_rolled_key_works_until_its_expiry_then_answers_403,
    racing_rolls_of_one_key_make_one_key,
    last_use_is_written_in_batches_never_on_the_requests_path,
    the_sweep_writes_last_use_while_the_server_runs,
    webhook_test_sends_a_signed_sample_that_both_snippets_verify,
);

#[test]
fn the_node_snippet_verifies_a_real_delivery_and_refuses_forgeries_and_replays() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("CHECKOUT_WEBHOOK_POLL_MS", "20")]);
    let merchant = app.new_merchant();
    let (server, received) = receiver(200);
    let body = json!({"url": format!("{}/hooks", server.address), "events": ["order.created"]}).to_string();
    let endpoint = app.post_raw("/webhook-endpoints", Some(&merchant.key), &body);
    assert_eq!(endpoint.status, 201, "{}", endpoint.text);
    let secret = endpoint.json()["secret"].as_str().unwrap().to_owned();
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let deadline = Instant::now() + Duration::from_secs(15);
    while received.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no delivery arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    let delivery = received.lock().unwrap().remove(0);
    assert_eq!(delivery.json()["type"], "order.created");
    assert_eq!(verified_by_snippets(&secret, &delivery, &delivery.body, None), ("true".into(), "true".into()));
    let forged = verified_by_snippets("whsec_not-the-secret", &delivery, &delivery.body, None);
    assert_eq!(forged, ("false".into(), "false".into()));
    let later = delivery.header("x-fanfare-timestamp").parse::<i64>().unwrap() + 301;
    let replayed = verified_by_snippets(&secret, &delivery, &delivery.body, Some(later));
    assert_eq!(replayed, ("false".into(), "false".into()), "a replay after five minutes");
}

#[test]
fn claim_keys_are_made_in_production_and_private_keys_never_need_the_command_line() {
    let db = TestDb::new(Backend::Sqlite);
    let production = [("CHECKOUT_ENV", "production")];
    let keygen = run(&db, &["claim", "keygen"], &production);
    assert!(keygen.status.success(), "keygen needs no configuration: {}", String::from_utf8_lossy(&keygen.stderr));
    let pair: Value = serde_json::from_slice(&keygen.stdout).unwrap();
    assert!(pair["claimKeysEntry"].as_str().unwrap().starts_with(pair["kid"].as_str().unwrap()));

    // A key that starts with '-', as one in 64 does, given as a separate argument.
    let signer =
        std::iter::repeat_with(ClaimSigner::generate).find(|s| s.private_key().expose().starts_with('-')).unwrap();
    let (kid, private_key) = (signer.kid().to_owned(), signer.private_key().expose().to_owned());
    let merchant = "mer_01M891Q13DE788PCK3TYQBZJ40";
    let issue =
        ["claim", "issue", "--kid", &kid, "--merchant", merchant, "--item", "sku=A,name=A,quantity=1,unitAmount=100"];
    let verify = |output: Output| {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let claim = String::from_utf8(output.stdout).unwrap();
        let keys = domain::claim::ClaimKeys::parse(&format!("{kid}:{}", signer.public_key())).unwrap();
        keys.verify(claim.trim(), merchant.parse().unwrap(), chrono::Utc::now()).expect("a claim the key verifies");
    };
    let with_flag = [&issue[..], &["--private-key", &private_key]].concat();
    verify(run(&db, &with_flag, &production));

    let file = db.dir().join("claim-key");
    std::fs::write(&file, format!("{private_key}\n")).unwrap();
    let file = file.display().to_string();
    let from_file = [&issue[..], &["--private-key-file", &file]].concat();
    verify(run(&db, &from_file, &production));

    verify(run(&db, &issue, &[("CHECKOUT_ENV", "production"), ("CHECKOUT_CLAIM_PRIVATE_KEY", &private_key)]));

    let (status, error) = error_out(&run(&db, &issue, &production));
    assert_eq!((status, error["error"].as_str()), (2, Some("usage")), "no key at all: {error}");
    assert!(!Path::new(&db.dir().join("data")).exists(), "production never makes development secrets");
}

#[test]
fn head_answers_wherever_get_does() {
    let app = TestApp::spawn(Backend::Sqlite);
    let merchant = app.new_merchant();
    let (page, order) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let auth = format!("Bearer {}", merchant.key);
    let embedded = {
        let mut body = app.checkout_body(&merchant);
        body["mode"] = json!("embedded");
        app.create_checkout(&merchant, &body).0
    };
    let order_path = format!("/orders/{order}");
    let api_order_path = format!("/api/orders/{order}");
    let paths = [
        ("/healthz", false),
        ("/readyz", false),
        ("/metrics", false),
        ("/openapi.yaml", false),
        ("/api/openapi.json", false),
        ("/docs", false),
        ("/api/docs", false),
        ("/assets/checkout.css", false),
        ("/assets/checkout.js", false),
        ("/assets/docs.js", false),
        (page.as_str(), false),
        (embedded.as_str(), false),
        (order_path.as_str(), true),
        (api_order_path.as_str(), true),
        ("/webhook-endpoints", true),
    ];
    for (path, with_key) in paths {
        let headers: Vec<(&str, &str)> = if with_key { vec![("Authorization", auth.as_str())] } else { vec![] };
        let get = app.request("GET", path, &headers);
        let head = app.request("HEAD", path, &headers);
        assert_eq!(get.status, 200, "GET {path}: {}", get.text);
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(head.header("content-type"), get.header("content-type"), "HEAD {path}");
        assert!(head.text.is_empty(), "HEAD {path} has no body");
    }
    let refused = app.request("HEAD", &order_path, &[]);
    assert_eq!(refused.status, 401, "HEAD is authenticated as GET is");
    let wrong = app.request("PUT", &order_path, &[("Authorization", auth.as_str())]);
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("GET, HEAD")));
}

#[test]
fn claim_issue_refuses_what_the_server_would_refuse() {
    let db = TestDb::new(Backend::Sqlite);
    let merchant = "mer_01M891Q13DE788PCK3TYQBZJ40";
    let issue = |extra: &[&str], vars: &[(&str, &str)]| {
        let args = [&["claim", "issue", "--merchant", merchant][..], extra].concat();
        run(&db, &args, vars)
    };
    let item = "sku=A,name=A,quantity=1,unitAmount=100";
    for (extra, reason, says) in [
        (
            &["--item", "sku=A,name=A,quantity=0,unitAmount=100"][..],
            "claim_invalid_items",
            "\"quantity\" must be at least 1",
        ),
        (&["--item", item, "--currency", "xyz"][..], "claim_invalid_items", "\"xyz\" is not an ISO 4217 currency code"),
        (&["--item", item, "--ttl-seconds", "7200"][..], "claim_lifetime_too_long", "at most 3600 seconds"),
        (&["--item", item, "--ttl-seconds", "0"][..], "claim_invalid_payload", "\"exp\" is not after \"iat\""),
    ] {
        let output = issue(extra, &[]);
        assert!(output.stdout.is_empty(), "nothing is signed: {extra:?}");
        let (status, error) = error_out(&output);
        assert_eq!(
            (status, error["error"].as_str(), error["reason"].as_str()),
            (1, Some("invalid_claim"), Some(reason))
        );
        assert!(error["message"].as_str().unwrap().contains(says), "{error}");
    }
    let longer = issue(&["--item", item, "--ttl-seconds", "7200"], &[("CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS", "7200")]);
    assert!(longer.status.success(), "the server's own limit counts: {}", String::from_utf8_lossy(&longer.stderr));
    let (status, error) = error_out(&issue(&["--item", item], &[("CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS", "0")]));
    assert_eq!((status, error["error"].as_str()), (2, Some("configuration")));
}
