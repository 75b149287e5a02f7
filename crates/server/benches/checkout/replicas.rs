//! Two replicas on one PostgreSQL database (as `scripts/replicas` runs them), under the same load
//! as one, with webhooks on: the total, and whether the dispatchers repeated any work.

use serde_json::{json, Value};

use crate::load::{self, Run};
use crate::machine::Meter;
use crate::webhooks::{merchants_listening, Receiver};
use crate::{line, Bench};

pub fn replicas(bench: &Bench, backend: &'static str) -> Value {
    if backend != "postgres" {
        return json!({"backend": backend, "scenario": "replicas", "skipped": "replicas share PostgreSQL"});
    }
    println!("\n== postgres: one replica against two ({} connections in all, {} s)", bench.connections, bench.seconds);
    let target = bench.target(backend, "replicas");
    let receiver = Receiver::start();
    let first = bench.server(&target, &[]);
    let second = bench.server(&target, &[]);
    let merchants = merchants_listening(bench, &target, &first.url(""), &receiver);
    let (merchant, key) = merchants[0].clone();

    let (one, split_one, _) = bench.creates(&first, merchant, &key, bench.connections, "one");
    line("one replica: creates", &one, Some(&split_one));

    let half = bench.connections / 2;
    let files: Vec<_> = (0..2)
        .map(|i| {
            let bodies = load::bodies(&bench.signer, merchant, &format!("two{i}"), bench.seconds as usize * 5_000);
            load::bodies_file(&bench.dir, &format!("two{i}"), &bodies)
        })
        .collect();
    let meter = Meter::start(Some(first.pid()));
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = [&first, &second]
            .into_iter()
            .zip(&files)
            .map(|(server, file)| {
                let url = server.url("/checkout");
                let key = &key;
                scope.spawn(move || load::wrk(&url, key, file, half, bench.seconds))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let split = meter.stop();
    let total = Run {
        rate: runs.iter().map(|r| r.rate).sum(),
        p50_ms: runs.iter().map(|r| r.p50_ms).fold(0.0, f64::max),
        p99_ms: runs.iter().map(|r| r.p99_ms).fold(0.0, f64::max),
        p999_ms: runs.iter().map(|r| r.p999_ms).fold(0.0, f64::max),
        created: runs.iter().map(|r| r.created).sum(),
        replayed: runs.iter().map(|r| r.replayed).sum(),
        unavailable: runs.iter().map(|r| r.unavailable).sum(),
        failed: runs.iter().map(|r| r.failed).sum(),
    };
    line("two replicas: creates, together", &total, None);
    println!("{:<34} {} (server: the first replica only)", "", split.text());

    // Every event of every order, delivered once, whichever replica's dispatcher took it.
    let orders = crate::count(&target, "SELECT COUNT(*) AS n FROM orders") as usize;
    let drained = crate::machine::wait_until(std::time::Duration::from_secs(180), || receiver.counts().0 >= orders);
    let (heard, received) = receiver.counts();
    let retried = crate::count(&target, "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE attempts > 1");
    println!(
        "  webhooks: {heard} of {orders} orders heard of ({}), {received} deliveries in all, {retried} deliveries tried more than once",
        if drained { "all" } else { "NOT ALL within 3 minutes" }
    );
    json!({
        "backend": backend, "scenario": "replicas",
        "one": one.json(), "two": total.json(), "two_each": runs.iter().map(Run::json).collect::<Vec<_>>(),
        "orders": orders, "heard": heard, "deliveries": received, "retried": retried,
        "duplicates": received.saturating_sub(heard),
    })
}
