//! `GET /orders/{orderId}` and `POST /orders/{orderId}/cancel`: a merchant's view of its orders.
//! Another merchant's order, or one of the other mode, is a 404.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest, HttpResponse};
use domain::ids::OrderId;
use domain::merchant::Caller;

use crate::auth::AuthenticatedMerchant;
use crate::error::ApiError;
use crate::views::OrderView;
use crate::AppState;

/// The authenticated merchant and the order its path names (`{order_id}`): the key is judged
/// first (401/403), then a path that names no order id is a 404.
#[derive(Debug, Clone)]
pub struct MerchantOrder(Caller, OrderId);

impl FromRequest for MerchantOrder {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let merchant = AuthenticatedMerchant::from_request(req, payload);
        let id = req.match_info().get("order_id").and_then(|text| text.parse().ok());
        Box::pin(async move {
            let AuthenticatedMerchant(caller) = merchant.await?;
            Ok(MerchantOrder(caller, id.ok_or(ApiError::NotFound)?))
        })
    }
}

/// `GET /orders/{orderId}`
pub async fn get(
    state: web::Data<AppState>,
    MerchantOrder(caller, id): MerchantOrder,
) -> Result<HttpResponse, ApiError> {
    let orders = state.orders.clone();
    let record = web::block(move || orders.order(&caller, id)).await??;
    Ok(HttpResponse::Ok().json(OrderView::from(&record)))
}

/// `POST /orders/{orderId}/cancel`: ends an open checkout; cancelling again answers the same.
pub async fn cancel(
    state: web::Data<AppState>,
    MerchantOrder(caller, id): MerchantOrder,
) -> Result<HttpResponse, ApiError> {
    let orders = state.orders.clone();
    let cancelled = web::block(move || orders.cancel_order(&caller, id)).await??;
    let record = cancelled.map_err(|(_, refused)| refused)?;
    Ok(HttpResponse::Ok().json(OrderView::from(&record)))
}
