//! The webhook outbox, written inside the transaction of the change that causes an event: the
//! event once, and a pending delivery for each enabled endpoint of the merchant and mode that is
//! subscribed to its type. Nothing is written when nobody listens.
//!
//! These two statements are the only writers of `webhook_events` and `webhook_deliveries`, on
//! both backends and on both ways a checkout is created (step by step, and PostgreSQL's one
//! statement), so the rows and the subscription filter are defined here once.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::sql_types::{Bool, Integer, Text, Timestamp};
use diesel::sqlite::Sqlite;
use diesel::IntoSql;
use domain::webhook::{subscription_pattern, EndpointStatus, NewEvent};

use crate::connection::{execute, get_result, AnyConnection};
use crate::error::RepoError;
use crate::schema::{webhook_deliveries, webhook_endpoints, webhook_events};
use crate::webhook::PENDING;

/// An event on its way into the outbox.
pub(crate) struct Outbox<'a> {
    id: String,
    merchant_id: String,
    livemode: bool,
    event_type: &'static str,
    payload: &'a str,
    at: NaiveDateTime,
    pattern: String,
}

/// A statement of the outbox: it runs on either backend and is part of PostgreSQL's create.
pub(crate) trait OutboxStatement<'a>: QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + 'a {}

impl<'a, T> OutboxStatement<'a> for T where T: QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + 'a {}

/// Whether an endpoint receives an event of the merchant, mode and subscription pattern given.
#[diesel::dsl::auto_type(no_type_alias)]
fn listening<'a>(merchant_id: &'a str, livemode: bool, pattern: &'a str) -> _ {
    let enabled: &'static str = EndpointStatus::Enabled.as_str();
    let every: &'static str = "*";
    webhook_endpoints::merchant_id
        .eq(merchant_id)
        .and(webhook_endpoints::livemode.eq(livemode))
        .and(webhook_endpoints::status.eq(enabled))
        .and(webhook_endpoints::event_types.eq(every).or(webhook_endpoints::event_types.like(pattern)))
}

impl<'a> Outbox<'a> {
    pub(crate) fn of(event: &'a NewEvent) -> Self {
        Self {
            id: event.id.to_string(),
            merchant_id: event.merchant_id.to_string(),
            livemode: event.livemode.is_live(),
            event_type: event.event_type.as_str(),
            payload: &event.payload,
            at: event.created_at.naive_utc(),
            pattern: subscription_pattern(event.event_type),
        }
    }

    /// The event, if at least one endpoint receives it: once, however many do (`DISTINCT` over
    /// values that are the same in every row; not `LIMIT 1`, which SQLite would prepare again on
    /// every execution).
    pub(crate) fn insert_event(&self) -> impl OutboxStatement<'_> {
        webhook_endpoints::table
            .filter(listening(&self.merchant_id, self.livemode, &self.pattern))
            .select((
                self.id.as_str().into_sql::<Text>(),
                self.merchant_id.as_str().into_sql::<Text>(),
                self.livemode.into_sql::<Bool>(),
                self.event_type.into_sql::<Text>(),
                self.payload.into_sql::<Text>(),
                self.at.into_sql::<Timestamp>(),
            ))
            .distinct()
            .insert_into(webhook_events::table)
            .into_columns((
                webhook_events::id,
                webhook_events::merchant_id,
                webhook_events::livemode,
                webhook_events::event_type,
                webhook_events::payload,
                webhook_events::created_at,
            ))
    }

    /// A pending delivery, due now, for each endpoint that receives the event.
    pub(crate) fn insert_deliveries(&self) -> impl OutboxStatement<'_> {
        webhook_endpoints::table
            .filter(listening(&self.merchant_id, self.livemode, &self.pattern))
            .select((
                self.id.as_str().into_sql::<Text>(),
                webhook_endpoints::id,
                PENDING.into_sql::<Text>(),
                0.into_sql::<Integer>(),
                self.at.into_sql::<Timestamp>(),
                self.at.into_sql::<Timestamp>(),
            ))
            .insert_into(webhook_deliveries::table)
            .into_columns((
                webhook_deliveries::event_id,
                webhook_deliveries::endpoint_id,
                webhook_deliveries::status,
                webhook_deliveries::attempts,
                webhook_deliveries::next_attempt_at,
                webhook_deliveries::created_at,
            ))
    }

    /// Writes the event inside the caller's transaction. Asks first whether any endpoint listens:
    /// mostly none does, and that read is cheaper than an insert that finds nobody to write for.
    pub(crate) fn write(&self, conn: &mut AnyConnection) -> Result<(), RepoError> {
        let listeners = webhook_endpoints::table.filter(listening(&self.merchant_id, self.livemode, &self.pattern));
        let heard: bool = get_result(conn, diesel::select(diesel::dsl::exists(listeners)))?;
        if heard && execute(conn, self.insert_event())? > 0 {
            execute(conn, self.insert_deliveries())?;
        }
        Ok(())
    }
}

/// Writes `event` to the outbox inside the caller's transaction.
pub(crate) fn write_event(conn: &mut AnyConnection, event: &NewEvent) -> Result<(), RepoError> {
    Outbox::of(event).write(conn)
}
