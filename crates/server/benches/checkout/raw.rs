//! The raw limits: the service's own create, without the service. On PostgreSQL, `pgbench -M
//! prepared` runs the very statement the service runs (taken from `persistence::raw`), and, as a
//! second reference, the plain seven-statement transaction; on SQLite, one connection with the
//! server's pragmas runs the same transaction in a loop (SQLite has one writer).

use std::process::Command;
use std::time::Instant;

use chrono::{Duration, DurationRound, Utc};
use domain::claim::{LineItem, VerifiedClaim};
use domain::idempotency::{Fingerprint, IdempotencyKey, IdempotencyScope, StoredOutcome};
use domain::ids::{EventId, MerchantId, OrderId, PaymentId};
use domain::livemode::Livemode;
use domain::money::Currency;
use domain::order::Mode;
use domain::ports::NewOrderRecords;
use domain::secret::SecretHash;
use domain::webhook::{EventType, NewEvent};
use persistence::{AnyConnection, Database};

use crate::load::Run;

/// What a create of the bench's usual request writes: two lines, a hosted page.
pub fn records(merchant: MerchantId, i: usize) -> NewOrderRecords {
    let now = Utc::now().duration_trunc(Duration::milliseconds(1)).unwrap();
    let (order_id, payment_id) = (OrderId::new(), PaymentId::new());
    let line = |sku: &str, name: &str, quantity, unit_amount| LineItem {
        sku: sku.into(),
        name: name.into(),
        quantity,
        unit_amount,
        amount: quantity * unit_amount,
    };
    let items = vec![line("TEE-1", "Tee", 2, 2500), line("CAP-1", "Cap", 1, 1500)];
    let expires_at = now + Duration::minutes(30);
    NewOrderRecords {
        scope: IdempotencyScope {
            merchant_id: merchant,
            livemode: Livemode::Test,
            key: IdempotencyKey::parse(&format!("raw-{i}-{order_id}")).unwrap(),
        },
        fingerprint: Fingerprint::from_stored("9f".repeat(32)),
        outcome: StoredOutcome::Created {
            order_id: order_id.to_string(),
            payment_id: payment_id.to_string(),
            mode: Mode::Hosted,
            expires_at: domain::time::format_time(expires_at),
        },
        order_id,
        payment_id,
        claim: VerifiedClaim {
            claim_id: format!("clm_raw_{i}_{order_id}"),
            issuer: "admission".into(),
            consumer_id: "cus_bench".into(),
            merchant_id: merchant,
            currency: Currency::parse("usd").unwrap(),
            amount_total: items.iter().map(|i| i.amount).sum(),
            items,
            expires_at: now + Duration::hours(1),
            experience_id: Some("exp_1".into()),
            distribution_id: None,
        },
        mode: Mode::Hosted,
        success_url: "https://shop.example/success".into(),
        cancel_url: "https://shop.example/cancel".into(),
        token_hash: SecretHash::of(&order_id.to_string()),
        expires_at,
        created_at: now,
        stale_before: now - Duration::days(1),
        event: NewEvent {
            id: EventId::new(),
            event_type: EventType::OrderCreated,
            merchant_id: merchant,
            livemode: Livemode::Test,
            payload: format!(r#"{{"id":"evt","type":"order.created","data":{{"id":"{order_id}"}}}}"#),
            created_at: now,
        },
    }
}

/// SQLite's raw limit: `n` creates, one after another, on one connection of `db` (the server's
/// pragmas), each the service's own transaction.
pub fn sqlite(db: &Database, merchant: MerchantId, n: usize) -> Run {
    let all: Vec<NewOrderRecords> = (0..n).map(|i| records(merchant, i)).collect();
    let mut conn = db.conn().unwrap();
    let conn: &mut AnyConnection = &mut conn;
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for c in &all {
        let t = Instant::now();
        persistence::raw::create(conn, &api::views::WireEnvelopes, c).unwrap();
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    quantiles(rate, latencies, n as u64)
}

fn quantiles(rate: f64, mut latencies: Vec<f64>, created: u64) -> Run {
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    Run {
        rate,
        p50_ms: at(0.5).copied().unwrap_or(f64::NAN),
        p99_ms: at(0.99).copied().unwrap_or(f64::NAN),
        p999_ms: at(0.999).copied().unwrap_or(f64::NAN),
        created,
        ..Run::default()
    }
}

/// A value diesel showed among a query's binds, as pgbench is to send it.
#[derive(Debug, PartialEq)]
enum Bind {
    Null,
    Text(String),
}

/// Splits diesel's `debug_query` text into the SQL and its binds.
fn parse_debug_query(shown: &str) -> (String, Vec<Bind>) {
    let (sql, binds) = shown.split_once(" -- binds: [").expect("diesel's debug form");
    let binds = binds.strip_suffix(']').expect("diesel's debug form");
    let (mut out, mut current, mut chars) = (Vec::new(), String::new(), binds.chars().peekable());
    let (mut quoted, mut depth) = (false, 0);
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                let escaped = chars.next().unwrap();
                current.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
                continue;
            }
            '"' => quoted = !quoted,
            '(' | '[' | '{' if !quoted => depth += 1,
            ')' | ']' | '}' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(std::mem::take(&mut current));
                if chars.peek() == Some(&' ') {
                    chars.next();
                }
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    let binds = out
        .into_iter()
        .map(|b| {
            let b = b.strip_prefix("Some(").and_then(|b| b.strip_suffix(')')).unwrap_or(&b).to_owned();
            if b == "None" {
                Bind::Null
            } else {
                Bind::Text(b.strip_prefix('"').and_then(|b| b.strip_suffix('"')).unwrap_or(&b).to_owned())
            }
        })
        .collect();
    (sql.to_owned(), binds)
}

/// The pgbench script that runs the service's own create statement, and its constants (`-D`).
/// Every value that must be new for each create (ids, the key, the claim, the token's hash) is the
/// transaction's random number `:r` instead; the lines' JSON names the order, so it becomes
/// `replace(<lines>, <order id>, :r)`, and a `NULL` bind is written `NULL`.
pub fn pgbench_script(sample: &NewOrderRecords) -> (String, Vec<String>) {
    let shown = persistence::raw::postgres_create_statement(sample).unwrap();
    let (sql, binds) = parse_debug_query(&shown);
    let order_id = sample.order_id.to_string();
    let unique = [
        order_id.clone(),
        sample.payment_id.to_string(),
        sample.scope.key.as_str().to_owned(),
        sample.claim.claim_id.clone(),
        sample.token_hash.as_str().to_owned(),
        sample.event.id.to_string(),
    ];
    let mut constants = Vec::new();
    let mut script = String::new();
    let mut rest = sql.as_str();
    while let Some(at) = rest.find('$') {
        script.push_str(&rest[..at]);
        let digits: String = rest[at + 1..].chars().take_while(char::is_ascii_digit).collect();
        rest = &rest[at + 1 + digits.len()..];
        let n: usize = digits.parse().unwrap();
        let replacement = match &binds[n - 1] {
            Bind::Null => "NULL".to_owned(),
            Bind::Text(value) if unique.contains(value) => ":r".to_owned(),
            Bind::Text(value) if value.contains(&order_id) => {
                constants.push(format!("b{n}={}", value.replace(&order_id, "@ORDER@")));
                format!("replace(:b{n}, '@ORDER@', :r)")
            }
            Bind::Text(value) => {
                constants.push(format!("b{n}={value}"));
                format!(":b{n}")
            }
        };
        script.push_str(&replacement);
    }
    script.push_str(rest);
    (format!("\\set r random(1, 9000000000000000000)\n{script};\n"), constants)
}

/// The plain seven-statement transaction a create once was, for comparison.
pub fn seven_statement_script(merchant: &str) -> String {
    format!(
        "\\set r random(1, 9000000000000000000)\n\
         BEGIN;\n\
         INSERT INTO idempotency_keys (merchant_id, livemode, idempotency_key, fingerprint, outcome, created_at) \
         VALUES ('{merchant}', false, :r, 'f', '{{}}', now());\n\
         INSERT INTO orders (id, merchant_id, livemode, claim_id, claim_issuer, consumer_id, experience_id, currency, \
         amount_total, status, expires_at, created_at, updated_at) VALUES (:r, '{merchant}', false, :r, 'admission', \
         'cus_bench', 'exp_1', 'usd', 6500, 'pending', now(), now(), now());\n\
         INSERT INTO order_items (order_id, position, sku, name, quantity, unit_amount, amount) VALUES \
         (:r, 0, 'TEE-1', 'Tee', 2, 2500, 5000), (:r, 1, 'CAP-1', 'Cap', 1, 1500, 1500);\n\
         INSERT INTO payments (id, order_id, amount, currency, status, created_at, updated_at) VALUES \
         (:r, :r, 6500, 'usd', 'pending', now(), now());\n\
         INSERT INTO checkout_sessions (order_id, token_hash, mode, success_url, cancel_url, status, expires_at, \
         created_at, updated_at) VALUES (:r, :r, 'hosted', 'https://shop.example/success', \
         'https://shop.example/cancel', 'open', now(), now(), now());\n\
         END;\n"
    )
}

/// Runs `script` under `pgbench -M prepared` for `seconds` with `clients`, in `schema` of the
/// database at `url`; `None` if pgbench is missing or fails.
pub fn pgbench(
    url: &str,
    schema: &str,
    script: &str,
    constants: &[String],
    clients: usize,
    seconds: u64,
) -> Option<Run> {
    let dir = std::env::temp_dir().join(format!("checkout-pgbench-{schema}"));
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("create.sql");
    std::fs::write(&path, script).ok()?;
    let mut command = Command::new("pgbench");
    command
        .current_dir(&dir)
        .args(["-n", "-M", "prepared", "-j", "1", "-l", "--log-prefix", "txn"])
        .args(["-c", &clients.to_string(), "-T", &seconds.to_string(), "-f"])
        .arg(&path)
        .env("PGOPTIONS", format!("-c search_path={schema}"));
    for constant in constants {
        command.arg("-D").arg(constant);
    }
    let output = command.arg(url).output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("pgbench failed: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("pgbench is not available ({e})");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let tps: f64 = text.lines().find_map(|l| l.strip_prefix("tps = "))?.split_whitespace().next()?.parse().ok()?;
    // Each log line: client, transaction, latency (µs), script, epoch, µs.
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(&dir).ok()?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("txn") {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            latencies.extend(
                log.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok()).map(|us| us / 1e3),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let n = latencies.len() as u64;
    Some(quantiles(tps, latencies, n))
}
