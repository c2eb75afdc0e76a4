//! Facts: what one resource contributes to the daily aggregates.
//!
//! A lead, deal or ticket contributes a few facts ("deal won on 3 March,
//! 1,200 EUR, owner ada, pipeline p") derived from its current state. When
//! an event changes the resource, the aggregates receive the difference
//! between what it contributed and what it contributes now, so a deal
//! reopened after being won, a ticket deleted or a lead converted moves
//! every total exactly, and the contribution is kept with the resource for
//! the next change.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The dimensions a fact can be filtered and broken down by; empty when
/// the fact has no value for one.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dims {
    /// The owner or assignee's subject.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// "pipelines/{id}".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline: String,
    /// "campaigns/{id}".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub campaign: String,
    /// "queues/{id}".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub queue: String,
    /// A ticket channel.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// "companies/{id}".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub company: String,
    /// The fact's breakdown group (a lead source, a ticket priority).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
}

/// One contribution to a daily aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// What it counts, for example [`DEAL_WON`].
    pub name: String,
    /// The day it counts on.
    pub day: NaiveDate,
    /// Its dimensions.
    pub dims: Dims,
    /// The currency of `units`/`nanos`; empty when it carries no money.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub currency: String,
    /// How many (usually 1; -1 in a difference).
    pub count: i64,
    /// Money: whole units.
    #[serde(default)]
    pub units: i64,
    /// Money: nano units.
    #[serde(default)]
    pub nanos: i64,
    /// A measured quantity summed with the count (seconds, days).
    #[serde(default)]
    pub measure: f64,
}

impl Fact {
    /// A fact counting one thing.
    pub fn one(name: &str, day: NaiveDate, dims: Dims) -> Self {
        Self {
            name: name.to_owned(),
            day,
            dims,
            currency: String::new(),
            count: 1,
            units: 0,
            nanos: 0,
            measure: 0.0,
        }
    }

    /// With an amount of money.
    pub fn with_money(mut self, currency: &str, units: i64, nanos: i64) -> Self {
        currency.clone_into(&mut self.currency);
        self.units = units;
        self.nanos = nanos;
        self
    }

    /// With a measured quantity.
    pub fn with_measure(mut self, measure: f64) -> Self {
        self.measure = measure;
        self
    }

    /// Adds `other`'s amounts (`sign` 1 or -1) to this one's.
    pub(crate) fn add(&mut self, other: &Fact, sign: i64) {
        self.count += sign * other.count;
        self.units += sign * other.units;
        self.nanos += sign * other.nanos;
        self.measure += sign as f64 * other.measure;
    }

    /// Whether it changes no total.
    pub(crate) fn is_zero(&self) -> bool {
        self.count == 0 && self.units == 0 && self.nanos == 0 && self.measure == 0.0
    }

    /// Where it is aggregated.
    pub(crate) fn key(&self) -> (String, NaiveDate, Dims, String) {
        (
            self.name.clone(),
            self.day,
            self.dims.clone(),
            self.currency.clone(),
        )
    }
}

/// Leads created, on their creation day, grouped by source.
pub const LEAD_CREATED: &str = "lead.created";
/// Leads converted, on their creation day (a cohort), grouped by source.
pub const LEAD_CONVERTED: &str = "lead.converted";
/// Deals won, on their close day, with their amount and cycle in days.
pub const DEAL_WON: &str = "deal.won";
/// Deals lost, on their close day.
pub const DEAL_LOST: &str = "deal.lost";
/// Tickets opened, on their creation day, grouped by channel.
pub const TICKET_BY_CHANNEL: &str = "ticket.by_channel";
/// Tickets opened, on their creation day, grouped by priority.
pub const TICKET_BY_PRIORITY: &str = "ticket.by_priority";
/// Tickets solved, on their (last) solve day, with their resolution seconds.
pub const TICKET_SOLVED: &str = "ticket.solved";
/// Tickets solved, on their solve day, that missed an SLA target.
pub const TICKET_SOLVED_BREACHED: &str = "ticket.solved_breached";
/// Tickets solved, on their solve day, that had been reopened before.
pub const TICKET_SOLVED_REOPENED: &str = "ticket.solved_reopened";
/// +1 on a ticket's creation day, -1 on its solve day: summed up to a day,
/// the tickets open at its end.
pub const TICKET_BACKLOG: &str = "ticket.backlog";
/// Satisfaction ratings, on their day; the group is "good" or "bad".
pub const TICKET_RATED: &str = "ticket.rated";
/// Marketing messages sent (campaigns and journeys), on their day.
pub const EMAIL_SENT: &str = "email.sent";
/// First opens of a message's recipient, per campaign or journey.
pub const EMAIL_OPENED: &str = "email.opened";
/// First clicks, likewise.
pub const EMAIL_CLICKED: &str = "email.clicked";
/// Unsubscribes through marketing email.
pub const EMAIL_UNSUBSCRIBED: &str = "email.unsubscribed";
/// Bounces.
pub const EMAIL_BOUNCED: &str = "email.bounced";

/// What must change in the aggregates for a resource that contributed
/// `old` and now contributes `new`: `new` minus `old`, with facts that
/// cancel out left out.
pub fn difference(old: &[Fact], new: &[Fact]) -> Vec<Fact> {
    let mut net: BTreeMap<(String, NaiveDate, Dims, String), Fact> = BTreeMap::new();
    let mut add = |fact: &Fact, sign: i64| {
        net.entry(fact.key())
            .or_insert_with(|| Fact {
                count: 0,
                units: 0,
                nanos: 0,
                measure: 0.0,
                ..fact.clone()
            })
            .add(fact, sign);
    };
    for fact in old {
        add(fact, -1);
    }
    for fact in new {
        add(fact, 1);
    }
    net.into_values().filter(|f| !f.is_zero()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_reopened_deal_takes_its_win_back() {
        let won = Fact::one(DEAL_WON, day("2026-03-03"), Dims::default())
            .with_money("EUR", 1200, 0)
            .with_measure(12.0);
        let back = difference(std::slice::from_ref(&won), &[]);
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].count, back[0].units, back[0].measure),
            (-1, -1200, -12.0)
        );
        // Unchanged state: nothing to apply.
        let once = std::slice::from_ref(&won);
        assert!(difference(once, once).is_empty());
        // Won again on another day with another amount: one out, one in.
        let again = Fact {
            day: day("2026-03-09"),
            units: 1500,
            ..won.clone()
        };
        let moved = difference(&[won], &[again]);
        assert_eq!(moved.len(), 2);
        assert_eq!(moved.iter().map(|f| f.count).sum::<i64>(), 0);
        assert_eq!(moved.iter().map(|f| f.units).sum::<i64>(), 300);
    }

    #[test]
    fn contributions_survive_json() {
        let fact = Fact::one(
            LEAD_CREATED,
            day("2026-01-02"),
            Dims {
                group: "web".into(),
                ..Default::default()
            },
        );
        let json = serde_json::to_string(&vec![fact.clone()]).unwrap();
        let back: Vec<Fact> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![fact]);
    }
}
