//! Reporting killed while the other services go on: restarted, it catches
//! up from where each feed's cursor stood and counts every event once.

use crm_proto::{
    reporting::GetReadModelStatusRequest,
    sales::LeadSource,
    support::{TicketChannel, TicketPriority},
};

use crate::{harness::*, history::*};

db_test!(catch_up_without_double_counting, catch_up_on);
async fn catch_up_on(backend: Backend) {
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    let mut history = History::make(&suite).await;
    assert_kpis_today(&suite, &history.ledger, "before the kill").await;
    let positions = suite
        .reporting(TENANT, ADMIN)
        .get_read_model_status(GetReadModelStatusRequest {})
        .await
        .must("GetReadModelStatus")
        .feeds;

    // Killed: no drain, nothing released.
    suite.reporting.kill();
    let ledger = &mut history.ledger;
    // Bob reads the campaign at last (and again: once counts).
    suite
        .engage("bob@example.com", "Spring launch", false)
        .await;
    suite
        .engage("bob@example.com", "Spring launch", false)
        .await;
    ledger
        .opened
        .insert((history.campaign.name.clone(), history.bob.name.clone()));
    // Another web lead; a deal of Bob's won (he has no company: he is the
    // customer) and one lost.
    let mut sales = suite.sales(TENANT, ADMIN);
    lead(&mut sales, "Eve", LeadSource::WebForm, "").await;
    ledger.leads.push(("web_form".into(), false, false));
    let bobs = deal(
        &mut sales,
        "Starter",
        &history.bob.name,
        "",
        money("EUR", 1_000),
    )
    .await;
    let bobs = move_to(&mut sales, &bobs, "Closed won").await;
    ledger.won.push(won(&bobs, false));
    let gone = deal(
        &mut sales,
        "Upsell",
        &history.bob.name,
        "",
        money("USD", 50),
    )
    .await;
    move_to(&mut sales, &gone, "Closed lost").await;
    ledger.lost += 1;
    // Ada's waiting ticket answered; Bob's new chat answered, solved and rated 2.
    let mut support = suite.support(TENANT, AGENT);
    reply(
        &mut support,
        &history.waiting.name,
        "Attached, sorry for the wait",
    )
    .await;
    let waiting = get_ticket(&mut support, &history.waiting.name).await;
    ledger
        .tickets
        .insert(waiting.name.clone(), ticket_facts(&waiting, None));
    let chat = ticket(
        &mut support,
        &history.bob.name,
        "Still broken",
        TicketChannel::Chat,
        TicketPriority::Urgent,
    )
    .await;
    reply(&mut support, &chat.name, "On it").await;
    solve(&mut support, &chat.name).await;
    rate(&suite, &mut support, &chat.name, 2).await;
    let chat = get_ticket(&mut support, &chat.name).await;
    ledger
        .tickets
        .insert(chat.name.clone(), ticket_facts(&chat, Some(2)));

    // The hand-computed totals now, for the KPIs that moved.
    let expected = ledger.expected();
    let value = |kpi: &str, currency: &str, group: &str| {
        expected[kpi][&(currency.to_owned(), group.to_owned())]
    };
    assert_eq!(value("sales.deals_won", "", ""), Some(3.0));
    assert_eq!(value("sales.win_rate", "", ""), Some(3.0 / 5.0));
    assert_eq!(value("sales.won_revenue", "EUR", ""), Some(6_000.0));
    assert_eq!(value("sales.average_deal_size", "EUR", ""), Some(3_000.0));
    assert_eq!(value("sales.leads_by_source", "", "web_form"), Some(2.0));
    assert_eq!(value("sales.lead_conversion_rate", "", ""), Some(1.0 / 3.0));
    assert_eq!(value("customers.new", "", ""), Some(3.0));
    assert_eq!(
        value("customers.revenue_per_customer", "EUR", ""),
        Some(2_000.0)
    );
    assert_eq!(value("marketing.open_rate", "", ""), Some(1.0));
    assert_eq!(value("support.tickets_created", "", ""), Some(4.0));
    assert_eq!(value("support.backlog", "", ""), Some(2.0));
    assert_eq!(value("support.csat", "", ""), Some(0.5));
    assert_eq!(
        value("support.tickets_by_priority", "", "urgent"),
        Some(1.0)
    );

    // Restarted: it resumes from its cursors.
    suite.reporting.restart().await;
    assert_kpis_today(&suite, ledger, "after the restart").await;
    let resumed = suite
        .reporting(TENANT, ADMIN)
        .get_read_model_status(GetReadModelStatusRequest {})
        .await
        .must("GetReadModelStatus")
        .feeds;
    for (was, now) in positions.iter().zip(&resumed) {
        assert_eq!(was.source, now.source);
        // Contacts had nothing new; the others did.
        let moved = if now.source == "contacts" {
            now.position == was.position
        } else {
            now.position > was.position
        };
        assert!(moved, "{}: {was:?} -> {now:?}", now.source);
    }
    // Bob's view shows each event once.
    let mut reporting = suite.reporting(TENANT, MANAGER);
    let bob = view(&mut reporting, &history.bob.name).await;
    let opens = bob
        .timeline
        .iter()
        .filter(|e| e.event_type == "crm.marketing.v1.EmailOpened")
        .count();
    assert_eq!(opens, 2, "two opens, each once");
    assert_eq!(bob.lifetime_revenue, [money("EUR", 1_000)]);
    assert_eq!(
        bob.won_deals
            .iter()
            .map(|d| d.opportunity.as_str())
            .collect::<Vec<_>>(),
        [bobs.name.as_str()]
    );
    let ids: std::collections::BTreeSet<&str> =
        bob.timeline.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), bob.timeline.len(), "no entry twice");
}
