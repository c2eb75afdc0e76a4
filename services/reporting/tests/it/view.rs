//! The customer view: a contact as every service knows it (deals open and
//! won, lifetime revenue per currency, open tickets, the last engagement,
//! consent) and a timeline from every feed, newest first, paged and
//! filtered by kind; a merged contact shows its survivor; an unknown one is
//! NOT_FOUND.

use std::collections::BTreeSet;

use crm_proto::{
    reporting::{ConsentState, TimelineEntry},
    support::TicketStatus,
};
use tonic::Code;

use crate::{harness::*, history::*};

/// (event type without its package, subject) of each entry, sorted.
fn kinds_of(entries: &[TimelineEntry]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            let short = e.event_type.rsplit('.').next().unwrap_or_default();
            (short.to_owned(), e.subject.clone())
        })
        .collect();
    pairs.sort();
    pairs
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    v.sort();
    v
}

/// Newest first: by time, then by event id, both descending.
fn assert_newest_first(entries: &[TimelineEntry]) {
    let key = |e: &TimelineEntry| {
        let t = e.time.unwrap_or_default();
        (t.seconds, t.nanos, e.event_id.clone())
    };
    for pair in entries.windows(2) {
        assert!(
            key(&pair[0]) > key(&pair[1]),
            "not newest first: {:?} before {:?}",
            pair[0],
            pair[1]
        );
    }
}

db_test!(customer_view, view_on);
async fn view_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut history = History::make(&suite).await;
    suite.settled().await;
    let h = &history;
    let (ada, campaign) = (h.ada.name.as_str(), h.campaign.name.as_str());
    // A sales rep may read it.
    let mut reporting = suite.reporting(TENANT, SALES);
    let v = view(&mut reporting, ada).await;
    assert_eq!(
        (
            v.contact.as_str(),
            v.display_name.as_str(),
            v.email.as_str(),
            v.company.as_str(),
            v.company_name.as_str(),
            v.lifecycle_stage.as_str(),
            v.email_consent,
            v.erased
        ),
        (
            ada,
            "Ada Lovelace",
            "ada@northwind.example",
            h.company.as_str(),
            "Northwind",
            "customer",
            ConsentState::Granted as i32,
            false
        )
    );
    // Deals: the open one in Proposal, the one won in USD; the lost one in neither.
    let open: Vec<_> = v
        .open_deals
        .iter()
        .map(|d| {
            (
                d.opportunity.as_str(),
                d.display_name.as_str(),
                d.stage.as_str(),
                d.amount.clone(),
                d.owner.as_str(),
                d.close_time.is_some(),
            )
        })
        .collect();
    assert_eq!(
        open,
        [(
            h.open.name.as_str(),
            "Renewal",
            "Proposal",
            Some(money("EUR", 1_200)),
            h.open.owner.as_str(),
            false
        )]
    );
    assert!(v.open_deals[0].create_time.is_some());
    let won: Vec<_> = v
        .won_deals
        .iter()
        .map(|d| {
            (
                d.opportunity.as_str(),
                d.stage.as_str(),
                d.amount.clone(),
                d.close_time.is_some(),
            )
        })
        .collect();
    assert_eq!(
        won,
        [(
            h.won_usd.name.as_str(),
            "Closed won",
            Some(money("USD", 700)),
            true
        )]
    );
    assert_eq!(v.lifetime_revenue, [money("USD", 700)]);
    // Tickets: the solved one is not open.
    let tickets: Vec<_> = v
        .open_tickets
        .iter()
        .map(|t| {
            (
                t.ticket.as_str(),
                t.subject.as_str(),
                t.status.as_str(),
                t.priority.as_str(),
                t.sla_breached,
            )
        })
        .collect();
    let waiting_status = h
        .waiting
        .status()
        .as_str_name()
        .trim_start_matches("TICKET_STATUS_")
        .to_lowercase();
    assert_eq!(h.waiting.status(), TicketStatus::New);
    assert_eq!(
        tickets,
        [(
            h.waiting.name.as_str(),
            "Invoice copy",
            waiting_status.as_str(),
            "normal",
            false
        )]
    );
    let engagement = v.last_engagement.clone().expect("an engagement");
    assert_eq!(
        (
            engagement.campaign.as_str(),
            engagement.journey.as_str(),
            engagement.kind.as_str()
        ),
        (campaign, "", "clicked")
    );
    assert!(engagement.time.is_some());

    // The timeline: what each service did with Ada, kind by kind.
    let (usd, lost, renewal) = (
        h.won_usd.name.as_str(),
        h.lost.name.as_str(),
        h.open.name.as_str(),
    );
    let (solved, waiting) = (h.solved.name.as_str(), h.waiting.name.as_str());
    let expected = [
        ("contact", pairs(&[("ContactCreated", ada)])),
        ("consent", pairs(&[("ContactCreated", ada)])),
        (
            "email",
            pairs(&[
                ("EmailSent", campaign),
                ("EmailOpened", campaign),
                ("EmailClicked", campaign),
            ]),
        ),
        (
            "deal",
            pairs(&[
                ("OpportunityCreated", usd),
                ("OpportunityWon", usd),
                ("OpportunityCreated", lost),
                ("OpportunityLost", lost),
                ("OpportunityCreated", renewal),
                ("OpportunityStageChanged", renewal),
            ]),
        ),
        (
            "ticket",
            pairs(&[
                ("TicketCreated", solved),
                ("TicketSolved", solved),
                ("CsatSubmitted", solved),
                ("TicketCreated", waiting),
            ]),
        ),
    ];
    let whole = v.timeline.clone();
    assert_eq!(v.next_page_token, "", "1000 entries hold it all");
    assert_newest_first(&whole);
    assert_eq!(
        whole.len(),
        expected.iter().map(|(_, e)| e.len()).sum::<usize>(),
        "{whole:#?}"
    );
    for (kind, want) in &expected {
        let of_kind: Vec<TimelineEntry> =
            whole.iter().filter(|e| e.kind == *kind).cloned().collect();
        assert_eq!(kinds_of(&of_kind), *want, "{kind} entries");
        // Asking for the kind gives exactly these, in the same order.
        let filtered = timeline(&mut reporting, ada, 1000, &[kind]).await;
        assert_eq!(filtered, of_kind, "kinds = [{kind}]");
    }
    for entry in &whole {
        assert!(
            !entry.summary.is_empty() && !entry.event_id.is_empty(),
            "{entry:?}"
        );
        let source = match entry.kind.as_str() {
            "contact" | "consent" => "contacts",
            "email" => "marketing",
            "deal" => "sales",
            _ => "support",
        };
        assert_eq!(entry.source, source, "{entry:?}");
    }
    // A move to an open stage names it; a move into won or lost has only
    // its won or lost entry.
    let moved = whole
        .iter()
        .find(|e| e.event_type == "crm.sales.v1.OpportunityStageChanged")
        .expect("the renewal's move");
    assert_eq!(moved.summary, "Deal \"Renewal\" moved to Proposal");
    let won_entry = whole
        .iter()
        .find(|e| e.event_type == "crm.sales.v1.OpportunityWon")
        .expect("the win");
    assert!(
        won_entry.summary.contains("US rollout") && won_entry.summary.contains("USD"),
        "{}",
        won_entry.summary
    );

    // Two at a time to the end: the same entries, none twice.
    let paged = timeline(&mut reporting, ada, 2, &[]).await;
    assert_eq!(paged, whole, "pages of 2");
    let ids: BTreeSet<&str> = paged.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), paged.len(), "no entry twice");
    let first = view_page(&mut reporting, ada, 2, "", &[])
        .await
        .expect("a first page");
    assert_eq!(first.timeline.len(), 2);
    assert!(!first.next_page_token.is_empty());
    // Several kinds at once, paged.
    let deals_and_tickets = timeline(&mut reporting, ada, 2, &["ticket", "deal"]).await;
    let want: Vec<TimelineEntry> = whole
        .iter()
        .filter(|e| e.kind == "deal" || e.kind == "ticket")
        .cloned()
        .collect();
    assert_eq!(deals_and_tickets, want);
    // A page token belongs to its query; a kind must be one reporting knows.
    let other_kinds = view_page(&mut reporting, ada, 2, &first.next_page_token, &["deal"]).await;
    assert_eq!(
        other_kinds.expect_err("another query's token").code(),
        Code::InvalidArgument
    );
    let bad_kind = view_page(&mut reporting, ada, 2, "", &["deal", "gossip"]).await;
    assert_invalid_field(
        &bad_kind.expect_err("an unknown kind"),
        "kinds[",
        "an unknown kind",
    );

    // Bob: no company, no consent recorded, no deals; his ticket and the campaign.
    let b = view(&mut reporting, &h.bob.name).await;
    assert_eq!(
        (
            b.company.as_str(),
            b.company_name.as_str(),
            b.email_consent,
            b.open_deals.len(),
            b.won_deals.len()
        ),
        ("", "", ConsentState::Unspecified as i32, 0, 0)
    );
    assert!(b.lifetime_revenue.is_empty());
    assert_eq!(b.open_tickets.len(), 1);
    assert_eq!(b.open_tickets[0].ticket, h.bobs.name);
    assert!(b.last_engagement.is_none(), "Bob never opened it");
    // The customer converted from the campaign's lead: won in EUR.
    let cy = view(&mut reporting, &h.converted.contact).await;
    assert_eq!(cy.lifetime_revenue, [money("EUR", 5_000)]);
    assert_eq!(cy.won_deals.len(), 1);
    assert!(
        cy.timeline
            .iter()
            .any(|e| e.kind == "lead" && e.subject == h.campaign_lead.name),
        "{:?}",
        cy.timeline
    );

    // A second record of Ada merged into hers: asking for it shows Ada,
    // with what the twin had.
    let (twin, chat) = history.merge_duplicate(&suite).await;
    let h = &history;
    let after = view(&mut reporting, &h.ada.name).await;
    let through_twin = view(&mut reporting, &twin.name).await;
    assert_eq!(through_twin, after, "the twin's view is Ada's");
    assert_eq!(after.contact, h.ada.name);
    assert_eq!(after.display_name, "Ada Lovelace");
    let open: Vec<&str> = after
        .open_tickets
        .iter()
        .map(|t| t.ticket.as_str())
        .collect();
    assert_eq!(
        open,
        [chat.name.as_str(), h.waiting.name.as_str()],
        "newest first"
    );
    assert!(
        after
            .timeline
            .iter()
            .any(|e| e.event_type == "crm.contacts.v1.ContactCreated" && e.subject == twin.name),
        "the twin's history moved to Ada"
    );
    assert!(
        after
            .timeline
            .iter()
            .any(|e| e.event_type == "crm.support.v1.TicketCreated" && e.subject == chat.name),
        "the twin's ticket is in Ada's timeline"
    );
    assert_newest_first(&after.timeline);

    // Nobody by that name.
    let unknown = view_page(
        &mut reporting,
        "contacts/01a20000-0000-7000-8000-000000000000",
        10,
        "",
        &[],
    )
    .await;
    assert_eq!(
        unknown.expect_err("an unknown contact").code(),
        Code::NotFound
    );
    let malformed = view_page(&mut reporting, "people/1", 10, "", &[]).await;
    assert_invalid_field(
        &malformed.expect_err("not a contact's name"),
        "contact",
        "a bad name",
    );
}
