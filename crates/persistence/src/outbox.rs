//! The webhook outbox, written inside the transaction of the change that causes an event: the
//! event once, and a pending delivery for each enabled endpoint of the merchant and mode that is
//! subscribed to its type. Nothing is written when nobody listens.

/// Writes `$event` (a `&NewEvent`) with `$conn` inside the caller's transaction.
macro_rules! write_event {
    ($conn:ident, $event:expr) => {{
        use $crate::schema::{webhook_deliveries, webhook_endpoints, webhook_events};
        let event: &domain::webhook::NewEvent = $event;
        let merchant_id = event.merchant_id.to_string();
        let pattern = domain::webhook::subscription_pattern(event.event_type);
        let endpoints: Vec<String> = webhook_endpoints::table
            .filter(webhook_endpoints::merchant_id.eq(&merchant_id))
            .filter(webhook_endpoints::livemode.eq(event.livemode.is_live()))
            .filter(webhook_endpoints::status.eq(domain::webhook::EndpointStatus::Enabled.as_str()))
            .filter(webhook_endpoints::event_types.eq("*").or(webhook_endpoints::event_types.like(&pattern)))
            .order(webhook_endpoints::id)
            .select(webhook_endpoints::id)
            .load($conn)?;
        if !endpoints.is_empty() {
            let id = event.id.to_string();
            let at = event.created_at.naive_utc();
            diesel::insert_into(webhook_events::table)
                .values((
                    webhook_events::id.eq(&id),
                    webhook_events::merchant_id.eq(&merchant_id),
                    webhook_events::livemode.eq(event.livemode.is_live()),
                    webhook_events::event_type.eq(event.event_type.as_str()),
                    webhook_events::payload.eq(&event.payload),
                    webhook_events::created_at.eq(at),
                ))
                .execute($conn)?;
            for endpoint in &endpoints {
                diesel::insert_into(webhook_deliveries::table)
                    .values((
                        webhook_deliveries::event_id.eq(&id),
                        webhook_deliveries::endpoint_id.eq(endpoint),
                        webhook_deliveries::status.eq($crate::webhook::PENDING),
                        webhook_deliveries::attempts.eq(0),
                        webhook_deliveries::next_attempt_at.eq(at),
                        webhook_deliveries::created_at.eq(at),
                    ))
                    .execute($conn)?;
            }
        }
    }};
}

pub(crate) use write_event;
