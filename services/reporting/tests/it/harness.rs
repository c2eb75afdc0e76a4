//! The reporting harness: contacts, sales, support, marketing and reporting
//! as real processes on free ports, each over its own throwaway database of
//! the same backend, wired to each other as in production. Marketing has no
//! SMTP relay: it writes each message into a folder as an `.eml` file, which
//! the tests read like a mail client would.

#![allow(dead_code)]

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

use chrono::{NaiveDate, Utc};
use crm_proto::{
    common::Money,
    contacts::{
        Channel as ConsentChannel, Company, Consent, ConsentStatus, Contact, CreateCompanyRequest,
        CreateContactRequest, EmailAddress, LifecycleStage,
        contacts_service_client::ContactsServiceClient,
    },
    marketing::{
        AddListMembersRequest, Audience, Campaign, CampaignState, CreateCampaignRequest,
        CreateMailingListRequest, CreateTemplateRequest, GetCampaignRequest, MailingList,
        ScheduleCampaignRequest, Template, marketing_service_client::MarketingServiceClient,
    },
    reporting::{
        self as pb, GetCustomerViewRequest, GetReadModelStatusRequest, QueryKpisRequest,
        reporting_service_client::ReportingServiceClient,
    },
    sales::{
        ConvertLeadRequest, ConvertLeadResponse, CreateLeadRequest, CreateOpportunityRequest,
        GetPipelineRequest, Lead, LeadSource, Opportunity, UpdateOpportunityRequest,
        sales_service_client::SalesServiceClient,
    },
    support::{
        Comment, CreateCommentRequest, CreateTicketRequest, GetSatisfactionSurveyRequest,
        GetTicketRequest, SubmitSatisfactionRatingRequest, Ticket, TicketChannel, TicketPriority,
        TicketStatus, UpdateTicketRequest, support_service_client::SupportServiceClient,
    },
};
use crm_shared::{auth::Role, config::Settings};
pub use crm_testkit::*;
use prost_types::FieldMask;

pub type Reporting = ReportingServiceClient<Authed>;
pub type Contacts = ContactsServiceClient<Authed>;
pub type Sales = SalesServiceClient<Authed>;
pub type Support = SupportServiceClient<Authed>;
pub type Marketing = MarketingServiceClient<Authed>;

/// A marketer's roles.
pub const MARKETER: &[Role] = &[Role::Marketing];
/// A support agent's roles.
pub const AGENT: &[Role] = &[Role::Support];

/// A folder that exists for one test (marketing's outbox of `.eml` files).
pub struct MailDir(pub PathBuf);

impl MailDir {
    fn create() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let folder = std::env::temp_dir().join(format!(
            "crm-reporting-mail-{}-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&folder).expect("a mail folder");
        Self(folder)
    }
}

impl Drop for MailDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The five services over databases of one backend. (Fields drop in order:
/// the services stop before their databases go.)
pub struct Suite {
    pub reporting: ServiceProcess,
    pub marketing: ServiceProcess,
    pub support: ServiceProcess,
    pub sales: ServiceProcess,
    pub contacts: ServiceProcess,
    /// Marketing's tracking listener (opens, clicks, unsubscribes).
    pub tracking: SocketAddr,
    /// Where marketing writes the messages it sends.
    pub mail: MailDir,
    pub reporting_db: TestDatabase,
    pub marketing_db: TestDatabase,
    pub support_db: TestDatabase,
    pub sales_db: TestDatabase,
    pub contacts_db: TestDatabase,
}

impl Suite {
    /// Starts them all; `None` when the backend is not available here.
    pub async fn start(backend: Backend) -> Option<Self> {
        let contacts_db = TestDatabase::create(backend).await?;
        let sales_db = TestDatabase::create(backend).await?;
        let support_db = TestDatabase::create(backend).await?;
        let marketing_db = TestDatabase::create(backend).await?;
        let reporting_db = TestDatabase::create(backend).await?;
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
        let sales_url = format!("http://{}", sales.addr);

        let mut support_settings: Settings = settings("support", &support_db.url);
        support_settings
            .peers
            .insert("contacts".into(), contacts_url.clone());
        support_settings
            .options
            .insert("sla_check_millis".into(), "200".into());
        let support = ServiceProcess::start(service(crm_support::build), support_settings).await;
        let support_url = format!("http://{}", support.addr);

        let mail = MailDir::create();
        let tracking = free_port();
        let mut marketing_settings: Settings = settings("marketing", &marketing_db.url);
        for (peer, url) in [
            ("contacts", &contacts_url),
            ("sales", &sales_url),
            ("support", &support_url),
        ] {
            marketing_settings.peers.insert(peer.into(), url.clone());
        }
        for (key, value) in [
            ("mail_dir", mail.0.display().to_string()),
            ("tracking_addr", tracking.to_string()),
            ("send_check_millis", "100".into()),
            ("sending_grace_seconds", "1".into()),
            ("journey_check_millis", "100".into()),
        ] {
            marketing_settings.options.insert(key.into(), value);
        }
        let marketing =
            ServiceProcess::start(service(crm_marketing::build), marketing_settings).await;
        let marketing_url = format!("http://{}", marketing.addr);

        let mut reporting_settings: Settings = settings("reporting", &reporting_db.url);
        for (peer, url) in [
            ("contacts", &contacts_url),
            ("sales", &sales_url),
            ("support", &support_url),
            ("marketing", &marketing_url),
        ] {
            reporting_settings.peers.insert(peer.into(), url.clone());
        }
        reporting_settings
            .options
            .insert("rebuild_check_millis".into(), "200".into());
        let reporting =
            ServiceProcess::start(service(crm_reporting::build), reporting_settings).await;
        Some(Self {
            reporting,
            marketing,
            support,
            sales,
            contacts,
            tracking,
            mail,
            reporting_db,
            marketing_db,
            support_db,
            sales_db,
            contacts_db,
        })
    }

    /// A reporting client for `tenant` with `roles`.
    pub fn reporting(&self, tenant: &str, roles: &[Role]) -> Reporting {
        ReportingServiceClient::with_interceptor(
            channel_to(self.reporting.addr),
            bearer_for(tenant, roles),
        )
    }

    /// A contacts client for `tenant` with `roles`.
    pub fn contacts(&self, tenant: &str, roles: &[Role]) -> Contacts {
        ContactsServiceClient::with_interceptor(
            channel_to(self.contacts.addr),
            bearer_for(tenant, roles),
        )
    }

    /// A sales client for `tenant` with `roles`.
    pub fn sales(&self, tenant: &str, roles: &[Role]) -> Sales {
        SalesServiceClient::with_interceptor(channel_to(self.sales.addr), bearer_for(tenant, roles))
    }

    /// A support client for `tenant` with `roles`.
    pub fn support(&self, tenant: &str, roles: &[Role]) -> Support {
        SupportServiceClient::with_interceptor(
            channel_to(self.support.addr),
            bearer_for(tenant, roles),
        )
    }

    /// A support client without a token (a customer answering a survey).
    pub fn anonymous_support(&self) -> Support {
        SupportServiceClient::with_interceptor(channel_to(self.support.addr), bearer(None))
    }

    /// A marketing client for `tenant` with `roles`.
    pub fn marketing(&self, tenant: &str, roles: &[Role]) -> Marketing {
        MarketingServiceClient::with_interceptor(
            channel_to(self.marketing.addr),
            bearer_for(tenant, roles),
        )
    }

    /// Waits until reporting has applied every event its four feeds hold,
    /// and the feeds have been quiet for a moment: a change in one service
    /// makes others write events of their own (a merge in contacts has
    /// sales and support re-point their records), so what the services
    /// committed before this call, and what followed from it, is then in
    /// the read model.
    pub async fn settled(&self) {
        let mut seen = self.feed_ends().await;
        for _ in 0..20 {
            self.reached(&seen).await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let now = self.feed_ends().await;
            if now == seen {
                return;
            }
            seen = now;
        }
        panic!("the services' feeds did not come to rest");
    }

    /// The last event of each feed, of the types reporting follows.
    async fn feed_ends(&self) -> Vec<(&'static str, i64)> {
        let sources = [
            ("contacts", self.contacts.addr),
            ("sales", self.sales.addr),
            ("marketing", self.marketing.addr),
            ("support", self.support.addr),
        ];
        let mut last = Vec::new();
        for (source, addr) in sources {
            let wanted = followed(source);
            let sequence = all_events(addr)
                .await
                .iter()
                .filter(|e| wanted.contains(&e.r#type))
                .map(|e| e.sequence)
                .max()
                .unwrap_or(0);
            last.push((source, sequence));
        }
        last
    }

    /// Waits until reporting's position in each feed reaches `last`.
    async fn reached(&self, last: &[(&'static str, i64)]) {
        let mut reporting = self.reporting(TENANT, ADMIN);
        eventually_within(
            90,
            "reporting has applied every event of its feeds",
            async || {
                let Ok(status) = reporting
                    .get_read_model_status(GetReadModelStatusRequest {})
                    .await
                else {
                    return false;
                };
                let status = status.into_inner();
                last.iter().all(|(source, sequence)| {
                    status
                        .feeds
                        .iter()
                        .find(|f| f.source == *source)
                        .is_some_and(|f| f.position >= *sequence)
                })
            },
        )
        .await;
    }

    /// Every message marketing has written, raw.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.mail.0) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// The one message sent to `address` by the campaign named `display_name`.
    pub fn message_to(&self, address: &str, display_name: &str) -> String {
        let found: Vec<String> = self
            .messages()
            .into_iter()
            .filter(|m| header(m, "To").is_some_and(|to| to.to_lowercase().contains(address)))
            .filter(|m| text_of(m).contains(display_name))
            .collect();
        assert_eq!(found.len(), 1, "messages to {address} of {display_name}");
        found.into_iter().next().expect("a message")
    }

    /// Opens the message to `address` (its tracking image loads) and, with
    /// `click`, follows its tracked link, as the reader's mail client would.
    pub async fn engage(&self, address: &str, campaign: &str, click: bool) {
        let message = self.message_to(address, campaign);
        let html = html_of(&message);
        let tracking = format!("http://{}/", self.tracking);
        let pixel = attributes(&html, "src")
            .into_iter()
            .find(|src| src.starts_with(&format!("{tracking}o/")))
            .expect("the tracking image");
        assert_eq!(http("GET", &pixel, "").await.status, 200, "the image loads");
        if click {
            let link = attributes(&html, "href")
                .into_iter()
                .find(|href| href.starts_with(&format!("{tracking}c/")))
                .expect("a tracked link");
            assert_eq!(
                http("GET", &link, "").await.status,
                303,
                "the link redirects"
            );
        }
    }
}

/// The event types reporting follows from `source`, as its consumer asks for them.
pub fn followed(source: &str) -> BTreeSet<String> {
    crm_reporting::consumer::event_types(source)
        .into_iter()
        .collect()
}

// ---- money and days ----

/// An amount in whole units.
pub fn money(currency: &str, units: i64) -> Money {
    Money {
        currency_code: currency.into(),
        units,
        nanos: 0,
    }
}

/// Today, in UTC: the day every business time of a test falls on.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// "YYYY-MM-DD".
pub fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The period from `start` to `end`.
pub fn period(start: NaiveDate, end: NaiveDate) -> pb::Period {
    pb::Period {
        start_date: day(start),
        end_date: day(end),
    }
}

// ---- contacts ----

/// Creates a company; its name.
pub async fn company(contacts: &mut Contacts, display_name: &str) -> String {
    contacts
        .create_company(CreateCompanyRequest {
            company: Some(Company {
                display_name: display_name.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateCompany")
        .name
}

/// Creates a contact with `email`, at `company` (or none), with email
/// consent granted when `consent`; the contact.
pub async fn contact(
    contacts: &mut Contacts,
    given_name: &str,
    family_name: &str,
    email: &str,
    company: &str,
    consent: bool,
) -> Contact {
    let consents = if consent {
        vec![Consent {
            channel: ConsentChannel::Email as i32,
            status: ConsentStatus::Granted as i32,
            update_time: None,
            source: "web-form:newsletter".into(),
        }]
    } else {
        Vec::new()
    };
    contacts
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                given_name: given_name.into(),
                family_name: family_name.into(),
                emails: vec![EmailAddress {
                    address: email.into(),
                    label: "work".into(),
                    primary: true,
                }],
                company: company.into(),
                lifecycle_stage: LifecycleStage::Customer as i32,
                consents,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateContact")
}

// ---- sales ----

/// Creates a lead from `source`, naming `campaign` (or none).
pub async fn lead(sales: &mut Sales, given: &str, source: LeadSource, campaign: &str) -> Lead {
    sales
        .create_lead(CreateLeadRequest {
            lead: Some(Lead {
                given_name: given.into(),
                family_name: "Prospect".into(),
                email: format!("{}@prospects.example", given.to_lowercase()),
                company_name: format!("{given} Ltd"),
                source: source as i32,
                campaign: campaign.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateLead")
}

/// Converts `lead` into a contact, a company and a deal of `amount`.
pub async fn convert(sales: &mut Sales, lead: &Lead, amount: Money) -> ConvertLeadResponse {
    sales
        .convert_lead(ConvertLeadRequest {
            name: lead.name.clone(),
            create_opportunity: true,
            opportunity_display_name: format!("{} deal", lead.given_name),
            amount: Some(amount),
            pipeline: String::new(),
            expected_close_date: day(today() + chrono::Days::new(30)),
        })
        .await
        .must("ConvertLead")
}

/// The name of the stage labelled `label` in `deal`'s pipeline.
pub async fn stage(sales: &mut Sales, pipeline: &str, label: &str) -> String {
    sales
        .get_pipeline(GetPipelineRequest {
            name: pipeline.into(),
        })
        .await
        .must("GetPipeline")
        .stages
        .into_iter()
        .find(|s| s.display_name == label)
        .unwrap_or_else(|| panic!("no stage {label}"))
        .name
}

/// Creates a deal of `contact` at `company` in the default pipeline's first stage.
pub async fn deal(
    sales: &mut Sales,
    title: &str,
    contact: &str,
    company: &str,
    amount: Money,
) -> Opportunity {
    sales
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                display_name: title.into(),
                amount: Some(amount),
                contact: contact.into(),
                company: company.into(),
                expected_close_date: day(today() + chrono::Days::new(30)),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateOpportunity")
}

/// `deal` moved to the stage labelled `label`.
pub async fn move_to(sales: &mut Sales, deal: &Opportunity, label: &str) -> Opportunity {
    let stage = stage(sales, &deal.pipeline, label).await;
    sales
        .update_opportunity(UpdateOpportunityRequest {
            opportunity: Some(Opportunity {
                stage,
                ..deal.clone()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["stage".into()],
            }),
        })
        .await
        .must(&format!("moving {} to {label}", deal.display_name))
}

// ---- marketing ----

/// Sends a campaign named `display_name` costing `cost` to `contacts`
/// (through a mailing list); the campaign once sent.
pub async fn campaign_to(
    m: &mut Marketing,
    display_name: &str,
    contacts: &[&str],
    cost: Money,
) -> Campaign {
    let list = m
        .create_mailing_list(CreateMailingListRequest {
            mailing_list: Some(MailingList {
                display_name: format!("{display_name} list"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateMailingList")
        .name;
    m.add_list_members(AddListMembersRequest {
        mailing_list: list.clone(),
        contacts: contacts.iter().map(|c| (*c).to_owned()).collect(),
        emails: Vec::new(),
    })
    .await
    .must("AddListMembers");
    let template = m
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: format!("{display_name} template"),
                subject: r#"Hello {{ contact.given_name | default("there") }}"#.into(),
                html_body: r#"<p>Hi {{ contact.given_name | default("there") }}</p><a href="https://acme.example/offer">Our offer</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a>"#.into(),
                text_body: "Hi, {{ campaign.name }} is here.".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateTemplate")
        .name;
    let c = m
        .create_campaign(CreateCampaignRequest {
            campaign: Some(Campaign {
                display_name: display_name.into(),
                template,
                from_address: "news@acme.example".into(),
                from_name: "Acme".into(),
                audience: Some(Audience {
                    mailing_lists: vec![list],
                    ..Default::default()
                }),
                messages_per_second: 100,
                cost: Some(cost),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateCampaign");
    m.schedule_campaign(ScheduleCampaignRequest {
        name: c.name.clone(),
        send_time: None,
    })
    .await
    .must("ScheduleCampaign");
    let mut last = None;
    eventually_within(60, "the campaign is sent", async || {
        let now = m
            .get_campaign(GetCampaignRequest {
                name: c.name.clone(),
            })
            .await
            .must("GetCampaign");
        let done = now.state() == CampaignState::Sent;
        last = Some(now);
        done
    })
    .await;
    last.expect("a campaign")
}

// ---- support ----

/// Opens a ticket for `requester` through `channel` at `priority`.
pub async fn ticket(
    support: &mut Support,
    requester: &str,
    subject: &str,
    channel: TicketChannel,
    priority: TicketPriority,
) -> Ticket {
    support
        .create_ticket(CreateTicketRequest {
            ticket: Some(Ticket {
                subject: subject.into(),
                requester: requester.into(),
                channel: channel as i32,
                priority: priority as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateTicket")
}

/// An agent's public reply to `ticket`.
pub async fn reply(support: &mut Support, ticket: &str, body: &str) {
    support
        .create_comment(CreateCommentRequest {
            parent: ticket.into(),
            comment: Some(Comment {
                body: body.into(),
                public: true,
                ..Default::default()
            }),
            from_requester: false,
            request_id: String::new(),
        })
        .await
        .must("CreateComment");
}

/// `ticket` solved.
pub async fn solve(support: &mut Support, ticket: &str) -> Ticket {
    support
        .update_ticket(UpdateTicketRequest {
            ticket: Some(Ticket {
                name: ticket.into(),
                status: TicketStatus::Solved as i32,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["status".into()],
            }),
        })
        .await
        .must("solving a ticket")
}

/// The customer rates solved `ticket` with its survey's token alone.
pub async fn rate(suite: &Suite, support: &mut Support, ticket: &str, rating: i32) {
    let survey = support
        .get_satisfaction_survey(GetSatisfactionSurveyRequest {
            name: format!("{ticket}/satisfaction"),
        })
        .await
        .must("GetSatisfactionSurvey");
    suite
        .anonymous_support()
        .submit_satisfaction_rating(SubmitSatisfactionRatingRequest {
            token: survey.token,
            rating,
            comment: "Quick and kind".into(),
        })
        .await
        .must("SubmitSatisfactionRating");
}

/// A ticket as support has it now.
pub async fn get_ticket(support: &mut Support, name: &str) -> Ticket {
    support
        .get_ticket(GetTicketRequest { name: name.into() })
        .await
        .must("GetTicket")
}

// ---- reporting ----

/// QueryKpis of `kpis` over `period` cut by `granularity`.
pub async fn query(
    reporting: &mut Reporting,
    kpis: &[String],
    period: pb::Period,
    granularity: pb::Granularity,
) -> pb::QueryKpisResponse {
    reporting
        .query_kpis(QueryKpisRequest {
            kpis: kpis.to_vec(),
            period: Some(period),
            granularity: granularity as i32,
            filter: None,
        })
        .await
        .must("QueryKpis")
}

/// Every KPI reporting knows.
pub async fn definitions(reporting: &mut Reporting) -> Vec<pb::KpiDefinition> {
    reporting
        .list_kpi_definitions(pb::ListKpiDefinitionsRequest {})
        .await
        .must("ListKpiDefinitions")
        .kpis
}

/// The names of every KPI.
pub async fn all_kpis(reporting: &mut Reporting) -> Vec<String> {
    definitions(reporting)
        .await
        .into_iter()
        .map(|d| d.name)
        .collect()
}

/// One page of `contact`'s customer view.
pub async fn view_page(
    reporting: &mut Reporting,
    contact: &str,
    page_size: i32,
    page_token: &str,
    kinds: &[&str],
) -> Result<pb::CustomerView, tonic::Status> {
    reporting
        .get_customer_view(GetCustomerViewRequest {
            contact: contact.into(),
            page_size,
            page_token: page_token.into(),
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// `contact`'s customer view with its whole timeline on one page.
pub async fn view(reporting: &mut Reporting, contact: &str) -> pb::CustomerView {
    view_page(reporting, contact, 1000, "", &[])
        .await
        .unwrap_or_else(|s| panic!("GetCustomerView {contact}: {s:?}"))
}

/// `contact`'s timeline of `kinds`, read `page_size` at a time to its end.
pub async fn timeline(
    reporting: &mut Reporting,
    contact: &str,
    page_size: i32,
    kinds: &[&str],
) -> Vec<pb::TimelineEntry> {
    let mut entries = Vec::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let page = view_page(reporting, contact, page_size, &token, kinds)
            .await
            .unwrap_or_else(|s| panic!("GetCustomerView {contact} page: {s:?}"));
        assert!(
            page.timeline.len() <= page_size as usize,
            "a page holds at most page_size entries"
        );
        entries.extend(page.timeline);
        if page.next_page_token.is_empty() {
            return entries;
        }
        token = page.next_page_token;
    }
    panic!("the timeline of {contact} does not end");
}

// ---- messages ----

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

/// The text body of a raw message, decoded.
pub fn text_of(message: &str) -> String {
    mail_parser::MessageParser::default()
        .parse(message.as_bytes())
        .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
        .unwrap_or_default()
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

/// An HTTP/1.1 response's status and body.
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// Sends one HTTP/1.1 request to `url` (`http://host:port/path?query`), as
/// a mail client or browser would, and reads the whole response.
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
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    HttpResponse {
        status,
        body: body.to_owned(),
    }
}
