//! Converting a lead: whether it may be converted, whether the call repeats a
//! finished conversion, which opportunity it opens, at which lifecycle stage
//! the contact enters, and what the lead records of it.
//!
//! Whether an existing contact is reused (one with the lead's email) is
//! decided where contacts is asked, in `crate::contacts`.

use chrono::{DateTime, Utc};
use crm_shared::{convert::required, error::ApiError, money::Money};

use super::{
    lead::{Lead, LeadDraft, LeadStatus},
    opportunity::{OpportunityDraft, parse_date},
};

/// What ConvertLead asks for, as it came.
#[derive(Debug, Clone, Default)]
pub struct ConvertRequest<'a> {
    /// Whether to open an opportunity too.
    pub create_opportunity: bool,
    /// The opportunity's name; empty for "{lead} deal".
    pub opportunity_display_name: &'a str,
    /// The opportunity's value; required with `create_opportunity`.
    pub amount: Option<Money>,
    /// `pipelines/{id}`; empty for the default.
    pub pipeline: &'a str,
    /// `YYYY-MM-DD` or empty.
    pub expected_close_date: &'a str,
}

/// The lifecycle stage a lead's contact enters at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactStage {
    /// Worth selling to, no deal yet.
    SalesQualified,
    /// A deal is open.
    Opportunity,
}

/// What a ConvertLead call does.
#[derive(Debug, PartialEq)]
pub enum Conversion {
    /// The lead is converted already: the call is a retry and gets the first
    /// conversion's result, and nothing is written or checked again.
    Repeat,
    /// Convert it now.
    Convert(Box<Plan>),
}

/// A conversion to carry out.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// The opportunity to open, if asked for.
    pub opportunity: Option<OpportunityDraft>,
    /// Whether the lead names a company to find or make.
    pub find_company: bool,
    /// The stage the contact enters at.
    pub contact_stage: ContactStage,
}

/// What a lead became.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertedTo {
    /// `contacts/{id}`.
    pub contact: String,
    /// `companies/{id}`, or empty.
    pub company: String,
    /// Whether the contact existed already rather than being made from the lead.
    pub contact_reused: bool,
}

/// Decides what converting `lead` does. Refused for a deleted lead (NOT_FOUND)
/// and a disqualified one (FAILED_PRECONDITION); the opportunity is checked
/// here, before anything is written anywhere.
pub fn plan(lead: &Lead, request: &ConvertRequest<'_>) -> Result<Conversion, ApiError> {
    if lead.delete_time.is_some() {
        return Err(ApiError::NotFound(lead.name()));
    }
    match lead.draft.status {
        LeadStatus::Converted => return Ok(Conversion::Repeat),
        LeadStatus::Disqualified => {
            return Err(ApiError::FailedPrecondition(format!(
                "{} is disqualified; requalify it first",
                lead.name()
            )));
        }
        LeadStatus::New | LeadStatus::Contacted | LeadStatus::Qualified => {}
    }
    let opportunity = if request.create_opportunity {
        Some(opportunity(lead, request)?)
    } else {
        None
    };
    Ok(Conversion::Convert(Box::new(Plan {
        contact_stage: if opportunity.is_some() {
            ContactStage::Opportunity
        } else {
            ContactStage::SalesQualified
        },
        opportunity,
        find_company: !lead.draft.company_name.is_empty(),
    })))
}

/// The title a conversion gives the deal when none is asked for: "{lead}
/// deal" (the person's name, else their address, else the company), or
/// "Deal" for a lead with none of them (one whose person was erased).
pub fn deal_title(lead: &LeadDraft) -> String {
    match lead.display_name() {
        name if name.is_empty() => "Deal".to_owned(),
        name => format!("{name} deal"),
    }
}

/// The opportunity a conversion opens: the lead's owner's, linked to the
/// contact and company once they are known.
fn opportunity(lead: &Lead, request: &ConvertRequest<'_>) -> Result<OpportunityDraft, ApiError> {
    let display_name = if request.opportunity_display_name.trim().is_empty() {
        deal_title(&lead.draft)
    } else {
        request.opportunity_display_name.to_owned()
    };
    Ok(OpportunityDraft {
        display_name,
        amount: Some(required(request.amount.clone(), "amount")?),
        pipeline: request.pipeline.to_owned(),
        stage: String::new(),
        expected_close_date: parse_date(request.expected_close_date, "expected_close_date")?,
        owner: lead.owner.clone(),
        contact: String::new(),
        company: String::new(),
        line_items: vec![],
        close_reason: String::new(),
    })
}

impl Lead {
    /// Records the conversion on the lead, which is history from then on.
    pub fn convert(&mut self, to: ConvertedTo, opportunity: Option<String>, now: DateTime<Utc>) {
        self.draft.status = LeadStatus::Converted;
        self.converted_contact = to.contact;
        self.converted_company = to.company;
        self.converted_contact_reused = to.contact_reused;
        self.converted_opportunity = opportunity.unwrap_or_default();
        self.convert_time = Some(now);
        self.update_time = now;
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::lead::{LeadDraft, LeadSource};

    fn lead(status: LeadStatus) -> Lead {
        let now = Utc::now();
        Lead {
            id: Uuid::now_v7(),
            draft: LeadDraft {
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                email: "ada@example.com".into(),
                phone: String::new(),
                company_name: "Analytical Engines".into(),
                title: String::new(),
                country: String::new(),
                employee_count: 0,
                source: LeadSource::WebForm,
                campaign: String::new(),
                status,
                disqualify_reason: String::new(),
            },
            owner: "ann".into(),
            assignment_reason: String::new(),
            score: 0,
            score_factors: vec![],
            possible_duplicates: vec![],
            converted_contact: String::new(),
            converted_company: String::new(),
            converted_contact_reused: false,
            converted_opportunity: String::new(),
            convert_time: None,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        }
    }

    fn eur(units: i64) -> Money {
        Money {
            currency_code: "EUR".into(),
            units,
            nanos: 0,
        }
    }

    fn with_deal(amount: Option<Money>) -> ConvertRequest<'static> {
        ConvertRequest {
            create_opportunity: true,
            amount,
            ..Default::default()
        }
    }

    fn planned(lead: &Lead, request: &ConvertRequest<'_>) -> Plan {
        match plan(lead, request) {
            Ok(Conversion::Convert(plan)) => *plan,
            other => panic!("expected a plan, got {other:?}"),
        }
    }

    #[test]
    fn a_contact_alone_enters_as_sales_qualified() {
        let plan = planned(&lead(LeadStatus::Qualified), &ConvertRequest::default());
        assert_eq!(plan.opportunity, None);
        assert_eq!(plan.contact_stage, ContactStage::SalesQualified);
        assert!(plan.find_company);
    }

    #[test]
    fn a_lead_without_a_company_looks_for_none() {
        let mut lead = lead(LeadStatus::New);
        lead.draft.company_name.clear();
        assert!(!planned(&lead, &ConvertRequest::default()).find_company);
    }

    #[test]
    fn a_deal_is_the_owners_and_named_after_the_lead() {
        let plan = planned(&lead(LeadStatus::Contacted), &with_deal(Some(eur(500))));
        assert_eq!(plan.contact_stage, ContactStage::Opportunity);
        let deal = plan.opportunity.expect("an opportunity");
        assert_eq!(deal.display_name, "Ada Lovelace deal");
        assert_eq!(deal.owner, "ann");
        assert_eq!(deal.amount, Some(eur(500)));
        assert!(deal.contact.is_empty() && deal.company.is_empty());
    }

    #[test]
    fn an_erased_leads_deal_title_names_only_the_company() {
        let mut lead = lead(LeadStatus::Converted);
        assert_eq!(deal_title(&lead.draft), "Ada Lovelace deal");
        lead.erase_personal_data();
        let company = lead.draft.company_name.clone();
        assert!(!company.is_empty());
        assert_eq!(deal_title(&lead.draft), format!("{company} deal"));
        lead.draft.company_name.clear();
        assert_eq!(deal_title(&lead.draft), "Deal");
    }

    #[test]
    fn a_deal_needs_an_amount_and_a_real_date() {
        let lead = lead(LeadStatus::New);
        let missing = plan(&lead, &with_deal(None)).unwrap_err().to_string();
        assert!(missing.contains("amount"), "{missing}");
        let bad_date = ConvertRequest {
            expected_close_date: "31/12/2030",
            ..with_deal(Some(eur(1)))
        };
        let error = plan(&lead, &bad_date).unwrap_err().to_string();
        assert!(error.contains("expected_close_date"), "{error}");
    }

    #[test]
    fn a_converted_lead_repeats_without_checking_the_request_again() {
        let request = with_deal(None);
        assert_eq!(
            plan(&lead(LeadStatus::Converted), &request).unwrap(),
            Conversion::Repeat
        );
    }

    #[test]
    fn deleted_and_disqualified_leads_are_refused() {
        let mut deleted = lead(LeadStatus::Converted);
        deleted.delete_time = Some(Utc::now());
        assert!(matches!(
            plan(&deleted, &ConvertRequest::default()),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            plan(&lead(LeadStatus::Disqualified), &ConvertRequest::default()),
            Err(ApiError::FailedPrecondition(_))
        ));
    }

    #[test]
    fn converting_records_what_the_lead_became() {
        let mut lead = lead(LeadStatus::Qualified);
        let now = Utc::now();
        let to = ConvertedTo {
            contact: "contacts/c".into(),
            company: "companies/e".into(),
            contact_reused: true,
        };
        lead.convert(to, Some("opportunities/o".into()), now);
        assert_eq!(lead.draft.status, LeadStatus::Converted);
        assert_eq!(lead.converted_contact, "contacts/c");
        assert_eq!(lead.converted_company, "companies/e");
        assert!(lead.converted_contact_reused);
        assert_eq!(lead.converted_opportunity, "opportunities/o");
        assert_eq!(lead.convert_time, Some(now));
        assert!(
            lead.check_writable().is_err(),
            "a converted lead is history"
        );
    }
}
