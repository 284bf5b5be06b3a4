//! PHI at rest: the one place that turns PHI into ciphertext and back.
//!
//! Each record holding PHI gets its own data key (a row in `data_keys`, wrapped by
//! the key provider's KEK). Fields are sealed with the record's key and a context
//! `"<table>/<row id>/<column>"`. Lookups by e-mail use a blind index under an
//! installation-wide index key, itself a wrapped data key, so KEK rotation
//! rewraps it like any other and the index stays valid.

use std::sync::Arc;

use wardline_crypto::blind_index::blind_index;
use wardline_crypto::{DataKey, KeyProvider, WrappedKey};
use wardline_proto::OrgId;

use crate::clock::Clock;
use wardline_store::{DataKeyRow, Store, StoreError};

const INDEX_KEY_ID: &str = "blind-index-v1";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] wardline_crypto::CryptoError),
    #[error("stored PHI field is not UTF-8")]
    NotUtf8,
}

impl From<VaultError> for crate::error::ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Store(s) => s.into(),
            other => crate::error::ApiError::internal(other),
        }
    }
}

#[derive(Clone)]
pub struct Vault {
    keys: Arc<dyn KeyProvider>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    index_key: Arc<DataKey>,
}

/// Where a sealed field lives; part of the ciphertext's associated data.
pub struct FieldRef<'a> {
    pub table: &'a str,
    pub row_id: &'a str,
    pub column: &'a str,
}

impl FieldRef<'_> {
    /// The associated data a field is sealed with.
    pub fn context(&self) -> Vec<u8> {
        format!("{}/{}/{}", self.table, self.row_id, self.column).into_bytes()
    }
}

impl Vault {
    /// Loads the blind-index key, creating it on first start.
    pub async fn open(
        keys: Arc<dyn KeyProvider>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Vault, VaultError> {
        let index_key =
            service_key(keys.as_ref(), store.as_ref(), clock.as_ref(), INDEX_KEY_ID).await?;
        Ok(Vault {
            keys,
            store,
            clock,
            index_key: Arc::new(index_key),
        })
    }

    /// The server's own key named `id` (not an organisation's), created on
    /// first use; several nodes starting at once agree on one.
    pub async fn service_key(&self, id: &str) -> Result<DataKey, VaultError> {
        service_key(
            self.keys.as_ref(),
            self.store.as_ref(),
            self.clock.as_ref(),
            id,
        )
        .await
    }

    /// A fresh data key for a new record, stored wrapped. Returns its id.
    pub async fn new_record_key(
        &self,
        org: Option<OrgId>,
    ) -> Result<(String, DataKey), VaultError> {
        let id = format!("dk-{}", uuid::Uuid::new_v4());
        let key = DataKey::generate();
        let w = self.keys.wrap(&id, &key)?;
        self.store
            .insert_data_key(&DataKeyRow {
                id: id.clone(),
                org_id: org,
                kek_id: w.kek_id,
                wrapped: w.wrapped,
                created_at: self.clock.now(),
            })
            .await?;
        Ok((id, key))
    }

    /// A fresh data key for a record whose row is written in the caller's
    /// transaction (with the record, so that no key outlives a refused write).
    pub fn new_key_row(&self, org: OrgId) -> Result<(DataKeyRow, DataKey), VaultError> {
        let id = format!("dk-{}", uuid::Uuid::new_v4());
        let key = DataKey::generate();
        let w = self.keys.wrap(&id, &key)?;
        Ok((
            DataKeyRow {
                id,
                org_id: Some(org),
                kek_id: w.kek_id,
                wrapped: w.wrapped,
                created_at: self.clock.now(),
            },
            key,
        ))
    }

    pub fn seal_bytes(key: &DataKey, field: FieldRef<'_>, value: &[u8]) -> Vec<u8> {
        key.seal(value, &field.context())
    }

    pub fn open_bytes(
        key: &DataKey,
        field: FieldRef<'_>,
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        Ok(key.open(sealed, &field.context())?)
    }

    pub async fn record_key(&self, id: &str) -> Result<DataKey, VaultError> {
        let row = self.store.get_data_key(id).await?;
        self.unwrap_key(&row)
    }

    /// Unwraps a data key row the caller already fetched.
    pub fn unwrap_key(&self, row: &DataKeyRow) -> Result<DataKey, VaultError> {
        unwrap_row(self.keys.as_ref(), row)
    }

    pub fn seal(key: &DataKey, field: FieldRef<'_>, value: &str) -> Vec<u8> {
        key.seal(value.as_bytes(), &field.context())
    }

    pub fn open_str(
        key: &DataKey,
        field: FieldRef<'_>,
        sealed: &[u8],
    ) -> Result<String, VaultError> {
        let bytes = key.open(sealed, &field.context())?;
        String::from_utf8(bytes).map_err(|_| VaultError::NotUtf8)
    }

    /// Keyed hash naming an account in the login-throttle table.
    pub fn throttle_index(&self, account: &str) -> String {
        blind_index(&self.index_key, "login-throttle", account)
    }

    /// Blind index of a value of one kind within one organisation (a
    /// patient's phone number, an MRN).
    pub fn index(&self, org: OrgId, kind: &str, value: &str) -> String {
        blind_index(&self.index_key, &format!("{kind}/{org}"), value)
    }

    /// Blind index of a normalised e-mail address within one organisation.
    pub fn email_index(&self, org: OrgId, normalised_email: &str) -> String {
        blind_index(
            &self.index_key,
            &format!("user-email/{org}"),
            normalised_email,
        )
    }
}

fn unwrap_row(keys: &dyn KeyProvider, row: &DataKeyRow) -> Result<DataKey, VaultError> {
    Ok(keys.unwrap(
        &row.id,
        &WrappedKey {
            kek_id: row.kek_id.clone(),
            wrapped: row.wrapped.clone(),
        },
    )?)
}

/// Rewraps every data key not yet under the provider's current KEK, in batches,
/// while the server keeps running (each key is swapped atomically). Returns how
/// many keys moved.
async fn service_key(
    keys: &dyn KeyProvider,
    store: &dyn Store,
    clock: &dyn Clock,
    id: &str,
) -> Result<DataKey, VaultError> {
    match store.get_data_key(id).await {
        Ok(row) => unwrap_row(keys, &row),
        Err(StoreError::NotFound) => {
            let key = DataKey::generate();
            let w = keys.wrap(id, &key)?;
            let row = DataKeyRow {
                id: id.into(),
                org_id: None,
                kek_id: w.kek_id,
                wrapped: w.wrapped,
                created_at: clock.now(),
            };
            match store.insert_data_key(&row).await {
                Ok(()) => Ok(key),
                // Another node created it first: use theirs.
                Err(StoreError::Conflict(_)) => unwrap_row(keys, &store.get_data_key(id).await?),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn rewrap_all(keys: &dyn KeyProvider, store: &dyn Store) -> Result<u64, VaultError> {
    let current = keys.current_kek_id();
    let mut moved = 0;
    loop {
        let batch = store.data_keys_not_under(&current, 500).await?;
        if batch.is_empty() {
            return Ok(moved);
        }
        for row in batch {
            let key = unwrap_row(keys, &row)?;
            let w = keys.wrap(&row.id, &key)?;
            if store
                .rewrap_data_key(&row.id, &row.kek_id, &w.kek_id, &w.wrapped)
                .await?
            {
                moved += 1;
            }
        }
    }
}
