//! Journeys: nurture sequences that take one contact at a time through a
//! graph of steps (send an email, wait, branch on what the contact did,
//! update the contact, create a sales task or lead).
//!
//! The rules here are what make a journey safe to run unattended. Its steps
//! form a graph without cycles in which every step is reachable from the
//! first, so an enrolment runs each step at most once and always ends. What
//! enrolments in flight depend on (steps, trigger, re-entry) is frozen once
//! the journey is activated. Each step's side effect carries a request id
//! made from the enrolment and the step ([`effect_key`]), so a step retried
//! after a crash is applied once by the service that receives it.
//!
//! The engine around this module does the I/O: it finds due enrolments,
//! performs a step's action, evaluates a branch's condition, and then asks
//! [`next_step`] and [`Enrollment::advance`] where the enrolment goes.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use crm_shared::{
    convert::stored,
    error::ApiError,
    validate::{MAX_LONG, MAX_SHORT, Violations, is_email, normalize_tags},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most steps a journey may have.
pub const MAX_STEPS: usize = 100;
/// The longest wait, and the longest a created task may be due after its step.
pub const MAX_WAIT_SECONDS: i64 = 365 * 24 * 60 * 60;
/// The lead source of a CreateLead step that names none.
pub const DEFAULT_LEAD_SOURCE: &str = "CAMPAIGN";
/// The lead sources sales accepts (the stored names of its `LeadSource`).
pub const LEAD_SOURCES: &[&str] = &[
    "WEB_FORM", "IMPORT", "EVENT", "REFERRAL", "CAMPAIGN", "OTHER",
];
/// The lifecycle stages contacts accepts (the stored names of its `LifecycleStage`).
pub const LIFECYCLE_STAGES: &[&str] = &[
    "SUBSCRIBER",
    "LEAD",
    "MARKETING_QUALIFIED",
    "SALES_QUALIFIED",
    "OPPORTUNITY",
    "CUSTOMER",
    "EVANGELIST",
    "OTHER",
];
/// The namespace of [`effect_key`]'s UUIDv5s. Never change it: a step retried
/// across the change would get a new key and be applied twice.
pub const EFFECT_NAMESPACE: Uuid = Uuid::from_u128(0xec22_9cbc_f0ce_4206_9315_ed9c_9027_910e);

/// The longest step id.
const MAX_STEP_ID: usize = 63;
/// The longest AIP-160 filter, as for segments.
const MAX_FILTER: usize = MAX_SHORT * 8;
/// The longest link prefix a Clicked condition may name.
const MAX_LINK: usize = 2048;

/// Where a journey is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being written; everything may change, nobody is enrolled.
    Draft,
    /// Enrolling contacts and running their steps.
    Active,
    /// No new enrolments; enrolments in flight wait where they are.
    Paused,
    /// Finished for good: no new enrolments, enrolments in flight exit.
    Archived,
}

/// Every state with its stored name.
pub const STATES: &[(State, &str)] = &[
    (State::Draft, "DRAFT"),
    (State::Active, "ACTIVE"),
    (State::Paused, "PAUSED"),
    (State::Archived, "ARCHIVED"),
];

/// What enrols a contact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// Only the EnrollContact RPC enrols.
    #[default]
    Manual,
    /// A contact newly in the segment is enrolled.
    SegmentEntry {
        /// `segments/{id}`.
        segment: String,
    },
    /// The contact of a new lead is enrolled.
    LeadCreated {
        /// Only leads from this source (see [`LEAD_SOURCES`]); empty for any.
        #[serde(default)]
        source: String,
    },
    /// The contact of a solved support ticket is enrolled.
    TicketSolved,
    /// The contact of a won deal is enrolled.
    DealWon,
}

/// Whether a contact may be enrolled more than once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reentry {
    /// At most once, ever.
    #[default]
    Never,
    /// Again once their earlier enrolment has ended.
    AfterEnded,
}

/// Every re-entry rule with its stored name.
pub const REENTRIES: &[(Reentry, &str)] = &[
    (Reentry::Never, "NEVER"),
    (Reentry::AfterEnded, "AFTER_ENDED"),
];

/// Whether a contact may be enrolled now, given whether one of their
/// enrolments in this journey is active and whether they were ever enrolled.
pub fn may_enroll(reentry: Reentry, active_exists: bool, ever_enrolled: bool) -> bool {
    match reentry {
        Reentry::Never => !ever_enrolled,
        Reentry::AfterEnded => !active_exists,
    }
}

/// One step of a journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Chosen by the client: 1 to 63 of `a-z`, `0-9`, `_` and `-`, unique.
    pub id: String,
    /// What it does.
    pub action: Action,
    /// The id of the step after it; empty when the journey ends here. Empty
    /// on a branch, which names its own successors.
    #[serde(default)]
    pub next: String,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Sends a template to the contact (consent is checked at send time).
    SendEmail {
        /// `templates/{id}`.
        template: String,
        /// The sender's address, lower-cased.
        from_address: String,
        /// The sender's name.
        #[serde(default)]
        from_name: String,
        /// Where replies go, lower-cased; empty for the sender.
        #[serde(default)]
        reply_to: String,
    },
    /// Waits for a duration or until a fixed time (exactly one of them).
    Wait {
        /// How long, 1 second to [`MAX_WAIT_SECONDS`]; 0 when `until` is set.
        #[serde(default)]
        seconds: i64,
        /// Until when; a time already past is no wait.
        #[serde(default)]
        until: Option<DateTime<Utc>>,
    },
    /// Goes on at `then_step` when the condition holds, else at `else_step`.
    Branch {
        /// What is asked.
        condition: Condition,
        /// The step when it holds; empty ends the journey.
        #[serde(default)]
        then_step: String,
        /// The step when it does not; empty ends the journey.
        #[serde(default)]
        else_step: String,
    },
    /// Changes the contact; at least one change.
    UpdateContact {
        /// Tags to add.
        #[serde(default)]
        add_tags: Vec<String>,
        /// Tags to remove.
        #[serde(default)]
        remove_tags: Vec<String>,
        /// The new lifecycle stage (see [`LIFECYCLE_STAGES`]); empty leaves it.
        #[serde(default)]
        lifecycle_stage: String,
        /// Custom fields to set, merged into the contact's.
        #[serde(default)]
        custom_fields: serde_json::Map<String, serde_json::Value>,
    },
    /// Creates a sales task about the contact.
    CreateTask {
        /// What to do.
        title: String,
        /// When it is due, counted from the step: 0 to [`MAX_WAIT_SECONDS`].
        #[serde(default)]
        due_in_seconds: i64,
        /// A user id (`users/{id}` is accepted too); empty: sales makes the
        /// creator (the marketing service) the owner.
        #[serde(default)]
        owner: String,
    },
    /// Creates a sales lead for the contact.
    CreateLead {
        /// One of [`LEAD_SOURCES`]; [`DEFAULT_LEAD_SOURCE`] when empty.
        #[serde(default)]
        source: String,
    },
}

impl Action {
    /// The action's field in the API's step (`send_email`, `wait`, ...):
    /// violations name it.
    pub fn field(&self) -> &'static str {
        match self {
            Action::SendEmail { .. } => "send_email",
            Action::Wait { .. } => "wait",
            Action::Branch { .. } => "branch",
            Action::UpdateContact { .. } => "update_contact",
            Action::CreateTask { .. } => "create_task",
            Action::CreateLead { .. } => "create_lead",
        }
    }
}

/// What a branch asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// The email of a SendEmail step was opened.
    Opened {
        /// The SendEmail step's id; it comes before the branch on every path.
        step: String,
    },
    /// A link in the email of a SendEmail step was clicked.
    Clicked {
        /// The SendEmail step's id; it comes before the branch on every path.
        step: String,
        /// The URL prefix of the link; empty for any link (see [`link_matches`]).
        #[serde(default)]
        link: String,
    },
    /// The contact matches an AIP-160 filter (contacts evaluates it).
    MatchesFilter {
        /// The filter.
        filter: String,
    },
}

/// Whether a clicked URL satisfies a Clicked condition's `link`.
pub fn link_matches(link: &str, clicked_url: &str) -> bool {
    clicked_url.starts_with(link)
}

/// What a journey is written with; `trigger` and `steps` are stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JourneyDraft {
    /// For people.
    pub display_name: String,
    /// What it is for.
    pub description: String,
    /// What enrols a contact.
    pub trigger: Trigger,
    /// Whether a contact may be enrolled again.
    pub reentry: Reentry,
    /// An AIP-160 contact filter: an enrolment whose contact matches it exits.
    /// Empty for none. Contacts checks its syntax; here only its length.
    pub exit_filter: String,
    /// The steps; an enrolment starts at the first.
    pub steps: Vec<Step>,
}

/// The fields UpdateJourney may change.
pub const JOURNEY_FIELDS: &[&str] = &[
    "display_name",
    "description",
    "trigger",
    "reentry",
    "exit_filter",
    "steps",
];

/// The fields that may change once a journey has been activated: the others
/// would change under enrolments in flight.
pub const LIVE_FIELDS: &[&str] = &["display_name", "description", "exit_filter"];

impl JourneyDraft {
    /// Trims and checks, the steps as a graph too; INVALID_ARGUMENT naming
    /// `{prefix}.<field path>` for each problem.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.normalize();
        let field = |name: &str| format!("{prefix}.{name}");
        let mut v = Violations::default();
        if self.display_name.is_empty() {
            v.add(field("display_name"), "required");
        }
        v.text(&field("display_name"), &self.display_name, MAX_SHORT);
        v.text(&field("description"), &self.description, MAX_LONG);
        v.text(&field("exit_filter"), &self.exit_filter, MAX_FILTER);
        check_trigger(&mut v, &field("trigger"), &self.trigger);
        let steps = field("steps");
        if self.steps.is_empty() {
            v.add(steps, "at least one step");
        } else if self.steps.len() > MAX_STEPS {
            // Not checked one by one: the list alone is the problem.
            v.add(
                steps,
                format!("at most {MAX_STEPS} steps, got {}", self.steps.len()),
            );
        } else {
            check_steps(&mut v, &steps, &self.steps);
            check_no_lead_loop(&mut v, &steps, &self.trigger, &self.steps);
        }
        v.finish()
    }

    /// Copies the fields named in `paths` from `patch`.
    pub fn apply(&mut self, paths: &[&str], patch: &JourneyDraft) {
        for path in paths {
            match *path {
                "display_name" => self.display_name.clone_from(&patch.display_name),
                "description" => self.description.clone_from(&patch.description),
                "trigger" => self.trigger.clone_from(&patch.trigger),
                "reentry" => self.reentry = patch.reentry,
                "exit_filter" => self.exit_filter.clone_from(&patch.exit_filter),
                "steps" => self.steps.clone_from(&patch.steps),
                _ => {}
            }
        }
    }

    /// Of `paths`, those whose value in `other` differs from this draft's:
    /// an update that sends a frozen field unchanged changes nothing frozen.
    pub fn changed<'a>(&self, other: &JourneyDraft, paths: &[&'a str]) -> Vec<&'a str> {
        paths
            .iter()
            .copied()
            .filter(|path| match *path {
                "display_name" => self.display_name != other.display_name,
                "description" => self.description != other.description,
                "trigger" => self.trigger != other.trigger,
                "reentry" => self.reentry != other.reentry,
                "exit_filter" => self.exit_filter != other.exit_filter,
                "steps" => self.steps != other.steps,
                _ => true,
            })
            .collect()
    }

    fn normalize(&mut self) {
        self.display_name = self.display_name.trim().to_owned();
        self.exit_filter = self.exit_filter.trim().to_owned();
        match &mut self.trigger {
            Trigger::SegmentEntry { segment } => *segment = segment.trim().to_owned(),
            Trigger::LeadCreated { source } => *source = source.trim().to_uppercase(),
            Trigger::Manual | Trigger::TicketSolved | Trigger::DealWon => {}
        }
        for step in &mut self.steps {
            step.normalize();
        }
    }
}

impl Step {
    fn normalize(&mut self) {
        self.id = self.id.trim().to_owned();
        self.next = self.next.trim().to_owned();
        match &mut self.action {
            Action::SendEmail {
                template,
                from_address,
                from_name,
                reply_to,
            } => {
                *template = template.trim().to_owned();
                *from_address = from_address.trim().to_lowercase();
                *from_name = from_name.trim().to_owned();
                *reply_to = reply_to.trim().to_lowercase();
            }
            Action::Wait { .. } => {}
            Action::Branch {
                condition,
                then_step,
                else_step,
            } => {
                *then_step = then_step.trim().to_owned();
                *else_step = else_step.trim().to_owned();
                match condition {
                    Condition::Opened { step } => *step = step.trim().to_owned(),
                    Condition::Clicked { step, link } => {
                        *step = step.trim().to_owned();
                        *link = link.trim().to_owned();
                    }
                    Condition::MatchesFilter { filter } => *filter = filter.trim().to_owned(),
                }
            }
            Action::UpdateContact {
                add_tags,
                remove_tags,
                lifecycle_stage,
                ..
            } => {
                normalize_tags(add_tags);
                normalize_tags(remove_tags);
                *lifecycle_stage = lifecycle_stage.trim().to_uppercase();
            }
            Action::CreateTask { title, owner, .. } => {
                *title = title.trim().to_owned();
                *owner = owner.trim().to_owned();
            }
            Action::CreateLead { source } => {
                *source = source.trim().to_uppercase();
                if source.is_empty() {
                    DEFAULT_LEAD_SOURCE.clone_into(source);
                }
            }
        }
    }
}

fn check_trigger(v: &mut Violations, path: &str, trigger: &Trigger) {
    match trigger {
        Trigger::SegmentEntry { segment } if segment.is_empty() => {
            v.add(format!("{path}.segment"), "required");
        }
        Trigger::SegmentEntry { segment } => {
            v.reference(&format!("{path}.segment"), segment, "segments");
        }
        Trigger::LeadCreated { source } if !source.is_empty() => {
            check_lead_source(v, &format!("{path}.lead_source"), source);
        }
        _ => {}
    }
}

fn check_lead_source(v: &mut Violations, field: &str, source: &str) {
    if !LEAD_SOURCES.contains(&source) {
        v.add(field, format!("one of {}", LEAD_SOURCES.join(", ")));
    }
}

/// A journey that new leads trigger may not create leads: each would enrol
/// its person again, without end.
fn check_no_lead_loop(v: &mut Violations, path: &str, trigger: &Trigger, steps: &[Step]) {
    if !matches!(trigger, Trigger::LeadCreated { .. }) {
        return;
    }
    for (i, step) in steps.iter().enumerate() {
        if matches!(step.action, Action::CreateLead { .. }) {
            v.add(
                format!("{path}[{i}].create_lead"),
                "a journey triggered by new leads may not create leads (it would enrol them again)",
            );
        }
    }
}

/// Each step on its own, then the steps as a graph.
fn check_steps(v: &mut Violations, path: &str, steps: &[Step]) {
    let ids = step_indexes(steps);
    for i in 0..steps.len() {
        check_step(v, path, i, steps, &ids);
    }
    check_graph(v, path, steps, &ids);
}

/// The checks of step `i` that need no walk through the graph.
fn check_step(
    v: &mut Violations,
    path: &str,
    i: usize,
    steps: &[Step],
    ids: &HashMap<&str, usize>,
) {
    let step = &steps[i];
    let p = format!("{path}[{i}]");
    if !is_step_id(&step.id) {
        v.add(
            format!("{p}.id"),
            format!("1 to {MAX_STEP_ID} of a-z, 0-9, _ and -"),
        );
    } else if let Some(&first) = ids.get(step.id.as_str()).filter(|&&first| first != i) {
        v.add(
            format!("{p}.id"),
            format!("repeats the id of {path}[{first}]"),
        );
    }
    check_action(v, &format!("{p}.{}", step.action.field()), &step.action);
    if matches!(step.action, Action::Branch { .. }) && !step.next.is_empty() {
        v.add(
            format!("{p}.next"),
            "must be empty on a branch: it goes on at then_step or else_step",
        );
    }
    for (field, target) in edges(step) {
        if !ids.contains_key(target) {
            v.add(
                format!("{p}.{field}"),
                format!("no step has the id {target:?}"),
            );
        }
    }
    if let Some(sent) = condition_step(step).filter(|s| !s.is_empty()) {
        let sends = ids
            .get(sent)
            .is_some_and(|&s| matches!(steps[s].action, Action::SendEmail { .. }));
        if !sends {
            v.add(
                format!("{p}.{}", condition_field(step)),
                format!("{sent:?} is not the id of a SendEmail step"),
            );
        }
    }
}

/// No cycles, every step reachable, and each condition's email sent before
/// its branch on every path.
fn check_graph(v: &mut Violations, path: &str, steps: &[Step], ids: &HashMap<&str, usize>) {
    let cycles = closing_edges(steps, ids);
    for &(i, field, to) in &cycles {
        v.add(
            format!("{path}[{i}].{field}"),
            format!("closes a cycle: step {:?} would run again", steps[to].id),
        );
    }
    let reached = reachable(steps, ids, None);
    for (i, step) in steps.iter().enumerate().filter(|(i, _)| !reached[*i]) {
        v.add(
            format!("{path}[{i}]"),
            format!("step {:?} cannot be reached from the first step", step.id),
        );
    }
    // "Before on every path" has a meaning only without cycles: the email
    // step comes before the branch when the branch cannot be reached
    // without passing it (it dominates the branch).
    if !cycles.is_empty() {
        return;
    }
    for (i, step) in steps.iter().enumerate().filter(|(i, _)| reached[*i]) {
        let Some(&sent) = condition_step(step).and_then(|s| ids.get(s)) else {
            continue;
        };
        if matches!(steps[sent].action, Action::SendEmail { .. })
            && reachable(steps, ids, Some(sent))[i]
        {
            v.add(
                format!("{path}[{i}].{}", condition_field(step)),
                format!(
                    "step {:?} does not come before this branch on every path from the first step",
                    steps[sent].id
                ),
            );
        }
    }
}

fn check_action(v: &mut Violations, p: &str, action: &Action) {
    let field = |name: &str| format!("{p}.{name}");
    match action {
        Action::SendEmail {
            template,
            from_address,
            from_name,
            reply_to,
        } => {
            if template.is_empty() {
                v.add(field("template"), "required");
            } else {
                v.reference(&field("template"), template, "templates");
            }
            if !is_email(from_address) {
                v.add(field("from_address"), "required: an email address");
            }
            v.text(&field("from_name"), from_name, MAX_SHORT);
            if !reply_to.is_empty() && !is_email(reply_to) {
                v.add(field("reply_to"), "not an email address");
            }
        }
        Action::Wait { seconds, until } => match (*seconds != 0, until.is_some()) {
            (true, true) => v.add(p, "set seconds or until, not both"),
            (false, false) => v.add(p, "set seconds or until"),
            (true, false) if !(1..=MAX_WAIT_SECONDS).contains(seconds) => v.add(
                field("duration"),
                format!("1 to {MAX_WAIT_SECONDS} seconds (a year), got {seconds}"),
            ),
            _ => {}
        },
        Action::Branch { condition, .. } => check_condition(v, &field("condition"), condition),
        Action::UpdateContact {
            add_tags,
            remove_tags,
            lifecycle_stage,
            custom_fields,
        } => {
            if add_tags.is_empty()
                && remove_tags.is_empty()
                && lifecycle_stage.is_empty()
                && custom_fields.is_empty()
            {
                v.add(
                    p,
                    "at least one change: tags, lifecycle_stage or custom_fields",
                );
            }
            v.tags(&field("add_tags"), add_tags);
            v.tags(&field("remove_tags"), remove_tags);
            for (i, tag) in remove_tags.iter().enumerate() {
                if add_tags
                    .iter()
                    .any(|a| a.to_lowercase() == tag.to_lowercase())
                {
                    v.add(format!("{p}.remove_tags[{i}]"), "also in add_tags");
                }
            }
            if !lifecycle_stage.is_empty() && !LIFECYCLE_STAGES.contains(&lifecycle_stage.as_str())
            {
                v.add(
                    field("lifecycle_stage"),
                    format!("one of {}", LIFECYCLE_STAGES.join(", ")),
                );
            }
            v.custom_fields(&field("custom_fields"), custom_fields);
        }
        Action::CreateTask {
            title,
            due_in_seconds,
            owner,
        } => {
            if title.is_empty() {
                v.add(field("title"), "required");
            }
            v.text(&field("title"), title, MAX_SHORT);
            if !(0..=MAX_WAIT_SECONDS).contains(due_in_seconds) {
                v.add(field("due_in"), format!("0 to {MAX_WAIT_SECONDS} (a year)"));
            }
            // A user id as sales' tasks name owners, or `users/{id}`.
            let user = owner.strip_prefix("users/").unwrap_or(owner);
            if !owner.is_empty() && (user.is_empty() || user.contains('/')) {
                v.add(field("owner"), "a user id (or \"users/{id}\"), or empty");
            }
            v.text(&field("owner"), owner, MAX_SHORT);
        }
        Action::CreateLead { source } => check_lead_source(v, &field("source"), source),
    }
}

fn check_condition(v: &mut Violations, p: &str, condition: &Condition) {
    match condition {
        Condition::Opened { step } if step.is_empty() => {
            v.add(format!("{p}.opened.step"), "required");
        }
        Condition::Clicked { step, .. } if step.is_empty() => {
            v.add(format!("{p}.clicked.step"), "required");
        }
        Condition::MatchesFilter { filter } if filter.is_empty() => {
            v.add(format!("{p}.contact_filter"), "required");
        }
        _ => {}
    }
    match condition {
        Condition::Clicked { link, .. } => v.text(&format!("{p}.clicked.link"), link, MAX_LINK),
        Condition::MatchesFilter { filter } => {
            v.text(&format!("{p}.contact_filter"), filter, MAX_FILTER);
        }
        Condition::Opened { .. } => {}
    }
}

/// The field naming a branch's email step, as the API spells it.
fn condition_field(step: &Step) -> &'static str {
    match &step.action {
        Action::Branch {
            condition: Condition::Opened { .. },
            ..
        } => "branch.condition.opened.step",
        _ => "branch.condition.clicked.step",
    }
}

fn is_step_id(id: &str) -> bool {
    (1..=MAX_STEP_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Each id with the index of the first step that has it.
fn step_indexes(steps: &[Step]) -> HashMap<&str, usize> {
    let mut ids = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        ids.entry(step.id.as_str()).or_insert(i);
    }
    ids
}

/// Where a step can go, as (field naming it, step id); empty ends are left out,
/// and so is a branch's `next`, which is an error of its own.
fn edges(step: &Step) -> Vec<(&'static str, &str)> {
    let all = match &step.action {
        Action::Branch {
            then_step,
            else_step,
            ..
        } => vec![
            ("branch.then_step", then_step.as_str()),
            ("branch.else_step", else_step.as_str()),
        ],
        _ => vec![("next", step.next.as_str())],
    };
    all.into_iter().filter(|(_, to)| !to.is_empty()).collect()
}

/// The edges of a step that lead to an existing step, as (field, index).
fn successors(step: &Step, ids: &HashMap<&str, usize>) -> Vec<(&'static str, usize)> {
    edges(step)
        .into_iter()
        .filter_map(|(field, to)| ids.get(to).map(|&j| (field, j)))
        .collect()
}

/// The step id a branch's condition names, if it names one.
fn condition_step(step: &Step) -> Option<&str> {
    match &step.action {
        Action::Branch {
            condition: Condition::Opened { step } | Condition::Clicked { step, .. },
            ..
        } => Some(step),
        _ => None,
    }
}

/// The edges that close a cycle, as (step index, field, target index): the
/// back edges of a depth-first walk from each step in order, the first step
/// first. The recursion is bounded by [`MAX_STEPS`].
fn closing_edges(steps: &[Step], ids: &HashMap<&str, usize>) -> Vec<(usize, &'static str, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnPath,
        Done,
    }
    fn visit(
        i: usize,
        steps: &[Step],
        ids: &HashMap<&str, usize>,
        marks: &mut [Mark],
        found: &mut Vec<(usize, &'static str, usize)>,
    ) {
        marks[i] = Mark::OnPath;
        for (field, j) in successors(&steps[i], ids) {
            match marks[j] {
                Mark::Unseen => visit(j, steps, ids, marks, found),
                Mark::OnPath => found.push((i, field, j)),
                Mark::Done => {}
            }
        }
        marks[i] = Mark::Done;
    }
    let mut marks = vec![Mark::Unseen; steps.len()];
    let mut found = Vec::new();
    for i in 0..steps.len() {
        if marks[i] == Mark::Unseen {
            visit(i, steps, ids, &mut marks, &mut found);
        }
    }
    found
}

/// Which steps an enrolment can reach from the first, never passing `avoid`.
fn reachable(steps: &[Step], ids: &HashMap<&str, usize>, avoid: Option<usize>) -> Vec<bool> {
    let mut seen = vec![false; steps.len()];
    if steps.is_empty() || avoid == Some(0) {
        return seen;
    }
    seen[0] = true;
    let mut stack = vec![0];
    while let Some(i) = stack.pop() {
        for (_, j) in successors(&steps[i], ids) {
            if !seen[j] && avoid != Some(j) {
                seen[j] = true;
                stack.push(j);
            }
        }
    }
    seen
}

/// A journey.
#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    /// Its id.
    pub id: Uuid,
    /// Its fields.
    pub draft: JourneyDraft,
    /// Where it is.
    pub state: State,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// The row's version.
    pub version: i64,
}

impl Journey {
    /// A new draft.
    pub fn new(draft: JourneyDraft, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            draft,
            state: State::Draft,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        }
    }

    /// `journeys/{id}`.
    pub fn name(&self) -> String {
        format!("journeys/{}", self.id)
    }

    /// Draft or paused -> active.
    pub fn activate(&mut self) -> Result<(), ApiError> {
        self.require(&[State::Draft, State::Paused], "activated")?;
        self.state = State::Active;
        Ok(())
    }

    /// Active -> paused.
    pub fn pause(&mut self) -> Result<(), ApiError> {
        self.require(&[State::Active], "paused")?;
        self.state = State::Paused;
        Ok(())
    }

    /// Anything but archived -> archived; the engine then exits the
    /// enrolments in flight.
    pub fn archive(&mut self) -> Result<(), ApiError> {
        self.require(&[State::Draft, State::Active, State::Paused], "archived")?;
        self.state = State::Archived;
        Ok(())
    }

    /// Whether the fields in `paths` (as `update_paths` gives them) may
    /// change: any in a draft, only [`LIVE_FIELDS`] once activated, none once
    /// archived. FAILED_PRECONDITION names the first field refused.
    pub fn check_editable(&self, paths: &[&str]) -> Result<(), ApiError> {
        self.require(&[State::Draft, State::Active, State::Paused], "edited")?;
        if self.state == State::Draft {
            return Ok(());
        }
        match paths.iter().find(|path| !LIVE_FIELDS.contains(path)) {
            Some(path) => Err(ApiError::FailedPrecondition(format!(
                "{} has been activated: {path} cannot change under enrolments in flight \
                 (only {} can); copy it into a new journey instead",
                self.name(),
                LIVE_FIELDS.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// A new enrolment of `contact` (`contacts/{id}`) at the first step; only
    /// an active journey enrols. Whether the contact may enter again is
    /// [`may_enroll`]'s to say.
    pub fn enroll(&self, contact: &str, now: DateTime<Utc>) -> Result<Enrollment, ApiError> {
        self.require(&[State::Active], "enrolled in")?;
        let Some(first) = self.draft.steps.first() else {
            return Err(ApiError::Internal(format!("{} has no steps", self.name())));
        };
        Ok(Enrollment {
            id: Uuid::now_v7(),
            journey: self.id,
            contact: contact.to_owned(),
            email: String::new(),
            source: String::new(),
            state: EnrollmentState::Active,
            step: first.id.clone(),
            step_start_time: now,
            next_run_time: Some(due_time(first, now)),
            reason: String::new(),
            create_time: now,
            update_time: now,
            version: 1,
        })
    }

    fn require(&self, allowed: &[State], what: &str) -> Result<(), ApiError> {
        if allowed.contains(&self.state) {
            return Ok(());
        }
        Err(ApiError::FailedPrecondition(format!(
            "{} is {} and cannot be {what}",
            self.name(),
            stored(STATES, self.state)
        )))
    }
}

/// Where an enrolment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentState {
    /// At a step, waiting for it to be due or to be run.
    Active,
    /// Went past its last step.
    Completed,
    /// Left early: the exit filter matched, the journey was archived, or by request.
    Exited,
    /// A step could not be carried out.
    Failed,
}

/// Every enrolment state with its stored name.
pub const ENROLLMENT_STATES: &[(EnrollmentState, &str)] = &[
    (EnrollmentState::Active, "ACTIVE"),
    (EnrollmentState::Completed, "COMPLETED"),
    (EnrollmentState::Exited, "EXITED"),
    (EnrollmentState::Failed, "FAILED"),
];

/// One contact going through one journey.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    /// Its id.
    pub id: Uuid,
    /// The journey's id.
    pub journey: Uuid,
    /// `contacts/{id}`; empty while the contact of `email` is found.
    pub contact: String,
    /// A lead's address whose contact is still to be found; else empty.
    pub email: String,
    /// What enrolled it ("manual", "segment", or the event type).
    pub source: String,
    /// Where it is.
    pub state: EnrollmentState,
    /// The current step's id; empty once ended.
    pub step: String,
    /// When it reached the current step.
    pub step_start_time: DateTime<Utc>,
    /// When the current step is due; `None` once ended.
    pub next_run_time: Option<DateTime<Utc>>,
    /// Why it exited or failed.
    pub reason: String,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// The row's version.
    pub version: i64,
}

/// Where an enrolment goes after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// To the step with this id.
    Step(String),
    /// Nowhere: the journey is over for it.
    End,
}

/// When a step may run: a Wait is done `seconds` after the step began, or
/// at `until` (at once when that is past); every other step runs at once.
pub fn due_time(step: &Step, step_start: DateTime<Utc>) -> DateTime<Utc> {
    match step.action {
        Action::Wait {
            until: Some(until), ..
        } => until.max(step_start),
        Action::Wait { seconds, .. } => TimeDelta::try_seconds(seconds.clamp(0, MAX_WAIT_SECONDS))
            .and_then(|wait| step_start.checked_add_signed(wait))
            .unwrap_or(step_start),
        _ => step_start,
    }
}

/// Where an enrolment goes once `step` has run. A branch goes to
/// `then_step` when `condition_met` is `Some(true)` and to `else_step`
/// otherwise (a condition not known to hold does not hold); every other
/// step goes to `next`.
pub fn next_step(step: &Step, condition_met: Option<bool>) -> Next {
    let to = match &step.action {
        Action::Branch {
            then_step,
            else_step,
            ..
        } => {
            if condition_met == Some(true) {
                then_step
            } else {
                else_step
            }
        }
        _ => &step.next,
    };
    if to.is_empty() {
        Next::End
    } else {
        Next::Step(to.clone())
    }
}

/// The request id of a step's side effect (the contacts update, the sales
/// task or lead, the email's ledger row): the same for every retry of the
/// step in this enrolment, so the receiving service's idempotent create
/// applies it once. A branch finds the email its condition asks about by
/// the key of that SendEmail step.
pub fn effect_key(enrollment: Uuid, step_id: &str) -> Uuid {
    // A step id has no "/", so the name is unambiguous.
    Uuid::new_v5(
        &EFFECT_NAMESPACE,
        format!("{enrollment}/{step_id}").as_bytes(),
    )
}

/// How long a step that keeps meeting trouble is tried before it fails.
pub const GIVE_UP_AFTER: TimeDelta = TimeDelta::days(1);

/// When to try again a step that met `error` (it began at `step_start`),
/// or `None` when the enrolment should fail. A refusal of the step as
/// written (bad data, a contact gone) fails at once; anything a retry may
/// cure (a service down, a credential being rotated, a race) is tried again,
/// less often the longer it lasts (a tenth of the time so far, 30 s to an
/// hour), until [`GIVE_UP_AFTER`].
pub fn retry_time(
    error: &ApiError,
    step_start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let refused = matches!(
        error,
        ApiError::InvalidArgument(_)
            | ApiError::FailedPrecondition(_)
            | ApiError::NotFound(_)
            | ApiError::AlreadyExists(_)
    );
    let waited = now - step_start;
    if refused || waited > GIVE_UP_AFTER {
        return None;
    }
    let pause = (waited / 10).clamp(TimeDelta::seconds(30), TimeDelta::hours(1));
    Some(now + pause)
}

impl Enrollment {
    /// `journeys/{journey}/enrollments/{id}`.
    pub fn name(&self) -> String {
        format!("journeys/{}/enrollments/{}", self.journey, self.id)
    }

    /// Moves to the next step of `steps`, due per [`due_time`], or completes.
    /// A next step the journey lacks fails the enrolment (it cannot happen
    /// to a checked journey, whose steps are frozen once active).
    pub fn advance(
        &mut self,
        steps: &[Step],
        next: &Next,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        self.require_active("advanced")?;
        let id = match next {
            Next::End => return self.end(EnrollmentState::Completed, "", now),
            Next::Step(id) => id,
        };
        let Some(step) = steps.iter().find(|s| s.id == *id) else {
            return self.end(
                EnrollmentState::Failed,
                &format!("the journey has no step {id:?}"),
                now,
            );
        };
        self.step.clone_from(&step.id);
        self.step_start_time = now;
        self.next_run_time = Some(due_time(step, now));
        self.update_time = now;
        Ok(())
    }

    /// Ends an active enrolment early.
    pub fn exit(&mut self, reason: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
        self.end(EnrollmentState::Exited, reason, now)
    }

    /// Ends an active enrolment because its step could not be carried out.
    pub fn fail(&mut self, reason: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
        self.end(EnrollmentState::Failed, reason, now)
    }

    fn end(
        &mut self,
        state: EnrollmentState,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        self.require_active("ended")?;
        self.state = state;
        self.step.clear();
        self.next_run_time = None;
        reason.clone_into(&mut self.reason);
        self.update_time = now;
        Ok(())
    }

    /// An ended enrolment stays as it ended, with its reason.
    fn require_active(&self, what: &str) -> Result<(), ApiError> {
        if self.state == EnrollmentState::Active {
            return Ok(());
        }
        Err(ApiError::FailedPrecondition(format!(
            "{} is {} and cannot be {what}",
            self.name(),
            stored(ENROLLMENT_STATES, self.state)
        )))
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn refusals_fail_and_trouble_is_retried_ever_less_often_for_a_day() {
        let start = Utc::now();
        let down = ApiError::Unavailable("sales is down".into());
        assert_eq!(
            retry_time(&down, start, start),
            Some(start + TimeDelta::seconds(30))
        );
        let later = start + TimeDelta::hours(5);
        assert_eq!(
            retry_time(&down, start, later),
            Some(later + TimeDelta::minutes(30))
        );
        let much_later = start + TimeDelta::hours(23);
        assert_eq!(
            retry_time(&down, start, much_later),
            Some(much_later + TimeDelta::hours(1))
        );
        assert_eq!(retry_time(&down, start, start + TimeDelta::hours(25)), None);
        let gone = ApiError::NotFound("contacts/x".into());
        assert_eq!(retry_time(&gone, start, start), None);
        let refused = ApiError::FailedPrecondition("sales refused the data".into());
        assert_eq!(retry_time(&refused, start, start), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "templates/0196f3c0-0000-7000-8000-000000000000";
    const DAY: i64 = 24 * 60 * 60;

    fn step(id: &str, action: Action, next: &str) -> Step {
        Step {
            id: id.into(),
            action,
            next: next.into(),
        }
    }

    fn send() -> Action {
        Action::SendEmail {
            template: TEMPLATE.into(),
            from_address: " News@Example.com ".into(),
            from_name: "Acme".into(),
            reply_to: String::new(),
        }
    }

    fn wait(seconds: i64) -> Action {
        Action::Wait {
            seconds,
            until: None,
        }
    }

    fn branch(condition: Condition, then_step: &str, else_step: &str) -> Action {
        Action::Branch {
            condition,
            then_step: then_step.into(),
            else_step: else_step.into(),
        }
    }

    fn clicked(step: &str) -> Condition {
        Condition::Clicked {
            step: step.into(),
            link: String::new(),
        }
    }

    fn tag(tags: &[&str]) -> Action {
        Action::UpdateContact {
            add_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            remove_tags: Vec::new(),
            lifecycle_stage: String::new(),
            custom_fields: serde_json::Map::new(),
        }
    }

    /// send -> wait 2 days -> clicked? -> task : tag.
    fn valid() -> JourneyDraft {
        JourneyDraft {
            display_name: " Welcome ".into(),
            description: String::new(),
            trigger: Trigger::LeadCreated {
                source: "web_form".into(),
            },
            reentry: Reentry::Never,
            exit_filter: "lifecycle_stage = \"CUSTOMER\"".into(),
            steps: vec![
                step("welcome", send(), "wait"),
                step("wait", wait(2 * DAY), "clicked"),
                step("clicked", branch(clicked("welcome"), "call", "tag"), ""),
                step(
                    "call",
                    Action::CreateTask {
                        title: "Call them".into(),
                        due_in_seconds: DAY,
                        owner: String::new(),
                    },
                    "",
                ),
                step("tag", tag(&["nurtured"]), ""),
            ],
        }
    }

    /// The fields named, in order.
    fn fields(mut draft: JourneyDraft) -> Vec<String> {
        match draft.normalize_and_check("journey") {
            Ok(()) => Vec::new(),
            Err(ApiError::InvalidArgument(v)) => v.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    fn active_journey() -> Journey {
        let mut journey = Journey::new(valid(), at(1, 0));
        journey.draft.normalize_and_check("journey").unwrap();
        journey.activate().unwrap();
        journey
    }

    fn is_precondition(result: Result<(), ApiError>, words: &str) -> bool {
        matches!(result, Err(ApiError::FailedPrecondition(m)) if m.contains(words))
    }

    #[test]
    fn a_valid_journey_passes_normalised_and_round_trips_as_json() {
        let mut draft = valid();
        draft.normalize_and_check("journey").unwrap();
        assert_eq!(
            draft.trigger,
            Trigger::LeadCreated {
                source: "WEB_FORM".into()
            }
        );
        let trigger = serde_json::to_string(&draft.trigger).unwrap();
        assert_eq!(trigger, r#"{"kind":"lead_created","source":"WEB_FORM"}"#);
        // A lead step needs a trigger other than new leads (see below).
        draft.trigger = Trigger::DealWon;
        draft
            .steps
            .push(step("lead", Action::CreateLead { source: " ".into() }, ""));
        draft.steps[3].next = "lead".into();
        draft.normalize_and_check("journey").unwrap();
        assert_eq!(draft.display_name, "Welcome");
        let Action::SendEmail { from_address, .. } = &draft.steps[0].action else {
            panic!("not a send");
        };
        assert_eq!(from_address, "news@example.com");
        assert_eq!(
            draft.steps[5].action,
            Action::CreateLead {
                source: DEFAULT_LEAD_SOURCE.into()
            }
        );
        let json = serde_json::to_value(&draft.steps).unwrap();
        assert_eq!(json[2]["action"]["kind"], "branch");
        assert_eq!(json[2]["action"]["condition"]["kind"], "clicked");
        let back: Vec<Step> = serde_json::from_value(json).unwrap();
        assert_eq!(back, draft.steps);
    }

    #[test]
    fn a_journey_new_leads_trigger_creates_no_leads() {
        let mut draft = valid();
        draft.steps[4].action = Action::CreateLead {
            source: String::new(),
        };
        assert_eq!(fields(draft.clone()), ["journey.steps[4].create_lead"]);
        draft.trigger = Trigger::TicketSolved;
        assert!(draft.normalize_and_check("journey").is_ok());
    }

    #[test]
    fn the_step_that_closes_a_cycle_is_named() {
        let mut draft = valid();
        draft.steps[4].next = "welcome".into();
        assert_eq!(fields(draft), ["journey.steps[4].next"]);
        let mut draft = valid();
        draft.steps[1].next = "wait".into();
        assert_eq!(
            fields(draft),
            [
                "journey.steps[1].next",
                "journey.steps[2]",
                "journey.steps[3]",
                "journey.steps[4]"
            ]
        );
    }

    #[test]
    fn an_unreachable_step_is_named() {
        let mut draft = valid();
        draft.steps.push(step("orphan", tag(&["x"]), "tag"));
        assert_eq!(fields(draft), ["journey.steps[5]"]);
    }

    #[test]
    fn a_dangling_reference_is_named_with_what_it_strands() {
        let mut draft = valid();
        draft.steps[3].next = "nowhere".into();
        assert_eq!(fields(draft), ["journey.steps[3].next"]);
        let mut draft = valid();
        draft.steps[2].action = branch(clicked("welcome"), "nowhere", "tag");
        assert_eq!(
            fields(draft),
            ["journey.steps[2].branch.then_step", "journey.steps[3]"]
        );
    }

    #[test]
    fn step_ids_are_unique_and_well_formed() {
        let mut draft = valid();
        draft.steps.push(step("call", tag(&["x"]), ""));
        assert_eq!(fields(draft), ["journey.steps[5].id", "journey.steps[5]"]);
        for bad in ["Call", "call me", "call/1", &"c".repeat(64)] {
            let mut draft = valid();
            draft.steps[3].id = bad.into();
            draft.steps[2].action = branch(clicked("welcome"), bad, "tag");
            assert_eq!(fields(draft), ["journey.steps[3].id"], "{bad:?}");
        }
        // An empty then_step ends the journey, so the step is stranded too.
        let mut draft = valid();
        draft.steps[3].id = " ".into();
        draft.steps[2].action = branch(clicked("welcome"), "", "tag");
        assert_eq!(fields(draft), ["journey.steps[3].id", "journey.steps[3]"]);
        let mut draft = valid();
        draft.steps[3].id = "c".repeat(63);
        draft.steps[2].action = branch(clicked("welcome"), &"c".repeat(63), "tag");
        assert_eq!(fields(draft), Vec::<String>::new());
    }

    #[test]
    fn a_branch_may_not_have_a_next() {
        let mut draft = valid();
        draft.steps[2].next = "tag".into();
        assert_eq!(fields(draft), ["journey.steps[2].next"]);
    }

    #[test]
    fn a_condition_names_an_email_sent_before_the_branch_on_every_path() {
        let mut draft = valid();
        draft.steps[2].action = branch(clicked("wait"), "call", "tag");
        assert_eq!(
            fields(draft),
            ["journey.steps[2].branch.condition.clicked.step"]
        );
        let mut draft = valid();
        draft.steps[2].action = branch(clicked("nobody"), "call", "tag");
        assert_eq!(
            fields(draft),
            ["journey.steps[2].branch.condition.clicked.step"]
        );
        let mut draft = valid();
        draft.steps[2].action = branch(Condition::Opened { step: " ".into() }, "call", "tag");
        assert_eq!(
            fields(draft),
            ["journey.steps[2].branch.condition.opened.step"]
        );

        // The email is sent after the branch.
        let mut draft = valid();
        draft.steps = vec![
            step(
                "ask",
                branch(
                    Condition::Opened {
                        step: "mail".into(),
                    },
                    "mail",
                    "",
                ),
                "",
            ),
            step("mail", send(), ""),
        ];
        assert_eq!(
            fields(draft),
            ["journey.steps[0].branch.condition.opened.step"]
        );

        // The email is sent on one path to the branch only.
        let filter = Condition::MatchesFilter {
            filter: "country = \"DE\"".into(),
        };
        let mut draft = valid();
        draft.steps = vec![
            step("split", branch(filter, "german", "english"), ""),
            step("german", send(), "ask"),
            step("english", send(), "ask"),
            step("ask", branch(clicked("german"), "", ""), ""),
        ];
        assert_eq!(
            fields(draft.clone()),
            ["journey.steps[3].branch.condition.clicked.step"]
        );
        draft.steps[0] = step("split", send(), "german");
        draft.steps[1].next = "english".into();
        assert_eq!(fields(draft), Vec::<String>::new(), "on the one path");
    }

    #[test]
    fn a_wait_is_a_duration_or_a_time() {
        let until = Some(at(5, 9));
        for (action, field) in [
            (Action::Wait { seconds: 60, until }, "journey.steps[1].wait"),
            (
                Action::Wait {
                    seconds: 0,
                    until: None,
                },
                "journey.steps[1].wait",
            ),
            (wait(-5), "journey.steps[1].wait.duration"),
            (wait(365 * DAY + 1), "journey.steps[1].wait.duration"),
        ] {
            let mut draft = valid();
            draft.steps[1].action = action;
            assert_eq!(fields(draft), [field]);
        }
        for action in [wait(1), wait(365 * DAY), Action::Wait { seconds: 0, until }] {
            let mut draft = valid();
            draft.steps[1].action = action;
            assert_eq!(fields(draft), Vec::<String>::new());
        }
    }

    #[test]
    fn an_email_step_needs_a_template_and_addresses() {
        let mut draft = valid();
        draft.steps[0].action = Action::SendEmail {
            template: "segments/0196f3c0-0000-7000-8000-000000000000".into(),
            from_address: "nobody".into(),
            from_name: String::new(),
            reply_to: "not@mail".into(),
        };
        assert_eq!(
            fields(draft),
            [
                "journey.steps[0].send_email.template",
                "journey.steps[0].send_email.from_address",
                "journey.steps[0].send_email.reply_to",
            ]
        );
    }

    #[test]
    fn a_contact_update_changes_something_valid() {
        let mut draft = valid();
        draft.steps[4].action = tag(&[]);
        assert_eq!(fields(draft), ["journey.steps[4].update_contact"]);

        let mut custom_fields = serde_json::Map::new();
        custom_fields.insert("bad key".into(), "x".into());
        let mut draft = valid();
        draft.steps[4].action = Action::UpdateContact {
            add_tags: vec![" vip ".into(), "VIP".into(), String::new()],
            remove_tags: vec!["Vip".into()],
            lifecycle_stage: "buyer".into(),
            custom_fields,
        };
        assert_eq!(
            fields(draft.clone()),
            [
                "journey.steps[4].update_contact.remove_tags[0]",
                "journey.steps[4].update_contact.lifecycle_stage",
                "journey.steps[4].update_contact.custom_fields.bad key",
            ]
        );
        draft.normalize();
        let Action::UpdateContact { add_tags, .. } = &draft.steps[4].action else {
            panic!("not an update");
        };
        assert_eq!(add_tags, &["vip"]);
    }

    #[test]
    fn tasks_and_leads_are_checked() {
        let mut draft = valid();
        draft.trigger = Trigger::DealWon;
        draft.steps[3].action = Action::CreateTask {
            title: " ".into(),
            due_in_seconds: -1,
            owner: "users/".into(),
        };
        draft.steps[4].action = Action::CreateLead {
            source: "marketing".into(),
        };
        assert_eq!(
            fields(draft),
            [
                "journey.steps[3].create_task.title",
                "journey.steps[3].create_task.due_in",
                "journey.steps[3].create_task.owner",
                "journey.steps[4].create_lead.source",
            ]
        );
    }

    #[test]
    fn the_trigger_and_the_step_count_are_checked() {
        let mut draft = valid();
        draft.trigger = Trigger::SegmentEntry {
            segment: "segments/42".into(),
        };
        assert_eq!(fields(draft), ["journey.trigger.segment"]);
        let mut draft = valid();
        draft.trigger = Trigger::LeadCreated {
            source: "fax".into(),
        };
        assert_eq!(fields(draft), ["journey.trigger.lead_source"]);

        let mut draft = valid();
        draft.steps.clear();
        assert_eq!(fields(draft), ["journey.steps"]);
        let mut draft = valid();
        draft.steps = (0..=MAX_STEPS)
            .map(|i| step(&format!("s{i}"), tag(&["x"]), &format!("s{}", i + 1)))
            .collect();
        assert_eq!(fields(draft.clone()), ["journey.steps"]);
        draft.steps.pop();
        draft.steps[MAX_STEPS - 1].next.clear();
        assert_eq!(fields(draft), Vec::<String>::new(), "{MAX_STEPS} steps");
    }

    #[test]
    fn a_wait_is_due_after_its_duration_or_at_its_time() {
        let start = at(1, 12);
        assert_eq!(due_time(&step("w", wait(2 * DAY), ""), start), at(3, 12));
        let until = |time| Action::Wait {
            seconds: 0,
            until: Some(time),
        };
        assert_eq!(due_time(&step("w", until(at(9, 8)), ""), start), at(9, 8));
        assert_eq!(
            due_time(&step("w", until(at(1, 6)), ""), start),
            start,
            "past"
        );
        assert_eq!(due_time(&step("s", send(), ""), start), start);
    }

    #[test]
    fn a_branch_follows_its_condition_and_other_steps_their_next() {
        let journey = valid();
        let ask = &journey.steps[2];
        assert_eq!(next_step(ask, Some(true)), Next::Step("call".into()));
        assert_eq!(next_step(ask, Some(false)), Next::Step("tag".into()));
        assert_eq!(next_step(ask, None), Next::Step("tag".into()));
        let open_ended = step("ask", branch(clicked("welcome"), "call", ""), "");
        assert_eq!(next_step(&open_ended, Some(false)), Next::End);
        assert_eq!(
            next_step(&journey.steps[0], None),
            Next::Step("wait".into())
        );
        assert_eq!(next_step(&journey.steps[4], None), Next::End);
    }

    #[test]
    fn an_enrolment_moves_step_by_step_until_it_completes() {
        let journey = active_journey();
        let steps = &journey.draft.steps;
        let mut e = journey
            .enroll("contacts/0196f3c0-0000-7000-8000-00000000000c", at(1, 0))
            .unwrap();
        assert_eq!(
            (e.step.as_str(), e.next_run_time),
            ("welcome", Some(at(1, 0)))
        );
        e.advance(steps, &next_step(&steps[0], None), at(1, 1))
            .unwrap();
        assert_eq!((e.step.as_str(), e.next_run_time), ("wait", Some(at(3, 1))));
        assert_eq!(e.step_start_time, at(1, 1));
        e.advance(steps, &Next::Step("clicked".into()), at(3, 1))
            .unwrap();
        e.advance(steps, &Next::Step("tag".into()), at(3, 1))
            .unwrap();
        e.advance(steps, &Next::End, at(3, 2)).unwrap();
        assert_eq!(e.state, EnrollmentState::Completed);
        assert_eq!((e.step.as_str(), e.next_run_time), ("", None));
        assert!(is_precondition(e.exit("late", at(4, 0)), "COMPLETED"));
        assert!(is_precondition(
            e.advance(steps, &Next::End, at(4, 0)),
            "COMPLETED"
        ));
        assert_eq!(e.reason, "", "an ended enrolment keeps its end");
    }

    #[test]
    fn an_enrolment_exits_or_fails_with_its_reason() {
        let journey = active_journey();
        let steps = &journey.draft.steps;
        let mut e = journey.enroll("contacts/x", at(1, 0)).unwrap();
        e.exit("matched the exit filter", at(2, 0)).unwrap();
        assert_eq!(
            (e.state, e.reason.as_str(), e.next_run_time, e.update_time),
            (
                EnrollmentState::Exited,
                "matched the exit filter",
                None,
                at(2, 0)
            )
        );
        assert!(is_precondition(e.fail("boom", at(2, 1)), "EXITED"));

        let mut e = journey.enroll("contacts/x", at(1, 0)).unwrap();
        e.fail("template deleted", at(1, 1)).unwrap();
        assert_eq!(
            (e.state, e.reason.as_str()),
            (EnrollmentState::Failed, "template deleted")
        );

        let mut e = journey.enroll("contacts/x", at(1, 0)).unwrap();
        e.advance(steps, &Next::Step("gone".into()), at(1, 1))
            .unwrap();
        assert_eq!(e.state, EnrollmentState::Failed);
        assert!(e.reason.contains("gone"), "{}", e.reason);
    }

    #[test]
    fn reentry_rules_decide_who_may_enrol() {
        assert!(may_enroll(Reentry::Never, false, false));
        assert!(!may_enroll(Reentry::Never, false, true));
        assert!(!may_enroll(Reentry::Never, true, true));
        assert!(may_enroll(Reentry::AfterEnded, false, false));
        assert!(may_enroll(Reentry::AfterEnded, false, true));
        assert!(!may_enroll(Reentry::AfterEnded, true, true));
    }

    #[test]
    fn effect_keys_are_stable_per_enrolment_and_step() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(effect_key(a, "welcome"), effect_key(a, "welcome"));
        assert_ne!(effect_key(a, "welcome"), effect_key(a, "call"));
        assert_ne!(effect_key(a, "welcome"), effect_key(b, "welcome"));
        assert_eq!(effect_key(a, "welcome").get_version_num(), 5);
        // Pinned: a changed namespace or name would apply retried steps twice.
        let fixed = Uuid::from_u128(1);
        assert_eq!(
            effect_key(fixed, "welcome"),
            Uuid::new_v5(
                &EFFECT_NAMESPACE,
                b"00000000-0000-0000-0000-000000000001/welcome"
            )
        );
    }

    #[test]
    fn the_journey_workflow_allows_only_its_moves() {
        let mut j = Journey::new(valid(), at(1, 0));
        assert_eq!(j.state, State::Draft);
        assert!(is_precondition(j.pause(), "DRAFT"));
        assert!(matches!(
            j.enroll("contacts/x", at(1, 0)),
            Err(ApiError::FailedPrecondition(_))
        ));
        j.activate().unwrap();
        assert!(is_precondition(j.activate(), "ACTIVE"));
        j.pause().unwrap();
        assert!(is_precondition(j.pause(), "PAUSED"));
        assert!(matches!(
            j.enroll("contacts/x", at(1, 0)),
            Err(ApiError::FailedPrecondition(_))
        ));
        j.activate().unwrap();
        j.archive().unwrap();
        assert!(is_precondition(j.archive(), "ARCHIVED"));
        assert!(is_precondition(j.activate(), "ARCHIVED"));
        assert!(is_precondition(j.pause(), "ARCHIVED"));
        assert_eq!(j.state, State::Archived);
    }

    #[test]
    fn once_activated_only_the_live_fields_may_change() {
        let mut j = Journey::new(valid(), at(1, 0));
        j.check_editable(JOURNEY_FIELDS).unwrap();
        j.activate().unwrap();
        j.check_editable(LIVE_FIELDS).unwrap();
        for frozen in ["trigger", "reentry", "steps"] {
            assert!(
                is_precondition(j.check_editable(&["display_name", frozen]), frozen),
                "{frozen}"
            );
        }
        j.pause().unwrap();
        assert!(is_precondition(j.check_editable(&["steps"]), "steps"));
        j.check_editable(&["exit_filter"]).unwrap();
        j.archive().unwrap();
        assert!(is_precondition(
            j.check_editable(&["display_name"]),
            "ARCHIVED"
        ));
    }

    #[test]
    fn apply_copies_only_the_named_fields() {
        let mut draft = valid();
        let patch = JourneyDraft {
            display_name: "New".into(),
            reentry: Reentry::AfterEnded,
            ..JourneyDraft::default()
        };
        draft.apply(&["display_name", "reentry"], &patch);
        assert_eq!(draft.display_name, "New");
        assert_eq!(draft.reentry, Reentry::AfterEnded);
        assert_eq!(draft.steps, valid().steps);
        assert_eq!(draft.trigger, valid().trigger);
    }

    #[test]
    fn a_clicked_link_matches_by_prefix() {
        assert!(link_matches("", "https://example.com/a"));
        assert!(link_matches(
            "https://example.com/pricing",
            "https://example.com/pricing?x=1"
        ));
        assert!(!link_matches(
            "https://example.com/pricing",
            "https://example.com/blog"
        ));
    }
}
