//! The bearer-key guard. Its extractor checks the key's shape and checksum without any I/O (401 or
//! 403 at once for a malformed or publishable key); whether the key exists and may act is decided
//! by the use case, in the same read that looks up the idempotency key. The merchant's request
//! limit is spent once the key is known to be its own (`ratelimit`); failed authentications are
//! counted per client address by `ratelimit::authentication` around these endpoints.

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use domain::checkout::Authenticator;
use domain::merchant::parse_bearer;
use domain::secret::ApiKeySecret;

use crate::error::ApiError;
use crate::observe::MerchantTag;
use crate::ratelimit::Limits;

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

/// The merchant behind the request's secret key: active, key not revoked, and within its request
/// rate. For endpoints whose use case does not look the key up itself. Needs the [`Authenticator`]
/// and the [`Limits`] as app data of their own.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedMerchant(pub domain::merchant::Caller);

impl FromRequest for AuthenticatedMerchant {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let key = PresentedKey::from_request(req, payload).into_inner();
        let authenticator = req.app_data::<web::Data<Authenticator>>().cloned();
        let limits = req.app_data::<web::Data<Limits>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let key = key?;
            let (Some(authenticator), Some(limits)) = (authenticator, limits) else {
                return Err(ApiError::Internal("the key guard is not configured".into()));
            };
            let caller = web::block(move || authenticator.authenticate(&key.0))
                .await?
                .map_err(|e| ApiError::from_checkout(e, &serde_json::Value::Null))?;
            req.extensions_mut().insert(MerchantTag(caller.merchant_id.to_string()));
            limits.admit_merchant(&caller)?;
            Ok(AuthenticatedMerchant(caller))
        })
    }
}
