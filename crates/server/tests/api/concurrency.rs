//! Races: many simultaneous requests, on one server and on two sharing a database.

use std::sync::Barrier;

use serde_json::Value;

use crate::helpers::{Backend, Response, TestApp};
use crate::on_both_backends;

/// Sends `count` requests at once (released together by a barrier), each to `apps[i % apps.len()]`.
fn race(apps: &[&TestApp], count: usize, request: impl Fn(&TestApp, usize) -> Response + Sync) -> Vec<Response> {
    let barrier = Barrier::new(count);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .map(|i| {
                let (barrier, request) = (&barrier, &request);
                let app = apps[i % apps.len()];
                scope.spawn(move || {
                    barrier.wait();
                    request(app, i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("request thread")).collect()
    })
}

fn fifty_simultaneous_requests_with_one_key_make_one_order(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);

    let responses = race(&[&app], 50, |app, _| app.post_checkout(&merchant.key, &body));

    assert!(responses.iter().all(|r| r.status == 200), "{:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(responses.iter().all(|r| r.text == responses[0].text), "every caller gets the one response");
    let fresh = responses.iter().filter(|r| r.header("idempotent-replayed").is_none()).count();
    assert_eq!(fresh, 1, "exactly one request created the order");
    assert_eq!(app.checkout_rows(), [1, 2, 1, 1, 1]);
}

fn one_claim_raced_under_many_keys_makes_one_order(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let claim = app.signed_claim(&merchant);

    let responses = race(&[&app], 20, |app, _| app.post_checkout(&merchant.key, &app.body_with(&claim)));

    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), 19, "{statuses:?}");
    for refused in responses.iter().filter(|r| r.status == 409) {
        assert_eq!(refused.json()["error"], "claim_already_redeemed");
    }
    assert_eq!(app.checkout_rows(), [1, 2, 1, 1, 20]);
}

fn one_key_raced_with_different_requests_makes_one_order(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let bodies: Vec<Value> = (0..20)
        .map(|_| {
            let mut body = app.checkout_body(&merchant);
            body["idempotencyKey"] = Value::from("shared-key");
            body
        })
        .collect();

    let responses = race(&[&app], 20, |app, i| app.post_checkout(&merchant.key, &bodies[i]));

    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 422).count(), 19, "{statuses:?}");
    assert_eq!(app.checkout_rows(), [1, 2, 1, 1, 1]);
}

fn two_servers_sharing_a_database_make_one_order_per_key(backend: Backend) {
    let first = TestApp::spawn(backend);
    let second = TestApp::spawn_on(first.test_db.shared(), first.signer_copy(), &[]);
    let merchant = first.new_merchant();
    let bodies: Vec<Value> = (0..4).map(|_| first.checkout_body(&merchant)).collect();

    // Forty requests over four keys, alternating between the two servers.
    let responses = race(&[&first, &second], 40, |app, i| app.post_checkout(&merchant.key, &bodies[i % 4]));

    assert!(responses.iter().all(|r| r.status == 200), "{:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    for (i, response) in responses.iter().enumerate() {
        assert_eq!(response.text, responses[i % 4].text);
    }
    let fresh = responses.iter().filter(|r| r.header("idempotent-replayed").is_none()).count();
    assert_eq!(fresh, 4);
    assert_eq!(first.checkout_rows(), [4, 8, 4, 4, 4]);
}

on_both_backends!(
    fifty_simultaneous_requests_with_one_key_make_one_order,
    one_claim_raced_under_many_keys_makes_one_order,
    one_key_raced_with_different_requests_makes_one_order,
    two_servers_sharing_a_database_make_one_order_per_key,
);
