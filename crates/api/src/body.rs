//! Reading a JSON body with a size limit, so that an oversized or malformed body gets a JSON error
//! in the contract's shape rather than a framework's text.

use actix_web::web;
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::ApiError;
use crate::json::{self, Json};
use crate::validation::Issue;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads the whole body, at most [`MAX_BODY_BYTES`].
async fn read_bytes(mut payload: web::Payload) -> Result<web::BytesMut, ApiError> {
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => ApiError::PayloadTooLarge(MAX_BODY_BYTES),
            other => ApiError::Validation(vec![Issue::unreadable_body(&other.to_string())]),
        })?;
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Reads a body outside the checkout contract (whose 400s are Valibot issues) and parses it as
/// JSON; a body that is empty or not JSON is `400 invalid_request`, saying what was expected.
pub async fn read_json(payload: web::Payload, expected: &str) -> Result<Value, ApiError> {
    let bytes = read_bytes(payload).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidRequest(format!("the body is empty; expected {expected}")));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::InvalidRequest(format!(
            "the body is not JSON (line {}, column {}); expected {expected}",
            e.line(),
            e.column()
        ))
    })
}

/// Reads a body of the checkout contract as the original service did: decoded as UTF-8 the way
/// `fetch`'s `Request.json()` decodes it (a leading byte-order mark dropped, invalid bytes read as
/// U+FFFD), then parsed as `JSON.parse` parses it. An empty body is `None`.
pub async fn read_contract_json(payload: web::Payload) -> Result<Option<Json>, ApiError> {
    let bytes = read_bytes(payload).await?;
    parse_contract_json(&bytes)
}

/// Parses the bytes of a checkout-contract body as `read_contract_json` does (UTF-8 as `fetch`
/// decodes it, then `JSON.parse`); `None` for an empty body.
pub fn parse_contract_json(bytes: &[u8]) -> Result<Option<Json>, ApiError> {
    let text = String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes));
    if text.bytes().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    json::parse(&text).map(Some).map_err(|e| ApiError::Validation(vec![Issue::malformed_json(&e.to_string())]))
}
