//! Idempotency keys and claim redemption, seen from a merchant's client.

use domain::livemode::Livemode;
use domain::ports::Clock;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

/// Sessions that end after a minute, well before their claims (fifteen minutes).
const ONE_MINUTE_SESSIONS: &[(&str, &str)] = &[("CHECKOUT_SESSION_TTL_SECONDS", "60")];

fn replaying_the_same_request_returns_the_first_response(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);

    let first = app.post_checkout(&merchant.key, &body);
    // Same fields in another order and spacing: the same request.
    let reordered: serde_json::Map<String, Value> = body.as_object().unwrap().clone().into_iter().rev().collect();
    let second = app.post_raw("/checkout", Some(&merchant.key), &serde_json::to_string_pretty(&reordered).unwrap());

    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.text, first.text, "replayed byte for byte");
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.checkout_rows(), [1, 2, 1, 1, 1], "nothing new is created");
}

fn the_same_key_with_another_request_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);
    assert_eq!(app.post_checkout(&merchant.key, &body).status, 200);

    let mut changed = body.clone();
    changed["successUrl"] = Value::from("https://shop.example/elsewhere");
    let response = app.post_checkout(&merchant.key, &changed);

    assert_eq!(response.status, 422, "{}", response.text);
    assert_eq!(response.json()["error"], "idempotency_key_reused");
    assert!(response.json()["message"].as_str().is_some());
    assert_eq!(app.checkout_rows()[0], 1);
}

fn keys_are_scoped_to_the_merchant_and_mode(backend: Backend) {
    let app = TestApp::spawn(backend);
    let a = app.new_merchant();
    let b = app.new_merchant();
    let a_live = app.new_merchant_in(Livemode::Live);
    for merchant in [&a, &b, &a_live] {
        let mut body = app.checkout_body(merchant);
        body["idempotencyKey"] = Value::from("order-1");
        let response = app.post_checkout(&merchant.key, &body);
        assert_eq!(response.status, 200, "{}", response.text);
        assert_eq!(response.header("idempotent-replayed"), None);
    }
    assert_eq!(app.checkout_rows()[0], 3);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM orders WHERE livemode = TRUE"), 1);
}

fn a_claim_backs_only_one_open_order(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let claim = app.signed_claim(&merchant);
    assert_eq!(app.post_checkout(&merchant.key, &app.body_with(&claim)).status, 200);

    let second_body = app.body_with(&claim);
    let second = app.post_checkout(&merchant.key, &second_body);
    assert_eq!(second.status, 409, "{}", second.text);
    assert_eq!(second.json()["error"], "claim_already_redeemed");
    assert_eq!(second.header("idempotent-replayed"), None);

    // The refusal depended on state, so it is recorded under its key and replayed.
    let again = app.post_checkout(&merchant.key, &second_body);
    assert_eq!(again.status, 409);
    assert_eq!(again.text, second.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.checkout_rows(), [1, 2, 1, 1, 2]);
}

fn an_expired_order_frees_its_claim(backend: Backend) {
    let app = TestApp::spawn_with(backend, ONE_MINUTE_SESSIONS);
    let merchant = app.new_merchant();
    let claim = app.signed_claim(&merchant);
    let first = app.post_checkout(&merchant.key, &app.body_with(&claim)).json();
    let first_id = first["orderId"].as_str().unwrap();
    // Time passes beyond the session's end (the claim itself is still valid).
    app.pass_session_end(&merchant, first_id);

    let second = app.post_checkout(&merchant.key, &app.body_with(&claim));

    assert_eq!(second.status, 200, "{}", second.text);
    assert_ne!(second.json()["orderId"], first["orderId"]);
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) AS n FROM orders WHERE id = '{first_id}' AND status = 'expired'")),
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM checkout_sessions WHERE order_id = '{first_id}' AND status = 'expired'"
        )),
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM orders WHERE status = 'pending'"), 1);
}

fn a_paid_order_keeps_its_claim_for_good(backend: Backend) {
    let app = TestApp::spawn_with(backend, ONE_MINUTE_SESSIONS);
    let merchant = app.new_merchant();
    let claim = app.signed_claim(&merchant);
    let (page, order_id) = app.create_checkout(&merchant, &app.body_with(&claim));
    assert_eq!(app.pay(&page, "4242424242424242").status, 303);
    // Even once the paid order's session time has passed, the claim was used.
    app.pass_session_end(&merchant, &order_id);
    let again = app.post_checkout(&merchant.key, &app.body_with(&claim));
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.json()["error"], "claim_already_redeemed");
    assert_eq!(app.checkout_rows()[0], 1);
}

fn a_cancelled_order_frees_its_claim(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let claim = app.signed_claim(&merchant);
    let (_, order_id) = app.create_checkout(&merchant, &app.body_with(&claim));
    assert_eq!(app.cancel_order(&merchant.key, &order_id).status, 200);
    assert_eq!(app.post_checkout(&merchant.key, &app.body_with(&claim)).status, 200);
    assert_eq!(app.checkout_rows()[0], 2);
}

fn a_key_past_retention_is_free_again(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);
    let first = app.post_checkout(&merchant.key, &body).json();
    // A day passes: the record is past CHECKOUT_IDEMPOTENCY_TTL_SECONDS (86400 by default).
    app.clock.advance(chrono::Duration::days(1) + chrono::Duration::seconds(1));

    let mut another = app.checkout_body(&merchant);
    another["idempotencyKey"] = body["idempotencyKey"].clone();
    let second = app.post_checkout(&merchant.key, &another);

    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.header("idempotent-replayed"), None);
    assert_ne!(second.json()["orderId"], first["orderId"]);
    assert_eq!(app.checkout_rows(), [2, 4, 2, 2, 1]);
}

/// Idempotency records kept for ten minutes rather than a day.
const TEN_MINUTE_RETENTION: &[(&str, &str)] = &[("CHECKOUT_IDEMPOTENCY_TTL_SECONDS", "600")];

fn the_first_answer_is_replayed_until_the_configured_retention_ends(backend: Backend) {
    let app = TestApp::spawn_with(backend, TEN_MINUTE_RETENTION);
    let retention = chrono::Duration::seconds(600);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);
    let asked = app.clock.now();
    let first = app.post_checkout(&merchant.key, &body);
    let answered = app.clock.now();
    assert_eq!(first.status, 200, "{}", first.text);
    let mut another = app.checkout_body(&merchant);
    another["idempotencyKey"] = body["idempotencyKey"].clone();

    // Just before the record is ten minutes old: the same request is answered as the first time,
    // and the key is still taken for any other.
    app.clock.set(asked + retention - chrono::Duration::seconds(2));
    let replayed = app.post_checkout(&merchant.key, &body);
    assert_eq!((replayed.status, replayed.header("idempotent-replayed")), (200, Some("true")), "{}", replayed.text);
    assert_eq!(replayed.text, first.text);
    let reused = app.post_checkout(&merchant.key, &another);
    assert_eq!((reused.status, reused.json()["error"].as_str()), (422, Some("idempotency_key_reused")));
    assert_eq!(app.checkout_rows()[0], 1);

    // Just after: the key is free, and another request under it makes a fresh order.
    app.clock.set(answered + retention + chrono::Duration::milliseconds(1));
    let fresh = app.post_checkout(&merchant.key, &another);
    assert_eq!((fresh.status, fresh.header("idempotent-replayed")), (200, None), "{}", fresh.text);
    assert_ne!(fresh.json()["orderId"], first.json()["orderId"]);
    assert_eq!(app.checkout_rows(), [2, 4, 2, 2, 1], "the old record was replaced");
}

on_both_backends!(
    the_first_answer_is_replayed_until_the_configured_retention_ends,
    a_key_past_retention_is_free_again,
    replaying_the_same_request_returns_the_first_response,
    the_same_key_with_another_request_is_refused,
    keys_are_scoped_to_the_merchant_and_mode,
    a_claim_backs_only_one_open_order,
    an_expired_order_frees_its_claim,
    a_paid_order_keeps_its_claim_for_good,
    a_cancelled_order_frees_its_claim,
);
