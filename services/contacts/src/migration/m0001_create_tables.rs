//! Contacts, their email and phone keys (for de-duplication), companies and activities.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
    Tenant,
    GivenName,
    FamilyName,
    DisplayName,
    PrimaryEmail,
    PrimaryPhone,
    Emails,
    Phones,
    Company,
    JobTitle,
    Address,
    LifecycleStage,
    Owner,
    Source,
    Tags,
    CustomFields,
    Consents,
    SearchText,
    MergedInto,
    CreateTime,
    UpdateTime,
    DeleteTime,
    Version,
}

#[derive(DeriveIden)]
enum ContactKeys {
    Table,
    Tenant,
    Kind,
    Value,
    ContactId,
}

#[derive(DeriveIden)]
enum Companies {
    Table,
    Id,
    Tenant,
    DisplayName,
    Domain,
    Industry,
    EmployeeCount,
    AnnualRevenue,
    Address,
    Tags,
    CustomFields,
    Owner,
    SearchText,
    CreateTime,
    UpdateTime,
    DeleteTime,
    Version,
}

#[derive(DeriveIden)]
enum Activities {
    Table,
    Id,
    Tenant,
    Kind,
    Subject,
    Body,
    OccurTime,
    Actor,
    Contact,
    Company,
    RelatedResource,
    CreateTime,
    UpdateTime,
    DeleteTime,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Contacts::Table)
                    .if_not_exists()
                    .col(string(Contacts::Id).primary_key())
                    .col(string(Contacts::Tenant))
                    .col(string(Contacts::GivenName))
                    .col(string(Contacts::FamilyName))
                    .col(string(Contacts::DisplayName))
                    .col(string(Contacts::PrimaryEmail))
                    .col(string(Contacts::PrimaryPhone))
                    .col(text(Contacts::Emails))
                    .col(text(Contacts::Phones))
                    .col(string(Contacts::Company))
                    .col(string(Contacts::JobTitle))
                    .col(text(Contacts::Address))
                    .col(string(Contacts::LifecycleStage))
                    .col(string(Contacts::Owner))
                    .col(string(Contacts::Source))
                    .col(text(Contacts::Tags))
                    .col(text(Contacts::CustomFields))
                    .col(text(Contacts::Consents))
                    .col(text(Contacts::SearchText))
                    .col(string_null(Contacts::MergedInto))
                    .col(timestamp_with_time_zone(Contacts::CreateTime))
                    .col(timestamp_with_time_zone(Contacts::UpdateTime))
                    .col(timestamp_with_time_zone_null(Contacts::DeleteTime))
                    .col(big_integer(Contacts::Version))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "contacts_tenant_create_time",
                vec![Contacts::Tenant, Contacts::CreateTime],
            ),
            (
                "contacts_tenant_company",
                vec![Contacts::Tenant, Contacts::Company],
            ),
            (
                "contacts_tenant_display_name",
                vec![Contacts::Tenant, Contacts::DisplayName],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Contacts::Table).if_not_exists();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ContactKeys::Table)
                    .if_not_exists()
                    .col(string(ContactKeys::Tenant))
                    .col(string(ContactKeys::Kind))
                    .col(string(ContactKeys::Value))
                    .col(string(ContactKeys::ContactId))
                    // Value before kind: lookups name many values of one
                    // kind, and the value is what narrows them down.
                    .primary_key(
                        Index::create()
                            .col(ContactKeys::Tenant)
                            .col(ContactKeys::Value)
                            .col(ContactKeys::Kind)
                            .col(ContactKeys::ContactId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("contact_keys_contact")
                    .table(ContactKeys::Table)
                    .col(ContactKeys::Tenant)
                    .col(ContactKeys::ContactId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Companies::Table)
                    .if_not_exists()
                    .col(string(Companies::Id).primary_key())
                    .col(string(Companies::Tenant))
                    .col(string(Companies::DisplayName))
                    .col(string(Companies::Domain))
                    .col(string(Companies::Industry))
                    .col(big_integer(Companies::EmployeeCount))
                    .col(text(Companies::AnnualRevenue))
                    .col(text(Companies::Address))
                    .col(text(Companies::Tags))
                    .col(text(Companies::CustomFields))
                    .col(string(Companies::Owner))
                    .col(text(Companies::SearchText))
                    .col(timestamp_with_time_zone(Companies::CreateTime))
                    .col(timestamp_with_time_zone(Companies::UpdateTime))
                    .col(timestamp_with_time_zone_null(Companies::DeleteTime))
                    .col(big_integer(Companies::Version))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("companies_tenant_create_time")
                    .table(Companies::Table)
                    .col(Companies::Tenant)
                    .col(Companies::CreateTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Activities::Table)
                    .if_not_exists()
                    .col(string(Activities::Id).primary_key())
                    .col(string(Activities::Tenant))
                    .col(string(Activities::Kind))
                    .col(string(Activities::Subject))
                    .col(text(Activities::Body))
                    .col(timestamp_with_time_zone(Activities::OccurTime))
                    .col(string(Activities::Actor))
                    .col(string(Activities::Contact))
                    .col(string(Activities::Company))
                    .col(string(Activities::RelatedResource))
                    .col(timestamp_with_time_zone(Activities::CreateTime))
                    .col(timestamp_with_time_zone(Activities::UpdateTime))
                    .col(timestamp_with_time_zone_null(Activities::DeleteTime))
                    .col(big_integer(Activities::Version))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("activities_tenant_contact", Activities::Contact),
            ("activities_tenant_company", Activities::Company),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Activities::Table)
                        .col(Activities::Tenant)
                        .col(column)
                        .col(Activities::OccurTime)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
