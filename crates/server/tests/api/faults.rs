//! Faults: a failure inside the transaction, and a key held by a request that does not finish.

use diesel::connection::SimpleConnection;
use persistence::Database;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

fn a_failure_mid_transaction_leaves_nothing_and_a_retry_succeeds(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);
    // The last insert of the transaction fails: everything before it must roll back.
    match backend {
        Backend::Sqlite => app.execute(
            "CREATE TRIGGER fail_sessions BEFORE INSERT ON checkout_sessions \
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
        ),
        Backend::Postgres => app.execute(
            "CREATE FUNCTION fail_sessions() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$ \
             LANGUAGE plpgsql; \
             CREATE TRIGGER fail_sessions BEFORE INSERT ON checkout_sessions \
             FOR EACH ROW EXECUTE FUNCTION fail_sessions();",
        ),
    }

    let failed = app.post_checkout(&merchant.key, &body);

    assert_eq!(failed.status, 500, "{}", failed.text);
    assert_eq!(failed.json()["error"], "internal_error");
    assert!(!failed.text.contains("injected") && !failed.text.to_lowercase().contains("insert"), "{}", failed.text);
    assert_eq!(app.checkout_rows(), [0, 0, 0, 0, 0], "no half-made order, no stored 500");

    match backend {
        Backend::Sqlite => app.execute("DROP TRIGGER fail_sessions"),
        Backend::Postgres => app.execute("DROP TRIGGER fail_sessions ON checkout_sessions"),
    }
    let retried = app.post_checkout(&merchant.key, &body);
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.header("idempotent-replayed"), None);
    assert_eq!(app.checkout_rows(), [1, 2, 1, 1, 1]);
}

fn a_request_stuck_behind_a_held_lock_fails_fast_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_IDEMPOTENCY_WAIT_MS", "300")]);
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);
    let key = body["idempotencyKey"].as_str().unwrap().to_owned();

    let response = match &app.db {
        // Another request holds the same key in an open transaction.
        Database::Postgres(pool) => {
            let mut holder = pool.get().unwrap();
            holder
                .batch_execute(&format!(
                    "BEGIN; INSERT INTO idempotency_keys VALUES ('{}', FALSE, '{key}', 'x', '{{}}', NOW());",
                    merchant.id
                ))
                .unwrap();
            let response = app.post_checkout(&merchant.key, &body);
            holder.batch_execute("ROLLBACK").unwrap();
            response
        }
        // Another process holds SQLite's write lock.
        Database::Sqlite { pool, .. } => {
            let mut holder = pool.get().unwrap();
            holder.batch_execute("BEGIN IMMEDIATE").unwrap();
            let response = app.post_checkout(&merchant.key, &body);
            holder.batch_execute("ROLLBACK").unwrap();
            response
        }
    };

    let (status, error) = match backend {
        Backend::Postgres => (409, "idempotency_request_in_progress"),
        Backend::Sqlite => (503, "unavailable"),
    };
    assert_eq!(response.status, status, "{}", response.text);
    assert_eq!(response.json()["error"], error);
    assert!(response.header("retry-after").is_some());
    assert_eq!(app.checkout_rows(), [0, 0, 0, 0, 0]);

    let retried = app.post_checkout(&merchant.key, &body);
    assert_eq!(retried.status, 200, "{}", retried.text);
}

on_both_backends!(
    a_failure_mid_transaction_leaves_nothing_and_a_retry_succeeds,
    a_request_stuck_behind_a_held_lock_fails_fast_and_stores_nothing,
);
