//! The bearer-key guard. Its extractor checks the key's shape and checksum without any I/O (401 or
//! 403 at once for a malformed or publishable key); whether the key exists and may act is decided
//! by the use case, in the same read that looks up the idempotency key.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest};
use domain::merchant::parse_bearer;
use domain::secret::ApiKeySecret;

use crate::error::ApiError;

/// A well-formed secret key from `Authorization: Bearer …`, not yet looked up.
#[derive(Debug, Clone)]
pub struct PresentedKey(pub ApiKeySecret);

impl FromRequest for PresentedKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // A header that is not visible ASCII is as good as a missing one.
        let header = req.headers().get(AUTHORIZATION).map(|value| value.to_str().unwrap_or_default());
        ready(parse_bearer(header).map(PresentedKey).map_err(ApiError::from))
    }
}
