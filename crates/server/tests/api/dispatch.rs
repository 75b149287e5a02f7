//! The webhook dispatcher under load and abuse: endpoints are served independently, so a dead one
//! delays only itself; an endpoint that answers gets its events back to back; what one merchant
//! can make the dispatcher do is bounded.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use crate::webhooks::{register, Receiver};

/// An endpoint that accepts connections, reads each request, and never answers. Remembers the
/// delivery ids it was sent, in order; lets go of everything when dropped.
struct BlackHole {
    url: String,
    deliveries: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl BlackHole {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen, stopping) = (deliveries.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        if let Some(id) = delivery_id(&stream) {
                            seen.lock().unwrap().push(id);
                        }
                        held.push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { url, deliveries, stop }
    }

    fn deliveries(&self) -> Vec<String> {
        self.deliveries.lock().unwrap().clone()
    }

    fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.deliveries().len() < count {
            assert!(
                Instant::now() < deadline,
                "{} of {count} attempts reached the black hole",
                self.deliveries().len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.deliveries()
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Reads a request's head and body; returns its `X-Fanfare-Delivery-Id`.
fn delivery_id(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let (mut line, mut id, mut length) = (String::new(), None, 0usize);
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? <= 2 {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "x-fanfare-delivery-id" => id = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    id
}

fn a_dead_endpoint_delays_only_its_own_deliveries(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_WEBHOOK_TIMEOUT_SECONDS", "3")]);
    let (careless, careful) = (app.new_merchant(), app.new_merchant());
    let hole = BlackHole::start();
    let receiver = Receiver::start();
    let (dead, _) = register(&app, &careless, &hole.url, &["order.created"]);
    register(&app, &careful, &receiver.url, &["order.created"]);

    let (_, first) = app.create_checkout(&careless, &app.checkout_body(&careless));
    let (_, second) = app.create_checkout(&careless, &app.checkout_body(&careless));
    hole.wait_for(1);
    let started = Instant::now();
    let (_, theirs) = app.create_checkout(&careful, &app.checkout_body(&careful));
    let delivered = receiver.wait_for(1);
    let waited = started.elapsed();
    assert_eq!(delivered[0].json()["data"]["id"], theirs.as_str());
    assert!(waited < Duration::from_secs(2), "another merchant's event waited {waited:?} behind a dead endpoint");

    // The dead endpoint's own deliveries keep their order and schedule: its first event is tried,
    // tried again at once after the timeout, then waits a minute; the second is never sent first.
    let attempts = hole.wait_for(2);
    let first_event = app.count(&format!(
        "SELECT COUNT(*) AS n FROM webhook_events WHERE payload LIKE '%{first}%' AND '{}' LIKE id || '.%'",
        attempts[0]
    ));
    assert_eq!(first_event, 1, "the oldest event goes first: {attempts:?}");
    assert_eq!(attempts[1], attempts[0], "and is tried again before the next: {attempts:?} ({second} waits)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.count(&format!(
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE endpoint_id = '{dead}' AND attempts = 2 AND leased_until IS NULL"
    )) == 0
    {
        assert!(Instant::now() < deadline, "the second attempt never timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
    let retry = app.count(&format!(
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE endpoint_id = '{dead}' AND status = 'pending' \
         AND attempts = 2 AND last_error IS NOT NULL AND next_attempt_at > created_at"
    ));
    assert_eq!(retry, 1, "the third attempt is scheduled for later");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE endpoint_id = '{dead}' AND attempts = 0"
        )),
        1,
        "the second event waits its turn"
    );
    assert_eq!(hole.deliveries().len(), 2, "nothing more until the retry is due");
}

fn slow_endpoints_never_hold_up_one_that_answers(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_WEBHOOK_TIMEOUT_SECONDS", "5")]);
    // Eighty endpoints of five merchants that take two seconds to answer: more than the
    // dispatcher has workers.
    let answered: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    let noted = answered.clone();
    let slow = crate::helpers::LoopbackServer::start(move |request| {
        std::thread::sleep(Duration::from_secs(2));
        noted.lock().unwrap().insert(request.header("x-fanfare-webhook-id").to_owned());
        (200, "text/plain", String::new())
    });
    for _ in 0..5 {
        let merchant = app.new_merchant();
        for i in 0..16 {
            register(&app, &merchant, &format!("{}/slow-{i}", slow.address), &["order.created"]);
        }
        for _ in 0..2 {
            app.create_checkout(&merchant, &app.checkout_body(&merchant));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.lock().unwrap().len() < 80 {
        assert!(Instant::now() < deadline, "{} of 80 slow endpoints answered", answered.lock().unwrap().len());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every slow endpoint has shown itself slow, and they still have events queued.
    let careful = app.new_merchant();
    let receiver = Receiver::start();
    register(&app, &careful, &receiver.url, &["order.created"]);
    let started = Instant::now();
    app.create_checkout(&careful, &app.checkout_body(&careful));
    receiver.wait_for(1);
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(1_500), "an endpoint that answers waited {waited:?} behind slow ones");
}

fn an_endpoint_that_answers_gets_its_events_back_to_back_in_order(backend: Backend) {
    // A round every five seconds: events queued meanwhile must not wait a round each.
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_WEBHOOK_POLL_MS", "5000")]);
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    register(&app, &merchant, &receiver.url, &["order.created"]);
    let orders: Vec<String> =
        (0..20).map(|_| app.create_checkout(&merchant, &app.checkout_body(&merchant)).1).collect();
    let first = receiver.wait_for(1);
    let started = Instant::now();
    let all = receiver.wait_for(20);
    assert!(started.elapsed() < Duration::from_secs(4), "the queue drained in {:?}, a round each", started.elapsed());
    let arrived: Vec<String> = all.iter().map(|d| d.json()["data"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(arrived, orders, "in the order they happened");
    assert_eq!(first[0].json()["data"]["id"], orders[0].as_str());
}

fn a_merchant_has_at_most_sixteen_endpoints_per_mode(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_WEBHOOK_POLL_MS", "3600000")]);
    let merchant = app.new_merchant();
    let ids: Vec<String> =
        (0..16).map(|i| register(&app, &merchant, &format!("https://shop.example/h{i}"), &[]).0).collect();
    let body = json!({ "url": "https://shop.example/h16" }).to_string();
    let refused = app.post_raw("/webhook-endpoints", Some(&merchant.key), &body);
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.json()["error"], "webhook_endpoint_limit_reached");
    let live = app.new_key(&merchant, domain::livemode::Livemode::Live).key;
    assert_eq!(app.post_raw("/webhook-endpoints", Some(&live), &body).status, 201, "the other mode has its own");
    let auth = format!("Bearer {}", merchant.key);
    assert_eq!(
        app.request("DELETE", &format!("/webhook-endpoints/{}", ids[0]), &[("Authorization", &auth)]).status,
        200
    );
    assert_eq!(app.post_raw("/webhook-endpoints", Some(&merchant.key), &body).status, 201, "removing one frees room");
}

fn deliveries_to_a_removed_or_gone_endpoint_end_cancelled(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CHECKOUT_WEBHOOK_POLL_MS", "3600000")]);
    let merchant = app.new_merchant();
    let receiver = Receiver::start();
    let (removed, _) = register(&app, &merchant, "http://127.0.0.1:9/removed", &[]);
    let (gone, _) = register(&app, &merchant, &receiver.url, &[]);
    receiver.answer_with(&[410]);
    for _ in 0..2 {
        app.create_checkout(&merchant, &app.checkout_body(&merchant));
    }
    let auth = format!("Bearer {}", merchant.key);
    assert_eq!(
        app.request("DELETE", &format!("/webhook-endpoints/{removed}"), &[("Authorization", &auth)]).status,
        200
    );
    // The dispatcher, stepped by hand: the gone endpoint answers 410 to its first delivery.
    let webhooks = app.jobs.webhooks();
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 1, "only the endpoint that is still there is tried");
    assert_eq!(webhooks.dispatch_once(10).unwrap(), 0, "a disabled endpoint gets nothing more");
    let count = |endpoint: &str, status: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE endpoint_id = '{endpoint}' AND status = '{status}'"
        ))
    };
    assert_eq!((count(&removed, "cancelled"), count(&removed, "pending")), (2, 0));
    assert_eq!((count(&gone, "failed"), count(&gone, "cancelled"), count(&gone, "pending")), (1, 1, 0));
    let event = webhooks.deliveries(Some("cancelled"), 10).unwrap()[0].event_id.parse().unwrap();
    assert_eq!(webhooks.resend(event).unwrap(), 0, "a resend goes to enabled endpoints only");
}

on_both_backends!(
    a_dead_endpoint_delays_only_its_own_deliveries,
    slow_endpoints_never_hold_up_one_that_answers,
    an_endpoint_that_answers_gets_its_events_back_to_back_in_order,
    a_merchant_has_at_most_sixteen_endpoints_per_mode,
    deliveries_to_a_removed_or_gone_endpoint_end_cancelled,
);
