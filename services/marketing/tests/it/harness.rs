//! The marketing harness: contacts, sales and marketing (and support, for
//! the tests that need it) as real processes on free ports, each over its
//! own throwaway database of the same backend, and a real SMTP server the
//! campaigns send to.

#![allow(dead_code)]

use crm_proto::{
    contacts::{
        Channel as ConsentChannel, Consent, ConsentStatus, Contact, CreateContactRequest,
        EmailAddress, contacts_service_client::ContactsServiceClient,
    },
    events::{
        ListParkedEventsRequest, ParkedEvent,
        consumer_admin_service_client::ConsumerAdminServiceClient,
    },
    marketing::marketing_service_client::MarketingServiceClient,
    sales::sales_service_client::SalesServiceClient,
    support::support_service_client::SupportServiceClient,
};
use crm_shared::{auth::Role, config::Settings};
pub use crm_testkit::{smtp::LocalSmtp, *};

pub type Marketing = MarketingServiceClient<Authed>;
pub type Contacts = ContactsServiceClient<Authed>;
pub type Sales = SalesServiceClient<Authed>;
pub type Support = SupportServiceClient<Authed>;
pub type ConsumerAdmin = ConsumerAdminServiceClient<Authed>;

/// A marketer's roles.
pub const MARKETER: &[Role] = &[Role::Marketing];
/// A support agent's roles.
pub const AGENT: &[Role] = &[Role::Support];

/// Contacts, sales and marketing over databases of one backend, support
/// when asked for ([`Suite::start_with_support`]), and an SMTP server.
/// (Fields drop in order: the services stop before their databases go.)
pub struct Suite {
    pub marketing: ServiceProcess,
    /// Support, which marketing follows; only when started with it.
    support: Option<ServiceProcess>,
    sales: ServiceProcess,
    contacts: ServiceProcess,
    pub smtp: LocalSmtp,
    /// The tracking listener (opens, clicks, the unsubscribe page).
    pub tracking: std::net::SocketAddr,
    pub contacts_db: TestDatabase,
    pub sales_db: TestDatabase,
    pub marketing_db: TestDatabase,
    pub support_db: Option<TestDatabase>,
}

impl Suite {
    /// Starts them all; `None` when the backend or aiosmtpd is not available here.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, LocalSmtp::start()?).await
    }

    /// Starts contacts and marketing sending to `smtp`.
    pub async fn start_with(backend: Backend, smtp: LocalSmtp) -> Option<Self> {
        Self::launch(backend, smtp, false).await
    }

    /// Starts them all and support too, whose feed marketing follows
    /// (a solved ticket enrols its requester in journeys).
    pub async fn start_with_support(backend: Backend) -> Option<Self> {
        Self::launch(backend, LocalSmtp::start()?, true).await
    }

    async fn launch(backend: Backend, smtp: LocalSmtp, with_support: bool) -> Option<Self> {
        let contacts_db = TestDatabase::create(backend).await?;
        let sales_db = TestDatabase::create(backend).await?;
        let marketing_db = TestDatabase::create(backend).await?;
        let support_db = if with_support {
            Some(TestDatabase::create(backend).await?)
        } else {
            None
        };
        let contacts = ServiceProcess::start(
            service(crm_contacts::build),
            settings("contacts", &contacts_db.url),
        )
        .await;
        let contacts_url = format!("http://{}", contacts.addr);
        let mut sales_settings: Settings = settings("sales", &sales_db.url);
        sales_settings
            .peers
            .insert("contacts".into(), contacts_url.clone());
        let sales = ServiceProcess::start(service(crm_sales::build), sales_settings).await;
        let support = match &support_db {
            Some(db) => {
                let mut support_settings: Settings = settings("support", &db.url);
                support_settings
                    .peers
                    .insert("contacts".into(), contacts_url.clone());
                Some(ServiceProcess::start(service(crm_support::build), support_settings).await)
            }
            None => None,
        };
        let tracking = free_port();
        let mut marketing_settings: Settings = settings("marketing", &marketing_db.url);
        marketing_settings
            .peers
            .insert("contacts".into(), contacts_url);
        marketing_settings
            .peers
            .insert("sales".into(), format!("http://{}", sales.addr));
        if let Some(support) = &support {
            marketing_settings
                .peers
                .insert("support".into(), format!("http://{}", support.addr));
        }
        for (key, value) in [
            ("smtp_url", smtp.url()),
            // The sender looks often, so a test sees its work soon. A send
            // still going after the grace is settled as perhaps delivered,
            // even by its own process: long enough for a slow SMTP exchange
            // on a loaded 2-core machine, short enough for the
            // killed-sender test to finish.
            ("send_check_millis", "100".into()),
            ("sending_grace_seconds", "10".into()),
            ("tracking_addr", tracking.to_string()),
            // Journeys look at their steps and segments often, for the same reason.
            ("journey_check_millis", "100".into()),
            ("segment_check_seconds", "1".into()),
        ] {
            marketing_settings.options.insert(key.into(), value);
        }
        let marketing =
            ServiceProcess::start(service(crm_marketing::build), marketing_settings).await;
        Some(Self {
            contacts_db,
            sales_db,
            marketing_db,
            support_db,
            sales,
            support,
            smtp,
            tracking,
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

    /// A sales client for `tenant` with `roles`.
    pub fn sales(&self, tenant: &str, roles: &[Role]) -> Sales {
        SalesServiceClient::with_interceptor(channel_to(self.sales.addr), bearer_for(tenant, roles))
    }

    /// A support client for `tenant` with `roles`; the suite must have been
    /// started with support ([`Suite::start_with_support`]).
    pub fn support(&self, tenant: &str, roles: &[Role]) -> Support {
        let support = self
            .support
            .as_ref()
            .expect("support runs: start the suite with Suite::start_with_support");
        SupportServiceClient::with_interceptor(channel_to(support.addr), bearer_for(tenant, roles))
    }

    /// A client of marketing's consumer administration for `tenant` with `roles`.
    pub fn consumer_admin(&self, tenant: &str, roles: &[Role]) -> ConsumerAdmin {
        ConsumerAdminServiceClient::with_interceptor(
            channel_to(self.marketing.addr),
            bearer_for(tenant, roles),
        )
    }

    /// The events marketing parked from `source`'s feed ("support",
    /// "sales", "contacts"), as an admin of [`TENANT`] sees them.
    pub async fn parked(&self, source: &str) -> Vec<ParkedEvent> {
        self.consumer_admin(TENANT, ADMIN)
            .list_parked_events(ListParkedEventsRequest {
                parent: format!("consumers/{source}"),
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .must("ListParkedEvents")
            .parked_events
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

/// An HTTP/1.1 response: status, headers (lower-case names), body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request to `url` (`http://host:port/path?query`), as a
/// mail client or browser would, and reads the whole response.
pub async fn http(method: &str, url: &str, body: &str) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("the tracking listener");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("a request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("a response");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The HTML body of a raw message, decoded.
pub fn html_of(message: &str) -> String {
    mail_parser::MessageParser::default()
        .parse(message.as_bytes())
        .and_then(|m| m.body_html(0).map(|b| b.into_owned()))
        .expect("an HTML body")
}

/// The values of `attribute="..."` in `html`, in order, `&amp;` decoded.
pub fn attributes(html: &str, attribute: &str) -> Vec<String> {
    let needle = format!("{attribute}=\"");
    html.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest.find('"')
                .map(|end| crm_marketing::domain::tracking::decode_entities(&rest[..end]))
        })
        .collect()
}

/// The From header's name and address, decoded.
pub fn sender_of(message: &str) -> (String, String) {
    let parsed = mail_parser::MessageParser::default()
        .parse(message.as_bytes())
        .expect("a message");
    let from = parsed.from().and_then(|f| f.first()).expect("a From");
    (
        from.name().unwrap_or_default().to_owned(),
        from.address().unwrap_or_default().to_owned(),
    )
}
