//! Webhooks from the outside: a receiver on loopback verifies signatures and counts deliveries.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::livemode::Livemode;
use domain::secret::Secret;
use domain::webhook::signature;
use serde_json::{json, Value};

use crate::helpers::{Backend, Incoming, LoopbackServer, TestApp, TestMerchant};
use crate::on_both_backends;

#[derive(Default)]
struct Script {
    answers: VecDeque<u16>,
    delay: Duration,
    received: Vec<Incoming>,
    in_flight: HashMap<String, usize>,
    most_at_once: usize,
}

/// A merchant's webhook receiver: answers from a script (200 once it runs out), records requests
/// and how many of one delivery were ever in flight at once.
pub(crate) struct Receiver {
    pub(crate) url: String,
    script: Arc<Mutex<Script>>,
    _server: LoopbackServer,
}

impl Receiver {
    pub(crate) fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = script.clone();
        let server = LoopbackServer::start(move |request| {
            let delivery = request.header("x-fanfare-delivery-id").to_owned();
            let (status, delay) = {
                let mut script = shared.lock().unwrap();
                let status = script.answers.pop_front().unwrap_or(200);
                let in_flight = script.in_flight.entry(delivery.clone()).or_default();
                *in_flight += 1;
                let now = *in_flight;
                script.most_at_once = script.most_at_once.max(now);
                script.received.push(request);
                (status, script.delay)
            };
            std::thread::sleep(delay);
            *shared.lock().unwrap().in_flight.entry(delivery).or_default() -= 1;
            (status, "text/plain", "ok".to_owned())
        });
        Self { url: format!("{}/hooks", server.address), script, _server: server }
    }

    pub(crate) fn answer_with(&self, statuses: &[u16]) {
        self.script.lock().unwrap().answers.extend(statuses);
    }

    pub(crate) fn received(&self) -> Vec<Incoming> {
        self.script.lock().unwrap().received.clone()
    }

    /// Waits (bounded) until `count` requests have arrived.
    pub(crate) fn wait_for(&self, count: usize) -> Vec<Incoming> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.received().len() < count {
            assert!(Instant::now() < deadline, "{} of {count} deliveries arrived", self.received().len());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.received()
    }
}

pub(crate) fn register(app: &TestApp, merchant: &TestMerchant, url: &str, events: &[&str]) -> (String, String) {
    let response =
        app.post_raw("/webhook-endpoints", Some(&merchant.key), &json!({ "url": url, "events": events }).to_string());
    assert_eq!(response.status, 201, "{}", response.text);
    let body = response.json();
    (body["id"].as_str().unwrap().to_owned(), body["secret"].as_str().unwrap().to_owned())
}

fn assert_signed(delivery: &Incoming, secret: &str) {
    let timestamp: i64 = delivery.header("x-fanfare-timestamp").parse().unwrap();
    let expected = signature(&Secret::new(secret), timestamp, &delivery.body);
    let signatures: Vec<&str> = delivery.header("x-fanfare-signature").split(", ").collect();
    assert!(signatures.contains(&expected.as_str()), "{signatures:?}");
    assert!((Utc::now().timestamp() - timestamp).abs() < 60);
}

const FAST: &[(&str, &str)] = &[("CHECKOUT_WEBHOOK_POLL_MS", "50")];

/// The server's dispatcher waits an hour between its rounds (it makes one at start): the test
/// steps it by hand (`app.jobs.webhooks()`, `app.deliver_webhooks()`), on the server's clock.
const MANUAL: &[(&str, &str)] = &[("CHECKOUT_WEBHOOK_POLL_MS", "3600000")];

fn every_event_arrives_signed_in_order_with_the_order_as_the_api_shows_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, FAST);
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    let (endpoint, secret) = register(&app, &merchant, &receiver.url, &[]);
    let (page, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.pay(&page, "4000000000000002").status, 402);
    assert_eq!(app.pay(&page, "4242424242424242").status, 303);

    let deliveries = receiver.wait_for(3);
    let types: Vec<String> = deliveries.iter().map(|d| d.json()["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(types, ["order.created", "payment.failed", "order.completed"]);
    for delivery in &deliveries {
        assert_signed(delivery, &secret);
        let event = delivery.json();
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(event["merchantId"], merchant.id.to_string().as_str());
        assert_eq!(event["livemode"], false);
        assert_eq!(event["data"]["id"], order_id.as_str());
        assert_eq!(delivery.header("x-fanfare-webhook-id"), endpoint);
        assert_eq!(delivery.header("x-fanfare-retry-count"), "0");
        assert_eq!(delivery.header("x-fanfare-delivery-id"), format!("{}.{endpoint}", event["id"].as_str().unwrap()));
        assert!(delivery.header("x-fanfare-original-time").parse::<i64>().is_ok());
    }
    let completed = deliveries[2].json();
    assert_eq!(completed["data"], app.get_order(&merchant.key, &order_id), "data is the order as GET shows it");
    assert_eq!(completed["data"]["status"], "paid");
}

fn cancelled_and_expired_orders_are_told_and_subscriptions_filter(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MANUAL, &[("CHECKOUT_SWEEP_INTERVAL_SECONDS", "3600")]].concat());
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    register(&app, &merchant, &receiver.url, &["order.cancelled", "order.expired"]);
    let (_, cancelled) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let (_, expired) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.cancel_order(&merchant.key, &cancelled).status, 200);
    app.pass_session_end(&merchant, &expired);
    assert_eq!(app.sweep()[1], 1, "the open one expires");

    assert_eq!(app.deliver_webhooks(), 2, "order.created was not subscribed");
    let seen: Vec<(String, String)> = receiver
        .received()
        .iter()
        .map(|d| (d.json()["type"].as_str().unwrap().to_owned(), d.json()["data"]["id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(seen, [("order.cancelled".to_owned(), cancelled), ("order.expired".to_owned(), expired)]);
    assert_eq!(app.pending_webhooks(), 0, "and nothing else waits to be sent");
}

fn test_events_never_reach_live_endpoints(backend: Backend) {
    let app = TestApp::spawn_with(backend, MANUAL);
    let merchant = app.new_merchant();
    let live = app.new_key(&merchant, Livemode::Live);
    let live_receiver = Receiver::start();
    let test_receiver = Receiver::start();
    register(&app, &live, &live_receiver.url, &[]);
    register(&app, &merchant, &test_receiver.url, &[]);
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.deliver_webhooks(), 1, "one delivery, to the test endpoint");
    assert_eq!(test_receiver.received().len(), 1);
    assert!(live_receiver.received().is_empty());
    assert_eq!(app.pending_webhooks(), 0, "none waits for the live endpoint");
    let listed = app.request("GET", "/webhook-endpoints", &[("Authorization", &format!("Bearer {}", live.key))]);
    assert_eq!(listed.json()["data"].as_array().unwrap().len(), 1, "a key sees its mode's endpoints only");
}

fn an_event_committed_before_a_crash_is_delivered_after_restart(backend: Backend) {
    // No dispatcher runs in the first server: it "dies" between the commit and the delivery.
    let db = crate::helpers::TestDb::new(backend);
    let signer = domain::claim::ClaimSigner::generate();
    let first = TestApp::spawn_on(db.shared(), signer, MANUAL);
    let merchant = first.new_merchant();
    let receiver = Receiver::start();
    let (_, secret) = register(&first, &merchant, &receiver.url, &[]);
    let (_, order_id) = first.create_checkout(&merchant, &first.checkout_body(&merchant));
    assert_eq!(first.pending_webhooks(), 1, "committed with the order, not sent");
    assert!(receiver.received().is_empty());
    let signer = first.signer_copy();
    drop(first);

    let _second = TestApp::spawn_on(db.shared(), signer, FAST);
    let delivery = &receiver.wait_for(1)[0];
    assert_signed(delivery, &secret);
    assert_eq!(delivery.json()["data"]["id"], order_id.as_str());
}

fn a_receiver_that_fails_three_times_gets_it_on_the_fourth_attempt_on_schedule(backend: Backend) {
    let app = TestApp::spawn_with(backend, MANUAL);
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    register(&app, &merchant, &receiver.url, &["order.created"]);
    receiver.answer_with(&[500, 503, 502]);
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let (webhooks, clock) = (app.jobs.webhooks(), &app.clock);

    assert_eq!(webhooks.dispatch_once(10).unwrap(), 1, "first attempt");
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 1, "the first retry is immediate");
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 0, "the next waits a minute");
    clock.advance(chrono::Duration::seconds(50));
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 0, "still waiting (a minute, less a tenth at most)");
    clock.advance(chrono::Duration::seconds(17));
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 1, "third attempt after a minute");
    clock.advance(chrono::Duration::seconds(5 * 60 + 31));
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 1, "fourth attempt after five more");
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 0, "delivered: nothing left");

    let received = receiver.received();
    let counts: Vec<&str> = received.iter().map(|r| r.header("x-fanfare-retry-count")).collect();
    assert_eq!(counts, ["0", "1", "2", "3"]);
    assert!(received.iter().all(|r| r.body == received[0].body), "the same event, byte for byte");
    let delivered = webhooks.deliveries(Some("delivered"), 10).unwrap();
    assert_eq!((delivered.len(), delivered[0].attempts), (1, 4));
}

fn after_the_last_attempt_a_delivery_has_failed_and_can_be_resent(backend: Backend) {
    let app = TestApp::spawn_with(backend, MANUAL);
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    register(&app, &merchant, &receiver.url, &["order.created"]);
    receiver.answer_with(&[500; 9]);
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let (webhooks, clock) = (app.jobs.webhooks(), &app.clock);
    for _ in 0..9 {
        assert_eq!(webhooks.dispatch_once(10).unwrap(), 1);
        clock.advance(chrono::Duration::hours(27));
    }
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 0, "nine attempts, then no more");
    let failed = webhooks.deliveries(Some("failed"), 10).unwrap();
    assert_eq!((failed.len(), failed[0].attempts, failed[0].last_status), (1, 9, Some(500)));

    let event = failed[0].event_id.parse().unwrap();
    assert_eq!(webhooks.resend(event).unwrap(), 1);
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 1);
    assert_eq!(receiver.received().len(), 10);
    assert_eq!(webhooks.deliveries(Some("delivered"), 10).unwrap().len(), 1);
}

fn gone_disables_the_endpoint(backend: Backend) {
    let app = TestApp::spawn_with(backend, MANUAL);
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    register(&app, &merchant, &receiver.url, &[]);
    receiver.answer_with(&[410]);
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let (webhooks, clock) = (app.jobs.webhooks(), &app.clock);
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 1);
    let listed = app.request("GET", "/webhook-endpoints", &[("Authorization", &format!("Bearer {}", merchant.key))]);
    assert_eq!(listed.json()["data"][0]["status"], "disabled");
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    clock.advance(chrono::Duration::days(2));
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 0, "a disabled endpoint gets nothing");
    assert_eq!(receiver.received().len(), 1);
}

fn two_dispatchers_never_send_one_delivery_at_the_same_time(backend: Backend) {
    let app = TestApp::spawn_with(backend, MANUAL);
    let replica = TestApp::spawn_on(app.test_db.shared(), app.signer_copy(), MANUAL);
    let merchant = app.new_merchant();
    let receivers: Vec<Receiver> = (0..3).map(|_| Receiver::start()).collect();
    for receiver in &receivers {
        register(&app, &merchant, &receiver.url, &["order.created"]);
        receiver.script.lock().unwrap().delay = Duration::from_millis(100);
    }
    for _ in 0..4 {
        app.create_checkout(&merchant, &app.checkout_body(&merchant));
    }
    let (a, b) = (app.jobs.webhooks(), replica.jobs.webhooks());
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        for webhooks in [&a, &b] {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                for _ in 0..20 {
                    webhooks.dispatch_once(10).unwrap();
                }
            });
        }
    });
    for receiver in &receivers {
        let received = receiver.received();
        assert_eq!(received.len(), 4, "every event once per endpoint");
        let mut ids: Vec<String> = received.iter().map(|r| r.json()["id"].as_str().unwrap().to_owned()).collect();
        let arrival = ids.clone();
        ids.sort();
        assert_eq!(arrival, ids, "in the order they happened");
        ids.dedup();
        assert_eq!(ids.len(), 4, "no event twice");
        assert_eq!(receiver.script.lock().unwrap().most_at_once, 1);
    }
}

fn during_a_rotation_both_secrets_sign(backend: Backend) {
    let app = TestApp::spawn_with(backend, MANUAL);
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    let (endpoint, old) = register(&app, &merchant, &receiver.url, &["order.created"]);
    let (webhooks, clock) = (app.jobs.webhooks(), &app.clock);
    let (_, new) = webhooks.rotate_secret(endpoint.parse().unwrap()).unwrap();
    assert_ne!(new.expose(), old);
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    clock.advance(chrono::Duration::seconds(1));
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 1);
    let during = &receiver.received()[0];
    assert_eq!(during.header("x-fanfare-signature").split(", ").count(), 2);
    assert_signed(during, &old);
    assert_signed(during, new.expose());

    clock.advance(chrono::Duration::hours(25));
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 1);
    let after = &receiver.received()[1];
    assert_eq!(after.header("x-fanfare-signature").split(", ").count(), 1, "the old secret stopped after 24 h");
    let timestamp: i64 = after.header("x-fanfare-timestamp").parse().unwrap();
    assert_eq!(after.header("x-fanfare-signature"), signature(&new, timestamp, &after.body));
}

fn an_endpoint_disabled_by_gone_is_enabled_again_and_receives_new_events(backend: Backend) {
    let app = TestApp::spawn_with(backend, MANUAL);
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    let (endpoint, _) = register(&app, &merchant, &receiver.url, &["order.created"]);
    receiver.answer_with(&[410]);
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.deliver_webhooks(), 1, "410 Gone disables it");
    let statuses = |app: &TestApp| -> Vec<String> {
        let mut all: Vec<String> =
            app.jobs.webhooks().deliveries(None, 100).unwrap().into_iter().map(|d| d.status).collect();
        all.sort();
        all
    };
    assert_eq!(statuses(&app), ["cancelled", "failed"]);
    let post = |key: &str, path: String| app.send("POST", &path, Some(key), None, &[]);

    // Only its merchant, in its mode, may switch it.
    let stranger = app.new_merchant();
    let live = app.new_key(&merchant, Livemode::Live);
    for key in [&stranger.key, &live.key] {
        let refused = post(key, format!("/webhook-endpoints/{endpoint}/enable"));
        assert_eq!((refused.status, refused.json()["error"].as_str()), (404, Some("not_found")), "{}", refused.text);
    }
    for unknown in ["we_01M891Q31ZEN69RTCHWETWGCCF", "nope"] {
        assert_eq!(post(&merchant.key, format!("/webhook-endpoints/{unknown}/enable")).status, 404);
    }
    let wrong_method = app.request("GET", &format!("/webhook-endpoints/{endpoint}/enable"), &[]);
    assert_eq!((wrong_method.status, wrong_method.header("allow")), (405, Some("POST")));

    let enabled = post(&merchant.key, format!("/api/webhook-endpoints/{endpoint}/enable"));
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    let enabled = enabled.json();
    assert_eq!((enabled["id"].as_str(), enabled["status"].as_str()), (Some(endpoint.as_str()), Some("enabled")));
    assert!(enabled.get("disabledReason").is_none() && enabled.get("secret").is_none(), "{enabled}");
    assert_eq!(app.deliver_webhooks(), 0, "what was cancelled while it was disabled stays cancelled");
    assert_eq!(statuses(&app), ["cancelled", "failed"]);

    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.deliver_webhooks(), 1, "a new event is delivered");
    assert_eq!(statuses(&app), ["cancelled", "delivered", "failed"]);
    let cancelled = app.jobs.webhooks().deliveries(Some("cancelled"), 10).unwrap();
    assert_eq!(app.jobs.webhooks().resend(cancelled[0].event_id.parse().unwrap()).unwrap(), 1);
    assert_eq!(app.deliver_webhooks(), 1, "and a cancelled one once resent");
    assert_eq!(receiver.received().len(), 3);

    // Disabling cancels what waits, and nothing more is sent until it is enabled.
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let disabled = post(&merchant.key, format!("/webhook-endpoints/{endpoint}/disable"));
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    let disabled = disabled.json();
    assert_eq!(
        (disabled["status"].as_str(), disabled["disabledReason"].as_str()),
        (Some("disabled"), Some("disabled by the merchant"))
    );
    assert_eq!(app.pending_webhooks(), 0, "its pending delivery was cancelled");
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.deliver_webhooks(), 0);
    assert_eq!(receiver.received().len(), 3, "nothing reached it while disabled");
    let listed = app.request("GET", "/webhook-endpoints", &[("Authorization", &format!("Bearer {}", merchant.key))]);
    assert_eq!(listed.json()["data"][0]["status"], "disabled");

    // The operator's CLI does the same for any merchant's endpoint.
    let enabled = cli(&app, &["webhook", "enable", &endpoint], &[]);
    assert!(enabled.status.success(), "{}", String::from_utf8_lossy(&enabled.stderr));
    let enabled: Value = serde_json::from_slice(&enabled.stdout).unwrap();
    assert_eq!(enabled["status"], "enabled");
    let disabled = cli(&app, &["webhook", "disable", &endpoint], &[]);
    let disabled: Value = serde_json::from_slice(&disabled.stdout).unwrap();
    assert_eq!(
        (disabled["status"].as_str(), disabled["disabledReason"].as_str()),
        (Some("disabled"), Some("disabled by the operator"))
    );
    let unknown = cli(&app, &["webhook", "enable", "we_01M891Q31ZEN69RTCHWETWGCCF"], &[]);
    let error: Value = serde_json::from_slice(&unknown.stderr).unwrap();
    assert_eq!((unknown.status.code(), error["error"].as_str()), (Some(1), Some("not_found")));
}

fn deliveries_are_listed_by_a_known_status_only(backend: Backend) {
    let app = TestApp::spawn_with(backend, MANUAL);
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    let (endpoint, _) = register(&app, &merchant, &receiver.url, &["order.created"]);
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let auth = format!("Bearer {}", merchant.key);
    assert_eq!(
        app.request("DELETE", &format!("/webhook-endpoints/{endpoint}"), &[("Authorization", &auth)]).status,
        200
    );

    let listed = |status: &str| -> Value {
        let output = cli(&app, &["webhook", "deliveries", "--status", status], &[]);
        assert!(output.status.success(), "{status}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let cancelled = listed("cancelled");
    assert_eq!(cancelled.as_array().map(Vec::len), Some(1), "{cancelled}");
    assert_eq!(
        (cancelled[0]["endpointId"].as_str(), cancelled[0]["status"].as_str()),
        (Some(endpoint.as_str()), Some("cancelled"))
    );
    assert_eq!(listed("pending"), json!([]));

    let typo = cli(&app, &["webhook", "deliveries", "--status", "faild"], &[]);
    let error: Value = serde_json::from_slice(&typo.stderr).unwrap();
    assert_eq!((typo.status.code(), error["error"].as_str()), (Some(2), Some("usage")), "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("pending, delivered, failed, cancelled"), "{message}");
    let help = cli(&app, &["webhook", "deliveries", "--help"], &[]);
    let help = String::from_utf8(help.stdout).unwrap();
    for status in ["pending", "delivered", "failed", "cancelled"] {
        assert!(help.contains(&format!("- {status}:")), "{status} is not in --help:\n{help}");
    }
}

/// URLs whose host is this machine or its network, as written: no delivery to them could leave.
const INTERNAL_URLS: [&str; 7] = [
    "https://127.0.0.1:4991/x",
    "https://localhost/x",
    "https://[::1]/x",
    "https://10.0.0.5/x",
    "https://169.254.169.254/latest/meta-data",
    "https://0x7f000001/x",
    "https://hooks.localhost/x",
];

fn endpoints_naming_internal_hosts_are_refused_when_they_are_registered(backend: Backend) {
    let app = TestApp::spawn_on(
        crate::helpers::TestDb::new(backend),
        domain::claim::ClaimSigner::generate(),
        &[("CHECKOUT_ENV", "production"), ("CHECKOUT_PUBLIC_URL", "https://checkout.test")],
    );
    let merchant = app.new_merchant();
    for url in INTERNAL_URLS {
        let refused = app.post_raw("/webhook-endpoints", Some(&merchant.key), &json!({ "url": url }).to_string());
        assert_eq!((refused.status, refused.json()["error"].as_str()), (400, Some("invalid_request")), "{url}");
        let message = refused.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains("internal address") && message.contains("public addresses only"), "{message}");
    }
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM webhook_endpoints"), 0, "nothing refused was stored");
    let public = app.post_raw("/webhook-endpoints", Some(&merchant.key), r#"{"url": "https://shop.example/hooks"}"#);
    assert_eq!(public.status, 201, "a public name is checked when it is sent to: {}", public.text);

    // The operator's CLI applies the same rule, and so does development with internal hosts off.
    let signer = domain::claim::ClaimSigner::generate();
    let claim_keys = format!("{}:{}", signer.kid(), signer.public_key());
    let production = [
        ("CHECKOUT_ENV", "production"),
        ("CHECKOUT_PUBLIC_URL", "https://checkout.test"),
        ("CHECKOUT_CLAIM_KEYS", claim_keys.as_str()),
    ];
    let merchant_id = merchant.id.to_string();
    for vars in [&production[..], &[("CHECKOUT_WEBHOOKS_ALLOW_INTERNAL", "false")][..]] {
        for url in INTERNAL_URLS {
            let output = cli(&app, &["webhook", "add", "--merchant", &merchant_id, "--url", url], vars);
            assert_eq!(output.status.code(), Some(1), "{url} {vars:?}");
            let error: Value = serde_json::from_slice(&output.stderr).unwrap();
            assert_eq!(error["error"], "invalid_endpoint", "{url}: {error}");
            assert!(error["message"].as_str().unwrap().contains("internal address"), "{error}");
        }
    }
    let allowed = cli(&app, &["webhook", "add", "--merchant", &merchant_id, "--url", "http://127.0.0.1:9/h"], &[]);
    assert!(allowed.status.success(), "development allows them: {}", String::from_utf8_lossy(&allowed.stderr));
}

/// The operator CLI on `app`'s database, with the test server's secret and `vars`.
fn cli(app: &TestApp, args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_checkout-server"));
    command
        .args(args)
        .current_dir(app.test_db.dir())
        .env_clear()
        .env("DATABASE_URL", &app.test_db.url)
        .env("CHECKOUT_TOKEN_SECRET", crate::helpers::TOKEN_SECRET)
        .env("RUST_LOG", "error");
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().unwrap()
}

on_both_backends!(
    during_a_rotation_both_secrets_sign,
    every_event_arrives_signed_in_order_with_the_order_as_the_api_shows_it,
    cancelled_and_expired_orders_are_told_and_subscriptions_filter,
    test_events_never_reach_live_endpoints,
    an_event_committed_before_a_crash_is_delivered_after_restart,
    a_receiver_that_fails_three_times_gets_it_on_the_fourth_attempt_on_schedule,
    after_the_last_attempt_a_delivery_has_failed_and_can_be_resent,
    gone_disables_the_endpoint,
    two_dispatchers_never_send_one_delivery_at_the_same_time,
    endpoints_naming_internal_hosts_are_refused_when_they_are_registered,
    an_endpoint_disabled_by_gone_is_enabled_again_and_receives_new_events,
    deliveries_are_listed_by_a_known_status_only,
);

#[test]
fn the_readme_verification_snippet_accepts_real_deliveries_and_refuses_forgeries() {
    let app = TestApp::spawn_with(Backend::Sqlite, FAST);
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    let (_, secret) = register(&app, &merchant, &receiver.url, &[]);
    app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let delivery = receiver.wait_for(1).remove(0);
    let verify = |timestamp: &str, body: &str, now: &str| -> String {
        let script = format!(
            "import sys; sys.path.insert(0, {dir:?}); from verify import verify; \
             print(verify({secret:?}, {timestamp:?}, {signature:?}, {body:?}.encode(), now={now}))",
            dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/webhooks"),
            signature = delivery.header("x-fanfare-signature"),
        );
        let output = std::process::Command::new("python3").args(["-c", &script]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let timestamp = delivery.header("x-fanfare-timestamp");
    assert_eq!(verify(timestamp, &delivery.body, "None"), "True");
    assert_eq!(verify(timestamp, &delivery.body.replace("usd", "eur"), "None"), "False", "a tampered body");
    let later = (timestamp.parse::<i64>().unwrap() + 301).to_string();
    assert_eq!(verify(timestamp, &delivery.body, &later), "False", "a replay after five minutes");
}

#[test]
fn endpoints_are_validated_listed_and_removed() {
    let app = TestApp::spawn(Backend::Sqlite);
    let merchant = app.new_merchant();
    let key = Some(merchant.key.as_str());
    let bad_url = app.post_raw("/webhook-endpoints", key, r#"{"url": "ftp://x"}"#);
    assert_eq!((bad_url.status, bad_url.json()["error"].as_str()), (400, Some("invalid_request")));
    let bad_event =
        app.post_raw("/webhook-endpoints", key, r#"{"url": "https://shop.example/h", "events": ["order.eaten"]}"#);
    assert_eq!(bad_event.status, 400);
    assert_eq!(app.post_raw("/webhook-endpoints", None, r#"{"url": "https://shop.example/h"}"#).status, 401);
    // Bodies that are not what the endpoint takes: invalid_request, saying what it takes, in
    // the service's words (never a type name of its own).
    for odd in [
        "",
        "not json",
        "{\"url\": ",
        "[]",
        "{\"url\": 5}",
        "{\"url\": \"https://shop.example/h\", \"events\": \"*\"}",
        "{\"url\": \"https://shop.example/h\", \"events\": null}",
    ] {
        let refused = app.post_raw("/webhook-endpoints", key, odd);
        let body = refused.json();
        assert_eq!(
            (refused.status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{odd:?}: {}",
            refused.text
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("\"url\": string") && !message.contains("struct"), "{odd:?}: {message}");
    }
    let everything = app.post_raw("/webhook-endpoints", key, r#"{"url": "https://shop.example/all", "events": ["*"]}"#);
    assert_eq!((everything.status, everything.json()["events"].clone()), (201, json!(["*"])), "{}", everything.text);
    let auth = format!("Bearer {}", merchant.key);
    let all_id = everything.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(app.request("DELETE", &format!("/webhook-endpoints/{all_id}"), &[("Authorization", &auth)]).status, 200);
    let (id, secret) = register(&app, &merchant, "https://shop.example/h", &["order.completed"]);
    assert!(secret.starts_with("whsec_"));
    let auth = format!("Bearer {}", merchant.key);
    let listed = app.request("GET", "/webhook-endpoints", &[("Authorization", &auth)]).json();
    assert_eq!(listed["data"][0]["events"], json!(["order.completed"]));
    assert!(listed["data"][0].get("secret").is_none(), "the secret is shown once");
    let other = app.new_merchant();
    let foreign = app.request(
        "DELETE",
        &format!("/webhook-endpoints/{id}"),
        &[("Authorization", &format!("Bearer {}", other.key))],
    );
    assert_eq!(foreign.status, 404);
    assert_eq!(app.request("DELETE", &format!("/webhook-endpoints/{id}"), &[("Authorization", &auth)]).status, 200);
    let after = app.request("GET", "/webhook-endpoints", &[("Authorization", &auth)]).json();
    assert_eq!(after["data"], json!([]));
}

#[test]
fn the_operator_cli_manages_endpoints_and_deliveries() {
    let db = crate::helpers::TestDb::new(Backend::Sqlite);
    let run = |args: &[&str]| -> Value {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_checkout-server"))
            .args(args)
            .current_dir(db.dir())
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("CHECKOUT_TOKEN_SECRET", crate::helpers::TOKEN_SECRET)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let merchant = run(&["merchant", "create", "--name", "Hooked"]);
    let merchant_id = merchant["id"].as_str().unwrap();
    let added = run(&[
        "webhook",
        "add",
        "--merchant",
        merchant_id,
        "--url",
        "http://127.0.0.1:9/h",
        "--event",
        "order.completed",
    ]);
    let endpoint = added["id"].as_str().unwrap();
    assert!(added["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(added["events"], json!(["order.completed"]));
    let listed = run(&["webhook", "list", "--merchant", merchant_id]);
    assert_eq!(listed[0]["id"], endpoint);
    assert!(listed[0].get("secret").is_none());
    let rotated = run(&["webhook", "rotate-secret", endpoint]);
    assert_ne!(rotated["secret"], added["secret"]);
    assert!(rotated["previousSecretValidUntil"].is_string());
    assert_eq!(run(&["webhook", "deliveries"]), json!([]));
    let removed = run(&["webhook", "remove", endpoint]);
    assert_eq!(removed["removed"], true);
    assert_eq!(run(&["webhook", "list"]), json!([]));
}

#[test]
fn production_endpoints_must_be_https() {
    let app = TestApp::spawn_on(
        crate::helpers::TestDb::new(Backend::Sqlite),
        domain::claim::ClaimSigner::generate(),
        &[("CHECKOUT_ENV", "production"), ("CHECKOUT_PUBLIC_URL", "https://checkout.test")],
    );
    let merchant = app.new_merchant();
    let plain = app.post_raw("/webhook-endpoints", Some(&merchant.key), r#"{"url": "http://shop.example/hooks"}"#);
    assert_eq!(plain.status, 400, "{}", plain.text);
    assert!(plain.json()["message"].as_str().unwrap().contains("https"));
    let secure = app.post_raw("/webhook-endpoints", Some(&merchant.key), r#"{"url": "https://shop.example/hooks"}"#);
    assert_eq!(secure.status, 201, "{}", secure.text);
}
