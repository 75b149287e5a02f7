//! Refused requests: a 401 or 403 stores nothing (so the same idempotency key works once the key
//! may act again), and every 403 and 422 the API answers names its `error`.

use chrono::Utc;
use domain::livemode::Livemode;
use domain::ports::MerchantStore;
use persistence::MerchantRepository;
use serde_json::{json, Value};

use crate::helpers::{Backend, Response, TestApp};
use crate::on_both_backends;

fn assert_fresh(response: &Response, what: &str) {
    assert_eq!(response.status, 200, "{what}: {}", response.text);
    assert_eq!(response.header("idempotent-replayed"), None, "{what}: a fresh answer, not a stored refusal");
}

fn a_suspended_merchants_key_works_after_activation(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);
    app.suspend(&merchant);
    for _ in 0..2 {
        let refused = app.post_checkout(&merchant.key, &body);
        assert_eq!(refused.status, 403, "{}", refused.text);
        assert_eq!(refused.json()["error"], "forbidden");
    }
    assert_eq!(app.checkout_rows(), [0; 5], "a refusal stores nothing");
    app.activate(&merchant);
    assert_fresh(&app.post_checkout(&merchant.key, &body), "the same idempotency key after activation");
    assert_eq!(app.checkout_rows(), [1, 2, 1, 1, 1]);
    let replayed = app.post_checkout(&merchant.key, &body);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"), "from now on it replays");
}

fn a_refused_key_leaves_the_idempotency_key_free(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);
    MerchantRepository::new(app.db.clone()).revoke_api_key(merchant.key_id, Utc::now()).unwrap();
    assert_eq!(app.post_checkout(&merchant.key, &body).status, 403, "revoked");
    let mut typo = merchant.key.clone();
    typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
    assert_eq!(app.post_checkout(&typo, &body).status, 401, "a mistyped key");
    assert_eq!(app.checkout_rows(), [0; 5]);
    let new_key = app.new_key(&merchant, Livemode::Test).key;
    assert_fresh(&app.post_checkout(&new_key, &body), "the same idempotency key with the merchant's new key");
}

/// Every merchant endpoint, as (method, path, body).
fn endpoints(order_id: &str, endpoint_id: &str, body: &Value) -> Vec<(&'static str, String, Option<String>)> {
    let hook = json!({"url": "https://shop.example/hooks"}).to_string();
    vec![
        ("POST", "/checkout".into(), Some(body.to_string())),
        ("POST", "/api/checkout".into(), Some(body.to_string())),
        ("GET", format!("/orders/{order_id}"), None),
        ("POST", format!("/orders/{order_id}/cancel"), None),
        ("POST", "/webhook-endpoints".into(), Some(hook)),
        ("GET", "/webhook-endpoints".into(), None),
        ("DELETE", format!("/webhook-endpoints/{endpoint_id}"), None),
    ]
}

fn every_403_is_forbidden(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (_, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let hook = json!({"url": "https://shop.example/hooks"}).to_string();
    let created = app.send("POST", "/webhook-endpoints", Some(&merchant.key), Some(&hook), &[]);
    assert_eq!(created.status, 201, "{}", created.text);
    let endpoint_id = created.json()["id"].as_str().unwrap().to_owned();
    let rows = app.checkout_rows();

    let revoked = app.new_key(&merchant, Livemode::Test);
    MerchantRepository::new(app.db.clone()).revoke_api_key(revoked.key_id, Utc::now()).unwrap();
    let suspended = app.new_merchant();
    app.suspend(&suspended);
    let publishable = "pk_test_abcdefghijklmnopqrstuvwxyz0123456789";

    for (who, key, body) in [
        ("a revoked key", revoked.key.as_str(), app.checkout_body(&merchant)),
        ("a suspended merchant", suspended.key.as_str(), app.checkout_body(&suspended)),
        ("a publishable key", publishable, app.checkout_body(&merchant)),
    ] {
        for (method, path, body) in endpoints(&order_id, &endpoint_id, &body) {
            let response = app.send(method, &path, Some(key), body.as_deref(), &[]);
            assert_eq!(response.status, 403, "{who}: {method} {path}: {}", response.text);
            assert_eq!(response.json()["error"], "forbidden", "{who}: {method} {path}");
            assert!(response.json()["message"].as_str().is_some_and(|m| !m.is_empty()), "{who}: {method} {path}");
        }
    }
    assert_eq!(app.checkout_rows(), rows, "no refusal stored anything");
    assert_eq!(app.get_order(&merchant.key, &order_id)["status"], "pending", "nor cancelled anything");
    let listed = app.send("GET", "/webhook-endpoints", Some(&merchant.key), None, &[]);
    assert_eq!(listed.json()["data"].as_array().map(Vec::len), Some(1), "nor removed an endpoint");
}

fn every_422_is_idempotency_key_reused(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);
    assert_eq!(app.post_checkout(&merchant.key, &body).status, 200);
    let mut changes: Vec<Value> = Vec::new();
    for (field, value) in [
        ("mode", json!("embedded")),
        ("successUrl", json!("https://shop.example/other")),
        ("cancelUrl", json!("https://shop.example/other")),
        ("checkoutClaim", json!(app.signed_claim(&merchant))),
    ] {
        let mut changed = body.clone();
        changed[field] = value;
        changes.push(changed);
    }
    for changed in &changes {
        for path in ["/checkout", "/api/checkout"] {
            let response = app.post_raw(path, Some(&merchant.key), &changed.to_string());
            assert_eq!(response.status, 422, "{path} {changed}: {}", response.text);
            assert_eq!(response.json()["error"], "idempotency_key_reused");
            assert!(response.json()["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    assert_eq!(app.checkout_rows()[0], 1, "a reused key creates nothing");
}

on_both_backends!(
    a_suspended_merchants_key_works_after_activation,
    a_refused_key_leaves_the_idempotency_key_free,
    every_403_is_forbidden,
    every_422_is_idempotency_key_reused,
);
