//! The authorization matrix: every RPC of every service, found in the
//! compiled descriptors (so a new RPC is in it by construction), called
//! through the gateway with every kind of bad token and as every role, and
//! directly as the service identity. The expected answer for each role comes
//! from the services' role rules, the one place roles are decided; an RPC
//! without a rule fails the test. The rules are printed into the README, and
//! the test fails when the README's table is not what the code says.

use std::collections::BTreeMap;

use crm_shared::{
    auth::{Audience, Claims, Role, RoleRules, allowed_roles, is_public},
    config::AuthSettings,
};
use crm_testkit::{
    Backend, OTHER_TENANT, SECRET, SERVICE_SECRET, ServiceProcess, TestDatabase, raw::call_raw,
    service,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use prost::Message;
use tonic::{Code, Request, transport::Channel};

use crate::support::*;

const ISSUER: &str = "https://idp.crm.test";
const AUDIENCE: &str = "crm";
/// Every role a user can have, and the service identity.
const ROLES: [Role; 7] = [
    Role::Admin,
    Role::Manager,
    Role::Sales,
    Role::Marketing,
    Role::Support,
    Role::Viewer,
    Role::Service,
];

/// The gRPC services of the suite with their role rules, and where each runs.
fn rules() -> Vec<(&'static str, RoleRules)> {
    vec![
        ("crm.contacts.v1.ContactsService", crm_contacts::ROLE_RULES),
        ("crm.sales.v1.SalesService", crm_sales::ROLE_RULES),
        ("crm.support.v1.SupportService", crm_support::ROLE_RULES),
        (
            "crm.marketing.v1.MarketingService",
            crm_marketing::ROLE_RULES,
        ),
        (
            "crm.reporting.v1.ReportingService",
            crm_reporting::ROLE_RULES,
        ),
        (
            "crm.events.v1.EventFeedService",
            crm_shared::outbox::FEED_ROLES,
        ),
        (
            "crm.events.v1.ConsumerAdminService",
            crm_shared::consumer::admin::ROLES,
        ),
        ("crm.audit.v1.AuditLogService", crm_shared::audit::ROLES),
        (
            "crm.gateway.v1.GatewayAdminService",
            crm_gateway::ADMIN_ROLE_RULES,
        ),
    ]
}

/// Every method of every service in the compiled descriptors.
fn methods() -> Vec<(String, String)> {
    let set = prost_types::FileDescriptorSet::decode(crm_proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set");
    let mut methods = Vec::new();
    for file in set.file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            for method in &service.method {
                methods.push((full.clone(), method.name().to_owned()));
            }
        }
    }
    methods
}

fn claims(role: Role) -> Claims {
    let now = jsonwebtoken::get_current_timestamp();
    Claims {
        sub: "matrix".into(),
        tenant: TENANT.into(),
        roles: vec![role],
        exp: now + 600,
        iat: now,
        iss: Some(ISSUER.into()),
        nbf: None,
        aud: Some(Audience::One(AUDIENCE.into())),
    }
}

fn sign(claims: &Claims, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("a token")
}

/// Tokens that must all be refused, by what is wrong with them.
fn bad_tokens() -> Vec<(&'static str, Option<String>)> {
    let now = jsonwebtoken::get_current_timestamp();
    let good = claims(Role::Admin);
    let none_alg = {
        use base64::Engine;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64(&serde_json::to_vec(&good).expect("claims"));
        format!("{header}.{body}.")
    };
    vec![
        ("no token", None),
        (
            "expired",
            Some(sign(
                &Claims {
                    exp: now - 3600,
                    iat: now - 7200,
                    ..good.clone()
                },
                SECRET,
            )),
        ),
        (
            "not yet valid",
            Some(sign(
                &Claims {
                    nbf: Some(now + 3600),
                    ..good.clone()
                },
                SECRET,
            )),
        ),
        ("wrong signature", Some(sign(&good, "not-the-secret"))),
        (
            "wrong issuer",
            Some(sign(
                &Claims {
                    iss: Some("https://evil.example".into()),
                    ..good.clone()
                },
                SECRET,
            )),
        ),
        (
            "wrong audience",
            Some(sign(
                &Claims {
                    aud: Some(Audience::One("other".into())),
                    ..good.clone()
                },
                SECRET,
            )),
        ),
        ("alg none", Some(none_alg)),
    ]
}

/// Calls `path` with one empty request message (valid for any request type)
/// and answers the status code, reading past the first response.
async fn call(channel: Channel, path: &str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    if grpc.ready().await.is_err() {
        return Code::Unavailable;
    }
    let mut request = Request::new(tokio_stream::iter(vec![()]));
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
    }
    // Responses of any type decode as `()`: their fields are skipped.
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::try_from(path).expect("a path");
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        grpc.streaming(request, path, codec),
    )
    .await;
    match answer {
        Err(_) => Code::DeadlineExceeded,
        Ok(Err(status)) => status.code(),
        Ok(Ok(response)) => {
            let mut stream = response.into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(())) => continue,
                    Ok(None) => return Code::Ok,
                    Err(status) => return status.code(),
                }
            }
        }
    }
}

/// What a call by a holder of `role` may answer when the rules allow it:
/// anything the empty request deserves, never a refusal or a failure.
fn admitted(code: Code) -> bool {
    !matches!(
        code,
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::Unimplemented
            | Code::Internal
            | Code::Unknown
            | Code::Unavailable
            | Code::DeadlineExceeded
    )
}

/// The rules as the README's table.
fn readme_table() -> String {
    let mut out = String::from("| service | method | roles |\n|---|---|---|\n");
    for (service, rules) in rules() {
        for (method, roles) in rules {
            let roles: Vec<String> = roles
                .iter()
                .map(|role| format!("`{}`", format!("{role:?}").to_lowercase()))
                .collect();
            let roles = if is_public(&format!("/{service}/{method}")) {
                "anyone, no token (the request carries its own proof)".to_owned()
            } else {
                roles.join(" ")
            };
            out.push_str(&format!("| {service} | {method} | {roles} |\n"));
        }
    }
    out
}

/// Contacts, sales and support (holding the service key) behind a gateway
/// (not holding it) that checks issuer and audience; the databases live as
/// long as the processes.
struct Matrix {
    _databases: (
        TestDatabase,
        TestDatabase,
        TestDatabase,
        TestDatabase,
        TestDatabase,
    ),
    contacts: ServiceProcess,
    sales: ServiceProcess,
    support: ServiceProcess,
    marketing: ServiceProcess,
    reporting: ServiceProcess,
    gateway: GatewayProcess,
}

impl Matrix {
    async fn start() -> Option<Self> {
        // The services hold the service key; the gateway does not.
        let gateway_auth = AuthSettings {
            hs256_secret: Some(SECRET.into()),
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
            ..Default::default()
        };
        let auth = AuthSettings {
            service_secret: Some(SERVICE_SECRET.into()),
            ..gateway_auth.clone()
        };
        let (
            Some(contacts_db),
            Some(sales_db),
            Some(support_db),
            Some(marketing_db),
            Some(reporting_db),
        ) = (
            TestDatabase::create(Backend::Sqlite).await,
            TestDatabase::create(Backend::Sqlite).await,
            TestDatabase::create(Backend::Sqlite).await,
            TestDatabase::create(Backend::Sqlite).await,
            TestDatabase::create(Backend::Sqlite).await,
        )
        else {
            return None;
        };
        let mut contacts_settings = crm_testkit::settings("contacts", &contacts_db.url);
        contacts_settings.auth = auth.clone();
        let contacts = ServiceProcess::start(service(crm_contacts::build), contacts_settings).await;
        let mut sales_settings = crm_testkit::settings("sales", &sales_db.url);
        sales_settings.auth = auth.clone();
        sales_settings
            .peers
            .insert("contacts".into(), format!("http://{}", contacts.addr));
        sales_settings.service_token = None;
        let sales = ServiceProcess::start(service(crm_sales::build), sales_settings).await;
        let mut support_settings = crm_testkit::settings("support", &support_db.url);
        support_settings.auth = auth.clone();
        support_settings
            .peers
            .insert("contacts".into(), format!("http://{}", contacts.addr));
        support_settings.service_token = None;
        let support = ServiceProcess::start(service(crm_support::build), support_settings).await;
        let mut marketing_settings = crm_testkit::settings("marketing", &marketing_db.url);
        marketing_settings.auth = auth.clone();
        for (peer, addr) in [
            ("contacts", contacts.addr),
            ("sales", sales.addr),
            ("support", support.addr),
        ] {
            marketing_settings
                .peers
                .insert(peer.into(), format!("http://{addr}"));
        }
        let mail = std::env::temp_dir().join(format!("crm-matrix-mail-{}", uuid::Uuid::now_v7()));
        marketing_settings
            .options
            .insert("mail_dir".into(), mail.display().to_string());
        // Two suites may run at once: the tracking listener on a port of its own.
        marketing_settings
            .options
            .insert("tracking_addr".into(), crm_testkit::free_port().to_string());
        let marketing =
            ServiceProcess::start(service(crm_marketing::build), marketing_settings).await;
        let mut reporting_settings = crm_testkit::settings("reporting", &reporting_db.url);
        reporting_settings.auth = auth.clone();
        for (peer, addr) in [
            ("contacts", contacts.addr),
            ("sales", sales.addr),
            ("support", support.addr),
            ("marketing", marketing.addr),
        ] {
            reporting_settings
                .peers
                .insert(peer.into(), format!("http://{addr}"));
        }
        let reporting =
            ServiceProcess::start(service(crm_reporting::build), reporting_settings).await;

        let mut section = gateway_settings();
        section.failed_auth_burst = 1_000_000.0;
        section.failed_auth_rate = 1_000_000.0;
        upstream(
            &mut section,
            "contacts",
            "crm.contacts.v1",
            &[contacts.addr],
        );
        // The packages every service serves go to sales alone, so they need
        // no x-crm-upstream.
        upstream(
            &mut section,
            "sales",
            "crm.sales.v1,crm.events.v1,crm.audit.v1",
            &[sales.addr],
        );
        upstream(&mut section, "support", "crm.support.v1", &[support.addr]);
        upstream(
            &mut section,
            "marketing",
            "crm.marketing.v1",
            &[marketing.addr],
        );
        upstream(
            &mut section,
            "reporting",
            "crm.reporting.v1",
            &[reporting.addr],
        );
        let gateway = GatewayProcess::start_with_auth(section, gateway_auth).await;
        gateway
            .wait_until_serving("crm.contacts.v1.ContactsService")
            .await;
        gateway
            .wait_until_serving("crm.sales.v1.SalesService")
            .await;
        gateway
            .wait_until_serving("crm.support.v1.SupportService")
            .await;
        gateway
            .wait_until_serving("crm.marketing.v1.MarketingService")
            .await;
        gateway
            .wait_until_serving("crm.reporting.v1.ReportingService")
            .await;

        Some(Self {
            _databases: (
                contacts_db,
                sales_db,
                support_db,
                marketing_db,
                reporting_db,
            ),
            contacts,
            sales,
            support,
            marketing,
            reporting,
            gateway,
        })
    }
}

#[tokio::test]
async fn every_rpc_answers_every_caller_as_the_role_rules_say() {
    // Bound whole: the processes and databases live until the test ends.
    let Some(matrix) = Matrix::start().await else {
        return;
    };
    let Matrix {
        contacts,
        sales,
        support,
        marketing,
        reporting,
        gateway,
        ..
    } = &matrix;
    let rules: BTreeMap<&str, RoleRules> = rules().into_iter().collect();
    let bad_tokens = bad_tokens();
    let role_tokens: Vec<(Role, String)> = ROLES
        .iter()
        .map(|role| {
            let key = if *role == Role::Service {
                SERVICE_SECRET
            } else {
                SECRET
            };
            (*role, sign(&claims(*role), key))
        })
        .collect();
    let mut unexpected = Vec::new();
    let mut checked = 0;
    let all = methods();
    for (service_name, method) in &all {
        let Some(service_rules) = rules.get(service_name.as_str()) else {
            unexpected.push(format!("{service_name}: a service with no role rules"));
            continue;
        };
        let Some(allowed) = allowed_roles(service_rules, method) else {
            unexpected.push(format!("{service_name}/{method}: no role rule"));
            continue;
        };
        let path = format!("/{service_name}/{method}");
        // The event feed and consumer administration: sales runs both.
        // The gateway's own service has no "directly": the calls through
        // the gateway are the calls to the service.
        let direct = match service_name.as_str() {
            "crm.contacts.v1.ContactsService" => Some(contacts.channel()),
            "crm.support.v1.SupportService" => Some(support.channel()),
            "crm.marketing.v1.MarketingService" => Some(marketing.channel()),
            "crm.reporting.v1.ReportingService" => Some(reporting.channel()),
            "crm.gateway.v1.GatewayAdminService" => None,
            _ => Some(sales.channel()),
        };
        let through_gateway = |token: Option<String>| {
            let (channel, path) = (gateway.channel(), path.clone());
            async move { call(channel, &path, token.as_deref()).await }
        };
        let service_token = &role_tokens
            .iter()
            .find(|(r, _)| *r == Role::Service)
            .expect("service")
            .1;
        if is_public(&path) {
            // Anyone may call it, with any token or none: the request carries
            // its own proof. The empty request's is missing, so the service
            // answers, and answers every caller alike.
            if !allowed.is_empty() {
                unexpected.push(format!("{path}: public, but its rule is not Role::PUBLIC"));
            }
            let mut answers = Vec::new();
            for (what, token) in &bad_tokens {
                answers.push((format!("with {what}"), through_gateway(token.clone()).await));
            }
            for (role, token) in &role_tokens {
                let code = through_gateway(Some(token.clone())).await;
                answers.push((format!("as {role:?} through the gateway"), code));
            }
            if let Some(direct) = direct {
                let code = call(direct, &path, Some(service_token)).await;
                answers.push(("as Service directly".into(), code));
            }
            checked += answers.len();
            let (_, anonymous) = answers[0];
            if !(anonymous == Code::PermissionDenied || admitted(anonymous)) {
                unexpected.push(format!("{path} with no token: {anonymous:?}"));
            }
            for (who, code) in &answers {
                if *code != anonymous {
                    unexpected.push(format!(
                        "{path} {who}: {code:?}, not {anonymous:?} as with no token"
                    ));
                }
            }
            continue;
        }
        for (what, token) in &bad_tokens {
            let code = through_gateway(token.clone()).await;
            checked += 1;
            if code != Code::Unauthenticated {
                unexpected.push(format!("{path} with {what}: {code:?}, not Unauthenticated"));
            }
        }
        for (role, token) in &role_tokens {
            let code = through_gateway(Some(token.clone())).await;
            checked += 1;
            // The gateway cannot verify a service identity: it has no service key.
            let fine = if *role == Role::Service {
                code == Code::Unauthenticated
            } else if allowed.contains(role) {
                admitted(code)
            } else {
                code == Code::PermissionDenied
            };
            if !fine {
                unexpected.push(format!("{path} as {role:?} through the gateway: {code:?}"));
            }
        }
        // The service identity, refused at the edge, directly at the service.
        let Some(direct) = direct else { continue };
        let code = call(direct, &path, Some(service_token)).await;
        checked += 1;
        let fine = if allowed.contains(&Role::Service) {
            admitted(code)
        } else {
            code == Code::PermissionDenied
        };
        if !fine {
            unexpected.push(format!("{path} as Service directly: {code:?}"));
        }
    }
    println!(
        "authorization matrix: {} RPCs, {checked} calls, {} unexpected answers",
        all.len(),
        unexpected.len()
    );
    assert!(
        unexpected.is_empty(),
        "unexpected answers:\n{}",
        unexpected.join("\n")
    );

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("the README");
    let table = readme_table();
    assert!(
        readme.contains(&table),
        "README.md's role table is not what the code says; it should read:\n\n{table}"
    );
    let count_line = format!("The matrix covers {} RPCs", all.len());
    assert!(
        readme.contains(&count_line),
        "README.md should say: {count_line}"
    );
}

/// A request whose only field is the resource name (field 1, as in every
/// Get and Delete request of the suite).
#[derive(Clone, PartialEq, prost::Message)]
struct NameOnly {
    #[prost(string, tag = "1")]
    name: String,
}

/// The status code of a raw call's answer.
fn code_of<T>(answer: &Result<T, tonic::Status>) -> Code {
    answer
        .as_ref()
        .map_or_else(|status| status.code(), |_| Code::Ok)
}

/// An Update request: the resource (field 1, as the owner read it) and the
/// mask `*` (field 2), in every Update request of the suite.
#[derive(Clone, PartialEq, prost::Message)]
struct UpdateAll {
    #[prost(bytes = "vec", tag = "1")]
    resource: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    update_mask: Option<prost_types::FieldMask>,
}

/// The resource kind a standard method is about: "Contact" for GetContact,
/// UpdateContact, DeleteContact and UndeleteContact.
fn noun_of(method: &str) -> Option<&str> {
    ["Undelete", "Update", "Delete", "Get"]
        .iter()
        .find_map(|verb| method.strip_prefix(verb))
}

/// Every Get, Update, Delete, Undelete and List of every resource kind,
/// found in the descriptors, tried by another tenant's admin on a real
/// resource: NOT_FOUND, never its data; a list never shows it; and none of
/// the stranger's writes changed anything.
#[tokio::test]
async fn another_tenants_resources_are_not_found_by_any_standard_method() {
    use crm_proto::{
        common::Money, contacts as c, marketing as m, reporting as r, sales as s, support as t,
    };
    let Some(matrix) = Matrix::start().await else {
        return;
    };
    let gateway = &matrix.gateway;
    let owner = sign(&claims(Role::Admin), SECRET);
    let stranger = sign(
        &Claims {
            tenant: OTHER_TENANT.into(),
            ..claims(Role::Admin)
        },
        SECRET,
    );
    let bearer = |token: &str| {
        let value: tonic::metadata::MetadataValue<_> =
            format!("Bearer {token}").parse().expect("ascii");
        move |mut request: Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
            Ok(request)
        }
    };
    let mut contacts = c::contacts_service_client::ContactsServiceClient::with_interceptor(
        gateway.channel(),
        bearer(&owner),
    );
    let mut sales = s::sales_service_client::SalesServiceClient::with_interceptor(
        gateway.channel(),
        bearer(&owner),
    );
    let mut support = t::support_service_client::SupportServiceClient::with_interceptor(
        gateway.channel(),
        bearer(&owner),
    );
    let euros = || {
        Some(Money {
            currency_code: "EUR".into(),
            units: 10,
            nanos: 0,
        })
    };
    let contact = contacts
        .create_contact(c::CreateContactRequest {
            contact: Some(c::Contact {
                given_name: "Ada".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateContact")
        .into_inner()
        .name;
    let mut names: BTreeMap<&str, String> = BTreeMap::new();
    names.insert("Contact", contact.clone());
    names.insert(
        "Company",
        contacts
            .create_company(c::CreateCompanyRequest {
                company: Some(c::Company {
                    display_name: "Engines".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateCompany")
            .into_inner()
            .name,
    );
    names.insert(
        "Activity",
        contacts
            .create_activity(c::CreateActivityRequest {
                activity: Some(c::Activity {
                    kind: c::ActivityKind::Note as i32,
                    subject: "Met".into(),
                    contact: contact.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateActivity")
            .into_inner()
            .name,
    );
    names.insert(
        "Lead",
        sales
            .create_lead(s::CreateLeadRequest {
                lead: Some(s::Lead {
                    given_name: "Grace".into(),
                    family_name: "Hopper".into(),
                    email: "grace@navy.example".into(),
                    source: s::LeadSource::WebForm as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateLead")
            .into_inner()
            .name,
    );
    names.insert(
        "Opportunity",
        sales
            .create_opportunity(s::CreateOpportunityRequest {
                opportunity: Some(s::Opportunity {
                    display_name: "Deal".into(),
                    amount: euros(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateOpportunity")
            .into_inner()
            .name,
    );
    names.insert(
        "Pipeline",
        sales
            .list_pipelines(s::ListPipelinesRequest::default())
            .await
            .expect("ListPipelines")
            .into_inner()
            .pipelines
            .remove(0)
            .name,
    );
    names.insert(
        "Product",
        sales
            .create_product(s::CreateProductRequest {
                product: Some(s::Product {
                    sku: "ENG-1".into(),
                    display_name: "Engine".into(),
                    unit_price: euros(),
                    active: true,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateProduct")
            .into_inner()
            .name,
    );
    names.insert(
        "Task",
        sales
            .create_task(s::CreateTaskRequest {
                task: Some(s::Task {
                    title: "Call".into(),
                    contact: contact.clone(),
                    due_time: Some(prost_types::Timestamp {
                        seconds: 4_102_444_800, // 2100-01-01
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateTask")
            .into_inner()
            .name,
    );
    names.insert(
        "AssignmentRule",
        sales
            .create_assignment_rule(s::CreateAssignmentRuleRequest {
                assignment_rule: Some(s::AssignmentRule {
                    display_name: "All".into(),
                    filter: "country = \"DE\"".into(),
                    strategy: s::AssignmentStrategy::RoundRobin as i32,
                    members: vec!["ann".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateAssignmentRule")
            .into_inner()
            .name,
    );
    names.insert(
        "ScoringRule",
        sales
            .create_scoring_rule(s::CreateScoringRuleRequest {
                scoring_rule: Some(s::ScoringRule {
                    display_name: "Big".into(),
                    filter: "employee_count >= 500".into(),
                    points: 10,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateScoringRule")
            .into_inner()
            .name,
    );
    names.insert(
        "Agent",
        support
            .update_agent(t::UpdateAgentRequest {
                agent: Some(t::Agent {
                    name: "agents/ann".into(),
                    display_name: "Ann".into(),
                    available: true,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["*".into()],
                }),
                allow_missing: true,
            })
            .await
            .expect("UpdateAgent")
            .into_inner()
            .name,
    );
    let queue = support
        .create_queue(t::CreateQueueRequest {
            queue: Some(t::Queue {
                display_name: "Tier 1".into(),
                members: vec!["ann".into()],
                strategy: t::AssignmentStrategy::RoundRobin as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateQueue")
        .into_inner()
        .name;
    names.insert("Queue", queue.clone());
    names.insert(
        "RoutingRule",
        support
            .create_routing_rule(t::CreateRoutingRuleRequest {
                routing_rule: Some(t::RoutingRule {
                    display_name: "All".into(),
                    queue,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateRoutingRule")
            .into_inner()
            .name,
    );
    let calendar = support
        .create_business_calendar(t::CreateBusinessCalendarRequest {
            business_calendar: Some(t::BusinessCalendar {
                display_name: "Berlin office".into(),
                time_zone: "Europe/Berlin".into(),
                weekly_hours: (1..=5)
                    .map(|day_of_week| t::BusinessHours {
                        day_of_week,
                        open_time: "09:00".into(),
                        close_time: "17:00".into(),
                    })
                    .collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateBusinessCalendar")
        .into_inner()
        .name;
    names.insert("BusinessCalendar", calendar.clone());
    names.insert(
        "SlaPolicy",
        support
            .create_sla_policy(t::CreateSlaPolicyRequest {
                sla_policy: Some(t::SlaPolicy {
                    display_name: "Standard".into(),
                    first_response_minutes: 60,
                    calendar,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateSlaPolicy")
            .into_inner()
            .name,
    );
    let ticket = support
        .create_ticket(t::CreateTicketRequest {
            ticket: Some(t::Ticket {
                subject: "The engine stalls".into(),
                requester: contact.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTicket")
        .into_inner();
    // Solved, so it has a satisfaction survey.
    let ticket = support
        .update_ticket(t::UpdateTicketRequest {
            ticket: Some(t::Ticket {
                status: t::TicketStatus::Solved as i32,
                ..ticket
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
        })
        .await
        .expect("UpdateTicket to SOLVED")
        .into_inner()
        .name;
    names.insert("SatisfactionSurvey", format!("{ticket}/satisfaction"));
    names.insert("Ticket", ticket);
    names.insert(
        "Article",
        support
            .create_article(t::CreateArticleRequest {
                article: Some(t::Article {
                    title: "When the engine stalls".into(),
                    body: "Check the fuel first.".into(),
                    locale: "en".into(),
                    state: t::ArticleState::Published as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateArticle")
            .into_inner()
            .name,
    );
    names.insert(
        "Chat",
        support
            .start_chat(t::StartChatRequest {
                chat: Some(t::Chat {
                    subject: "The engine stalls".into(),
                    requester: contact.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("StartChat")
            .into_inner()
            .chat
            .expect("a chat")
            .name,
    );
    let mut marketing = m::marketing_service_client::MarketingServiceClient::with_interceptor(
        gateway.channel(),
        bearer(&owner),
    );
    let segment = marketing
        .create_segment(m::CreateSegmentRequest {
            segment: Some(m::Segment {
                display_name: "Everyone".into(),
                filter: r#"given_name = "Ada""#.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateSegment")
        .into_inner()
        .name;
    let mailing_list = marketing
        .create_mailing_list(m::CreateMailingListRequest {
            mailing_list: Some(m::MailingList {
                display_name: "Newsletter".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateMailingList")
        .into_inner()
        .name;
    let template = marketing
        .create_template(m::CreateTemplateRequest {
            template: Some(m::Template {
                display_name: "Hello".into(),
                subject: "Hello {{ contact.given_name }}".into(),
                text_body: "Hi".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTemplate")
        .into_inner()
        .name;
    let campaign = marketing
        .create_campaign(m::CreateCampaignRequest {
            campaign: Some(m::Campaign {
                display_name: "Launch".into(),
                template: template.clone(),
                from_address: "news@acme.example".into(),
                audience: Some(m::Audience {
                    segments: vec![segment.clone()],
                    mailing_lists: vec![mailing_list.clone()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateCampaign")
        .into_inner()
        .name;
    let journey = marketing
        .create_journey(m::CreateJourneyRequest {
            journey: Some(m::Journey {
                display_name: "Welcome".into(),
                steps: vec![m::JourneyStep {
                    id: "hello".into(),
                    next: String::new(),
                    action: Some(m::journey_step::Action::SendEmail(m::SendEmailAction {
                        template: template.clone(),
                        from_address: "news@acme.example".into(),
                        ..Default::default()
                    })),
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateJourney")
        .into_inner()
        .name;
    marketing
        .activate_journey(m::ActivateJourneyRequest {
            name: journey.clone(),
        })
        .await
        .expect("ActivateJourney");
    let enrollment = marketing
        .enroll_contact(m::EnrollContactRequest {
            journey: journey.clone(),
            contact: names["Contact"].clone(),
            request_id: String::new(),
        })
        .await
        .expect("EnrollContact")
        .into_inner()
        .name;
    names.insert("Enrollment", enrollment);
    let mut reporting = r::reporting_service_client::ReportingServiceClient::with_interceptor(
        gateway.channel(),
        bearer(&owner),
    );
    let report = reporting
        .create_report(r::CreateReportRequest {
            report: Some(r::Report {
                display_name: "Pipeline this quarter".into(),
                kpis: vec!["sales.win_rate".into()],
                relative_period: r::RelativePeriod::ThisQuarter as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateReport")
        .into_inner()
        .name;
    names.insert("Report", report);
    names.insert("Segment", segment);
    names.insert("MailingList", mailing_list);
    names.insert("Template", template);
    names.insert("Campaign", campaign);
    names.insert("Journey", journey);

    let mut checked = 0;
    let mut lists_checked = Vec::new();
    let mut unexpected = Vec::new();
    let channel = || gateway.channel();
    let by_name = |name: &str| NameOnly { name: name.into() }.encode_to_vec();
    for (service_name, method) in methods() {
        let path = format!("/{service_name}/{method}");
        if method.starts_with("List") {
            // A list the owner sees their resources in never shows them to
            // the stranger; lists that need more than an empty request (a
            // timeline needs its contact) are covered by the Gets.
            let Ok(owners) = call_raw(channel(), &path, &owner, vec![]).await else {
                continue;
            };
            let shown = |bytes: &[u8]| -> Vec<String> {
                let text = String::from_utf8_lossy(bytes);
                names
                    .values()
                    .filter(|n| text.contains(n.as_str()))
                    .cloned()
                    .collect()
            };
            if shown(&owners).is_empty() {
                continue;
            }
            checked += 1;
            lists_checked.push(method.clone());
            match call_raw(channel(), &path, &stranger, vec![]).await {
                Ok(bytes) if shown(&bytes).is_empty() => {}
                Ok(bytes) => unexpected.push(format!(
                    "{path} by another tenant shows {:?}",
                    shown(&bytes)
                )),
                Err(status) => unexpected.push(format!("{path} by another tenant: {status:?}")),
            }
            continue;
        }
        let noun = match noun_of(&method) {
            // A forecast, a satisfaction report and reporting's views are
            // computed, not resources someone owns (reporting's own suite
            // checks its tenant isolation).
            Some(
                "Forecast" | "SatisfactionReport" | "CustomerView" | "ErasureStatus"
                | "ReadModelStatus",
            )
            | None => continue,
            Some(noun) => noun,
        };
        let Some(name) = names.get(noun) else {
            unexpected.push(format!("{method}: no {noun} to try it on"));
            continue;
        };
        let body = if method.starts_with("Update") {
            let get = format!("/{service_name}/Get{noun}");
            let resource = call_raw(channel(), &get, &owner, by_name(name))
                .await
                .expect("the owner reads the resource");
            UpdateAll {
                resource,
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["*".into()],
                }),
            }
            .encode_to_vec()
        } else {
            by_name(name)
        };
        let code = code_of(&call_raw(channel(), &path, &stranger, body.clone()).await);
        checked += 1;
        if code != Code::NotFound {
            unexpected.push(format!("{path} of another tenant's {name}: {code:?}"));
        }
        if method.starts_with("Update") {
            // The same request from the owner succeeds: only the tenant differed.
            let code = code_of(&call_raw(channel(), &path, &owner, body).await);
            if code != Code::Ok {
                unexpected.push(format!("{path} by the owner of {name}: {code:?}"));
            }
        }
    }
    // Nothing was deleted by the stranger's calls.
    for (noun, name) in &names {
        let method = format!("Get{noun}");
        if let Some((service_name, _)) = methods().into_iter().find(|(_, m)| *m == method) {
            let path = format!("/{service_name}/{method}");
            let code = code_of(&call_raw(channel(), &path, &owner, by_name(name)).await);
            if code != Code::Ok {
                unexpected.push(format!(
                    "{method} by its owner after the stranger's calls: {code:?}"
                ));
            }
        }
    }
    // Every list of a resource made above was tried (none skipped as empty).
    for list in [
        "ListContacts",
        "ListCompanies",
        "ListActivities",
        "ListLeads",
        "ListOpportunities",
        "ListPipelines",
        "ListProducts",
        "ListTasks",
        "ListAssignmentRules",
        "ListScoringRules",
        "ListTickets",
        "ListQueues",
        "ListAgents",
        "ListRoutingRules",
        "ListBusinessCalendars",
        "ListSlaPolicies",
        "ListArticles",
        "ListChats",
        "ListSegments",
        "ListMailingLists",
        "ListTemplates",
        "ListCampaigns",
        "ListReports",
        "ListAuditEntries",
    ] {
        if !lists_checked.iter().any(|m| m == list) {
            unexpected.push(format!("{list} was not tried across tenants"));
        }
    }
    println!("cross-tenant: {checked} calls on another tenant's resources and lists");
    assert!(
        unexpected.is_empty(),
        "unexpected answers:\n{}",
        unexpected.join("\n")
    );
}
