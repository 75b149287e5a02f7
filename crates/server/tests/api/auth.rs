//! 401 and 403: the secret-key guard.

use domain::ids::ApiKeyId;
use domain::livemode::Livemode;
use domain::merchant::ApiKeySummary;
use domain::ports::MerchantStore;
use domain::secret::ApiKeySecret;
use persistence::MerchantRepository;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

fn missing_malformed_and_unknown_keys_are_401(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant).to_string();
    let unknown = ApiKeySecret::generate(Livemode::Test).secret().expose().to_owned();
    let mut typo = merchant.key.clone();
    typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });

    for key in [None, Some("nonsense"), Some(unknown.as_str()), Some(typo.as_str())] {
        let response = app.post_raw("/checkout", key, &body);
        assert_eq!(response.status, 401, "{key:?}: {}", response.text);
        assert_eq!(response.json()["error"], "unauthorized");
        assert!(response.json()["message"].is_string());
        assert!(!response.text.contains(&merchant.key[8..]), "a key is never echoed");
        if let Some(key) = key {
            assert!(!response.text.contains(key));
        }
    }
    assert_eq!(app.checkout_rows()[0], 0);
}

fn a_revoked_key_is_403(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    MerchantRepository::new(app.db.clone()).revoke_api_key(merchant.key_id, chrono::Utc::now()).unwrap();
    let response = app.post_checkout(&merchant.key, &app.checkout_body(&merchant));
    assert_eq!(response.status, 403, "{}", response.text);
    assert_eq!(response.json()["error"], "forbidden");
}

fn a_suspended_merchant_is_403(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    app.suspend(&merchant);
    let response = app.post_checkout(&merchant.key, &app.checkout_body(&merchant));
    assert_eq!(response.status, 403, "{}", response.text);
    assert!(response.json()["message"].as_str().unwrap().contains("suspended"));
}

fn a_publishable_key_is_403(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let response = app.post_checkout("pk_test_abcdefghijklmnop", &app.checkout_body(&merchant));
    assert_eq!(response.status, 403, "{}", response.text);
}

fn auth_is_checked_before_the_body(backend: Backend) {
    let app = TestApp::spawn(backend);
    let unknown = ApiKeySecret::generate(Livemode::Test).secret().expose().to_owned();
    let oversized = format!("{{\"pad\": \"{}\"}}", "x".repeat(api::MAX_BODY_BYTES));
    for key in ["sk_test_wrong", unknown.as_str()] {
        for body in ["{not json", "{}", oversized.as_str()] {
            let response = app.post_raw("/checkout", Some(key), body);
            assert_eq!(response.status, 401, "{key} with {:.20}: {}", body, response.text);
        }
    }
    let merchant = app.new_merchant();
    app.suspend(&merchant);
    assert_eq!(app.post_raw("/checkout", Some(&merchant.key), "{}").status, 403);
}

fn a_live_key_makes_live_orders(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant_in(Livemode::Live);
    assert!(merchant.key.starts_with("sk_live_"));
    assert_eq!(app.post_checkout(&merchant.key, &app.checkout_body(&merchant)).status, 200);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM orders WHERE livemode = TRUE"), 1);
}

/// A rolled key ends when the server's clock passes its expiry, on the endpoints the key guard
/// protects as on `POST /checkout`.
fn a_rolled_key_ends_at_its_expiry_by_the_servers_clock_on_every_endpoint(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let replacement = ApiKeySecret::generate(Livemode::Test);
    let summary = ApiKeySummary {
        id: ApiKeyId::new(),
        merchant_id: merchant.id,
        livemode: Livemode::Test,
        hint: replacement.hint(),
        created_at: chrono::Utc::now(),
        revoked_at: None,
        expires_at: None,
        last_used_at: None,
    };
    let grace = chrono::Utc::now() + chrono::Duration::hours(1);
    MerchantRepository::new(app.db.clone())
        .roll_api_key(merchant.key_id, grace, &summary, &replacement.hash())
        .unwrap();
    let bearer = format!("Bearer {}", merchant.key);
    let order =
        |app: &TestApp| app.request("GET", "/orders/ord_01M891Q13DE788PCK3TYQBZJ40", &[("Authorization", &bearer)]);
    let endpoints = |app: &TestApp| app.request("GET", "/webhook-endpoints", &[("Authorization", &bearer)]);
    assert_eq!((order(&app).status, endpoints(&app).status), (404, 200), "within its grace the old key works");

    app.clock.advance(chrono::Duration::hours(2));
    for response in [order(&app), endpoints(&app), app.post_checkout(&merchant.key, &app.checkout_body(&merchant))] {
        assert_eq!((response.status, response.json()["error"].as_str()), (403, Some("forbidden")), "{}", response.text);
    }
}

on_both_backends!(
    a_rolled_key_ends_at_its_expiry_by_the_servers_clock_on_every_endpoint,
    missing_malformed_and_unknown_keys_are_401,
    a_revoked_key_is_403,
    a_suspended_merchant_is_403,
    a_publishable_key_is_403,
    auth_is_checked_before_the_body,
    a_live_key_makes_live_orders,
);
