//! What every request leaves behind: an `X-Request-Id` (taken from the caller when it is sane,
//! made otherwise, and returned), one access-log line (method, route pattern, status, latency,
//! merchant: never a secret, claim, token or path), the cause of any 5xx logged with the request
//! id, and the request metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use crate::metrics::Metrics;

/// The header that carries the request id both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The merchant a request acted for, in the request's or the response's extensions.
#[derive(Debug, Clone)]
pub struct MerchantTag(pub String);

/// Why an error answer was given, in the response's extensions: logged here with the request id,
/// never sent.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

fn sane(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 128
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| text.to_owned())
}

/// `req_` and 80 random bits in hex.
fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(24);
    id.push_str("req_");
    for b in domain::secret::random_bytes::<10>() {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    id
}

/// One request counted in `http_requests_in_flight` until it is dropped, however it ends.
struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn enter(metrics: &Metrics) -> Self {
        metrics.in_flight.inc();
        Self(metrics.in_flight.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The middleware: wrap the whole app with `from_fn(observe::requests)`.
pub async fn requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req.headers().get(&REQUEST_ID).and_then(sane).unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().to_string();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let _in_flight = metrics.as_ref().map(|m| InFlight::enter(m));
    let mut res = next.call(req).await?;
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    if let Some(ErrorCause(cause)) = res.response().extensions().get::<ErrorCause>() {
        if status >= 500 {
            log::error!(request_id = id.as_str(); "{method} {route} {status}: {cause}");
        } else {
            log::warn!(request_id = id.as_str(); "{method} {route} {status}: {cause}");
        }
    }
    let merchant = res
        .response()
        .extensions()
        .get::<MerchantTag>()
        .or(res.request().extensions().get::<MerchantTag>())
        .map(|m| m.0.clone())
        .unwrap_or_default();
    let latency_ms = elapsed.as_secs_f64() * 1e3;
    log::info!(
        target: "access",
        request_id = id.as_str(),
        method = method.as_str(),
        route = route.as_str(),
        status = status,
        latency_ms = (latency_ms * 100.0).round() / 100.0,
        merchant_id = merchant.as_str();
        "{method} {route} {status} {latency_ms:.1}ms"
    );
    if let Some(metrics) = metrics {
        metrics.observe(&route, status, elapsed.as_secs_f64());
    }
    Ok(res)
}
