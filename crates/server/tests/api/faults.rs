//! Faults: a failure inside the transaction, and a key held by a request that does not finish.

use diesel::connection::SimpleConnection;

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

    let mut holder = app.db.conn().unwrap();
    let response = match backend {
        // Another request holds the same key in an open transaction.
        Backend::Postgres => {
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
        Backend::Sqlite => {
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

fn requests_that_cannot_get_a_connection_in_time_get_a_fast_503_and_retry_safely(backend: Backend) {
    // One connection (on SQLite, one writer) and a long lock wait: the first create holds it while
    // the test holds a lock; everyone behind it may wait only the queue timeout.
    let app = TestApp::spawn_with(
        backend,
        &[
            ("DATABASE_POOL_SIZE", "1"),
            ("CHECKOUT_QUEUE_TIMEOUT_MS", "200"),
            ("CHECKOUT_IDEMPOTENCY_WAIT_MS", "60000"),
            ("CHECKOUT_SWEEP_INTERVAL_SECONDS", "3600"),
        ],
    );
    // The sweep at start writes too: it must not be the one caught behind the lock.
    app.wait_for_first_sweep();
    let merchant = app.new_merchant();
    let bodies: Vec<_> = (0..12).map(|_| app.checkout_body(&merchant)).collect();
    let mut holder = app.db.conn().unwrap();
    holder
        .batch_execute(match backend {
            Backend::Postgres => "BEGIN; LOCK TABLE orders IN EXCLUSIVE MODE",
            Backend::Sqlite => "BEGIN IMMEDIATE",
        })
        .unwrap();
    let (sender, answers) = std::sync::mpsc::channel();
    let stuck = std::thread::scope(|scope| {
        for (i, body) in bodies.iter().enumerate() {
            let sender = sender.clone();
            let app = &app;
            let key = &merchant.key;
            scope.spawn(move || sender.send((i, app.post_checkout(key, body))).unwrap());
        }
        drop(sender);
        // All but the one holding the connection are answered while the lock is still held.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let refused: Vec<_> = (1..bodies.len())
            .map_while(|_| answers.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).ok())
            .collect();
        holder.batch_execute("ROLLBACK").unwrap();
        assert_eq!(refused.len(), bodies.len() - 1, "requests waited for the lock instead of being refused");
        for (_, response) in &refused {
            assert_eq!(response.status, 503, "{}", response.text);
            assert_eq!(response.json()["error"], "unavailable");
            assert_eq!(response.header("retry-after"), Some("1"));
        }
        let last = answers.recv().unwrap();
        assert_eq!(last.1.status, 200, "the request that held the connection finished: {}", last.1.text);
        refused.into_iter().map(|(i, _)| i).collect::<Vec<_>>()
    });
    assert_eq!(app.checkout_rows()[0], 1, "a refused request leaves nothing behind");
    // Retried with their keys, the refused requests each make their one order.
    for i in stuck {
        let retried = app.post_checkout(&merchant.key, &bodies[i]);
        assert_eq!(retried.status, 200, "{}", retried.text);
        assert!(retried.header("idempotent-replayed").is_none());
    }
    assert_eq!(app.checkout_rows(), [12, 24, 12, 12, 12]);
    let metrics = app.request("GET", "/metrics", &[]).text;
    assert!(metrics.contains("checkout_db_pool_queued{pool="), "{metrics}");
}

on_both_backends!(
    a_failure_mid_transaction_leaves_nothing_and_a_retry_succeeds,
    a_request_stuck_behind_a_held_lock_fails_fast_and_stores_nothing,
    requests_that_cannot_get_a_connection_in_time_get_a_fast_503_and_retry_safely,
);

/// A PostgreSQL server of the test's own, in a temporary folder on a free port, that the test may
/// stop and start. As root it runs as the `postgres` user (PostgreSQL refuses to run as root).
struct OwnPostgres {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn command(&self, tool: &str) -> std::process::Command {
        let path = self.bin.join(tool);
        let mut command = if unsafe_is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        };
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        command
    }

    fn start_new() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions.filter_map(Result::ok).map(|v| v.path().join("bin")).find(|b| b.join("initdb").exists())
            })
            .expect("PostgreSQL's server binaries (initdb, pg_ctl) under /usr/lib/postgresql");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("checkout-pg-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        if unsafe_is_root() {
            assert!(std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        let pg = Self { bin, dir, port };
        let data = pg.dir.join("data");
        assert!(pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["--auth=trust", "-U", "postgres"])
            .status()
            .unwrap()
            .success());
        pg.start();
        pg
    }

    fn start(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.display());
        let started = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start"])
            .status()
            .unwrap();
        assert!(started.success(), "own PostgreSQL did not start");
    }

    fn stop(&self) {
        let stopped =
            self.command("pg_ctl").arg("-D").arg(self.dir.join("data")).args(["-m", "fast", "-w", "stop"]).status();
        assert!(stopped.unwrap().success(), "own PostgreSQL did not stop");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unsafe_is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// One request of the load, as its client saw it.
struct Sent {
    started: std::time::Instant,
    status: u16,
    took: std::time::Duration,
    error: String,
    body: serde_json::Value,
}

/// Under steady load, PostgreSQL goes down and comes back: requests fail fast with 503 while it is
/// down, never hang or 500, and succeed again once it is back without a restart of the server.
/// Every acknowledged order is there; a request that got 503 may or may not have committed (the
/// database can go away between its commit and its answer), so the merchant retries it with the
/// same key: every retry answers 200, and each key ends with exactly one order.
#[test]
fn requests_fail_fast_while_postgres_is_down_and_recover_when_it_returns() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    let pg = OwnPostgres::start_new();
    let db = crate::helpers::TestDb::at(&pg.url());
    let app = TestApp::spawn_on(
        db,
        domain::claim::ClaimSigner::generate(),
        &[("CHECKOUT_IDEMPOTENCY_WAIT_MS", "1000"), ("CHECKOUT_QUEUE_TIMEOUT_MS", "1000")],
    );
    let merchant = app.new_merchant();
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Sent>> = Mutex::new(Vec::new());
    let lock = || results.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let deadline = Instant::now() + Duration::from_secs(90);

    let (down_from, down_until) = std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                // Bounded: until told to stop, and never past the deadline.
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let body = app.checkout_body(&merchant);
                    let started = Instant::now();
                    let response = app.post_checkout(&merchant.key, &body);
                    let error = response.json()["error"].as_str().unwrap_or_default().to_owned();
                    lock().push(Sent { started, status: response.status, took: started.elapsed(), error, body });
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        let count_ok = || lock().iter().filter(|r| r.status == 200).count();
        let wait_until = |what: &str, check: &dyn Fn() -> bool| {
            let limit = Instant::now() + Duration::from_secs(30);
            while !check() {
                assert!(Instant::now() < limit, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        wait_until("successes before the outage", &|| count_ok() >= 20);
        pg.stop();
        let down_from = Instant::now();
        std::thread::sleep(Duration::from_secs(3));
        let down_until = Instant::now();
        pg.start();
        let before = count_ok();
        wait_until("successes after the outage", &|| count_ok() >= before + 20);
        stop.store(true, Ordering::Relaxed);
        (down_from, down_until)
    });

    // Every client has stopped: what they saw is complete.
    let results = lock();
    // Requests that started and ended while the database was down (one that waited across the
    // restart may well succeed).
    let during: Vec<_> = results
        .iter()
        .filter(|r| r.started > down_from + Duration::from_millis(200) && r.started + r.took < down_until)
        .collect();
    assert!(!during.is_empty(), "requests were sent while the database was down");
    for sent in &during {
        assert_eq!((sent.status, sent.error.as_str()), (503, "unavailable"), "while down");
        assert!(sent.took < Duration::from_secs(5), "failed fast, not after {:?}", sent.took);
    }
    let failed_as_documented = |r: &Sent| r.status == 200 || (r.status == 503 && r.error == "unavailable");
    assert!(results.iter().all(failed_as_documented), "no 500s, no other errors");
    let acknowledged = results.iter().filter(|r| r.status == 200).count() as i64;
    let orders = app.count("SELECT COUNT(*) AS n FROM orders");
    assert!(orders >= acknowledged, "every acknowledged order is there");
    for sent in results.iter().filter(|r| r.status != 200) {
        let retried = app.post_checkout(&merchant.key, &sent.body);
        assert_eq!(retried.status, 200, "a retry with the same key succeeds: {}", retried.text);
    }
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM orders"), results.len() as i64, "one order per key, no other");
}
