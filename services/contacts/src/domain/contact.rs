//! A contact (a person) and the rules for writing one.

use chrono::{DateTime, Utc};
use crm_shared::error::ApiError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::text::{email_key, fold, is_email, phone_key};
use super::validate::{MAX_CONTACT_POINTS, MAX_SHORT, Violations, normalize_tags};

/// Where a contact stands in the customer lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LifecycleStage {
    /// Subscribed to content.
    Subscriber,
    /// Showed interest.
    Lead,
    /// Qualified by marketing.
    MarketingQualified,
    /// Qualified by sales.
    SalesQualified,
    /// Has an open deal.
    Opportunity,
    /// Has bought.
    Customer,
    /// Recommends us.
    Evangelist,
    /// Anything else.
    Other,
}

impl LifecycleStage {
    /// Every stage with its stored (and filterable) name.
    pub const ALL: &'static [(LifecycleStage, &'static str)] = &[
        (Self::Subscriber, "SUBSCRIBER"),
        (Self::Lead, "LEAD"),
        (Self::MarketingQualified, "MARKETING_QUALIFIED"),
        (Self::SalesQualified, "SALES_QUALIFIED"),
        (Self::Opportunity, "OPPORTUNITY"),
        (Self::Customer, "CUSTOMER"),
        (Self::Evangelist, "EVANGELIST"),
        (Self::Other, "OTHER"),
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(stage, _)| *stage == self)
            .map_or("OTHER", |(_, name)| name)
    }

    /// The stage with a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(stage, _)| *stage)
    }
}

/// A channel a contact can be reached on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    /// Email.
    Email,
    /// Text messages.
    Sms,
    /// Calls.
    Phone,
}

/// Granted or withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsentStatus {
    /// Opted in.
    Granted,
    /// Opted out.
    Withdrawn,
}

/// The consent recorded for one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    /// The channel.
    pub channel: Channel,
    /// The status.
    pub status: ConsentStatus,
    /// When it was given or withdrawn.
    pub update_time: DateTime<Utc>,
    /// Where it was recorded.
    pub source: String,
}

/// One email address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Email {
    /// As given.
    pub address: String,
    /// "work", "home", ...
    pub label: String,
    /// The one to use first.
    pub primary: bool,
}

/// One phone number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phone {
    /// As given.
    pub number: String,
    /// "+" and digits.
    pub normalized: String,
    /// "mobile", "work", ...
    pub label: String,
    /// The one to use first.
    pub primary: bool,
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PostalAddress {
    /// Street lines.
    pub address_lines: Vec<String>,
    /// City.
    pub locality: String,
    /// State or province.
    pub administrative_area: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub region_code: String,
}

impl PostalAddress {
    /// Checks the parts' lengths and the region code's shape.
    pub fn check(&self, field: &str, violations: &mut Violations) {
        if self.address_lines.len() > 5 {
            violations.add(format!("{field}.address_lines"), "at most 5 lines");
        }
        for (i, line) in self.address_lines.iter().enumerate() {
            violations.text(&format!("{field}.address_lines[{i}]"), line, MAX_SHORT);
        }
        violations.text(&format!("{field}.locality"), &self.locality, MAX_SHORT);
        violations.text(
            &format!("{field}.administrative_area"),
            &self.administrative_area,
            MAX_SHORT,
        );
        violations.text(&format!("{field}.postal_code"), &self.postal_code, 32);
        let region_ok = self.region_code.is_empty()
            || (self.region_code.len() == 2
                && self.region_code.chars().all(|c| c.is_ascii_uppercase()));
        if !region_ok {
            violations.add(
                format!("{field}.region_code"),
                "a two-letter upper-case ISO 3166-1 code",
            );
        }
    }
}

/// The writable fields of a contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactDraft {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Shown name; derived from the others when empty.
    pub display_name: String,
    /// Email addresses.
    pub emails: Vec<Email>,
    /// Phone numbers.
    pub phones: Vec<Phone>,
    /// "companies/{id}" or empty.
    pub company: String,
    /// Job title.
    pub job_title: String,
    /// Postal address.
    pub address: Option<PostalAddress>,
    /// Lifecycle stage.
    pub lifecycle_stage: Option<LifecycleStage>,
    /// Owner's subject.
    pub owner: String,
    /// Where it came from.
    pub source: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// Consent per channel.
    pub consents: Vec<Consent>,
}

/// The fields an update mask may name.
pub const WRITABLE_FIELDS: &[&str] = &[
    "given_name",
    "family_name",
    "display_name",
    "emails",
    "phones",
    "company",
    "job_title",
    "address",
    "lifecycle_stage",
    "owner",
    "source",
    "tags",
    "custom_fields",
    "consents",
];

impl ContactDraft {
    /// Validates every field (prefixing paths with `prefix`, e.g. "contact")
    /// and normalises: trims names, derives the display name, keys phones,
    /// makes exactly one email and one phone primary, de-duplicates tags.
    pub fn normalize(mut self, prefix: &str) -> Result<Self, ApiError> {
        let mut v = Violations::default();
        for (field, value) in [
            ("given_name", &mut self.given_name),
            ("family_name", &mut self.family_name),
            ("display_name", &mut self.display_name),
            ("job_title", &mut self.job_title),
            ("owner", &mut self.owner),
            ("source", &mut self.source),
        ] {
            *value = value.trim().to_owned();
            v.text(&format!("{prefix}.{field}"), value, MAX_SHORT);
        }
        if self.display_name.is_empty() {
            self.display_name = format!("{} {}", self.given_name, self.family_name)
                .trim()
                .to_owned();
        }
        if self.display_name.is_empty()
            && let Some(email) = self.emails.first()
        {
            self.display_name = email.address.trim().to_owned();
        }
        if self.display_name.is_empty() {
            v.add(
                format!("{prefix}.display_name"),
                "a contact needs a name or an email address",
            );
        }
        if self.emails.len() > MAX_CONTACT_POINTS {
            v.add(
                format!("{prefix}.emails"),
                format!("at most {MAX_CONTACT_POINTS}"),
            );
        }
        for (i, email) in self.emails.iter_mut().enumerate() {
            email.address = email.address.trim().to_owned();
            if !is_email(&email.address) {
                v.add(
                    format!("{prefix}.emails[{i}].address"),
                    format!("{:?} is not an email address", email.address),
                );
            }
            v.text(&format!("{prefix}.emails[{i}].label"), &email.label, 64);
        }
        let mut keys = std::collections::HashSet::new();
        for (i, email) in self.emails.iter().enumerate() {
            if !keys.insert(email_key(&email.address)) {
                v.add(format!("{prefix}.emails[{i}].address"), "appears twice");
            }
        }
        if self.phones.len() > MAX_CONTACT_POINTS {
            v.add(
                format!("{prefix}.phones"),
                format!("at most {MAX_CONTACT_POINTS}"),
            );
        }
        for (i, phone) in self.phones.iter_mut().enumerate() {
            phone.number = phone.number.trim().to_owned();
            match phone_key(&phone.number) {
                Some(key) => phone.normalized = key,
                None => v.add(
                    format!("{prefix}.phones[{i}].number"),
                    format!("{:?} is not a phone number (7 to 15 digits)", phone.number),
                ),
            }
            v.text(&format!("{prefix}.phones[{i}].label"), &phone.label, 64);
        }
        v.reference(&format!("{prefix}.company"), &self.company, "companies");
        if let Some(address) = &self.address {
            address.check(&format!("{prefix}.address"), &mut v);
        }
        normalize_tags(&mut self.tags);
        v.tags(&format!("{prefix}.tags"), &self.tags);
        v.custom_fields(&format!("{prefix}.custom_fields"), &self.custom_fields);
        let mut channels = std::collections::HashSet::new();
        for (i, consent) in self.consents.iter().enumerate() {
            if !channels.insert(consent.channel) {
                v.add(
                    format!("{prefix}.consents[{i}].channel"),
                    "each channel appears at most once",
                );
            }
            v.text(
                &format!("{prefix}.consents[{i}].source"),
                &consent.source,
                MAX_SHORT,
            );
        }
        v.finish()?;
        make_one_primary(self.emails.iter_mut().map(|e| &mut e.primary));
        make_one_primary(self.phones.iter_mut().map(|p| &mut p.primary));
        Ok(self)
    }

    /// Copies the fields named in `paths` from `patch`.
    pub fn apply(&mut self, patch: ContactDraft, paths: &[&str]) {
        let ContactDraft {
            given_name,
            family_name,
            display_name,
            emails,
            phones,
            company,
            job_title,
            address,
            lifecycle_stage,
            owner,
            source,
            tags,
            custom_fields,
            consents,
        } = patch;
        for path in paths {
            match *path {
                "given_name" => self.given_name = given_name.clone(),
                "family_name" => self.family_name = family_name.clone(),
                "display_name" => self.display_name = display_name.clone(),
                "emails" => self.emails = emails.clone(),
                "phones" => self.phones = phones.clone(),
                "company" => self.company = company.clone(),
                "job_title" => self.job_title = job_title.clone(),
                "address" => self.address = address.clone(),
                "lifecycle_stage" => self.lifecycle_stage = lifecycle_stage,
                "owner" => self.owner = owner.clone(),
                "source" => self.source = source.clone(),
                "tags" => self.tags = tags.clone(),
                "custom_fields" => self.custom_fields = custom_fields.clone(),
                "consents" => self.consents = consents.clone(),
                _ => {}
            }
        }
    }

    /// The primary email's key, or "".
    pub fn primary_email(&self) -> String {
        self.emails
            .iter()
            .find(|e| e.primary)
            .map(|e| email_key(&e.address))
            .unwrap_or_default()
    }

    /// The primary phone's key, or "".
    pub fn primary_phone(&self) -> String {
        self.phones
            .iter()
            .find(|p| p.primary)
            .map(|p| p.normalized.clone())
            .unwrap_or_default()
    }

    /// The folded text search looks in: names, emails, phone numbers (as
    /// given and as keys). The company's name is searched through the company.
    pub fn search_text(&self) -> String {
        let mut parts = vec![
            fold(&self.display_name),
            fold(&self.given_name),
            fold(&self.family_name),
        ];
        parts.extend(self.emails.iter().map(|e| email_key(&e.address)));
        for phone in &self.phones {
            parts.push(phone.normalized.trim_start_matches('+').to_owned());
        }
        parts.retain(|p| !p.is_empty());
        format!(" {} ", parts.join(" "))
    }

    /// The email keys, for de-duplication.
    pub fn email_keys(&self) -> Vec<String> {
        self.emails.iter().map(|e| email_key(&e.address)).collect()
    }

    /// The phone keys, for de-duplication.
    pub fn phone_keys(&self) -> Vec<String> {
        self.phones.iter().map(|p| p.normalized.clone()).collect()
    }

    /// The survivor of a merge: this draft having absorbed each of `merged`
    /// in turn, checked as an update of it would be. Contacts each within a
    /// limit can break it together (60 custom fields each, 100 at most), and
    /// a survivor stored that way would fail every later update; so the merge
    /// is refused, FAILED_PRECONDITION rather than INVALID_ARGUMENT because
    /// the request is fine and the contacts' combined state is not.
    pub fn merge<'a>(
        mut self,
        merged: impl IntoIterator<Item = &'a ContactDraft>,
    ) -> Result<Self, ApiError> {
        for other in merged {
            self.absorb(other);
        }
        self.normalize("survivor").map_err(|error| match error {
            ApiError::InvalidArgument(violations) => {
                let broken: Vec<String> = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect();
                ApiError::FailedPrecondition(format!(
                    "the merged contact would break a limit ({}); remove values from the \
                     contacts first",
                    broken.join("; ")
                ))
            }
            other => other,
        })
    }

    /// Takes in what `other` knows and this one does not: the union of emails,
    /// phones and tags, custom fields this one lacks, empty fields filled, and
    /// per channel the more recent consent.
    pub fn absorb(&mut self, other: &ContactDraft) {
        let known: std::collections::HashSet<String> = self.email_keys().into_iter().collect();
        self.emails.extend(
            other
                .emails
                .iter()
                .filter(|e| !known.contains(&email_key(&e.address)))
                .map(|e| Email {
                    primary: false,
                    ..e.clone()
                }),
        );
        let known: std::collections::HashSet<String> = self.phone_keys().into_iter().collect();
        self.phones.extend(
            other
                .phones
                .iter()
                .filter(|p| !known.contains(&p.normalized))
                .map(|p| Phone {
                    primary: false,
                    ..p.clone()
                }),
        );
        self.emails.truncate(MAX_CONTACT_POINTS);
        self.phones.truncate(MAX_CONTACT_POINTS);
        self.tags.extend(other.tags.iter().cloned());
        normalize_tags(&mut self.tags);
        self.tags.truncate(super::validate::MAX_TAGS);
        for (key, value) in &other.custom_fields {
            self.custom_fields
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        for (mine, theirs) in [
            (&mut self.given_name, &other.given_name),
            (&mut self.family_name, &other.family_name),
            (&mut self.company, &other.company),
            (&mut self.job_title, &other.job_title),
            (&mut self.owner, &other.owner),
            (&mut self.source, &other.source),
        ] {
            if mine.is_empty() {
                mine.clone_from(theirs);
            }
        }
        if self.address.is_none() {
            self.address.clone_from(&other.address);
        }
        if self.lifecycle_stage.is_none() {
            self.lifecycle_stage = other.lifecycle_stage;
        }
        for consent in &other.consents {
            match self
                .consents
                .iter_mut()
                .find(|c| c.channel == consent.channel)
            {
                Some(mine) if mine.update_time >= consent.update_time => {}
                Some(mine) => *mine = consent.clone(),
                None => self.consents.push(consent.clone()),
            }
        }
    }
}

/// Keeps the first flagged entry primary, or makes the first entry primary.
fn make_one_primary<'a>(flags: impl Iterator<Item = &'a mut bool>) {
    let mut flags: Vec<&mut bool> = flags.collect();
    let chosen = flags.iter().position(|f| **f).unwrap_or(0);
    for (i, flag) in flags.iter_mut().enumerate() {
        **flag = i == chosen;
    }
}

/// A stored contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// The id.
    pub id: Uuid,
    /// The writable fields.
    pub draft: ContactDraft,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Soft-deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// Increments on every change; the etag.
    pub version: i64,
    /// The survivor it was merged into.
    pub merged_into: Option<String>,
}

impl Contact {
    /// The resource name.
    pub fn name(&self) -> String {
        crm_shared::convert::name_of("contacts", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(address: &str) -> Email {
        Email {
            address: address.into(),
            label: String::new(),
            primary: false,
        }
    }

    #[test]
    fn normalising_derives_names_and_one_primary() {
        let draft = ContactDraft {
            given_name: " Ada ".into(),
            family_name: "Lovelace".into(),
            emails: vec![email("ada@example.com"), email("ada@work.example")],
            tags: vec!["vip".into(), "VIP".into(), " ".into()],
            ..Default::default()
        }
        .normalize("contact")
        .unwrap();
        assert_eq!(draft.display_name, "Ada Lovelace");
        assert_eq!(draft.emails.iter().filter(|e| e.primary).count(), 1);
        assert!(draft.emails[0].primary);
        assert_eq!(draft.tags, vec!["vip".to_owned()]);
    }

    #[test]
    fn every_bad_field_is_named() {
        let error = ContactDraft {
            given_name: "x".repeat(300),
            emails: vec![email("not-an-email")],
            phones: vec![Phone {
                number: "12".into(),
                normalized: String::new(),
                label: String::new(),
                primary: false,
            }],
            company: "contacts/123".into(),
            ..Default::default()
        }
        .normalize("contact")
        .unwrap_err();
        let ApiError::InvalidArgument(violations) = error else {
            panic!("{error:?}")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        for expected in [
            "contact.given_name",
            "contact.emails[0].address",
            "contact.phones[0].number",
            "contact.company",
        ] {
            assert!(fields.contains(&expected), "{expected} not in {fields:?}");
        }
    }

    #[test]
    fn a_merge_past_the_custom_field_limit_is_refused() {
        let fields = |prefix: &str| -> serde_json::Map<String, serde_json::Value> {
            (0..60)
                .map(|i| (format!("{prefix}_{i}"), serde_json::Value::from(i)))
                .collect()
        };
        let draft = |given: &str, prefix: &str| ContactDraft {
            given_name: given.into(),
            custom_fields: fields(prefix),
            ..Default::default()
        };
        let error = draft("Ada", "a")
            .merge([&draft("Ada", "b")])
            .expect_err("120 custom fields");
        let ApiError::FailedPrecondition(message) = &error else {
            panic!("{error:?}")
        };
        assert!(
            message.contains("custom_fields") && message.contains("100"),
            "{message}"
        );
        let merged = draft("Ada", "a")
            .merge([&draft("Ada", "a")])
            .expect("the same 60 fields");
        assert_eq!(merged.custom_fields.len(), 60);
    }

    #[test]
    fn absorbing_takes_the_union() {
        let mut survivor = ContactDraft {
            emails: vec![email("a@x.io")],
            tags: vec!["a".into()],
            ..Default::default()
        };
        let merged = ContactDraft {
            given_name: "Ada".into(),
            emails: vec![email("A@x.io"), email("b@x.io")],
            tags: vec!["b".into()],
            ..Default::default()
        };
        survivor.absorb(&merged);
        assert_eq!(survivor.email_keys(), vec!["a@x.io", "b@x.io"]);
        assert_eq!(survivor.tags, vec!["a", "b"]);
        assert_eq!(survivor.given_name, "Ada");
    }
}
