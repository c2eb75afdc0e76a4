//! Campaigns: one email to an audience. A campaign is written as a DRAFT,
//! SCHEDULED for a time, SENDING once its audience is resolved into its
//! ledger (one row per recipient), and SENT when every row is handled; it
//! may be PAUSED and resumed, or CANCELLED. Each ledger row moves QUEUED ->
//! CLAIMED (reserved by a sending pass) -> SENDING -> SENT / FAILED /
//! SUPPRESSED (or back to QUEUED to retry later); a row left SENDING by a
//! stopped process becomes UNCERTAIN and is never sent again (see
//! `store::ledger` for the one window that remains).

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    money::{Money, Totals},
    validate::{MAX_SHORT, Violations, is_email},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::ab_test::{AbProgress, AbTest};

/// The default send rate.
pub const DEFAULT_MESSAGES_PER_SECOND: i32 = 10;
/// The highest send rate a campaign may ask for.
const MAX_MESSAGES_PER_SECOND: i32 = 1000;
/// The most segments and lists an audience may name, included and excluded.
const MAX_GROUPS: usize = 50;

/// Where a campaign is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being written.
    Draft,
    /// Waiting for its send time.
    Scheduled,
    /// Sending.
    Sending,
    /// Paused.
    Paused,
    /// Every recipient handled.
    Sent,
    /// Cancelled.
    Cancelled,
}

/// Every state with its stored name.
pub const STATES: &[(State, &str)] = &[
    (State::Draft, "DRAFT"),
    (State::Scheduled, "SCHEDULED"),
    (State::Sending, "SENDING"),
    (State::Paused, "PAUSED"),
    (State::Sent, "SENT"),
    (State::Cancelled, "CANCELLED"),
];

/// Who a campaign goes to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Audience {
    /// `segments/{id}`.
    pub segments: Vec<String>,
    /// `mailingLists/{id}`.
    pub mailing_lists: Vec<String>,
    /// Segments left out.
    pub excluded_segments: Vec<String>,
    /// Lists left out.
    pub excluded_mailing_lists: Vec<String>,
}

impl Audience {
    /// Every named group with the field naming it, for reference checks.
    pub fn groups(&self) -> Vec<(&'static str, &str)> {
        [
            ("segments", &self.segments),
            ("mailing_lists", &self.mailing_lists),
            ("excluded_segments", &self.excluded_segments),
            ("excluded_mailing_lists", &self.excluded_mailing_lists),
        ]
        .into_iter()
        .flat_map(|(field, names)| names.iter().map(move |n| (field, n.as_str())))
        .collect()
    }
}

/// What a campaign is written with.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignDraft {
    /// For people.
    pub display_name: String,
    /// `templates/{id}`.
    pub template: String,
    /// The sender's address.
    pub from_address: String,
    /// The sender's name.
    pub from_name: String,
    /// Where replies go.
    pub reply_to: String,
    /// Who it goes to.
    pub audience: Audience,
    /// When to send.
    pub send_time: Option<DateTime<Utc>>,
    /// The send rate.
    pub messages_per_second: i32,
    /// What it cost.
    pub cost: Option<Money>,
    /// A test of a second subject or template.
    pub ab_test: Option<AbTest>,
}

/// The fields UpdateCampaign may change.
pub const CAMPAIGN_FIELDS: &[&str] = &[
    "display_name",
    "template",
    "from_address",
    "from_name",
    "reply_to",
    "audience",
    "send_time",
    "messages_per_second",
    "ab_test",
    "cost",
];

/// The fields that may change after a campaign leaves DRAFT.
const LATE_FIELDS: &[&str] = &["cost"];

impl CampaignDraft {
    /// Trims and checks; INVALID_ARGUMENT naming `{prefix}.<field>`.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        for value in [
            &mut self.display_name,
            &mut self.template,
            &mut self.from_name,
        ] {
            *value = value.trim().to_owned();
        }
        self.from_address = self.from_address.trim().to_lowercase();
        self.reply_to = self.reply_to.trim().to_lowercase();
        if self.messages_per_second == 0 {
            self.messages_per_second = DEFAULT_MESSAGES_PER_SECOND;
        }
        let field = |name: &str| format!("{prefix}.{name}");
        let mut v = Violations::default();
        if self.display_name.is_empty() {
            v.add(field("display_name"), "required");
        }
        v.text(&field("display_name"), &self.display_name, MAX_SHORT);
        v.text(&field("from_name"), &self.from_name, MAX_SHORT);
        if self.template.is_empty() {
            v.add(field("template"), "required");
        } else {
            v.reference(&field("template"), &self.template, "templates");
        }
        if !is_email(&self.from_address) {
            v.add(field("from_address"), "required: an email address");
        }
        if !self.reply_to.is_empty() && !is_email(&self.reply_to) {
            v.add(field("reply_to"), "not an email address");
        }
        if !(1..=MAX_MESSAGES_PER_SECOND).contains(&self.messages_per_second) {
            v.add(
                field("messages_per_second"),
                format!("1 to {MAX_MESSAGES_PER_SECOND}"),
            );
        }
        let a = &mut self.audience;
        for names in [
            &mut a.segments,
            &mut a.mailing_lists,
            &mut a.excluded_segments,
            &mut a.excluded_mailing_lists,
        ] {
            for name in names.iter_mut() {
                *name = name.trim().to_owned();
            }
            names.sort();
            names.dedup();
        }
        if let Some(cost) = &self.cost {
            cost.check(&field("cost"), &mut v);
            if cost.total_nanos() < 0 {
                v.add(field("cost"), "not negative");
            }
        }
        if let Some(test) = &mut self.ab_test {
            test.normalize_and_check(&field("ab_test"), &mut v);
        }
        let a = &mut self.audience;
        if a.segments.is_empty() && a.mailing_lists.is_empty() {
            v.add(field("audience"), "at least one segment or mailing list");
        }
        if a.groups().len() > MAX_GROUPS {
            v.add(
                field("audience"),
                format!("at most {MAX_GROUPS} segments and lists"),
            );
        }
        for (group, name) in a.groups() {
            let collection = if group.ends_with("segments") {
                "segments"
            } else {
                "mailingLists"
            };
            v.reference(&field(&format!("audience.{group}")), name, collection);
        }
        v.finish()
    }

    /// Copies the fields named in `paths` from `patch`.
    pub fn apply(&mut self, paths: &[&str], patch: &CampaignDraft) {
        for path in paths {
            match *path {
                "display_name" => self.display_name.clone_from(&patch.display_name),
                "template" => self.template.clone_from(&patch.template),
                "from_address" => self.from_address.clone_from(&patch.from_address),
                "from_name" => self.from_name.clone_from(&patch.from_name),
                "reply_to" => self.reply_to.clone_from(&patch.reply_to),
                "audience" => self.audience.clone_from(&patch.audience),
                "send_time" => self.send_time = patch.send_time,
                "messages_per_second" => self.messages_per_second = patch.messages_per_second,
                "ab_test" => self.ab_test.clone_from(&patch.ab_test),
                "cost" => self.cost.clone_from(&patch.cost),
                _ => {}
            }
        }
    }
}

/// A campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    /// Its id.
    pub id: Uuid,
    /// Its fields.
    pub draft: CampaignDraft,
    /// Where it is.
    pub state: State,
    /// Whether its ledger holds its whole audience.
    pub audience_built: bool,
    /// Where its A/B test is.
    pub ab: AbProgress,
    /// Sending began.
    pub start_time: Option<DateTime<Utc>>,
    /// Every recipient handled.
    pub finish_time: Option<DateTime<Utc>>,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// The row's version.
    pub version: i64,
}

impl Campaign {
    /// A new draft.
    pub fn new(draft: CampaignDraft, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            draft,
            state: State::Draft,
            audience_built: false,
            ab: AbProgress::default(),
            start_time: None,
            finish_time: None,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        }
    }

    /// `campaigns/{id}`.
    pub fn name(&self) -> String {
        format!("campaigns/{}", self.id)
    }

    /// Only a draft may be edited, but for its cost, which is often known
    /// only later.
    pub fn check_editable(&self, paths: &[&str]) -> Result<(), ApiError> {
        if paths.iter().all(|p| LATE_FIELDS.contains(p)) {
            return Ok(());
        }
        self.require(&[State::Draft], "edited")
    }

    /// Draft -> scheduled, for `send_time` if given (else its own, else now).
    pub fn schedule(
        &mut self,
        send_time: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        self.require(&[State::Draft], "scheduled")?;
        self.draft.send_time = send_time.or(self.draft.send_time).or(Some(now));
        self.state = State::Scheduled;
        Ok(())
    }

    /// Scheduled or sending -> paused.
    pub fn pause(&mut self) -> Result<(), ApiError> {
        self.require(&[State::Scheduled, State::Sending], "paused")?;
        self.state = State::Paused;
        Ok(())
    }

    /// Paused -> where it was: sending once its audience is resolved, else scheduled.
    pub fn resume(&mut self) -> Result<(), ApiError> {
        self.require(&[State::Paused], "resumed")?;
        self.state = if self.audience_built {
            State::Sending
        } else {
            State::Scheduled
        };
        Ok(())
    }

    /// Anything unfinished -> cancelled.
    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<(), ApiError> {
        self.require(
            &[
                State::Draft,
                State::Scheduled,
                State::Sending,
                State::Paused,
            ],
            "cancelled",
        )?;
        self.state = State::Cancelled;
        self.finish_time = Some(now);
        Ok(())
    }

    /// A campaign being sent may not be deleted; pause or cancel it first.
    pub fn check_deletable(&self) -> Result<(), ApiError> {
        if self.state == State::Sending {
            return Err(ApiError::FailedPrecondition(format!(
                "{} is sending: cancel it first",
                self.name()
            )));
        }
        Ok(())
    }

    /// Scheduled -> sending, once its audience is in the ledger.
    pub fn start(&mut self, now: DateTime<Utc>) {
        self.audience_built = true;
        self.state = State::Sending;
        self.start_time = Some(now);
    }

    /// Sending -> sent.
    pub fn finish(&mut self, now: DateTime<Utc>) {
        self.state = State::Sent;
        self.finish_time = Some(now);
    }

    fn require(&self, allowed: &[State], what: &str) -> Result<(), ApiError> {
        if allowed.contains(&self.state) {
            return Ok(());
        }
        let state = STATES
            .iter()
            .find(|(s, _)| *s == self.state)
            .map_or("", |(_, name)| name);
        Err(ApiError::FailedPrecondition(format!(
            "{} is {state} and cannot be {what}",
            self.name()
        )))
    }
}

/// Where one recipient of a campaign is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    /// Waiting.
    Queued,
    /// Reserved by a sending pass; nothing sent yet.
    Claimed,
    /// Handed to the mail server.
    Sending,
    /// Accepted.
    Sent,
    /// Refused for good.
    Failed,
    /// Left out at send time.
    Suppressed,
    /// Sending when a process stopped; never resent.
    Uncertain,
}

/// Every recipient state with its stored name.
pub const RECIPIENT_STATES: &[(RecipientState, &str)] = &[
    (RecipientState::Queued, "QUEUED"),
    (RecipientState::Claimed, "CLAIMED"),
    (RecipientState::Sending, "SENDING"),
    (RecipientState::Sent, "SENT"),
    (RecipientState::Failed, "FAILED"),
    (RecipientState::Suppressed, "SUPPRESSED"),
    (RecipientState::Uncertain, "UNCERTAIN"),
];

/// One ledger row.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    /// The campaign.
    pub campaign: Uuid,
    /// `contacts/{id}`.
    pub contact: String,
    /// The address used.
    pub email: String,
    /// Where it is.
    pub state: RecipientState,
    /// Why suppressed or failed, or the server's answer.
    pub reason: String,
    /// Sending attempts.
    pub attempts: i32,
    /// The message's Message-ID.
    pub message_id: String,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Its A/B variant.
    pub variant: crate::domain::ab_test::Variant,
}

impl Recipient {
    /// `campaigns/{id}/recipients/{contact id}`.
    pub fn name(&self) -> String {
        let contact = self.contact.trim_start_matches("contacts/");
        format!("campaigns/{}/recipients/{contact}", self.campaign)
    }
}

/// How many recipients are where, and what they did with the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Opens, clicks, unsubscribes, bounces, complaints.
    pub engagement: crate::domain::tracking::EngagementCounts,
    /// In the audience.
    pub recipients: i64,
    /// Waiting.
    pub queued: i64,
    /// Accepted.
    pub sent: i64,
    /// Refused.
    pub failed: i64,
    /// Left out.
    pub suppressed: i64,
    /// Perhaps delivered.
    pub uncertain: i64,
    /// Leads in sales naming it.
    pub leads: i64,
    /// Deals won from them.
    pub won_deals: i64,
    /// Those deals' amounts per currency.
    pub won: Totals,
    /// The A/B test's variants, A and B (zero without a test).
    pub variants: [crate::domain::ab_test::VariantCounts; 2],
}

/// What a campaign brought in, in one currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Return {
    /// Won revenue from its leads.
    pub won_revenue: Money,
    /// Its cost, when in this currency; else zero.
    pub cost: Money,
    /// (won - cost) / cost, when the cost is in this currency and not zero.
    pub roi: Option<f64>,
}

/// Won revenue, cost and ROI per currency: a line for each currency won in
/// and for the cost's; never a sum across currencies.
pub fn returns(cost: Option<&Money>, won: &Totals) -> Vec<Return> {
    let mut totals = won.clone();
    if let Some(cost) = cost {
        totals.touch(&cost.currency_code);
    }
    totals
        .currencies()
        .map(|currency| {
            let won_revenue = totals.get(currency);
            let cost = cost
                .filter(|c| c.currency_code == currency)
                .cloned()
                .unwrap_or_else(|| Money::from_nanos(currency, 0));
            let spent = cost.total_nanos();
            let roi =
                (spent > 0).then(|| (won_revenue.total_nanos() - spent) as f64 / spent as f64);
            Return {
                won_revenue,
                cost,
                roi,
            }
        })
        .collect()
}

impl Counts {
    /// Adds `n` rows in `state`.
    pub fn add(&mut self, state: RecipientState, n: i64) {
        self.recipients += n;
        match state {
            // A row being sent is still to be resolved.
            RecipientState::Queued | RecipientState::Claimed | RecipientState::Sending => {
                self.queued += n
            }
            RecipientState::Sent => self.sent += n,
            RecipientState::Failed => self.failed += n,
            RecipientState::Suppressed => self.suppressed += n,
            RecipientState::Uncertain => self.uncertain += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> CampaignDraft {
        CampaignDraft {
            display_name: " Launch ".into(),
            template: "templates/0196f3c0-0000-7000-8000-000000000000".into(),
            from_address: "News@Example.com".into(),
            from_name: "Acme".into(),
            reply_to: String::new(),
            audience: Audience {
                segments: vec!["segments/0196f3c0-0000-7000-8000-000000000001".into(); 2],
                ..Default::default()
            },
            send_time: None,
            messages_per_second: 0,
            cost: None,
            ab_test: None,
        }
    }

    #[test]
    fn a_draft_is_normalised_and_its_audience_deduplicated() {
        let mut d = draft();
        d.normalize_and_check("campaign").unwrap();
        assert_eq!(d.display_name, "Launch");
        assert_eq!(d.from_address, "news@example.com");
        assert_eq!(d.messages_per_second, DEFAULT_MESSAGES_PER_SECOND);
        assert_eq!(d.audience.segments.len(), 1);
    }

    #[test]
    fn bad_fields_are_named() {
        let mut d = CampaignDraft {
            from_address: "nobody".into(),
            messages_per_second: 5000,
            audience: Audience {
                mailing_lists: vec!["segments/x".into()],
                ..Default::default()
            },
            ..draft()
        };
        let Err(ApiError::InvalidArgument(v)) = d.normalize_and_check("campaign") else {
            panic!("accepted");
        };
        let fields: Vec<&str> = v.iter().map(|f| f.field.as_str()).collect();
        assert!(fields.contains(&"campaign.from_address"), "{fields:?}");
        assert!(
            fields.contains(&"campaign.messages_per_second"),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"campaign.audience.mailing_lists"),
            "{fields:?}"
        );
    }

    #[test]
    fn the_workflow_allows_only_its_moves() {
        let now = Utc::now();
        let mut c = Campaign::new(draft(), now);
        assert!(c.pause().is_err(), "a draft does not pause");
        c.schedule(None, now).unwrap();
        assert_eq!(c.draft.send_time, Some(now));
        assert!(c.check_editable(&["display_name"]).is_err());
        c.check_editable(&["cost"]).unwrap();
        c.pause().unwrap();
        c.resume().unwrap();
        assert_eq!(c.state, State::Scheduled, "not started: back to scheduled");
        c.start(now);
        c.pause().unwrap();
        c.resume().unwrap();
        assert_eq!(c.state, State::Sending, "started: back to sending");
        assert!(c.check_deletable().is_err());
        c.cancel(now).unwrap();
        assert!(c.cancel(now).is_err());
        assert!(c.schedule(None, now).is_err());
    }

    #[test]
    fn returns_are_per_currency_with_roi_only_where_the_cost_is() {
        let eur = |units| Money {
            currency_code: "EUR".into(),
            units,
            nanos: 0,
        };
        let mut won = Totals::default();
        won.add(&eur(3000));
        won.add(&Money {
            currency_code: "USD".into(),
            units: 500,
            nanos: 0,
        });
        let lines = returns(Some(&eur(1000)), &won);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].won_revenue, eur(3000));
        assert_eq!(lines[0].cost, eur(1000));
        assert_eq!(lines[0].roi, Some(2.0));
        assert_eq!(lines[1].won_revenue.currency_code, "USD");
        assert_eq!((lines[1].cost.units, lines[1].roi), (0, None));
        // A cost with nothing won yet: a line at -100 %.
        let lines = returns(Some(&eur(10)), &Totals::default());
        assert_eq!(lines[0].roi, Some(-1.0));
        assert!(returns(None, &Totals::default()).is_empty());
    }

    #[test]
    fn counts_hold_every_row_once() {
        let mut counts = Counts::default();
        counts.add(RecipientState::Sent, 3);
        counts.add(RecipientState::Sending, 1);
        counts.add(RecipientState::Suppressed, 2);
        assert_eq!(
            (
                counts.recipients,
                counts.queued,
                counts.sent,
                counts.suppressed
            ),
            (6, 1, 3, 2)
        );
    }
}
