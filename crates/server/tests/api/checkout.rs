//! `POST /checkout`: the happy path and what it writes.

use chrono::{DateTime, Duration, Utc};
use domain::ports::Clock;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, TestMerchant};
use crate::on_both_backends;

fn creating_a_checkout_returns_an_order_a_payment_and_a_page(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();

    let mut claim = app.claim_payload(&merchant);
    claim.exp = claim.iat + 3600;
    let response = app.post_checkout(&merchant.key, &app.body_with(&app.signer.sign(&claim)));

    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.header("idempotent-replayed"), None);
    let body = response.json();
    let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["checkoutUrl", "expiresAt", "orderId", "paymentId"]);
    let order_id = body["orderId"].as_str().unwrap();
    assert!(order_id.starts_with("ord_"), "{order_id}");
    assert!(body["paymentId"].as_str().unwrap().starts_with("pay_"));
    let url = body["checkoutUrl"].as_str().unwrap();
    let token = url.strip_prefix("http://checkout.test/c/").expect("hosted page URL");
    assert!(token.len() >= 43 && !url.contains(order_id), "{url}");
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["expiresAt"].as_str().unwrap().len(), "2026-11-25T10:30:00.000Z".len());
    let ttl = expires_at.timestamp() - chrono::Utc::now().timestamp();
    assert!((1790..=1800).contains(&ttl), "session lives 30 minutes, not {ttl}s");

    assert_eq!(app.checkout_rows(), [1, 2, 1, 1, 1]);
    let total = app.count(&format!(
        "SELECT amount_total AS n FROM orders WHERE id = '{order_id}' AND status = 'pending' AND currency = 'usd'"
    ));
    assert_eq!(total, 2 * 2500 + 1500, "the price comes from the claim");
    let payment =
        app.count(&format!("SELECT amount AS n FROM payments WHERE order_id = '{order_id}' AND status = 'pending'"));
    assert_eq!(payment, 6500);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM checkout_sessions WHERE status = 'open' AND mode = 'hosted'"), 1);
}

fn the_token_is_stored_only_as_a_hash(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.post_checkout(&merchant.key, &app.checkout_body(&merchant)).json();
    let token = body["checkoutUrl"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let plain = [
        "SELECT COUNT(*) AS n FROM checkout_sessions WHERE token_hash LIKE '%{t}%' OR success_url LIKE '%{t}%'",
        "SELECT COUNT(*) AS n FROM idempotency_keys WHERE outcome LIKE '%{t}%' OR fingerprint LIKE '%{t}%'",
    ];
    for sql in plain {
        assert_eq!(app.count(&sql.replace("{t}", &token)), 0, "{sql}");
    }
    let hashed = domain::secret::sha256_hex(token.as_bytes());
    assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM checkout_sessions WHERE token_hash = '{hashed}'")), 1);
}

fn an_embedded_checkout_gets_an_embed_url(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let mut body = app.checkout_body(&merchant);
    body["mode"] = Value::from("embedded");
    let response = app.post_checkout(&merchant.key, &body);
    assert_eq!(response.status, 200, "{}", response.text);
    assert!(response.json()["checkoutUrl"].as_str().unwrap().starts_with("http://checkout.test/embed/"));
}

fn the_session_never_outlives_the_claim(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let mut payload = app.claim_payload(&merchant);
    payload.exp = payload.iat + 120;
    let response = app.post_checkout(&merchant.key, &app.body_with(&app.signer.sign(&payload)));
    assert_eq!(response.status, 200, "{}", response.text);
    let expires_at = chrono::DateTime::parse_from_rfc3339(response.json()["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires_at.timestamp(), payload.exp);
}

/// Sessions of two minutes rather than thirty. The background sweep stays out of the way, so that
/// the test's own sweep is the one that expires them.
const TWO_MINUTE_SESSIONS: &[(&str, &str)] =
    &[("CHECKOUT_SESSION_TTL_SECONDS", "120"), ("CHECKOUT_SWEEP_INTERVAL_SECONDS", "3600")];

/// A moment before `end` the session takes a card; just after, the page, the merchant API and the
/// sweeper all hold it expired.
fn assert_session_ends_at(app: &TestApp, merchant: &TestMerchant, page: &str, order_id: &str, end: DateTime<Utc>) {
    app.clock.set(end - Duration::seconds(2));
    assert!(app.request("GET", page, &[]).text.contains("name=\"number\""), "the page still takes a card");
    assert_eq!(app.get_order(&merchant.key, order_id)["session"]["status"], "open");
    assert_eq!(app.sweep()[1], 0, "nothing to expire yet");
    app.clock.set(end + Duration::milliseconds(1));
    assert!(app.request("GET", page, &[]).text.contains("Checkout expired"));
    let order = app.get_order(&merchant.key, order_id);
    assert_eq!((order["status"].as_str(), order["session"]["status"].as_str()), (Some("expired"), Some("expired")));
    assert_eq!(app.sweep()[1], 1, "the sweeper expires it");
}

fn a_session_lives_the_configured_time(backend: Backend) {
    let app = TestApp::spawn_with(backend, TWO_MINUTE_SESSIONS);
    let merchant = app.new_merchant();
    let ttl = Duration::seconds(120);
    let asked = app.clock.now();
    let (page, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let answered = app.clock.now();
    let end = app.session_end(&merchant, &order_id);
    // The claim would allow fifteen minutes; the session takes two (cut to the millisecond).
    assert!(asked + ttl - Duration::milliseconds(1) <= end && end <= answered + ttl, "ends {end}, asked {asked}");
    assert_session_ends_at(&app, &merchant, &page, &order_id, end);
}

fn a_session_never_outlives_its_claim_whatever_the_configured_time(backend: Backend) {
    let app = TestApp::spawn_with(backend, TWO_MINUTE_SESSIONS);
    let merchant = app.new_merchant();
    let mut claim = app.claim_payload(&merchant);
    claim.exp = claim.iat + 60;
    let response = app.post_checkout(&merchant.key, &app.body_with(&app.signer.sign(&claim)));
    assert_eq!(response.status, 200, "{}", response.text);
    let created = response.json();
    let end: DateTime<Utc> = created["expiresAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(end, DateTime::from_timestamp(claim.exp, 0).unwrap(), "the claim's exp, not two minutes");
    let page = created["checkoutUrl"].as_str().unwrap().strip_prefix("http://checkout.test").unwrap();
    assert_session_ends_at(&app, &merchant, page, created["orderId"].as_str().unwrap(), end);
}

fn the_api_prefix_serves_the_same_endpoint(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let response = app.post_raw("/api/checkout", Some(&merchant.key), &app.checkout_body(&merchant).to_string());
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(app.checkout_rows()[0], 1);
}

fn unknown_routes_and_methods_answer_json(backend: Backend) {
    let app = TestApp::spawn(backend);
    let missing = app.request("GET", "/nope", &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "not_found");
    let wrong_method = app.request("GET", "/checkout", &[]);
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.json()["error"], "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("POST"));
}

on_both_backends!(
    creating_a_checkout_returns_an_order_a_payment_and_a_page,
    the_token_is_stored_only_as_a_hash,
    an_embedded_checkout_gets_an_embed_url,
    the_session_never_outlives_the_claim,
    a_session_lives_the_configured_time,
    a_session_never_outlives_its_claim_whatever_the_configured_time,
    the_api_prefix_serves_the_same_endpoint,
    unknown_routes_and_methods_answer_json,
);

#[test]
fn the_served_document_keeps_the_seed_operation_unchanged() {
    let app = TestApp::spawn(Backend::Sqlite);
    let served = app.request("GET", "/openapi.yaml", &[]);
    assert_eq!(served.status, 200);
    // The document as written, naming this deployment as its server.
    assert_eq!(served.text, api::served_openapi_yaml("http://checkout.test"));
    // Additions (examples, a `reason` on issues) are fine; nothing of the seed may change.
    let served = yaml_to_json(&yaml_rust2::YamlLoader::load_from_str(&served.text).unwrap()[0]);
    let seed = yaml_rust2::YamlLoader::load_from_str(include_str!("../../../../docs/checkout-api.seed.yaml")).unwrap();
    let seed = yaml_to_json(&seed[0]);
    keeps(&served["paths"]["/checkout"]["post"], &seed["paths"]["/checkout"]["post"], "POST /checkout").unwrap();
    keeps(&served["components"]["securitySchemes"], &seed["components"]["securitySchemes"], "securitySchemes").unwrap();
    keeps(&served["security"], &seed["security"], "security").unwrap();
}

#[test]
fn the_contract_is_served_as_json_with_a_readable_page() {
    let app = TestApp::spawn(Backend::Sqlite);
    let served = app.request("GET", "/openapi.json", &[]);
    assert_eq!(served.status, 200);
    let document = served.json();
    assert_eq!(document["openapi"], "3.1.0");
    let operation = &document["paths"]["/checkout"]["post"];
    assert_eq!(operation["operationId"], "postCheckout");
    let required = &operation["requestBody"]["content"]["application/json"]["schema"]["required"];
    assert_eq!(required, &serde_json::json!(["checkoutClaim", "mode", "successUrl", "cancelUrl", "idempotencyKey"]));
    for code in ["200", "400", "401", "403", "500"] {
        assert!(operation["responses"][code].is_object(), "{code} missing");
    }
    let issue =
        &operation["responses"]["400"]["content"]["application/json"]["schema"]["properties"]["issues"]["items"];
    assert_eq!(issue["required"], serde_json::json!(["kind", "type", "expected", "received", "message", "path"]));
    assert!(document["paths"]["/orders/{orderId}"]["get"].is_object());
    let page = app.request("GET", "/docs", &[]);
    assert_eq!(page.status, 200);
    assert!(page.text.contains("/assets/docs.js") && !page.text.contains("https://"), "no external resources");
    assert_eq!(app.request("GET", "/assets/docs.js", &[]).status, 200);
}

/// A YAML node as JSON, for comparing the seed with the served document.
fn yaml_to_json(yaml: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Real(text) => serde_json::from_str(text).unwrap(),
        Yaml::Integer(n) => Value::from(*n),
        Yaml::String(s) => Value::from(s.as_str()),
        Yaml::Boolean(b) => Value::from(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Hash(entries) => Value::Object(
            entries.iter().map(|(k, v)| (k.as_str().expect("string keys").to_owned(), yaml_to_json(v))).collect(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("unexpected YAML node {other:?}"),
    }
}

/// Whether `served` has everything `seed` has, unchanged: objects may gain keys, nothing else moves.
fn keeps(served: &Value, seed: &Value, at: &str) -> Result<(), String> {
    match (served, seed) {
        (Value::Object(served), Value::Object(seed)) => seed.iter().try_for_each(|(key, value)| {
            let place = format!("{at}/{key}");
            served.get(key).ok_or_else(|| format!("{place} is gone")).and_then(|s| keeps(s, value, &place))
        }),
        _ if served == seed => Ok(()),
        _ => Err(format!("{at} changed: {seed} became {served}")),
    }
}

#[test]
fn the_served_json_keeps_the_seed_operation_unchanged() {
    let app = TestApp::spawn(Backend::Sqlite);
    let served = app.request("GET", "/openapi.json", &[]).json();
    let seed = yaml_rust2::YamlLoader::load_from_str(include_str!("../../../../docs/checkout-api.seed.yaml")).unwrap();
    let seed = yaml_to_json(&seed[0]);
    keeps(&served["paths"]["/checkout"]["post"], &seed["paths"]["/checkout"]["post"], "POST /checkout").unwrap();
    keeps(&served["components"]["securitySchemes"], &seed["components"]["securitySchemes"], "securitySchemes").unwrap();
    keeps(&served["security"], &seed["security"], "security").unwrap();
    // And the check can fail: a changed field is caught.
    let mut altered = served["paths"]["/checkout"]["post"].clone();
    altered["requestBody"]["content"]["application/json"]["schema"]["required"][0] = Value::from("claim");
    assert!(keeps(&altered, &seed["paths"]["/checkout"]["post"], "POST /checkout").is_err());
}
