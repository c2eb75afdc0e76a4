//! The resources the read model keeps, as the KPIs see them, and the facts
//! each contributes (see [`super::facts`]).

use chrono::{DateTime, Utc};

use super::facts::{self, Dims, Fact};

/// A lead.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lead {
    /// When it was created.
    pub create_time: DateTime<Utc>,
    /// Its source ("web", "campaign", ...).
    pub source: String,
    /// Its owner's subject.
    pub owner: String,
    /// The campaign it names, "campaigns/{id}", or "".
    pub campaign: String,
    /// Whether it has been converted.
    pub converted: bool,
    /// Whether it is deleted (or erased).
    pub deleted: bool,
}

impl Lead {
    /// Created on its creation day; converted on the same day (a cohort).
    pub fn facts(&self) -> Vec<Fact> {
        if self.deleted {
            return Vec::new();
        }
        let dims = Dims {
            owner: self.owner.clone(),
            campaign: self.campaign.clone(),
            group: self.source.clone(),
            ..Dims::default()
        };
        let day = self.create_time.date_naive();
        let mut facts = vec![Fact::one(facts::LEAD_CREATED, day, dims.clone())];
        if self.converted {
            facts.push(Fact::one(facts::LEAD_CONVERTED, day, dims));
        }
        facts
    }
}

/// Where a deal stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DealState {
    /// Open.
    #[default]
    Open,
    /// Won.
    Won,
    /// Lost.
    Lost,
}

/// A deal (an opportunity).
#[derive(Debug, Clone, Default)]
pub struct Deal {
    /// Its owner's subject.
    pub owner: String,
    /// "pipelines/{id}".
    pub pipeline: String,
    /// "companies/{id}" or "".
    pub company: String,
    /// The campaign of the lead it was converted from, or "".
    pub campaign: String,
    /// Open, won or lost.
    pub state: DealState,
    /// The amount's currency ("" without an amount).
    pub currency: String,
    /// The amount's whole units.
    pub units: i64,
    /// The amount's nano units.
    pub nanos: i64,
    /// When it was created.
    pub create_time: DateTime<Utc>,
    /// When it was won or lost.
    pub close_time: Option<DateTime<Utc>>,
    /// Whether it is deleted.
    pub deleted: bool,
}

impl Deal {
    /// Won (with amount and cycle days) or lost, on the close day.
    pub fn facts(&self) -> Vec<Fact> {
        let Some(closed) = self.close_time.filter(|_| !self.deleted) else {
            return Vec::new();
        };
        let dims = Dims {
            owner: self.owner.clone(),
            pipeline: self.pipeline.clone(),
            campaign: self.campaign.clone(),
            company: self.company.clone(),
            ..Dims::default()
        };
        let day = closed.date_naive();
        match self.state {
            DealState::Open => Vec::new(),
            DealState::Lost => vec![Fact::one(facts::DEAL_LOST, day, dims)],
            DealState::Won => {
                let cycle_days = (closed - self.create_time).num_seconds().max(0) as f64 / 86_400.0;
                vec![
                    Fact::one(facts::DEAL_WON, day, dims)
                        .with_money(&self.currency, self.units, self.nanos)
                        .with_measure(cycle_days),
                ]
            }
        }
    }
}

/// A ticket, with its satisfaction rating.
#[derive(Debug, Clone, Default)]
pub struct Ticket {
    /// The assignee's subject.
    pub owner: String,
    /// "queues/{id}".
    pub queue: String,
    /// "email", "web", ...
    pub channel: String,
    /// "low", "normal", "high", "urgent".
    pub priority: String,
    /// "companies/{id}" or "".
    pub company: String,
    /// When it was opened.
    pub create_time: DateTime<Utc>,
    /// The first public agent reply.
    pub first_response_time: Option<DateTime<Utc>>,
    /// The last solve, while solved or closed.
    pub solve_time: Option<DateTime<Utc>>,
    /// Times reopened.
    pub reopen_count: i32,
    /// Whether an SLA target was missed.
    pub sla_breached: bool,
    /// The last satisfaction rating (1..5) and when it was given.
    pub rating: Option<(i32, DateTime<Utc>)>,
    /// Whether it is deleted.
    pub deleted: bool,
}

impl Ticket {
    /// The dimensions its facts carry.
    pub fn dims(&self) -> Dims {
        Dims {
            owner: self.owner.clone(),
            queue: self.queue.clone(),
            channel: self.channel.clone(),
            company: self.company.clone(),
            ..Dims::default()
        }
    }

    /// Seconds from creation to the first response.
    pub fn first_response_seconds(&self) -> Option<i64> {
        self.first_response_time
            .map(|t| (t - self.create_time).num_seconds().max(0))
    }

    /// Seconds from creation to the (last) solve.
    pub fn resolution_seconds(&self) -> Option<i64> {
        self.solve_time
            .map(|t| (t - self.create_time).num_seconds().max(0))
    }

    /// Opened (per channel, per priority, into the backlog), solved (out of
    /// the backlog; breached, reopened) and rated.
    pub fn facts(&self) -> Vec<Fact> {
        if self.deleted {
            return Vec::new();
        }
        let dims = self.dims();
        let grouped = |name: &str, group: &str, day| {
            Fact::one(
                name,
                day,
                Dims {
                    group: group.to_owned(),
                    ..dims.clone()
                },
            )
        };
        let opened = self.create_time.date_naive();
        let mut facts = vec![
            grouped(facts::TICKET_BY_CHANNEL, &self.channel, opened),
            grouped(facts::TICKET_BY_PRIORITY, &self.priority, opened),
            Fact::one(facts::TICKET_BACKLOG, opened, dims.clone()),
        ];
        if let Some(solved) = self.solve_time {
            let day = solved.date_naive();
            let seconds = self.resolution_seconds().unwrap_or_default() as f64;
            facts.push(Fact::one(facts::TICKET_SOLVED, day, dims.clone()).with_measure(seconds));
            facts.push(Fact {
                count: -1,
                ..Fact::one(facts::TICKET_BACKLOG, day, dims.clone())
            });
            if self.sla_breached {
                facts.push(Fact::one(facts::TICKET_SOLVED_BREACHED, day, dims.clone()));
            }
            if self.reopen_count > 0 {
                facts.push(Fact::one(facts::TICKET_SOLVED_REOPENED, day, dims.clone()));
            }
        }
        if let Some((rating, time)) = self.rating {
            let group = if rating >= 4 { "good" } else { "bad" };
            facts.push(grouped(facts::TICKET_RATED, group, time.date_naive()));
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::facts::difference;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_solved_ticket_leaves_the_backlog_and_a_reopened_one_returns() {
        let open = Ticket {
            channel: "email".into(),
            priority: "high".into(),
            create_time: at("2026-03-01T10:00:00Z"),
            ..Ticket::default()
        };
        let solved = Ticket {
            solve_time: Some(at("2026-03-02T10:00:00Z")),
            sla_breached: true,
            ..open.clone()
        };
        let backlog = |facts: &[Fact]| {
            facts
                .iter()
                .filter(|f| f.name == facts::TICKET_BACKLOG)
                .map(|f| f.count)
                .sum::<i64>()
        };
        assert_eq!(backlog(&open.facts()), 1);
        assert_eq!(backlog(&solved.facts()), 0);
        let change = difference(
            &solved.facts(),
            &Ticket {
                reopen_count: 1,
                ..open.clone()
            }
            .facts(),
        );
        assert_eq!(backlog(&change), 1);
        assert!(
            change
                .iter()
                .any(|f| f.name == facts::TICKET_SOLVED_BREACHED && f.count == -1)
        );
        assert_eq!(solved.resolution_seconds(), Some(86_400));
    }

    #[test]
    fn a_won_deal_counts_its_amount_and_cycle() {
        let deal = Deal {
            state: DealState::Won,
            currency: "EUR".into(),
            units: 1200,
            create_time: at("2026-03-01T00:00:00Z"),
            close_time: Some(at("2026-03-11T00:00:00Z")),
            ..Deal::default()
        };
        let facts = deal.facts();
        assert_eq!(facts.len(), 1);
        assert_eq!((facts[0].units, facts[0].measure), (1200, 10.0));
        assert!(
            Deal {
                deleted: true,
                ..deal
            }
            .facts()
            .is_empty()
        );
    }
}

/// Whether a person may be sent marketing email.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consent {
    /// Nothing recorded.
    #[default]
    Unknown,
    /// Opted in.
    Granted,
    /// Opted out.
    Withdrawn,
}

impl Consent {
    /// As stored.
    pub fn code(self) -> i32 {
        match self {
            Self::Unknown => 0,
            Self::Granted => 1,
            Self::Withdrawn => 2,
        }
    }

    /// From what is stored.
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => Self::Granted,
            2 => Self::Withdrawn,
            _ => Self::Unknown,
        }
    }
}

/// A contact as the customer view shows it.
#[derive(Debug, Clone, Default)]
pub struct Contact {
    /// "contacts/{id}".
    pub name: String,
    /// Its display name.
    pub display_name: String,
    /// Its primary email address.
    pub email: String,
    /// "companies/{id}" or "".
    pub company: String,
    /// Its lifecycle stage ("customer", ...).
    pub lifecycle_stage: String,
    /// Email consent.
    pub email_consent: Consent,
    /// The survivor it was merged into, or "".
    pub merged_into: String,
    /// When it was created.
    pub create_time: Option<DateTime<Utc>>,
}

/// A deal with what identifies it, beside what the KPIs need.
#[derive(Debug, Clone, Default)]
pub struct DealRecord {
    /// "opportunities/{id}".
    pub name: String,
    /// Its title.
    pub display_name: String,
    /// "contacts/{id}" or "".
    pub contact: String,
    /// Its stage, "pipelines/{p}/stages/{s}".
    pub stage: String,
    /// The lead it was converted from, or "".
    pub source_lead: String,
    /// When it is expected to close, "YYYY-MM-DD", or "".
    pub expected_close_day: String,
    /// What the KPIs need (its campaign is the source lead's, filled in by the store).
    pub deal: Deal,
}

impl DealRecord {
    /// Whom the deal makes a customer: its company, else its contact.
    pub fn customer(&self) -> &str {
        if self.deal.company.is_empty() {
            &self.contact
        } else {
            &self.deal.company
        }
    }
}

/// A ticket with what identifies it, beside what the KPIs need.
#[derive(Debug, Clone, Default)]
pub struct TicketRecord {
    /// "tickets/{id}".
    pub name: String,
    /// Its subject.
    pub subject: String,
    /// The requester, "contacts/{id}".
    pub contact: String,
    /// "new", "open", "pending", "on_hold", "solved", "closed".
    pub status: String,
    /// The earliest SLA target still running.
    pub next_sla_due_time: Option<DateTime<Utc>>,
    /// What the KPIs need (its rating is kept by the store).
    pub ticket: Ticket,
}

/// What happened to a marketing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailOutcome {
    /// Accepted by the relay.
    Sent,
    /// Opened.
    Opened,
    /// A link clicked.
    Clicked,
    /// Unsubscribed through it.
    Unsubscribed,
    /// Bounced.
    Bounced,
    /// Marked as spam.
    Complained,
}

impl EmailOutcome {
    /// Its name in the customer view.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Opened => "opened",
            Self::Clicked => "clicked",
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
        }
    }

    /// The aggregate it counts in; None for complaints (no KPI counts them).
    pub fn fact(self) -> Option<&'static str> {
        match self {
            Self::Sent => Some(facts::EMAIL_SENT),
            Self::Opened => Some(facts::EMAIL_OPENED),
            Self::Clicked => Some(facts::EMAIL_CLICKED),
            Self::Unsubscribed => Some(facts::EMAIL_UNSUBSCRIBED),
            Self::Bounced => Some(facts::EMAIL_BOUNCED),
            Self::Complained => None,
        }
    }

    /// Whether only a person's first one per campaign counts (opens and
    /// clicks are counted per recipient, not per pixel load).
    pub fn counts_once(self) -> bool {
        matches!(self, Self::Opened | Self::Clicked)
    }
}

/// One marketing message event.
#[derive(Debug, Clone)]
pub struct EmailEvent {
    /// What happened.
    pub outcome: EmailOutcome,
    /// "campaigns/{id}" or "".
    pub campaign: String,
    /// "journeys/{id}" or "".
    pub journey: String,
    /// "contacts/{id}".
    pub contact: String,
    /// When.
    pub time: DateTime<Utc>,
}

impl EmailEvent {
    /// The campaign it belongs to, else its journey.
    pub fn source(&self) -> &str {
        if self.campaign.is_empty() {
            &self.journey
        } else {
            &self.campaign
        }
    }
}

/// A campaign's name, cost and first send.
#[derive(Debug, Clone, Default)]
pub struct Campaign {
    /// "campaigns/{id}".
    pub name: String,
    /// Its name.
    pub display_name: String,
    /// Its cost: currency, units, nanos ("" currency when none).
    pub cost: (String, i64, i32),
    /// When it started sending.
    pub start_time: Option<DateTime<Utc>>,
    /// Whether it is deleted.
    pub deleted: bool,
}

/// One entry of a customer's timeline.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    /// The event's id at its source.
    pub event_id: String,
    /// "contacts/{id}".
    pub contact: String,
    /// When.
    pub time: DateTime<Utc>,
    /// "contact", "lead", "deal", "ticket", "email", "journey", "activity", "consent".
    pub kind: String,
    /// The source service.
    pub source: String,
    /// The event type.
    pub event_type: String,
    /// The resource.
    pub subject: String,
    /// One line.
    pub summary: String,
}
