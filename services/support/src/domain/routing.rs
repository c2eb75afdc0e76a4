//! Queues, agents and routing rules, and how a new ticket's agent is picked.
//!
//! A routing rule (an AIP-160 filter over the ticket, matched by the store)
//! sends a new ticket to a queue; the queue's strategy picks one of its
//! members who is available: in turn, the least loaded, or by skill.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    validate::{MAX_LONG, MAX_SHORT, Violations, normalize_tags},
};
use uuid::Uuid;

use super::ticket::Priority;

/// How a queue picks an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Nobody: tickets wait unassigned.
    Manual,
    /// Each available member in turn.
    RoundRobin,
    /// The available member with the fewest unsolved tickets.
    LeastOpen,
    /// An available member with the skills, most matching skills first.
    Skills,
}

/// Every strategy with its stored name.
pub const STRATEGIES: &[(Strategy, &str)] = &[
    (Strategy::Manual, "MANUAL"),
    (Strategy::RoundRobin, "ROUND_ROBIN"),
    (Strategy::LeastOpen, "LEAST_OPEN"),
    (Strategy::Skills, "SKILLS"),
];

/// The most members of one queue.
const MAX_MEMBERS: usize = 500;

/// The fields a caller writes of a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDraft {
    /// A name for people.
    pub display_name: String,
    /// For people.
    pub description: String,
    /// Agents' subject ids.
    pub members: Vec<String>,
    /// How an agent is picked.
    pub strategy: Strategy,
    /// Skills the SKILLS strategy requires.
    pub required_skills: Vec<String>,
}

/// The fields UpdateQueue may change.
pub const QUEUE_FIELDS: &[&str] = &[
    "display_name",
    "description",
    "members",
    "strategy",
    "required_skills",
];

impl QueueDraft {
    /// Trims and checks; `prefix` names the message.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.display_name = self.display_name.trim().to_owned();
        self.members
            .iter_mut()
            .for_each(|m| *m = m.trim().to_owned());
        let mut seen = std::collections::HashSet::new();
        self.members
            .retain(|m| !m.is_empty() && seen.insert(m.clone()));
        normalize_skills(&mut self.required_skills);
        let mut v = Violations::default();
        if self.display_name.is_empty() {
            v.add(format!("{prefix}.display_name"), "required");
        }
        v.text(
            &format!("{prefix}.display_name"),
            &self.display_name,
            MAX_SHORT,
        );
        v.text(
            &format!("{prefix}.description"),
            &self.description,
            MAX_LONG,
        );
        if self.members.len() > MAX_MEMBERS {
            v.add(
                format!("{prefix}.members"),
                format!("at most {MAX_MEMBERS}"),
            );
        }
        for (i, m) in self.members.iter().enumerate() {
            v.text(&format!("{prefix}.members[{i}]"), m, MAX_SHORT);
        }
        v.tags(&format!("{prefix}.required_skills"), &self.required_skills);
        v.finish()
    }

    /// Copies the fields named in `paths` from `from`.
    pub fn apply(&mut self, paths: &[&str], from: &QueueDraft) {
        for path in paths {
            match *path {
                "display_name" => self.display_name = from.display_name.clone(),
                "description" => self.description = from.description.clone(),
                "members" => self.members = from.members.clone(),
                "strategy" => self.strategy = from.strategy,
                "required_skills" => self.required_skills = from.required_skills.clone(),
                _ => {}
            }
        }
    }
}

/// Skills and tags compare lower-cased and trimmed, once each.
pub fn normalize_skills(skills: &mut Vec<String>) {
    skills.iter_mut().for_each(|s| *s = s.to_lowercase());
    normalize_tags(skills);
}

/// A stored queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    /// The id.
    pub id: Uuid,
    /// The caller's fields.
    pub draft: QueueDraft,
    /// Tickets assigned by the round robin so far: whose turn it is.
    pub assigned: i64,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Changed.
    pub update_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// Version.
    pub version: i64,
}

/// What routing knows of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// The subject id.
    pub subject: String,
    /// For people.
    pub display_name: String,
    /// Lower-case skills.
    pub skills: Vec<String>,
    /// May get new tickets.
    pub available: bool,
    /// Changed.
    pub update_time: DateTime<Utc>,
    /// Version.
    pub version: i64,
}

/// The fields UpdateAgent may change.
pub const AGENT_FIELDS: &[&str] = &["display_name", "skills", "available"];

impl Agent {
    /// `agents/{subject}`.
    pub fn name(&self) -> String {
        format!("agents/{}", self.subject)
    }

    /// Trims and checks; `prefix` names the message.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.display_name = self.display_name.trim().to_owned();
        normalize_skills(&mut self.skills);
        let mut v = Violations::default();
        v.text(
            &format!("{prefix}.display_name"),
            &self.display_name,
            MAX_SHORT,
        );
        v.tags(&format!("{prefix}.skills"), &self.skills);
        v.finish()
    }
}

/// The subject in `agents/{subject}`; INVALID_ARGUMENT on `field` otherwise.
pub fn agent_subject<'a>(name: &'a str, field: &str) -> Result<&'a str, ApiError> {
    match name.strip_prefix("agents/") {
        Some(subject) if !subject.is_empty() && subject.len() <= MAX_SHORT => Ok(subject),
        _ => Err(ApiError::invalid(field, "expected agents/{subject id}")),
    }
}

impl Queue {
    /// `queues/{id}`.
    pub fn name(&self) -> String {
        format!("queues/{}", self.id)
    }

    /// The member a new ticket with `tags` goes to, and why; `profiles` are
    /// the members' agent profiles (a member without one is available and
    /// has no skills), `loads` their unsolved tickets. None when nobody
    /// available fits. The round robin uses `assigned` as its position.
    pub fn pick(
        &self,
        tags: &[String],
        profiles: &HashMap<String, Agent>,
        loads: &HashMap<String, i64>,
    ) -> Option<(String, String)> {
        let available: Vec<&String> = self
            .draft
            .members
            .iter()
            .filter(|m| profiles.get(*m).is_none_or(|a| a.available))
            .collect();
        if available.is_empty() {
            return None;
        }
        let load = |m: &String| loads.get(m).copied().unwrap_or(0);
        let reason = |how: &str| format!("queue {}: {how}", self.draft.display_name);
        match self.draft.strategy {
            Strategy::Manual => None,
            Strategy::RoundRobin => {
                let turn = usize::try_from(self.assigned.max(0)).unwrap_or(0) % available.len();
                Some((available[turn].clone(), reason("round robin")))
            }
            Strategy::LeastOpen => available
                .into_iter()
                .min_by_key(|m| load(m))
                .map(|m| (m.clone(), reason("least open tickets"))),
            Strategy::Skills => {
                let skills_of = |m: &String| {
                    profiles
                        .get(m)
                        .map(|a| a.skills.as_slice())
                        .unwrap_or_default()
                };
                available
                    .into_iter()
                    .filter(|m| {
                        self.draft
                            .required_skills
                            .iter()
                            .all(|s| skills_of(m).contains(s))
                    })
                    .map(|m| {
                        let matching = tags.iter().filter(|t| skills_of(m).contains(t)).count();
                        (m, matching)
                    })
                    // Tags are optional matches: an agent needs the queue's
                    // required skills; more matching tags and less load win.
                    .min_by_key(|(m, matching)| (std::cmp::Reverse(*matching), load(m)))
                    .map(|(m, _)| (m.clone(), reason("skills")))
            }
        }
    }
}

/// The fields a caller writes of a routing rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDraft {
    /// For people.
    pub display_name: String,
    /// Lower goes first.
    pub priority: i32,
    /// AIP-160 over ticket fields (checked by the store, which parses it).
    pub filter: String,
    /// `queues/{id}`.
    pub queue: String,
    /// Raise the ticket's priority to at least this.
    pub set_priority: Option<Priority>,
}

impl RuleDraft {
    /// Trims and checks; `prefix` names the message.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.display_name = self.display_name.trim().to_owned();
        let mut v = Violations::default();
        if self.display_name.is_empty() {
            v.add(format!("{prefix}.display_name"), "required");
        }
        v.text(
            &format!("{prefix}.display_name"),
            &self.display_name,
            MAX_SHORT,
        );
        v.text(&format!("{prefix}.filter"), &self.filter, 4096);
        if self.queue.is_empty() {
            v.add(format!("{prefix}.queue"), "required");
        }
        v.reference(&format!("{prefix}.queue"), &self.queue, "queues");
        v.finish()
    }
}

/// A stored routing rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingRule {
    /// The id.
    pub id: Uuid,
    /// The caller's fields.
    pub draft: RuleDraft,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Version.
    pub version: i64,
}

impl RoutingRule {
    /// `routingRules/{id}`.
    pub fn name(&self) -> String {
        format!("routingRules/{}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(strategy: Strategy, members: &[&str]) -> Queue {
        let now = Utc::now();
        Queue {
            id: Uuid::now_v7(),
            draft: QueueDraft {
                display_name: "Billing".into(),
                description: String::new(),
                members: members.iter().map(|m| m.to_string()).collect(),
                strategy,
                required_skills: vec![],
            },
            assigned: 0,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        }
    }

    fn agent(subject: &str, skills: &[&str], available: bool) -> (String, Agent) {
        (
            subject.to_owned(),
            Agent {
                subject: subject.into(),
                display_name: String::new(),
                skills: skills.iter().map(|s| s.to_string()).collect(),
                available,
                update_time: Utc::now(),
                version: 1,
            },
        )
    }

    #[test]
    fn round_robin_takes_turns_among_available_members() {
        let mut q = queue(Strategy::RoundRobin, &["ann", "bob", "cid"]);
        let profiles = HashMap::from([agent("bob", &[], false)]);
        let picks: Vec<String> = (0..4)
            .map(|turn| {
                q.assigned = turn;
                q.pick(&[], &profiles, &HashMap::new()).unwrap().0
            })
            .collect();
        assert_eq!(picks, ["ann", "cid", "ann", "cid"]);
    }

    #[test]
    fn least_open_picks_the_least_loaded_available_member() {
        let q = queue(Strategy::LeastOpen, &["ann", "bob", "cid"]);
        let profiles = HashMap::from([agent("cid", &[], false)]);
        let loads = HashMap::from([
            ("ann".to_owned(), 3),
            ("bob".to_owned(), 1),
            ("cid".to_owned(), 0),
        ]);
        assert_eq!(q.pick(&[], &profiles, &loads).unwrap().0, "bob");
    }

    #[test]
    fn skills_need_the_queues_skills_and_prefer_matching_tags() {
        let mut q = queue(Strategy::Skills, &["ann", "bob", "cid"]);
        q.draft.required_skills = vec!["english".into()];
        let profiles = HashMap::from([
            agent("ann", &["english"], true),
            agent("bob", &["english", "sepa"], true),
            agent("cid", &["sepa"], true),
        ]);
        let loads = HashMap::from([("bob".to_owned(), 5)]);
        assert_eq!(
            q.pick(&["sepa".into()], &profiles, &loads).unwrap().0,
            "bob"
        );
        assert_eq!(q.pick(&[], &profiles, &loads).unwrap().0, "ann");
        q.draft.required_skills = vec!["german".into()];
        assert_eq!(q.pick(&[], &profiles, &loads), None);
    }

    #[test]
    fn nobody_available_or_a_manual_queue_leaves_the_ticket_unassigned() {
        let q = queue(Strategy::LeastOpen, &["ann"]);
        let profiles = HashMap::from([agent("ann", &[], false)]);
        assert_eq!(q.pick(&[], &profiles, &HashMap::new()), None);
        let manual = queue(Strategy::Manual, &["ann"]);
        assert_eq!(manual.pick(&[], &HashMap::new(), &HashMap::new()), None);
    }
}
