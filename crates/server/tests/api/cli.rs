//! The `checkout-server` binary as an operator and a newcomer use it.

use std::process::{Command, Output};

use domain::claim::ClaimSigner;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestDb};
use crate::on_both_backends;

const BIN: &str = env!("CARGO_BIN_EXE_checkout-server");

fn checkout_server(db: &TestDb, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(db.dir())
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run checkout-server")
}

fn json_out(db: &TestDb, args: &[&str]) -> Value {
    let output = checkout_server(db, args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn the_operator_cli_sets_up_a_merchant_that_can_check_out(backend: Backend) {
    let db = TestDb::new(backend);
    let migrated = json_out(&db, &["migrate"]);
    assert_eq!(migrated["status"], "migrated");
    let migrations =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/sqlite")).unwrap().count();
    assert_eq!(migrated["applied"].as_array().map(Vec::len), Some(migrations), "a new database gets every migration");
    assert_eq!(json_out(&db, &["migrate"])["applied"], serde_json::json!([]), "and only once");
    let merchant = json_out(&db, &["merchant", "create", "--name", "Drop Shop"]);
    assert_eq!(merchant["status"], "active");
    assert_eq!(merchant["name"], "Drop Shop");
    let merchant_id = merchant["id"].as_str().unwrap().to_owned();
    assert!(merchant_id.starts_with("mer_"));
    let key = json_out(&db, &["key", "create", "--merchant", &merchant_id]);
    let secret = key["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk_test_") && key["id"].as_str().unwrap().starts_with("key_"));
    let keypair = json_out(&db, &["claim", "keygen"]);
    let (kid, private_key) = (keypair["kid"].as_str().unwrap(), keypair["privateKey"].as_str().unwrap());
    // `=` keeps a base64url key that starts with '-' from reading as a flag.
    let private_key_arg = format!("--private-key={private_key}");
    let claim = checkout_server(
        &db,
        &[
            "claim",
            "issue",
            "--kid",
            kid,
            &private_key_arg,
            "--merchant",
            &merchant_id,
            "--currency",
            "usd",
            "--item",
            "sku=TEE-1,name=Tee,quantity=2,unitAmount=2500",
            "--subject",
            "cus_1",
        ],
    );
    assert!(claim.status.success(), "{}", String::from_utf8_lossy(&claim.stderr));
    let claim = String::from_utf8(claim.stdout).unwrap().trim().to_owned();
    assert_eq!(claim.split('.').count(), 3, "a compact JWS");

    let signer = ClaimSigner::from_private(kid, private_key).unwrap();
    let app = TestApp::spawn_on(db.shared(), signer, &[]);
    let response = app.post_checkout(&secret, &app.body_with(&claim));
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(app.count("SELECT amount_total AS n FROM orders"), 5000);
    assert!(!String::from_utf8_lossy(&checkout_server(&db, &["migrate"]).stderr).contains(&secret));

    json_out(&db, &["merchant", "suspend", &merchant_id]);
    assert_eq!(app.post_checkout(&secret, &app.checkout_body_for(&merchant_id)).status, 403);
    json_out(&db, &["merchant", "activate", &merchant_id]);
    let revoked = json_out(&db, &["key", "revoke", key["id"].as_str().unwrap()]);
    assert!(revoked["revokedAt"].is_string());
    assert!(revoked.get("secret").is_none());
    assert_eq!(app.post_checkout(&secret, &app.checkout_body_for(&merchant_id)).status, 403);
}

fn cli_errors_are_json_on_stderr(backend: Backend) {
    let db = TestDb::new(backend);
    let output = checkout_server(&db, &["key", "create", "--merchant", "mer_01M891Q13DE788PCK3TYQBZJ40"]);
    assert!(!output.status.success());
    let error: Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(error["error"], "not_found");
    let output = checkout_server(&db, &["merchant", "suspend", "nope"]);
    let error: Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(error["error"], "invalid_id");
    // Listing the keys of a merchant that does not exist says so, as making one does.
    let output = checkout_server(&db, &["key", "list", "--merchant", "mer_01M891Q13DE788PCK3TYQBZJ40"]);
    let error: Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!((output.status.code(), error["error"].as_str()), (Some(1), Some("not_found")), "{error}");
    let keyless = json_out(&db, &["merchant", "create", "--name", "No Keys"]);
    assert_eq!(json_out(&db, &["key", "list", "--merchant", keyless["id"].as_str().unwrap()]), json!([]));
}

fn a_merchant_name_is_trimmed_and_refused_when_empty_long_or_unprintable(backend: Backend) {
    let db = TestDb::new(backend);
    let made = json_out(&db, &["merchant", "create", "--name", "  Drop Shop \t"]);
    assert_eq!(made["name"], "Drop Shop");
    let longest = "é".repeat(200);
    assert_eq!(json_out(&db, &["merchant", "create", "--name", &longest])["name"], longest.as_str());
    for refused in ["   ", &"é".repeat(201), "Drop\nShop", "Drop \u{202E}pohS"] {
        let output = checkout_server(&db, &["merchant", "create", "--name", refused]);
        assert_eq!(output.status.code(), Some(1), "{refused:?}");
        let error: Value = serde_json::from_slice(&output.stderr).unwrap();
        assert_eq!(error["error"], "invalid_name", "{refused:?}: {error}");
    }
    assert_eq!(json_out(&db, &["merchant", "list"]).as_array().map(Vec::len), Some(2), "nothing refused was made");
}

on_both_backends!(
    the_operator_cli_sets_up_a_merchant_that_can_check_out,
    cli_errors_are_json_on_stderr,
    a_merchant_name_is_trimmed_and_refused_when_empty_long_or_unprintable,
);

#[test]
fn production_refuses_to_start_and_names_each_setting() {
    let db = TestDb::new(Backend::Sqlite);
    let output = Command::new(BIN)
        .current_dir(db.dir())
        .env_clear()
        .env("CHECKOUT_ENV", "production")
        .env("CHECKOUT_PUBLIC_URL", "http://checkout.example")
        .env("CHECKOUT_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for setting in ["CHECKOUT_CLAIM_KEYS", "CHECKOUT_PUBLIC_URL", "CHECKOUT_TOKEN_SECRET"] {
        assert!(stderr.contains(setting), "{setting} not named in: {stderr}");
    }
}

#[test]
fn a_newcomers_first_run_prints_a_request_that_works() {
    let db = TestDb::new(Backend::Sqlite);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let public_url = format!("http://{address}");
    let vars = [("CHECKOUT_BIND", address.as_str()), ("CHECKOUT_PUBLIC_URL", public_url.as_str())];
    let (_child, lines) = crate::startup::start_development(db.dir(), &vars);
    let key = lines.iter().find_map(|l| l.trim().strip_prefix("sk_test_")).map(|k| format!("sk_test_{k}"));
    let key = key.unwrap_or_else(|| panic!("no key printed: {lines:#?}"));
    let data = lines.iter().find_map(|l| l.trim().strip_prefix("-d '")).unwrap().trim_end_matches('\'');
    // The hint for more claims runs from a checkout, where checkout-server is not on the PATH.
    let hint = lines.iter().find_map(|l| l.strip_prefix("More claims: ")).unwrap();
    let hint_args =
        hint.strip_prefix("cargo run -- ").unwrap_or_else(|| panic!("not runnable from a checkout: {hint}"));
    let hinted =
        Command::new(BIN).args(hint_args.split_whitespace()).current_dir(db.dir()).env_clear().output().unwrap();
    assert!(hinted.status.success(), "{hint}: {}", String::from_utf8_lossy(&hinted.stderr));
    let hinted_claim = String::from_utf8(hinted.stdout).unwrap().trim().to_owned();
    let body: Value = serde_json::from_str(data).unwrap();
    assert!(lines.iter().any(|l| l.contains(&format!("Authorization: Bearer {key}"))));
    assert!(db.dir().join("data/checkout.db").exists(), "SQLite by default, in ./data");

    let response = ureq::post(&format!("http://{address}/checkout"))
        .set("Authorization", &format!("Bearer {key}"))
        .send_json(body.clone());
    let response = response.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let created: Value = response.into_json().unwrap();
    assert!(created["checkoutUrl"].as_str().unwrap().starts_with(&format!("http://{address}/c/")));
    assert_eq!(json!(body["mode"]), json!("hosted"));

    let mut another = body.clone();
    another["checkoutClaim"] = json!(hinted_claim);
    another["idempotencyKey"] = json!("from-the-hint");
    let response = ureq::post(&format!("http://{address}/checkout"))
        .set("Authorization", &format!("Bearer {key}"))
        .send_json(another)
        .unwrap_or_else(|e| panic!("the hinted claim is refused: {e}"));
    assert_eq!(response.status(), 200);
}
