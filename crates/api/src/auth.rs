//! The bearer-key guard: an extractor, so a handler's signature shows that it needs a merchant.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use domain::merchant::{authorize, parse_bearer, Caller};

use crate::error::ApiError;
use crate::AppState;

/// The merchant behind the request's secret key (active, key not revoked).
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedMerchant(pub Caller);

impl FromRequest for AuthenticatedMerchant {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // A header that is not visible ASCII is as good as missing a key.
        let header = req.headers().get(AUTHORIZATION).map(|value| value.to_str().unwrap_or_default().to_owned());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal("application state is missing".into()))?;
            let key = parse_bearer(header.as_deref())?;
            let hash = key.hash();
            let merchants = state.merchants.clone();
            let found = web::block(move || merchants.find_api_key(&hash)).await??;
            Ok(AuthenticatedMerchant(authorize(&key, found)?))
        })
    }
}
