//! Money under concurrency: a charge is never lost, never doubled, and never stands on an order
//! that ended; each change of an order writes its event once, however many requests, tabs,
//! replicas or sweepers race for it. Every race runs through HTTP, on both backends, and with two
//! servers sharing PostgreSQL.

use std::sync::Barrier;

use serde_json::Value;

use crate::helpers::{Backend, Hold, Response, TestApp, TestMerchant};
use crate::on_both_backends;

const SUCCEEDS: &str = "4242 4242 4242 4242";
const DECLINED: &str = "4000 0000 0000 0002";

/// Webhook deliveries stay pending (the dispatcher waits an hour), so that events can be counted.
const QUIET: &[(&str, &str)] = &[("CHECKOUT_WEBHOOK_POLL_MS", "3600000"), ("CHECKOUT_SWEEP_INTERVAL_SECONDS", "3600")];

/// A merchant with a webhook endpoint, so that every event of its orders is written.
fn listening_merchant(app: &TestApp) -> TestMerchant {
    let merchant = app.new_merchant();
    let body = serde_json::json!({ "url": "http://127.0.0.1:9/hooks" }).to_string();
    assert_eq!(app.post_raw("/webhook-endpoints", Some(&merchant.key), &body).status, 201);
    merchant
}

/// How many events of `event_type` were written about `order_id`.
fn events(app: &TestApp, order_id: &str, event_type: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) AS n FROM webhook_events WHERE event_type = '{event_type}' AND payload LIKE '%\"id\":\"{order_id}\"%'"
    ))
}

/// Where an order's money stands, checked against what the provider did:
/// - every charge the provider captured (and kept) pays its order, and at most one does;
/// - an order that is not paid holds no captured charge (a late one was refunded);
/// - no payment is left `processing`;
/// - each change wrote its event once, and only changes that happened wrote one.
fn assert_money_kept(app: &TestApp, merchant: &TestMerchant, order_id: &str) -> Value {
    let order = app.get_order(&merchant.key, order_id);
    let (status, payment) = (order["status"].as_str().unwrap(), order["payment"]["status"].as_str().unwrap());
    let payment_id = order["payment"]["id"].as_str().unwrap();
    let captured = app.provider.captured_for(payment_id);
    let refunded = app.provider.refunded_for(payment_id);
    assert_ne!(payment, "processing", "{order_id}: a charge left unanswered: {order}");
    match status {
        "paid" => {
            assert_eq!(captured.len(), 1, "{order_id}: a paid order holds exactly one charge: {order}");
            assert_eq!(payment, "succeeded");
        }
        "cancelled" | "expired" | "pending" => {
            assert!(captured.is_empty(), "{order_id}: charged {captured:?} but {status}: {order}");
        }
        other => panic!("{order_id}: unknown status {other}"),
    }
    if !refunded.is_empty() && status != "paid" {
        assert_eq!(payment, "refunded", "{order_id}: {order}");
    }
    let expected = [
        ("order.created", 1),
        ("order.completed", i64::from(status == "paid")),
        ("order.cancelled", i64::from(status == "cancelled")),
        ("order.expired", i64::from(status == "expired")),
        ("payment.refunded", refunded.len() as i64),
    ];
    for (event_type, count) in expected {
        assert_eq!(events(app, order_id, event_type), count, "{order_id}: {event_type} events for {order}");
    }
    order
}

fn is_server_error(response: &Response) -> bool {
    response.status >= 500
}

fn pay_form(app: &TestApp, path: &str, card: &str) -> Response {
    let form_token = app.form_token(path);
    app.post_form(
        &format!("{path}/pay"),
        &[("form_token", &form_token), ("number", card), ("expiry", "12/40"), ("cvc", "123")],
    )
}

/// Races a consumer's pay on `payer` against a cancel on `canceller` (the merchant API on even
/// rounds, the page's cancel link on odd ones), `rounds` times, and checks the money after each.
fn race_pay_against_cancel(payer: &TestApp, canceller: &TestApp, rounds: usize) {
    let merchant = listening_merchant(payer);
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..rounds {
        let (path, order_id) = payer.create_checkout(&merchant, &payer.checkout_body(&merchant));
        let form_token = payer.form_token(&path);
        let barrier = Barrier::new(2);
        let (paid, cancelled) = std::thread::scope(|scope| {
            let pay = scope.spawn(|| {
                barrier.wait();
                payer.post_form(
                    &format!("{path}/pay"),
                    &[("form_token", &form_token), ("number", SUCCEEDS), ("expiry", "12/40"), ("cvc", "123")],
                )
            });
            let cancel = scope.spawn(|| {
                barrier.wait();
                if round % 2 == 0 {
                    canceller.cancel_order(&merchant.key, &order_id)
                } else {
                    canceller.post_form(&format!("{path}/cancel"), &[("form_token", &form_token)])
                }
            });
            (pay.join().unwrap(), cancel.join().unwrap())
        });
        assert!(!is_server_error(&paid), "round {round}: pay answered {}: {}", paid.status, paid.text);
        assert!(
            !is_server_error(&cancelled),
            "round {round}: cancel answered {}: {}",
            cancelled.status,
            cancelled.text
        );
        if cancelled.status == 409 {
            let code = cancelled.json()["error"].as_str().unwrap().to_owned();
            assert!(["order_payment_in_progress", "order_not_cancellable"].contains(&code.as_str()), "{code}");
        }
        let order = assert_money_kept(payer, &merchant, &order_id);
        *outcomes.entry(order["status"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    // Both sides must have won some rounds, or the race was not a race.
    assert!(outcomes.len() > 1 || rounds < 20, "every round ended alike: {outcomes:?}");
}

fn a_pay_racing_a_cancel_never_loses_money(backend: Backend) {
    let app = TestApp::spawn_with(backend, QUIET);
    race_pay_against_cancel(&app, &app, 200);
}

#[test]
fn with_two_servers_on_postgres_a_pay_racing_a_cancel_never_loses_money() {
    let first = TestApp::spawn_with(Backend::Postgres, QUIET);
    let second = TestApp::spawn_on(first.test_db.shared(), first.signer_copy(), QUIET);
    race_pay_against_cancel(&first, &second, 200);
}

/// Races a consumer's pay on `payer` against the sweeper of `sweeper` at the moment the session
/// runs out, `rounds` times, and checks the money after each.
fn race_pay_against_expiry(payer: &TestApp, sweeper: &TestApp, rounds: usize) {
    let merchant = listening_merchant(payer);
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..rounds {
        for app in [payer, sweeper] {
            app.clock.reset();
        }
        let body = payer.checkout_body(&merchant);
        let created = payer.post_checkout(&merchant.key, &body);
        assert_eq!(created.status, 200, "{}", created.text);
        let created = created.json();
        let order_id = created["orderId"].as_str().unwrap().to_owned();
        let path = created["checkoutUrl"].as_str().unwrap().strip_prefix("http://checkout.test").unwrap().to_owned();
        let form_token = payer.form_token(&path);
        let expires_at: chrono::DateTime<chrono::Utc> = created["expiresAt"].as_str().unwrap().parse().unwrap();
        // A few milliseconds before the end: the pay reads the session open, the sweeper soon
        // finds it due, and one of them gets there first.
        let just_before = expires_at - chrono::Duration::milliseconds(i64::try_from(round % 5).unwrap() + 1);
        for app in [payer, sweeper] {
            app.clock.set(just_before);
        }
        let barrier = Barrier::new(2);
        let paid = std::thread::scope(|scope| {
            let pay = scope.spawn(|| {
                barrier.wait();
                payer.post_form(
                    &format!("{path}/pay"),
                    &[("form_token", &form_token), ("number", SUCCEEDS), ("expiry", "12/40"), ("cvc", "123")],
                )
            });
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..5 {
                    sweeper.sweep();
                }
            });
            pay.join().unwrap()
        });
        assert!(!is_server_error(&paid), "round {round}: pay answered {}: {}", paid.status, paid.text);
        for app in [payer, sweeper] {
            app.clock.set(expires_at + chrono::Duration::seconds(1));
        }
        sweeper.sweep();
        let order = assert_money_kept(payer, &merchant, &order_id);
        *outcomes.entry(order["status"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    for app in [payer, sweeper] {
        app.clock.reset();
    }
    assert!(outcomes.len() > 1 || rounds < 20, "every round ended alike: {outcomes:?}");
}

fn a_pay_racing_expiry_never_loses_money(backend: Backend) {
    let app = TestApp::spawn_with(backend, QUIET);
    race_pay_against_expiry(&app, &app, 100);
}

#[test]
fn with_two_servers_on_postgres_a_pay_racing_expiry_never_loses_money() {
    let first = TestApp::spawn_with(Backend::Postgres, QUIET);
    let second = TestApp::spawn_on(first.test_db.shared(), first.signer_copy(), QUIET);
    race_pay_against_expiry(&first, &second, 100);
}

fn a_charge_in_flight_blocks_cancel_expiry_and_a_new_order_for_its_claim(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[QUIET, &[("CHECKOUT_SESSION_TTL_SECONDS", "60")]].concat());
    let merchant = listening_merchant(&app);
    let claim = app.signed_claim(&merchant);
    let (path, order_id) = app.create_checkout(&merchant, &app.body_with(&claim));
    let form_token = app.form_token(&path);
    std::thread::scope(|scope| {
        let pay = app.held_pay(scope, &path, Hold::BeforeCharging);

        let cancel = app.cancel_order(&merchant.key, &order_id);
        assert_eq!(cancel.status, 409, "{}", cancel.text);
        assert_eq!(cancel.json()["error"], "order_payment_in_progress");
        assert_eq!(cancel.header("retry-after"), Some("1"));
        let page_cancel = app.post_form(&format!("{path}/cancel"), &[("form_token", &form_token)]);
        assert_eq!(page_cancel.status, 303);
        assert!(app.request("GET", &path, &[]).text.contains("Payment in progress"));
        let again = app.post_checkout(&merchant.key, &app.body_with(&claim));
        assert_eq!((again.status, again.json()["error"].clone()), (409, "claim_already_redeemed".into()));

        // The session runs out while the provider answers (well before the charge counts as
        // stuck): the sweeper leaves the order alone, and so does a new order for its claim.
        app.clock.advance(chrono::Duration::seconds(61));
        assert_eq!(app.sweep()[1], 0, "nothing expires while a charge is in flight");
        assert_eq!(app.get_order(&merchant.key, &order_id)["payment"]["status"], "processing");
        let renewed = app.post_checkout(&merchant.key, &app.body_with(&claim));
        assert_eq!((renewed.status, renewed.json()["error"].clone()), (409, "claim_already_redeemed".into()));

        app.provider.release();
        let paid = pay.join().unwrap();
        assert_eq!(paid.status, 303);
        assert_eq!(paid.header("location"), Some("https://shop.example/success"));
    });
    let order = assert_money_kept(&app, &merchant, &order_id);
    assert_eq!(order["status"], "paid", "the charge that was in flight decides: {order}");
    assert_eq!(app.sweep()[1], 0);
}

fn a_charge_whose_answer_was_lost_is_looked_up_and_recorded(backend: Backend) {
    let app = TestApp::spawn_with(backend, QUIET);
    let merchant = listening_merchant(&app);
    let (path, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    std::thread::scope(|scope| {
        // The provider charged; the process froze before recording the answer.
        let pay = app.held_pay(scope, &path, Hold::AfterCharging);
        app.clock.advance(chrono::Duration::minutes(3));
        assert_eq!(app.sweep()[0], 1, "the stuck charge is resolved");
        let order = app.get_order(&merchant.key, &order_id);
        assert_eq!((order["status"].as_str(), order["payment"]["status"].as_str()), (Some("paid"), Some("succeeded")));
        assert_eq!(order["payment"]["lastAttempt"]["outcome"], "succeeded");

        app.provider.release();
        let paid = pay.join().unwrap();
        assert_eq!(paid.header("location"), Some("https://shop.example/success"), "the frozen request ends well too");
    });
    assert_money_kept(&app, &merchant, &order_id);
    assert_eq!(app.sweep()[0], 0);
}

fn a_charge_the_provider_never_took_is_freed_without_counting_as_a_decline(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[QUIET, &[("CHECKOUT_PAY_ATTEMPTS_MAX", "1")]].concat());
    let merchant = listening_merchant(&app);
    let (path, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    std::thread::scope(|scope| {
        // A charge is recorded, and its process stalls before the provider sees it.
        let pay = app.held_pay(scope, &path, Hold::BeforeCharging);
        app.clock.advance(chrono::Duration::minutes(3));
        assert_eq!(app.sweep()[0], 1);
        let order = app.get_order(&merchant.key, &order_id);
        assert_eq!(order["payment"]["status"], "failed");
        assert_eq!(order["payment"]["lastAttempt"]["declineCode"], "processing_error");
        assert_eq!(order["payment"]["failedAttempts"], 0, "nothing was declined");
        // The stalled call never reaches the provider; what its process records changes nothing.
        app.provider.drop_held();
        assert!(!is_server_error(&pay.join().unwrap()));
    });
    assert_eq!(app.get_order(&merchant.key, &order_id)["payment"]["failedAttempts"], 0);
    assert_eq!(events(&app, &order_id, "payment.failed"), 1);
    assert_eq!(pay_form(&app, &path, SUCCEEDS).header("location"), Some("https://shop.example/success"));
    assert_money_kept(&app, &merchant, &order_id);
}

/// How an order ends while its charge is stalled past the point where the provider is asked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    CancelledByTheMerchant,
    Expired,
}

fn a_charge_that_lands_after_its_order_was_cancelled_is_refunded(backend: Backend) {
    a_charge_that_lands_after_its_order_ended_is_refunded(backend, Ending::CancelledByTheMerchant);
}

fn a_charge_stalled_past_expiry_that_lands_after_the_order_expired_is_refunded(backend: Backend) {
    a_charge_that_lands_after_its_order_ended_is_refunded(backend, Ending::Expired);
}

fn a_charge_that_lands_after_its_order_ended_is_refunded(backend: Backend, ending: Ending) {
    let app = TestApp::spawn_with(backend, QUIET);
    a_charge_that_lands_after_its_order_ended_on_another_server_is_refunded(&app, &app, ending);
}

#[test]
fn with_two_servers_on_postgres_a_charge_stalled_past_expiry_is_refunded() {
    let first = TestApp::spawn_with(Backend::Postgres, QUIET);
    let second = TestApp::spawn_on(first.test_db.shared(), first.signer_copy(), QUIET);
    a_charge_that_lands_after_its_order_ended_on_another_server_is_refunded(&first, &second, Ending::Expired);
    a_charge_that_lands_after_its_order_ended_on_another_server_is_refunded(
        &first,
        &second,
        Ending::CancelledByTheMerchant,
    );
}

/// A pay on `payer` stalls at the provider while `other` (the same server, or another replica)
/// frees the payment and ends the order; then the charge goes through after all.
fn a_charge_that_lands_after_its_order_ended_on_another_server_is_refunded(
    payer: &TestApp,
    other: &TestApp,
    ending: Ending,
) {
    let merchant = listening_merchant(payer);
    let (path, order_id) = payer.create_checkout(&merchant, &payer.checkout_body(&merchant));
    let advance = |by: chrono::Duration| {
        payer.clock.advance(by);
        if !std::ptr::eq(payer, other) {
            other.clock.advance(by);
        }
    };
    std::thread::scope(|scope| {
        // The provider is slow; the job asks it, hears it has no such charge, and frees the payment.
        let pay = payer.held_pay(scope, &path, Hold::BeforeCharging);
        advance(chrono::Duration::minutes(3));
        assert_eq!(other.sweep()[0], 1);
        assert_eq!(other.get_order(&merchant.key, &order_id)["payment"]["status"], "failed");
        match ending {
            Ending::CancelledByTheMerchant => {
                let cancelled = other.cancel_order(&merchant.key, &order_id);
                assert_eq!(cancelled.status, 200, "{}", cancelled.text);
            }
            Ending::Expired => {
                advance(chrono::Duration::minutes(30));
                assert_eq!(other.sweep()[1], 1);
            }
        }

        // Then the charge goes through after all: it is recorded and given back.
        payer.provider.release();
        let late = pay.join().unwrap();
        assert_eq!(late.status, 303);
        assert!(!late.header("location").unwrap().contains("success"), "{:?}", late.header("location"));
    });
    let order = assert_money_kept(payer, &merchant, &order_id);
    let ended = if ending == Ending::Expired { "expired" } else { "cancelled" };
    assert_eq!((order["status"].as_str(), order["payment"]["status"].as_str()), (Some(ended), Some("refunded")));
    assert_eq!(order["payment"]["lastAttempt"]["outcome"], "refunded");
    assert_eq!(payer.provider.refunded_for(order["payment"]["id"].as_str().unwrap()).len(), 1);
    assert!(other.request("GET", &path, &[]).text.contains("refunded"), "the page says where the money went");
}

fn a_charge_that_lands_late_on_a_checkout_still_open_pays_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, QUIET);
    let merchant = listening_merchant(&app);
    let (path, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    std::thread::scope(|scope| {
        let pay = app.held_pay(scope, &path, Hold::BeforeCharging);
        app.clock.advance(chrono::Duration::minutes(3));
        app.sweep();
        app.provider.release();
        assert_eq!(pay.join().unwrap().header("location"), Some("https://shop.example/success"));
    });
    let order = assert_money_kept(&app, &merchant, &order_id);
    assert_eq!(order["status"], "paid");
}

fn concurrent_cancels_all_answer_the_cancelled_order_and_write_one_event(backend: Backend) {
    let app = TestApp::spawn_with(backend, QUIET);
    concurrent_cancels_on(&[&app]);
}

#[test]
fn with_two_servers_on_postgres_concurrent_cancels_all_answer_the_cancelled_order_and_write_one_event() {
    let first = TestApp::spawn_with(Backend::Postgres, QUIET);
    let second = TestApp::spawn_on(first.test_db.shared(), first.signer_copy(), QUIET);
    concurrent_cancels_on(&[&first, &second]);
}

/// Sixteen cancels of one order at once, through the API and the page in turn, spread over
/// `servers`: every one answers the cancelled order, and one event is written.
fn concurrent_cancels_on(servers: &[&TestApp]) {
    let app = servers[0];
    let merchant = listening_merchant(app);
    let (path, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let form_token = app.form_token(&path);
    let barrier = Barrier::new(16);
    let answers: Vec<Response> = std::thread::scope(|scope| {
        let cancels: Vec<_> = (0..16)
            .map(|i| {
                let (barrier, form_token, path, order_id, key) =
                    (&barrier, &form_token, &path, &order_id, &merchant.key);
                let app = servers[(i / 2) % servers.len()];
                scope.spawn(move || {
                    barrier.wait();
                    if i % 2 == 0 {
                        app.cancel_order(key, order_id)
                    } else {
                        app.post_form(&format!("{path}/cancel"), &[("form_token", form_token)])
                    }
                })
            })
            .collect();
        cancels.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for answer in &answers {
        assert!([200, 303].contains(&answer.status), "{}: {}", answer.status, answer.text);
    }
    let order = assert_money_kept(app, &merchant, &order_id);
    assert_eq!(order["status"], "cancelled");
}

fn three_sweeping_replicas_expire_each_order_once(backend: Backend) {
    let settings = &[QUIET, &[("CHECKOUT_SESSION_TTL_SECONDS", "60")]].concat();
    let first = TestApp::spawn_with(backend, settings);
    let others = [
        TestApp::spawn_on(first.test_db.shared(), first.signer_copy(), settings),
        TestApp::spawn_on(first.test_db.shared(), first.signer_copy(), settings),
    ];
    let merchant = listening_merchant(&first);
    let mut claims = Vec::new();
    let mut orders = Vec::new();
    for _ in 0..40 {
        let claim = first.signed_claim(&merchant);
        orders.push(first.create_checkout(&merchant, &first.body_with(&claim)).1);
        claims.push(claim);
    }
    let replicas = [&first, &others[0], &others[1]];
    for app in replicas {
        app.clock.advance(chrono::Duration::minutes(2));
    }
    // Three sweepers and a new order for every fourth claim (which expires the old one on the
    // way), all at once.
    let barrier = Barrier::new(4);
    std::thread::scope(|scope| {
        for app in replicas {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                for _ in 0..3 {
                    app.sweep();
                }
            });
        }
        let (barrier, claims, first, merchant) = (&barrier, &claims, &first, &merchant);
        scope.spawn(move || {
            barrier.wait();
            for claim in claims.iter().step_by(4) {
                let renewed = first.post_checkout(&merchant.key, &first.body_with(claim));
                assert_eq!(renewed.status, 200, "{}", renewed.text);
            }
        });
    });
    for order_id in &orders {
        let order = assert_money_kept(&first, &merchant, order_id);
        assert_eq!(order["status"], "expired");
    }
}

fn a_suspended_merchant_takes_no_payment_until_activated(backend: Backend) {
    let app = TestApp::spawn_with(backend, QUIET);
    let merchant = listening_merchant(&app);
    let (path, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let form_token = app.form_token(&path);
    let payment_id = app.get_order(&merchant.key, &order_id)["payment"]["id"].as_str().unwrap().to_owned();
    app.suspend(&merchant);
    let page = app.request("GET", &path, &[]);
    assert!(page.text.contains("Checkout unavailable"), "{}", page.text);
    assert!(!page.text.contains("name=\"number\""), "no card form while suspended");
    let pay = app.post_form(
        &format!("{path}/pay"),
        &[("form_token", &form_token), ("number", SUCCEEDS), ("expiry", "12/40"), ("cvc", "123")],
    );
    assert_eq!(pay.status, 303);
    app.post_form(&format!("{path}/cancel"), &[("form_token", &form_token)]);
    assert!(app.provider.captured_for(&payment_id).is_empty(), "nothing charged");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), 0, "nothing tried");
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) AS n FROM orders WHERE id = '{order_id}' AND status = 'pending'")),
        1,
        "nothing changed"
    );

    app.activate(&merchant);
    assert_eq!(pay_form(&app, &path, SUCCEEDS).header("location"), Some("https://shop.example/success"));
    assert_eq!(assert_money_kept(&app, &merchant, &order_id)["status"], "paid");
}

fn a_checkout_closes_after_too_many_declined_cards(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[QUIET, &[("CHECKOUT_PAY_ATTEMPTS_MAX", "3")]].concat());
    let merchant = listening_merchant(&app);
    let (path, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let form_token = app.form_token(&path);
    for attempt in 1..=2 {
        let declined = pay_form(&app, &path, DECLINED);
        assert_eq!(declined.status, 402, "attempt {attempt}");
        assert!(declined.text.contains("name=\"number\""), "the form stays for another try");
    }
    let last = pay_form(&app, &path, DECLINED);
    assert!(last.text.contains("Too many cards were declined"), "{}", last.text);
    assert!(!last.text.contains("name=\"number\""));
    let order = app.get_order(&merchant.key, &order_id);
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancellationReason"], "too_many_failed_attempts");
    assert_eq!(
        (order["payment"]["status"].as_str(), order["payment"]["failedAttempts"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(order["session"]["status"], "cancelled");
    assert_eq!(events(&app, &order_id, "payment.failed"), 3);

    // A fourth card, even a good one, is never tried.
    let asked = app.count("SELECT COUNT(*) AS n FROM payment_attempts");
    let refused = app.post_form(
        &format!("{path}/pay"),
        &[("form_token", &form_token), ("number", SUCCEEDS), ("expiry", "12/40"), ("cvc", "123")],
    );
    assert_eq!(refused.status, 303);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), asked);
    assert_money_kept(&app, &merchant, &order_id);
}

fn one_claim_opens_one_order_across_test_and_live(backend: Backend) {
    let app = TestApp::spawn_with(backend, QUIET);
    let merchant = app.new_merchant();
    let live_key = app.new_key(&merchant, domain::livemode::Livemode::Live).key;
    let claim = app.signed_claim(&merchant);
    app.create_checkout(&merchant, &app.body_with(&claim));
    let live = app.post_checkout(&live_key, &app.body_with(&claim));
    assert_eq!(live.status, 409, "{}", live.text);
    assert_eq!(live.json()["error"], "claim_already_redeemed");
}

on_both_backends!(
    a_pay_racing_a_cancel_never_loses_money,
    a_pay_racing_expiry_never_loses_money,
    a_charge_in_flight_blocks_cancel_expiry_and_a_new_order_for_its_claim,
    a_charge_whose_answer_was_lost_is_looked_up_and_recorded,
    a_charge_the_provider_never_took_is_freed_without_counting_as_a_decline,
    a_charge_that_lands_after_its_order_was_cancelled_is_refunded,
    a_charge_stalled_past_expiry_that_lands_after_the_order_expired_is_refunded,
    a_charge_that_lands_late_on_a_checkout_still_open_pays_it,
    concurrent_cancels_all_answer_the_cancelled_order_and_write_one_event,
    three_sweeping_replicas_expire_each_order_once,
    a_suspended_merchant_takes_no_payment_until_activated,
    a_checkout_closes_after_too_many_declined_cards,
    one_claim_opens_one_order_across_test_and_live,
);
