//! What marketing asks of the contacts service: a segment's contacts (its
//! filter evaluated by contacts, page by page), whether one contact matches
//! a filter, the contacts of a batch at send time (their address, consent
//! and fields), the contact of an address (found or made), the withdrawal
//! of email consent when someone unsubscribes, and a journey's changes to a
//! contact. Background work calls as the service identity acting for the
//! tenant.

use std::collections::HashMap;

use crm_proto::contacts::{
    self as pb, BatchGetContactsRequest, GetContactRequest, ListContactsRequest,
    UpdateContactRequest, contacts_service_client::ContactsServiceClient,
};
use crm_shared::{
    client::{Credentials, ServiceIdentity, retry_idempotent, upstream_error},
    contacts::{ContactsClient, quote},
    db::Tenant,
    error::ApiError,
    idempotency::derived_request_id,
};
use tonic::{Code, transport::Channel};

use crate::domain::{audience::ContactAtSend, template::Recipient};

/// Contacts listed per call when resolving a segment.
const PAGE: i32 = 1000;

/// The contacts service, as marketing uses it.
#[derive(Clone)]
pub struct Directory {
    channel: Channel,
    identity: ServiceIdentity,
}

/// A contact as the sender needs it.
pub struct SendProfile {
    /// Whether and where it may be sent to.
    pub at_send: ContactAtSend,
    /// The template's variables.
    pub recipient: Recipient,
}

impl Directory {
    /// The contacts service at `channel`, called as `identity` for background work.
    pub fn new(channel: Channel, identity: ServiceIdentity) -> Self {
        Self { channel, identity }
    }

    fn client(&self) -> ContactsServiceClient<Channel> {
        ContactsServiceClient::new(self.channel.clone())
    }

    /// The service identity acting for `tenant`.
    pub fn as_service(&self, tenant: &Tenant) -> Result<Credentials, ApiError> {
        Credentials::service_acting_for(&self.identity.token()?, tenant.as_str())
    }

    /// How many contacts match `filter`, and up to `sample` of them; a filter
    /// contacts refuses is INVALID_ARGUMENT naming `field`.
    pub async fn preview(
        &self,
        credentials: &Credentials,
        filter: &str,
        sample: i32,
        field: &str,
    ) -> Result<(i32, Vec<String>), ApiError> {
        let page = self
            .list(credentials, filter, sample.max(1), String::new(), true)
            .await
            .map_err(|status| match status.code() {
                // The filter is the caller's: name their field.
                Code::InvalidArgument => ApiError::invalid(field, status.message()),
                _ => upstream_error("contacts", status),
            })?;
        let names = page
            .contacts
            .into_iter()
            .take(sample as usize)
            .map(|c| c.name);
        Ok((page.total_size, names.collect()))
    }

    /// Every contact matching `filter`, newest first.
    pub async fn matching(
        &self,
        credentials: &Credentials,
        filter: &str,
    ) -> Result<Vec<String>, ApiError> {
        let mut names = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .list(credentials, filter, PAGE, token, false)
                .await
                .map_err(|status| upstream_error("contacts", status))?;
            names.extend(page.contacts.into_iter().map(|c| c.name));
            if page.next_page_token.is_empty() {
                return Ok(names);
            }
            token = page.next_page_token;
        }
    }

    /// Whether `contact` matches `filter` (contacts evaluates it).
    pub async fn matches(
        &self,
        credentials: &Credentials,
        contact: &str,
        filter: &str,
    ) -> Result<bool, ApiError> {
        let id = contact.trim_start_matches("contacts/");
        let filter = format!("({filter}) AND id = {}", quote(id));
        let page = self
            .list(credentials, &filter, 1, String::new(), false)
            .await
            .map_err(|status| upstream_error("contacts", status))?;
        Ok(!page.contacts.is_empty())
    }

    /// The contact with `email`, or a new one made with it from `source`
    /// (a request id derived from the address, so two asks for one new
    /// address make one contact).
    pub async fn contact_for_email(
        &self,
        credentials: &Credentials,
        email: &str,
        source: &str,
    ) -> Result<String, ApiError> {
        let contacts = ContactsClient::new(self.channel.clone());
        if let Some(existing) = contacts
            .with_email(credentials, email)
            .await?
            .into_iter()
            .next()
        {
            return Ok(existing);
        }
        let contact = pb::Contact {
            display_name: email.to_owned(),
            emails: vec![pb::EmailAddress {
                address: email.to_owned(),
                label: "work".into(),
                primary: true,
            }],
            source: source.to_owned(),
            ..Default::default()
        };
        let request_id = derived_request_id(&format!("marketing member\0{email}"));
        contacts
            .create_contact(credentials, contact, request_id.to_string())
            .await
    }

    /// A journey's change to `contact`: tags added and removed, a lifecycle
    /// stage (its name, e.g. "CUSTOMER"), custom fields merged in. Doing it
    /// again changes nothing more.
    pub async fn change_contact(
        &self,
        credentials: &Credentials,
        contact: &str,
        change: &ContactChange,
    ) -> Result<(), ApiError> {
        // A concurrent edit of the contact moves its etag: read it again, once.
        match self.change_once(credentials, contact, change).await {
            Err(ApiError::Aborted(_)) => self.change_once(credentials, contact, change).await,
            outcome => outcome,
        }
    }

    async fn change_once(
        &self,
        credentials: &Credentials,
        contact: &str,
        change: &ContactChange,
    ) -> Result<(), ApiError> {
        let Some(current) = self.one(credentials, contact).await? else {
            return Err(ApiError::NotFound(contact.to_owned()));
        };
        let mut tags = current.tags.clone();
        tags.retain(|t| !change.remove_tags.contains(t));
        for tag in &change.add_tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        let mut custom = current
            .custom_fields
            .as_ref()
            .map(crm_shared::convert::struct_to_json)
            .unwrap_or_default();
        custom.extend(change.custom_fields.clone());
        let stage = if change.lifecycle_stage.is_empty() {
            current.lifecycle_stage
        } else {
            pb::LifecycleStage::from_str_name(&format!(
                "LIFECYCLE_STAGE_{}",
                change.lifecycle_stage
            ))
            .ok_or_else(|| {
                ApiError::FailedPrecondition(format!(
                    "contacts knows no lifecycle stage {}",
                    change.lifecycle_stage
                ))
            })? as i32
        };
        let update = UpdateContactRequest {
            contact: Some(pb::Contact {
                name: current.name.clone(),
                etag: current.etag.clone(),
                tags,
                lifecycle_stage: stage,
                custom_fields: Some(crm_shared::convert::json_to_struct(&custom)),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![
                    "tags".into(),
                    "lifecycle_stage".into(),
                    "custom_fields".into(),
                ],
            }),
        };
        self.client()
            .update_contact(credentials.request(update))
            .await
            .map(|_| ())
            .map_err(|status| match status.code() {
                Code::Aborted => ApiError::Aborted(status.message().to_owned()),
                _ => upstream_error("contacts", status),
            })
    }

    async fn list(
        &self,
        credentials: &Credentials,
        filter: &str,
        page_size: i32,
        page_token: String,
        include_total_size: bool,
    ) -> Result<pb::ListContactsResponse, tonic::Status> {
        retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(ListContactsRequest {
                page_size,
                page_token: page_token.clone(),
                filter: filter.to_owned(),
                include_total_size,
                ..Default::default()
            });
            async move { client.list_contacts(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// The contacts named, as the sender sees them now; a contact that no
    /// longer exists is missing from the map.
    pub async fn profiles(
        &self,
        credentials: &Credentials,
        names: &[String],
    ) -> Result<HashMap<String, SendProfile>, ApiError> {
        let batch = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(BatchGetContactsRequest {
                names: names.to_vec(),
            });
            async move { client.batch_get_contacts(request).await }
        })
        .await;
        let contacts = match batch {
            Ok(response) => response.into_inner().contacts,
            // One of them is gone (erased): ask one by one.
            Err(status) if status.code() == Code::NotFound => {
                let mut found = Vec::new();
                for name in names {
                    if let Some(contact) = self.one(credentials, name).await? {
                        found.push(contact);
                    }
                }
                found
            }
            Err(status) => return Err(upstream_error("contacts", status)),
        };
        let companies = self.company_names(credentials, &contacts).await?;
        Ok(contacts
            .into_iter()
            .map(|c| {
                let company = companies.get(&c.company).cloned().unwrap_or_default();
                (c.name.clone(), profile(c, company))
            })
            .collect())
    }

    /// The display names of the contacts' companies (one call per company).
    async fn company_names(
        &self,
        credentials: &Credentials,
        contacts: &[pb::Contact],
    ) -> Result<HashMap<String, String>, ApiError> {
        let mut names = HashMap::new();
        for company in contacts.iter().map(|c| &c.company) {
            if company.is_empty() || names.contains_key(company) {
                continue;
            }
            let got = retry_idempotent(|| {
                let mut client = self.client();
                let request = credentials.request(pb::GetCompanyRequest {
                    name: company.clone(),
                });
                async move { client.get_company(request).await }
            })
            .await;
            let display_name = match got {
                Ok(response) => response.into_inner().display_name,
                Err(status) if status.code() == Code::NotFound => String::new(),
                Err(status) => return Err(upstream_error("contacts", status)),
            };
            names.insert(company.clone(), display_name);
        }
        Ok(names)
    }

    async fn one(
        &self,
        credentials: &Credentials,
        name: &str,
    ) -> Result<Option<pb::Contact>, ApiError> {
        let got = retry_idempotent(|| {
            let mut client = self.client();
            let request = credentials.request(GetContactRequest {
                name: name.to_owned(),
            });
            async move { client.get_contact(request).await }
        })
        .await;
        match got {
            Ok(response) => Ok(Some(response.into_inner())),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(upstream_error("contacts", status)),
        }
    }

    /// Records in contacts that `contact` withdrew email consent, from
    /// `source`; a contact whose consent is withdrawn already is left as it
    /// is (`false`).
    pub async fn withdraw_email_consent(
        &self,
        credentials: &Credentials,
        contact: &str,
        source: &str,
    ) -> Result<bool, ApiError> {
        // A concurrent edit of the contact moves its etag: read it again, once.
        match self.withdraw_once(credentials, contact, source).await {
            Err(ApiError::Aborted(_)) => self.withdraw_once(credentials, contact, source).await,
            outcome => outcome,
        }
    }

    async fn withdraw_once(
        &self,
        credentials: &Credentials,
        contact: &str,
        source: &str,
    ) -> Result<bool, ApiError> {
        let Some(mut current) = self.one(credentials, contact).await? else {
            return Err(ApiError::NotFound(contact.to_owned()));
        };
        let email = pb::Channel::Email as i32;
        let withdrawn = pb::ConsentStatus::Withdrawn as i32;
        if current
            .consents
            .iter()
            .any(|c| c.channel == email && c.status == withdrawn)
        {
            return Ok(false);
        }
        current.consents.retain(|c| c.channel != email);
        current.consents.push(pb::Consent {
            channel: email,
            status: withdrawn,
            update_time: None,
            source: source.to_owned(),
        });
        let update = UpdateContactRequest {
            contact: Some(pb::Contact {
                name: current.name.clone(),
                etag: current.etag.clone(),
                consents: current.consents,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["consents".into()],
            }),
        };
        self.client()
            .update_contact(credentials.request(update))
            .await
            .map(|_| true)
            .map_err(|status| match status.code() {
                Code::Aborted => ApiError::Aborted(status.message().to_owned()),
                _ => upstream_error("contacts", status),
            })
    }
}

/// What a journey step changes on a contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactChange {
    /// Tags to add.
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
    /// A lifecycle stage's name ("CUSTOMER"); empty leaves it.
    pub lifecycle_stage: String,
    /// Custom fields merged into the contact's.
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// A contact as the sender needs it; `company` is its company's name.
fn profile(c: pb::Contact, company: String) -> SendProfile {
    let email = c
        .emails
        .iter()
        .find(|e| e.primary)
        .or_else(|| c.emails.first())
        .map(|e| e.address.trim().to_lowercase())
        .filter(|a| !a.is_empty());
    let withdrawn = c.consents.iter().any(|consent| {
        consent.channel == pb::Channel::Email as i32
            && consent.status == pb::ConsentStatus::Withdrawn as i32
    });
    let lifecycle = pb::LifecycleStage::try_from(c.lifecycle_stage)
        .ok()
        .filter(|s| *s != pb::LifecycleStage::Unspecified)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("LIFECYCLE_STAGE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    SendProfile {
        at_send: ContactAtSend {
            email: email.clone(),
            email_consent_withdrawn: withdrawn,
            gone: c.delete_time.is_some() || !c.merged_into.is_empty(),
        },
        recipient: Recipient {
            given_name: c.given_name,
            family_name: c.family_name,
            display_name: c.display_name,
            email: email.unwrap_or_default(),
            job_title: c.job_title,
            lifecycle_stage: lifecycle,
            company,
            custom: c
                .custom_fields
                .as_ref()
                .map(crm_shared::convert::struct_to_json)
                .unwrap_or_default(),
        },
    }
}
