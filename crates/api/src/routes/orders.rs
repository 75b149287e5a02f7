//! `GET /orders/{orderId}` and `POST /orders/{orderId}/cancel`: a merchant's view of its orders.
//! Another merchant's order, or one of the other mode, is a 404.

use actix_web::{web, HttpResponse};
use domain::ids::OrderId;

use crate::auth::AuthenticatedMerchant;
use crate::error::ApiError;
use crate::views::OrderView;
use crate::AppState;

fn order_id(text: &str) -> Result<OrderId, ApiError> {
    text.parse().map_err(|_| ApiError::NotFound)
}

/// `GET /orders/{orderId}`
pub async fn get(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&id)?;
    let orders = state.orders.clone();
    let record = web::block(move || orders.order(&merchant.0, id)).await??;
    Ok(HttpResponse::Ok().json(OrderView::from(&record)))
}

/// `POST /orders/{orderId}/cancel`: ends an open checkout; cancelling again answers the same.
pub async fn cancel(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&id)?;
    let orders = state.orders.clone();
    let record = web::block(move || orders.cancel_order(&merchant.0, id)).await??.map_err(|(_, refused)| refused)?;
    Ok(HttpResponse::Ok().json(OrderView::from(&record)))
}
