//! `POST /webhook-endpoints`, `GET /webhook-endpoints`, `DELETE /webhook-endpoints/{id}`,
//! `POST /webhook-endpoints/{id}/enable` and `…/disable`: a merchant's endpoints in the mode of
//! its key. The signing secret is shown once, at creation.

use actix_web::{web, HttpResponse};
use domain::ids::EndpointId;
use domain::secret::Secret;
use domain::time::format_time;
use domain::webhook::Endpoint;
use serde_json::{json, Value};

use crate::auth::AuthenticatedMerchant;
use crate::body::read_json;
use crate::error::ApiError;
use crate::AppState;

/// An endpoint as the API and the CLI show it; with its secret only when just made or rotated.
pub fn endpoint_json(endpoint: &Endpoint, secret: Option<&Secret>) -> Value {
    let mut body = json!({
        "id": endpoint.id.to_string(),
        "url": endpoint.url,
        "events": endpoint.event_names(),
        "status": endpoint.status,
        "livemode": endpoint.livemode.is_live(),
        "merchantId": endpoint.merchant_id.to_string(),
        "createdAt": format_time(endpoint.created_at),
    });
    if let Some(reason) = &endpoint.disabled_reason {
        body["disabledReason"] = json!(reason);
    }
    if let Some(secret) = secret {
        body["secret"] = json!(secret.expose());
    }
    body
}

/// What `POST /webhook-endpoints` takes.
const NEW_ENDPOINT: &str = "{\"url\": string, \"events\"?: [string]}";

/// The endpoint asked for: its URL and event types (none: all).
fn new_endpoint(body: &Value) -> Result<(String, Vec<String>), ApiError> {
    let refused = |what: &str| ApiError::InvalidRequest(format!("{what}; expected {NEW_ENDPOINT}"));
    let object = body.as_object().ok_or_else(|| refused("the body is not a JSON object"))?;
    let url = object.get("url").and_then(Value::as_str).ok_or_else(|| refused("\"url\" must be a string"))?;
    let events = match object.get("events") {
        None => Vec::new(),
        Some(Value::Array(events)) => events
            .iter()
            .map(|e| e.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| refused("\"events\" must be a list of strings"))?,
        Some(_) => return Err(refused("\"events\" must be a list of strings")),
    };
    Ok((url.to_owned(), events))
}

/// `POST /webhook-endpoints` `{"url": "https://…", "events": ["order.completed", …]}` (events
/// optional: all).
pub async fn create(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (url, events) = new_endpoint(&read_json(payload, NEW_ENDPOINT).await?)?;
    let webhooks = state.webhooks.clone();
    let caller = merchant.0;
    let (endpoint, secret) =
        web::block(move || webhooks.add_endpoint(caller.merchant_id, caller.livemode, &url, &events)).await??;
    Ok(HttpResponse::Created().json(endpoint_json(&endpoint, Some(&secret))))
}

/// `GET /webhook-endpoints`
pub async fn list(state: web::Data<AppState>, merchant: AuthenticatedMerchant) -> Result<HttpResponse, ApiError> {
    let webhooks = state.webhooks.clone();
    let owner = (merchant.0.merchant_id, merchant.0.livemode);
    let endpoints = web::block(move || webhooks.endpoints(Some(owner))).await??;
    let data: Vec<Value> = endpoints.iter().map(|e| endpoint_json(e, None)).collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data })))
}

/// `DELETE /webhook-endpoints/{id}`
pub async fn remove(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: EndpointId = id.parse().map_err(|_| ApiError::NotFound)?;
    let webhooks = state.webhooks.clone();
    let owner = (merchant.0.merchant_id, merchant.0.livemode);
    web::block(move || webhooks.remove_endpoint(id, Some(owner))).await??;
    Ok(HttpResponse::Ok().json(json!({ "id": id.to_string(), "deleted": true })))
}

/// `POST /webhook-endpoints/{id}/enable`: the endpoint receives new events again (after a
/// `410 Gone`, say); deliveries cancelled meanwhile stay cancelled.
pub async fn enable(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    switch(state, merchant, id, true).await
}

/// `POST /webhook-endpoints/{id}/disable`: the endpoint receives nothing until enabled; its
/// pending deliveries end as cancelled.
pub async fn disable(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    switch(state, merchant, id, false).await
}

/// Enables or disables one of the merchant's endpoints in the key's mode; answers it as it is then.
async fn switch(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    id: web::Path<String>,
    enable: bool,
) -> Result<HttpResponse, ApiError> {
    let id: EndpointId = id.parse().map_err(|_| ApiError::NotFound)?;
    let webhooks = state.webhooks.clone();
    let owner = Some((merchant.0.merchant_id, merchant.0.livemode));
    let endpoint =
        web::block(
            move || {
                if enable {
                    webhooks.enable_endpoint(id, owner)
                } else {
                    webhooks.disable_endpoint(id, owner)
                }
            },
        )
        .await??;
    Ok(HttpResponse::Ok().json(endpoint_json(&endpoint, None)))
}
