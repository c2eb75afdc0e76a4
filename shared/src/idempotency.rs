//! Idempotency keys for create methods (AIP-155), as payment APIs keep them:
//! a retried request with the same `request_id` gets the first result and
//! creates nothing new, even when the two arrive concurrently; the same
//! `request_id` with a different request is an error naming it (the request's
//! fingerprint is stored with its key); keys expire after a window (24 h by
//! default), after which the id may be used again, and expired keys are pruned.
//!
//! The key is recorded in the same transaction as the resource. The loser of
//! a race fails that insert on the primary key, rolls back, and then finds the
//! winner's resource with [`lookup`].

use std::time::Duration;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, SqlErr,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{db::Tenant, error::ApiError};

/// The idempotency_keys table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One used request id.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        /// The tenant.
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        /// The method, for example "CreateContact".
        #[sea_orm(primary_key, auto_increment = false)]
        pub method: String,
        /// The client's request id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        /// The resource the first request created.
        pub resource: String,
        /// SHA-256 of the first request (empty for keys from before fingerprints).
        pub fingerprint: String,
        /// When.
        pub create_time: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How long a request id is remembered by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A create request's idempotency key: its `request_id` and the fingerprint
/// of the whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The request id, as a canonical UUID.
    pub request_id: String,
    /// SHA-256 (hex) of the request as protobuf: prost encodes fields in
    /// field order, so the same request always has the same fingerprint,
    /// however the client's library ordered it on the wire.
    pub fingerprint: String,
}

impl IdempotencyKey {
    /// The key of `request`, whose `request_id` field is `request_id`: `None`
    /// when it is empty; INVALID_ARGUMENT unless it is a UUID.
    pub fn of(request_id: &str, request: &impl prost::Message) -> Result<Option<Self>, ApiError> {
        if request_id.is_empty() {
            return Ok(None);
        }
        let request_id = Uuid::parse_str(request_id)
            .map_err(|_| ApiError::invalid("request_id", "must be a UUID"))?
            .to_string();
        let digest = Sha256::digest(request.encode_to_vec());
        let fingerprint = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok(Some(Self {
            request_id,
            fingerprint,
        }))
    }

    /// The key with its request id but no fingerprint: for keys made before
    /// there were fingerprints, and for tests.
    #[cfg(test)]
    fn bare(request_id: &str) -> Self {
        Self {
            request_id: request_id.to_owned(),
            fingerprint: String::new(),
        }
    }
}

/// The resource an unexpired key already created, if any; INVALID_ARGUMENT
/// naming `request_id` when the key was used with a different request.
pub async fn lookup<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    method: &str,
    key: &IdempotencyKey,
    window: Duration,
) -> Result<Option<String>, ApiError> {
    let cutoff = chrono::Utc::now() - window;
    let Some(row) = entity::Entity::find()
        .filter(entity::Column::Tenant.eq(tenant.as_str()))
        .filter(entity::Column::Method.eq(method))
        .filter(entity::Column::RequestId.eq(key.request_id.as_str()))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if row.create_time < cutoff {
        // Expired: the id is free again.
        entity::Entity::delete_many()
            .filter(entity::Column::Tenant.eq(tenant.as_str()))
            .filter(entity::Column::Method.eq(method))
            .filter(entity::Column::RequestId.eq(key.request_id.as_str()))
            .filter(entity::Column::CreateTime.lt(cutoff))
            .exec(conn)
            .await?;
        return Ok(None);
    }
    if !row.fingerprint.is_empty() && row.fingerprint != key.fingerprint {
        return Err(ApiError::invalid(
            "request_id",
            format!(
                "was used for a different {method} request (which created {}); use a new request_id for a new request",
                row.resource
            ),
        ));
    }
    Ok(Some(row.resource))
}

/// Deletes every key older than `window`; returns how many.
pub async fn prune<C: ConnectionTrait>(conn: &C, window: Duration) -> Result<u64, DbErr> {
    let cutoff = chrono::Utc::now() - window;
    Ok(entity::Entity::delete_many()
        .filter(entity::Column::CreateTime.lt(cutoff))
        .exec(conn)
        .await?
        .rows_affected)
}

/// What recording a key found.
#[derive(Debug)]
pub enum Recorded {
    /// The key is new and now belongs to this transaction's resource.
    New,
    /// A concurrent request with the same key committed first; roll back and
    /// [`lookup`] its resource.
    Taken,
}

/// Records that `key` created `resource`, inside the creating transaction.
pub async fn record<C: ConnectionTrait>(
    txn: &C,
    tenant: &Tenant,
    method: &str,
    key: &IdempotencyKey,
    resource: &str,
) -> Result<Recorded, DbErr> {
    let row = entity::ActiveModel {
        tenant: Set(tenant.as_str().to_owned()),
        method: Set(method.to_owned()),
        request_id: Set(key.request_id.clone()),
        resource: Set(resource.to_owned()),
        fingerprint: Set(key.fingerprint.clone()),
        create_time: Set(chrono::Utc::now()),
    };
    match entity::Entity::insert(row)
        .exec_without_returning(txn)
        .await
    {
        Ok(_) => Ok(Recorded::New),
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(Recorded::Taken)
        }
        Err(error) => Err(error),
    }
}

/// The migration that creates the idempotency_keys table.
pub mod migration {
    use sea_orm_migration::{prelude::*, schema::*};

    /// Creates `idempotency_keys`.
    #[derive(DeriveMigrationName)]
    pub struct CreateIdempotencyKeys;

    #[derive(DeriveIden)]
    enum IdempotencyKeys {
        Table,
        Tenant,
        Method,
        RequestId,
        Resource,
        CreateTime,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateIdempotencyKeys {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(IdempotencyKeys::Table)
                        .if_not_exists()
                        .col(string(IdempotencyKeys::Tenant))
                        .col(string(IdempotencyKeys::Method))
                        .col(string(IdempotencyKeys::RequestId))
                        .col(string(IdempotencyKeys::Resource))
                        .col(timestamp_with_time_zone(IdempotencyKeys::CreateTime))
                        .primary_key(
                            Index::create()
                                .col(IdempotencyKeys::Tenant)
                                .col(IdempotencyKeys::Method)
                                .col(IdempotencyKeys::RequestId),
                        )
                        .to_owned(),
                )
                .await
        }
    }
}

/// Adds the fingerprint column and an index on the creation time (for pruning).
pub mod fingerprint_migration {
    use sea_orm_migration::{prelude::*, schema::*};

    /// Adds `idempotency_keys.fingerprint` and `idx_idempotency_keys_create_time`.
    pub struct AddIdempotencyFingerprint;

    // Named by hand: the derive names a migration after its file, and this
    // file already holds the one that creates the table.
    impl MigrationName for AddIdempotencyFingerprint {
        fn name(&self) -> &str {
            "idempotency_fingerprint"
        }
    }

    #[derive(DeriveIden)]
    enum IdempotencyKeys {
        Table,
        Fingerprint,
        CreateTime,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for AddIdempotencyFingerprint {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .alter_table(
                    Table::alter()
                        .table(IdempotencyKeys::Table)
                        .add_column(string(IdempotencyKeys::Fingerprint).default(""))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("idx_idempotency_keys_create_time")
                        .table(IdempotencyKeys::Table)
                        .col(IdempotencyKeys::CreateTime)
                        .to_owned(),
                )
                .await
        }
    }
}

/// A request id derived from `seed`: the same seed always gives the same
/// UUID, so a multi-step operation that is retried repeats each of its calls
/// to other services with the same request id, and none of them acts twice.
pub fn derived_request_id(seed: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // RFC 9562 version 8 (custom) and the RFC variant.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod derived_tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_distinct_uuids() {
        let a = derived_request_id("convert\0leads/1\0contact");
        assert_eq!(a, derived_request_id("convert\0leads/1\0contact"));
        assert_ne!(a, derived_request_id("convert\0leads/2\0contact"));
        assert_eq!(a.get_version_num(), 8);
    }

    #[test]
    fn keys_are_uuids_and_fingerprints_follow_the_request() {
        use prost_types::Duration as Message;
        let id = "6f1c1a9e-6f0e-4a39-9a4f-3c1f0d9b7a11";
        let one = Message {
            seconds: 1,
            nanos: 0,
        };
        let key = IdempotencyKey::of(id, &one).unwrap().unwrap();
        assert_eq!(key, IdempotencyKey::of(id, &one.clone()).unwrap().unwrap());
        let other = IdempotencyKey::of(
            id,
            &Message {
                seconds: 2,
                nanos: 0,
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(other.request_id, key.request_id);
        assert_ne!(other.fingerprint, key.fingerprint);
        assert_ne!(key, IdempotencyKey::bare(id));
        assert_eq!(IdempotencyKey::of("", &one).unwrap(), None);
        assert!(IdempotencyKey::of("not-a-uuid", &one).is_err());
    }
}
