//! The test harness: a real server on a free port over a fresh database (a SQLite file in a
//! temporary folder, or a fresh schema in the PostgreSQL database of `TEST_DATABASE_URL`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use domain::claim::{ClaimItem, ClaimPayload, ClaimSigner};
use domain::ids::MerchantId;
use domain::livemode::Livemode;
use domain::merchant::MerchantStatus;
use domain::merchants::MerchantService;
use domain::ports::Clock;
use domain::secret::random_token;
use persistence::{Database, DbOptions};
use serde_json::{json, Value};
use server::config::Config;
use server::startup::{merchant_service, Adapters, Application, Jobs};

pub use crate::provider::{GatedSandbox, Hold, TestClock};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[test]` per backend for each listed `fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name($crate::helpers::Backend::Sqlite) })+
        }
        mod postgres {
            $(#[test] fn $name() { super::$name($crate::helpers::Backend::Postgres) })+
        }
    };
}

/// A fresh, empty database that removes itself.
pub struct TestDb {
    pub url: String,
    dir: PathBuf,
    pg_schema: Option<(String, String)>,
}

impl TestDb {
    pub fn new(backend: Backend) -> Self {
        let name = format!("t{}", random_token().expose()[..16].to_ascii_lowercase());
        let dir = std::env::temp_dir().join(format!("checkout-test-{name}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        match backend {
            Backend::Sqlite => {
                Self { url: format!("sqlite://{}", dir.join("checkout.db").display()), dir, pg_schema: None }
            }
            Backend::Postgres => {
                let admin = std::env::var("TEST_DATABASE_URL").expect(
                    "TEST_DATABASE_URL must name a PostgreSQL database for the PostgreSQL tests \
                     (scripts/test sets it up)",
                );
                let mut conn = PgConnection::establish(&admin).expect("connect to TEST_DATABASE_URL");
                conn.batch_execute(&format!("CREATE SCHEMA {name}")).expect("create schema");
                let sep = if admin.contains('?') { '&' } else { '?' };
                let url = format!("{admin}{sep}options=-csearch_path%3D{name}");
                Self { url, dir, pg_schema: Some((admin, name)) }
            }
        }
    }

    /// A database the test owns elsewhere (its own PostgreSQL server): nothing to drop.
    pub fn at(url: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("checkout-test-{}", &random_token().expose()[..16]));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self { url: url.to_owned(), dir, pg_schema: None }
    }

    /// The same database for a second server: dropping it leaves the database in place.
    pub fn shared(&self) -> Self {
        let dir = self.dir.join("replica");
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self { url: self.url.clone(), dir, pg_schema: None }
    }

    /// The admin URL and schema of a PostgreSQL test database.
    pub fn postgres_schema(&self) -> Option<(String, String)> {
        self.pg_schema.clone()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// A connection pool of the test's own, for seeding and for looking behind the API.
    pub fn database(&self) -> Database {
        Database::connect(&DbOptions {
            url: self.url.clone(),
            pool_size: 2,
            lock_wait: Duration::from_secs(10),
            queue_timeout: Duration::from_secs(10),
        })
        .expect("open test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, schema)) = &self.pg_schema {
            if let Ok(mut conn) = PgConnection::establish(admin) {
                let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Looks behind the API: counts and raw statements.
pub fn count(db: &Database, sql: &str) -> i64 {
    let mut conn = db.conn().expect("test connection");
    diesel::sql_query(sql).get_result::<Count>(&mut *conn).expect(sql).n
}

pub fn execute(db: &Database, sql: &str) {
    db.conn().expect("test connection").batch_execute(sql).expect(sql)
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub text: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

fn into_response(result: Result<ureq::Response, ureq::Error>) -> Response {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| response.header(&name).map(|v| (name.to_ascii_lowercase(), v.to_owned())))
        .collect();
    let text = response.into_string().expect("body");
    Response { status, headers, text }
}

/// A merchant with a secret key.
#[derive(Debug, Clone)]
pub struct TestMerchant {
    pub id: MerchantId,
    pub key: String,
    pub key_id: domain::ids::ApiKeyId,
}

/// The server secret every test app runs with.
pub const TOKEN_SECRET: &str = "test-token-secret-of-at-least-32-characters";

/// Settings a test may change from the defaults.
pub type Overrides<'a> = &'a [(&'a str, &'a str)];

/// A running server over a fresh database.
pub struct TestApp {
    pub address: String,
    pub signer: ClaimSigner,
    pub db: Database,
    /// The server's background jobs, to run on demand.
    pub jobs: Jobs,
    /// The server's clock: real time, moved on by the test.
    pub clock: Arc<TestClock>,
    /// The server's payment provider: the sandbox, with a gate the test can close.
    pub provider: Arc<GatedSandbox>,
    /// The operator's merchant and key use cases, on the server's clock.
    pub merchants: MerchantService,
    agent: ureq::Agent,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    // Dropped last: the server must let go of the database first.
    pub test_db: TestDb,
}

impl TestApp {
    pub fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[])
    }

    pub fn spawn_with(backend: Backend, overrides: Overrides) -> Self {
        let test_db = TestDb::new(backend);
        let signer = ClaimSigner::generate();
        Self::spawn_on(test_db, signer, overrides)
    }

    /// A server over an existing test database, trusting `signer`'s key.
    pub fn spawn_on(test_db: TestDb, signer: ClaimSigner, overrides: Overrides) -> Self {
        let mut settings: HashMap<String, String> = [
            ("DATABASE_URL", test_db.url.clone()),
            ("DATABASE_POOL_SIZE", "4".into()),
            ("CHECKOUT_BIND", "127.0.0.1:0".into()),
            ("CHECKOUT_PUBLIC_URL", "http://checkout.test".into()),
            ("CHECKOUT_CLAIM_KEYS", format!("{}:{}", signer.kid(), signer.public_key())),
            ("CHECKOUT_TOKEN_SECRET", TOKEN_SECRET.into()),
            ("CHECKOUT_DEV_SECRETS_FILE", test_db.dir().join("dev-secrets.json").display().to_string()),
            ("CHECKOUT_WORKERS", "2".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in overrides {
            settings.insert((*key).to_owned(), (*value).to_owned());
        }
        let config = Config::from_lookup(|name| settings.get(name).cloned()).expect("test configuration");
        let (clock, provider) = (Arc::new(TestClock::default()), Arc::new(GatedSandbox::default()));
        let adapters = Adapters { provider: provider.clone(), clock: clock.clone() };
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build_with(config, adapters) {
                    Ok(app) => {
                        sender.send(Ok((app.port(), app.handle(), app.jobs()))).expect("report start");
                        app.run_until_stopped().await.expect("server ran");
                    }
                    Err(e) => sender.send(Err(e.to_string())).expect("report failure"),
                }
            })
        });
        let (port, handle, jobs) = receiver.recv().expect("server thread").expect("server started");
        // Redirects are what the checkout page answers with: tests look at them, not past them.
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).redirects(0).build();
        let db = test_db.database();
        let merchants = merchant_service(&db, clock.clone());
        Self {
            address: format!("http://127.0.0.1:{port}"),
            signer,
            db,
            jobs,
            clock,
            provider,
            merchants,
            agent,
            handle,
            thread: Some(thread),
            test_db,
        }
    }

    /// The same claim-signing key, for a second server.
    pub fn signer_copy(&self) -> ClaimSigner {
        ClaimSigner::from_private(self.signer.kid(), self.signer.private_key().expose()).expect("signer")
    }

    pub fn new_merchant(&self) -> TestMerchant {
        self.new_merchant_in(Livemode::Test)
    }

    pub fn new_merchant_in(&self, livemode: Livemode) -> TestMerchant {
        let merchant = self.merchants.create_merchant("Test Merchant").expect("merchant");
        self.key_for(merchant.id, livemode)
    }

    pub fn suspend(&self, merchant: &TestMerchant) {
        self.merchants.set_status(merchant.id, MerchantStatus::Suspended).expect("suspend");
    }

    pub fn activate(&self, merchant: &TestMerchant) {
        self.merchants.set_status(merchant.id, MerchantStatus::Active).expect("activate");
    }

    /// `merchant` with another secret key of its own, in `livemode`.
    pub fn new_key(&self, merchant: &TestMerchant, livemode: Livemode) -> TestMerchant {
        self.key_for(merchant.id, livemode)
    }

    fn key_for(&self, id: MerchantId, livemode: Livemode) -> TestMerchant {
        let (summary, secret) = self.merchants.create_key(id, livemode).expect("key");
        TestMerchant { id, key: secret.secret().expose().to_owned(), key_id: summary.id }
    }

    /// Runs the server's background jobs once, as its sweeper would.
    pub fn sweep(&self) -> [usize; 3] {
        self.jobs.sweep().expect("sweep")
    }

    /// Cancels an order through the merchant API.
    pub fn cancel_order(&self, key: &str, order_id: &str) -> Response {
        self.request("POST", &format!("/orders/{order_id}/cancel"), &[("Authorization", &format!("Bearer {key}"))])
    }

    /// A claim payload for `merchant`: two tees at 25.00, valid for 15 minutes from the server's
    /// time (the test's clock), with a fresh `jti`.
    pub fn claim_payload(&self, merchant: &TestMerchant) -> ClaimPayload {
        let items = vec![
            ClaimItem { sku: "TEE-1".into(), name: "Tee".into(), quantity: 2, unit_amount: 2500 },
            ClaimItem { sku: "CAP-1".into(), name: "Cap".into(), quantity: 1, unit_amount: 1500 },
        ];
        ClaimPayload {
            sub: "cus_test".into(),
            experience_id: Some("exp_1".into()),
            ..ClaimPayload::new(merchant.id, items, self.clock.now(), 900)
        }
    }

    pub fn signed_claim(&self, merchant: &TestMerchant) -> String {
        self.signer.sign(&self.claim_payload(merchant))
    }

    /// A valid request body with a fresh claim and idempotency key.
    pub fn checkout_body(&self, merchant: &TestMerchant) -> Value {
        self.body_with(&self.signed_claim(merchant))
    }

    /// A valid body for a merchant known only by id.
    pub fn checkout_body_for(&self, merchant_id: &str) -> Value {
        let merchant = TestMerchant {
            id: merchant_id.parse().expect("merchant id"),
            key: String::new(),
            key_id: domain::ids::ApiKeyId::new(),
        };
        self.checkout_body(&merchant)
    }

    pub fn body_with(&self, claim: &str) -> Value {
        json!({
            "checkoutClaim": claim,
            "mode": "hosted",
            "successUrl": "https://shop.example/success",
            "cancelUrl": "https://shop.example/cancel",
            "idempotencyKey": format!("idem-{}", &random_token().expose()[..16]),
        })
    }

    pub fn post_checkout(&self, key: &str, body: &Value) -> Response {
        self.post_raw("/checkout", Some(key), &body.to_string())
    }

    pub fn post_raw(&self, path: &str, key: Option<&str>, body: &str) -> Response {
        let mut request = self.agent.post(&format!("{}{path}", self.address)).set("Content-Type", "application/json");
        if let Some(key) = key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        into_response(request.send_string(body))
    }

    /// Any request, with a bearer `key` and a JSON `body` when given, and extra `headers`.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self.agent.request(method, &format!("{}{path}", self.address));
        if let Some(key) = key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.set(name, value);
        }
        into_response(match body {
            Some(body) => request.set("Content-Type", "application/json").send_string(body),
            None => request.call(),
        })
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self.agent.request(method, &format!("{}{path}", self.address));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        into_response(request.call())
    }

    /// Creates a checkout for `body` and returns the page path (`/c/…` or `/embed/…`) and order id.
    pub fn create_checkout(&self, merchant: &TestMerchant, body: &Value) -> (String, String) {
        let response = self.post_checkout(&merchant.key, body);
        assert_eq!(response.status, 200, "{}", response.text);
        let json = response.json();
        let url = json["checkoutUrl"].as_str().expect("checkoutUrl");
        let path = url.strip_prefix("http://checkout.test").expect("public URL").to_owned();
        (path, json["orderId"].as_str().expect("orderId").to_owned())
    }

    /// Posts a form as a browser on the checkout page would (same origin, urlencoded).
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let request = self.agent.post(&format!("{}{path}", self.address)).set("Origin", "http://checkout.test");
        into_response(request.send_form(fields))
    }

    /// Posts a form with another Origin, as a foreign site would; returns the status.
    pub fn agent_post_from(&self, origin: &str, path: &str, fields: &[(&str, &str)]) -> u16 {
        let request = self.agent.post(&format!("{}{path}", self.address)).set("Origin", origin);
        into_response(request.send_form(fields)).status
    }

    /// The form token embedded in a checkout page.
    pub fn form_token(&self, page_path: &str) -> String {
        let page = self.request("GET", page_path, &[]);
        let marker = "name=\"form_token\" value=\"";
        let start =
            page.text.find(marker).unwrap_or_else(|| panic!("no form on {page_path}: {}", page.text)) + marker.len();
        page.text[start..].split('"').next().unwrap_or_default().to_owned()
    }

    /// Submits the pay form with a card number (expiry 12/40, CVC 123).
    pub fn pay(&self, page_path: &str, number: &str) -> Response {
        let form_token = self.form_token(page_path);
        self.post_form(
            &format!("{page_path}/pay"),
            &[("form_token", &form_token), ("number", number), ("expiry", "12/40"), ("cvc", "123")],
        )
    }

    /// Starts paying `page_path` with the test card that succeeds, on a thread of `scope`, with the
    /// provider's gate holding the charge at `hold`; returns once the charge waits there.
    pub fn held_pay<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        page_path: &'scope str,
        hold: Hold,
    ) -> std::thread::ScopedJoinHandle<'scope, Response> {
        self.provider.hold(hold);
        let form_token = self.form_token(page_path);
        let pay = scope.spawn(move || {
            self.post_form(
                &format!("{page_path}/pay"),
                &[("form_token", &form_token), ("number", "4242 4242 4242 4242"), ("expiry", "12/40"), ("cvc", "123")],
            )
        });
        self.provider.wait_for_held(1);
        pay
    }

    /// When `order_id`'s checkout session ends, as the merchant API shows it.
    pub fn session_end(&self, merchant: &TestMerchant, order_id: &str) -> DateTime<Utc> {
        let order = self.get_order(&merchant.key, order_id);
        order["session"]["expiresAt"].as_str().expect("session.expiresAt").parse().expect("RFC 3339")
    }

    /// Moves the server's clock just past the end of `order_id`'s checkout session.
    pub fn pass_session_end(&self, merchant: &TestMerchant, order_id: &str) {
        self.clock.set(self.session_end(merchant, order_id) + chrono::Duration::milliseconds(1));
    }

    /// Runs the server's webhook dispatcher by hand, round after round, until nothing is due;
    /// returns the attempts made. (Tests that call it slow the dispatcher's own rounds down with
    /// `CHECKOUT_WEBHOOK_POLL_MS`, so what it finds is all there is.)
    pub fn deliver_webhooks(&self) -> usize {
        let mut attempts = 0;
        loop {
            match self.jobs.webhooks().dispatch_once(10).expect("dispatch") {
                0 => return attempts,
                made => attempts += made,
            }
            assert!(attempts < 1_000, "the dispatcher never ran out of due deliveries");
        }
    }

    /// How many webhook deliveries wait to be sent.
    pub fn pending_webhooks(&self) -> usize {
        self.jobs.webhooks().deliveries(Some("pending"), 1_000).expect("deliveries").len()
    }

    pub fn get_order(&self, key: &str, order_id: &str) -> Value {
        let response =
            self.request("GET", &format!("/orders/{order_id}"), &[("Authorization", &format!("Bearer {key}"))]);
        assert_eq!(response.status, 200, "{}", response.text);
        response.json()
    }

    pub fn count(&self, sql: &str) -> i64 {
        count(&self.db, sql)
    }

    pub fn execute(&self, sql: &str) {
        execute(&self.db, sql)
    }

    /// Waits (bounded) until the sweep the server runs at start has finished, so that a test's
    /// own rows are not swept by it.
    pub fn wait_for_first_sweep(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !self.request("GET", "/metrics", &[]).text.lines().any(|l| l.contains("job=\"record_key_use\"")) {
            assert!(std::time::Instant::now() < deadline, "the first sweep never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Rows of every table a checkout writes.
    pub fn checkout_rows(&self) -> [i64; 5] {
        ["orders", "order_items", "payments", "checkout_sessions", "idempotency_keys"]
            .map(|table| self.count(&format!("SELECT COUNT(*) AS n FROM {table}")))
    }
}

impl TestApp {
    /// Stops the server gracefully (as SIGTERM does) and waits until it has finished; the
    /// database stays for the test to look at.
    pub fn stop(&mut self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        actix_web::rt::System::new().block_on(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request that a [`LoopbackServer`] received.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub path: String,
    /// Names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Incoming {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str).unwrap_or_default()
    }
}

/// A small HTTP/1.1 server on loopback for the other side of a test (a merchant's site, a webhook
/// receiver): each request is answered by `handle` (status, content type, body) on a thread of
/// its own. Stops when dropped.
pub struct LoopbackServer {
    pub address: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    pub fn start(handle: impl Fn(Incoming) -> (u16, &'static str, String) + Send + Sync + 'static) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback port");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let stop_in = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop_in.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let handle = handle.clone();
                        std::thread::spawn(move || Self::serve(stream, handle.as_ref()));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { address, stop, thread: Some(thread) }
    }

    fn serve(mut stream: std::net::TcpStream, handle: &dyn Fn(Incoming) -> (u16, &'static str, String)) {
        use std::io::{BufRead, BufReader, Read, Write};
        stream.set_nonblocking(false).expect("blocking stream");
        let mut reader = BufReader::new(stream.try_clone().expect("stream"));
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut headers = HashMap::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).map(|n| n <= 2).unwrap_or(true) {
                break;
            }
            if let Some((name, value)) = line.trim_end().split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, content_type, answer) =
            handle(Incoming { path, headers, body: String::from_utf8_lossy(&body).into_owned() });
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
