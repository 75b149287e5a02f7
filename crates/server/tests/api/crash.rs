//! A replica killed (SIGKILL) while it serves creates at full speed on PostgreSQL loses nothing it
//! acknowledged, and every request it left unanswered, retried with its key on the other replica,
//! ends as exactly one order.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::claim::{ClaimItem, ClaimPayload, ClaimSigner};
use serde_json::{json, Value};

use crate::helpers::{Backend, TestDb, TOKEN_SECRET};
use crate::startup::{free_port, Killed};

const BIN: &str = env!("CARGO_BIN_EXE_checkout-server");

/// The CLI's JSON answer on the test database.
fn cli(db: &TestDb, args: &[&str]) -> Value {
    let output = Command::new(BIN)
        .args(args)
        .current_dir(db.dir())
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("CHECKOUT_TOKEN_SECRET", TOKEN_SECRET)
        .env("RUST_LOG", "error")
        .output()
        .expect("run checkout-server");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// A replica on its own port, sharing the test database.
fn replica(db: &TestDb, signer: &ClaimSigner) -> (Killed, String) {
    let port = free_port();
    let child = Command::new(BIN)
        .arg("serve")
        .current_dir(db.dir())
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("CHECKOUT_BIND", format!("127.0.0.1:{port}"))
        .env("CHECKOUT_PUBLIC_URL", "http://checkout.test")
        .env("CHECKOUT_CLAIM_KEYS", format!("{}:{}", signer.kid(), signer.public_key()))
        .env("CHECKOUT_TOKEN_SECRET", TOKEN_SECRET)
        .env("CHECKOUT_DEV_SECRETS_FILE", db.dir().join(format!("dev-{port}.json")))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a replica");
    let address = format!("http://127.0.0.1:{port}");
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.get(&format!("{address}/readyz")).call().is_err() {
        assert!(Instant::now() < deadline, "the replica on {address} never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), address)
}

/// One create: its body, and what became of it.
struct Sent {
    body: String,
    claim_id: String,
    answer: Option<String>,
}

fn post(agent: &ureq::Agent, address: &str, key: &str, body: &str) -> Result<Value, String> {
    match agent
        .post(&format!("{address}/checkout"))
        .set("Authorization", &format!("Bearer {key}"))
        .set("Content-Type", "application/json")
        .send_string(body)
    {
        Ok(response) => response.into_json::<Value>().map_err(|e| e.to_string()),
        Err(ureq::Error::Status(status, response)) => {
            Err(format!("{status}: {}", response.into_string().unwrap_or_default()))
        }
        Err(error) => Err(error.to_string()),
    }
}

#[test]
fn a_replica_killed_under_load_loses_no_acknowledged_order_and_retries_make_exactly_one() {
    let db = TestDb::new(Backend::Postgres);
    cli(&db, &["migrate"]);
    let merchant = cli(&db, &["merchant", "create", "--name", "Crash Test Shop"]);
    let merchant_id = merchant["id"].as_str().unwrap().to_owned();
    let key = cli(&db, &["key", "create", "--merchant", &merchant_id])["secret"].as_str().unwrap().to_owned();
    let signer = ClaimSigner::generate();
    let (mut doomed, doomed_address) = replica(&db, &signer);
    let (_survivor, survivor_address) = replica(&db, &signer);

    // Eight clients create as fast as they can on the doomed replica; it is killed once 300 have
    // been acknowledged. Each client stops at its first unanswered request.
    const CLIENTS: usize = 8;
    const MOST: usize = 4_000;
    let (acknowledged, killed, next) = (AtomicUsize::new(0), AtomicBool::new(false), AtomicUsize::new(0));
    let sent: Mutex<Vec<Sent>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= MOST {
                        return;
                    }
                    let claim_id = format!("clm_crash_{i}");
                    let items =
                        vec![ClaimItem { sku: "TEE-1".into(), name: "Tee".into(), quantity: 1, unit_amount: 2500 }];
                    let claim = signer.sign(&ClaimPayload {
                        jti: claim_id.clone(),
                        ..ClaimPayload::new(merchant_id.parse().unwrap(), items, chrono::Utc::now(), 900)
                    });
                    let body = json!({
                        "checkoutClaim": claim,
                        "mode": "hosted",
                        "successUrl": "https://shop.example/success",
                        "cancelUrl": "https://shop.example/cancel",
                        "idempotencyKey": format!("crash-{i}"),
                    })
                    .to_string();
                    let answer = post(&agent, &doomed_address, &key, &body);
                    let ok = answer.is_ok();
                    if let Err(error) = &answer {
                        assert!(killed.load(Ordering::Relaxed), "request {i} failed before the kill: {error}");
                    }
                    let answer = answer.ok().map(|a| a["orderId"].as_str().unwrap().to_owned());
                    sent.lock().unwrap().push(Sent { body, claim_id, answer });
                    if !ok {
                        return;
                    }
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while acknowledged.load(Ordering::Relaxed) < 300 {
            assert!(Instant::now() < deadline, "the load never got going");
            std::thread::sleep(Duration::from_millis(1));
        }
        killed.store(true, Ordering::Relaxed);
        doomed.0.kill().expect("SIGKILL the replica");
        doomed.0.wait().expect("reap the replica");
    });

    let sent = sent.into_inner().unwrap();
    let unanswered = sent.iter().filter(|s| s.answer.is_none()).count();
    assert!(sent.len() < MOST, "the replica was killed before the load ran out ({} sent)", sent.len());
    assert!(unanswered > 0, "the kill left requests in flight (it must, to test their retry)");

    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    for request in &sent {
        // Every request again, with its key, on the survivor: an acknowledged one is replayed with
        // the same order; an unanswered one ends as one order, whichever way the crash cut it.
        let again = post(&agent, &survivor_address, &key, &request.body)
            .unwrap_or_else(|e| panic!("{}: the retry failed: {e}", request.claim_id));
        let order_id = again["orderId"].as_str().unwrap();
        if let Some(acknowledged) = &request.answer {
            assert_eq!(order_id, acknowledged, "{}: an acknowledged order changed", request.claim_id);
        }
        let order = agent
            .get(&format!("{survivor_address}/orders/{order_id}"))
            .set("Authorization", &format!("Bearer {key}"))
            .call()
            .unwrap_or_else(|e| panic!("{order_id}: {e}"))
            .into_json::<Value>()
            .unwrap();
        assert_eq!(order["status"], "pending");
    }
    let database = db.database();
    let claims: Vec<String> = sent.iter().map(|s| format!("'{}'", s.claim_id)).collect();
    let orders = crate::helpers::count(
        &database,
        &format!("SELECT COUNT(*) AS n FROM orders WHERE claim_id IN ({})", claims.join(",")),
    );
    assert_eq!(orders, i64::try_from(sent.len()).unwrap(), "exactly one order per request, acknowledged or retried");
    let distinct = crate::helpers::count(
        &database,
        &format!("SELECT COUNT(DISTINCT claim_id) AS n FROM orders WHERE claim_id IN ({})", claims.join(",")),
    );
    assert_eq!(distinct, orders);
}
