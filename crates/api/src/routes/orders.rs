//! `GET /orders/{orderId}` and `POST /orders/{orderId}/cancel`: a merchant's view of its orders.
//! Another merchant's order, or one of the other mode, is a 404.

use actix_web::{web, HttpResponse};
use domain::checkout::format_time;
use domain::ids::OrderId;
use domain::session::{CheckoutRecord, SessionError};
use serde::Serialize;

use crate::auth::AuthenticatedMerchant;
use crate::error::ApiError;
use crate::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Card<'a> {
    brand: &'a str,
    last4: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LastAttempt<'a> {
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    decline_code: Option<&'static str>,
    card: Card<'a>,
    created_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payment<'a> {
    id: String,
    status: &'static str,
    amount: i64,
    currency: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_attempt: Option<LastAttempt<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    status: &'static str,
    mode: &'static str,
    expires_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    sku: &'a str,
    name: &'a str,
    quantity: i64,
    unit_amount: i64,
    amount: i64,
}

/// An order as the merchant API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Order<'a> {
    id: String,
    status: &'static str,
    livemode: bool,
    currency: &'a str,
    amount_total: i64,
    items: Vec<Item<'a>>,
    payment: Payment<'a>,
    session: Session,
    created_at: String,
    updated_at: String,
}

fn order(record: &CheckoutRecord) -> Order<'_> {
    Order {
        id: record.order_id.to_string(),
        status: record.state.order.as_str(),
        livemode: record.livemode.is_live(),
        currency: record.currency.as_str(),
        amount_total: record.amount_total,
        items: record
            .items
            .iter()
            .map(|i| Item {
                sku: &i.sku,
                name: &i.name,
                quantity: i.quantity,
                unit_amount: i.unit_amount,
                amount: i.amount,
            })
            .collect(),
        payment: Payment {
            id: record.payment_id.to_string(),
            status: record.state.payment.as_str(),
            amount: record.amount_total,
            currency: record.currency.as_str(),
            last_attempt: record.last_attempt.as_ref().map(|a| LastAttempt {
                outcome: if a.succeeded { "succeeded" } else { "failed" },
                decline_code: a.decline_code.map(|c| c.as_str()),
                card: Card { brand: &a.card_brand, last4: &a.card_last4 },
                created_at: format_time(a.created_at),
            }),
        },
        session: Session {
            status: record.state.session.as_str(),
            mode: record.mode.as_str(),
            expires_at: format_time(record.state.expires_at),
        },
        created_at: format_time(record.created_at),
        updated_at: format_time(record.updated_at),
    }
}

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
    let sessions = state.sessions.clone();
    let record = web::block(move || sessions.order(&merchant.0, id)).await??;
    Ok(HttpResponse::Ok().json(order(&record)))
}

/// `POST /orders/{orderId}/cancel`: ends an open checkout; cancelling again answers the same.
pub async fn cancel(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&id)?;
    let sessions = state.sessions.clone();
    match web::block(move || sessions.cancel_order(&merchant.0, id)).await?? {
        Ok(record) => Ok(HttpResponse::Ok().json(order(&record))),
        Err((_, refused)) => Err(ApiError::NotCancellable(refused.to_string())),
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::NotFound => ApiError::NotFound,
            SessionError::Store(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
