//! Webhook lag on drop day: creates at full speed across ten merchants, each with an endpoint on a
//! local receiver that answers at once; for every order, the time from its create's answer (its
//! commit) to its `order.created` reaching the receiver.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::ids::MerchantId;
use serde_json::{json, Value};

use crate::machine::Meter;
use crate::Bench;

/// A receiver on loopback that answers 200 at once and notes when each order's `order.created`
/// first arrived, and how many arrived in all.
pub struct Receiver {
    pub url: String,
    arrivals: Arc<Mutex<(HashMap<String, Instant>, usize)>>,
}

impl Receiver {
    pub fn start() -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let arrivals: Arc<Mutex<(HashMap<String, Instant>, usize)>> = Arc::default();
        let noted = arrivals.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let noted = noted.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let (mut line, mut length) = (String::new(), 0usize);
                        let mut any = false;
                        while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                            any = true;
                            if let Some((name, value)) = line.split_once(':') {
                                if name.eq_ignore_ascii_case("content-length") {
                                    length = value.trim().parse().unwrap_or(0);
                                }
                            }
                            line.clear();
                        }
                        let mut body = vec![0; length];
                        if !any || reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let at = Instant::now();
                        let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                        if let Some(order) = event["data"]["id"].as_str() {
                            let mut seen = noted.lock().unwrap();
                            seen.0.entry(order.to_owned()).or_insert(at);
                            seen.1 += 1;
                        }
                        if stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { url, arrivals }
    }

    /// Orders heard of, and deliveries received in all (more than orders: some came twice).
    pub fn counts(&self) -> (usize, usize) {
        let seen = self.arrivals.lock().unwrap();
        (seen.0.len(), seen.1)
    }

    pub fn arrivals(&self) -> HashMap<String, Instant> {
        self.arrivals.lock().unwrap().0.clone()
    }
}

/// Ten merchants with a key and an endpoint on `receiver` each, made through the API.
pub fn merchants_listening(
    bench: &Bench,
    target: &crate::Target,
    api: &str,
    receiver: &Receiver,
) -> Vec<(MerchantId, String)> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    (0..10)
        .map(|_| {
            let (merchant, key) = bench.merchant(target);
            agent
                .post(&format!("{api}/webhook-endpoints"))
                .set("Authorization", &format!("Bearer {key}"))
                .send_string(&json!({ "url": receiver.url, "events": ["order.created"] }).to_string())
                .unwrap();
            (merchant, key)
        })
        .collect()
}

/// Creates as fast as `bench.connections` clients go, for `bench.seconds`, spread over `merchants`
/// and `servers`; each order's id and when its answer came.
pub fn create_for(bench: &Bench, servers: &[String], merchants: &[(MerchantId, String)]) -> Vec<(String, Instant)> {
    let next = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(bench.seconds);
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..bench.connections)
            .map(|c| {
                let next = &next;
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                    let url = &servers[c % servers.len()];
                    let mut mine = Vec::new();
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let (merchant, key) = &merchants[i % merchants.len()];
                        let answer: Value = agent
                            .post(&format!("{url}/checkout"))
                            .set("Authorization", &format!("Bearer {key}"))
                            .set("Content-Type", "application/json")
                            .send_string(&crate::load::body(&bench.signer, *merchant, "hook", i))
                            .unwrap_or_else(|e| panic!("request {i}: {e}"))
                            .into_json()
                            .unwrap();
                        mine.push((answer["orderId"].as_str().unwrap().to_owned(), Instant::now()));
                    }
                    mine
                })
            })
            .collect();
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect()
    })
}

/// Waits (at most two minutes) for every order's event, then the lag of each.
pub fn lags(receiver: &Receiver, created: &[(String, Instant)]) -> (Vec<f64>, f64) {
    let waited = Instant::now();
    while receiver.counts().0 < created.len() && waited.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let arrivals = receiver.arrivals();
    let mut lags: Vec<f64> = created
        .iter()
        .filter_map(|(order, at)| {
            arrivals.get(order).map(|arrived| arrived.saturating_duration_since(*at).as_secs_f64() * 1e3)
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    (lags, waited.elapsed().as_secs_f64())
}

pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
}

pub fn lag(bench: &Bench, backend: &'static str) -> Value {
    println!(
        "\n== {backend}: webhook lag ({} clients, {} s, 10 merchants with an endpoint each)",
        bench.connections, bench.seconds
    );
    let target = bench.target(backend, "hooks");
    let receiver = Receiver::start();
    let server = bench.server(&target, &[]);
    let api = server.url("");
    let merchants = merchants_listening(bench, &target, &api, &receiver);
    let meter = Meter::start(Some(server.pid()));
    let started = Instant::now();
    let created = create_for(bench, &[api], &merchants);
    let load = started.elapsed().as_secs_f64();
    let split = meter.stop();
    let (during, _) = receiver.counts();
    let (lags, drain) = lags(&receiver, &created);
    let (_, received) = receiver.counts();
    let (p50, p99) = (quantile(&lags, 0.5), quantile(&lags, 0.99));
    println!(
        "creates {:.0}/s; delivered during the load {:.0}/s; lag p50 {p50:.0} ms, p99 {p99:.0} ms (target p99 ≤ 1,000 ms); \
         {} of {} delivered, {} deliveries in all, all in {:.1} s after the load",
        created.len() as f64 / load,
        during as f64 / load,
        lags.len(),
        created.len(),
        received,
        drain
    );
    println!("  {}", split.text());
    json!({
        "backend": backend, "scenario": "webhooks",
        "create_per_s": created.len() as f64 / load,
        "delivered_during_load_per_s": during as f64 / load,
        "undelivered": created.len() - lags.len(),
        "duplicates": received.saturating_sub(lags.len()),
        "lag_p50_ms": p50, "lag_p99_ms": p99,
        "met": p99 <= 1000.0,
    })
}
