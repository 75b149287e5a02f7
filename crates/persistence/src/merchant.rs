//! The merchant aggregate: merchants and their secret keys (stored as hashes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use domain::ids::{ApiKeyId, MerchantId};
use domain::livemode::Livemode;
use domain::merchant::{ApiKeyRecord, ApiKeySummary, Merchant, MerchantStatus};
use domain::ports::{MerchantStore, StoreError};
use domain::secret::SecretHash;

use crate::connection::AnyConnection;
use crate::db::Database;
use crate::error::RepoError;
use crate::rows::{insert, NewApiKey, NewMerchant};
use crate::schema::{api_keys, merchants};

/// Implements [`MerchantStore`] on either backend.
#[derive(Debug, Clone)]
pub struct MerchantRepository {
    db: Database,
    usage: Option<Arc<KeyUsage>>,
}

impl MerchantRepository {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db, usage: None }
    }

    /// A repository that notes in `usage` each usable key it finds by its secret.
    pub fn noting_use(db: Database, usage: Arc<KeyUsage>) -> Self {
        Self { db, usage: Some(usage) }
    }
}

/// When each key was last found usable, kept in memory: a request costs no write, and
/// [`KeyUsage::flush`] writes what was seen in one transaction (each replica, every sweep).
#[derive(Debug, Default)]
pub struct KeyUsage {
    seen: Mutex<HashMap<ApiKeyId, DateTime<Utc>>>,
}

impl KeyUsage {
    /// Notes that `key` authenticated a request at `now`, if it may act.
    pub fn note(&self, key: &ApiKeyRecord, now: DateTime<Utc>) {
        if key.usable_at(now) {
            if let Ok(mut seen) = self.seen.lock() {
                seen.insert(key.id, now);
            }
        }
    }

    /// Writes the uses noted since the last flush; returns how many keys changed. Uses that
    /// could not be written are kept for the next flush.
    pub fn flush(&self, store: &dyn MerchantStore) -> Result<usize, StoreError> {
        let uses: Vec<(ApiKeyId, DateTime<Utc>)> = match self.seen.lock() {
            Ok(mut seen) => seen.drain().collect(),
            Err(_) => return Ok(0),
        };
        store.record_key_use(&uses).inspect_err(|_| {
            if let Ok(mut seen) = self.seen.lock() {
                for (id, at) in &uses {
                    seen.entry(*id).or_insert(*at);
                }
            }
        })
    }
}

fn parse<T: std::str::FromStr>(text: &str) -> Result<T, RepoError> {
    text.parse().map_err(|_| RepoError::Corrupt(format!("stored id {text:?}")))
}

/// What authentication reads of a key and its merchant.
#[derive(Queryable, Selectable)]
#[diesel(table_name = api_keys)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct KeyRecordRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    revoked_at: Option<NaiveDateTime>,
    expires_at: Option<NaiveDateTime>,
    #[diesel(select_expression = merchants::status)]
    merchant_status: String,
}

impl KeyRecordRow {
    pub(crate) fn into_record(self) -> Result<ApiKeyRecord, RepoError> {
        Ok(ApiKeyRecord {
            id: parse(&self.id)?,
            merchant_id: parse(&self.merchant_id)?,
            livemode: Livemode::from_live(self.livemode),
            revoked_at: self.revoked_at.map(|t| t.and_utc()),
            expires_at: self.expires_at.map(|t| t.and_utc()),
            merchant_status: MerchantStatus::from_stored(&self.merchant_status),
        })
    }
}

/// A key as listed to the operator.
#[derive(Queryable, Selectable)]
#[diesel(table_name = api_keys)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct KeyRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    hint: String,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
    expires_at: Option<NaiveDateTime>,
    last_used_at: Option<NaiveDateTime>,
}

impl KeyRow {
    fn into_summary(self) -> Result<ApiKeySummary, RepoError> {
        Ok(ApiKeySummary {
            id: parse(&self.id)?,
            merchant_id: parse(&self.merchant_id)?,
            livemode: Livemode::from_live(self.livemode),
            hint: self.hint,
            created_at: self.created_at.and_utc(),
            revoked_at: self.revoked_at.map(|t| t.and_utc()),
            expires_at: self.expires_at.map(|t| t.and_utc()),
            last_used_at: self.last_used_at.map(|t| t.and_utc()),
        })
    }
}

/// A merchant as listed to the operator.
#[derive(Queryable, Selectable)]
#[diesel(table_name = merchants)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct MerchantRow {
    id: String,
    name: String,
    status: String,
    created_at: NaiveDateTime,
}

impl MerchantRow {
    fn into_merchant(self) -> Result<Merchant, RepoError> {
        Ok(Merchant {
            id: parse(&self.id)?,
            name: self.name,
            status: MerchantStatus::from_stored(&self.status),
            created_at: self.created_at.and_utc(),
        })
    }
}

/// Why a roll wrote nothing.
enum RollEnd {
    NoSuchKey,
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for RollEnd {
    fn from(error: diesel::result::Error) -> Self {
        RollEnd::Db(error)
    }
}

/// The key whose secret hashes to `hash`, with its merchant's status.
fn find_api_key(conn: &mut AnyConnection, hash: &str) -> Result<Option<ApiKeyRecord>, RepoError> {
    let row = api_keys::table
        .inner_join(merchants::table)
        .filter(api_keys::secret_hash.eq(hash))
        .select(KeyRecordRow::as_select())
        .get_result(conn)
        .optional()?;
    row.map(KeyRecordRow::into_record).transpose()
}

/// Sets the merchant's status; answers the merchant, if there is one.
fn set_merchant_status(
    conn: &mut AnyConnection,
    id: MerchantId,
    status: MerchantStatus,
) -> Result<Option<Merchant>, RepoError> {
    let row = diesel::update(merchants::table.find(id.to_string()))
        .set(merchants::status.eq(status.as_str()))
        .returning((merchants::name, merchants::created_at))
        .get_result::<(String, NaiveDateTime)>(conn)
        .optional()?;
    Ok(row.map(|(name, created_at)| Merchant { id, name, status, created_at: created_at.and_utc() }))
}

/// Adds a key; answers false when there is no such merchant.
fn create_api_key(conn: &mut AnyConnection, key: &ApiKeySummary, hash: &SecretHash) -> Result<bool, RepoError> {
    match insert(conn, api_keys::table, NewApiKey::of(key, hash)) {
        Ok(_) => Ok(true),
        // The foreign key says there is no such merchant.
        Err(diesel::result::Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Revokes the key `id` at `at` (revoking twice keeps the first time); answers the key, if there
/// is one.
fn revoke_api_key(conn: &mut AnyConnection, id: &str, at: NaiveDateTime) -> Result<Option<ApiKeySummary>, RepoError> {
    diesel::update(api_keys::table.find(id).filter(api_keys::revoked_at.is_null()))
        .set(api_keys::revoked_at.eq(at))
        .execute(conn)?;
    let row = api_keys::table.find(id).select(KeyRow::as_select()).get_result(conn).optional()?;
    row.map(KeyRow::into_summary).transpose()
}

/// Every merchant, oldest first.
fn list_merchants(conn: &mut AnyConnection) -> Result<Vec<Merchant>, RepoError> {
    let rows =
        merchants::table.order((merchants::created_at, merchants::id)).select(MerchantRow::as_select()).load(conn)?;
    rows.into_iter().map(MerchantRow::into_merchant).collect()
}

/// Every key, or the merchant's, oldest first.
fn list_api_keys(conn: &mut AnyConnection, merchant: Option<MerchantId>) -> Result<Vec<ApiKeySummary>, RepoError> {
    let mut query = api_keys::table.order((api_keys::created_at, api_keys::id)).into_boxed();
    if let Some(merchant) = merchant {
        query = query.filter(api_keys::merchant_id.eq(merchant.to_string()));
    }
    let rows = query.select(KeyRow::as_select()).load(conn)?;
    rows.into_iter().map(KeyRow::into_summary).collect()
}

/// Replaces the key `old` by `new` in one transaction: `old` expires at `until` (an earlier expiry
/// stays); answers `old` as it is now, unless there is no such unrevoked key.
fn roll_api_key(
    conn: &mut AnyConnection,
    old: &str,
    until: NaiveDateTime,
    new: &NewApiKey<'_>,
) -> Result<Option<ApiKeySummary>, RepoError> {
    let rolled = conn.write_transaction(|conn| {
        // A key is rolled once: only a key neither revoked nor rolled gets an expiry, and only then
        // is the new key stored, so of two rolls that race, one makes a key.
        let rollable =
            api_keys::table.find(old).filter(api_keys::revoked_at.is_null()).filter(api_keys::expires_at.is_null());
        if diesel::update(rollable).set(api_keys::expires_at.eq(until)).execute(conn)? == 0 {
            return Err(RollEnd::NoSuchKey);
        }
        insert(conn, api_keys::table, new)?;
        Ok(api_keys::table.find(old).select(KeyRow::as_select()).get_result(conn)?)
    });
    match rolled {
        Ok(row) => Ok(Some(row.into_summary()?)),
        Err(RollEnd::NoSuchKey) => Ok(None),
        Err(RollEnd::Db(e)) => Err(e.into()),
    }
}

/// Notes when each key was last used, never moving a time back, in one transaction; answers how
/// many keys changed.
fn record_key_use(conn: &mut AnyConnection, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<usize, RepoError> {
    Ok(conn.transaction(|conn| {
        let mut changed = 0;
        for (id, at) in uses {
            let at = at.naive_utc();
            changed += diesel::update(
                api_keys::table
                    .find(id.to_string())
                    .filter(api_keys::last_used_at.is_null().or(api_keys::last_used_at.lt(at))),
            )
            .set(api_keys::last_used_at.eq(at))
            .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(changed)
    })?)
}

impl MerchantStore for MerchantRepository {
    fn find_api_key(&self, hash: &SecretHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        let record = find_api_key(&mut *self.db.conn()?, hash.as_str())?;
        if let (Some(usage), Some(record)) = (&self.usage, &record) {
            usage.note(record, Utc::now());
        }
        Ok(record)
    }

    fn create_merchant(&self, merchant: &Merchant) -> Result<(), StoreError> {
        let conn = &mut *self.db.conn()?;
        insert(conn, merchants::table, NewMerchant::of(merchant)).map_err(RepoError::from)?;
        Ok(())
    }

    fn set_merchant_status(&self, id: MerchantId, status: MerchantStatus) -> Result<Option<Merchant>, StoreError> {
        Ok(set_merchant_status(&mut *self.db.conn()?, id, status)?)
    }

    fn create_api_key(&self, key: &ApiKeySummary, hash: &SecretHash) -> Result<bool, StoreError> {
        Ok(create_api_key(&mut *self.db.conn()?, key, hash)?)
    }

    fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<Option<ApiKeySummary>, StoreError> {
        Ok(revoke_api_key(&mut *self.db.conn()?, &id.to_string(), at.naive_utc())?)
    }

    fn count_merchants(&self) -> Result<i64, StoreError> {
        Ok(merchants::table.count().get_result::<i64>(&mut *self.db.conn()?).map_err(RepoError::from)?)
    }

    fn list_merchants(&self) -> Result<Vec<Merchant>, StoreError> {
        Ok(list_merchants(&mut *self.db.conn()?)?)
    }

    fn list_api_keys(&self, merchant: Option<MerchantId>) -> Result<Vec<ApiKeySummary>, StoreError> {
        Ok(list_api_keys(&mut *self.db.conn()?, merchant)?)
    }

    fn roll_api_key(
        &self,
        old: ApiKeyId,
        old_expires_at: DateTime<Utc>,
        new: &ApiKeySummary,
        hash: &SecretHash,
    ) -> Result<Option<ApiKeySummary>, StoreError> {
        let conn = &mut *self.db.conn()?;
        Ok(roll_api_key(conn, &old.to_string(), old_expires_at.naive_utc(), &NewApiKey::of(new, hash))?)
    }

    fn record_key_use(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<usize, StoreError> {
        if uses.is_empty() {
            return Ok(0);
        }
        Ok(record_key_use(&mut *self.db.conn()?, uses)?)
    }
}
