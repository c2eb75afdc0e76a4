//! SLA policies, business calendars as people write them, and the clocks of
//! a ticket: when each target falls due, when to warn, whether it is met,
//! paused or breached. Pure: the store feeds in the ticket's history.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Timelike, Utc, Weekday};
use crm_shared::{
    error::ApiError,
    validate::{MAX_SHORT, Violations},
};
use uuid::Uuid;

use super::{
    calendar::{Calendar, DayHours, Pause},
    ticket::{Priority, Status},
};

/// The longest target: a year of minutes.
const MAX_TARGET_MINUTES: i32 = 366 * 24 * 60;
/// The warning share when a policy gives none.
pub const DEFAULT_WARN_PERCENT: i32 = 75;

/// What a target measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// Creation to the first public agent reply.
    FirstResponse,
    /// A requester's reply to the next public agent reply.
    NextResponse,
    /// Creation to solved.
    Resolution,
}

impl Metric {
    /// The name in logs and recorded alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::FirstResponse => "FIRST_RESPONSE",
            Metric::NextResponse => "NEXT_RESPONSE",
            Metric::Resolution => "RESOLUTION",
        }
    }
}

/// One day's opening hours as written: ISO weekday 1-7, "HH:MM" times.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrittenHours {
    /// 1 Monday .. 7 Sunday.
    pub day_of_week: i32,
    /// "HH:MM".
    pub open_time: String,
    /// "HH:MM" or "24:00".
    pub close_time: String,
}

/// The fields a caller writes of a calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarDraft {
    /// For people.
    pub display_name: String,
    /// IANA zone.
    pub time_zone: String,
    /// Weekly hours.
    pub weekly_hours: Vec<WrittenHours>,
    /// "YYYY-MM-DD".
    pub holidays: Vec<String>,
}

/// The fields UpdateBusinessCalendar may change.
pub const CALENDAR_FIELDS: &[&str] = &["display_name", "time_zone", "weekly_hours", "holidays"];

/// Minutes from midnight of "HH:MM" ("24:00" is 1440).
fn minutes(text: &str) -> Option<u32> {
    if text == "24:00" {
        return Some(24 * 60);
    }
    let time = NaiveTime::parse_from_str(text, "%H:%M").ok()?;
    Some(time.hour() * 60 + time.minute())
}

fn weekday(day: i32) -> Option<Weekday> {
    match day {
        1 => Some(Weekday::Mon),
        2 => Some(Weekday::Tue),
        3 => Some(Weekday::Wed),
        4 => Some(Weekday::Thu),
        5 => Some(Weekday::Fri),
        6 => Some(Weekday::Sat),
        7 => Some(Weekday::Sun),
        _ => None,
    }
}

impl CalendarDraft {
    /// The calendar it describes; INVALID_ARGUMENT naming each bad field
    /// under `prefix`.
    pub fn calendar(&self, prefix: &str) -> Result<Calendar, ApiError> {
        let mut v = Violations::default();
        let field = |name: &str| format!("{prefix}.{name}");
        if self.display_name.trim().is_empty() {
            v.add(field("display_name"), "required");
        }
        v.text(&field("display_name"), &self.display_name, MAX_SHORT);
        let mut hours = Vec::new();
        for (i, h) in self.weekly_hours.iter().enumerate() {
            let at = |name: &str| format!("{prefix}.weekly_hours[{i}].{name}");
            let day = weekday(h.day_of_week);
            let open = minutes(&h.open_time).filter(|m| *m < 24 * 60);
            let close = minutes(&h.close_time);
            if day.is_none() {
                v.add(at("day_of_week"), "1 (Monday) to 7 (Sunday)");
            }
            if open.is_none() {
                v.add(at("open_time"), "HH:MM, 00:00 to 23:59");
            }
            if close.is_none() {
                v.add(at("close_time"), "HH:MM, 00:01 to 24:00");
            }
            if let (Some(day), Some(open), Some(close)) = (day, open, close) {
                hours.push(DayHours::new(day, open, close));
            }
        }
        let mut holidays = Vec::new();
        for (i, day) in self.holidays.iter().enumerate() {
            match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
                Ok(date) => holidays.push(date),
                Err(_) => v.add(format!("{prefix}.holidays[{i}]"), "YYYY-MM-DD"),
            }
        }
        if self.holidays.len() > 1000 {
            v.add(field("holidays"), "at most 1000");
        }
        v.finish()?;
        Calendar::new(self.time_zone.trim(), hours, holidays)
            .map_err(|e| ApiError::invalid(format!("{prefix}.{}", e.field()), e.to_string()))
    }

    /// Copies the fields named in `paths` from `from`.
    pub fn apply(&mut self, paths: &[&str], from: &CalendarDraft) {
        for path in paths {
            match *path {
                "display_name" => self.display_name = from.display_name.clone(),
                "time_zone" => self.time_zone = from.time_zone.clone(),
                "weekly_hours" => self.weekly_hours = from.weekly_hours.clone(),
                "holidays" => self.holidays = from.holidays.clone(),
                _ => {}
            }
        }
    }
}

/// A stored calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessCalendar {
    /// The id.
    pub id: Uuid,
    /// The caller's fields.
    pub draft: CalendarDraft,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Changed.
    pub update_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// Version.
    pub version: i64,
}

impl BusinessCalendar {
    /// `businessCalendars/{id}`.
    pub fn name(&self) -> String {
        format!("businessCalendars/{}", self.id)
    }
}

/// The fields a caller writes of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDraft {
    /// For people.
    pub display_name: String,
    /// Lower is tried first.
    pub priority: i32,
    /// AIP-160 over tickets (parsed by the store).
    pub filter: String,
    /// Minutes to the first response; 0 none.
    pub first_response_minutes: i32,
    /// Minutes to each next response; 0 none.
    pub next_response_minutes: i32,
    /// Minutes to solved; 0 none.
    pub resolution_minutes: i32,
    /// `businessCalendars/{id}` or empty (24x7).
    pub calendar: String,
    /// 1-99.
    pub warn_at_percent: i32,
    /// Raise to at least this on a breach.
    pub escalate_priority: Option<Priority>,
    /// Move here on a breach.
    pub escalate_queue: String,
}

impl PolicyDraft {
    /// Checks the fields; `prefix` names the message.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.display_name = self.display_name.trim().to_owned();
        if self.warn_at_percent == 0 {
            self.warn_at_percent = DEFAULT_WARN_PERCENT;
        }
        let field = |name: &str| format!("{prefix}.{name}");
        let mut v = Violations::default();
        if self.display_name.is_empty() {
            v.add(field("display_name"), "required");
        }
        v.text(&field("display_name"), &self.display_name, MAX_SHORT);
        v.text(&field("filter"), &self.filter, 4096);
        for (name, minutes) in [
            ("first_response_minutes", self.first_response_minutes),
            ("next_response_minutes", self.next_response_minutes),
            ("resolution_minutes", self.resolution_minutes),
        ] {
            if !(0..=MAX_TARGET_MINUTES).contains(&minutes) {
                v.add(field(name), format!("0 to {MAX_TARGET_MINUTES}"));
            }
        }
        if self.first_response_minutes == 0
            && self.next_response_minutes == 0
            && self.resolution_minutes == 0
        {
            v.add(
                field("resolution_minutes"),
                "a policy needs at least one target",
            );
        }
        if !(1..=99).contains(&self.warn_at_percent) {
            v.add(field("warn_at_percent"), "1 to 99");
        }
        v.reference(&field("calendar"), &self.calendar, "businessCalendars");
        v.reference(&field("escalate_queue"), &self.escalate_queue, "queues");
        v.finish()
    }

    fn target(&self, metric: Metric) -> Option<Duration> {
        let minutes = match metric {
            Metric::FirstResponse => self.first_response_minutes,
            Metric::NextResponse => self.next_response_minutes,
            Metric::Resolution => self.resolution_minutes,
        };
        (minutes > 0).then(|| Duration::minutes(i64::from(minutes)))
    }
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    /// The id.
    pub id: Uuid,
    /// The caller's fields.
    pub draft: PolicyDraft,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// Version.
    pub version: i64,
}

impl SlaPolicy {
    /// `slaPolicies/{id}`.
    pub fn name(&self) -> String {
        format!("slaPolicies/{}", self.id)
    }
}

/// A ticket's SLA as last computed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketSla {
    /// `slaPolicies/{id}` or empty.
    pub policy: String,
    /// Its clocks.
    pub clocks: Vec<Clock>,
    /// Alerts already raised ([`Clock::alert_key`]).
    pub recorded: Vec<String>,
    /// When the scheduler looks next.
    pub next_check: Option<DateTime<Utc>>,
}

/// What the clocks need of a ticket.
#[derive(Debug, Clone)]
pub struct ClockInputs {
    /// Created: the first response and resolution clocks start here.
    pub created: DateTime<Utc>,
    /// The first public agent reply.
    pub first_response: Option<DateTime<Utc>>,
    /// The requester's reply still waiting for an agent's, after the first response.
    pub awaiting_reply_since: Option<DateTime<Utc>>,
    /// The status now.
    pub status: Status,
    /// Last solved.
    pub solve_time: Option<DateTime<Utc>>,
    /// Every status the ticket took, with when, oldest first.
    pub statuses: Vec<(DateTime<Utc>, Status)>,
}

/// Statuses during which the clocks stop.
fn pauses_clock(status: Status) -> bool {
    matches!(
        status,
        Status::Pending | Status::OnHold | Status::Solved | Status::Closed
    )
}

/// The intervals the clocks stood still, from the status history.
pub fn pauses(statuses: &[(DateTime<Utc>, Status)]) -> Vec<Pause> {
    let mut out: Vec<Pause> = Vec::new();
    for (at, status) in statuses {
        let open = out.last().is_some_and(|p| p.to.is_none());
        match (pauses_clock(*status), open) {
            (true, false) => out.push(Pause {
                from: *at,
                to: None,
            }),
            (false, true) => {
                if let Some(last) = out.last_mut() {
                    last.to = Some(*at);
                }
            }
            _ => {}
        }
    }
    out
}

/// One clock of a ticket, as of `now`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Clock {
    /// What it measures.
    pub metric: Metric,
    /// When it started.
    pub start: DateTime<Utc>,
    /// Due; None while paused.
    pub due: Option<DateTime<Utc>>,
    /// When to warn; None while paused.
    pub warn: Option<DateTime<Utc>>,
    /// When it was met.
    pub met: Option<DateTime<Utc>>,
    /// Stopped by a pause now.
    pub paused: bool,
    /// Business time left at `now` (or when met), in seconds; negative once over.
    pub remaining_seconds: i64,
}

impl Clock {
    /// Missed: met after due, or still running past due.
    pub fn breached(&self, now: DateTime<Utc>) -> bool {
        match (self.met, self.due) {
            (Some(met), Some(due)) => met > due,
            (None, Some(due)) => now > due,
            _ => self.remaining_seconds < 0,
        }
    }

    /// The key an alert about this clock is recorded under: a next-response
    /// clock restarts with each reply, and each run may warn and breach once.
    pub fn alert_key(&self, kind: &str) -> String {
        format!(
            "{}@{}:{kind}",
            self.metric.as_str(),
            self.start.timestamp_millis()
        )
    }
}

/// The clocks `policy` runs on a ticket, as of `now`.
pub fn clocks(
    policy: &PolicyDraft,
    calendar: &Calendar,
    ticket: &ClockInputs,
    now: DateTime<Utc>,
) -> Vec<Clock> {
    let pauses = pauses(&ticket.statuses);
    let solved = matches!(ticket.status, Status::Solved | Status::Closed);
    let runs = [
        (
            Metric::FirstResponse,
            Some(ticket.created),
            ticket.first_response,
        ),
        (
            Metric::NextResponse,
            ticket
                .awaiting_reply_since
                .filter(|_| ticket.first_response.is_some()),
            None,
        ),
        (
            Metric::Resolution,
            Some(ticket.created),
            if solved { ticket.solve_time } else { None },
        ),
    ];
    let mut out = Vec::new();
    for (metric, start, met) in runs {
        let (Some(target), Some(start)) = (policy.target(metric), start) else {
            continue;
        };
        // A clock that has not been met but whose ticket is solved has
        // nothing left to wait for (a first response never given).
        if met.is_none() && solved && metric != Metric::Resolution {
            continue;
        }
        let due = calendar.sla_due(start, target, &pauses);
        let warn_share = target * policy.warn_at_percent / 100;
        let warn = calendar.sla_due(start, warn_share, &pauses);
        let until = met.unwrap_or(now);
        let elapsed = calendar.sla_elapsed(start, until, &pauses);
        out.push(Clock {
            metric,
            start,
            due: due.due,
            warn: warn.due,
            met,
            paused: met.is_none() && due.paused,
            remaining_seconds: (target - elapsed).num_seconds(),
        });
    }
    out
}

/// What falls due for the scheduler: the next warning or due time of a
/// running clock not yet recorded.
pub fn next_check(clocks: &[Clock], recorded: &[String]) -> Option<DateTime<Utc>> {
    clocks
        .iter()
        .filter(|c| c.met.is_none())
        .flat_map(|c| {
            [
                c.warn
                    .filter(|_| !recorded.contains(&c.alert_key("warned"))),
                c.due
                    .filter(|_| !recorded.contains(&c.alert_key("breached"))),
            ]
        })
        .flatten()
        .min()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        // November 2026: the 30th is a Monday.
        Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
            .unwrap()
    }

    fn policy(first: i32, next: i32, resolution: i32) -> PolicyDraft {
        PolicyDraft {
            display_name: "Standard".into(),
            priority: 0,
            filter: String::new(),
            first_response_minutes: first,
            next_response_minutes: next,
            resolution_minutes: resolution,
            calendar: String::new(),
            warn_at_percent: 50,
            escalate_priority: None,
            escalate_queue: String::new(),
        }
    }

    fn office() -> Calendar {
        CalendarDraft {
            display_name: "Office".into(),
            time_zone: "UTC".into(),
            weekly_hours: (1..=5)
                .map(|day| WrittenHours {
                    day_of_week: day,
                    open_time: "09:00".into(),
                    close_time: "17:00".into(),
                })
                .collect(),
            holidays: vec!["2026-12-01".into()],
        }
        .calendar("c")
        .unwrap()
    }

    fn inputs(created: DateTime<Utc>) -> ClockInputs {
        ClockInputs {
            created,
            first_response: None,
            awaiting_reply_since: None,
            status: Status::New,
            solve_time: None,
            statuses: vec![(created, Status::New)],
        }
    }

    #[test]
    fn a_friday_evening_ticket_is_due_monday_and_a_holiday_moves_resolution() {
        // Friday 27th 18:00: after hours; 2 h first response, 16 h resolution.
        let ticket = inputs(at(27, 18, 0));
        let clocks = clocks(&policy(120, 0, 16 * 60), &office(), &ticket, at(27, 18, 0));
        assert_eq!(clocks[0].due, Some(at(30, 11, 0)));
        assert_eq!(clocks[0].warn, Some(at(30, 10, 0)));
        // Monday 8 h, Tuesday 1st is a holiday, Wednesday 8 h.
        assert_eq!(
            clocks[1].due,
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 17, 0, 0).unwrap())
        );
    }

    #[test]
    fn pending_pauses_every_clock_and_resuming_moves_due() {
        let mut ticket = inputs(at(30, 9, 0));
        ticket.statuses.push((at(30, 10, 0), Status::Pending));
        ticket.status = Status::Pending;
        let paused = clocks(&policy(0, 0, 240), &office(), &ticket, at(30, 12, 0));
        assert!(paused[0].paused && paused[0].due.is_none());
        assert_eq!(paused[0].remaining_seconds, 3 * 3600);
        ticket.statuses.push((at(30, 14, 0), Status::Open));
        ticket.status = Status::Open;
        let resumed = clocks(&policy(0, 0, 240), &office(), &ticket, at(30, 14, 0));
        assert_eq!(resumed[0].due, Some(at(30, 17, 0)));
        assert!(!resumed[0].breached(at(30, 16, 59)));
        assert!(resumed[0].breached(at(30, 17, 1)));
    }

    #[test]
    fn met_late_is_a_breach_and_the_next_response_clock_restarts() {
        let mut ticket = inputs(at(30, 9, 0));
        ticket.first_response = Some(at(30, 12, 0));
        ticket.awaiting_reply_since = Some(at(30, 13, 0));
        let clocks = clocks(&policy(120, 60, 0), &office(), &ticket, at(30, 13, 30));
        assert_eq!(clocks[0].met, Some(at(30, 12, 0)));
        assert!(clocks[0].breached(at(30, 13, 30)));
        assert_eq!(
            (clocks[1].metric, clocks[1].due),
            (Metric::NextResponse, Some(at(30, 14, 0)))
        );
        assert_eq!(next_check(&clocks, &[]), Some(at(30, 13, 30)));
        let warned = [clocks[1].alert_key("warned")];
        assert_eq!(next_check(&clocks, &warned), Some(at(30, 14, 0)));
    }

    #[test]
    fn a_solved_ticket_stops_resolution_and_drops_an_unanswered_first_response() {
        let mut ticket = inputs(at(30, 9, 0));
        ticket.statuses.push((at(30, 11, 0), Status::Solved));
        ticket.status = Status::Solved;
        ticket.solve_time = Some(at(30, 11, 0));
        let clocks = clocks(&policy(60, 0, 240), &office(), &ticket, at(30, 16, 0));
        assert_eq!(clocks.len(), 1);
        assert_eq!(
            (clocks[0].metric, clocks[0].met),
            (Metric::Resolution, Some(at(30, 11, 0)))
        );
        assert_eq!(clocks[0].remaining_seconds, 2 * 3600);
        assert!(!clocks[0].breached(at(30, 16, 0)));
        assert_eq!(next_check(&clocks, &[]), None);
    }

    #[test]
    fn written_hours_are_checked_field_by_field() {
        let draft = CalendarDraft {
            display_name: "X".into(),
            time_zone: "Mars/Olympus".into(),
            weekly_hours: vec![WrittenHours {
                day_of_week: 8,
                open_time: "9am".into(),
                close_time: "17:00".into(),
            }],
            holidays: vec!["31.12.2026".into()],
        };
        let Err(ApiError::InvalidArgument(violations)) = draft.calendar("business_calendar") else {
            panic!("expected INVALID_ARGUMENT");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "business_calendar.weekly_hours[0].day_of_week",
                "business_calendar.weekly_hours[0].open_time",
                "business_calendar.holidays[0]"
            ]
        );
        let zone = CalendarDraft {
            weekly_hours: office_hours(),
            holidays: vec![],
            ..draft
        };
        let Err(ApiError::InvalidArgument(violations)) = zone.calendar("business_calendar") else {
            panic!("expected INVALID_ARGUMENT");
        };
        assert_eq!(violations[0].field, "business_calendar.time_zone");
    }

    fn office_hours() -> Vec<WrittenHours> {
        vec![WrittenHours {
            day_of_week: 1,
            open_time: "09:00".into(),
            close_time: "24:00".into(),
        }]
    }
}
