//! Load from outside the server: `wrk` (closed loop: each connection sends its next request when
//! the last is answered) and a fixed-rate open loop of our own, since wrk has no fixed-rate mode.

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::claim::{ClaimItem, ClaimPayload, ClaimSigner};
use domain::ids::MerchantId;
use serde_json::{json, Value};

/// Throughput and latency of one run.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Answers a second.
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Answers by kind.
    pub created: u64,
    pub replayed: u64,
    pub unavailable: u64,
    /// Any other status, and transport errors (connect, read, write, timeout).
    pub failed: u64,
}

impl Run {
    pub fn text(&self) -> String {
        format!(
            "{:>8.0}/s  p50 {:>6.2}  p99 {:>7.2}  p99.9 {:>7.2} ms  ({} created, {} replayed, {} 503, {} failed)",
            self.rate,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.created,
            self.replayed,
            self.unavailable,
            self.failed
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "per_s": self.rate, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "p999_ms": self.p999_ms,
            "created": self.created, "replayed": self.replayed, "unavailable": self.unavailable, "failed": self.failed,
        })
    }
}

/// A `POST /checkout` body: a fresh claim for `merchant` with two lines, and its own key.
pub fn body(signer: &ClaimSigner, merchant: MerchantId, tag: &str, i: usize) -> String {
    let items = vec![
        ClaimItem { sku: "TEE-1".into(), name: "Tee".into(), quantity: 2, unit_amount: 2500 },
        ClaimItem { sku: "CAP-1".into(), name: "Cap".into(), quantity: 1, unit_amount: 1500 },
    ];
    let claim = signer.sign(&ClaimPayload {
        jti: format!("clm_{tag}_{i}"),
        experience_id: Some("exp_1".into()),
        ..ClaimPayload::new(merchant, items, Utc::now(), 3600)
    });
    json!({
        "checkoutClaim": claim,
        "mode": "hosted",
        "successUrl": "https://shop.example/success",
        "cancelUrl": "https://shop.example/cancel",
        "idempotencyKey": format!("{tag}-{i}"),
    })
    .to_string()
}

/// `n` fresh bodies, signed on every core.
pub fn bodies(signer: &ClaimSigner, merchant: MerchantId, tag: &str, n: usize) -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let chunk = n.div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|from| {
                scope.spawn(move || {
                    (from..(from + chunk).min(n)).map(|i| body(signer, merchant, tag, i)).collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().unwrap()).collect()
    })
}

/// The wrk script: sends the bodies of a file, one per line, each once while they last (threads
/// take turns); counts answers by kind;
/// prints one JSON line at the end.
const WRK_SCRIPT: &str = r#"
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  bodies = {}
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  -- Threads take turns through the bodies: thread k sends bodies k+1, k+1+step, …
  step = tonumber(args[3])
  nxt = id + 1 - step
  created, replayed, unavailable, other = 0, 0, 0, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[2]
end
function request()
  nxt = nxt + step
  if nxt > #bodies then nxt = (nxt - 1) % #bodies + 1 end
  return wrk.format(nil, nil, nil, bodies[nxt])
end
function response(status, headers, body)
  if status == 200 then
    if headers["idempotent-replayed"] or headers["Idempotent-Replayed"] then
      replayed = replayed + 1
    else
      created = created + 1
    end
  elseif status == 503 then
    unavailable = unavailable + 1
  else
    other = other + 1
  end
end
function done(summary, latency, requests)
  local c, r, u, o = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); r = r + t:get("replayed"); u = u + t:get("unavailable"); o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"micros":%d,"p50":%d,"p99":%d,"p999":%d,"created":%d,"replayed":%d,"unavailable":%d,"other":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    c, r, u, o, e.connect + e.read + e.write + e.timeout))
end
"#;

/// Writes `bodies` to a file, one per line, for wrk.
pub fn bodies_file(dir: &std::path::Path, name: &str, bodies: &[String]) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.bodies"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for body in bodies {
        writeln!(file, "{body}").unwrap();
    }
    file.flush().unwrap();
    path
}

/// Runs wrk for `seconds` with `connections` against `url`, sending the bodies of `bodies` (a
/// file from [`bodies_file`]) in turn with `key`.
pub fn wrk(url: &str, key: &str, bodies: &std::path::Path, connections: usize, seconds: u64) -> Run {
    let script = bodies.with_extension("lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    let threads = if connections >= 200 { 2 } else { 1 };
    let output = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{seconds}s")])
        .args(["--timeout", "30s", "-s"])
        .arg(&script)
        .arg(url)
        .arg("--")
        .arg(bodies)
        .arg(key)
        .arg(threads.to_string())
        .output()
        .expect("wrk runs (scripts/bench installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("WRK "))
        .unwrap_or_else(|| panic!("wrk said nothing: {text}{}", String::from_utf8_lossy(&output.stderr)));
    let v: Value = serde_json::from_str(line).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Run {
        rate: n("requests") as f64 / (n("micros") as f64 / 1e6),
        p50_ms: n("p50") as f64 / 1e3,
        p99_ms: n("p99") as f64 / 1e3,
        p999_ms: n("p999") as f64 / 1e3,
        created: n("created"),
        replayed: n("replayed"),
        unavailable: n("unavailable"),
        failed: n("other") + n("errors"),
    }
}

/// Sends `bodies` at a fixed `rate` (an open loop: the n-th request is due at n ÷ rate seconds,
/// whether or not earlier ones were answered), on `workers` keep-alive connections. Latency counts
/// from when a request was due, not from when a free connection sent it, so a stall shows in full
/// (no coordinated omission).
pub fn open_loop(url: &str, key: &str, bodies: &[String], rate: f64, workers: usize) -> Run {
    let next = AtomicUsize::new(0);
    let started = Instant::now() + Duration::from_millis(50);
    let due = |i: usize| started + Duration::from_secs_f64(i as f64 / rate);
    let results: Vec<(Duration, u16, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = bodies.get(i) else { return mine };
                        let at = due(i);
                        if let Some(wait) = at.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let answer = agent
                            .post(url)
                            .set("Authorization", &format!("Bearer {key}"))
                            .set("Content-Type", "application/json")
                            .send_string(body);
                        let (status, replayed) = match answer {
                            Ok(r) => (r.status(), r.header("idempotent-replayed").is_some()),
                            Err(ureq::Error::Status(s, _)) => (s, false),
                            Err(_) => (0, false),
                        };
                        mine.push((at.elapsed(), status, replayed));
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = results.iter().map(|r| r.0.as_secs_f64() * 1e3).collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let count = |f: &dyn Fn(&(Duration, u16, bool)) -> bool| results.iter().filter(|r| f(r)).count() as u64;
    Run {
        rate: results.len() as f64 / elapsed,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        created: count(&|r| r.1 == 200 && !r.2),
        replayed: count(&|r| r.1 == 200 && r.2),
        unavailable: count(&|r| r.1 == 503),
        failed: count(&|r| r.1 != 200 && r.1 != 503),
    }
}
