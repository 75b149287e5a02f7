//! Odd input (docs/input-rules.md): control characters, strange URLs, long-lived claims and unknown
//! currencies get a 400 in the documented shape, never a 5xx; nothing taken from input reaches a
//! header unparsed; names on the page cannot disguise the text around them.

use chrono::Utc;
use domain::claim::{Audience, ClaimItem, ClaimPayload};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestMerchant};
use crate::on_both_backends;

fn issue_of(app: &TestApp, merchant: &TestMerchant, body: &Value) -> Value {
    let response = app.post_checkout(&merchant.key, body);
    assert_eq!(response.status, 400, "{}", response.text);
    let json = response.json();
    assert_eq!(json["error"], "validation_error");
    assert_eq!(json["issues"].as_array().map(Vec::len), Some(1), "{json}");
    json["issues"][0].clone()
}

fn control_characters_in_the_idempotency_key_are_a_400(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    for key in ["nul\u{0}key", "line\nbreak", "\u{1f}"] {
        let mut body = app.checkout_body(&merchant);
        body["idempotencyKey"] = json!(key);
        let issue = issue_of(&app, &merchant, &body);
        assert_eq!((issue["kind"].as_str(), issue["type"].as_str()), (Some("validation"), Some("regex")));
        assert_eq!(issue["expected"], api::validation::KEY_CHARACTERS);
        assert_eq!(issue["path"][0]["key"], "idempotencyKey");
    }
    // A lone surrogate cannot be stored either (nor told apart from U+FFFD once it is).
    let body = app.checkout_body(&merchant).to_string().replacen("\"idem-", "\"\\ud800idem-", 1);
    let response = app.post_raw("/checkout", Some(&merchant.key), &body);
    assert_eq!(response.status, 400, "{}", response.text);
    assert!(response.text.contains(r#""type":"regex""#), "{}", response.text);
    assert_eq!(app.checkout_rows(), [0, 0, 0, 0, 0]);
}

/// One change to a claim payload.
type Change = fn(&mut ClaimPayload);

fn control_characters_in_claim_strings_are_refused_with_their_own_reason(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let changes: [(&str, Change); 7] = [
        ("iss", |p| p.iss = "admission\u{0}".into()),
        ("sub", |p| p.sub = "cus_\u{0}1".into()),
        ("jti", |p| p.jti = "clm\u{0}".into()),
        ("experienceId", |p| p.experience_id = Some("exp\u{0}".into())),
        ("distributionId", |p| p.distribution_id = Some("\u{0}".into())),
        ("items[0].sku", |p| p.items[0].sku = "TEE\u{0}".into()),
        ("items[0].name", |p| p.items[0].name = "Tee\u{0}".into()),
    ];
    for (field, change) in changes {
        let mut payload = app.claim_payload(&merchant);
        change(&mut payload);
        let issue = issue_of(&app, &merchant, &app.body_with(&app.signer.sign(&payload)));
        assert_eq!(issue["reason"], "claim_control_character", "{field}: {issue}");
        assert_eq!(issue["path"][0]["key"], "checkoutClaim");
        assert!(issue["message"].as_str().unwrap().contains(field), "{issue}");
    }
    assert_eq!(app.checkout_rows(), [0, 0, 0, 0, 0]);
}

fn a_return_url_cannot_add_a_directive_to_the_page_s_policy(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    for url in ["https://x.example;script-src-elem", "https://x.example;frame-ancestors *", "https://x_y.example/"] {
        let mut body = app.checkout_body(&merchant);
        body["successUrl"] = json!(url);
        let issue = issue_of(&app, &merchant, &body);
        assert_eq!((issue["type"].as_str(), issue["expected"].as_str()), (Some("url"), Some("http(s) URL")));
        assert!(issue["message"].as_str().unwrap().starts_with("Invalid URL: "), "{issue}");
    }
    // A URL stored before the rule existed is parsed again, not copied into the header.
    let mut body = app.checkout_body(&merchant);
    body["mode"] = json!("embedded");
    let (page, _) = app.create_checkout(&merchant, &body);
    app.execute("UPDATE checkout_sessions SET success_url = 'https://x.example;script-src-elem *'");
    let csp = app.request("GET", &page, &[]).header("content-security-policy").unwrap().to_owned();
    assert!(!csp.contains("script-src-elem") && !csp.contains("x.example"), "{csp}");
    assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
}

fn the_embedded_page_may_be_framed_only_by_the_merchant_s_own_site(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let mut body = app.checkout_body(&merchant);
    body["mode"] = json!("embedded");
    body["successUrl"] = json!("HTTPS://Shop.Example:8443/done?o={ORDER_ID}");
    body["cancelUrl"] = json!("https://other.example:443/cart");
    let (page, _) = app.create_checkout(&merchant, &body);
    let shown = app.request("GET", &page, &[]);
    let csp = shown.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self' https://shop.example:8443 https://other.example;"), "{csp}");
    assert!(csp.ends_with("frame-ancestors https://shop.example:8443"), "{csp}");
    // The postMessage target is the same parsed origin.
    let cancelled = app.post_form(&format!("{page}/cancel"), &[("form_token", &app.form_token(&page))]);
    assert_eq!(cancelled.status, 303);
    let outcome = app.request("GET", &page, &[]).text;
    assert!(outcome.contains("data-parent-origin=\"https://shop.example:8443\""), "{outcome}");
}

fn the_redirect_is_built_from_the_parsed_url(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let mut body = app.checkout_body(&merchant);
    body["successUrl"] = json!(" https://Shop.example/danke/für-dich?o={ORDER_ID}&x=\"<>\" ");
    let (page, order_id) = app.create_checkout(&merchant, &body);
    let paid = app.pay(&page, "4242424242424242");
    assert_eq!(paid.status, 303, "{}", paid.text);
    assert_eq!(
        paid.header("location"),
        Some(format!("https://shop.example/danke/f%C3%BCr-dich?o={order_id}&x=%22%3C%3E%22").as_str())
    );
}

fn urls_longer_than_2048_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let url = |len: usize| format!("https://shop.example/{}", "a".repeat(len - 21));
    let mut body = app.checkout_body(&merchant);
    body["cancelUrl"] = json!(url(2049));
    let issue = issue_of(&app, &merchant, &body);
    assert_eq!((issue["type"].as_str(), issue["expected"].as_str()), (Some("max_length"), Some("<=2048")));
    assert_eq!(issue["message"], "Invalid length: Expected <=2048 but received 2049");
    body["cancelUrl"] = json!(url(2048));
    assert_eq!(app.post_checkout(&merchant.key, &body).status, 200);

    let endpoint = |len: usize| json!({ "url": url(len) }).to_string();
    let refused = app.post_raw("/webhook-endpoints", Some(&merchant.key), &endpoint(2049));
    assert_eq!((refused.status, refused.json()["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(app.post_raw("/webhook-endpoints", Some(&merchant.key), &endpoint(2048)).status, 201);
}

fn a_claim_valid_for_longer_than_the_maximum_is_refused(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS", "1200")]);
    let merchant = app.new_merchant();
    let now = Utc::now().timestamp();
    for (iat, exp, refused) in [(now, now + 1200, false), (now, now + 1201, true), (now - 100, 253_402_300_799, true)] {
        let payload = ClaimPayload { iat, exp, ..app.claim_payload(&merchant) };
        let body = app.body_with(&app.signer.sign(&payload));
        let response = app.post_checkout(&merchant.key, &body);
        if refused {
            assert_eq!(response.status, 400, "{}", response.text);
            assert_eq!(response.json()["issues"][0]["reason"], "claim_lifetime_too_long");
        } else {
            assert_eq!(response.status, 200, "{}", response.text);
        }
    }
    // The default is an hour.
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let payload = ClaimPayload { iat: now, exp: now + 3601, ..app.claim_payload(&merchant) };
    let issue = issue_of(&app, &merchant, &app.body_with(&app.signer.sign(&payload)));
    assert_eq!(issue["reason"], "claim_lifetime_too_long");
}

fn currencies_are_iso_4217_and_shown_in_their_own_minor_units(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let priced = |currency: &str, unit_amount: i64| {
        let items = vec![ClaimItem { sku: "S".into(), name: "Shoe".into(), quantity: 2, unit_amount }];
        let payload =
            ClaimPayload { currency: currency.into(), ..ClaimPayload::new(merchant.id, items, Utc::now(), 600) };
        app.body_with(&app.signer.sign(&payload))
    };
    for unknown in ["xyz", "xau", "abc"] {
        assert_eq!(issue_of(&app, &merchant, &priced(unknown, 500))["reason"], "claim_invalid_items", "{unknown}");
    }
    for (currency, unit, total) in [("jpy", 500, "¥1,000"), ("kwd", 1500, "KWD 3.000"), ("clf", 12345, "CLF 2.4690")] {
        let (page, order_id) = app.create_checkout(&merchant, &priced(currency, unit));
        let text = app.request("GET", &page, &[]).text;
        assert!(text.contains(&format!("<p class=\"total\">{total}</p>")), "{currency}: {text}");
        assert_eq!(app.get_order(&merchant.key, &order_id)["amountTotal"], unit * 2);
    }
}

fn names_on_the_page_cannot_disguise_the_text_around_them(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let mut payload = app.claim_payload(&merchant);
    payload.items[0].name = "Invoice\u{202e}fdp.exe\u{200b}\u{2066}".into();
    payload.items[1].name = "شاي أخضر".into();
    let (page, _) = app.create_checkout(&merchant, &app.body_with(&app.signer.sign(&payload)));
    let text = app.request("GET", &page, &[]).text;
    assert!(text.contains("<bdi>Invoice[U+202E]fdp.exe[U+200B][U+2066]</bdi>"), "{text}");
    assert!(text.contains("<bdi>شاي أخضر</bdi>"), "{text}");
    assert!(text.contains("<bdi>Test Merchant</bdi>"), "{text}");
    assert!(!text.contains('\u{202e}') && !text.contains('\u{2066}'), "{text}");
}

/// A string of any Unicode, often with C0 controls, bidirectional overrides and (as U+E000, which
/// the body turns into the escape `\ud800`) lone surrogates.
fn odd_text() -> impl Strategy<Value = String> {
    let odd_char = prop_oneof![
        4 => any::<char>(),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => prop_oneof![Just('\u{202e}'), Just('\u{e000}'), Just('\u{feff}'), Just('"'), Just('\\')],
    ];
    proptest::collection::vec(odd_char, 0..24).prop_map(String::from_iter)
}

/// A non-empty string of any Unicode but C0 controls: what the rules let through to storage.
fn unicode_text() -> impl Strategy<Value = String> {
    let char = any::<char>().prop_filter("no C0 control, no surrogate marker", |c| *c >= ' ' && *c != '\u{e000}');
    proptest::collection::vec(char, 1..24).prop_map(String::from_iter)
}

/// Every claim string (iss, sub, jti, experienceId, distributionId, sku, name) is arbitrary
/// Unicode; at most one claim field (those, the currency, the merchant id `mid` or the audience)
/// and one body field are anything.
#[derive(Debug, Clone)]
struct OddCase {
    claim_strings: [String; 7],
    odd_claim: Option<(usize, String)>,
    odd_body: Option<(usize, String)>,
}

fn odd_case() -> impl Strategy<Value = OddCase> {
    (
        proptest::array::uniform7(unicode_text()),
        proptest::option::weighted(0.5, (0..10usize, odd_text())),
        proptest::option::weighted(0.5, (0..5usize, odd_text())),
    )
        .prop_map(|(claim_strings, odd_claim, odd_body)| OddCase { claim_strings, odd_claim, odd_body })
}

fn body_text(app: &TestApp, merchant: &TestMerchant, case: &OddCase, n: usize) -> String {
    let mut strings = case.claim_strings.to_vec();
    strings.extend(["usd".to_owned(), merchant.id.to_string(), "checkout".to_owned()]);
    if let Some((i, odd)) = &case.odd_claim {
        strings[*i] = odd.clone();
    }
    let [iss, sub, jti, experience, distribution, sku, name, currency, mid, aud] =
        <[String; 10]>::try_from(strings).expect("ten claim strings");
    let items = vec![ClaimItem { sku, name, quantity: 1, unit_amount: 1000 }];
    let payload = ClaimPayload {
        iss,
        sub,
        jti: format!("{jti}{n}"),
        currency,
        mid,
        aud: Audience::One(aud),
        experience_id: Some(experience),
        distribution_id: Some(distribution),
        ..ClaimPayload::new(merchant.id, items, Utc::now(), 600)
    };
    let mut values = [
        app.signer.sign(&payload),
        "hosted".to_owned(),
        "https://shop.example/ok".to_owned(),
        "https://shop.example/cancel".to_owned(),
        format!("key-{n}"),
    ];
    if let Some((i, odd)) = &case.odd_body {
        values[*i] = odd.clone();
    }
    let fields = ["checkoutClaim", "mode", "successUrl", "cancelUrl", "idempotencyKey"];
    let body: serde_json::Map<String, Value> =
        fields.iter().zip(values).map(|(field, value)| ((*field).to_owned(), Value::from(value))).collect();
    // Inside a string U+E000 becomes a lone surrogate escape, which JavaScript's JSON accepts.
    Value::Object(body).to_string().replace('\u{e000}', "\\ud800")
}

/// Arbitrary Unicode in every string of the body and of the claim: whatever is refused is a 4xx,
/// and whatever is accepted makes a page and an order that read back without a 5xx.
fn arbitrary_unicode_in_any_string_never_gives_a_5xx(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() });
    let n = std::cell::Cell::new(0);
    let created = std::cell::Cell::new(0);
    runner
        .run(&odd_case(), |case| {
            n.set(n.get() + 1);
            let response = app.post_raw("/checkout", Some(&merchant.key), &body_text(&app, &merchant, &case, n.get()));
            prop_assert!(response.status < 500, "{}: {}", response.status, response.text);
            if response.status == 200 {
                created.set(created.get() + 1);
                let json = response.json();
                let page = json["checkoutUrl"].as_str().unwrap_or_default().replace("http://checkout.test", "");
                let shown = app.request("GET", &page, &[]);
                prop_assert_eq!(shown.status, 200, "{}", shown.text);
                let order = app.request(
                    "GET",
                    &format!("/orders/{}", json["orderId"].as_str().unwrap_or_default()),
                    &[("Authorization", &format!("Bearer {}", merchant.key))],
                );
                prop_assert_eq!(order.status, 200, "{}", order.text);
            }
            Ok(())
        })
        .unwrap();
    assert!(created.get() > 0, "no case made a checkout: the strategy never reached the database");
}

on_both_backends!(
    return_urls_are_bounded_once_encoded_and_carry_no_credentials,
    control_characters_in_the_idempotency_key_are_a_400,
    control_characters_in_claim_strings_are_refused_with_their_own_reason,
    a_return_url_cannot_add_a_directive_to_the_page_s_policy,
    the_embedded_page_may_be_framed_only_by_the_merchant_s_own_site,
    the_redirect_is_built_from_the_parsed_url,
    urls_longer_than_2048_are_refused,
    a_claim_valid_for_longer_than_the_maximum_is_refused,
    currencies_are_iso_4217_and_shown_in_their_own_minor_units,
    names_on_the_page_cannot_disguise_the_text_around_them,
    arbitrary_unicode_in_any_string_never_gives_a_5xx,
);

fn return_urls_are_bounded_once_encoded_and_carry_no_credentials(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let issues_of = |field: &str, url: &str| {
        let mut body = app.checkout_body(&merchant);
        body[field] = serde_json::Value::from(url);
        let answer = app.post_checkout(&merchant.key, &body);
        assert_eq!(answer.status, 400, "{url}: {}", answer.text);
        answer.json()["issues"].as_array().unwrap().clone()
    };
    // 2,048 characters as typed, 18,288 once encoded: what the redirect after paying would carry.
    let wide = format!("https://shop.example/{}", "一".repeat(2027));
    let issues = issues_of("successUrl", &wide);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!((issues[0]["type"].as_str(), issues[0]["received"].as_str()), (Some("max_length"), Some("18264")));
    assert_eq!(issues[0]["message"], "Invalid length: Expected <=2048 but received 18264");
    for odd in ["https://user:secret@shop.example/ok", "https://shop.example:0/ok", "https://-shop.example/ok"] {
        let issues = issues_of("cancelUrl", odd);
        assert_eq!(issues[0]["type"], "url", "{odd}: {issues:#?}");
    }
    let hooks = serde_json::json!({ "url": format!("https://shop.example/{}", "é".repeat(1500)) }).to_string();
    let refused = app.post_raw("/webhook-endpoints", Some(&merchant.key), &hooks);
    assert_eq!((refused.status, refused.json()["error"].as_str()), (400, Some("invalid_request")), "{}", refused.text);
    assert!(refused.json()["message"].as_str().unwrap().contains("2048"), "{}", refused.text);
}
