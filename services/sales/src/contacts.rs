//! The contacts service, as sales uses it: the shared client
//! (`crm_shared::contacts`) plus what conversion asks of it.

use std::ops::Deref;

use crm_proto::contacts as pb;
use crm_shared::{
    client::Credentials, contacts::ContactsClient, error::ApiError, idempotency::derived_request_id,
};
use tonic::transport::Channel;

use crate::domain::lead::{Lead, LeadSource, SOURCES, stored};

/// A client of the contacts service.
#[derive(Clone)]
pub struct Contacts {
    client: ContactsClient,
}

impl Deref for Contacts {
    type Target = ContactsClient;

    fn deref(&self) -> &ContactsClient {
        &self.client
    }
}

impl Contacts {
    /// Calls contacts over `channel`.
    pub fn new(channel: Channel) -> Self {
        Self {
            client: ContactsClient::new(channel),
        }
    }

    /// The company a converted lead joins: one with the same name, else a new
    /// one. The create carries a request id derived from the lead, so a retried
    /// conversion finds the company it made the first time.
    pub async fn company_for(
        &self,
        credentials: &Credentials,
        lead: &Lead,
    ) -> Result<String, ApiError> {
        let name = &lead.draft.company_name;
        if let Some(company) = self.company_named(credentials, name).await? {
            return Ok(company);
        }
        let request_id =
            derived_request_id(&format!("convert\0{}\0company", lead.name())).to_string();
        let company = pb::Company {
            display_name: name.clone(),
            employee_count: i32::try_from(lead.draft.employee_count).unwrap_or(i32::MAX),
            ..Default::default()
        };
        self.create_company(credentials, company, request_id).await
    }

    /// The contact a converted lead becomes: the existing one with its email
    /// (reused: true), else a new one made from the lead, with a request id
    /// derived from the lead so a retried conversion makes no second contact.
    pub async fn contact_for(
        &self,
        credentials: &Credentials,
        lead: &Lead,
        company: &str,
        stage: pb::LifecycleStage,
    ) -> Result<(String, bool), ApiError> {
        let d = &lead.draft;
        if !d.email.is_empty()
            && let Some(existing) = self
                .with_email(credentials, &d.email)
                .await?
                .into_iter()
                .next()
        {
            return Ok((existing, true));
        }
        let request_id =
            derived_request_id(&format!("convert\0{}\0contact", lead.name())).to_string();
        let contact = pb::Contact {
            given_name: d.given_name.clone(),
            family_name: d.family_name.clone(),
            display_name: if d.given_name.is_empty() && d.family_name.is_empty() {
                d.display_name()
            } else {
                String::new()
            },
            emails: (!d.email.is_empty())
                .then(|| pb::EmailAddress {
                    address: d.email.clone(),
                    label: "work".into(),
                    primary: true,
                })
                .into_iter()
                .collect(),
            phones: (!d.phone.is_empty())
                .then(|| pb::PhoneNumber {
                    number: d.phone.clone(),
                    label: "work".into(),
                    primary: true,
                    normalized_number: String::new(),
                })
                .into_iter()
                .collect(),
            company: company.to_owned(),
            job_title: d.title.clone(),
            lifecycle_stage: stage as i32,
            owner: lead.owner.clone(),
            source: format!("sales lead {} ({})", lead.name(), source_label(d.source)),
            ..Default::default()
        };
        let created = self
            .create_contact(credentials, contact, request_id)
            .await?;
        Ok((created, false))
    }
}

fn source_label(source: LeadSource) -> String {
    stored(SOURCES, source).to_lowercase().replace('_', " ")
}
