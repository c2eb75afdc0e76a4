//! Protobuf messages <-> domain values. Reading a request checks what only
//! the wire can get wrong; the domain checks the rest.

use crm_proto::marketing as pb;
use crm_shared::{
    convert::{etag, to_any, to_timestamp},
    error::ApiError,
};

use super::journey_convert::{enrollment_message, journey_message};
use crate::domain::{
    ab_test::{AbTest, Metric, Variant, VariantCounts},
    audience::{ListDraft, MailingList, Segment, SegmentDraft},
    campaign::{
        Audience, Campaign, CampaignDraft, Counts, Recipient, RecipientState, State, returns,
    },
    template::{Template, TemplateDraft},
};
use crate::{
    domain::journey::{Enrollment, Journey},
    store::{EventPayloads, JourneyCounts, StepRun},
};

/// A segment's writable fields.
pub fn segment_draft(s: &pb::Segment) -> SegmentDraft {
    SegmentDraft {
        display_name: s.display_name.clone(),
        description: s.description.clone(),
        filter: s.filter.clone(),
    }
}

/// A segment on the wire.
pub fn segment_message(s: &Segment) -> pb::Segment {
    pb::Segment {
        name: s.name(),
        display_name: s.draft.display_name.clone(),
        description: s.draft.description.clone(),
        filter: s.draft.filter.clone(),
        create_time: Some(to_timestamp(s.create_time)),
        update_time: Some(to_timestamp(s.update_time)),
        delete_time: s.delete_time.map(to_timestamp),
        etag: etag(s.version),
    }
}

/// A list's writable fields.
pub fn list_draft(l: &pb::MailingList) -> ListDraft {
    ListDraft {
        display_name: l.display_name.clone(),
        description: l.description.clone(),
    }
}

/// A list on the wire.
pub fn list_message(l: &MailingList) -> pb::MailingList {
    pb::MailingList {
        name: l.name(),
        display_name: l.draft.display_name.clone(),
        description: l.draft.description.clone(),
        member_count: i32::try_from(l.member_count).unwrap_or(i32::MAX),
        create_time: Some(to_timestamp(l.create_time)),
        delete_time: l.delete_time.map(to_timestamp),
    }
}

/// A template's writable fields.
pub fn template_draft(t: &pb::Template) -> TemplateDraft {
    TemplateDraft {
        display_name: t.display_name.clone(),
        subject: t.subject.clone(),
        html_body: t.html_body.clone(),
        text_body: t.text_body.clone(),
    }
}

/// A template on the wire.
pub fn template_message(t: &Template) -> pb::Template {
    pb::Template {
        name: t.name(),
        display_name: t.draft.display_name.clone(),
        subject: t.draft.subject.clone(),
        html_body: t.draft.html_body.clone(),
        text_body: t.draft.text_body.clone(),
        create_time: Some(to_timestamp(t.create_time)),
        update_time: Some(to_timestamp(t.update_time)),
        delete_time: t.delete_time.map(to_timestamp),
        etag: etag(t.version),
    }
}

/// A campaign's writable fields; INVALID_ARGUMENT naming
/// `campaign.send_time` when it is not a time.
pub fn campaign_draft(c: &pb::Campaign) -> Result<CampaignDraft, ApiError> {
    let audience = c.audience.clone().unwrap_or_default();
    let send_time = match &c.send_time {
        None => None,
        Some(t) => Some(
            from_timestamp(t)
                .ok_or_else(|| ApiError::invalid("campaign.send_time", "not a time"))?,
        ),
    };
    Ok(CampaignDraft {
        display_name: c.display_name.clone(),
        template: c.template.clone(),
        from_address: c.from_address.clone(),
        from_name: c.from_name.clone(),
        reply_to: c.reply_to.clone(),
        audience: Audience {
            segments: audience.segments,
            mailing_lists: audience.mailing_lists,
            excluded_segments: audience.excluded_segments,
            excluded_mailing_lists: audience.excluded_mailing_lists,
        },
        send_time,
        messages_per_second: c.messages_per_second,
        cost: c.cost.clone().map(Into::into),
        ab_test: c.ab_test.as_ref().map(ab_test).transpose()?,
    })
}

/// An A/B test as written; INVALID_ARGUMENT naming `campaign.ab_test.wait`
/// when the wait is not a whole number of seconds.
fn ab_test(t: &pb::AbTest) -> Result<AbTest, ApiError> {
    let wait_seconds = match &t.wait {
        None => 0,
        Some(wait) if wait.nanos == 0 => wait.seconds,
        Some(_) => {
            return Err(ApiError::invalid("campaign.ab_test.wait", "whole seconds"));
        }
    };
    Ok(AbTest {
        subject: t.subject.clone(),
        template: t.template.clone(),
        test_percent: t.test_percent,
        metric: match t.metric() {
            pb::AbMetric::ClickRate => Metric::ClickRate,
            pb::AbMetric::OpenRate | pb::AbMetric::Unspecified => Metric::OpenRate,
        },
        wait_seconds,
    })
}

fn ab_test_message(t: &AbTest) -> pb::AbTest {
    pb::AbTest {
        subject: t.subject.clone(),
        template: t.template.clone(),
        test_percent: t.test_percent,
        metric: match t.metric {
            Metric::OpenRate => pb::AbMetric::OpenRate,
            Metric::ClickRate => pb::AbMetric::ClickRate,
        }
        .into(),
        wait: Some(prost_types::Duration {
            seconds: t.wait_seconds,
            nanos: 0,
        }),
    }
}

fn ab_result_message(c: &Campaign, variants: &[VariantCounts; 2]) -> pb::AbTestResult {
    let n = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    pb::AbTestResult {
        variants: [Variant::A, Variant::B]
            .iter()
            .zip(variants)
            .map(|(variant, counts)| pb::AbVariantResult {
                variant: variant.as_str().into(),
                recipients: n(counts.recipients),
                sent: n(counts.sent),
                unique_opens: n(counts.unique_opens),
                unique_clicks: n(counts.unique_clicks),
            })
            .collect(),
        test_sent_time: c.ab.test_sent_time.map(to_timestamp),
        winner: c
            .ab
            .winner
            .map(|w| w.as_str().to_owned())
            .unwrap_or_default(),
        decide_time: c.ab.decide_time.map(to_timestamp),
    }
}

/// A wire timestamp as a time, if it is one.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

fn state_message(state: State) -> pb::CampaignState {
    match state {
        State::Draft => pb::CampaignState::Draft,
        State::Scheduled => pb::CampaignState::Scheduled,
        State::Sending => pb::CampaignState::Sending,
        State::Paused => pb::CampaignState::Paused,
        State::Sent => pb::CampaignState::Sent,
        State::Cancelled => pb::CampaignState::Cancelled,
    }
}

/// A campaign on the wire, with its counts.
pub fn campaign_message(c: &Campaign, counts: Counts) -> pb::Campaign {
    let d = &c.draft;
    let n = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    pb::Campaign {
        name: c.name(),
        display_name: d.display_name.clone(),
        state: state_message(c.state).into(),
        template: d.template.clone(),
        from_address: d.from_address.clone(),
        from_name: d.from_name.clone(),
        reply_to: d.reply_to.clone(),
        audience: Some(pb::Audience {
            segments: d.audience.segments.clone(),
            mailing_lists: d.audience.mailing_lists.clone(),
            excluded_segments: d.audience.excluded_segments.clone(),
            excluded_mailing_lists: d.audience.excluded_mailing_lists.clone(),
        }),
        send_time: d.send_time.map(to_timestamp),
        messages_per_second: d.messages_per_second,
        counts: Some(pb::CampaignCounts {
            recipients: n(counts.recipients),
            queued: n(counts.queued),
            sent: n(counts.sent),
            failed: n(counts.failed),
            suppressed: n(counts.suppressed),
            uncertain: n(counts.uncertain),
            unique_opens: n(counts.engagement.unique_opens),
            opens: n(counts.engagement.opens),
            unique_clicks: n(counts.engagement.unique_clicks),
            clicks: n(counts.engagement.clicks),
            unsubscribes: n(counts.engagement.unsubscribes),
            bounces: n(counts.engagement.bounces),
            complaints: n(counts.engagement.complaints),
            leads: n(counts.leads),
            won_deals: n(counts.won_deals),
        }),
        cost: d.cost.as_ref().map(Into::into),
        ab_test: d.ab_test.as_ref().map(ab_test_message),
        ab_result: d
            .ab_test
            .as_ref()
            .map(|_| ab_result_message(c, &counts.variants)),
        returns: returns(d.cost.as_ref(), &counts.won)
            .into_iter()
            .map(|r| pb::CampaignReturn {
                currency_code: r.won_revenue.currency_code.clone(),
                won_revenue: Some((&r.won_revenue).into()),
                cost: Some((&r.cost).into()),
                roi: r.roi,
            })
            .collect(),
        start_time: c.start_time.map(to_timestamp),
        finish_time: c.finish_time.map(to_timestamp),
        create_time: Some(to_timestamp(c.create_time)),
        update_time: Some(to_timestamp(c.update_time)),
        delete_time: c.delete_time.map(to_timestamp),
        etag: etag(c.version),
    }
}

fn recipient_state_message(state: RecipientState) -> pb::RecipientState {
    match state {
        // Reserved, not yet sent: still queued, as far as a reader knows.
        RecipientState::Queued | RecipientState::Claimed => pb::RecipientState::Queued,
        RecipientState::Sending => pb::RecipientState::Sending,
        RecipientState::Sent => pb::RecipientState::Sent,
        RecipientState::Failed => pb::RecipientState::Failed,
        RecipientState::Suppressed => pb::RecipientState::Suppressed,
        RecipientState::Uncertain => pb::RecipientState::Uncertain,
    }
}

/// A ledger row on the wire.
pub fn recipient_message(r: &Recipient) -> pb::CampaignRecipient {
    pb::CampaignRecipient {
        name: r.name(),
        contact: r.contact.clone(),
        email: r.email.clone(),
        state: recipient_state_message(r.state).into(),
        reason: r.reason.clone(),
        attempts: r.attempts,
        message_id: r.message_id.clone(),
        update_time: Some(to_timestamp(r.update_time)),
        variant: r.variant.as_str().to_owned(),
    }
}

/// Event payloads as protobuf `Any`s.
pub struct ProtoPayloads;

impl EventPayloads for ProtoPayloads {
    fn segment(&self, segment: &Segment) -> prost_types::Any {
        to_any(&segment_message(segment))
    }

    fn mailing_list(&self, list: &MailingList) -> prost_types::Any {
        to_any(&list_message(list))
    }

    fn template(&self, template: &Template) -> prost_types::Any {
        to_any(&template_message(template))
    }

    fn campaign(&self, campaign: &Campaign, counts: Counts) -> prost_types::Any {
        to_any(&pb::CampaignProgress {
            campaign: Some(campaign_message(campaign, counts)),
        })
    }

    fn email_sent(&self, source: &str, contact: &str, message_id: &str) -> prost_types::Any {
        let (campaign, journey) = split_source(source);
        to_any(&pb::EmailSent {
            campaign,
            contact: contact.to_owned(),
            message_id: message_id.to_owned(),
            journey,
        })
    }

    fn engagement(&self, source: &str, contact: &str, detail: &str) -> prost_types::Any {
        let (campaign, journey) = split_source(source);
        to_any(&pb::EmailEngagement {
            campaign,
            contact: contact.to_owned(),
            detail: detail.to_owned(),
            journey,
        })
    }

    fn unsubscribed(&self, contact: &str, source: &str) -> prost_types::Any {
        let (campaign, journey) = split_source(source);
        to_any(&pb::ContactUnsubscribed {
            contact: contact.to_owned(),
            campaign,
            journey,
        })
    }

    fn journey(&self, journey: &Journey, counts: JourneyCounts) -> prost_types::Any {
        to_any(&journey_message(journey, counts))
    }

    fn enrollment(&self, enrollment: &Enrollment, history: &[StepRun]) -> prost_types::Any {
        to_any(&pb::JourneyEnrollmentChanged {
            journey: format!("journeys/{}", enrollment.journey),
            enrollment: Some(enrollment_message(enrollment, history)),
        })
    }
}

/// A message's source (`campaigns/..` or `journeys/..`) as the payloads'
/// (campaign, journey) fields.
fn split_source(source: &str) -> (String, String) {
    if source.starts_with("journeys/") {
        (String::new(), source.to_owned())
    } else {
        (source.to_owned(), String::new())
    }
}
