//! `crmctl health`: is the suite serving, and which versions run where.
//!
//! Health needs no token: the gateway answers for itself and for every
//! service behind it. With an admin token the gateway also lists each
//! upstream's replicas, their state and the version each reported.

use anyhow::Context;
use crm_proto::gateway::{
    ListUpstreamsRequest, ReplicaState, Upstream,
    gateway_admin_service_client::GatewayAdminServiceClient,
};
use serde_json::json;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::{Output, connect::Target, exit::ExitCode, table};

/// The gateway admin service: the gateway's own, not a service behind it.
const GATEWAY_ADMIN: &str = "crm.gateway.v1.GatewayAdminService";

/// One service's health through the gateway.
struct ServiceHealth {
    name: String,
    status: ServingStatus,
}

pub async fn run(target: &Target, output: Output) -> anyhow::Result<ExitCode> {
    let channel = target.channel().await?;
    let mut health = HealthClient::new(channel.clone());
    let answer = health
        .check(target.unary(HealthCheckRequest::default()))
        .await
        .context("the gateway's health check")?;
    let gateway_version = answer
        .metadata()
        .get(crm_shared::server::VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let gateway_status = answer.into_inner().status();
    let (upstreams, note) = upstreams(target).await?;
    // Every upstream serves the shared packages (events, audit): check each name once.
    let mut services: Vec<String> = match &upstreams {
        Some(upstreams) => upstreams
            .iter()
            .flat_map(|u| u.services.iter().cloned())
            .collect(),
        None => reflected_services(channel).await?,
    };
    services.sort();
    services.dedup();
    let mut checked = Vec::new();
    for name in services {
        let request = HealthCheckRequest {
            service: name.clone(),
        };
        let status = match health.check(target.unary(request)).await {
            Ok(answer) => answer.into_inner().status(),
            // In the protos but routed nowhere: not part of this deployment.
            Err(status) if status.code() == Code::NotFound => continue,
            Err(status) => return Err(status).context(format!("health of {name}")),
        };
        checked.push(ServiceHealth { name, status });
    }
    let all_serving = gateway_status == ServingStatus::Serving
        && checked.iter().all(|s| s.status == ServingStatus::Serving);
    match output {
        Output::Json => print_json(
            target,
            gateway_status,
            &gateway_version,
            &checked,
            upstreams.as_deref(),
        ),
        Output::Text => print_text(
            target,
            gateway_status,
            &gateway_version,
            &checked,
            upstreams.as_deref(),
        ),
    }
    if let Some(note) = note {
        eprintln!("{note}");
    }
    Ok(if all_serving {
        ExitCode::Done
    } else {
        ExitCode::Partly
    })
}

/// The gateway's upstreams when the token may see them, else a note why not.
async fn upstreams(target: &Target) -> anyhow::Result<(Option<Vec<Upstream>>, Option<String>)> {
    if !target.has_token() {
        return Ok((
            None,
            Some("(replicas and versions need an admin token)".into()),
        ));
    }
    let mut admin = GatewayAdminServiceClient::new(target.authorized().await?);
    match admin
        .list_upstreams(target.unary(ListUpstreamsRequest {}))
        .await
    {
        Ok(answer) => Ok((Some(answer.into_inner().upstreams), None)),
        Err(status) if status.code() == Code::PermissionDenied => Ok((
            None,
            Some("(replicas and versions need the admin role)".into()),
        )),
        Err(status) => Err(status).context("listing the gateway's upstreams"),
    }
}

/// The suite's services as the gateway's reflection lists them.
async fn reflected_services(channel: Channel) -> anyhow::Result<Vec<String>> {
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::once(request))
        .await
        .context("listing services by reflection")?
        .into_inner();
    let mut services = Vec::new();
    while let Some(answer) = answers.message().await? {
        if let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response {
            services.extend(
                list.service
                    .into_iter()
                    .map(|s| s.name)
                    .filter(|name| name.starts_with("crm.") && name != GATEWAY_ADMIN),
            );
        }
    }
    services.sort();
    Ok(services)
}

fn status_name(status: ServingStatus) -> &'static str {
    match status {
        ServingStatus::Serving => "SERVING",
        ServingStatus::NotServing => "NOT_SERVING",
        ServingStatus::ServiceUnknown => "UNKNOWN",
        ServingStatus::Unknown => "UNKNOWN",
    }
}

fn replica_state_name(state: i32) -> &'static str {
    match ReplicaState::try_from(state).unwrap_or(ReplicaState::Unspecified) {
        ReplicaState::Serving => "SERVING",
        ReplicaState::Ejected => "EJECTED",
        ReplicaState::Down => "DOWN",
        ReplicaState::Unspecified => "UNKNOWN",
    }
}

fn print_text(
    target: &Target,
    gateway: ServingStatus,
    version: &str,
    services: &[ServiceHealth],
    upstreams: Option<&[Upstream]>,
) {
    let mut rows = vec![
        vec![
            "WHAT".into(),
            "STATUS".into(),
            "VERSION".into(),
            "WHERE".into(),
        ],
        vec![
            "gateway".into(),
            status_name(gateway).into(),
            version.into(),
            target.gateway.clone(),
        ],
    ];
    for service in services {
        rows.push(vec![
            service.name.clone(),
            status_name(service.status).into(),
            String::new(),
            String::new(),
        ]);
    }
    for upstream in upstreams.unwrap_or_default() {
        for replica in &upstream.replicas {
            rows.push(vec![
                format!("{} replica", upstream.name),
                replica_state_name(replica.state).into(),
                replica.version.clone(),
                replica.address.clone(),
            ]);
        }
    }
    table::print(&rows);
}

fn print_json(
    target: &Target,
    gateway: ServingStatus,
    version: &str,
    services: &[ServiceHealth],
    upstreams: Option<&[Upstream]>,
) {
    let services: Vec<_> = services
        .iter()
        .map(|s| json!({"service": s.name, "status": status_name(s.status)}))
        .collect();
    let mut report = json!({
        "gateway": {"address": target.gateway, "status": status_name(gateway), "version": version},
        "services": services,
    });
    if let Some(upstreams) = upstreams {
        report["upstreams"] = upstreams.iter().map(crm_proto::json::to_json).collect();
    }
    println!("{report}");
}
