//! The merchant's order endpoints.

use domain::livemode::Livemode;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

fn an_order_reads_back_as_created(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (_, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let order = app.get_order(&merchant.key, &order_id);
    assert_eq!(order["id"], order_id.as_str());
    assert_eq!(order["status"], "pending");
    assert_eq!(order["livemode"], false);
    assert_eq!(order["currency"], "usd");
    assert_eq!(order["amountTotal"], 6500);
    assert_eq!(order["items"][0]["sku"], "TEE-1");
    assert_eq!(order["items"][0]["unitAmount"], 2500);
    assert_eq!(order["items"][1]["amount"], 1500);
    assert_eq!(order["payment"]["status"], "pending");
    assert_eq!(order["session"]["status"], "open");
    assert_eq!(order["session"]["mode"], "hosted");
    assert!(order["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(order["payment"].get("lastAttempt").is_none());
    assert_eq!(
        app.request(
            "GET",
            &format!("/api/orders/{order_id}"),
            &[("Authorization", &format!("Bearer {}", merchant.key))]
        )
        .status,
        200
    );
}

fn another_merchants_or_modes_order_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend);
    let owner = app.new_merchant();
    let stranger = app.new_merchant();
    let (_, order_id) = app.create_checkout(&owner, &app.checkout_body(&owner));
    let response =
        app.request("GET", &format!("/orders/{order_id}"), &[("Authorization", &format!("Bearer {}", stranger.key))]);
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"], "not_found");
    let live = app.new_merchant_in(Livemode::Live);
    let (_, live_order) = app.create_checkout(&live, &app.checkout_body(&live));
    let test_key_of_live_merchant = app.new_merchant();
    let missing = app.request(
        "GET",
        &format!("/orders/{live_order}"),
        &[("Authorization", &format!("Bearer {}", test_key_of_live_merchant.key))],
    );
    assert_eq!(missing.status, 404);
    assert_eq!(
        app.request("GET", "/orders/ord_nonsense", &[("Authorization", &format!("Bearer {}", owner.key))]).status,
        404
    );
    assert_eq!(app.request("GET", &format!("/orders/{order_id}"), &[]).status, 401);
    assert_eq!(app.request("GET", "/orders/ord_nonsense", &[]).status, 401, "a stranger learns nothing of paths");
    assert_eq!(app.request("POST", "/orders/nonsense/cancel", &[]).status, 401);
}

fn cancelling_an_order_is_idempotent_and_final(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let (page, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let auth = format!("Bearer {}", merchant.key);
    let first = app.request("POST", &format!("/orders/{order_id}/cancel"), &[("Authorization", &auth)]);
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json()["status"], "cancelled");
    assert_eq!(first.json()["session"]["status"], "cancelled");
    let second = app.request("POST", &format!("/orders/{order_id}/cancel"), &[("Authorization", &auth)]);
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["status"], "cancelled");
    assert!(app.request("GET", &page, &[]).text.contains("Checkout cancelled"));

    let (paid_page, paid_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.pay(&paid_page, "4242424242424242").status, 303);
    let refused = app.request("POST", &format!("/orders/{paid_id}/cancel"), &[("Authorization", &auth)]);
    assert_eq!(refused.status, 409);
    assert_eq!(refused.json()["error"], "order_not_cancellable");
}

fn a_live_order_is_never_charged_by_the_sandbox(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant_in(Livemode::Live);
    let (page, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let paid = app.pay(&page, "4242424242424242");
    assert_eq!(paid.status, 409, "{}", paid.text);
    assert_eq!(app.get_order(&merchant.key, &order_id)["payment"]["status"], "pending");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), 0);
}

on_both_backends!(
    an_order_reads_back_as_created,
    another_merchants_or_modes_order_is_not_found,
    cancelling_an_order_is_idempotent_and_final,
    a_live_order_is_never_charged_by_the_sandbox,
);
