//! The merchant aggregate: merchants and their secret keys (stored as hashes).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use domain::ids::{ApiKeyId, MerchantId};
use domain::merchant::{ApiKeyRecord, ApiKeySummary, Livemode, Merchant, MerchantStatus};
use domain::ports::{MerchantStore, StoreError};
use domain::secret::SecretHash;

use crate::db::{with_conn, Database};
use crate::error::RepoError;
use crate::schema::{api_keys, merchants};

/// Implements [`MerchantStore`] on either backend.
#[derive(Debug, Clone)]
pub struct MerchantRepository {
    db: Database,
}

impl MerchantRepository {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
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
        })
    }
}

impl MerchantStore for MerchantRepository {
    fn find_api_key(&self, hash: &SecretHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = with_conn!(&self.db, |conn| api_keys::table
            .inner_join(merchants::table)
            .filter(api_keys::secret_hash.eq(hash.as_str()))
            .select(KeyRecordRow::as_select())
            .first(conn)
            .optional()
            .map_err(RepoError::from)?);
        Ok(row.map(KeyRecordRow::into_record).transpose()?)
    }

    fn create_merchant(&self, merchant: &Merchant) -> Result<(), StoreError> {
        with_conn!(&self.db, |conn| diesel::insert_into(merchants::table)
            .values((
                merchants::id.eq(merchant.id.to_string()),
                merchants::name.eq(&merchant.name),
                merchants::status.eq(merchant.status.as_str()),
                merchants::created_at.eq(merchant.created_at.naive_utc()),
            ))
            .execute(conn)
            .map_err(RepoError::from)?);
        Ok(())
    }

    fn set_merchant_status(&self, id: MerchantId, status: MerchantStatus) -> Result<Option<Merchant>, StoreError> {
        let row = with_conn!(&self.db, |conn| diesel::update(merchants::table.find(id.to_string()))
            .set(merchants::status.eq(status.as_str()))
            .returning((merchants::name, merchants::created_at))
            .get_result::<(String, NaiveDateTime)>(conn)
            .optional()
            .map_err(RepoError::from)?);
        Ok(row.map(|(name, created_at)| Merchant { id, name, status, created_at: created_at.and_utc() }))
    }

    fn create_api_key(&self, key: &ApiKeySummary, hash: &SecretHash) -> Result<bool, StoreError> {
        let inserted = with_conn!(&self.db, |conn| diesel::insert_into(api_keys::table)
            .values((
                api_keys::id.eq(key.id.to_string()),
                api_keys::merchant_id.eq(key.merchant_id.to_string()),
                api_keys::livemode.eq(key.livemode.is_live()),
                api_keys::secret_hash.eq(hash.as_str()),
                api_keys::hint.eq(&key.hint),
                api_keys::created_at.eq(key.created_at.naive_utc()),
            ))
            .execute(conn));
        match inserted {
            Ok(_) => Ok(true),
            // The foreign key says there is no such merchant.
            Err(diesel::result::Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => Ok(false),
            Err(e) => Err(RepoError::from(e).into()),
        }
    }

    fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<Option<ApiKeySummary>, StoreError> {
        // Revoking twice keeps the first time: only a key not yet revoked is updated.
        let row = with_conn!(&self.db, |conn| {
            diesel::update(api_keys::table.find(id.to_string()).filter(api_keys::revoked_at.is_null()))
                .set(api_keys::revoked_at.eq(at.naive_utc()))
                .execute(conn)
                .map_err(RepoError::from)?;
            api_keys::table
                .find(id.to_string())
                .select(KeyRow::as_select())
                .first(conn)
                .optional()
                .map_err(RepoError::from)?
        });
        Ok(row.map(KeyRow::into_summary).transpose()?)
    }

    fn count_merchants(&self) -> Result<i64, StoreError> {
        Ok(with_conn!(&self.db, |conn| merchants::table.count().get_result::<i64>(conn).map_err(RepoError::from)?))
    }
}
