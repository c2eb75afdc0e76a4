//! The contacts service, as sales uses it: generated tonic clients, the
//! caller's credentials passed on, a deadline on every call, retries only for
//! calls that are safe to repeat (reads, and creates with a request id).

use crm_proto::contacts::{self as pb, contacts_service_client::ContactsServiceClient};
use crm_shared::{
    client::{Credentials, retry_idempotent, upstream_error},
    error::ApiError,
    idempotency::derived_request_id,
};
use tonic::{Code, transport::Channel};

use crate::domain::lead::{Lead, LeadSource, SOURCES, stored};

const SERVICE: &str = "contacts";

/// A client of the contacts service.
#[derive(Clone)]
pub struct Contacts {
    channel: Channel,
}

impl Contacts {
    /// Calls contacts over `channel`.
    pub fn new(channel: Channel) -> Self {
        Self { channel }
    }

    fn client(&self) -> ContactsServiceClient<Channel> {
        ContactsServiceClient::new(self.channel.clone())
    }

    /// The contacts whose email is `email` (at most 20).
    pub async fn with_email(
        &self,
        credentials: &Credentials,
        email: &str,
    ) -> Result<Vec<String>, ApiError> {
        let filter = format!("email = {}", quote(email));
        let response = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(pb::ListContactsRequest {
                page_size: 20,
                filter: filter.clone(),
                ..Default::default()
            });
            async move { client.list_contacts(request).await }
        })
        .await
        .map_err(|status| upstream_error(SERVICE, status))?;
        Ok(response
            .into_inner()
            .contacts
            .into_iter()
            .map(|c| c.name)
            .collect())
    }

    /// INVALID_ARGUMENT on `field` unless `name` is a live contact.
    pub async fn check_contact(
        &self,
        credentials: &Credentials,
        name: &str,
        field: &str,
    ) -> Result<(), ApiError> {
        let outcome = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(pb::GetContactRequest {
                name: name.to_owned(),
            });
            async move { client.get_contact(request).await }
        })
        .await;
        match outcome {
            Ok(contact) if contact.get_ref().delete_time.is_none() => Ok(()),
            Ok(_) => Err(ApiError::invalid(field, format!("{name} is deleted"))),
            Err(status) if status.code() == Code::NotFound => {
                Err(ApiError::invalid(field, format!("{name} does not exist")))
            }
            Err(status) => Err(upstream_error(SERVICE, status)),
        }
    }

    /// INVALID_ARGUMENT on `field` unless `name` is a live company.
    pub async fn check_company(
        &self,
        credentials: &Credentials,
        name: &str,
        field: &str,
    ) -> Result<(), ApiError> {
        let outcome = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(pb::GetCompanyRequest {
                name: name.to_owned(),
            });
            async move { client.get_company(request).await }
        })
        .await;
        match outcome {
            Ok(company) if company.get_ref().delete_time.is_none() => Ok(()),
            Ok(_) => Err(ApiError::invalid(field, format!("{name} is deleted"))),
            Err(status) if status.code() == Code::NotFound => {
                Err(ApiError::invalid(field, format!("{name} does not exist")))
            }
            Err(status) => Err(upstream_error(SERVICE, status)),
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
        let filter = format!("display_name = {}", quote(name));
        let existing = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(pb::ListCompaniesRequest {
                page_size: 1,
                filter: filter.clone(),
                ..Default::default()
            });
            async move { client.list_companies(request).await }
        })
        .await
        .map_err(|status| upstream_error(SERVICE, status))?;
        if let Some(company) = existing.into_inner().companies.into_iter().next() {
            return Ok(company.name);
        }
        let request_id =
            derived_request_id(&format!("convert\0{}\0company", lead.name())).to_string();
        let created = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(pb::CreateCompanyRequest {
                company: Some(pb::Company {
                    display_name: name.clone(),
                    employee_count: i32::try_from(lead.draft.employee_count).unwrap_or(i32::MAX),
                    ..Default::default()
                }),
                request_id: request_id.clone(),
            });
            async move { client.create_company(request).await }
        })
        .await
        .map_err(|status| upstream_error(SERVICE, status))?;
        Ok(created.into_inner().name)
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
        let created = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(pb::CreateContactRequest {
                contact: Some(contact.clone()),
                request_id: request_id.clone(),
            });
            async move { client.create_contact(request).await }
        })
        .await
        .map_err(|status| upstream_error(SERVICE, status))?;
        Ok((created.into_inner().name, false))
    }
}

fn source_label(source: LeadSource) -> String {
    stored(SOURCES, source).to_lowercase().replace('_', " ")
}

/// A string literal for an AIP-160 filter.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}
