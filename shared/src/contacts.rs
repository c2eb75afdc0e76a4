//! The contacts service as the other services use it: reference checks,
//! look-ups by email and creates, with the caller's credentials passed on, a
//! deadline on every call, and retries only for calls safe to repeat (reads,
//! and creates with a request id).

use crm_proto::contacts::{self as pb, contacts_service_client::ContactsServiceClient};
use tonic::{Code, Status, transport::Channel};

use crate::{
    client::{Credentials, retry_idempotent, upstream_error},
    error::ApiError,
};

/// The service's name in errors and configuration (`<service>.contacts_url`).
pub const SERVICE: &str = "contacts";

/// A client of the contacts service.
#[derive(Clone)]
pub struct ContactsClient {
    channel: Channel,
}

impl ContactsClient {
    /// Calls contacts over `channel`.
    pub fn new(channel: Channel) -> Self {
        Self { channel }
    }

    fn client(&self) -> ContactsServiceClient<Channel> {
        ContactsServiceClient::new(self.channel.clone())
    }

    /// The live contacts whose email is `email` (at most 20).
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

    /// A live contact; INVALID_ARGUMENT on `field` when it is deleted or does
    /// not exist.
    pub async fn live_contact(
        &self,
        credentials: &Credentials,
        name: &str,
        field: &str,
    ) -> Result<pb::Contact, ApiError> {
        let outcome = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(pb::GetContactRequest {
                name: name.to_owned(),
            });
            async move { client.get_contact(request).await }
        })
        .await
        .map(tonic::Response::into_inner);
        live(outcome, name, field, |c| c.delete_time.is_some())
    }

    /// INVALID_ARGUMENT on `field` unless `name` is a live contact.
    pub async fn check_contact(
        &self,
        credentials: &Credentials,
        name: &str,
        field: &str,
    ) -> Result<(), ApiError> {
        self.live_contact(credentials, name, field).await.map(drop)
    }

    /// INVALID_ARGUMENT on `field` unless `name` is a live company.
    pub async fn check_company(
        &self,
        credentials: &Credentials,
        name: &str,
        field: &str,
    ) -> Result<(), ApiError> {
        self.live_company(credentials, name, field).await.map(drop)
    }

    /// The live company `name`; INVALID_ARGUMENT naming `field` when it is
    /// missing or deleted.
    pub async fn live_company(
        &self,
        credentials: &Credentials,
        name: &str,
        field: &str,
    ) -> Result<pb::Company, ApiError> {
        let outcome = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(pb::GetCompanyRequest {
                name: name.to_owned(),
            });
            async move { client.get_company(request).await }
        })
        .await
        .map(tonic::Response::into_inner);
        live(outcome, name, field, |c| c.delete_time.is_some())
    }

    /// The first company named `display_name`, if any.
    pub async fn company_named(
        &self,
        credentials: &Credentials,
        display_name: &str,
    ) -> Result<Option<String>, ApiError> {
        let filter = format!("display_name = {}", quote(display_name));
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
        Ok(existing
            .into_inner()
            .companies
            .into_iter()
            .next()
            .map(|c| c.name))
    }

    /// Creates a company; `request_id` makes a retry return the first one.
    pub async fn create_company(
        &self,
        credentials: &Credentials,
        company: pb::Company,
        request_id: String,
    ) -> Result<String, ApiError> {
        let created = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(pb::CreateCompanyRequest {
                company: Some(company.clone()),
                request_id: request_id.clone(),
            });
            async move { client.create_company(request).await }
        })
        .await
        .map_err(|status| upstream_error(SERVICE, status))?;
        Ok(created.into_inner().name)
    }

    /// Creates a contact; `request_id` makes a retry return the first one.
    pub async fn create_contact(
        &self,
        credentials: &Credentials,
        contact: pb::Contact,
        request_id: String,
    ) -> Result<String, ApiError> {
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
        Ok(created.into_inner().name)
    }
}

/// A fetched resource if it is live; INVALID_ARGUMENT on `field` when it is
/// deleted or missing, UNAVAILABLE (or the caller's own error) otherwise.
fn live<T>(
    outcome: Result<T, Status>,
    name: &str,
    field: &str,
    deleted: impl Fn(&T) -> bool,
) -> Result<T, ApiError> {
    match outcome {
        Ok(found) if !deleted(&found) => Ok(found),
        Ok(_) => Err(ApiError::invalid(field, format!("{name} is deleted"))),
        Err(status) if status.code() == Code::NotFound => {
            Err(ApiError::invalid(field, format!("{name} does not exist")))
        }
        Err(status) => Err(upstream_error(SERVICE, status)),
    }
}

/// A string literal for an AIP-160 filter.
pub fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_filter_literals_escape_quotes_and_backslashes() {
        assert_eq!(quote("ada@example.com"), "\"ada@example.com\"");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn a_missing_or_deleted_reference_names_the_field() {
        let missing: Result<(), _> =
            live(Err(Status::not_found("x")), "contacts/1", "t.r", |_| false);
        let deleted = live(Ok(()), "contacts/1", "t.r", |_| true);
        for outcome in [missing, deleted] {
            match outcome {
                Err(ApiError::InvalidArgument(violations)) => {
                    assert_eq!(violations[0].field, "t.r")
                }
                other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
            }
        }
        let down: Result<(), _> = live(
            Err(Status::unavailable("down")),
            "contacts/1",
            "t.r",
            |_| false,
        );
        assert!(matches!(down, Err(ApiError::Unavailable(_))));
    }
}
