//! The marketing harness: contacts and marketing as real processes on free
//! ports, each over its own throwaway database of the same backend, and a
//! real SMTP server the campaigns send to.

#![allow(dead_code)]

use crm_proto::{
    contacts::{
        Channel as ConsentChannel, Consent, ConsentStatus, Contact, CreateContactRequest,
        EmailAddress, contacts_service_client::ContactsServiceClient,
    },
    marketing::marketing_service_client::MarketingServiceClient,
};
use crm_shared::{auth::Role, config::Settings};
pub use crm_testkit::{smtp::LocalSmtp, *};

pub type Marketing = MarketingServiceClient<Authed>;
pub type Contacts = ContactsServiceClient<Authed>;

/// A marketer's roles.
pub const MARKETER: &[Role] = &[Role::Marketing];

/// Contacts and marketing over databases of one backend, and an SMTP server.
/// (Fields drop in order: the services stop before their databases go.)
pub struct Suite {
    pub marketing: ServiceProcess,
    contacts: ServiceProcess,
    pub smtp: LocalSmtp,
    pub contacts_db: TestDatabase,
    pub marketing_db: TestDatabase,
}

impl Suite {
    /// Starts them all; `None` when the backend or aiosmtpd is not available here.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, LocalSmtp::start()?).await
    }

    /// Starts contacts and marketing sending to `smtp`.
    pub async fn start_with(backend: Backend, smtp: LocalSmtp) -> Option<Self> {
        let contacts_db = TestDatabase::create(backend).await?;
        let marketing_db = TestDatabase::create(backend).await?;
        let contacts = ServiceProcess::start(
            service(crm_contacts::build),
            settings("contacts", &contacts_db.url),
        )
        .await;
        let mut marketing_settings: Settings = settings("marketing", &marketing_db.url);
        marketing_settings
            .peers
            .insert("contacts".into(), format!("http://{}", contacts.addr));
        for (key, value) in [
            ("smtp_url", smtp.url()),
            // The sender looks often and settles a stopped send at once, so
            // a test sees its work soon.
            ("send_check_millis", "100".into()),
            ("sending_grace_seconds", "1".into()),
            (
                "unsubscribe_base_url",
                "https://acme.example/unsubscribe".into(),
            ),
        ] {
            marketing_settings.options.insert(key.into(), value);
        }
        let marketing =
            ServiceProcess::start(service(crm_marketing::build), marketing_settings).await;
        Some(Self {
            contacts_db,
            marketing_db,
            smtp,
            contacts,
            marketing,
        })
    }

    /// A marketing client for `tenant` with `roles`.
    pub fn marketing(&self, tenant: &str, roles: &[Role]) -> Marketing {
        MarketingServiceClient::with_interceptor(
            channel_to(self.marketing.addr),
            bearer_for(tenant, roles),
        )
    }

    /// A marketing client with no token (a mail reader's click).
    pub fn anonymous(&self) -> Marketing {
        MarketingServiceClient::with_interceptor(channel_to(self.marketing.addr), bearer(None))
    }

    /// A contacts client for `tenant` with `roles`.
    pub fn contacts(&self, tenant: &str, roles: &[Role]) -> Contacts {
        ContactsServiceClient::with_interceptor(
            channel_to(self.contacts.addr),
            bearer_for(tenant, roles),
        )
    }

    /// Creates a contact in [`TENANT`] with `email`, `tags` and, when
    /// `withdrawn`, email consent withdrawn; its name.
    pub async fn contact(
        &self,
        given_name: &str,
        email: &str,
        tags: &[&str],
        withdrawn: bool,
    ) -> String {
        let consents = if withdrawn {
            vec![Consent {
                channel: ConsentChannel::Email as i32,
                status: ConsentStatus::Withdrawn as i32,
                update_time: None,
                source: "test".into(),
            }]
        } else {
            Vec::new()
        };
        self.contacts(TENANT, ADMIN)
            .create_contact(CreateContactRequest {
                contact: Some(Contact {
                    given_name: given_name.into(),
                    family_name: "Tester".into(),
                    emails: vec![EmailAddress {
                        address: email.into(),
                        label: "work".into(),
                        primary: true,
                    }],
                    tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                    consents,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateContact")
            .into_inner()
            .name
    }

    /// Every event in marketing's feed, oldest first.
    pub async fn marketing_events(&self) -> Vec<crm_proto::events::Event> {
        all_events(self.marketing.addr).await
    }
}

/// The value of `header` in a raw message (folded lines joined), if present.
pub fn header(message: &str, header: &str) -> Option<String> {
    let mut unfolded: Vec<String> = Vec::new();
    for line in message.lines().take_while(|line| !line.trim().is_empty()) {
        match unfolded.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line.trim_start()),
            _ => unfolded.push(line.to_owned()),
        }
    }
    let prefix = format!("{}:", header.to_lowercase());
    unfolded
        .into_iter()
        .find(|line| line.to_lowercase().starts_with(&prefix))
        .map(|line| line[prefix.len()..].trim().to_owned())
}
