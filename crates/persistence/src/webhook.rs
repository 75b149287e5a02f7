//! Webhook endpoints and deliveries: leases are compare-and-set updates, so several dispatchers
//! (replicas) never hold one delivery at once; each endpoint's oldest pending delivery goes first.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use domain::ids::{EndpointId, EventId, MerchantId};
use domain::livemode::Livemode;
use domain::ports::StoreError;
use domain::ports::WebhookStore;
use domain::webhook::{Added, AttemptEnd, DeliveryRecord, Due, Endpoint, EndpointStatus};

use crate::connection::AnyConnection;
use crate::db::Database;
use crate::error::{RepoError, TxEnd};
use crate::rows::{insert, NewWebhookEndpoint};
use crate::schema::{merchants, webhook_deliveries, webhook_endpoints, webhook_events};

/// A delivery not yet delivered nor given up (also written by the outbox and the PostgreSQL create).
pub(crate) const PENDING: &str = "pending";
const DELIVERED: &str = "delivered";
const FAILED: &str = "failed";
/// A delivery whose endpoint was removed or disabled before it was delivered.
const CANCELLED: &str = "cancelled";

/// Another dispatcher leased part of what this one meant to: it leaves the endpoint alone.
struct Overtaken;

/// Cancels the pending deliveries of `endpoint` inside the caller's transaction.
fn cancel_pending(conn: &mut AnyConnection, endpoint: &str) -> QueryResult<usize> {
    diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(endpoint))
            .filter(webhook_deliveries::status.eq(PENDING)),
    )
    .set((webhook_deliveries::status.eq(CANCELLED), webhook_deliveries::leased_until.eq(None::<NaiveDateTime>)))
    .execute(conn)
}

/// Implements [`WebhookStore`] on either backend.
#[derive(Debug, Clone)]
pub struct WebhookRepository {
    db: Database,
}

impl WebhookRepository {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct EndpointRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    url: String,
    event_types: String,
    status: String,
    disabled_reason: Option<String>,
    secret_version: i32,
    previous_until: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
}

impl EndpointRow {
    fn into_endpoint(self) -> Result<Endpoint, RepoError> {
        let corrupt = |v: &str| RepoError::Corrupt(format!("stored id {v:?}"));
        Ok(Endpoint {
            id: self.id.parse().map_err(|_| corrupt(&self.id))?,
            merchant_id: self.merchant_id.parse().map_err(|_| corrupt(&self.merchant_id))?,
            livemode: Livemode::from_live(self.livemode),
            url: self.url,
            event_types: self.event_types,
            status: EndpointStatus::from_stored(&self.status),
            disabled_reason: self.disabled_reason,
            secret_version: self.secret_version,
            previous_until: self.previous_until.map(|t| t.and_utc()),
            created_at: self.created_at.and_utc(),
        })
    }
}

fn endpoints(rows: Vec<EndpointRow>) -> Result<Vec<Endpoint>, RepoError> {
    rows.into_iter().map(EndpointRow::into_endpoint).collect()
}

/// Adds `endpoint` unless its merchant is unknown or already has `max` endpoints in its mode.
fn add_endpoint(conn: &mut AnyConnection, endpoint: &NewWebhookEndpoint<'_>, max: i64) -> Result<Added, RepoError> {
    // Updating the merchant's row locks it (PostgreSQL), so that two concurrent adds cannot both
    // see room for one more; SQLite runs writes one at a time anyway.
    let found = diesel::update(merchants::table.find(&endpoint.merchant_id))
        .set(merchants::status.eq(merchants::status))
        .execute(conn)?;
    if found == 0 {
        return Ok(Added::NoMerchant);
    }
    let existing: i64 = webhook_endpoints::table
        .filter(webhook_endpoints::merchant_id.eq(&endpoint.merchant_id))
        .filter(webhook_endpoints::livemode.eq(endpoint.livemode))
        .filter(webhook_endpoints::status.ne(EndpointStatus::Removed.as_str()))
        .count()
        .get_result(conn)?;
    if existing >= max {
        return Ok(Added::LimitReached);
    }
    insert(conn, webhook_endpoints::table, endpoint)?;
    Ok(Added::Added)
}

/// The endpoints not removed, of one merchant and mode or of all.
fn list_endpoints(conn: &mut AnyConnection, owner: Option<(String, bool)>) -> Result<Vec<Endpoint>, RepoError> {
    let mut query = webhook_endpoints::table
        .filter(webhook_endpoints::status.ne(EndpointStatus::Removed.as_str()))
        .order(webhook_endpoints::id)
        .select(EndpointRow::as_select())
        .into_boxed();
    if let Some((merchant, livemode)) = owner {
        query =
            query.filter(webhook_endpoints::merchant_id.eq(merchant)).filter(webhook_endpoints::livemode.eq(livemode));
    }
    endpoints(query.load(conn)?)
}

/// Removes the endpoint `id` (if it is `owner`'s, when given) and cancels its pending deliveries;
/// answers whether it was there to remove.
fn remove_endpoint(
    conn: &mut AnyConnection,
    id: &str,
    owner: Option<&(String, bool)>,
    at: NaiveDateTime,
) -> Result<bool, RepoError> {
    let mut target = diesel::update(webhook_endpoints::table)
        .filter(webhook_endpoints::id.eq(id))
        .filter(webhook_endpoints::status.ne(EndpointStatus::Removed.as_str()))
        .into_boxed();
    if let Some((merchant, livemode)) = owner {
        target = target
            .filter(webhook_endpoints::merchant_id.eq(merchant))
            .filter(webhook_endpoints::livemode.eq(*livemode));
    }
    let removed = target
        .set((webhook_endpoints::status.eq(EndpointStatus::Removed.as_str()), webhook_endpoints::updated_at.eq(at)))
        .execute(conn)?;
    if removed == 1 {
        cancel_pending(conn, id)?;
    }
    Ok(removed == 1)
}

/// Enables or disables the endpoint `id` (if it is `owner`'s, when given): enabling clears the
/// reason it was disabled and changes no delivery; disabling an enabled endpoint records
/// `disabled_reason` and cancels its pending deliveries. The endpoint as it then stands.
fn set_endpoint_enabled(
    conn: &mut AnyConnection,
    id: &str,
    owner: Option<&(String, bool)>,
    enabled: bool,
    disabled_reason: &str,
    at: NaiveDateTime,
) -> Result<Option<Endpoint>, RepoError> {
    let mut target = diesel::update(webhook_endpoints::table)
        .filter(webhook_endpoints::id.eq(id.to_owned()))
        .filter(webhook_endpoints::status.ne(EndpointStatus::Removed.as_str()))
        .into_boxed();
    let mut found = webhook_endpoints::table
        .filter(webhook_endpoints::id.eq(id.to_owned()))
        .filter(webhook_endpoints::status.ne(EndpointStatus::Removed.as_str()))
        .select(EndpointRow::as_select())
        .into_boxed();
    if let Some((merchant, livemode)) = owner {
        target = target
            .filter(webhook_endpoints::merchant_id.eq(merchant.clone()))
            .filter(webhook_endpoints::livemode.eq(*livemode));
        found = found
            .filter(webhook_endpoints::merchant_id.eq(merchant.clone()))
            .filter(webhook_endpoints::livemode.eq(*livemode));
    }
    if enabled {
        target
            .set((
                webhook_endpoints::status.eq(EndpointStatus::Enabled.as_str()),
                webhook_endpoints::disabled_reason.eq(None::<String>),
                webhook_endpoints::updated_at.eq(at),
            ))
            .execute(conn)?;
    } else {
        let disabled = target
            .filter(webhook_endpoints::status.eq(EndpointStatus::Enabled.as_str()))
            .set((
                webhook_endpoints::status.eq(EndpointStatus::Disabled.as_str()),
                webhook_endpoints::disabled_reason.eq(disabled_reason.to_owned()),
                webhook_endpoints::updated_at.eq(at),
            ))
            .execute(conn)?;
        if disabled == 1 {
            cancel_pending(conn, id)?;
        }
    }
    let row: Option<EndpointRow> = found.get_result(conn).optional()?;
    row.map(EndpointRow::into_endpoint).transpose()
}

/// Starts a new signing secret version for the endpoint `id`; the previous one also signs until
/// `previous_until`.
fn rotate_secret(
    conn: &mut AnyConnection,
    id: &str,
    previous_until: NaiveDateTime,
    at: NaiveDateTime,
) -> Result<Option<Endpoint>, RepoError> {
    let not_removed =
        webhook_endpoints::table.find(id).filter(webhook_endpoints::status.ne(EndpointStatus::Removed.as_str()));
    diesel::update(not_removed)
        .set((
            webhook_endpoints::secret_version.eq(webhook_endpoints::secret_version + 1),
            webhook_endpoints::previous_until.eq(previous_until),
            webhook_endpoints::updated_at.eq(at),
        ))
        .execute(conn)?;
    let row: Option<EndpointRow> = not_removed.select(EndpointRow::as_select()).get_result(conn).optional()?;
    row.map(EndpointRow::into_endpoint).transpose()
}

/// Enabled endpoints whose oldest pending delivery is due at `now` and held by nobody, the
/// longest waiting first.
fn due_endpoints(conn: &mut AnyConnection, now: NaiveDateTime, limit: i64) -> Result<Vec<EndpointId>, RepoError> {
    // Each endpoint's head of line (its oldest pending delivery), from the partial index…
    let heads: Vec<(String, Option<String>)> = webhook_deliveries::table
        .filter(webhook_deliveries::status.eq(PENDING))
        .group_by(webhook_deliveries::endpoint_id)
        .select((webhook_deliveries::endpoint_id, diesel::dsl::min(webhook_deliveries::event_id)))
        .load(conn)?;
    let events: Vec<String> = heads.iter().filter_map(|(_, event)| event.clone()).collect();
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // …then those of them that are due, held by nobody, for an enabled endpoint.
    let due: Vec<(String, String)> = webhook_deliveries::table
        .inner_join(webhook_endpoints::table)
        .filter(webhook_deliveries::event_id.eq_any(&events))
        .filter(webhook_deliveries::status.eq(PENDING))
        .filter(webhook_deliveries::next_attempt_at.le(now))
        .filter(webhook_deliveries::leased_until.is_null().or(webhook_deliveries::leased_until.lt(now)))
        .filter(webhook_endpoints::status.eq(EndpointStatus::Enabled.as_str()))
        .order(webhook_deliveries::next_attempt_at)
        .select((webhook_deliveries::endpoint_id, webhook_deliveries::event_id))
        .load(conn)?;
    due.into_iter()
        .filter(|pair| heads.iter().any(|(endpoint, event)| *endpoint == pair.0 && event.as_ref() == Some(&pair.1)))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|(endpoint, _)| endpoint.parse().map_err(|_| RepoError::Corrupt(format!("endpoint id {endpoint:?}"))))
        .collect()
}

/// Leases the endpoint's due deliveries, at most `most`, from the head of its line on, until
/// `lease_until`; ends the transaction with `Overtaken` if another dispatcher took some of them.
fn lease_next(
    conn: &mut AnyConnection,
    endpoint: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    most: i64,
) -> Result<Vec<Due>, TxEnd<Overtaken>> {
    let row: Option<EndpointRow> = webhook_endpoints::table
        .find(endpoint)
        .filter(webhook_endpoints::status.eq(EndpointStatus::Enabled.as_str()))
        .select(EndpointRow::as_select())
        .get_result(conn)
        .optional()?;
    let Some(row) = row else { return Ok(Vec::new()) };
    // The endpoint's oldest pending deliveries, in order; those of them from the head on that are
    // due and held by nobody.
    let line: Vec<(String, NaiveDateTime, Option<NaiveDateTime>)> = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint))
        .filter(webhook_deliveries::status.eq(PENDING))
        .order(webhook_deliveries::event_id)
        .select((webhook_deliveries::event_id, webhook_deliveries::next_attempt_at, webhook_deliveries::leased_until))
        .limit(most)
        .load(conn)?;
    let ready: Vec<String> = line
        .into_iter()
        .take_while(|(_, next, leased)| *next <= now && leased.is_none_or(|until| until < now))
        .map(|(event, ..)| event)
        .collect();
    if ready.is_empty() {
        return Ok(Vec::new());
    }
    let taken = diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(endpoint))
            .filter(webhook_deliveries::event_id.eq_any(&ready))
            .filter(webhook_deliveries::status.eq(PENDING))
            .filter(webhook_deliveries::leased_until.is_null().or(webhook_deliveries::leased_until.lt(now))),
    )
    .set(webhook_deliveries::leased_until.eq(lease_until))
    .execute(conn)?;
    if taken != ready.len() {
        // Another dispatcher leased some of them meanwhile: taking the rest could send them out of
        // order. Leave the endpoint to it.
        return Err(TxEnd::Stop(Overtaken));
    }
    let rows: Vec<(String, i32, String, NaiveDateTime)> = webhook_deliveries::table
        .inner_join(webhook_events::table)
        .filter(webhook_deliveries::endpoint_id.eq(endpoint))
        .filter(webhook_deliveries::event_id.eq_any(&ready))
        .order(webhook_deliveries::event_id)
        .select((
            webhook_deliveries::event_id,
            webhook_deliveries::attempts,
            webhook_events::payload,
            webhook_events::created_at,
        ))
        .load(conn)?;
    let endpoint = row.into_endpoint()?;
    rows.into_iter()
        .map(|(event, failures, payload, created_at)| {
            Ok(Due {
                event_id: event.parse::<EventId>().map_err(|_| RepoError::Corrupt(format!("event id {event:?}")))?,
                endpoint: endpoint.clone(),
                payload,
                event_created_at: created_at.and_utc(),
                failures,
            })
        })
        .collect()
}

/// Records how the attempts of one endpoint's leased deliveries ended (`ends`), and releases the
/// leases of those not sent (`unsent`).
fn record_attempts(
    conn: &mut AnyConnection,
    endpoint: &str,
    ends: &[(String, AttemptEnd)],
    unsent: &[String],
    at: NaiveDateTime,
) -> Result<(), RepoError> {
    let attempts = webhook_deliveries::attempts + 1;
    // Delivered: one update per answer status (nearly always one in all).
    let mut delivered: Vec<(u16, Vec<&String>)> = Vec::new();
    for (event, end) in ends {
        if let AttemptEnd::Delivered(status) = end {
            match delivered.iter_mut().find(|(s, _)| s == status) {
                Some((_, events)) => events.push(event),
                None => delivered.push((*status, vec![event])),
            }
        }
    }
    for (status, events) in &delivered {
        diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::endpoint_id.eq(endpoint))
                .filter(webhook_deliveries::event_id.eq_any(events)),
        )
        .set((
            webhook_deliveries::status.eq(DELIVERED),
            webhook_deliveries::attempts.eq(attempts),
            webhook_deliveries::last_status.eq(i32::from(*status)),
            webhook_deliveries::last_error.eq(None::<String>),
            webhook_deliveries::delivered_at.eq(at),
            webhook_deliveries::leased_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    }
    for (event, end) in ends {
        // A delivery cancelled while it was in flight stays cancelled, unless it arrived.
        let still_pending =
            webhook_deliveries::table.find((endpoint, event)).filter(webhook_deliveries::status.eq(PENDING));
        match end {
            AttemptEnd::Delivered(_) => {}
            AttemptEnd::Failed { status, error, retry_at } => {
                let (state, next) = match retry_at {
                    Some(when) => (PENDING, when.naive_utc()),
                    None => (FAILED, at),
                };
                diesel::update(still_pending)
                    .set((
                        webhook_deliveries::status.eq(state),
                        webhook_deliveries::attempts.eq(attempts),
                        webhook_deliveries::last_status.eq(status.map(i32::from)),
                        webhook_deliveries::last_error.eq(error.chars().take(500).collect::<String>()),
                        webhook_deliveries::next_attempt_at.eq(next),
                        webhook_deliveries::leased_until.eq(None::<NaiveDateTime>),
                    ))
                    .execute(conn)?;
            }
            AttemptEnd::Gone => {
                diesel::update(still_pending)
                    .set((
                        webhook_deliveries::status.eq(FAILED),
                        webhook_deliveries::attempts.eq(attempts),
                        webhook_deliveries::last_status.eq(410),
                        webhook_deliveries::last_error.eq("410 Gone: the endpoint is disabled"),
                        webhook_deliveries::leased_until.eq(None::<NaiveDateTime>),
                    ))
                    .execute(conn)?;
                diesel::update(webhook_endpoints::table.find(endpoint))
                    .set((
                        webhook_endpoints::status.eq(EndpointStatus::Disabled.as_str()),
                        webhook_endpoints::disabled_reason.eq("answered 410 Gone"),
                        webhook_endpoints::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                cancel_pending(conn, endpoint)?;
            }
        }
    }
    if !unsent.is_empty() {
        diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::endpoint_id.eq(endpoint))
                .filter(webhook_deliveries::event_id.eq_any(unsent)),
        )
        .set(webhook_deliveries::leased_until.eq(None::<NaiveDateTime>))
        .execute(conn)?;
    }
    Ok(())
}

/// The newest deliveries, of one status or of all.
fn deliveries(conn: &mut AnyConnection, status: Option<&str>, limit: i64) -> Result<Vec<DeliveryRecord>, RepoError> {
    type Row = (String, String, String, String, i32, Option<i32>, Option<String>, NaiveDateTime, NaiveDateTime);
    let mut query = webhook_deliveries::table
        .inner_join(webhook_events::table)
        .select((
            webhook_deliveries::event_id,
            webhook_deliveries::endpoint_id,
            webhook_events::event_type,
            webhook_deliveries::status,
            webhook_deliveries::attempts,
            webhook_deliveries::last_status,
            webhook_deliveries::last_error,
            webhook_deliveries::next_attempt_at,
            webhook_deliveries::created_at,
        ))
        .order(webhook_deliveries::event_id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(webhook_deliveries::status.eq(status.to_owned()));
    }
    let rows: Vec<Row> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(event_id, endpoint_id, event_type, status, attempts, last_status, last_error, next, created)| {
            DeliveryRecord {
                next_attempt_at: (status == PENDING).then(|| domain::time::format_time(next.and_utc())),
                event_id,
                endpoint_id,
                event_type,
                status,
                attempts,
                last_status,
                last_error,
                created_at: domain::time::format_time(created.and_utc()),
            }
        })
        .collect())
}

/// Makes the event's deliveries to enabled endpoints pending again, due at `now`, with no
/// attempts; answers how many.
fn resend(conn: &mut AnyConnection, event: &str, now: NaiveDateTime) -> Result<usize, RepoError> {
    let enabled = webhook_endpoints::table
        .filter(webhook_endpoints::status.eq(EndpointStatus::Enabled.as_str()))
        .select(webhook_endpoints::id);
    Ok(diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::event_id.eq(event))
            .filter(webhook_deliveries::endpoint_id.eq_any(enabled)),
    )
    .set((
        webhook_deliveries::status.eq(PENDING),
        webhook_deliveries::attempts.eq(0),
        webhook_deliveries::next_attempt_at.eq(now),
        webhook_deliveries::leased_until.eq(None::<NaiveDateTime>),
        webhook_deliveries::last_error.eq(None::<String>),
    ))
    .execute(conn)?)
}

/// `(merchant id, livemode)` as stored.
fn stored_owner(owner: Option<(MerchantId, Livemode)>) -> Option<(String, bool)> {
    owner.map(|(merchant, livemode)| (merchant.to_string(), livemode.is_live()))
}

impl WebhookStore for WebhookRepository {
    fn add_endpoint(&self, endpoint: &Endpoint, max: i64) -> Result<Added, StoreError> {
        let endpoint = endpoint.clone();
        Ok(self.db.write(move |conn| add_endpoint(conn, &NewWebhookEndpoint::of(&endpoint), max))?)
    }

    fn endpoints(&self, owner: Option<(MerchantId, Livemode)>) -> Result<Vec<Endpoint>, StoreError> {
        Ok(list_endpoints(&mut *self.db.conn()?, stored_owner(owner))?)
    }

    fn remove_endpoint(
        &self,
        id: EndpointId,
        owner: Option<(MerchantId, Livemode)>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (id, owner, at) = (id.to_string(), stored_owner(owner), at.naive_utc());
        Ok(self.db.write(move |conn| remove_endpoint(conn, &id, owner.as_ref(), at))?)
    }

    fn set_endpoint_enabled(
        &self,
        id: EndpointId,
        owner: Option<(MerchantId, Livemode)>,
        enabled: bool,
        disabled_reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Endpoint>, StoreError> {
        let (id, owner, reason, at) = (id.to_string(), stored_owner(owner), disabled_reason.to_owned(), at.naive_utc());
        Ok(self.db.write(move |conn| set_endpoint_enabled(conn, &id, owner.as_ref(), enabled, &reason, at))?)
    }

    fn rotate_secret(
        &self,
        id: EndpointId,
        previous_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Option<Endpoint>, StoreError> {
        let conn = &mut *self.db.conn()?;
        Ok(rotate_secret(conn, &id.to_string(), previous_until.naive_utc(), at.naive_utc())?)
    }

    fn due_endpoints(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<EndpointId>, StoreError> {
        Ok(due_endpoints(&mut *self.db.conn()?, now.naive_utc(), limit)?)
    }

    fn lease_next(
        &self,
        endpoint: EndpointId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        most: i64,
    ) -> Result<Vec<Due>, StoreError> {
        let (endpoint, now, lease_until) = (endpoint.to_string(), now.naive_utc(), lease_until.naive_utc());
        match self.db.write(move |conn| lease_next(conn, &endpoint, now, lease_until, most)) {
            Ok(due) => Ok(due),
            Err(TxEnd::Stop(Overtaken)) => Ok(Vec::new()),
            Err(TxEnd::Repo(error)) => Err(error.into()),
        }
    }

    fn record_attempts(&self, ends: &[(Due, AttemptEnd)], unsent: &[Due], at: DateTime<Utc>) -> Result<(), StoreError> {
        let Some(endpoint) =
            ends.iter().map(|(due, _)| due).chain(unsent).next().map(|due| due.endpoint.id.to_string())
        else {
            return Ok(());
        };
        let ends: Vec<(String, AttemptEnd)> =
            ends.iter().map(|(due, end)| (due.event_id.to_string(), end.clone())).collect();
        let unsent: Vec<String> = unsent.iter().map(|due| due.event_id.to_string()).collect();
        let at = at.naive_utc();
        Ok(self.db.write(move |conn| record_attempts(conn, &endpoint, &ends, &unsent, at))?)
    }

    fn deliveries(&self, status: Option<&str>, limit: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(deliveries(&mut *self.db.conn()?, status, limit)?)
    }

    fn resend(&self, event: EventId, now: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(resend(&mut *self.db.conn()?, &event.to_string(), now.naive_utc())?)
    }
}
