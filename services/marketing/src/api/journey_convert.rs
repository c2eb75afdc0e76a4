//! Journeys on the wire <-> the journey rules. Reading a request checks
//! what only the wire can get wrong (a step without an action, a duration
//! with nanos, a time that is not one), naming the field; the domain checks
//! the rest.

use crm_proto::marketing as pb;
use crm_shared::{
    convert::{etag, json_to_struct, struct_to_json, to_timestamp},
    error::ApiError,
};

use crate::{
    domain::journey::{
        Action, Condition, Enrollment, EnrollmentState, Journey, JourneyDraft, Reentry, State,
        Step, Trigger,
    },
    store::{JourneyCounts, StepRun},
};

/// A journey's writable fields; INVALID_ARGUMENT naming `journey.<field>`
/// for what the wire gets wrong.
pub fn journey_draft(j: &pb::Journey) -> Result<JourneyDraft, ApiError> {
    let trigger = j.trigger.clone().unwrap_or_default();
    let trigger = match trigger.kind() {
        pb::TriggerKind::Unspecified | pb::TriggerKind::Manual => Trigger::Manual,
        pb::TriggerKind::SegmentEntry => Trigger::SegmentEntry {
            segment: trigger.segment,
        },
        pb::TriggerKind::LeadCreated => Trigger::LeadCreated {
            source: trigger.lead_source,
        },
        pb::TriggerKind::TicketSolved => Trigger::TicketSolved,
        pb::TriggerKind::DealWon => Trigger::DealWon,
    };
    let reentry = match j.reentry() {
        pb::Reentry::AfterEnded => Reentry::AfterEnded,
        pb::Reentry::Unspecified | pb::Reentry::Never => Reentry::Never,
    };
    let steps = j
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| step(s, &format!("journey.steps[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(JourneyDraft {
        display_name: j.display_name.clone(),
        description: j.description.clone(),
        trigger,
        reentry,
        exit_filter: j.exit_filter.clone(),
        steps,
    })
}

/// Whole seconds of a duration, or INVALID_ARGUMENT naming `field`.
fn seconds(d: Option<&prost_types::Duration>, field: &str) -> Result<i64, ApiError> {
    match d {
        None => Ok(0),
        Some(d) if d.nanos == 0 => Ok(d.seconds),
        Some(_) => Err(ApiError::invalid(field, "whole seconds")),
    }
}

fn step(s: &pb::JourneyStep, field: &str) -> Result<Step, ApiError> {
    use pb::journey_step::Action as A;
    let action = match &s.action {
        None => return Err(ApiError::invalid(field, "an action is required")),
        Some(A::SendEmail(a)) => Action::SendEmail {
            template: a.template.clone(),
            from_address: a.from_address.clone(),
            from_name: a.from_name.clone(),
            reply_to: a.reply_to.clone(),
        },
        Some(A::Wait(w)) => Action::Wait {
            seconds: seconds(w.duration.as_ref(), &format!("{field}.wait.duration"))?,
            until: match &w.until {
                None => None,
                Some(t) => Some(crm_shared::convert::from_timestamp(
                    t,
                    &format!("{field}.wait.until"),
                )?),
            },
        },
        Some(A::Branch(b)) => {
            use pb::branch_condition::Kind as K;
            let condition = match b.condition.as_ref().and_then(|c| c.kind.as_ref()) {
                None => {
                    return Err(ApiError::invalid(
                        format!("{field}.branch.condition"),
                        "a condition is required",
                    ));
                }
                Some(K::Opened(o)) => Condition::Opened {
                    step: o.step.clone(),
                },
                Some(K::Clicked(c)) => Condition::Clicked {
                    step: c.step.clone(),
                    link: c.link.clone(),
                },
                Some(K::ContactFilter(f)) => Condition::MatchesFilter { filter: f.clone() },
            };
            Action::Branch {
                condition,
                then_step: b.then_step.clone(),
                else_step: b.else_step.clone(),
            }
        }
        Some(A::UpdateContact(u)) => Action::UpdateContact {
            add_tags: u.add_tags.clone(),
            remove_tags: u.remove_tags.clone(),
            lifecycle_stage: u.lifecycle_stage.clone(),
            custom_fields: u
                .custom_fields
                .as_ref()
                .map(struct_to_json)
                .unwrap_or_default(),
        },
        Some(A::CreateTask(t)) => Action::CreateTask {
            title: t.title.clone(),
            due_in_seconds: seconds(t.due_in.as_ref(), &format!("{field}.create_task.due_in"))?,
            owner: t.owner.clone(),
        },
        Some(A::CreateLead(l)) => Action::CreateLead {
            source: l.source.clone(),
        },
    };
    Ok(Step {
        id: s.id.clone(),
        action,
        next: s.next.clone(),
    })
}

fn step_message(s: &Step) -> pb::JourneyStep {
    use pb::journey_step::Action as A;
    let action = match &s.action {
        Action::SendEmail {
            template,
            from_address,
            from_name,
            reply_to,
        } => A::SendEmail(pb::SendEmailAction {
            template: template.clone(),
            from_address: from_address.clone(),
            from_name: from_name.clone(),
            reply_to: reply_to.clone(),
        }),
        Action::Wait { seconds, until } => A::Wait(pb::WaitAction {
            duration: (*seconds > 0).then_some(prost_types::Duration {
                seconds: *seconds,
                nanos: 0,
            }),
            until: until.map(to_timestamp),
        }),
        Action::Branch {
            condition,
            then_step,
            else_step,
        } => {
            use pb::branch_condition::Kind as K;
            let kind = match condition {
                Condition::Opened { step } => {
                    K::Opened(pb::EmailOpenedCondition { step: step.clone() })
                }
                Condition::Clicked { step, link } => K::Clicked(pb::EmailClickedCondition {
                    step: step.clone(),
                    link: link.clone(),
                }),
                Condition::MatchesFilter { filter } => K::ContactFilter(filter.clone()),
            };
            A::Branch(pb::BranchAction {
                condition: Some(pb::BranchCondition { kind: Some(kind) }),
                then_step: then_step.clone(),
                else_step: else_step.clone(),
            })
        }
        Action::UpdateContact {
            add_tags,
            remove_tags,
            lifecycle_stage,
            custom_fields,
        } => A::UpdateContact(pb::UpdateContactAction {
            add_tags: add_tags.clone(),
            remove_tags: remove_tags.clone(),
            lifecycle_stage: lifecycle_stage.clone(),
            custom_fields: (!custom_fields.is_empty()).then(|| json_to_struct(custom_fields)),
        }),
        Action::CreateTask {
            title,
            due_in_seconds,
            owner,
        } => A::CreateTask(pb::CreateTaskAction {
            title: title.clone(),
            due_in: Some(prost_types::Duration {
                seconds: *due_in_seconds,
                nanos: 0,
            }),
            owner: owner.clone(),
        }),
        Action::CreateLead { source } => A::CreateLead(pb::CreateLeadAction {
            source: source.clone(),
        }),
    };
    pb::JourneyStep {
        id: s.id.clone(),
        next: s.next.clone(),
        action: Some(action),
    }
}

/// A journey on the wire, with its counts.
pub fn journey_message(j: &Journey, counts: JourneyCounts) -> pb::Journey {
    let d = &j.draft;
    let n = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    let trigger = match &d.trigger {
        Trigger::Manual => pb::JourneyTrigger {
            kind: pb::TriggerKind::Manual.into(),
            ..Default::default()
        },
        Trigger::SegmentEntry { segment } => pb::JourneyTrigger {
            kind: pb::TriggerKind::SegmentEntry.into(),
            segment: segment.clone(),
            ..Default::default()
        },
        Trigger::LeadCreated { source } => pb::JourneyTrigger {
            kind: pb::TriggerKind::LeadCreated.into(),
            lead_source: source.clone(),
            ..Default::default()
        },
        Trigger::TicketSolved => pb::JourneyTrigger {
            kind: pb::TriggerKind::TicketSolved.into(),
            ..Default::default()
        },
        Trigger::DealWon => pb::JourneyTrigger {
            kind: pb::TriggerKind::DealWon.into(),
            ..Default::default()
        },
    };
    pb::Journey {
        name: j.name(),
        display_name: d.display_name.clone(),
        description: d.description.clone(),
        state: match j.state {
            State::Draft => pb::JourneyState::Draft,
            State::Active => pb::JourneyState::Active,
            State::Paused => pb::JourneyState::Paused,
            State::Archived => pb::JourneyState::Archived,
        }
        .into(),
        trigger: Some(trigger),
        reentry: match d.reentry {
            Reentry::Never => pb::Reentry::Never,
            Reentry::AfterEnded => pb::Reentry::AfterEnded,
        }
        .into(),
        exit_filter: d.exit_filter.clone(),
        steps: d.steps.iter().map(step_message).collect(),
        counts: Some(pb::JourneyCounts {
            active: n(counts.active),
            completed: n(counts.completed),
            exited: n(counts.exited),
            failed: n(counts.failed),
            emails_sent: n(counts.emails_sent),
            unique_opens: n(counts.engagement.unique_opens),
            unique_clicks: n(counts.engagement.unique_clicks),
            unsubscribes: n(counts.engagement.unsubscribes),
            bounces: n(counts.engagement.bounces),
        }),
        create_time: Some(to_timestamp(j.create_time)),
        update_time: Some(to_timestamp(j.update_time)),
        delete_time: j.delete_time.map(to_timestamp),
        etag: etag(j.version),
    }
}

/// An enrolment on the wire, with the steps it ran.
pub fn enrollment_message(e: &Enrollment, history: &[StepRun]) -> pb::Enrollment {
    pb::Enrollment {
        name: e.name(),
        contact: e.contact.clone(),
        state: match e.state {
            EnrollmentState::Active => pb::EnrollmentState::Active,
            EnrollmentState::Completed => pb::EnrollmentState::Completed,
            EnrollmentState::Exited => pb::EnrollmentState::Exited,
            EnrollmentState::Failed => pb::EnrollmentState::Failed,
        }
        .into(),
        step: e.step.clone(),
        step_start_time: Some(to_timestamp(e.step_start_time)),
        next_run_time: e.next_run_time.map(to_timestamp),
        reason: e.reason.clone(),
        history: history
            .iter()
            .map(|r| pb::StepRun {
                step: r.step.clone(),
                outcome: r.outcome.clone(),
                run_time: Some(to_timestamp(r.run_time)),
            })
            .collect(),
        source: e.source.clone(),
        create_time: Some(to_timestamp(e.create_time)),
        update_time: Some(to_timestamp(e.update_time)),
    }
}
