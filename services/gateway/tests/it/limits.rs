//! Limits: per-tenant rate, message size, calls in flight, deadlines.

use std::{sync::atomic::Ordering, time::Duration};

use crm_proto::contacts::{Contact, CreateContactRequest, ListContactsRequest};
use crm_testkit::Backend;
use tonic::Code;

use crate::support::*;

const SLEEP: &str = "/crm.test.v1.Probe/Sleep";

#[tokio::test]
async fn a_tenant_over_its_rate_is_told_when_to_come_back() {
    let mut section = gateway_settings();
    section.rate_per_tenant = 0.5;
    section.burst_per_tenant = 3.0;
    let Some((_contacts, gateway)) = suite(Backend::Sqlite, section).await else {
        return;
    };
    let mut acme = gateway.contacts(&token(TENANT, ADMIN));
    for call in 0..3 {
        acme.list_contacts(ListContactsRequest::default())
            .await
            .unwrap_or_else(|e| panic!("call {call} is within the burst: {e:?}"));
    }
    let limited = acme
        .list_contacts(ListContactsRequest::default())
        .await
        .expect_err("the fourth call is over the limit");
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    let delay = retry_delay(&limited).expect("RetryInfo says when to come back");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(2),
        "{delay:?}"
    );

    let mut globex = gateway.contacts(&token(OTHER_TENANT, ADMIN));
    globex
        .list_contacts(ListContactsRequest::default())
        .await
        .expect("another tenant has its own bucket");
}

#[tokio::test]
async fn an_oversize_message_is_refused_and_nothing_is_written() {
    let mut section = gateway_settings();
    section.max_message_bytes = 16 * 1024;
    let Some((_contacts, gateway)) = suite(Backend::Sqlite, section).await else {
        return;
    };
    let mut client = gateway.contacts(&token(TENANT, ADMIN));
    let contact = Contact {
        given_name: "Big".into(),
        display_name: "x".repeat(20 * 1024),
        ..Default::default()
    };
    let refused = client
        .create_contact(CreateContactRequest {
            contact: Some(contact),
            request_id: String::new(),
        })
        .await
        .expect_err("a 20 KiB message over a 16 KiB limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("16384"), "{}", refused.message());

    let listed = client
        .list_contacts(ListContactsRequest::default())
        .await
        .expect("the gateway still serves")
        .into_inner();
    assert!(listed.contacts.is_empty(), "nothing was written");

    client
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                given_name: "Small".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("a message within the limit passes");
}

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

#[tokio::test]
async fn a_deadline_shorter_than_the_call_ends_it_and_the_upstream_sees_the_cancellation() {
    let (probe, gateway) = probe_gateway(|_| {}).await;
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        call_probe(
            gateway.channel(),
            SLEEP,
            Some(&token(TENANT, ADMIN)),
            1,
            Some(Duration::from_millis(300)),
        ),
    )
    .await
    .expect("the call ends long before the upstream would answer");
    let status = outcome.expect_err("the 30 s call cannot finish in 300 ms");
    // tonic's client keeps its own timer too and reports it as CANCELLED;
    // whichever side ends it first, the call is over at the deadline.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );

    let headers = probe
        .seen
        .headers
        .lock()
        .unwrap()
        .clone()
        .expect("the call arrived");
    let passed_on = headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .expect("the deadline is passed on")
        .to_owned();
    assert!(
        passed_on.ends_with('u') || passed_on.ends_with('m') || passed_on.ends_with('n'),
        "{passed_on}"
    );
    eventually("the upstream sees the cancellation", async || {
        probe.seen.cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn a_call_its_client_cancels_is_counted_and_logged_as_cancelled() {
    let (probe, gateway) = probe_gateway(|_| {}).await;
    let token = token(TENANT, ADMIN);
    for _ in 0..3 {
        let call = call_probe(gateway.channel(), SLEEP, Some(&token), 1, None);
        // The client gives up: its stream is reset while the upstream works.
        let gave_up = tokio::time::timeout(Duration::from_millis(300), call).await;
        assert!(gave_up.is_err(), "the probe sleeps for 30 s");
    }
    eventually("the upstream sees the cancellations", async || {
        probe.seen.cancelled.load(Ordering::SeqCst) == 3
    })
    .await;
    let mut text = String::new();
    eventually("the gateway counts them", async || {
        text = gateway.metrics().await;
        text.contains(r#"crm_gateway_calls_total{method="unknown",code="CANCELLED"} 3"#)
    })
    .await;
    // Request bytes moved before the cancel are counted too: one empty message.
    assert!(
        text.contains(r#"crm_gateway_request_bytes_total{method="unknown",code="CANCELLED"} 15"#),
        "{text}"
    );
    assert!(
        text.contains(r#"crm_gateway_ejections_total{upstream="probe"} 0"#),
        "a cancelled call is not the replica's failure: {text}"
    );
}

#[tokio::test]
async fn a_deadline_beyond_the_ceiling_is_cut_to_it() {
    let (probe, gateway) = probe_gateway(|section| section.max_deadline_seconds = 1).await;
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        call_probe(
            gateway.channel(),
            SLEEP,
            Some(&token(TENANT, ADMIN)),
            1,
            Some(Duration::from_secs(3600)),
        ),
    )
    .await
    .expect("the ceiling ends the call")
    .expect_err("a 30 s call under a 1 s ceiling");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let headers = probe
        .seen
        .headers
        .lock()
        .unwrap()
        .clone()
        .expect("the call arrived");
    let passed_on = headers
        .get("grpc-timeout")
        .expect("a deadline is passed on");
    let passed_on = crm_gateway_timeout(passed_on.to_str().unwrap());
    assert!(passed_on <= Duration::from_secs(1), "{passed_on:?}");
    eventually("the upstream sees the cancellation", async || {
        probe.seen.cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
}

/// Reads a `grpc-timeout` value (the test's own reading, not the gateway's).
fn crm_gateway_timeout(value: &str) -> Duration {
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().expect("digits");
    match unit {
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        other => panic!("unexpected unit {other}"),
    }
}

#[tokio::test]
async fn calls_beyond_the_in_flight_limit_are_shed() {
    let (probe, gateway) = probe_gateway(|section| section.max_calls_in_flight = 1).await;
    let token = token(TENANT, ADMIN);
    let channel = gateway.channel();
    let held_token = token.clone();
    let held = tokio::spawn(async move {
        call_probe(
            channel,
            SLEEP,
            Some(&held_token),
            1,
            Some(Duration::from_secs(5)),
        )
        .await
    });
    eventually("the first call is in flight", async || {
        probe.seen.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    let shed = call_probe(
        gateway.channel(),
        "/crm.test.v1.Probe/Count",
        Some(&token),
        1,
        None,
    )
    .await
    .expect_err("a second call while one is in flight");
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    assert!(retry_delay(&shed).is_some(), "RetryInfo is set");
    held.abort();
    eventually(
        "the slot is free again once the first call ends",
        async || {
            call_probe(
                gateway.channel(),
                "/crm.test.v1.Probe/Count",
                Some(&token),
                1,
                None,
            )
            .await
            .is_ok()
        },
    )
    .await;
}
