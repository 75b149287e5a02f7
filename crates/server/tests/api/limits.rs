//! Request limits: per merchant and mode (whichever of its keys), per client address for failed
//! authentication and for checkout page posts; and pages that act only on their own mode.

use domain::livemode::Livemode;
use domain::secret::ApiKeySecret;
use serde_json::Value;

use crate::helpers::{Backend, Response, TestApp};
use crate::on_both_backends;

fn forged_key() -> String {
    ApiKeySecret::generate(Livemode::Test).secret().expose().to_owned()
}

fn assert_limited(response: &Response, what: &str) {
    assert_eq!(response.status, 429, "{what}: {}", response.text);
    assert_eq!(response.json()["error"], "rate_limited", "{what}");
    let retry_after: u64 = response.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=60).contains(&retry_after), "{what}: Retry-After {retry_after}");
}

fn metric(app: &TestApp, line_start: &str) -> Option<String> {
    let text = app.request("GET", "/metrics", &[]).text;
    text.lines().find(|l| l.starts_with(line_start)).map(|l| l[line_start.len()..].trim().to_owned())
}

fn forged_keys_share_the_address_limit(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", "3"), ("CHECKOUT_RATE_LIMIT_PER_SECOND", "100")],
    );
    let merchant = app.new_merchant();
    let body = app.checkout_body(&merchant);
    assert_eq!(app.post_checkout(&merchant.key, &body).status, 200);
    for n in 0..3 {
        let response = app.post_checkout(&forged_key(), &app.checkout_body(&merchant));
        assert_eq!(response.status, 401, "forged key {n}: {}", response.text);
    }
    assert_limited(&app.post_checkout(&forged_key(), &app.checkout_body(&merchant)), "a fourth forged key");
    assert_limited(&app.post_raw("/checkout", None, "{}"), "no key at all");
    assert_limited(
        &app.send("GET", "/webhook-endpoints", Some(&forged_key()), None, &[]),
        "another endpoint, same address",
    );
    // Refused before the lookup, so even a real key learns nothing from this address for now.
    assert_limited(&app.post_checkout(&merchant.key, &app.checkout_body(&merchant)), "a real key");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM orders"), 1, "nothing was created past the limit");
    assert_eq!(metric(&app, "checkout_rate_limited_total{limit=\"auth_failures\"}").as_deref(), Some("4"));
    assert_eq!(
        metric(&app, "checkout_rate_limit_keys{limit=\"merchant\"}").as_deref(),
        Some("1"),
        "forged keys made no merchant bucket"
    );
}

fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(backend: Backend) {
    let limit = ("CHECKOUT_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", "2");
    let proxied = TestApp::spawn_with(backend, &[limit, ("CHECKOUT_TRUSTED_PROXIES", "127.0.0.1, ::1")]);
    let as_client = |client: &str| {
        let header = [("X-Forwarded-For", client)];
        proxied.send("GET", "/webhook-endpoints", Some(&forged_key()), None, &header)
    };
    assert_eq!([as_client("203.0.113.5").status, as_client("203.0.113.5").status], [401, 401]);
    assert_limited(&as_client("203.0.113.5"), "the third failure of one client");
    assert_eq!(as_client("203.0.113.6").status, 401, "another client behind the same proxy");
    assert_eq!(as_client("198.51.100.1, 203.0.113.6").status, 401, "what the client itself claims is not believed");
    assert_limited(&as_client("198.51.100.2, 203.0.113.6"), "still the same client");
    drop(proxied);

    // Without a trusted proxy the header is the client's own word, and changes nothing.
    let direct = TestApp::spawn_with(backend, &[limit]);
    let spoofed = |client: &str| {
        direct.send("GET", "/webhook-endpoints", Some(&forged_key()), None, &[("X-Forwarded-For", client)])
    };
    assert_eq!([spoofed("203.0.113.7").status, spoofed("203.0.113.8").status], [401, 401]);
    assert_limited(&spoofed("203.0.113.9"), "a new X-Forwarded-For from the same peer");
}

fn keys_of_one_merchant_share_its_bucket_and_merchants_do_not(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, &[("CHECKOUT_RATE_LIMIT_PER_SECOND", "1"), ("CHECKOUT_RATE_LIMIT_BURST", "2")]);
    let merchant = app.new_merchant();
    let second_key = app.new_key(&merchant, Livemode::Test).key;
    let live_key = app.new_key(&merchant, Livemode::Live).key;
    let other = app.new_merchant();
    let (_, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let listed = app.send("GET", "/webhook-endpoints", Some(&second_key), None, &[]);
    assert_eq!(listed.status, 200, "{}", listed.text);
    // Both keys have spent the merchant's burst: each is refused now, on any endpoint.
    assert_limited(&app.post_checkout(&second_key, &app.checkout_body(&merchant)), "the second key");
    assert_limited(&app.send("GET", &format!("/orders/{order_id}"), Some(&merchant.key), None, &[]), "the first key");
    assert_limited(&app.post_raw("/checkout", Some(&second_key), "{}"), "a refused body still counts");
    assert_eq!(app.post_checkout(&other.key, &app.checkout_body(&other)).status, 200, "another merchant");
    assert_eq!(app.post_checkout(&live_key, &app.checkout_body(&merchant)).status, 200, "the merchant's live mode");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM orders"), 3, "a refused request creates nothing");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM idempotency_keys"), 3, "and stores no idempotency record");
    assert_eq!(metric(&app, "checkout_rate_limited_total{limit=\"merchant\"}").as_deref(), Some("3"));
    assert_eq!(metric(&app, "checkout_rate_limit_keys{limit=\"merchant\"}").as_deref(), Some("3"));
}

fn page_posts_from_one_address_are_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_RATE_LIMIT_PAGE_POSTS_PER_MINUTE", "3")]);
    let merchant = app.new_merchant();
    let (page, order_id) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    let (other_page, _) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.pay(&page, "4000000000000002").status, 402);
    assert_eq!(app.pay(&page, "4000000000000002").status, 402);
    assert_eq!(app.post_form(&format!("{page}/pay"), &[("form_token", "forged")]).status, 403, "a bad form counts too");
    let limited = app.pay(&page, "4242424242424242");
    assert_eq!(limited.status, 429, "{}", limited.text);
    let retry_after: u64 = limited.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=20).contains(&retry_after), "Retry-After {retry_after}");
    assert!(limited.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    assert!(limited.text.contains("Too many attempts"), "{}", limited.text);
    assert!(limited.header("content-security-policy").is_some(), "the page's own headers");
    let form_token = app.form_token(&other_page);
    let cancel = app.post_form(&format!("{other_page}/cancel"), &[("form_token", &form_token)]);
    assert_eq!(cancel.status, 429, "the address's budget covers every checkout and form");
    assert_eq!(app.request("GET", &page, &[]).status, 200, "looking at a page is not limited");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM payment_attempts"), 2, "the refused posts charged nothing");
    assert_eq!(app.get_order(&merchant.key, &order_id)["status"], "pending");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM orders WHERE status = 'cancelled'"), 0);
    assert_eq!(metric(&app, "checkout_rate_limited_total{limit=\"page_posts\"}").as_deref(), Some("2"));
}

fn with_mode(body: &Value, mode: &str) -> Value {
    let mut body = body.clone();
    body["mode"] = mode.into();
    body
}

/// The page path of the same token under the other mode's prefix.
fn other_prefix(page: &str) -> String {
    match page.strip_prefix("/c/") {
        Some(token) => format!("/embed/{token}"),
        None => format!("/c/{}", page.trim_start_matches("/embed/")),
    }
}

fn a_page_acts_only_on_its_own_mode(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    for mode in ["hosted", "embedded"] {
        let (page, order_id) = app.create_checkout(&merchant, &with_mode(&app.checkout_body(&merchant), mode));
        let form_token = app.form_token(&page);
        let elsewhere = other_prefix(&page);
        let card =
            [("form_token", form_token.as_str()), ("number", "4242424242424242"), ("expiry", "12/40"), ("cvc", "123")];
        let paid = app.post_form(&format!("{elsewhere}/pay"), &card);
        assert_eq!(paid.status, 404, "{mode} token paid at {elsewhere}: {}", paid.text);
        let cancelled = app.post_form(&format!("{elsewhere}/cancel"), &[("form_token", &form_token)]);
        assert_eq!(cancelled.status, 404, "{mode} token cancelled at {elsewhere}");
        let order = app.get_order(&merchant.key, &order_id);
        assert_eq!((order["status"].as_str(), order["payment"]["status"].as_str()), (Some("pending"), Some("pending")));
        assert_eq!(order["session"]["status"], "open", "{mode}");
        let attempts = format!(
            "SELECT COUNT(*) AS n FROM payment_attempts a JOIN payments p ON p.id = a.payment_id \
             WHERE p.order_id = '{order_id}'"
        );
        assert_eq!(app.count(&attempts), 0, "{mode}: nothing was charged");
        assert_eq!(app.post_form(&format!("{page}/pay"), &card).status, 303, "its own page still takes the card");
        assert_eq!(app.count(&attempts), 1);
    }
}

on_both_backends!(
    forged_keys_share_the_address_limit,
    behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget,
    keys_of_one_merchant_share_its_bucket_and_merchants_do_not,
    page_posts_from_one_address_are_limited,
    a_page_acts_only_on_its_own_mode,
);
