//! The checkout pages in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! against the real server and a small merchant site on loopback. `scripts/install-browser` puts
//! Chromium and chromedriver in place. With `CHECKOUT_SCREENSHOTS=<dir>` set, each page is saved
//! as a PNG there (that is how `docs/screenshots/` is made).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{Backend, LoopbackServer, TestApp, TestMerchant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const WAIT: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A merchant's site: a shop page that frames the embedded checkout and shows what it posts, and
/// the pages the checkout returns to.
struct MerchantSite {
    address: String,
    frame: Arc<Mutex<String>>,
    _server: LoopbackServer,
}

impl MerchantSite {
    fn start() -> Self {
        let frame = Arc::new(Mutex::new(String::new()));
        let shown = frame.clone();
        let server = LoopbackServer::start(move |request| {
            let body = if request.path.starts_with("/shop") {
                format!(
                    "<!doctype html><title>Shop</title><h1>Drop Shop</h1><p id=\"result\">waiting</p>\
                     <iframe id=\"checkout\" src=\"{}\" style=\"width:520px;height:820px;border:0\"></iframe>\
                     <script>window.addEventListener('message', function (e) {{\
                     document.getElementById('result').textContent = JSON.stringify(e.data); }});</script>",
                    shown.lock().unwrap()
                )
            } else if request.path.starts_with("/success") {
                "<!doctype html><title>Thanks</title><h1 id=\"done\">Order confirmed</h1>".to_owned()
            } else {
                "<!doctype html><title>Cart</title><h1 id=\"done\">Back in your cart</h1>".to_owned()
            };
            (200, "text/html; charset=utf-8", body)
        });
        Self { address: server.address.clone(), frame, _server: server }
    }
}

/// Headless Chromium through chromedriver's W3C WebDriver endpoint.
struct Browser {
    base: String,
    agent: ureq::Agent,
    driver: Child,
    profile: std::path::PathBuf,
}

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start() -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the browser tests need Chromium and chromedriver: run scripts/install-browser"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
        let driver_url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while agent.get(&format!("{driver_url}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = std::env::temp_dir().join(format!("checkout-chromium-{port}"));
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let session: Value = agent
            .post(&format!("{driver_url}/session"))
            .send_json(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
            }}}))
            .expect("a browser session")
            .into_json()
            .unwrap();
        let id = session["value"]["sessionId"].as_str().expect("session id").to_owned();
        Self { base: format!("{driver_url}/session/{id}"), agent, driver, profile }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let request = self.agent.request(method, &format!("{}{path}", self.base));
        let response = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match response {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(_, r)) => json!({"error": r.into_string().unwrap_or_default()}),
            Err(e) => panic!("webdriver: {e}"),
        }
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap_or_default().to_owned()
    }

    /// Waits (bounded) for an element and returns its id.
    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
            if let Some(id) = found[ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css} on {}", self.url());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.call("POST", &format!("/element/{id}/value"), Some(json!({"text": text})));
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/text"), None).as_str().unwrap_or_default().to_owned()
    }

    /// Waits (bounded) until `check` holds.
    fn wait_for(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !check(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what} on {}", self.url());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn resize(&self, width: u32, height: u32) {
        self.call("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    fn enter_frame(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", "/frame", Some(json!({"id": {ELEMENT: id}})));
    }

    fn leave_frame(&self) {
        self.call("POST", "/frame", Some(json!({"id": null})));
    }

    fn pay_with(&self, number: &str) {
        self.type_into("#number", number);
        self.type_into("#expiry", "12/34");
        self.type_into("#cvc", "123");
        self.click("button.pay");
    }

    /// Saves a screenshot when `CHECKOUT_SCREENSHOTS` names a folder.
    fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("CHECKOUT_SCREENSHOTS") else {
            return;
        };
        let png = self.call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{name}.png"), bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

struct Scene {
    app: TestApp,
    site: MerchantSite,
    merchant: TestMerchant,
    public: String,
}

fn scene() -> Scene {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("CHECKOUT_BIND", &format!("127.0.0.1:{port}")), ("CHECKOUT_PUBLIC_URL", &public)],
    );
    let merchant = app.new_merchant();
    Scene { site: MerchantSite::start(), merchant, app, public }
}

impl Scene {
    /// A checkout whose return URLs are on the merchant site; the page URL and the order id.
    fn checkout(&self, mode: &str) -> (String, String) {
        let mut body = self.app.checkout_body(&self.merchant);
        body["mode"] = Value::from(mode);
        body["successUrl"] = Value::from(format!("{}/success?order={{ORDER_ID}}", self.site.address));
        body["cancelUrl"] = Value::from(format!("{}/cart", self.site.address));
        let response = self.app.post_checkout(&self.merchant.key, &body);
        assert_eq!(response.status, 200, "{}", response.text);
        let json = response.json();
        (json["checkoutUrl"].as_str().unwrap().to_owned(), json["orderId"].as_str().unwrap().to_owned())
    }
}

#[test]
fn a_consumer_pays_on_the_hosted_page_and_lands_on_the_success_url() {
    let scene = scene();
    let (url, order_id) = scene.checkout("hosted");
    assert!(url.starts_with(&scene.public));
    let browser = Browser::start();
    browser.goto(&url);
    assert!(browser.text("main").contains("$65.00"));
    browser.screenshot("hosted");
    // A phone's width: one column, nothing cut off.
    browser.resize(390, 844);
    let width = browser.call(
        "POST",
        "/execute/sync",
        Some(json!({"script": "return document.documentElement.scrollWidth;", "args": []})),
    );
    assert!(width.as_u64().unwrap() <= 390, "no horizontal scrolling on a phone: {width}");
    browser.screenshot("mobile");
    browser.resize(1200, 900);
    browser.pay_with("4242 4242 4242 4242");
    let success = format!("{}/success?order={order_id}", scene.site.address);
    browser.wait_for("the success page", |b| b.url() == success);
    assert_eq!(browser.text("#done"), "Order confirmed");
    assert_eq!(scene.app.get_order(&scene.merchant.key, &order_id)["status"], "paid");
    browser.goto(&url);
    assert!(browser.text("main").contains("Payment received"));
    browser.screenshot("paid");
}

#[test]
fn a_declined_card_shows_the_error_and_a_retry_succeeds() {
    let scene = scene();
    let (url, order_id) = scene.checkout("hosted");
    let browser = Browser::start();
    browser.goto(&url);
    browser.pay_with("4000 0000 0000 0002");
    browser.wait_for("the decline", |b| b.text(".alert").contains("declined"));
    browser.screenshot("declined");
    browser.pay_with("4242 4242 4242 4242");
    browser.wait_for("the success page", |b| b.url().starts_with(&format!("{}/success", scene.site.address)));
    assert_eq!(scene.app.get_order(&scene.merchant.key, &order_id)["status"], "paid");
}

#[test]
fn cancelling_lands_on_the_cancel_url() {
    let scene = scene();
    let (url, order_id) = scene.checkout("hosted");
    let browser = Browser::start();
    browser.goto(&url);
    browser.click("form.cancel button");
    browser.wait_for("the cart", |b| b.url() == format!("{}/cart", scene.site.address));
    assert_eq!(scene.app.get_order(&scene.merchant.key, &order_id)["status"], "cancelled");
    browser.goto(&url);
    assert!(browser.text("main").contains("Checkout cancelled"));
    browser.screenshot("cancelled");
}

#[test]
fn an_expired_session_shows_the_expired_page() {
    let scene = scene();
    let (url, order_id) = scene.checkout("hosted");
    scene.app.pass_session_end(&scene.merchant, &order_id);
    let browser = Browser::start();
    browser.goto(&url);
    assert!(browser.text("main").contains("Checkout expired"));
    browser.screenshot("expired");
}

#[test]
fn the_embedded_page_in_an_iframe_tells_the_merchant_page_the_outcome() {
    let scene = scene();
    let (url, order_id) = scene.checkout("embedded");
    *scene.site.frame.lock().unwrap() = url;
    let browser = Browser::start();
    browser.goto(&format!("{}/shop", scene.site.address));
    browser.enter_frame("#checkout");
    assert!(browser.text("main").contains("$65.00"));
    browser.leave_frame();
    browser.screenshot("embedded");
    browser.enter_frame("#checkout");
    browser.pay_with("4242 4242 4242 4242");
    browser.wait_for("the paid page in the frame", |b| b.text("main").contains("Payment received"));
    browser.leave_frame();
    browser.wait_for("the outcome message", |b| b.text("#result").contains("fanfare.checkout.completed"));
    let message: Value = serde_json::from_str(&browser.text("#result")).unwrap();
    assert_eq!(message["orderId"], order_id.as_str());
    assert_eq!(scene.app.get_order(&scene.merchant.key, &order_id)["status"], "paid");
}

#[test]
fn the_docs_page_renders_markdown_a_curl_examples_and_the_webhook_events() {
    let scene = scene();
    let browser = Browser::start();
    browser.goto(&format!("{}/docs", scene.public));
    browser.wait_for("the rendered document", |b| b.text("main").contains("Webhook events"));
    // Markdown: `code` and **strong** become elements, not literal backticks and asterisks.
    assert!(browser.text("main > .markdown strong").starts_with("Validation."));
    let intro = browser.text("main > .markdown");
    assert!(intro.contains("(\"hosted\" | \"embedded\")") && !intro.contains('`') && !intro.contains("**"), "{intro}");
    let checkout = browser.text("#postCheckout");
    let curl = format!("curl -sS -i -X POST {}/checkout", scene.public);
    assert!(checkout.contains(&curl), "the curl names this server: {checkout}");
    assert!(checkout.contains("Example: A mode that is not one of the two"), "{checkout}");
    assert!(browser.text("#orderCompletedEvent").contains("\"type\": \"order.completed\""));
    assert!(browser.text("main").contains(&format!("Servers: {}, {}/api", scene.public, scene.public)));
    // Underscores inside words are not emphasis; each 404 says what was not found.
    assert!(checkout.contains("(CHECKOUT_RATE_LIMIT_PER_SECOND and _BURST)"), "{checkout}");
    let removal = browser.text("#deleteWebhookEndpoint");
    assert!(removal.contains("no such endpoint") && !removal.contains("order"), "{removal}");
    assert!(intro.contains("checkout-server claim issue"), "how to get a real claim: {intro}");
    browser.screenshot("docs");

    browser.goto(&format!("{}/api/docs", scene.public));
    browser.wait_for("the document under /api", |b| b.text("main").contains("Webhook events"));
    assert!(browser.text("#enableWebhookEndpoint").contains("/webhook-endpoints/{endpointId}/enable"));
}
