//! Reading a JSON body with a size limit, so that an oversized or malformed body gets a JSON error
//! in the contract's shape rather than a framework's text.

use actix_web::web;
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::ApiError;
use crate::validation::Issue;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads the whole body (at most [`MAX_BODY_BYTES`]) and parses it as JSON. An empty body is
/// `None`, which validation reports as a missing object.
pub async fn read_json(mut payload: web::Payload) -> Result<Option<Value>, ApiError> {
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
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::Validation(vec![Issue::malformed_json(&e.to_string())]))
}
