//! A/B tests: a campaign's second subject or template tried on a share of
//! its audience. Half of the share gets the campaign as written (A), half
//! gets B; the rest wait. Once the test's last message is handled and the
//! wait has passed, the variant with the better open (or click) rate is
//! chosen and sent to the rest. Who is in the test is fixed when the
//! audience is queued (a hash of campaign and contact, so no order of the
//! audience favours a variant), and the choice is recorded once.

use chrono::{DateTime, Duration, Utc};
use crm_shared::{error::ApiError, validate::Violations};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::template::TemplateDraft;

/// The default share of the audience in a test, in percent.
const DEFAULT_TEST_PERCENT: i32 = 20;
/// The default wait between the test's last message and the choice.
const DEFAULT_WAIT_SECONDS: i64 = 4 * 60 * 60;
/// The shortest and longest waits.
const WAIT_SECONDS: std::ops::RangeInclusive<i64> = 1..=7 * 24 * 60 * 60;

/// What decides the winner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Recipients who opened, of those sent.
    #[default]
    OpenRate,
    /// Recipients who clicked, of those sent.
    ClickRate,
}

/// A campaign's A/B test as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AbTest {
    /// Variant B's subject, in place of the template's; or empty.
    pub subject: String,
    /// Variant B's template, `templates/{id}`; or empty.
    pub template: String,
    /// The share of the audience in the test, in percent.
    pub test_percent: i32,
    /// What decides the winner.
    pub metric: Metric,
    /// Seconds between the test's last message and the choice.
    pub wait_seconds: i64,
}

impl AbTest {
    /// Fills defaults and checks; violations name `{prefix}.<field>`.
    pub fn normalize_and_check(&mut self, prefix: &str, v: &mut Violations) {
        self.subject = self.subject.trim().to_owned();
        self.template = self.template.trim().to_owned();
        if self.test_percent == 0 {
            self.test_percent = DEFAULT_TEST_PERCENT;
        }
        if self.wait_seconds == 0 {
            self.wait_seconds = DEFAULT_WAIT_SECONDS;
        }
        let field = |name: &str| format!("{prefix}.{name}");
        match (self.subject.is_empty(), self.template.is_empty()) {
            (true, true) => v.add(field("subject"), "a subject or a template for variant B"),
            (false, false) => v.add(
                field("template"),
                "either a subject or a template, not both",
            ),
            (false, true) => {
                // The subject is a template line: checked as the template's is.
                let mut probe = TemplateDraft {
                    display_name: "variant B".into(),
                    subject: self.subject.clone(),
                    text_body: "-".into(),
                    ..Default::default()
                };
                if let Err(ApiError::InvalidArgument(found)) = probe.normalize_and_check(prefix) {
                    for violation in found {
                        v.add(violation.field, violation.description);
                    }
                }
            }
            (true, false) => v.reference(&field("template"), &self.template, "templates"),
        }
        if !(2..=100).contains(&self.test_percent) {
            v.add(field("test_percent"), "2 to 100");
        }
        if !WAIT_SECONDS.contains(&self.wait_seconds) {
            v.add(field("wait"), "1 second to 7 days");
        }
    }

    /// How many of `audience` recipients are in the test: at least one per
    /// variant when there are two recipients.
    pub fn test_size(&self, audience: usize) -> usize {
        let share = (audience * usize::try_from(self.test_percent).unwrap_or(0)).div_ceil(100);
        share.max(audience.min(2)).min(audience)
    }
}

/// Which message a recipient gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The campaign as written.
    A,
    /// The test's subject or template.
    B,
    /// Not in the test: the winner, once chosen.
    Rest,
}

impl Variant {
    /// The stored name ("" for the rest).
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::A => "A",
            Variant::B => "B",
            Variant::Rest => "",
        }
    }

    /// From the stored name.
    pub fn parse(stored: &str) -> Variant {
        match stored {
            "A" => Variant::A,
            "B" => Variant::B,
            _ => Variant::Rest,
        }
    }
}

/// The audience in the order it is queued, each with its variant: the test
/// first (A and B alternating), then the rest. Who is in the test depends
/// only on the campaign and the contact.
pub fn split(campaign: Uuid, test: &AbTest, audience: Vec<String>) -> Vec<(String, Variant)> {
    let size = test.test_size(audience.len());
    let mut ranked: Vec<(u128, String)> = audience
        .into_iter()
        .map(|contact| {
            let rank = Uuid::new_v5(&campaign, contact.as_bytes()).as_u128();
            (rank, contact)
        })
        .collect();
    ranked.sort_unstable();
    ranked
        .into_iter()
        .enumerate()
        .map(|(i, (_, contact))| {
            let variant = match i {
                i if i >= size => Variant::Rest,
                i if i % 2 == 0 => Variant::A,
                _ => Variant::B,
            };
            (contact, variant)
        })
        .collect()
}

/// How one variant did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VariantCounts {
    /// Recipients given it.
    pub recipients: i64,
    /// Accepted by the mail server.
    pub sent: i64,
    /// Recipients who opened.
    pub unique_opens: i64,
    /// Recipients who clicked.
    pub unique_clicks: i64,
}

impl VariantCounts {
    fn hits(&self, metric: Metric) -> i64 {
        match metric {
            Metric::OpenRate => self.unique_opens,
            Metric::ClickRate => self.unique_clicks,
        }
    }
}

/// The variant with the better rate of `metric`; a tie (also nothing sent)
/// goes to A, the campaign as written.
pub fn winner(metric: Metric, a: &VariantCounts, b: &VariantCounts) -> Variant {
    // hits_b / sent_b > hits_a / sent_a, without dividing by zero.
    let better_b = i128::from(b.hits(metric)) * i128::from(a.sent.max(1))
        > i128::from(a.hits(metric)) * i128::from(b.sent.max(1));
    if better_b && b.sent > 0 {
        Variant::B
    } else {
        Variant::A
    }
}

/// Where a campaign's test is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AbProgress {
    /// When the test's last message was handled.
    pub test_sent_time: Option<DateTime<Utc>>,
    /// The variant for the rest, once chosen.
    pub winner: Option<Variant>,
    /// When it was chosen.
    pub decide_time: Option<DateTime<Utc>>,
}

impl AbProgress {
    /// Whether the winner may be chosen now.
    pub fn decision_due(&self, test: &AbTest, now: DateTime<Utc>) -> bool {
        self.winner.is_none()
            && self
                .test_sent_time
                .is_some_and(|sent| now >= sent + Duration::seconds(test.wait_seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(percent: i32) -> AbTest {
        AbTest {
            subject: "Hi {{ contact.given_name }}".into(),
            test_percent: percent,
            ..Default::default()
        }
    }

    fn checked(mut t: AbTest) -> Result<AbTest, Vec<String>> {
        let mut v = Violations::default();
        t.normalize_and_check("campaign.ab_test", &mut v);
        match v.finish() {
            Ok(()) => Ok(t),
            Err(ApiError::InvalidArgument(found)) => {
                Err(found.into_iter().map(|f| f.field).collect())
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_fill_and_bad_fields_are_named() {
        let t = checked(test(0)).unwrap();
        assert_eq!((t.test_percent, t.wait_seconds), (20, 4 * 3600));
        assert_eq!(
            checked(AbTest::default()).unwrap_err(),
            ["campaign.ab_test.subject"]
        );
        let both = AbTest {
            template: "templates/0196f3c0-0000-7000-8000-000000000000".into(),
            ..test(20)
        };
        assert_eq!(checked(both).unwrap_err(), ["campaign.ab_test.template"]);
        let unknown = AbTest {
            subject: "Hi {{ contact.nickname }}".into(),
            ..test(20)
        };
        assert_eq!(checked(unknown).unwrap_err(), ["campaign.ab_test.subject"]);
        let ranges = AbTest {
            test_percent: 1,
            wait_seconds: -5,
            ..test(20)
        };
        assert_eq!(
            checked(ranges).unwrap_err(),
            ["campaign.ab_test.test_percent", "campaign.ab_test.wait"]
        );
        let bad_ref = AbTest {
            subject: String::new(),
            template: "segments/x".into(),
            ..test(20)
        };
        assert_eq!(checked(bad_ref).unwrap_err(), ["campaign.ab_test.template"]);
    }

    #[test]
    fn the_test_share_is_split_evenly_and_queued_first() {
        let audience: Vec<String> = (0..100).map(|i| format!("contacts/{i}")).collect();
        let campaign = Uuid::now_v7();
        let split = split(campaign, &test(20), audience.clone());
        let variants: Vec<Variant> = split.iter().map(|(_, v)| *v).collect();
        assert_eq!(variants.iter().filter(|v| **v == Variant::A).count(), 10);
        assert_eq!(variants.iter().filter(|v| **v == Variant::B).count(), 10);
        assert!(variants[..20].iter().all(|v| *v != Variant::Rest));
        assert!(variants[20..].iter().all(|v| *v == Variant::Rest));
        // The same campaign picks the same people whatever the audience's order.
        let mut reversed = audience;
        reversed.reverse();
        assert_eq!(super::split(campaign, &test(20), reversed), split);
        // Tiny audiences still test both variants.
        let two = super::split(campaign, &test(2), vec!["a".into(), "b".into()]);
        assert_eq!(two.len(), 2);
        assert!(two.iter().all(|(_, v)| *v != Variant::Rest));
    }

    #[test]
    fn the_better_rate_wins_and_a_tie_goes_to_a() {
        let counts = |sent, opens, clicks| VariantCounts {
            recipients: sent,
            sent,
            unique_opens: opens,
            unique_clicks: clicks,
        };
        // B: 3 of 5 opened beats A: 5 of 10; but A clicked more.
        let (a, b) = (counts(10, 5, 4), counts(5, 3, 1));
        assert_eq!(winner(Metric::OpenRate, &a, &b), Variant::B);
        assert_eq!(winner(Metric::ClickRate, &a, &b), Variant::A);
        assert_eq!(winner(Metric::OpenRate, &a, &counts(10, 5, 0)), Variant::A);
        assert_eq!(winner(Metric::OpenRate, &a, &counts(0, 0, 0)), Variant::A);
        assert_eq!(
            winner(Metric::OpenRate, &counts(0, 0, 0), &counts(1, 1, 0)),
            Variant::B
        );
    }

    #[test]
    fn the_decision_waits_for_the_test_and_the_wait() {
        let t = checked(test(20)).unwrap();
        let now = Utc::now();
        let mut progress = AbProgress::default();
        assert!(!progress.decision_due(&t, now), "test still going out");
        progress.test_sent_time = Some(now);
        assert!(!progress.decision_due(&t, now + Duration::hours(3)));
        assert!(progress.decision_due(&t, now + Duration::hours(4)));
        progress.winner = Some(Variant::B);
        assert!(!progress.decision_due(&t, now + Duration::hours(5)), "once");
    }
}
