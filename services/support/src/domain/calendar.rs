//! Business-hours calendars and SLA clocks.
//!
//! A [`Calendar`] describes when a support team is working: an IANA time
//! zone, weekly opening intervals in local wall-clock time, and holidays.
//! SLA targets are measured in *business time*: only instants inside an
//! opening interval (and, for SLA clocks, outside any pause) count.
//!
//! Local times are resolved like this, so that daylight-saving transitions
//! behave as people expect:
//! - a local time that does not exist (spring-forward gap) maps to the first
//!   instant after the gap;
//! - an ambiguous local time (fall-back overlap) maps to the earliest instant.
//!
//! All computations walk the calendar one local day at a time and one
//! interval at a time, so their cost is proportional to the number of days
//! spanned, never to the number of minutes.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;

/// Minutes in a local day; a `close_minute` of this value means midnight at
/// the end of the day.
pub const MINUTES_PER_DAY: u32 = 24 * 60;

/// How far [`Calendar::add_business_time`] searches before giving up, in
/// days (about 100 years).
///
/// Every valid calendar has at least one weekly interval and holidays are
/// finite, so a result always exists in principle; the bound only keeps
/// absurd targets (or a calendar whose only interval falls into a DST gap)
/// from walking towards the end of representable time.
pub const SEARCH_HORIZON_DAYS: usize = 36_525;

/// UTC offsets (including historical local mean time) stay well within 16
/// hours, so a window this wide around a local time always brackets the
/// matching instant.
const GAP_SEARCH_BRACKET_SECS: i64 = 26 * 3600;

/// One opening interval of a weekday, as given by API callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DayHours {
    /// Day of the week the interval belongs to.
    pub weekday: Weekday,
    /// Opening time in minutes from local midnight (inclusive).
    pub open_minute: u32,
    /// Closing time in minutes from local midnight (exclusive); 1440 means
    /// the end of the day.
    pub close_minute: u32,
}

impl DayHours {
    /// Shorthand constructor.
    pub fn new(weekday: Weekday, open_minute: u32, close_minute: u32) -> Self {
        Self {
            weekday,
            open_minute,
            close_minute,
        }
    }
}

/// A pause of an SLA clock (e.g. "waiting on customer").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pause {
    /// When the pause began.
    pub from: DateTime<Utc>,
    /// When the pause ended; `None` while the clock is still paused.
    pub to: Option<DateTime<Utc>>,
}

/// State of an SLA clock as computed by [`Calendar::sla_due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlaClock {
    /// When the target is (or was) reached; `None` when the clock is paused
    /// open-endedly before reaching it, so the due time is unknown.
    pub due: Option<DateTime<Utc>>,
    /// Whether an open-ended pause exists, i.e. the clock is paused now.
    pub paused: bool,
}

/// What is wrong with one `weekly_hours` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntervalProblem {
    /// `close_minute` is past the end of the day.
    CloseOutOfRange {
        /// The offending closing minute.
        close_minute: u32,
    },
    /// `open_minute` is not before `close_minute`.
    Empty {
        /// The opening minute.
        open_minute: u32,
        /// The closing minute.
        close_minute: u32,
    },
    /// The interval overlaps another interval of the same weekday.
    Overlaps {
        /// Index of the other interval in the input.
        other: usize,
    },
}

impl fmt::Display for IntervalProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CloseOutOfRange { close_minute } => write!(
                f,
                "close_minute {close_minute} is past the end of the day (at most {MINUTES_PER_DAY})"
            ),
            Self::Empty {
                open_minute,
                close_minute,
            } => write!(
                f,
                "open_minute {open_minute} must be before close_minute {close_minute}"
            ),
            Self::Overlaps { other } => {
                write!(f, "overlaps weekly_hours[{other}] on the same weekday")
            }
        }
    }
}

/// Why a [`Calendar`] could not be built.
///
/// [`CalendarError::field`] names the offending request field so the API
/// layer can report it as a field violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The time zone is not a known IANA zone name (field `time_zone`).
    #[error("time_zone: unknown IANA time zone {name:?}")]
    UnknownTimeZone {
        /// The name that was given.
        name: String,
    },
    /// One weekly interval is invalid (field `weekly_hours[i]`).
    #[error("{field}: {problem}")]
    InvalidInterval {
        /// Field path, `weekly_hours[i]`.
        field: String,
        /// Index `i` into the input.
        index: usize,
        /// What is wrong with it.
        problem: IntervalProblem,
    },
    /// No interval was given at all (field `weekly_hours`).
    #[error("weekly_hours: at least one interval is required")]
    NoBusinessHours,
}

impl CalendarError {
    /// The request field path this error refers to, e.g. `weekly_hours[2]`.
    pub fn field(&self) -> &str {
        match self {
            Self::UnknownTimeZone { .. } => "time_zone",
            Self::InvalidInterval { field, .. } => field,
            Self::NoBusinessHours => "weekly_hours",
        }
    }

    fn invalid_interval(index: usize, problem: IntervalProblem) -> Self {
        Self::InvalidInterval {
            field: format!("weekly_hours[{index}]"),
            index,
            problem,
        }
    }
}

/// Validated local opening interval, minutes from midnight, `open < close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Interval {
    open: u32,
    close: u32,
}

/// Business hours in one time zone; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    tz: Tz,
    /// Indexed by `Weekday::num_days_from_monday`, each sorted by `open`.
    weekly: [Vec<Interval>; 7],
    holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// Builds a calendar, validating every input.
    ///
    /// Intervals of the same weekday may touch (`[09:00, 12:00)` and
    /// `[12:00, 17:00)`) but not overlap. Holidays are local dates in
    /// `time_zone`.
    pub fn new(
        time_zone: &str,
        weekly: Vec<DayHours>,
        holidays: Vec<NaiveDate>,
    ) -> Result<Calendar, CalendarError> {
        let tz: Tz = time_zone
            .parse()
            .map_err(|_| CalendarError::UnknownTimeZone {
                name: time_zone.to_owned(),
            })?;
        if weekly.is_empty() {
            return Err(CalendarError::NoBusinessHours);
        }

        // Per-interval checks first, so errors are reported in input order.
        for (index, hours) in weekly.iter().enumerate() {
            if hours.close_minute > MINUTES_PER_DAY {
                return Err(CalendarError::invalid_interval(
                    index,
                    IntervalProblem::CloseOutOfRange {
                        close_minute: hours.close_minute,
                    },
                ));
            }
            if hours.open_minute >= hours.close_minute {
                return Err(CalendarError::invalid_interval(
                    index,
                    IntervalProblem::Empty {
                        open_minute: hours.open_minute,
                        close_minute: hours.close_minute,
                    },
                ));
            }
        }

        let mut by_day: [Vec<(Interval, usize)>; 7] = Default::default();
        for (index, hours) in weekly.iter().enumerate() {
            by_day[day_index(hours.weekday)].push((
                Interval {
                    open: hours.open_minute,
                    close: hours.close_minute,
                },
                index,
            ));
        }
        let mut week: [Vec<Interval>; 7] = Default::default();
        for (day, entries) in by_day.iter_mut().enumerate() {
            entries.sort_by_key(|(interval, index)| (interval.open, *index));
            for pair in entries.windows(2) {
                let &[(earlier, earlier_index), (later, later_index)] = pair else {
                    continue;
                };
                if later.open < earlier.close {
                    // Blame whichever of the two came later in the input.
                    let (index, other) = if later_index > earlier_index {
                        (later_index, earlier_index)
                    } else {
                        (earlier_index, later_index)
                    };
                    return Err(CalendarError::invalid_interval(
                        index,
                        IntervalProblem::Overlaps { other },
                    ));
                }
            }
            week[day] = entries.iter().map(|(interval, _)| *interval).collect();
        }

        Ok(Calendar {
            tz,
            weekly: week,
            holidays: holidays.into_iter().collect(),
        })
    }

    /// A 24x7 calendar in UTC without holidays: business time equals
    /// elapsed time.
    pub fn always() -> Calendar {
        let full_day = vec![Interval {
            open: 0,
            close: MINUTES_PER_DAY,
        }];
        Calendar {
            tz: Tz::UTC,
            weekly: std::array::from_fn(|_| full_day.clone()),
            holidays: BTreeSet::new(),
        }
    }

    /// The calendar's time zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// Whether `at` lies inside an opening interval (and not on a holiday).
    pub fn is_business_time(&self, at: DateTime<Utc>) -> bool {
        let date = self.local_date(at);
        let previous = date.pred_opt().unwrap_or(date);
        [previous, date]
            .into_iter()
            .flat_map(|day| self.day_spans(day))
            .any(|(start, end)| start <= at && at < end)
    }

    /// The instant at which `business` worth of business time has elapsed,
    /// counting from `start`.
    ///
    /// If `start` is outside business hours the clock starts at the next
    /// opening. A zero or negative duration returns `start` unchanged. When
    /// the target ends exactly at a closing time, that closing time is
    /// returned (not the next opening). Results beyond
    /// [`SEARCH_HORIZON_DAYS`] (or beyond representable time) saturate to
    /// [`DateTime::<Utc>::MAX_UTC`].
    pub fn add_business_time(&self, start: DateTime<Utc>, business: Duration) -> DateTime<Utc> {
        if business <= Duration::zero() {
            return start;
        }
        let mut remaining = business;
        for date in self
            .first_relevant_date(start)
            .iter_days()
            .take(SEARCH_HORIZON_DAYS)
        {
            for (open, close) in self.day_spans(date) {
                if close <= start {
                    continue;
                }
                let open = open.max(start);
                let available = close - open;
                if remaining <= available {
                    return open.checked_add_signed(remaining).unwrap_or(close);
                }
                remaining -= available;
            }
        }
        DateTime::<Utc>::MAX_UTC
    }

    /// Business time elapsed in `[from, to)`; zero if `to <= from`.
    ///
    /// Cost is proportional to the number of days between the two instants.
    pub fn business_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        // One day of slack past `to`'s local date covers DST oddities; later
        // days only open after `to`.
        let to_date = self.local_date(to);
        let last = to_date.succ_opt().unwrap_or(to_date);
        let mut total = Duration::zero();
        for date in self
            .first_relevant_date(from)
            .iter_days()
            .take_while(|date| *date <= last)
        {
            for (open, close) in self.day_spans(date) {
                let open = open.max(from);
                let close = close.min(to);
                if open < close {
                    total += close - open;
                }
            }
        }
        total
    }

    /// When an SLA clock started at `started` reaches `target` business
    /// time, not counting business time inside `pauses`.
    ///
    /// Pauses may be unsorted or overlapping; they are normalised first and
    /// empty ones are ignored. With an open-ended pause (`to == None`) the
    /// clock is `paused`, and `due` is `None` unless the target was already
    /// reached before that pause began. A zero or negative target is due at
    /// `started`.
    pub fn sla_due(&self, started: DateTime<Utc>, target: Duration, pauses: &[Pause]) -> SlaClock {
        let pauses = PauseSet::normalise(pauses);
        let paused = pauses.open_from.is_some();
        if target <= Duration::zero() {
            return SlaClock {
                due: Some(started),
                paused,
            };
        }

        let mut cursor = started;
        let mut remaining = target;
        for &(pause_from, pause_to) in &pauses.closed {
            if pause_to <= cursor {
                continue;
            }
            if pause_from > cursor {
                let candidate = self.add_business_time(cursor, remaining);
                if candidate <= pause_from {
                    return SlaClock {
                        due: Some(candidate),
                        paused,
                    };
                }
                // The clock runs out only after this pause: bank what ran.
                remaining -= self.business_time_between(cursor, pause_from);
            }
            cursor = pause_to;
        }

        let due = match pauses.open_from {
            None => Some(self.add_business_time(cursor, remaining)),
            Some(open_from) if open_from > cursor => {
                let candidate = self.add_business_time(cursor, remaining);
                (candidate <= open_from).then_some(candidate)
            }
            Some(_) => None,
        };
        SlaClock { due, paused }
    }

    /// Business time an SLA clock started at `started` has run by `now`,
    /// not counting business time inside `pauses` (normalised as in
    /// [`Calendar::sla_due`]).
    pub fn sla_elapsed(
        &self,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
        pauses: &[Pause],
    ) -> Duration {
        if now <= started {
            return Duration::zero();
        }
        let pauses = PauseSet::normalise(pauses);
        let open = pauses.open_from.map(|from| (from, now));
        let paused: Duration = pauses
            .closed
            .iter()
            .copied()
            .chain(open)
            .map(|(from, to)| self.business_time_between(from.max(started), to.min(now)))
            .sum();
        self.business_time_between(started, now) - paused
    }

    /// Business time left before `target` is reached, as of `now`;
    /// negative once breached (saturating at `Duration::MIN`).
    pub fn time_left(
        &self,
        started: DateTime<Utc>,
        target: Duration,
        now: DateTime<Utc>,
        pauses: &[Pause],
    ) -> Duration {
        let elapsed = self.sla_elapsed(started, now, pauses);
        target.checked_sub(&elapsed).unwrap_or(Duration::MIN)
    }

    /// Business intervals of local `date`, as UTC instants, in order.
    fn day_spans(
        &self,
        date: NaiveDate,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let intervals: &[Interval] = if self.holidays.contains(&date) {
            &[]
        } else {
            &self.weekly[day_index(date.weekday())]
        };
        intervals.iter().filter_map(move |interval| {
            let open = self.local_instant(date, interval.open)?;
            let close = self.local_instant(date, interval.close)?;
            // An interval lying wholly inside a DST gap has no business time.
            (open < close).then_some((open, close))
        })
    }

    /// The instant of `minute` past local midnight of `date`; `None` only
    /// outside representable time.
    fn local_instant(&self, date: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
        let (date, minute) = if minute >= MINUTES_PER_DAY {
            (date.succ_opt()?, minute - MINUTES_PER_DAY)
        } else {
            (date, minute)
        };
        let local = date.and_hms_opt(minute / 60, minute % 60, 0)?;
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(instant) => Some(instant.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, second) => Some(first.min(second).with_timezone(&Utc)),
            LocalResult::None => self.first_instant_after_gap(local),
        }
    }

    /// For a local time that does not exist, the transition instant ending
    /// the gap: the first instant whose local time is at or past `local`.
    fn first_instant_after_gap(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        // Invariant: local(lo) < `local` <= local(hi). Local time only
        // crosses a nonexistent value by jumping, so the boundary found is
        // exactly the transition (chrono-tz transitions are whole seconds).
        let pivot = local.and_utc().timestamp();
        let mut lo = pivot.checked_sub(GAP_SEARCH_BRACKET_SECS)?;
        let mut hi = pivot.checked_add(GAP_SEARCH_BRACKET_SECS)?;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let reached = DateTime::from_timestamp(mid, 0)
                .and_then(|instant| self.local_naive(instant))
                .is_none_or(|mid_local| mid_local >= local);
            if reached {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }

    /// Local wall-clock time of `instant`; `None` if it is not
    /// representable (near the ends of chrono's range).
    fn local_naive(&self, instant: DateTime<Utc>) -> Option<NaiveDateTime> {
        let utc = instant.naive_utc();
        utc.checked_add_offset(self.tz.offset_from_utc_datetime(&utc).fix())
    }

    fn local_date(&self, instant: DateTime<Utc>) -> NaiveDate {
        self.local_naive(instant)
            .map_or_else(|| instant.date_naive(), |local| local.date())
    }

    /// The earliest local date whose intervals can contain `instant`; one
    /// day early so odd DST resolutions can never skip an interval.
    fn first_relevant_date(&self, instant: DateTime<Utc>) -> NaiveDate {
        let date = self.local_date(instant);
        date.pred_opt().unwrap_or(date)
    }
}

fn day_index(weekday: Weekday) -> usize {
    weekday.num_days_from_monday() as usize
}

/// Pauses as sorted, disjoint, non-empty closed intervals plus the start of
/// at most one open-ended pause after all of them.
struct PauseSet {
    closed: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    open_from: Option<DateTime<Utc>>,
}

impl PauseSet {
    fn normalise(pauses: &[Pause]) -> Self {
        let mut open_from = pauses
            .iter()
            .filter(|pause| pause.to.is_none())
            .map(|pause| pause.from)
            .min();
        let mut ranges: Vec<_> = pauses
            .iter()
            .filter_map(|pause| pause.to.map(|to| (pause.from, to)))
            .filter(|(from, to)| from < to)
            .collect();
        ranges.sort_unstable();

        let mut closed: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(ranges.len());
        for (from, to) in ranges {
            match closed.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => closed.push((from, to)),
            }
        }

        // Closed pauses reaching into the open one extend it backwards;
        // those starting inside it are swallowed.
        if let Some(open) = open_from.as_mut() {
            while let Some(&(from, to)) = closed.last() {
                if to < *open {
                    break;
                }
                *open = (*open).min(from);
                closed.pop();
            }
        }
        Self { closed, open_from }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday::{Fri, Mon, Sat, Sun, Thu, Tue, Wed};

    const WEEKDAYS: [Weekday; 5] = [Mon, Tue, Wed, Thu, Fri];
    const ALL_DAYS: [Weekday; 7] = [Mon, Tue, Wed, Thu, Fri, Sat, Sun];

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    /// Local wall time in `tz`; the earliest instant if ambiguous.
    fn local(tz: &str, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        let tz: Tz = tz.parse().unwrap();
        tz.with_ymd_and_hms(y, m, d, h, min, 0)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn berlin(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        local("Europe/Berlin", y, m, d, h, min)
    }

    fn hours(days: &[Weekday], open: u32, close: u32) -> Vec<DayHours> {
        days.iter()
            .map(|day| DayHours::new(*day, open, close))
            .collect()
    }

    fn calendar(tz: &str, weekly: Vec<DayHours>, holidays: Vec<NaiveDate>) -> Calendar {
        Calendar::new(tz, weekly, holidays).unwrap()
    }

    /// Mon-Fri 09:00-17:00, Europe/Berlin.
    fn berlin_office() -> Calendar {
        calendar("Europe/Berlin", hours(&WEEKDAYS, 540, 1020), vec![])
    }

    fn berlin_split() -> Calendar {
        let mut weekly = hours(&WEEKDAYS, 540, 720);
        weekly.extend(hours(&WEEKDAYS, 780, 1020));
        calendar("Europe/Berlin", weekly, vec![])
    }

    fn h(n: i64) -> Duration {
        Duration::hours(n)
    }

    // 2026-01-16 is a Friday, 2026-01-19 a Monday.

    #[test]
    fn friday_afternoon_rolls_over_weekend() {
        let cal = berlin_office();
        let due = cal.add_business_time(berlin(2026, 1, 16, 15, 0), h(4));
        assert_eq!(due, berlin(2026, 1, 19, 11, 0));
    }

    #[test]
    fn monday_holiday_is_skipped() {
        let cal = calendar(
            "Europe/Berlin",
            hours(&WEEKDAYS, 540, 1020),
            vec![date(2026, 1, 19)],
        );
        let due = cal.add_business_time(berlin(2026, 1, 16, 15, 0), h(4));
        assert_eq!(due, berlin(2026, 1, 20, 11, 0));
        assert!(!cal.is_business_time(berlin(2026, 1, 19, 10, 0)));
        assert_eq!(
            cal.business_time_between(berlin(2026, 1, 19, 0, 0), berlin(2026, 1, 20, 0, 0)),
            Duration::zero()
        );
    }

    #[test]
    fn holidays_are_local_dates() {
        // Monday 2026-01-19 in New York runs until 05:00 UTC on Tuesday.
        let cal = calendar(
            "America/New_York",
            hours(&ALL_DAYS, 0, MINUTES_PER_DAY),
            vec![date(2026, 1, 19)],
        );
        assert!(!cal.is_business_time(utc(2026, 1, 20, 4, 59)));
        assert!(cal.is_business_time(utc(2026, 1, 20, 5, 0)));
        assert!(cal.is_business_time(utc(2026, 1, 19, 4, 59)));
    }

    #[test]
    fn weekend_start_counts_from_monday_opening() {
        let cal = berlin_office();
        assert_eq!(
            cal.add_business_time(berlin(2026, 1, 17, 10, 0), h(4)),
            berlin(2026, 1, 19, 13, 0)
        );
        assert_eq!(
            cal.add_business_time(berlin(2026, 1, 18, 23, 59), Duration::minutes(1)),
            berlin(2026, 1, 19, 9, 1)
        );
        // Before opening on a weekday.
        assert_eq!(
            cal.add_business_time(berlin(2026, 1, 19, 6, 0), h(1)),
            berlin(2026, 1, 19, 10, 0)
        );
    }

    #[test]
    fn target_ending_at_close_returns_close() {
        let cal = berlin_office();
        assert_eq!(
            cal.add_business_time(berlin(2026, 1, 16, 9, 0), h(8)),
            berlin(2026, 1, 16, 17, 0)
        );
    }

    #[test]
    fn zero_or_negative_duration_returns_start() {
        let cal = berlin_office();
        let saturday = berlin(2026, 1, 17, 10, 0);
        assert_eq!(cal.add_business_time(saturday, Duration::zero()), saturday);
        assert_eq!(cal.add_business_time(saturday, -h(3)), saturday);
        let monday = berlin(2026, 1, 19, 10, 0);
        assert_eq!(cal.add_business_time(monday, Duration::zero()), monday);
    }

    #[test]
    fn split_days_skip_lunch() {
        let cal = berlin_split();
        assert_eq!(
            cal.add_business_time(berlin(2026, 1, 16, 11, 0), h(4)),
            berlin(2026, 1, 16, 16, 0)
        );
        assert_eq!(
            cal.add_business_time(berlin(2026, 1, 16, 12, 30), h(1)),
            berlin(2026, 1, 16, 14, 0)
        );
        assert_eq!(
            cal.add_business_time(berlin(2026, 1, 16, 16, 0), h(2)),
            berlin(2026, 1, 19, 10, 0)
        );
        assert_eq!(
            cal.business_time_between(berlin(2026, 1, 16, 0, 0), berlin(2026, 1, 17, 0, 0)),
            h(7)
        );
        assert!(!cal.is_business_time(berlin(2026, 1, 16, 12, 0)));
        assert!(cal.is_business_time(berlin(2026, 1, 16, 13, 0)));
    }

    #[test]
    fn touching_intervals_behave_like_one() {
        let mut weekly = hours(&WEEKDAYS, 540, 720);
        weekly.extend(hours(&WEEKDAYS, 720, 1020));
        let cal = calendar("Europe/Berlin", weekly, vec![]);
        let office = berlin_office();
        let start = berlin(2026, 1, 14, 10, 30);
        for n in 1..40 {
            let d = Duration::minutes(n * 47);
            assert_eq!(
                cal.add_business_time(start, d),
                office.add_business_time(start, d)
            );
        }
    }

    #[test]
    fn three_week_targets() {
        let cal = berlin_office();
        let start = berlin(2026, 1, 5, 9, 0); // Monday
        // Three working weeks: 15 business days of 8 hours.
        let due = cal.add_business_time(start, h(120));
        assert_eq!(due, berlin(2026, 1, 23, 17, 0));
        // Three calendar weeks of business time: 63 business days, crossing
        // the 2026-03-29 DST change, which does not affect 09:00-17:00.
        let due = cal.add_business_time(start, Duration::weeks(3));
        assert_eq!(due, berlin(2026, 4, 1, 17, 0));
        assert_eq!(cal.business_time_between(start, due), Duration::weeks(3));
    }

    #[test]
    fn pause_shifts_due_by_paused_business_time() {
        let cal = berlin_office();
        let started = berlin(2026, 1, 16, 15, 0);
        let pause = Pause {
            from: berlin(2026, 1, 16, 16, 0),
            to: Some(berlin(2026, 1, 19, 10, 0)),
        };
        let clock = cal.sla_due(started, h(4), &[pause]);
        assert_eq!(
            clock,
            SlaClock {
                due: Some(berlin(2026, 1, 19, 13, 0)),
                paused: false
            }
        );
        let no_pause = cal.sla_due(started, h(4), &[]);
        assert_eq!(no_pause.due, Some(berlin(2026, 1, 19, 11, 0)));
        // 1h paused on Friday + 1h on Monday.
        assert_eq!(
            cal.business_time_between(no_pause.due.unwrap(), clock.due.unwrap()),
            h(2)
        );
    }

    #[test]
    fn elapsed_and_time_left_with_pause() {
        let cal = berlin_office();
        let started = berlin(2026, 1, 16, 15, 0);
        let pauses = [Pause {
            from: berlin(2026, 1, 16, 16, 0),
            to: Some(berlin(2026, 1, 19, 10, 0)),
        }];
        let at_noon = berlin(2026, 1, 19, 12, 0);
        assert_eq!(cal.sla_elapsed(started, at_noon, &pauses), h(3));
        assert_eq!(cal.time_left(started, h(4), at_noon, &pauses), h(1));
        let later = berlin(2026, 1, 19, 14, 0);
        assert_eq!(cal.time_left(started, h(4), later, &pauses), -h(1));
        // Mid-pause: elapsed stays at the 1h that ran before it.
        let saturday = berlin(2026, 1, 17, 12, 0);
        assert_eq!(cal.sla_elapsed(started, saturday, &pauses), h(1));
        assert_eq!(cal.sla_elapsed(started, started, &pauses), Duration::zero());
        assert_eq!(
            cal.sla_elapsed(started, berlin(2026, 1, 1, 0, 0), &pauses),
            Duration::zero()
        );
    }

    #[test]
    fn time_left_saturates() {
        let cal = Calendar::always();
        let start = utc(2026, 1, 1, 0, 0);
        assert_eq!(
            cal.time_left(start, Duration::MIN, utc(2026, 1, 2, 0, 0), &[]),
            Duration::MIN
        );
    }

    #[test]
    fn open_pause_makes_due_unknown() {
        let cal = berlin_office();
        let started = berlin(2026, 1, 16, 15, 0);
        let open = Pause {
            from: berlin(2026, 1, 16, 16, 0),
            to: None,
        };
        assert_eq!(
            cal.sla_due(started, h(4), &[open]),
            SlaClock {
                due: None,
                paused: true
            }
        );
        assert_eq!(
            cal.sla_elapsed(started, berlin(2026, 1, 20, 12, 0), &[open]),
            h(1)
        );
        assert_eq!(
            cal.time_left(started, h(4), berlin(2026, 1, 20, 12, 0), &[open]),
            h(3)
        );
    }

    #[test]
    fn open_pause_after_breach_keeps_due() {
        let cal = berlin_office();
        let started = berlin(2026, 1, 16, 15, 0);
        let open = Pause {
            from: berlin(2026, 1, 19, 12, 0),
            to: None,
        };
        assert_eq!(
            cal.sla_due(started, h(4), &[open]),
            SlaClock {
                due: Some(berlin(2026, 1, 19, 11, 0)),
                paused: true
            }
        );
        // Reached exactly when the pause begins: still known.
        let at_due = Pause {
            from: berlin(2026, 1, 19, 11, 0),
            to: None,
        };
        assert_eq!(
            cal.sla_due(started, h(4), &[at_due]).due,
            Some(berlin(2026, 1, 19, 11, 0))
        );
    }

    #[test]
    fn open_pause_before_start() {
        let cal = berlin_office();
        let started = berlin(2026, 1, 16, 15, 0);
        let open = Pause {
            from: berlin(2026, 1, 16, 10, 0),
            to: None,
        };
        assert_eq!(cal.sla_due(started, h(4), &[open]).due, None);
        assert_eq!(
            cal.sla_due(started, Duration::zero(), &[open]),
            SlaClock {
                due: Some(started),
                paused: true
            }
        );
    }

    #[test]
    fn pauses_are_normalised() {
        let cal = berlin_office();
        let started = berlin(2026, 1, 16, 15, 0);
        let expected = cal.sla_due(
            started,
            h(4),
            &[Pause {
                from: berlin(2026, 1, 16, 16, 0),
                to: Some(berlin(2026, 1, 19, 10, 0)),
            }],
        );
        let messy = [
            Pause {
                from: berlin(2026, 1, 19, 9, 0),
                to: Some(berlin(2026, 1, 19, 10, 0)),
            },
            // Empty and inverted pauses are ignored.
            Pause {
                from: berlin(2026, 1, 19, 12, 0),
                to: Some(berlin(2026, 1, 19, 12, 0)),
            },
            Pause {
                from: berlin(2026, 1, 19, 15, 0),
                to: Some(berlin(2026, 1, 19, 14, 0)),
            },
            Pause {
                from: berlin(2026, 1, 16, 16, 0),
                to: Some(berlin(2026, 1, 19, 9, 30)),
            },
            Pause {
                from: berlin(2026, 1, 17, 0, 0),
                to: Some(berlin(2026, 1, 18, 0, 0)),
            },
        ];
        assert_eq!(cal.sla_due(started, h(4), &messy), expected);
        let now = berlin(2026, 1, 19, 12, 0);
        assert_eq!(cal.sla_elapsed(started, now, &messy), h(3));
    }

    #[test]
    fn closed_pause_running_into_open_pause_extends_it() {
        let cal = berlin_office();
        let started = berlin(2026, 1, 19, 9, 0);
        let pauses = [
            Pause {
                from: berlin(2026, 1, 19, 12, 0),
                to: None,
            },
            Pause {
                from: berlin(2026, 1, 19, 10, 0),
                to: Some(berlin(2026, 1, 19, 13, 0)),
            },
            Pause {
                from: berlin(2026, 1, 19, 14, 0),
                to: Some(berlin(2026, 1, 19, 15, 0)),
            },
        ];
        // Only 09:00-10:00 ran; from 10:00 the clock is paused for good.
        assert_eq!(
            cal.sla_elapsed(started, berlin(2026, 1, 21, 12, 0), &pauses),
            h(1)
        );
        assert_eq!(
            cal.sla_due(started, h(1), &pauses).due,
            Some(berlin(2026, 1, 19, 10, 0))
        );
        assert_eq!(cal.sla_due(started, h(2), &pauses).due, None);
    }

    #[test]
    fn pause_covering_start() {
        let cal = berlin_office();
        let started = berlin(2026, 1, 19, 9, 0);
        let pauses = [Pause {
            from: berlin(2026, 1, 18, 0, 0),
            to: Some(berlin(2026, 1, 19, 11, 0)),
        }];
        assert_eq!(
            cal.sla_due(started, h(2), &pauses).due,
            Some(berlin(2026, 1, 19, 13, 0))
        );
    }

    #[test]
    fn business_time_between_basics() {
        let cal = berlin_office();
        let a = berlin(2026, 1, 16, 15, 0);
        let b = berlin(2026, 1, 19, 11, 0);
        assert_eq!(cal.business_time_between(a, b), h(4));
        assert_eq!(cal.business_time_between(b, a), Duration::zero());
        assert_eq!(cal.business_time_between(a, a), Duration::zero());
        // A full year: 261 weekdays in 2026.
        assert_eq!(
            cal.business_time_between(berlin(2026, 1, 1, 0, 0), berlin(2027, 1, 1, 0, 0)),
            h(261 * 8)
        );
    }

    #[test]
    fn business_time_between_over_dst_weekend() {
        // Berlin springs forward on Sunday 2026-03-29.
        let office = berlin_office();
        assert_eq!(
            office.business_time_between(berlin(2026, 3, 27, 12, 0), berlin(2026, 3, 30, 12, 0)),
            h(8)
        );
        let always_berlin = calendar("Europe/Berlin", hours(&ALL_DAYS, 0, 1440), vec![]);
        assert_eq!(
            always_berlin
                .business_time_between(berlin(2026, 3, 28, 0, 0), berlin(2026, 3, 30, 0, 0)),
            h(47)
        );
        assert_eq!(
            always_berlin
                .business_time_between(berlin(2026, 10, 24, 0, 0), berlin(2026, 10, 26, 0, 0)),
            h(49)
        );
    }

    /// Day lengths on DST transition days for a 24h and a 09:00-17:00
    /// interval.
    fn check_transition_day(tz: &str, day: NaiveDate, expected_full_day: Duration) {
        let (y, m, d) = (day.year(), day.month(), day.day());
        let next = day.succ_opt().unwrap();
        let midnight = local(tz, y, m, d, 0, 0);
        let next_midnight = local(tz, next.year(), next.month(), next.day(), 0, 0);
        assert_eq!(next_midnight - midnight, expected_full_day, "{tz} {day}");

        let full = calendar(tz, hours(&ALL_DAYS, 0, MINUTES_PER_DAY), vec![]);
        assert_eq!(
            full.business_time_between(midnight, next_midnight),
            expected_full_day
        );
        assert_eq!(
            full.add_business_time(midnight, expected_full_day),
            next_midnight
        );
        // Without hours on the following day, the clock stops at 24:00.
        let only_that_day = calendar(tz, hours(&[day.weekday()], 0, MINUTES_PER_DAY), vec![]);
        assert_eq!(
            only_that_day.business_time_between(midnight - h(24), next_midnight + h(24)),
            expected_full_day
        );

        let office = calendar(tz, hours(&ALL_DAYS, 540, 1020), vec![]);
        assert_eq!(
            office.business_time_between(midnight, next_midnight),
            h(8),
            "{tz} {day}"
        );
        assert_eq!(
            office.add_business_time(midnight, h(8)),
            local(tz, y, m, d, 17, 0)
        );
    }

    #[test]
    fn spring_forward_berlin() {
        check_transition_day("Europe/Berlin", date(2026, 3, 29), h(23));
    }

    #[test]
    fn fall_back_berlin() {
        check_transition_day("Europe/Berlin", date(2026, 10, 25), h(25));
    }

    #[test]
    fn spring_forward_new_york() {
        check_transition_day("America/New_York", date(2026, 3, 8), h(23));
    }

    #[test]
    fn fall_back_new_york() {
        check_transition_day("America/New_York", date(2026, 11, 1), h(25));
    }

    #[test]
    fn nonexistent_local_time_maps_to_end_of_gap() {
        // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
        let cal = calendar("Europe/Berlin", hours(&[Sun], 150, 240), vec![]);
        let sat = berlin(2026, 3, 28, 12, 0);
        assert_eq!(cal.add_business_time(sat, Duration::zero()), sat);
        assert_eq!(
            cal.add_business_time(sat, Duration::minutes(30)),
            utc(2026, 3, 29, 1, 30)
        );
        assert_eq!(
            cal.business_time_between(sat, berlin(2026, 3, 30, 0, 0)),
            h(1)
        );
        // New York 2026-03-08: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
        let cal = calendar("America/New_York", hours(&[Sun], 150, 240), vec![]);
        let sat = local("America/New_York", 2026, 3, 7, 12, 0);
        assert_eq!(
            cal.add_business_time(sat, Duration::minutes(1)),
            utc(2026, 3, 8, 7, 1)
        );
        assert_eq!(
            cal.business_time_between(sat, sat + h(48)),
            h(1),
            "02:30 (gap) -> 04:00 EDT"
        );
    }

    #[test]
    fn interval_inside_gap_is_empty() {
        // 02:15-02:45 on the spring-forward Sunday does not exist at all;
        // the next Sunday it does.
        let cal = calendar("Europe/Berlin", hours(&[Sun], 135, 165), vec![]);
        let sat = berlin(2026, 3, 28, 12, 0);
        assert_eq!(
            cal.business_time_between(sat, sat + h(48)),
            Duration::zero()
        );
        assert_eq!(
            cal.add_business_time(sat, Duration::minutes(10)),
            berlin(2026, 4, 5, 2, 25)
        );
    }

    #[test]
    fn ambiguous_local_time_maps_to_earliest_instant() {
        // Berlin 2026-10-25: 02:30 occurs at 00:30 UTC (CEST) and 01:30 UTC.
        let cal = calendar("Europe/Berlin", hours(&[Sun], 150, 240), vec![]);
        let sat = berlin(2026, 10, 24, 12, 0);
        assert_eq!(
            cal.add_business_time(sat, Duration::minutes(1)),
            utc(2026, 10, 25, 0, 31)
        );
        assert_eq!(
            cal.business_time_between(sat, sat + h(48)),
            Duration::minutes(150)
        );
        // New York 2026-11-01: 01:30 occurs at 05:30 UTC (EDT) and 06:30 UTC.
        let cal = calendar("America/New_York", hours(&[Sun], 90, 180), vec![]);
        let sat = local("America/New_York", 2026, 10, 31, 12, 0);
        assert_eq!(
            cal.add_business_time(sat, Duration::minutes(1)),
            utc(2026, 11, 1, 5, 31)
        );
        assert_eq!(
            cal.business_time_between(sat, sat + h(48)),
            Duration::minutes(150)
        );
    }

    #[test]
    fn always_is_plain_addition() {
        let cal = Calendar::always();
        assert_eq!(cal.time_zone(), Tz::UTC);
        let starts = [
            utc(2026, 1, 16, 15, 0),
            utc(2026, 3, 29, 0, 59),
            utc(2024, 2, 29, 23, 59),
            Utc.with_ymd_and_hms(2026, 6, 1, 12, 34, 56).unwrap() + Duration::milliseconds(789),
        ];
        let durations = [
            Duration::zero(),
            Duration::seconds(1),
            Duration::minutes(61),
            h(24),
            h(1000),
            Duration::weeks(60),
            Duration::milliseconds(123_456_789),
        ];
        for start in starts {
            assert!(cal.is_business_time(start));
            for d in durations {
                assert_eq!(cal.add_business_time(start, d), start + d);
                assert_eq!(cal.business_time_between(start, start + d), d);
            }
        }
    }

    #[test]
    fn huge_target_saturates() {
        let cal = Calendar::always();
        let start = utc(2026, 1, 1, 0, 0);
        assert_eq!(
            cal.add_business_time(start, Duration::weeks(52 * 200)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            cal.sla_due(start, Duration::MAX, &[]).due,
            Some(DateTime::<Utc>::MAX_UTC)
        );
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        for tz in ["Asia/Tokyo", "America/New_York", "Pacific/Kiritimati"] {
            let cal = calendar(tz, hours(&ALL_DAYS, 0, MINUTES_PER_DAY), vec![]);
            let max = DateTime::<Utc>::MAX_UTC;
            let min = DateTime::<Utc>::MIN_UTC;
            assert_eq!(cal.add_business_time(max - h(1), h(5)), max);
            let _ = cal.add_business_time(min, h(5));
            let _ = cal.business_time_between(min, min + h(72));
            let _ = cal.business_time_between(max - h(72), max);
            let _ = cal.is_business_time(min);
            let _ = cal.is_business_time(max);
        }
    }

    #[test]
    fn invalid_inputs_name_the_field() {
        let err =
            Calendar::new("Mars/Olympus_Mons", hours(&WEEKDAYS, 540, 1020), vec![]).unwrap_err();
        assert_eq!(err.field(), "time_zone");
        assert!(err.to_string().contains("Mars/Olympus_Mons"));

        let err = Calendar::new("Europe/Berlin", vec![], vec![]).unwrap_err();
        assert_eq!(err, CalendarError::NoBusinessHours);
        assert_eq!(err.field(), "weekly_hours");
        assert!(err.to_string().contains("at least one interval"));

        let err = Calendar::new(
            "Europe/Berlin",
            vec![DayHours::new(Mon, 540, 1020), DayHours::new(Tue, 600, 600)],
            vec![],
        )
        .unwrap_err();
        assert_eq!(err.field(), "weekly_hours[1]");
        assert!(matches!(
            err,
            CalendarError::InvalidInterval {
                index: 1,
                problem: IntervalProblem::Empty { .. },
                ..
            }
        ));
        assert!(err.to_string().starts_with("weekly_hours[1]: "));

        let err = Calendar::new("Europe/Berlin", vec![DayHours::new(Mon, 1020, 540)], vec![])
            .unwrap_err();
        assert_eq!(err.field(), "weekly_hours[0]");

        let err = Calendar::new(
            "Europe/Berlin",
            vec![DayHours::new(Mon, 540, MINUTES_PER_DAY + 1)],
            vec![],
        )
        .unwrap_err();
        assert_eq!(err.field(), "weekly_hours[0]");
        assert!(matches!(
            err,
            CalendarError::InvalidInterval {
                problem: IntervalProblem::CloseOutOfRange { close_minute: 1441 },
                ..
            }
        ));

        let err = Calendar::new(
            "Europe/Berlin",
            vec![
                DayHours::new(Mon, 780, 1020),
                DayHours::new(Tue, 540, 720),
                DayHours::new(Mon, 540, 790),
            ],
            vec![],
        )
        .unwrap_err();
        assert_eq!(err.field(), "weekly_hours[2]");
        assert_eq!(
            err,
            CalendarError::InvalidInterval {
                field: "weekly_hours[2]".to_owned(),
                index: 2,
                problem: IntervalProblem::Overlaps { other: 0 },
            }
        );
        assert!(err.to_string().contains("weekly_hours[0]"));
    }

    #[test]
    fn valid_edge_inputs_are_accepted() {
        // Close at 24:00, touching intervals, same hours on other days.
        let cal = Calendar::new(
            "America/New_York",
            vec![
                DayHours::new(Mon, 0, 720),
                DayHours::new(Mon, 720, MINUTES_PER_DAY),
                DayHours::new(Tue, 0, 720),
            ],
            vec![date(2026, 1, 19), date(2026, 1, 19)],
        )
        .unwrap();
        assert_eq!(cal.time_zone(), chrono_tz::America::New_York);
        let monday = local("America/New_York", 2026, 1, 12, 0, 0);
        assert_eq!(cal.business_time_between(monday, monday + h(48)), h(36));
    }

    /// Deterministic pseudo-random numbers for the property-style checks.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % bound
        }
    }

    fn property_calendars() -> Vec<Calendar> {
        let mut odd_hours = hours(&[Mon, Wed, Fri], 480, 690);
        odd_hours.extend(hours(&[Mon, Wed], 750, 1110));
        odd_hours.push(DayHours::new(Sun, 60, 200));
        vec![
            berlin_office(),
            berlin_split(),
            calendar(
                "Europe/Berlin",
                hours(&ALL_DAYS, 0, MINUTES_PER_DAY),
                vec![date(2026, 3, 30)],
            ),
            calendar(
                "America/New_York",
                odd_hours,
                vec![date(2026, 3, 9), date(2026, 11, 2)],
            ),
            calendar("America/New_York", hours(&ALL_DAYS, 90, 180), vec![]),
            Calendar::always(),
        ]
    }

    #[test]
    fn add_then_measure_round_trips() {
        let mut rng = Lcg(42);
        // Windows around both 2026 DST transitions in Europe and the US.
        let bases = [utc(2026, 3, 1, 0, 0), utc(2026, 10, 20, 0, 0)];
        for cal in property_calendars() {
            let mut inside = 0;
            for _ in 0..300 {
                let base = bases[rng.next(2) as usize];
                let start = base + Duration::minutes(rng.next(20 * 24 * 60) as i64);
                let d = Duration::minutes(rng.next(60 * 24 * 10) as i64 + 1);
                let due = cal.add_business_time(start, d);
                assert!(due > start);
                assert_eq!(cal.business_time_between(start, due), d, "{start} + {d}");
                // Nothing ends earlier: one minute less is not enough.
                assert!(cal.business_time_between(start, due - Duration::minutes(1)) < d);
                if cal.is_business_time(start) {
                    inside += 1;
                }
            }
            assert!(inside > 0);
        }
    }

    #[test]
    fn round_trip_for_starts_inside_hours() {
        let cal = berlin_split();
        let mut start = berlin(2026, 3, 23, 0, 0);
        let end = berlin(2026, 4, 6, 0, 0);
        let mut checked = 0;
        while start < end {
            if cal.is_business_time(start) {
                for minutes in [1, 59, 179, 420, 481, 2400, 10_000] {
                    let d = Duration::minutes(minutes);
                    let due = cal.add_business_time(start, d);
                    assert_eq!(cal.business_time_between(start, due), d);
                    assert!(cal.is_business_time(due - Duration::seconds(1)));
                }
                checked += 1;
            }
            start += Duration::minutes(37);
        }
        assert!(checked > 100);
    }

    #[test]
    fn sla_due_agrees_with_sla_elapsed() {
        let mut rng = Lcg(7);
        let base = utc(2026, 3, 2, 0, 0);
        for cal in property_calendars() {
            for _ in 0..150 {
                let started = base + Duration::minutes(rng.next(14 * 24 * 60) as i64);
                let target = Duration::minutes(rng.next(3 * 24 * 60) as i64 + 1);
                let pauses: Vec<Pause> = (0..rng.next(4))
                    .map(|_| {
                        let from = base + Duration::minutes(rng.next(21 * 24 * 60) as i64);
                        let to = if rng.next(6) == 0 {
                            None
                        } else {
                            Some(from + Duration::minutes(rng.next(3 * 24 * 60) as i64))
                        };
                        Pause { from, to }
                    })
                    .collect();
                let clock = cal.sla_due(started, target, &pauses);
                assert_eq!(clock.paused, pauses.iter().any(|p| p.to.is_none()));
                match clock.due {
                    Some(due) => {
                        assert_eq!(cal.sla_elapsed(started, due, &pauses), target);
                        assert_eq!(
                            cal.time_left(started, target, due, &pauses),
                            Duration::zero()
                        );
                        assert!(
                            cal.sla_elapsed(started, due - Duration::minutes(1), &pauses) < target
                        );
                    }
                    None => {
                        assert!(clock.paused);
                        let far = base + Duration::weeks(30);
                        assert!(cal.sla_elapsed(started, far, &pauses) < target);
                    }
                }
            }
        }
    }
}
