//! Journeys: their definitions, enrolments, the steps each enrolment ran,
//! who was in a trigger segment at its last look, and which ledger rows are
//! a journey's emails.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Journeys {
    Table,
    Id,
    Tenant,
    DisplayName,
    Description,
    State,
    Trigger,
    Reentry,
    ExitFilter,
    Steps,
    CreateTime,
    UpdateTime,
    DeleteTime,
    Version,
}

#[derive(DeriveIden)]
enum JourneyEnrollments {
    Table,
    Id,
    Tenant,
    JourneyId,
    Contact,
    Email,
    State,
    Step,
    StepStartTime,
    NextRunTime,
    Reason,
    Source,
    EntryKey,
    CreateTime,
    UpdateTime,
    Version,
}

#[derive(DeriveIden)]
enum JourneyStepRuns {
    Table,
    Tenant,
    EnrollmentId,
    Step,
    Outcome,
    RunTime,
}

#[derive(DeriveIden)]
enum JourneySegmentMembers {
    Table,
    Tenant,
    JourneyId,
    Contact,
}

#[derive(DeriveIden)]
enum JourneyMessages {
    Table,
    Tenant,
    MessageKey,
    JourneyId,
    EnrollmentId,
    Step,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Journeys::Table)
                    .if_not_exists()
                    .col(string(Journeys::Id).primary_key())
                    .col(string(Journeys::Tenant))
                    .col(string(Journeys::DisplayName))
                    .col(text(Journeys::Description))
                    .col(string(Journeys::State))
                    .col(text(Journeys::Trigger))
                    .col(string(Journeys::Reentry))
                    .col(text(Journeys::ExitFilter))
                    .col(text(Journeys::Steps))
                    .col(timestamp_with_time_zone(Journeys::CreateTime))
                    .col(timestamp_with_time_zone(Journeys::UpdateTime))
                    .col(timestamp_with_time_zone_null(Journeys::DeleteTime))
                    .col(big_integer(Journeys::Version))
                    .to_owned(),
            )
            .await?;
        // Runners and feeds look for active journeys, of a tenant or all.
        for (name, columns) in [
            (
                "journeys_tenant_state",
                vec![Journeys::Tenant, Journeys::State],
            ),
            ("journeys_state", vec![Journeys::State]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Journeys::Table).if_not_exists();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(JourneyEnrollments::Table)
                    .if_not_exists()
                    .col(string(JourneyEnrollments::Id).primary_key())
                    .col(string(JourneyEnrollments::Tenant))
                    .col(string(JourneyEnrollments::JourneyId))
                    .col(string(JourneyEnrollments::Contact))
                    .col(string(JourneyEnrollments::Email))
                    .col(string(JourneyEnrollments::State))
                    .col(string(JourneyEnrollments::Step))
                    .col(timestamp_with_time_zone(JourneyEnrollments::StepStartTime))
                    .col(timestamp_with_time_zone_null(
                        JourneyEnrollments::NextRunTime,
                    ))
                    .col(text(JourneyEnrollments::Reason))
                    .col(string(JourneyEnrollments::Source))
                    .col(string(JourneyEnrollments::EntryKey))
                    .col(timestamp_with_time_zone(JourneyEnrollments::CreateTime))
                    .col(timestamp_with_time_zone(JourneyEnrollments::UpdateTime))
                    .col(big_integer(JourneyEnrollments::Version))
                    .to_owned(),
            )
            .await?;
        // A trigger (an event, a request id) enrols once.
        manager
            .create_index(
                Index::create()
                    .name("journey_enrollments_entry")
                    .table(JourneyEnrollments::Table)
                    .col(JourneyEnrollments::Tenant)
                    .col(JourneyEnrollments::JourneyId)
                    .col(JourneyEnrollments::EntryKey)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The runner looks for enrolments due.
        manager
            .create_index(
                Index::create()
                    .name("journey_enrollments_due")
                    .table(JourneyEnrollments::Table)
                    .col(JourneyEnrollments::State)
                    .col(JourneyEnrollments::NextRunTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // A contact is in a journey at most once at a time, whatever races
        // (two replicas' API calls, a feed and a segment look): the
        // database says so, not a read before the insert.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS journey_enrollments_one_active \
                 ON journey_enrollments (tenant, journey_id, contact) \
                 WHERE state = 'ACTIVE' AND contact <> ''",
            )
            .await?;
        // A journey's enrolments, newest first.
        manager
            .create_index(
                Index::create()
                    .name("journey_enrollments_journey")
                    .table(JourneyEnrollments::Table)
                    .col(JourneyEnrollments::Tenant)
                    .col(JourneyEnrollments::JourneyId)
                    .col(JourneyEnrollments::CreateTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Re-entry rules, merges and erasures find a person's enrolments.
        manager
            .create_index(
                Index::create()
                    .name("journey_enrollments_contact")
                    .table(JourneyEnrollments::Table)
                    .col(JourneyEnrollments::Tenant)
                    .col(JourneyEnrollments::Contact)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JourneyStepRuns::Table)
                    .if_not_exists()
                    .col(string(JourneyStepRuns::Tenant))
                    .col(string(JourneyStepRuns::EnrollmentId))
                    .col(string(JourneyStepRuns::Step))
                    .col(text(JourneyStepRuns::Outcome))
                    .col(timestamp_with_time_zone(JourneyStepRuns::RunTime))
                    .primary_key(
                        Index::create()
                            .col(JourneyStepRuns::Tenant)
                            .col(JourneyStepRuns::EnrollmentId)
                            .col(JourneyStepRuns::Step),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JourneySegmentMembers::Table)
                    .if_not_exists()
                    .col(string(JourneySegmentMembers::Tenant))
                    .col(string(JourneySegmentMembers::JourneyId))
                    .col(string(JourneySegmentMembers::Contact))
                    .primary_key(
                        Index::create()
                            .col(JourneySegmentMembers::Tenant)
                            .col(JourneySegmentMembers::JourneyId)
                            .col(JourneySegmentMembers::Contact),
                    )
                    .to_owned(),
            )
            .await?;
        // Merges and erasures find a person's memberships.
        manager
            .create_index(
                Index::create()
                    .name("journey_segment_members_contact")
                    .table(JourneySegmentMembers::Table)
                    .col(JourneySegmentMembers::Tenant)
                    .col(JourneySegmentMembers::Contact)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JourneyMessages::Table)
                    .if_not_exists()
                    .col(string(JourneyMessages::Tenant))
                    .col(string(JourneyMessages::MessageKey))
                    .col(string(JourneyMessages::JourneyId))
                    .col(string(JourneyMessages::EnrollmentId))
                    .col(string(JourneyMessages::Step))
                    .primary_key(
                        Index::create()
                            .col(JourneyMessages::Tenant)
                            .col(JourneyMessages::MessageKey),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            JourneyMessages::Table.into_iden(),
            JourneySegmentMembers::Table.into_iden(),
            JourneyStepRuns::Table.into_iden(),
            JourneyEnrollments::Table.into_iden(),
            Journeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
