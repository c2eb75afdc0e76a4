//! Fairness at the edge: the service identity stays inside, one tenant cannot
//! hold every call or stream, streams end at a ceiling, bad tokens from one
//! address are refused before they are verified, and errors name nothing inside.

use std::{sync::atomic::Ordering, time::Duration};

use crm_proto::events::{
    StreamEventsRequest, StreamEventsResponse, event_feed_service_client::EventFeedServiceClient,
};
use crm_testkit::{Backend, OTHER_TENANT, SERVICE};
use tonic::{Code, Status, Streaming};

use crate::support::*;

const SLEEP: &str = "/crm.test.v1.Probe/Sleep";
const COUNT: &str = "/crm.test.v1.Probe/Count";

async fn probe_gateway(
    configure: impl FnOnce(&mut crm_gateway::config::Section),
) -> (Probe, GatewayProcess) {
    let probe = Probe::start().await;
    let mut section = gateway_settings();
    upstream(&mut section, "probe", "crm.test.v1", &[probe.addr]);
    configure(&mut section);
    let gateway = GatewayProcess::start(section).await;
    (probe, gateway)
}

/// Opens a following event feed through the gateway.
async fn follow(
    gateway: &GatewayProcess,
    tenant: &str,
) -> Result<Streaming<StreamEventsResponse>, Status> {
    let mut feed = EventFeedServiceClient::with_interceptor(
        gateway.channel(),
        bearer_token(&token(tenant, ADMIN)),
    );
    feed.stream_events(StreamEventsRequest {
        follow: true,
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn the_service_identity_is_refused_at_the_edge() {
    let (probe, gateway) = probe_gateway(|_| {}).await;
    // The gateway does not hold the service key, so it cannot even verify a
    // service identity; one signed with the users' key is refused anywhere.
    let minted = crm_shared::auth::sign_hs256(
        crm_testkit::SECRET,
        TENANT,
        "eve",
        SERVICE,
        Duration::from_secs(60),
    )
    .expect("a token");
    for presented in [token(TENANT, SERVICE), minted] {
        let status = call_probe(gateway.channel(), COUNT, Some(&presented), 1, None)
            .await
            .expect_err("a service token from outside");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    assert_eq!(
        probe.seen.calls.load(Ordering::SeqCst),
        0,
        "nothing reached the service"
    );
}

#[tokio::test]
async fn one_tenant_cannot_hold_every_call() {
    let (probe, gateway) =
        probe_gateway(|section| section.max_calls_in_flight_per_tenant = 2).await;
    let acme = token(TENANT, ADMIN);
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let (channel, acme) = (gateway.channel(), acme.clone());
            tokio::spawn(async move { call_probe(channel, SLEEP, Some(&acme), 1, None).await })
        })
        .collect();
    eventually("both calls are in flight", async || {
        probe.seen.calls.load(Ordering::SeqCst) == 2
    })
    .await;

    let refused = call_probe(gateway.channel(), COUNT, Some(&acme), 1, None)
        .await
        .expect_err("a third call of the same tenant");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(retry_delay(&refused).is_some(), "says when to come back");
    call_probe(
        gateway.channel(),
        COUNT,
        Some(&token(OTHER_TENANT, ADMIN)),
        1,
        None,
    )
    .await
    .expect("another tenant is not held up");

    for sleeper in &sleepers {
        sleeper.abort();
    }
    eventually("the tenant's calls are given back", async || {
        call_probe(gateway.channel(), COUNT, Some(&acme), 1, None)
            .await
            .is_ok()
    })
    .await;
}

#[tokio::test]
async fn one_tenant_cannot_hold_every_stream_and_streams_end_at_a_ceiling() {
    let mut section = gateway_settings();
    section.max_streams_per_tenant = 1;
    section.max_stream_seconds = 2;
    let Some((_contacts, gateway)) = suite(Backend::Sqlite, section).await else {
        return;
    };
    let mut open = follow(&gateway, TENANT).await.expect("the first stream");
    let refused = follow(&gateway, TENANT)
        .await
        .expect_err("a second stream of the same tenant");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(retry_delay(&refused).is_some());
    let _other = follow(&gateway, OTHER_TENANT)
        .await
        .expect("another tenant's stream");

    // A follower without a deadline of its own still ends at the ceiling.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match open.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return Code::Ok,
                Err(status) => return status.code(),
            }
        }
    })
    .await
    .expect("the stream ends within the ceiling");
    assert_eq!(ended, Code::DeadlineExceeded);
    eventually("the ended stream's place is given back", async || {
        follow(&gateway, TENANT).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn bad_tokens_from_one_address_are_refused_before_verification() {
    let (probe, gateway) = probe_gateway(|section| {
        section.failed_auth_rate = 0.01;
        section.failed_auth_burst = 3.0;
    })
    .await;
    for _ in 0..3 {
        let status = call_probe(gateway.channel(), COUNT, Some("not-a-token"), 1, None)
            .await
            .expect_err("a bad token");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    for presented in ["not-a-token", token(TENANT, ADMIN).as_str()] {
        let status = call_probe(gateway.channel(), COUNT, Some(presented), 1, None)
            .await
            .expect_err("the address is over its budget of failures");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(retry_delay(&status).is_some());
    }
    assert_eq!(probe.seen.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn errors_name_nothing_inside() {
    let (mut probe, gateway) = probe_gateway(|_| {}).await;
    let port = probe.addr.port().to_string();
    probe.stop();
    let status = call_probe(
        gateway.channel(),
        COUNT,
        Some(&token(TENANT, ADMIN)),
        1,
        None,
    )
    .await
    .expect_err("the only replica is gone");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        !status.message().contains(&port) && !status.message().contains("127.0.0.1"),
        "{status:?}"
    );
}
