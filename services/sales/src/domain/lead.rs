//! A lead and the rules for writing one.

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    validate::{MAX_SHORT, Violations, email_key, is_email, phone_key},
};
use uuid::Uuid;

use super::scoring::ScoreFactor;

/// Where a lead came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadSource {
    /// A website form.
    WebForm,
    /// An import.
    Import,
    /// An event.
    Event,
    /// A referral.
    Referral,
    /// A campaign.
    Campaign,
    /// Anything else.
    Other,
}

/// Every source with its stored name.
pub const SOURCES: &[(LeadSource, &str)] = &[
    (LeadSource::WebForm, "WEB_FORM"),
    (LeadSource::Import, "IMPORT"),
    (LeadSource::Event, "EVENT"),
    (LeadSource::Referral, "REFERRAL"),
    (LeadSource::Campaign, "CAMPAIGN"),
    (LeadSource::Other, "OTHER"),
];

/// Where a lead is in qualification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadStatus {
    /// Not worked yet.
    New,
    /// Reached out to.
    Contacted,
    /// Worth pursuing.
    Qualified,
    /// Not worth pursuing.
    Disqualified,
    /// Converted into a contact.
    Converted,
}

/// Every status with its stored name.
pub const STATUSES: &[(LeadStatus, &str)] = &[
    (LeadStatus::New, "NEW"),
    (LeadStatus::Contacted, "CONTACTED"),
    (LeadStatus::Qualified, "QUALIFIED"),
    (LeadStatus::Disqualified, "DISQUALIFIED"),
    (LeadStatus::Converted, "CONVERTED"),
];

pub use crm_shared::convert::{parse_stored, stored};

/// The writable fields of a lead.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadDraft {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Email, lower-cased.
    pub email: String,
    /// Phone as given.
    pub phone: String,
    /// Company name as captured.
    pub company_name: String,
    /// Job title.
    pub title: String,
    /// ISO country code, upper case.
    pub country: String,
    /// Employees of the company; 0 if unknown.
    pub employee_count: i64,
    /// Where it came from.
    pub source: LeadSource,
    /// The campaign's resource name.
    pub campaign: String,
    /// Qualification status.
    pub status: LeadStatus,
    /// Why it was disqualified.
    pub disqualify_reason: String,
}

/// The fields UpdateLead may change.
pub const WRITABLE_FIELDS: &[&str] = &[
    "given_name",
    "family_name",
    "email",
    "phone",
    "company_name",
    "title",
    "country",
    "employee_count",
    "source",
    "campaign",
    "status",
    "disqualify_reason",
];

impl LeadDraft {
    /// Trims and normalises, then checks every field; `prefix` is the request
    /// field the lead came in ("lead").
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        for text in [
            &mut self.given_name,
            &mut self.family_name,
            &mut self.phone,
            &mut self.company_name,
            &mut self.title,
            &mut self.campaign,
            &mut self.disqualify_reason,
        ] {
            *text = text.trim().to_owned();
        }
        self.email = email_key(&self.email);
        self.country = self.country.trim().to_uppercase();
        let mut v = Violations::default();
        let field = |name: &str| format!("{prefix}.{name}");
        for (name, value) in [
            ("given_name", &self.given_name),
            ("family_name", &self.family_name),
            ("email", &self.email),
            ("phone", &self.phone),
            ("company_name", &self.company_name),
            ("title", &self.title),
            ("disqualify_reason", &self.disqualify_reason),
        ] {
            v.text(&field(name), value, MAX_SHORT);
        }
        if self.given_name.is_empty()
            && self.family_name.is_empty()
            && self.email.is_empty()
            && self.company_name.is_empty()
        {
            v.add(
                field("given_name"),
                "a lead needs a name, an email or a company name",
            );
        }
        if !self.email.is_empty() && !is_email(&self.email) {
            v.add(
                field("email"),
                format!("{:?} is not an email address", self.email),
            );
        }
        if !self.phone.is_empty() && phone_key(&self.phone).is_none() {
            v.add(
                field("phone"),
                format!("{:?} is not a phone number", self.phone),
            );
        }
        if !self.country.is_empty()
            && (self.country.len() != 2 || !self.country.chars().all(|c| c.is_ascii_uppercase()))
        {
            v.add(field("country"), "an ISO 3166-1 alpha-2 code, like \"DE\"");
        }
        if self.employee_count < 0 {
            v.add(field("employee_count"), "must not be negative");
        }
        v.reference(&field("campaign"), &self.campaign, "campaigns");
        match self.status {
            LeadStatus::Disqualified if self.disqualify_reason.is_empty() => v.add(
                field("disqualify_reason"),
                "required when the status is DISQUALIFIED",
            ),
            LeadStatus::Converted => v.add(
                field("status"),
                "CONVERTED is set by ConvertLead, not written",
            ),
            _ => {}
        }
        v.finish()
    }

    /// Copies the fields named in `paths` from `from`.
    pub fn apply(&mut self, paths: &[&str], from: &LeadDraft) {
        for path in paths {
            match *path {
                "given_name" => self.given_name = from.given_name.clone(),
                "family_name" => self.family_name = from.family_name.clone(),
                "email" => self.email = from.email.clone(),
                "phone" => self.phone = from.phone.clone(),
                "company_name" => self.company_name = from.company_name.clone(),
                "title" => self.title = from.title.clone(),
                "country" => self.country = from.country.clone(),
                "employee_count" => self.employee_count = from.employee_count,
                "source" => self.source = from.source,
                "campaign" => self.campaign = from.campaign.clone(),
                "status" => self.status = from.status,
                "disqualify_reason" => self.disqualify_reason = from.disqualify_reason.clone(),
                _ => {}
            }
        }
    }

    /// "Ada Lovelace", else the email, else the company.
    pub fn display_name(&self) -> String {
        let person = format!("{} {}", self.given_name, self.family_name)
            .trim()
            .to_owned();
        [person, self.email.clone(), self.company_name.clone()]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or_default()
    }
}

/// A stored lead.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    /// The id.
    pub id: Uuid,
    /// The writable fields.
    pub draft: LeadDraft,
    /// The owner.
    pub owner: String,
    /// How the owner was chosen.
    pub assignment_reason: String,
    /// The score.
    pub score: i32,
    /// What made it.
    pub score_factors: Vec<ScoreFactor>,
    /// Matches found at capture.
    pub possible_duplicates: Vec<String>,
    /// The contact it became.
    pub converted_contact: String,
    /// The company it became.
    pub converted_company: String,
    /// Whether the contact existed already rather than being made from it.
    pub converted_contact_reused: bool,
    /// The opportunity created on conversion.
    pub converted_opportunity: String,
    /// When it was converted.
    pub convert_time: Option<DateTime<Utc>>,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// Version.
    pub version: i64,
}

impl Lead {
    /// `leads/{id}`.
    pub fn name(&self) -> String {
        format!("leads/{}", self.id)
    }

    /// Fails with FAILED_PRECONDITION once converted: a converted lead is history.
    pub fn check_writable(&self) -> Result<(), ApiError> {
        if self.draft.status == LeadStatus::Converted {
            return Err(ApiError::FailedPrecondition(format!(
                "{} is converted; change the contact or opportunity instead",
                self.name()
            )));
        }
        Ok(())
    }

    /// Forgets the person: what a contact's erasure asks of the leads that
    /// copied their data.
    pub fn erase_personal_data(&mut self) {
        let d = &mut self.draft;
        d.given_name.clear();
        d.family_name.clear();
        d.email.clear();
        d.phone.clear();
        d.title.clear();
        self.possible_duplicates.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> LeadDraft {
        LeadDraft {
            given_name: " Ada ".into(),
            family_name: "Lovelace".into(),
            email: " ADA@Example.com ".into(),
            phone: String::new(),
            company_name: "Analytical Engines".into(),
            title: String::new(),
            country: "gb".into(),
            employee_count: 10,
            source: LeadSource::WebForm,
            campaign: String::new(),
            status: LeadStatus::New,
            disqualify_reason: String::new(),
        }
    }

    #[test]
    fn a_lead_is_normalised() {
        let mut lead = draft();
        lead.normalize_and_check("lead").unwrap();
        assert_eq!(lead.email, "ada@example.com");
        assert_eq!(lead.given_name, "Ada");
        assert_eq!(lead.country, "GB");
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut lead = draft();
        lead.email = "nope".into();
        lead.phone = "call me".into();
        lead.country = "Germany".into();
        lead.employee_count = -1;
        lead.status = LeadStatus::Disqualified;
        let error = lead.normalize_and_check("lead").unwrap_err().to_string();
        for field in [
            "lead.email",
            "lead.phone",
            "lead.country",
            "lead.employee_count",
            "lead.disqualify_reason",
        ] {
            assert!(error.contains(field), "{field} in {error}");
        }
    }
}
