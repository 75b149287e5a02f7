//! 400 `validation_error` bodies, in Valibot's issue format, and 413.

use domain::claim::{Audience, ClaimSigner};
use domain::ids::MerchantId;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

fn assert_issue_shape(issue: &Value) {
    for field in ["kind", "type", "expected", "received", "message"] {
        assert!(issue[field].is_string(), "{field} must be a string: {issue}");
    }
    assert!(issue["path"].is_array(), "{issue}");
    for item in issue["path"].as_array().unwrap() {
        for field in ["type", "origin", "key"] {
            assert!(item[field].is_string(), "{item}");
        }
        assert!(item.get("input").is_some(), "{item}");
    }
}

fn every_problem_of_a_body_is_reported_at_once_in_contract_order(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = json!({"mode": "popup", "successUrl": 7, "cancelUrl": "abc", "idempotencyKey": "", "extra": 1});

    let response = app.post_checkout(&merchant.key, &body);

    assert_eq!(response.status, 400, "{}", response.text);
    let json = response.json();
    assert_eq!(json["error"], "validation_error");
    let issues = json["issues"].as_array().unwrap();
    issues.iter().for_each(assert_issue_shape);
    let summary: Vec<(&str, &str, &str)> = issues
        .iter()
        .map(|i| (i["path"][0]["key"].as_str().unwrap(), i["type"].as_str().unwrap(), i["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("checkoutClaim", "object", "schema"),
            ("mode", "picklist", "schema"),
            ("successUrl", "string", "schema"),
            ("cancelUrl", "url", "validation"),
            ("idempotencyKey", "min_length", "validation"),
        ]
    );
    assert_eq!(issues[0]["message"], "Invalid key: Expected \"checkoutClaim\" but received undefined");
    assert_eq!(issues[0]["path"][0]["origin"], "key");
    assert_eq!(issues[0]["path"][0]["input"], body);
    assert_eq!(issues[1]["received"], "\"popup\"");
    assert_eq!(issues[2]["message"], "Invalid type: Expected string but received 7");
    assert_eq!(issues[3]["message"], "Invalid URL: Received \"abc\"");
    assert_eq!(issues[4]["message"], "Invalid length: Expected >=1 but received 0");
    assert_eq!(app.checkout_rows(), [0, 0, 0, 0, 0], "a validation error is not stored");
}

fn a_long_idempotency_key_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let mut body = app.checkout_body(&merchant);
    body["idempotencyKey"] = Value::from("k".repeat(300));
    let issues = app.post_checkout(&merchant.key, &body).json()["issues"].clone();
    assert_eq!(issues[0]["type"], "max_length");
    assert_eq!(issues[0]["expected"], "<=255");
    assert_eq!(issues[0]["message"], "Invalid length: Expected <=255 but received 300");
    body["idempotencyKey"] = Value::from("k".repeat(255));
    assert_eq!(app.post_checkout(&merchant.key, &body).status, 200);
}

fn bodies_that_are_not_json_objects_get_one_issue(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    for (raw, received) in [("\"text\"", "\"text\""), ("null", "null"), ("", "undefined"), ("1e400", "Infinity")] {
        let response = app.post_raw("/checkout", Some(&merchant.key), raw);
        assert_eq!(response.status, 400, "{raw}: {}", response.text);
        let issues = response.json()["issues"].as_array().unwrap().clone();
        assert_eq!(issues.len(), 1, "{raw}");
        assert_issue_shape(&issues[0]);
        assert_eq!(issues[0]["received"], received);
        assert_eq!(issues[0]["path"], json!([]));
    }
    // Valibot's object check lets an array through: it simply has none of the contract's keys.
    let array = app.post_raw("/checkout", Some(&merchant.key), "[1,2]").json();
    let keys: Vec<&str> =
        array["issues"].as_array().unwrap().iter().map(|i| i["path"][0]["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["checkoutClaim", "mode", "successUrl", "cancelUrl", "idempotencyKey"]);
    assert_eq!(array["issues"][0]["path"][0]["input"], json!([1, 2]));
    let malformed = app.post_raw("/checkout", Some(&merchant.key), "{\"mode\": ");
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["error"], "validation_error");
    assert_issue_shape(&malformed.json()["issues"][0]);
}

fn claim_problems_are_an_issue_at_checkout_claim(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let stranger = ClaimSigner::generate();
    let now = chrono::Utc::now().timestamp();

    let mut expired = app.claim_payload(&merchant);
    expired.iat = now - 3600;
    expired.exp = now - 600;
    let mut other_merchant = app.claim_payload(&merchant);
    other_merchant.mid = MerchantId::new().to_string();
    let mut wrong_audience = app.claim_payload(&merchant);
    wrong_audience.aud = Audience::One("admission".into());
    let mut negative = app.claim_payload(&merchant);
    negative.items[0].quantity = -1;
    let mut free = app.claim_payload(&merchant);
    for item in &mut free.items {
        item.unit_amount = 0;
    }
    let tampered = {
        let token = app.signed_claim(&merchant);
        let (head, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        format!("{head}.{flipped}{}", &signature[1..])
    };

    let cases = [
        (app.signer.sign(&expired), "claim_expired"),
        (app.signer.sign(&other_merchant), "claim_wrong_merchant"),
        (app.signer.sign(&wrong_audience), "claim_wrong_audience"),
        (app.signer.sign(&negative), "claim_invalid_items"),
        (app.signer.sign(&free), "claim_invalid_items"),
        (stranger.sign(&app.claim_payload(&merchant)), "claim_unknown_key"),
        (tampered, "claim_bad_signature"),
        ("not-a-jws".to_owned(), "claim_malformed"),
    ];
    for (claim, reason) in cases {
        let response = app.post_checkout(&merchant.key, &app.body_with(&claim));
        assert_eq!(response.status, 400, "{reason}: {}", response.text);
        let json = response.json();
        assert_eq!(json["error"], "validation_error");
        let issues = json["issues"].as_array().unwrap();
        assert_eq!(issues.len(), 1);
        assert_issue_shape(&issues[0]);
        assert_eq!(issues[0]["path"][0]["key"], "checkoutClaim");
        assert_eq!(issues[0]["reason"], reason);
        assert!(issues[0]["message"].as_str().unwrap().starts_with("The checkout claim"), "{}", issues[0]);
    }
    assert_eq!(app.checkout_rows(), [0, 0, 0, 0, 0]);
}

fn an_oversized_body_is_413(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let mut body = app.checkout_body(&merchant);
    body["padding"] = Value::from("x".repeat(api::MAX_BODY_BYTES));
    let response = app.post_checkout(&merchant.key, &body);
    assert_eq!(response.status, 413, "{}", response.text);
    assert_eq!(response.json()["error"], "payload_too_large");
    assert_eq!(app.checkout_rows()[0], 0);
}

fn production_requires_https_return_urls(backend: Backend) {
    let signer = ClaimSigner::generate();
    let app = TestApp::spawn_on(
        crate::helpers::TestDb::new(backend),
        signer,
        &[("CHECKOUT_ENV", "production"), ("CHECKOUT_PUBLIC_URL", "https://checkout.test")],
    );
    let merchant = app.new_merchant();
    let mut body = app.checkout_body(&merchant);
    body["cancelUrl"] = Value::from("http://shop.example/cancel");
    let response = app.post_checkout(&merchant.key, &body);
    assert_eq!(response.status, 400, "{}", response.text);
    let issue = &response.json()["issues"][0];
    assert_eq!(issue["type"], "url");
    assert_eq!(issue["path"][0]["key"], "cancelUrl");
    assert_eq!(issue["expected"], "https URL");
}

on_both_backends!(
    every_problem_of_a_body_is_reported_at_once_in_contract_order,
    a_long_idempotency_key_is_refused,
    bodies_that_are_not_json_objects_get_one_issue,
    claim_problems_are_an_issue_at_checkout_claim,
    an_oversized_body_is_413,
    production_requires_https_return_urls,
);
