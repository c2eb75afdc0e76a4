//! Idempotency keys for create methods (AIP-155): a retried request with the
//! same `request_id` gets the first result and creates nothing new, even when
//! the two arrive concurrently.
//!
//! The key is recorded in the same transaction as the resource. The loser of
//! a race fails that insert on the primary key, rolls back, and then finds the
//! winner's resource with [`lookup`].

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, SqlErr,
};
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
        /// When.
        pub create_time: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Checks a request id: empty means none; otherwise it must be a UUID.
pub fn parse_request_id(request_id: &str) -> Result<Option<String>, ApiError> {
    if request_id.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(request_id)
        .map(|id| Some(id.to_string()))
        .map_err(|_| ApiError::invalid("request_id", "must be a UUID"))
}

/// The resource a request id already created, if any.
pub async fn lookup<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    method: &str,
    request_id: &str,
) -> Result<Option<String>, DbErr> {
    Ok(entity::Entity::find()
        .filter(entity::Column::Tenant.eq(tenant.as_str()))
        .filter(entity::Column::Method.eq(method))
        .filter(entity::Column::RequestId.eq(request_id))
        .one(conn)
        .await?
        .map(|row| row.resource))
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

/// Records that `request_id` created `resource`, inside the creating transaction.
pub async fn record<C: ConnectionTrait>(
    txn: &C,
    tenant: &Tenant,
    method: &str,
    request_id: &str,
    resource: &str,
) -> Result<Recorded, DbErr> {
    let row = entity::ActiveModel {
        tenant: Set(tenant.as_str().to_owned()),
        method: Set(method.to_owned()),
        request_id: Set(request_id.to_owned()),
        resource: Set(resource.to_owned()),
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
        assert!(parse_request_id(&a.to_string()).is_ok());
    }
}
