//! The consumer's checkout page: paying, declines, cancelling, expiry, embedding and safety.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Backend, Hold, TestApp, TestMerchant};
use crate::on_both_backends;

const SUCCEEDS: &str = "4242 4242 4242 4242";
const DECLINED: &str = "4000 0000 0000 0002";
const NO_FUNDS: &str = "4000 0000 0000 9995";

fn checkout(app: &TestApp, merchant: &TestMerchant, mode: &str) -> (String, String) {
    let mut body = app.checkout_body(merchant);
    body["mode"] = Value::from(mode);
    body["successUrl"] = Value::from("https://shop.example/thanks?order={ORDER_ID}");
    body["cancelUrl"] = Value::from("https://shop.example/cart?cancelled={ORDER_ID}");
    app.create_checkout(merchant, &body)
}

fn paying_with_the_test_card_lands_on_the_success_url(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (page, order_id) = checkout(&app, &merchant, "hosted");

    let shown = app.request("GET", &page, &[]);
    assert_eq!(shown.status, 200);
    assert!(shown.text.contains("Test Merchant") && shown.text.contains("Tee") && shown.text.contains("Cap"));
    assert!(shown.text.contains("$65.00"), "total formatted for the currency");
    assert!(shown.text.contains("2 × $25.00"));

    let paid = app.pay(&page, SUCCEEDS);
    assert_eq!(paid.status, 303, "{}", paid.text);
    assert_eq!(paid.header("location"), Some(format!("https://shop.example/thanks?order={order_id}").as_str()));

    let order = app.get_order(&merchant.key, &order_id);
    assert_eq!(order["status"], "paid");
    assert_eq!(order["payment"]["status"], "succeeded");
    assert_eq!(order["session"]["status"], "complete");
    assert_eq!(order["payment"]["lastAttempt"]["card"], serde_json::json!({"brand": "visa", "last4": "4242"}));
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts WHERE card_last4 = '4242'"), 1);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts WHERE card_last4 LIKE '%4242424%'"), 0);

    let again = app.request("GET", &page, &[]);
    assert!(again.text.contains("Payment received") && !again.text.contains("name=\"number\""));
}

fn a_declined_card_shows_why_and_a_retry_succeeds(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (page, order_id) = checkout(&app, &merchant, "hosted");

    let declined = app.pay(&page, DECLINED);
    assert_eq!(declined.status, 402);
    assert!(declined.text.contains("Your card was declined"), "{}", declined.text);
    assert!(declined.text.contains("role=\"alert\""));
    let order = app.get_order(&merchant.key, &order_id);
    assert_eq!((order["status"].as_str(), order["payment"]["status"].as_str()), (Some("pending"), Some("failed")));
    assert_eq!(order["payment"]["lastAttempt"]["declineCode"], "card_declined");

    let broke = app.pay(&page, NO_FUNDS);
    assert!(broke.text.contains("insufficient funds"));

    assert_eq!(app.pay(&page, SUCCEEDS).status, 303);
    assert_eq!(app.get_order(&merchant.key, &order_id)["status"], "paid");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), 3);
}

fn a_malformed_card_charges_nothing_and_says_which_field(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (page, order_id) = checkout(&app, &merchant, "hosted");
    let typo = app.pay(&page, "4242 4242 4242 4241");
    assert_eq!(typo.status, 422);
    assert!(typo.text.contains("aria-invalid=\"true\" aria-describedby=\"number-error\""));
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), 0);
    assert_eq!(app.get_order(&merchant.key, &order_id)["payment"]["status"], "pending");
}

fn submitting_the_pay_form_many_times_at_once_charges_once(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (page, order_id) = checkout(&app, &merchant, "hosted");
    let form_token = app.form_token(&page);
    let barrier = Barrier::new(8);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    app.post_form(
                        &format!("{page}/pay"),
                        &[("form_token", &form_token), ("number", SUCCEEDS), ("expiry", "12/40"), ("cvc", "123")],
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|&s| s == 303), "{statuses:?}");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), 1, "one charge");
    assert_eq!(app.get_order(&merchant.key, &order_id)["status"], "paid");
    // The back button and a second tab: still one charge, and the consumer lands on success.
    let late = app.post_form(
        &format!("{page}/pay"),
        &[("form_token", &form_token), ("number", SUCCEEDS), ("expiry", "12/40"), ("cvc", "123")],
    );
    assert_eq!(late.status, 303);
    assert!(late.header("location").unwrap().starts_with("https://shop.example/thanks"));
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), 1);
}

fn cancelling_lands_on_the_cancel_url_and_ends_the_checkout(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (page, order_id) = checkout(&app, &merchant, "hosted");
    let form_token = app.form_token(&page);
    let cancelled = app.post_form(&format!("{page}/cancel"), &[("form_token", &form_token)]);
    assert_eq!(cancelled.status, 303);
    assert_eq!(cancelled.header("location"), Some(format!("https://shop.example/cart?cancelled={order_id}").as_str()));
    let shown = app.request("GET", &page, &[]);
    assert!(shown.text.contains("Checkout cancelled") && !shown.text.contains("name=\"number\""));
    let paid = app.post_form(
        &format!("{page}/pay"),
        &[("form_token", &form_token), ("number", SUCCEEDS), ("expiry", "12/40"), ("cvc", "123")],
    );
    assert_eq!(paid.header("location"), Some(page.as_str()), "a cancelled checkout only shows itself");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), 0);
    let order = app.get_order(&merchant.key, &order_id);
    assert_eq!((order["status"].as_str(), order["session"]["status"].as_str()), (Some("cancelled"), Some("cancelled")));
}

fn an_expired_session_says_so_and_never_charges(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (page, order_id) = checkout(&app, &merchant, "hosted");
    let form_token = app.form_token(&page);
    app.pass_session_end(&merchant, &order_id);
    let shown = app.request("GET", &page, &[]);
    assert!(shown.text.contains("Checkout expired"), "{}", shown.text);
    let paid = app.post_form(
        &format!("{page}/pay"),
        &[("form_token", &form_token), ("number", SUCCEEDS), ("expiry", "12/40"), ("cvc", "123")],
    );
    assert_eq!(paid.status, 303);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), 0);
    assert_eq!(app.get_order(&merchant.key, &order_id)["status"], "expired", "the API agrees at once");
}

fn sessions_expire_even_when_nobody_looks(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_SWEEP_INTERVAL_SECONDS", "1")]);
    let merchant = app.new_merchant();
    // One claim runs out in a minute, the other in fifteen: so do their sessions.
    let mut short = app.claim_payload(&merchant);
    short.exp = short.iat + 60;
    let (_, order_id) = app.create_checkout(&merchant, &app.body_with(&app.signer.sign(&short)));
    let (_, open_id) = checkout(&app, &merchant, "hosted");
    app.pass_session_end(&merchant, &order_id);
    // The sweeper runs in the background: wait for its effect, bounded.
    let deadline = Instant::now() + Duration::from_secs(15);
    let stored =
        |id: &str| app.count(&format!("SELECT COUNT(*) AS n FROM orders WHERE id = '{id}' AND status = 'expired'"));
    while stored(&order_id) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stored(&order_id), 1, "the stored order is expired");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM checkout_sessions WHERE order_id = '{order_id}' AND status = 'expired'"
        )),
        1
    );
    assert_eq!(stored(&open_id), 0, "a session still in its time stays open");
}

fn a_charge_whose_process_died_is_freed_and_can_be_retried(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_SWEEP_INTERVAL_SECONDS", "1")]);
    let merchant = app.new_merchant();
    let (page, order_id) = checkout(&app, &merchant, "hosted");
    std::thread::scope(|scope| {
        // A process records the charge and stops before the provider sees it.
        let pay = app.held_pay(scope, &page, Hold::BeforeCharging);
        assert!(app.request("GET", &page, &[]).text.contains("Payment in progress"));
        // Minutes pass: the background sweeper asks the provider, which never saw the charge.
        app.clock.advance(chrono::Duration::minutes(3));
        let deadline = Instant::now() + Duration::from_secs(15);
        while app.get_order(&merchant.key, &order_id)["payment"]["status"] == "processing" && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(app.get_order(&merchant.key, &order_id)["payment"]["status"], "failed");
        app.provider.drop_held();
        pay.join().unwrap();
    });
    assert_eq!(app.pay(&page, SUCCEEDS).status, 303, "the consumer can pay again");
    assert_eq!(app.get_order(&merchant.key, &order_id)["status"], "paid");
}

fn the_embedded_page_may_be_framed_and_reports_its_outcome(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (page, order_id) = checkout(&app, &merchant, "embedded");
    assert!(page.starts_with("/embed/"));
    let shown = app.request("GET", &page, &[]);
    assert_eq!(shown.header("x-frame-options"), None);
    let csp = shown.header("content-security-policy").unwrap();
    assert!(csp.ends_with("frame-ancestors https://shop.example"), "only the merchant's own site may frame it: {csp}");
    let paid = app.pay(&page, SUCCEEDS);
    assert_eq!(paid.header("location"), Some(page.as_str()), "the embedded page shows its own outcome");
    let outcome = app.request("GET", &page, &[]);
    assert!(outcome.text.contains("data-outcome=\"completed\""), "{}", outcome.text);
    assert!(outcome.text.contains(&format!("data-order-id=\"{order_id}\"")));
    assert!(outcome.text.contains("data-parent-origin=\"https://shop.example\""));
    // The hosted path does not serve an embedded checkout, and the reverse.
    assert_eq!(app.request("GET", &page.replace("/embed/", "/c/"), &[]).status, 404);
}

fn pages_are_locked_down(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (page, _) = checkout(&app, &merchant, "hosted");
    let shown = app.request("GET", &page, &[]);
    let csp = shown.header("content-security-policy").unwrap();
    for directive in
        ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self' https://shop.example"]
    {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert_eq!(shown.header("x-frame-options"), Some("DENY"));
    assert_eq!(shown.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(shown.header("cache-control"), Some("no-store"));
    assert!(!shown.text.contains("http://") && !shown.text.contains("https://cdn"), "no external resources");
    for asset in ["/assets/checkout.css", "/assets/checkout.js"] {
        assert_eq!(app.request("GET", asset, &[]).status, 200);
    }
    assert_eq!(app.request("GET", "/c/not-a-token", &[]).status, 404);
}

fn forged_forms_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (page, _) = checkout(&app, &merchant, "hosted");
    let card = [("number", SUCCEEDS), ("expiry", "12/40"), ("cvc", "123")];
    let without = app.post_form(&format!("{page}/pay"), &card);
    assert_eq!(without.status, 403);
    let form_token = app.form_token(&page);
    let mut fields = card.to_vec();
    fields.push(("form_token", &form_token));
    let elsewhere = app.agent_post_from("https://evil.example", &format!("{page}/pay"), &fields);
    assert_eq!(elsewhere, 403);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), 0);
}

on_both_backends!(
    paying_with_the_test_card_lands_on_the_success_url,
    a_declined_card_shows_why_and_a_retry_succeeds,
    a_malformed_card_charges_nothing_and_says_which_field,
    submitting_the_pay_form_many_times_at_once_charges_once,
    cancelling_lands_on_the_cancel_url_and_ends_the_checkout,
    an_expired_session_says_so_and_never_charges,
    sessions_expire_even_when_nobody_looks,
    a_charge_whose_process_died_is_freed_and_can_be_retried,
    the_embedded_page_may_be_framed_and_reports_its_outcome,
    pages_are_locked_down,
    forged_forms_are_refused,
);
