//! Rebuilding the read model replays every feed into a new generation that
//! replaces the old one: the answers are the same as before, and what
//! happens afterwards counts once.

use chrono::Days;
use crm_proto::{
    contacts::EraseContactRequest,
    reporting::{
        self as pb, GetErasureStatusRequest, GetReadModelStatusRequest, RebuildReadModelRequest,
    },
    sales::LeadSource,
    support::{TicketChannel, TicketPriority},
};
use tonic::Code;

use crate::{harness::*, history::*};

/// Every answer reporting gives about the history.
#[derive(Debug, Clone, PartialEq)]
struct Answers {
    today: Vec<pb::KpiResult>,
    three_days: Vec<pb::KpiResult>,
    views: Vec<pb::CustomerView>,
    erasure: pb::ErasureStatus,
}

async fn answers(suite: &Suite, contacts: &[&str], erased: &str) -> Answers {
    let mut reporting = suite.reporting(TENANT, ADMIN);
    let kpis = all_kpis(&mut reporting).await;
    let daily = query(
        &mut reporting,
        &kpis,
        period(today(), today()),
        pb::Granularity::Unspecified,
    )
    .await;
    let start = today() - Days::new(2);
    let three_days = query(
        &mut reporting,
        &kpis,
        period(start, today()),
        pb::Granularity::Day,
    )
    .await;
    let mut views = Vec::new();
    for contact in contacts {
        views.push(view(&mut reporting, contact).await);
    }
    let erasure = reporting
        .get_erasure_status(GetErasureStatusRequest {
            contact: erased.into(),
        })
        .await
        .must("GetErasureStatus");
    Answers {
        today: daily.results,
        three_days: three_days.results,
        views,
        erasure,
    }
}

fn kpi_value(results: &[pb::KpiResult], kpi: &str, group: &str) -> Option<f64> {
    results
        .iter()
        .find(|r| r.kpi == kpi)
        .and_then(|r| r.lines.iter().find(|l| l.group == group))
        .and_then(|l| l.total.as_ref())
        .and_then(|t| t.value)
}

db_test!(rebuild_gives_identical_answers, rebuild_on);
async fn rebuild_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    // The history, a merge, and an erasure (Bob's).
    let mut history = History::make(&suite).await;
    let (twin, _) = history.merge_duplicate(&suite).await;
    let bob = history.bob.name.clone();
    suite
        .contacts(TENANT, ADMIN)
        .erase_contact(EraseContactRequest { name: bob.clone() })
        .await
        .must("EraseContact");
    let mut admin = suite.reporting(TENANT, ADMIN);
    eventually_within(60, "every service confirms Bob's erasure", async || {
        admin
            .get_erasure_status(GetErasureStatusRequest {
                contact: bob.clone(),
            })
            .await
            .is_ok_and(|s| s.into_inner().complete)
    })
    .await;
    suite.settled().await;
    let people = [
        history.ada.name.as_str(),
        twin.name.as_str(),
        bob.as_str(),
        history.converted.contact.as_str(),
    ];
    let before = answers(&suite, &people, &bob).await;
    assert!(
        before.views[2].erased && before.views[2].timeline.is_empty(),
        "{:?}",
        before.views[2]
    );

    let status = admin
        .get_read_model_status(GetReadModelStatusRequest {})
        .await
        .must("GetReadModelStatus");
    assert_eq!((status.generation, status.rebuilding_generation), (1, 0));
    assert!(status.last_rebuild_time.is_none() && status.rebuild_start_time.is_none());
    let sources: Vec<&str> = status.feeds.iter().map(|f| f.source.as_str()).collect();
    assert_eq!(sources, ["contacts", "marketing", "sales", "support"]);
    assert!(
        status
            .feeds
            .iter()
            .all(|f| f.position > 0 && f.rebuild_position == 0),
        "{status:?}"
    );

    // Rebuilding needs an admin.
    let denied = suite
        .reporting(TENANT, MANAGER)
        .rebuild_read_model(RebuildReadModelRequest {})
        .await
        .expect_err("a manager");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let started = admin
        .rebuild_read_model(RebuildReadModelRequest {})
        .await
        .must("RebuildReadModel");
    // Started (or, on a fast machine, already done).
    assert!(
        [(1, 2), (2, 0)].contains(&(started.generation, started.rebuilding_generation)),
        "{started:?}"
    );
    let mut last = None;
    eventually_within(90, "the rebuilt generation is live", async || {
        let now = admin
            .get_read_model_status(GetReadModelStatusRequest {})
            .await
            .must("GetReadModelStatus");
        let done = (now.generation, now.rebuilding_generation) == (2, 0);
        last = Some(now);
        done
    })
    .await;
    let live = last.expect("a status");
    assert!(
        live.last_rebuild_time.is_some() && live.rebuild_start_time.is_none(),
        "{live:?}"
    );
    assert!(
        live.feeds.iter().all(|f| f.rebuild_position == 0),
        "{live:?}"
    );

    let after = answers(&suite, &people, &bob).await;
    assert_eq!(after.today, before.today, "today's KPIs");
    assert_eq!(after.three_days, before.three_days, "the daily series");
    for (i, person) in people.iter().enumerate() {
        let (was, now) = (&before.views[i], &after.views[i]);
        if was != now {
            let only = |a: &pb::CustomerView, b: &pb::CustomerView| -> Vec<String> {
                a.timeline
                    .iter()
                    .filter(|e| !b.timeline.contains(e))
                    .map(|e| format!("{} {} {} {}", e.kind, e.event_type, e.subject, e.summary))
                    .collect()
            };
            let bare = |v: &pb::CustomerView| pb::CustomerView {
                timeline: Vec::new(),
                ..v.clone()
            };
            panic!(
                "the view of {person} changed:\nonly before: {:#?}\nonly after: {:#?}\nthe rest before: {:?}\nthe rest after: {:?}",
                only(was, now),
                only(now, was),
                bare(was),
                bare(now)
            );
        }
    }
    // Reporting's own count of what it erased depends on what it held when
    // the erasure came: live, Bob and his ticket; replayed, the contacts
    // feed comes first and only Bob. Everything else is the same.
    let without_own_count = |s: &pb::ErasureStatus| {
        let mut s = s.clone();
        for c in &mut s.confirmations {
            if c.service == "reporting" {
                assert!(c.erased_resources >= 1, "{c:?}");
                c.erased_resources = 0;
            }
        }
        s
    };
    assert_eq!(
        without_own_count(&after.erasure),
        without_own_count(&before.erasure),
        "Bob's erasure status"
    );

    // New activity after the rebuild counts once.
    let mut sales = suite.sales(TENANT, ADMIN);
    lead(&mut sales, "Fay", LeadSource::WebForm, "").await;
    let mut support = suite.support(TENANT, AGENT);
    let late = ticket(
        &mut support,
        &history.ada.name,
        "One more thing",
        TicketChannel::Web,
        TicketPriority::Normal,
    )
    .await;
    suite.settled().await;
    let now = answers(&suite, &people, &bob).await;
    let plus_one = |kpi: &str, group: &str| {
        let was = kpi_value(&before.today, kpi, group).unwrap_or_default();
        assert_eq!(
            kpi_value(&now.today, kpi, group),
            Some(was + 1.0),
            "{kpi} {group} after one more"
        );
    };
    plus_one("sales.leads_created", "");
    plus_one("sales.leads_by_source", "web_form");
    plus_one("support.tickets_created", "");
    plus_one("support.tickets_by_channel", "web");
    plus_one("support.backlog", "");
    assert_eq!(
        kpi_value(&now.today, "sales.lead_conversion_rate", ""),
        Some(1.0 / 3.0),
        "one converted of three"
    );
    let ada = &now.views[0];
    assert_eq!(
        ada.open_tickets[0].ticket, late.name,
        "the newest ticket first"
    );
    assert_eq!(
        ada.timeline.len(),
        before.views[0].timeline.len() + 1,
        "one entry more"
    );
}
