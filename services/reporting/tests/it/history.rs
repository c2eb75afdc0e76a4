//! A history made through the real services (a company and its people, a
//! campaign sent and read, leads, deals won and lost, tickets answered,
//! solved and rated), a ledger of what it was, and the KPI values computed
//! by hand from that ledger.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use crm_proto::{
    common::Money,
    contacts::{Contact, MergeContactsRequest},
    marketing::Campaign,
    reporting::{self as pb, KpiUnit},
    sales::{ConvertLeadResponse, Lead, LeadSource, Opportunity},
    support::{Ticket, TicketChannel, TicketPriority, TicketStatus},
};

use crate::harness::*;

/// What the KPIs of one deal won depend on.
#[derive(Debug, Clone)]
pub struct Won {
    pub amount: Money,
    /// Its company, else its contact.
    pub customer: String,
    /// Whole seconds from creation to win.
    pub cycle_seconds: i64,
    /// Converted from a lead naming a campaign.
    pub attributed: bool,
}

/// What the KPIs of one ticket depend on.
#[derive(Debug, Clone)]
pub struct TicketFacts {
    pub channel: String,
    pub priority: String,
    pub first_response_seconds: Option<i64>,
    pub resolution_seconds: Option<i64>,
    pub breached: bool,
    pub rating: Option<i32>,
}

/// Everything the KPIs count, as the test made it.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// (source label, names a campaign, converted).
    pub leads: Vec<(String, bool, bool)>,
    pub won: Vec<Won>,
    pub lost: usize,
    /// Open deals: (stage label, amount).
    pub open: Vec<(String, Money)>,
    /// By ticket name.
    pub tickets: BTreeMap<String, TicketFacts>,
    /// Marketing messages sent.
    pub sent: usize,
    /// Recipients who opened / clicked, per campaign: (campaign, contact).
    pub opened: BTreeSet<(String, String)>,
    pub clicked: BTreeSet<(String, String)>,
    /// Campaign costs.
    pub costs: Vec<Money>,
}

fn time(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// Whole seconds from `from` to `to`, as reporting counts them.
fn seconds(
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
) -> Option<i64> {
    Some((time(to)? - time(from)?).num_seconds().max(0))
}

/// What the KPIs see of a won deal.
pub fn won(deal: &Opportunity, attributed: bool) -> Won {
    Won {
        amount: deal.amount.clone().expect("an amount"),
        customer: if deal.company.is_empty() {
            deal.contact.clone()
        } else {
            deal.company.clone()
        },
        cycle_seconds: seconds(deal.create_time.as_ref(), deal.close_time.as_ref())
            .expect("a won deal has its times"),
        attributed,
    }
}

/// What the KPIs see of a ticket as support has it now.
pub fn ticket_facts(t: &Ticket, rating: Option<i32>) -> TicketFacts {
    let solved = matches!(t.status(), TicketStatus::Solved | TicketStatus::Closed);
    let label = |name: &str, prefix: &str| name.trim_start_matches(prefix).to_ascii_lowercase();
    TicketFacts {
        channel: label(t.channel().as_str_name(), "TICKET_CHANNEL_"),
        priority: label(t.priority().as_str_name(), "TICKET_PRIORITY_"),
        first_response_seconds: seconds(t.create_time.as_ref(), t.first_response_time.as_ref()),
        resolution_seconds: if solved {
            seconds(t.create_time.as_ref(), t.solve_time.as_ref())
        } else {
            None
        },
        breached: t
            .sla
            .as_ref()
            .is_some_and(|s| s.targets.iter().any(|target| target.breached)),
        rating,
    }
}

/// (currency, group) -> value.
pub type Lines = BTreeMap<(String, String), Option<f64>>;
/// KPI -> its lines.
pub type Expected = BTreeMap<String, Lines>;

fn plain(value: Option<f64>) -> Lines {
    BTreeMap::from([((String::new(), String::new()), value)])
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator != 0.0).then(|| numerator / denominator)
}

fn whole(m: &Money) -> f64 {
    m.units as f64 + f64::from(m.nanos) / 1e9
}

/// The `quantile` of `values`, interpolated between the closest ranks (as
/// PostgreSQL's `percentile_cont`).
fn percentile(mut values: Vec<f64>, quantile: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let last = values.len().checked_sub(1)?;
    let rank = quantile * last as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    Some(values[low] + (values[high] - values[low]) * (rank - low as f64))
}

fn per_currency<'a>(amounts: impl Iterator<Item = &'a Money>) -> BTreeMap<String, (f64, usize)> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for m in amounts {
        let entry = sums.entry(m.currency_code.clone()).or_default();
        entry.0 += whole(m);
        entry.1 += 1;
    }
    sums
}

fn by_currency(values: BTreeMap<String, Option<f64>>) -> Lines {
    values
        .into_iter()
        .map(|(currency, v)| ((currency, String::new()), v))
        .collect()
}

fn by_group(counts: BTreeMap<String, usize>) -> Lines {
    counts
        .into_iter()
        .map(|(group, n)| ((String::new(), group), Some(n as f64)))
        .collect()
}

impl Ledger {
    /// Every KPI's lines over a period holding the whole ledger, by hand.
    pub fn expected(&self) -> Expected {
        let mut e = Expected::new();
        let mut put = |name: &str, lines: Lines| {
            e.insert(name.to_owned(), lines);
        };
        let won = per_currency(self.won.iter().map(|w| &w.amount));
        let customers: BTreeSet<&str> = self.won.iter().map(|w| w.customer.as_str()).collect();
        let per_customer = by_currency(
            won.iter()
                .map(|(c, (sum, _))| (c.clone(), ratio(*sum, customers.len() as f64)))
                .collect(),
        );
        put("customers.lifetime_value", per_customer.clone());
        put("customers.new", plain(Some(customers.len() as f64)));
        put("customers.revenue_per_customer", per_customer);

        let attributed_leads = self.leads.iter().filter(|l| l.1).count();
        put(
            "marketing.attributed_leads",
            plain(Some(attributed_leads as f64)),
        );
        let attributed = per_currency(self.won.iter().filter(|w| w.attributed).map(|w| &w.amount));
        put(
            "marketing.attributed_revenue",
            by_currency(
                attributed
                    .iter()
                    .map(|(c, (sum, _))| (c.clone(), Some(*sum)))
                    .collect(),
            ),
        );
        let sent = self.sent as f64;
        put("marketing.bounce_rate", plain(ratio(0.0, sent)));
        put(
            "marketing.click_rate",
            plain(ratio(self.clicked.len() as f64, sent)),
        );
        put("marketing.delivery_rate", plain(ratio(sent, sent)));
        put("marketing.emails_sent", plain(Some(sent)));
        put(
            "marketing.open_rate",
            plain(ratio(self.opened.len() as f64, sent)),
        );
        let cost = per_currency(self.costs.iter());
        let currencies: BTreeSet<&String> = cost.keys().chain(attributed.keys()).collect();
        put(
            "marketing.roi",
            by_currency(
                currencies
                    .into_iter()
                    .map(|c| {
                        let revenue = attributed.get(c).map_or(0.0, |v| v.0);
                        let spent = cost.get(c).map_or(0.0, |v| v.0);
                        let roi = (spent > 0.0).then(|| (revenue - spent) / spent);
                        (c.clone(), roi)
                    })
                    .collect(),
            ),
        );
        put("marketing.unsubscribe_rate", plain(ratio(0.0, sent)));

        put(
            "sales.average_deal_size",
            by_currency(
                won.iter()
                    .map(|(c, (sum, n))| (c.clone(), ratio(*sum, *n as f64)))
                    .collect(),
            ),
        );
        put("sales.deals_won", plain(Some(self.won.len() as f64)));
        let converted = self.leads.iter().filter(|l| l.2).count();
        put(
            "sales.lead_conversion_rate",
            plain(ratio(converted as f64, self.leads.len() as f64)),
        );
        let mut sources: BTreeMap<String, usize> = BTreeMap::new();
        for l in &self.leads {
            *sources.entry(l.0.clone()).or_default() += 1;
        }
        put("sales.leads_by_source", by_group(sources));
        put("sales.leads_created", plain(Some(self.leads.len() as f64)));
        let mut pipeline: Lines = BTreeMap::new();
        for (stage, amount) in &self.open {
            let line = pipeline
                .entry((amount.currency_code.clone(), stage.clone()))
                .or_insert(Some(0.0));
            *line = Some(line.unwrap_or_default() + whole(amount));
        }
        put("sales.pipeline_value_by_stage", pipeline);
        let cycle_days: f64 = self
            .won
            .iter()
            .map(|w| w.cycle_seconds as f64 / 86_400.0)
            .sum();
        put(
            "sales.sales_cycle_days",
            plain(ratio(cycle_days, self.won.len() as f64)),
        );
        put(
            "sales.win_rate",
            plain(ratio(
                self.won.len() as f64,
                (self.won.len() + self.lost) as f64,
            )),
        );
        put(
            "sales.won_revenue",
            by_currency(
                won.iter()
                    .map(|(c, (sum, _))| (c.clone(), Some(*sum)))
                    .collect(),
            ),
        );

        let tickets: Vec<&TicketFacts> = self.tickets.values().collect();
        let solved: Vec<&&TicketFacts> = tickets
            .iter()
            .filter(|t| t.resolution_seconds.is_some())
            .collect();
        put(
            "support.backlog",
            plain(Some((tickets.len() - solved.len()) as f64)),
        );
        let ratings: Vec<i32> = tickets.iter().filter_map(|t| t.rating).collect();
        let good = ratings.iter().filter(|r| **r >= 4).count();
        put(
            "support.csat",
            plain(ratio(good as f64, ratings.len() as f64)),
        );
        let responses: Vec<f64> = tickets
            .iter()
            .filter_map(|t| t.first_response_seconds)
            .map(|s| s as f64)
            .collect();
        put(
            "support.first_response_time_median",
            plain(percentile(responses.clone(), 0.5)),
        );
        put(
            "support.first_response_time_p90",
            plain(percentile(responses, 0.9)),
        );
        put(
            "support.reopen_rate",
            plain(ratio(0.0, solved.len() as f64)),
        );
        let resolutions: Vec<f64> = solved
            .iter()
            .filter_map(|t| t.resolution_seconds)
            .map(|s| s as f64)
            .collect();
        put(
            "support.resolution_time_median",
            plain(percentile(resolutions.clone(), 0.5)),
        );
        put(
            "support.resolution_time_p90",
            plain(percentile(resolutions, 0.9)),
        );
        let breached = solved.iter().filter(|t| t.breached).count();
        put(
            "support.sla_compliance",
            plain(ratio((solved.len() - breached) as f64, solved.len() as f64)),
        );
        let mut channels: BTreeMap<String, usize> = BTreeMap::new();
        let mut priorities: BTreeMap<String, usize> = BTreeMap::new();
        for t in &tickets {
            *channels.entry(t.channel.clone()).or_default() += 1;
            *priorities.entry(t.priority.clone()).or_default() += 1;
        }
        put("support.tickets_by_channel", by_group(channels));
        put("support.tickets_by_priority", by_group(priorities));
        put("support.tickets_created", plain(Some(tickets.len() as f64)));
        e
    }
}

/// Whether two values agree (to rounding).
pub fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        _ => false,
    }
}

/// What a KPI is worth over a span without data: zero for counts and sums,
/// unknown otherwise.
pub fn nothing(kpi: &str, unit: i32) -> Option<f64> {
    let zero = unit == KpiUnit::Count as i32 || SUMS.contains(&kpi);
    zero.then_some(0.0)
}

/// The money KPIs that are sums: zero over nothing (an average or a ratio
/// of money is unknown).
pub const SUMS: &[&str] = &["marketing.attributed_revenue", "sales.won_revenue"];

/// The snapshot KPI (the present, whatever the period).
pub const SNAPSHOT: &str = "sales.pipeline_value_by_stage";

/// How `response` differs from `expected`, for a period whose previous
/// period and year-ago period hold nothing: one line per difference.
pub fn differences(response: &pb::QueryKpisResponse, expected: &Expected) -> Vec<String> {
    let mut problems = Vec::new();
    let asked: Vec<&str> = response.results.iter().map(|r| r.kpi.as_str()).collect();
    for kpi in expected.keys() {
        if !asked.contains(&kpi.as_str()) {
            problems.push(format!("{kpi}: not answered"));
        }
    }
    for result in &response.results {
        // A KPI added to the catalogue after these tests: answered, unchecked.
        let Some(want) = expected.get(&result.kpi) else {
            continue;
        };
        let got: Lines = result
            .lines
            .iter()
            .map(|l| {
                (
                    (l.currency.clone(), l.group.clone()),
                    l.total.as_ref().and_then(|t| t.value),
                )
            })
            .collect();
        if got.keys().collect::<Vec<_>>() != want.keys().collect::<Vec<_>>() {
            problems.push(format!("{}: lines {got:?}, expected {want:?}", result.kpi));
            continue;
        }
        for (key, value) in want {
            if !same(got[key], *value) {
                problems.push(format!(
                    "{} {key:?}: {:?}, expected {value:?}",
                    result.kpi, got[key]
                ));
            }
        }
        let empty = if result.kpi == SNAPSHOT {
            None
        } else {
            nothing(&result.kpi, result.unit)
        };
        for line in &result.lines {
            let total = line.total.unwrap_or_default();
            if total.previous_value != empty || total.year_ago_value != empty {
                problems.push(format!(
                    "{} {}/{}: previous {:?} and year ago {:?}, expected {empty:?}",
                    result.kpi,
                    line.currency,
                    line.group,
                    total.previous_value,
                    total.year_ago_value
                ));
            }
            if total.change_from_previous.is_some() || total.change_from_year_ago.is_some() {
                problems.push(format!(
                    "{} {}/{}: a change from nothing",
                    result.kpi, line.currency, line.group
                ));
            }
        }
    }
    problems
}

/// The shared scenario: what it made, and its ledger.
pub struct History {
    pub company: String,
    pub ada: Contact,
    pub bob: Contact,
    pub campaign: Campaign,
    pub campaign_lead: Lead,
    pub web_lead: Lead,
    pub converted: ConvertLeadResponse,
    pub won_eur: Opportunity,
    pub won_usd: Opportunity,
    pub lost: Opportunity,
    pub open: Opportunity,
    /// Ada's ticket: answered, solved and rated 5.
    pub solved: Ticket,
    /// Ada's ticket still waiting.
    pub waiting: Ticket,
    /// Bob's ticket.
    pub bobs: Ticket,
    pub ledger: Ledger,
}

impl History {
    /// Makes the history in [`TENANT`] through the real services.
    pub async fn make(suite: &Suite) -> Self {
        let mut ledger = Ledger::default();
        let mut contacts = suite.contacts(TENANT, ADMIN);
        let company = company(&mut contacts, "Northwind").await;
        let ada = contact(
            &mut contacts,
            "Ada",
            "Lovelace",
            "ada@northwind.example",
            &company,
            true,
        )
        .await;
        let bob = contact(
            &mut contacts,
            "Bob",
            "Builder",
            "bob@example.com",
            "",
            false,
        )
        .await;

        // A campaign costing 1,000 EUR to both; Ada opens it and clicks.
        let mut m = suite.marketing(TENANT, MARKETER);
        let campaign = campaign_to(
            &mut m,
            "Spring launch",
            &[&ada.name, &bob.name],
            money("EUR", 1_000),
        )
        .await;
        assert_eq!(
            campaign.counts.as_ref().map(|c| c.sent),
            Some(2),
            "{campaign:?}"
        );
        ledger.sent += 2;
        ledger.costs.push(money("EUR", 1_000));
        suite
            .engage("ada@northwind.example", "Spring launch", true)
            .await;
        ledger
            .opened
            .insert((campaign.name.clone(), ada.name.clone()));
        ledger
            .clicked
            .insert((campaign.name.clone(), ada.name.clone()));

        // A lead from the campaign converted and won in EUR; a web lead.
        let mut sales = suite.sales(TENANT, ADMIN);
        let campaign_lead = lead(&mut sales, "Cy", LeadSource::Campaign, &campaign.name).await;
        let converted = convert(&mut sales, &campaign_lead, money("EUR", 5_000)).await;
        let deal_from_lead = converted.opportunity.clone().expect("an opportunity");
        let won_eur = move_to(&mut sales, &deal_from_lead, "Closed won").await;
        ledger.leads.push(("campaign".into(), true, true));
        ledger.won.push(won(&won_eur, true));
        let web_lead = lead(&mut sales, "Dee", LeadSource::WebForm, "").await;
        ledger.leads.push(("web_form".into(), false, false));

        // Ada's deals: won in USD, lost, and one open in Proposal.
        let usd = deal(
            &mut sales,
            "US rollout",
            &ada.name,
            &company,
            money("USD", 700),
        )
        .await;
        let won_usd = move_to(&mut sales, &usd, "Closed won").await;
        ledger.won.push(won(&won_usd, false));
        let lost = deal(&mut sales, "Add-on", &ada.name, &company, money("EUR", 300)).await;
        let lost = move_to(&mut sales, &lost, "Closed lost").await;
        ledger.lost += 1;
        let open = deal(
            &mut sales,
            "Renewal",
            &ada.name,
            &company,
            money("EUR", 1_200),
        )
        .await;
        let open = move_to(&mut sales, &open, "Proposal").await;
        ledger.open.push(("Proposal".into(), money("EUR", 1_200)));

        // Ada's email ticket answered, solved and rated; two more waiting.
        let mut support = suite.support(TENANT, AGENT);
        let first = ticket(
            &mut support,
            &ada.name,
            "Cannot log in",
            TicketChannel::Email,
            TicketPriority::High,
        )
        .await;
        reply(&mut support, &first.name, "Please reset your password").await;
        solve(&mut support, &first.name).await;
        rate(suite, &mut support, &first.name, 5).await;
        let solved = get_ticket(&mut support, &first.name).await;
        assert!(
            solved.first_response_time.is_some() && solved.solve_time.is_some(),
            "{solved:?}"
        );
        ledger
            .tickets
            .insert(solved.name.clone(), ticket_facts(&solved, Some(5)));
        let waiting = ticket(
            &mut support,
            &ada.name,
            "Invoice copy",
            TicketChannel::Web,
            TicketPriority::Normal,
        )
        .await;
        ledger
            .tickets
            .insert(waiting.name.clone(), ticket_facts(&waiting, None));
        let bobs = ticket(
            &mut support,
            &bob.name,
            "Broken widget",
            TicketChannel::Phone,
            TicketPriority::Low,
        )
        .await;
        ledger
            .tickets
            .insert(bobs.name.clone(), ticket_facts(&bobs, None));

        Self {
            company,
            ada,
            bob,
            campaign,
            campaign_lead,
            web_lead,
            converted,
            won_eur,
            won_usd,
            lost,
            open,
            solved,
            waiting,
            bobs,
            ledger,
        }
    }
}

impl History {
    /// A second record of Ada (another address, an urgent chat ticket) merged
    /// into hers once reporting has seen it; returns it and its ticket, once
    /// reporting shows them under Ada.
    pub async fn merge_duplicate(&mut self, suite: &Suite) -> (Contact, Ticket) {
        let mut contacts = suite.contacts(TENANT, ADMIN);
        let twin = contact(&mut contacts, "Ada", "L.", "ada@home.example", "", false).await;
        let mut support = suite.support(TENANT, AGENT);
        let chat = ticket(
            &mut support,
            &twin.name,
            "Lost my key",
            TicketChannel::Chat,
            TicketPriority::Urgent,
        )
        .await;
        self.ledger
            .tickets
            .insert(chat.name.clone(), ticket_facts(&chat, None));
        suite.settled().await;
        contacts
            .merge_contacts(MergeContactsRequest {
                survivor: self.ada.name.clone(),
                merged: vec![twin.name.clone()],
                etag: String::new(),
            })
            .await
            .must("MergeContacts");
        let mut reporting = suite.reporting(TENANT, VIEWER);
        eventually_within(
            60,
            "the twin's view is Ada's, with its ticket",
            async || {
                let Ok(v) = view_page(&mut reporting, &twin.name, 1000, "", &[]).await else {
                    return false;
                };
                v.contact == self.ada.name && v.open_tickets.iter().any(|t| t.ticket == chat.name)
            },
        )
        .await;
        // Sales and support re-point their records in events of their own.
        suite.settled().await;
        (twin, chat)
    }
}

/// QueryKpis of every KPI for today, once reporting has settled; panics
/// with every difference from the ledger's values.
pub async fn assert_kpis_today(
    suite: &Suite,
    ledger: &Ledger,
    what: &str,
) -> pb::QueryKpisResponse {
    suite.settled().await;
    let mut reporting = suite.reporting(TENANT, MANAGER);
    let kpis = all_kpis(&mut reporting).await;
    let response = query(
        &mut reporting,
        &kpis,
        period(today(), today()),
        pb::Granularity::Unspecified,
    )
    .await;
    let problems = differences(&response, &ledger.expected());
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
    response
}
