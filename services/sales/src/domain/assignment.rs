//! Assignment rules: which new leads a rule takes (its filter, checked by the
//! store against the lead) and which member gets one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    validate::{MAX_SHORT, Violations},
};
use uuid::Uuid;

/// How a rule picks a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Each member in turn.
    RoundRobin,
    /// The member with the fewest open leads.
    LeastLoaded,
}

/// Every strategy with its stored name.
pub const STRATEGIES: &[(Strategy, &str)] = &[
    (Strategy::RoundRobin, "ROUND_ROBIN"),
    (Strategy::LeastLoaded, "LEAST_LOADED"),
];

/// The writable fields of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDraft {
    /// A name for people.
    pub display_name: String,
    /// Lower goes first.
    pub priority: i32,
    /// AIP-160 over lead fields.
    pub filter: String,
    /// How a member is picked.
    pub strategy: Strategy,
    /// The team.
    pub members: Vec<String>,
}

impl RuleDraft {
    /// Checks the fields (the filter is checked by parsing it, in the store).
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.display_name = self.display_name.trim().to_owned();
        self.members
            .iter_mut()
            .for_each(|m| *m = m.trim().to_owned());
        self.members.dedup();
        let mut v = Violations::default();
        v.text(
            &format!("{prefix}.display_name"),
            &self.display_name,
            MAX_SHORT,
        );
        if self.display_name.is_empty() {
            v.add(format!("{prefix}.display_name"), "required");
        }
        if self.members.is_empty() || self.members.len() > 200 {
            v.add(format!("{prefix}.members"), "1 to 200 owners to assign to");
        }
        for (i, member) in self.members.iter().enumerate() {
            if member.is_empty() || member.len() > MAX_SHORT {
                v.add(
                    format!("{prefix}.members[{i}]"),
                    "an owner id of 1 to 255 characters",
                );
            }
        }
        v.finish()
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The id.
    pub id: Uuid,
    /// Its fields.
    pub draft: RuleDraft,
    /// Round-robin position: how many leads it has assigned.
    pub assigned: i64,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Version.
    pub version: i64,
}

impl Rule {
    /// `assignmentRules/{id}`.
    pub fn name(&self) -> String {
        format!("assignmentRules/{}", self.id)
    }

    /// The member who gets the next lead; `open_leads` counts each member's
    /// open leads (used by least-loaded; ties go to the earlier member).
    pub fn pick(&self, open_leads: &HashMap<String, u64>) -> String {
        let members = &self.draft.members;
        match self.draft.strategy {
            Strategy::RoundRobin => {
                members[(self.assigned.rem_euclid(members.len() as i64)) as usize].clone()
            }
            Strategy::LeastLoaded => members
                .iter()
                .min_by_key(|m| open_leads.get(*m).copied().unwrap_or(0))
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// What the lead records as the reason for its owner.
    pub fn reason(&self) -> String {
        let strategy = match self.draft.strategy {
            Strategy::RoundRobin => "round-robin",
            Strategy::LeastLoaded => "least loaded",
        };
        format!("{} ({}, {strategy})", self.draft.display_name, self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(strategy: Strategy, assigned: i64) -> Rule {
        Rule {
            id: Uuid::nil(),
            draft: RuleDraft {
                display_name: "EMEA".into(),
                priority: 1,
                filter: String::new(),
                strategy,
                members: vec!["ann".into(), "bob".into(), "cy".into()],
            },
            assigned,
            create_time: Utc::now(),
            version: 1,
        }
    }

    #[test]
    fn round_robin_takes_turns() {
        let picks: Vec<String> = (0..4)
            .map(|n| rule(Strategy::RoundRobin, n).pick(&HashMap::new()))
            .collect();
        assert_eq!(picks, ["ann", "bob", "cy", "ann"]);
    }

    #[test]
    fn least_loaded_picks_the_emptiest_desk() {
        let loads = HashMap::from([
            ("ann".to_owned(), 3),
            ("bob".to_owned(), 1),
            ("cy".to_owned(), 1),
        ]);
        assert_eq!(rule(Strategy::LeastLoaded, 0).pick(&loads), "bob");
    }
}
