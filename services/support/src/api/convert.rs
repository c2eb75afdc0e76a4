//! Protobuf messages <-> domain values. Reading a request checks what only
//! the wire can get wrong (unknown enum numbers); the domain checks the rest.

use chrono::{DateTime, Utc};
use crm_proto::support as pb;
use crm_shared::{
    convert::{etag, json_to_struct, struct_to_json, to_any, to_timestamp},
    error::ApiError,
};

use crate::domain::{
    article::{Article, ArticleDraft, ArticleLink, ArticleState, ArticleVersion, snippet_html},
    chat::{self, Chat, ChatDraft, ChatEntry},
    comment::{Attachment, AuthorKind, Comment},
    routing::{Agent, Queue, QueueDraft, RoutingRule, RuleDraft, Strategy},
    satisfaction::Survey,
    sla::{
        BusinessCalendar, CalendarDraft, Metric, PolicyDraft, SlaPolicy, TicketSla, WrittenHours,
    },
    ticket::{Change, Channel, Priority, Status, Ticket, TicketDraft},
};
use crate::store::{EventPayloads, Found};

fn unknown(field: &str, value: i32) -> ApiError {
    ApiError::invalid(field, format!("unknown value {value}"))
}

fn timestamp(time: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    time.map(to_timestamp)
}

/// A status from the wire; None for UNSPECIFIED.
pub fn status(value: i32, field: &str) -> Result<Option<Status>, ApiError> {
    use pb::TicketStatus as P;
    Ok(
        match P::try_from(value).map_err(|_| unknown(field, value))? {
            P::Unspecified => None,
            P::New => Some(Status::New),
            P::Open => Some(Status::Open),
            P::Pending => Some(Status::Pending),
            P::OnHold => Some(Status::OnHold),
            P::Solved => Some(Status::Solved),
            P::Closed => Some(Status::Closed),
        },
    )
}

fn status_message(status: Status) -> pb::TicketStatus {
    match status {
        Status::New => pb::TicketStatus::New,
        Status::Open => pb::TicketStatus::Open,
        Status::Pending => pb::TicketStatus::Pending,
        Status::OnHold => pb::TicketStatus::OnHold,
        Status::Solved => pb::TicketStatus::Solved,
        Status::Closed => pb::TicketStatus::Closed,
    }
}

/// A priority from the wire; None for UNSPECIFIED.
pub fn priority(value: i32, field: &str) -> Result<Option<Priority>, ApiError> {
    use pb::TicketPriority as P;
    Ok(
        match P::try_from(value).map_err(|_| unknown(field, value))? {
            P::Unspecified => None,
            P::Low => Some(Priority::Low),
            P::Normal => Some(Priority::Normal),
            P::High => Some(Priority::High),
            P::Urgent => Some(Priority::Urgent),
        },
    )
}

fn priority_message(priority: Priority) -> pb::TicketPriority {
    match priority {
        Priority::Low => pb::TicketPriority::Low,
        Priority::Normal => pb::TicketPriority::Normal,
        Priority::High => pb::TicketPriority::High,
        Priority::Urgent => pb::TicketPriority::Urgent,
    }
}

fn channel(value: i32, field: &str) -> Result<Option<Channel>, ApiError> {
    use pb::TicketChannel as P;
    Ok(
        match P::try_from(value).map_err(|_| unknown(field, value))? {
            P::Unspecified => None,
            P::Email => Some(Channel::Email),
            P::Web => Some(Channel::Web),
            P::Phone => Some(Channel::Phone),
            P::Chat => Some(Channel::Chat),
            P::Api => Some(Channel::Api),
        },
    )
}

fn channel_message(channel: Channel) -> pb::TicketChannel {
    match channel {
        Channel::Email => pb::TicketChannel::Email,
        Channel::Web => pb::TicketChannel::Web,
        Channel::Phone => pb::TicketChannel::Phone,
        Channel::Chat => pb::TicketChannel::Chat,
        Channel::Api => pb::TicketChannel::Api,
    }
}

/// The writable fields of a ticket message (defaults: API channel, NORMAL
/// priority, NEW status); `prefix` names the message in errors.
pub fn ticket_draft(t: &pb::Ticket, prefix: &str) -> Result<TicketDraft, ApiError> {
    Ok(TicketDraft {
        subject: t.subject.clone(),
        description: t.description.clone(),
        requester: t.requester.trim().to_owned(),
        requester_email: t.requester_email.clone(),
        company: t.company.trim().to_owned(),
        channel: channel(t.channel, &format!("{prefix}.channel"))?.unwrap_or(Channel::Api),
        priority: priority(t.priority, &format!("{prefix}.priority"))?.unwrap_or(Priority::Normal),
        kind: t.r#type.clone(),
        tags: t.tags.clone(),
        custom_fields: t
            .custom_fields
            .as_ref()
            .map(struct_to_json)
            .unwrap_or_default(),
        status: status(t.status, &format!("{prefix}.status"))?.unwrap_or(Status::New),
    })
}

/// A ticket as the API shows it.
pub fn ticket_message(t: &Ticket) -> pb::Ticket {
    let d = &t.draft;
    pb::Ticket {
        name: t.name(),
        number: t.number,
        subject: d.subject.clone(),
        description: d.description.clone(),
        requester: d.requester.clone(),
        requester_email: d.requester_email.clone(),
        requester_display_name: String::new(),
        company: d.company.clone(),
        company_tier: t.company_tier.clone(),
        channel: channel_message(d.channel) as i32,
        priority: priority_message(d.priority) as i32,
        r#type: d.kind.clone(),
        tags: d.tags.clone(),
        custom_fields: (!d.custom_fields.is_empty()).then(|| json_to_struct(&d.custom_fields)),
        status: status_message(d.status) as i32,
        queue: t.queue.clone(),
        assignee: t.assignee.clone(),
        assignment_reason: t.assignment_reason.clone(),
        follow_up_of: t.follow_up_of.clone(),
        first_response_time: timestamp(t.first_response_time),
        solve_time: timestamp(t.solve_time),
        close_time: timestamp(t.close_time),
        reopen_count: t.reopen_count,
        create_time: Some(to_timestamp(t.create_time)),
        update_time: Some(to_timestamp(t.update_time)),
        delete_time: timestamp(t.delete_time),
        etag: etag(t.version),
        sla: (!t.sla.policy.is_empty()).then(|| sla_state(&t.sla, Utc::now())),
    }
}

fn metric_message(metric: Metric) -> pb::SlaMetric {
    match metric {
        Metric::FirstResponse => pb::SlaMetric::FirstResponse,
        Metric::NextResponse => pb::SlaMetric::NextResponse,
        Metric::Resolution => pb::SlaMetric::Resolution,
    }
}

fn duration(d: chrono::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.num_seconds(),
        nanos: 0,
    }
}

/// A ticket's SLA as of `now` (see the proto for what time left means).
fn sla_state(sla: &TicketSla, now: DateTime<Utc>) -> pb::SlaState {
    pb::SlaState {
        policy: sla.policy.clone(),
        targets: sla
            .clocks
            .iter()
            .map(|c| {
                let left = match (c.met, c.due) {
                    (Some(met), Some(due)) => due - met,
                    (None, Some(due)) if !c.paused => due - now,
                    _ => chrono::Duration::seconds(c.remaining_seconds),
                };
                pb::SlaTarget {
                    metric: metric_message(c.metric) as i32,
                    due_time: timestamp(c.due),
                    warn_time: timestamp(c.warn),
                    time_left: Some(duration(left)),
                    breached: c.breached(now),
                    paused: c.paused,
                    met_time: timestamp(c.met),
                }
            })
            .collect(),
    }
}

/// The writable fields of a calendar message.
pub fn calendar_draft(c: &pb::BusinessCalendar) -> CalendarDraft {
    CalendarDraft {
        display_name: c.display_name.trim().to_owned(),
        time_zone: c.time_zone.trim().to_owned(),
        weekly_hours: c
            .weekly_hours
            .iter()
            .map(|h| WrittenHours {
                day_of_week: h.day_of_week,
                open_time: h.open_time.trim().to_owned(),
                close_time: h.close_time.trim().to_owned(),
            })
            .collect(),
        holidays: c.holidays.iter().map(|d| d.trim().to_owned()).collect(),
    }
}

/// A calendar as the API shows it.
pub fn calendar_message(c: &BusinessCalendar) -> pb::BusinessCalendar {
    pb::BusinessCalendar {
        name: c.name(),
        display_name: c.draft.display_name.clone(),
        time_zone: c.draft.time_zone.clone(),
        weekly_hours: c
            .draft
            .weekly_hours
            .iter()
            .map(|h| pb::BusinessHours {
                day_of_week: h.day_of_week,
                open_time: h.open_time.clone(),
                close_time: h.close_time.clone(),
            })
            .collect(),
        holidays: c.draft.holidays.clone(),
        create_time: Some(to_timestamp(c.create_time)),
        update_time: Some(to_timestamp(c.update_time)),
        delete_time: timestamp(c.delete_time),
        etag: etag(c.version),
    }
}

/// The writable fields of a policy message.
pub fn policy_draft(p: &pb::SlaPolicy) -> Result<PolicyDraft, ApiError> {
    Ok(PolicyDraft {
        display_name: p.display_name.clone(),
        priority: p.priority,
        filter: p.filter.trim().to_owned(),
        first_response_minutes: p.first_response_minutes,
        next_response_minutes: p.next_response_minutes,
        resolution_minutes: p.resolution_minutes,
        calendar: p.calendar.trim().to_owned(),
        warn_at_percent: p.warn_at_percent,
        escalate_priority: priority(p.escalate_priority, "sla_policy.escalate_priority")?,
        escalate_queue: p.escalate_queue.trim().to_owned(),
    })
}

/// A policy as the API shows it.
pub fn policy_message(p: &SlaPolicy) -> pb::SlaPolicy {
    let d = &p.draft;
    pb::SlaPolicy {
        name: p.name(),
        display_name: d.display_name.clone(),
        priority: d.priority,
        filter: d.filter.clone(),
        first_response_minutes: d.first_response_minutes,
        next_response_minutes: d.next_response_minutes,
        resolution_minutes: d.resolution_minutes,
        calendar: d.calendar.clone(),
        warn_at_percent: d.warn_at_percent,
        escalate_priority: d
            .escalate_priority
            .map(priority_message)
            .unwrap_or_default() as i32,
        escalate_queue: d.escalate_queue.clone(),
        create_time: Some(to_timestamp(p.create_time)),
        delete_time: timestamp(p.delete_time),
        etag: etag(p.version),
    }
}

/// A survey as the API shows it; `token` only for those who send it.
pub fn survey_message(s: &Survey, token: Option<String>) -> pb::SatisfactionSurvey {
    pb::SatisfactionSurvey {
        name: s.name(),
        token: token.unwrap_or_default(),
        expire_time: Some(to_timestamp(s.expire_time)),
        rating: s.rating.unwrap_or_default(),
        comment: s.comment.clone(),
        submit_time: timestamp(s.submit_time),
        assignee: s.assignee.clone(),
        queue: s.queue.clone(),
        create_time: Some(to_timestamp(s.create_time)),
    }
}

/// A recorded change as the API shows it.
pub fn change_message(c: &Change) -> pb::TicketChange {
    pb::TicketChange {
        field: c.field.to_owned(),
        old_value: c.old_value.clone(),
        new_value: c.new_value.clone(),
        actor: c.actor.clone(),
        change_time: Some(to_timestamp(c.time)),
    }
}

/// Attachments from the wire.
pub fn attachments(list: &[pb::Attachment]) -> Vec<Attachment> {
    list.iter()
        .map(|a| Attachment {
            file_name: a.file_name.trim().to_owned(),
            size_bytes: a.size_bytes,
            content_type: a.content_type.trim().to_owned(),
            sha256: a.sha256.trim().to_lowercase(),
            uri: a.uri.trim().to_owned(),
        })
        .collect()
}

fn author_kind_message(kind: AuthorKind) -> pb::CommentAuthorKind {
    match kind {
        AuthorKind::Agent => pb::CommentAuthorKind::Agent,
        AuthorKind::Requester => pb::CommentAuthorKind::Requester,
        AuthorKind::System => pb::CommentAuthorKind::System,
    }
}

/// A comment as the API shows it; `follow_up` names the follow-up ticket
/// it opened, if it did.
pub fn comment_message(c: &Comment, follow_up: Option<&Ticket>) -> pb::Comment {
    pb::Comment {
        name: c.name(),
        body: c.body.clone(),
        public: c.public,
        author_kind: author_kind_message(c.author_kind) as i32,
        author: c.author.clone(),
        attachments: c
            .attachments
            .iter()
            .map(|a| pb::Attachment {
                file_name: a.file_name.clone(),
                size_bytes: a.size_bytes,
                content_type: a.content_type.clone(),
                sha256: a.sha256.clone(),
                uri: a.uri.clone(),
            })
            .collect(),
        message_id: c.message_id.clone(),
        follow_up_ticket: follow_up.map(Ticket::name).unwrap_or_default(),
        create_time: Some(to_timestamp(c.create_time)),
    }
}

fn strategy(value: i32, field: &str) -> Result<Strategy, ApiError> {
    use pb::AssignmentStrategy as P;
    Ok(
        match P::try_from(value).map_err(|_| unknown(field, value))? {
            P::Unspecified => Strategy::Manual,
            P::RoundRobin => Strategy::RoundRobin,
            P::LeastOpen => Strategy::LeastOpen,
            P::Skills => Strategy::Skills,
        },
    )
}

fn strategy_message(strategy: Strategy) -> pb::AssignmentStrategy {
    match strategy {
        Strategy::Manual => pb::AssignmentStrategy::Unspecified,
        Strategy::RoundRobin => pb::AssignmentStrategy::RoundRobin,
        Strategy::LeastOpen => pb::AssignmentStrategy::LeastOpen,
        Strategy::Skills => pb::AssignmentStrategy::Skills,
    }
}

/// The writable fields of a queue message.
pub fn queue_draft(q: &pb::Queue, prefix: &str) -> Result<QueueDraft, ApiError> {
    Ok(QueueDraft {
        display_name: q.display_name.clone(),
        description: q.description.clone(),
        members: q.members.clone(),
        strategy: strategy(q.strategy, &format!("{prefix}.strategy"))?,
        required_skills: q.required_skills.clone(),
    })
}

/// A queue as the API shows it.
pub fn queue_message(q: &Queue) -> pb::Queue {
    pb::Queue {
        name: q.name(),
        display_name: q.draft.display_name.clone(),
        description: q.draft.description.clone(),
        members: q.draft.members.clone(),
        strategy: strategy_message(q.draft.strategy) as i32,
        required_skills: q.draft.required_skills.clone(),
        create_time: Some(to_timestamp(q.create_time)),
        update_time: Some(to_timestamp(q.update_time)),
        delete_time: timestamp(q.delete_time),
        etag: etag(q.version),
    }
}

/// An agent as the API shows it.
pub fn agent_message(a: &Agent) -> pb::Agent {
    pb::Agent {
        name: a.name(),
        display_name: a.display_name.clone(),
        skills: a.skills.clone(),
        available: a.available,
        update_time: Some(to_timestamp(a.update_time)),
        etag: etag(a.version),
    }
}

/// The writable fields of a routing rule message.
pub fn rule_draft(r: &pb::RoutingRule, prefix: &str) -> Result<RuleDraft, ApiError> {
    Ok(RuleDraft {
        display_name: r.display_name.clone(),
        priority: r.priority,
        filter: r.filter.trim().to_owned(),
        queue: r.queue.trim().to_owned(),
        set_priority: priority(r.set_priority, &format!("{prefix}.set_priority"))?,
    })
}

/// A routing rule as the API shows it.
pub fn rule_message(r: &RoutingRule) -> pb::RoutingRule {
    pb::RoutingRule {
        name: r.name(),
        display_name: r.draft.display_name.clone(),
        priority: r.draft.priority,
        filter: r.draft.filter.clone(),
        queue: r.draft.queue.clone(),
        set_priority: r
            .draft
            .set_priority
            .map(priority_message)
            .unwrap_or_default() as i32,
        create_time: Some(to_timestamp(r.create_time)),
        etag: etag(r.version),
    }
}

/// An article state from the wire; None for UNSPECIFIED.
pub fn article_state(value: i32, field: &str) -> Result<Option<ArticleState>, ApiError> {
    use pb::ArticleState as P;
    Ok(
        match P::try_from(value).map_err(|_| unknown(field, value))? {
            P::Unspecified => None,
            P::Draft => Some(ArticleState::Draft),
            P::Published => Some(ArticleState::Published),
            P::Archived => Some(ArticleState::Archived),
        },
    )
}

fn article_state_message(state: ArticleState) -> pb::ArticleState {
    match state {
        ArticleState::Draft => pb::ArticleState::Draft,
        ArticleState::Published => pb::ArticleState::Published,
        ArticleState::Archived => pb::ArticleState::Archived,
    }
}

/// The writable fields (the content) of an article message.
pub fn article_draft(a: &pb::Article) -> ArticleDraft {
    ArticleDraft {
        title: a.title.clone(),
        body: a.body.clone(),
        locale: a.locale.clone(),
        category: a.category.clone(),
        tags: a.tags.clone(),
    }
}

/// An article as the API shows it.
pub fn article_message(a: &Article) -> pb::Article {
    let d = &a.draft;
    pb::Article {
        name: a.name(),
        title: d.title.clone(),
        body: d.body.clone(),
        locale: d.locale.clone(),
        category: d.category.clone(),
        tags: d.tags.clone(),
        state: article_state_message(a.state) as i32,
        version: a.content_version,
        helpful_count: a.helpful_count,
        not_helpful_count: a.not_helpful_count,
        create_time: Some(to_timestamp(a.create_time)),
        update_time: Some(to_timestamp(a.update_time)),
        publish_time: timestamp(a.publish_time),
        delete_time: timestamp(a.delete_time),
        etag: etag(a.version),
    }
}

/// A kept version of an article as the API shows it.
pub fn article_version_message(v: &ArticleVersion) -> pb::ArticleVersion {
    pb::ArticleVersion {
        name: v.name(),
        version: v.number,
        title: v.draft.title.clone(),
        body: v.draft.body.clone(),
        locale: v.draft.locale.clone(),
        category: v.draft.category.clone(),
        tags: v.draft.tags.clone(),
        author: v.author.clone(),
        create_time: Some(to_timestamp(v.create_time)),
    }
}

/// A link between a ticket and an article as the API shows it.
pub fn article_link_message(l: &ArticleLink) -> pb::ArticleLink {
    pb::ArticleLink {
        name: l.name(),
        ticket: format!("tickets/{}", l.ticket),
        article: format!("articles/{}", l.article),
        article_title: l.article_title.clone(),
        linked_by: l.linked_by.clone(),
        create_time: Some(to_timestamp(l.create_time)),
    }
}

/// An article found, with its score and its snippet as HTML.
pub fn search_result_message(found: &Found) -> pb::ArticleSearchResult {
    pb::ArticleSearchResult {
        article: Some(article_message(&found.article)),
        score: found.score,
        snippet: snippet_html(&found.snippet),
    }
}

/// What StartChat takes of a chat.
pub fn chat_draft(c: &pb::Chat) -> ChatDraft {
    ChatDraft {
        subject: c.subject.clone(),
        requester: c.requester.clone(),
        requester_email: c.requester_email.clone(),
        requester_display_name: c.requester_display_name.clone(),
        queue: c.queue.clone(),
    }
}

fn chat_state_message(state: chat::State) -> pb::ChatState {
    match state {
        chat::State::Waiting => pb::ChatState::Waiting,
        chat::State::Active => pb::ChatState::Active,
        chat::State::Ended => pb::ChatState::Ended,
    }
}

/// A chat role on the wire.
pub fn chat_role_message(role: chat::Role) -> pb::ChatRole {
    match role {
        chat::Role::Customer => pb::ChatRole::Customer,
        chat::Role::Agent => pb::ChatRole::Agent,
        chat::Role::System => pb::ChatRole::System,
    }
}

fn chat_kind_message(kind: chat::Kind) -> pb::ChatMessageKind {
    match kind {
        chat::Kind::Text => pb::ChatMessageKind::Text,
        chat::Kind::AgentJoined => pb::ChatMessageKind::AgentJoined,
        chat::Kind::Ended => pb::ChatMessageKind::Ended,
    }
}

/// A chat on the wire.
pub fn chat_message(c: &Chat) -> pb::Chat {
    pb::Chat {
        name: c.name(),
        state: chat_state_message(c.state).into(),
        subject: c.draft.subject.clone(),
        requester: c.draft.requester.clone(),
        requester_email: c.draft.requester_email.clone(),
        requester_display_name: c.draft.requester_display_name.clone(),
        queue: c.draft.queue.clone(),
        offered_agent: c.offered_agent.clone(),
        agent: c.agent.clone(),
        last_sequence: c.last_sequence,
        customer_read_sequence: c.customer_read_sequence,
        agent_read_sequence: c.agent_read_sequence,
        ticket: c.ticket.clone(),
        ended_by: c.ended_by.clone(),
        create_time: Some(to_timestamp(c.create_time)),
        accept_time: timestamp(c.accept_time),
        end_time: timestamp(c.end_time),
        update_time: Some(to_timestamp(c.update_time)),
    }
}

/// A transcript entry on the wire.
pub fn chat_entry_message(e: &ChatEntry) -> pb::ChatMessage {
    pb::ChatMessage {
        name: e.name(),
        sequence: e.sequence,
        kind: chat_kind_message(e.kind).into(),
        author_role: chat_role_message(e.author_role).into(),
        author: e.author.clone(),
        text: e.text.clone(),
        client_message_id: e.client_message_id.clone(),
        create_time: Some(to_timestamp(e.create_time)),
    }
}

/// Event payloads as protobuf `Any`s.
pub struct ProtoPayloads;

impl EventPayloads for ProtoPayloads {
    fn ticket(&self, ticket: &Ticket) -> prost_types::Any {
        to_any(&ticket_message(ticket))
    }

    fn status_changed(&self, ticket: &Ticket, from: Status) -> prost_types::Any {
        to_any(&pb::TicketStatusChanged {
            ticket: Some(ticket_message(ticket)),
            old_status: status_message(from) as i32,
        })
    }

    fn comment_created(&self, comment: &Comment, ticket: &Ticket) -> prost_types::Any {
        to_any(&pb::CommentCreated {
            comment: Some(comment_message(comment, None)),
            ticket: Some(ticket_message(ticket)),
        })
    }

    fn queue(&self, queue: &Queue) -> prost_types::Any {
        to_any(&queue_message(queue))
    }

    fn agent(&self, agent: &Agent) -> prost_types::Any {
        to_any(&agent_message(agent))
    }

    fn routing_rule(&self, rule: &RoutingRule) -> prost_types::Any {
        to_any(&rule_message(rule))
    }

    fn calendar(&self, calendar: &BusinessCalendar) -> prost_types::Any {
        to_any(&calendar_message(calendar))
    }

    fn policy(&self, policy: &SlaPolicy) -> prost_types::Any {
        to_any(&policy_message(policy))
    }

    fn survey(&self, survey: &Survey) -> prost_types::Any {
        to_any(&survey_message(survey, None))
    }

    fn sla_alert(&self, ticket: &Ticket, metric: Metric, due: DateTime<Utc>) -> prost_types::Any {
        to_any(&pb::SlaAlert {
            ticket: Some(ticket_message(ticket)),
            policy: ticket.sla.policy.clone(),
            metric: metric_message(metric) as i32,
            due_time: Some(to_timestamp(due)),
        })
    }

    fn article(&self, article: &Article) -> prost_types::Any {
        to_any(&article_message(article))
    }

    fn article_link(&self, link: &ArticleLink) -> prost_types::Any {
        to_any(&article_link_message(link))
    }

    fn chat(&self, chat: &Chat) -> prost_types::Any {
        to_any(&chat_message(chat))
    }
}
