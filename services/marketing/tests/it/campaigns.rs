//! Campaigns sent for real: exactly the consenting audience gets a
//! personalised message with working unsubscribe headers; an unsubscribe
//! reaches contacts and the next campaign; a sender killed mid-campaign
//! and restarted sends nobody the campaign twice.

use std::collections::HashMap;

use crm_proto::{
    contacts::{Channel as ConsentChannel, ConsentStatus, GetContactRequest},
    marketing::{
        AddListMembersRequest, Audience, Campaign, CampaignState, CreateCampaignRequest,
        CreateMailingListRequest, CreateSegmentRequest, CreateTemplateRequest, DeliveryProblem,
        GetCampaignRequest, ListCampaignRecipientsRequest, MailingList, RecipientState,
        RecordDeliveryProblemRequest, ScheduleCampaignRequest, Segment, Template,
        UnsubscribeRequest,
    },
};

use crate::harness::*;

pub(crate) async fn segment(m: &mut Marketing, filter: &str) -> String {
    m.create_segment(CreateSegmentRequest {
        segment: Some(Segment {
            display_name: format!("Segment {filter}"),
            filter: filter.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .expect("CreateSegment")
    .into_inner()
    .name
}

async fn list(m: &mut Marketing, name: &str, contacts: &[&str], emails: &[&str]) -> String {
    let list = m
        .create_mailing_list(CreateMailingListRequest {
            mailing_list: Some(MailingList {
                display_name: name.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateMailingList")
        .into_inner()
        .name;
    m.add_list_members(AddListMembersRequest {
        mailing_list: list.clone(),
        contacts: contacts.iter().map(|c| (*c).to_owned()).collect(),
        emails: emails.iter().map(|e| (*e).to_owned()).collect(),
    })
    .await
    .expect("AddListMembers");
    list
}

pub(crate) async fn template(m: &mut Marketing) -> String {
    m.create_template(CreateTemplateRequest {
        template: Some(Template {
            display_name: "Launch".into(),
            subject: r#"Hello {{ contact.given_name | default("there") }}"#.into(),
            html_body: r#"<p>Hi {{ contact.given_name | default("there") }}</p><a href="https://acme.example/offer?x=1&y=2">Our offer</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a>"#.into(),
            text_body: "Hi {{ contact.given_name | default(\"there\") }}, {{ campaign.name }} is here.".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .expect("CreateTemplate")
    .into_inner()
    .name
}

async fn campaign(m: &mut Marketing, template: &str, audience: Audience, rate: i32) -> Campaign {
    let c = m
        .create_campaign(CreateCampaignRequest {
            campaign: Some(Campaign {
                display_name: "Spring launch".into(),
                template: template.into(),
                from_address: "news@acme.example".into(),
                from_name: "Acme, Inc.".into(),
                audience: Some(audience),
                messages_per_second: rate,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateCampaign")
        .into_inner();
    assert_eq!(c.state(), CampaignState::Draft);
    m.schedule_campaign(ScheduleCampaignRequest {
        name: c.name.clone(),
        send_time: None,
    })
    .await
    .expect("ScheduleCampaign")
    .into_inner()
}

pub(crate) async fn sent(m: &mut Marketing, name: &str) -> Campaign {
    let mut last = None;
    eventually_within(60, "the campaign is sent", async || {
        let c = m
            .get_campaign(GetCampaignRequest { name: name.into() })
            .await
            .expect("GetCampaign")
            .into_inner();
        let done = c.state() == CampaignState::Sent;
        last = Some(c);
        done
    })
    .await;
    last.expect("a campaign")
}

/// The recipients' addresses of the messages the SMTP server received, with counts.
pub(crate) fn received(smtp: &LocalSmtp) -> HashMap<String, usize> {
    let mut by_address = HashMap::new();
    for message in smtp.messages() {
        let to = header(&message, "To").expect("a To header").to_lowercase();
        *by_address.entry(to).or_insert(0) += 1;
    }
    by_address
}

db_test!(
    a_campaign_reaches_exactly_its_consenting_audience,
    campaign_on
);
async fn campaign_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let ada = suite
        .contact("Ada", "ada@example.com", &["vip"], false)
        .await;
    let _bob = suite
        .contact("Bob", "bob@example.com", &["vip"], true)
        .await;
    let cyd = suite
        .contact("Cyd", "cyd@example.com", &["vip"], false)
        .await;
    // Ada's second record, with her address: she gets one message.
    let eve = suite
        .contact("Eve", "ADA@example.com", &["vip"], false)
        .await;
    let dan = suite.contact("", "dan@example.com", &[], false).await;
    let mut m = suite.marketing(TENANT, MARKETER);
    let vip = segment(&mut m, r#"tags:"vip""#).await;
    let newsletter = list(&mut m, "Newsletter", &[&dan], &["fay@example.com"]).await;
    let exclusions = list(&mut m, "Do not mail", &[&cyd], &[]).await;
    let template = template(&mut m).await;
    let audience = Audience {
        segments: vec![vip.clone()],
        mailing_lists: vec![newsletter.clone()],
        excluded_mailing_lists: vec![exclusions.clone()],
        ..Default::default()
    };
    let first = campaign(&mut m, &template, audience.clone(), 100).await;
    assert_eq!(first.state(), CampaignState::Scheduled);
    let first = sent(&mut m, &first.name).await;
    let counts = first.counts.expect("counts");
    assert_eq!(
        (
            counts.recipients,
            counts.sent,
            counts.suppressed,
            counts.failed,
            counts.uncertain
        ),
        (5, 3, 2, 0, 0),
        "{counts:?}"
    );
    let by_address = received(&suite.smtp);
    let mut addresses: Vec<&str> = by_address.keys().map(String::as_str).collect();
    addresses.sort();
    assert_eq!(
        addresses,
        ["ada@example.com", "dan@example.com", "fay@example.com"]
    );
    assert!(by_address.values().all(|n| *n == 1), "{by_address:?}");

    let messages = suite.smtp.messages();
    // Ada's address went to one of her two records, whichever came first.
    let to_ada = messages
        .iter()
        .find(|m| header(m, "To").is_some_and(|to| to.contains("ada@example.com")))
        .expect("Ada's message");
    let subject = header(to_ada, "Subject").unwrap_or_default();
    assert!(
        ["Hello Ada", "Hello Eve"].contains(&subject.as_str()),
        "{subject}"
    );
    assert!(to_ada.contains("Spring launch is here."), "{to_ada}");
    assert_eq!(
        sender_of(to_ada),
        ("Acme, Inc.".to_owned(), "news@acme.example".to_owned()),
        "a sender's name with a comma"
    );
    let to_dan = messages
        .iter()
        .find(|m| header(m, "To").is_some_and(|to| to.contains("dan@example.com")))
        .expect("Dan's message");
    assert_eq!(
        header(to_dan, "Subject").as_deref(),
        Some("Hello there"),
        "the fallback"
    );
    assert_eq!(
        header(to_ada, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let link = header(to_ada, "List-Unsubscribe").expect("List-Unsubscribe");
    let unsubscribe_url = link
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned();
    let tracking = format!("http://{}/", suite.tracking);
    assert!(
        unsubscribe_url.starts_with(&format!("{tracking}u?token=")),
        "{link}"
    );
    let token = unsubscribe_url
        .split("token=")
        .nth(1)
        .expect("a token")
        .to_owned();

    // Ada's mail client loads the image and she follows the link.
    let html = html_of(to_ada);
    let pixel = attributes(&html, "src")
        .into_iter()
        .find(|src| src.starts_with(&format!("{tracking}o/")))
        .expect("the tracking image");
    let image = http("GET", &pixel, "").await;
    assert_eq!(
        (image.status, image.header("content-type")),
        (200, Some("image/gif"))
    );
    let click = attributes(&html, "href")
        .into_iter()
        .find(|href| href.starts_with(&format!("{tracking}c/")))
        .expect("a tracked link");
    assert!(
        attributes(&html, "href").contains(&unsubscribe_url),
        "the unsubscribe link is not tracked"
    );
    let followed = http("GET", &click, "").await;
    assert_eq!(
        (followed.status, followed.header("location")),
        (303, Some("https://acme.example/offer?x=1&y=2")),
        "{}",
        followed.body
    );
    // The link redirects only where the message pointed.
    let (base, _) = click.split_once("&u=").expect("a target");
    let swapped = http(
        "GET",
        &format!("{base}&u=https%3A%2F%2Fevil.example%2F"),
        "",
    )
    .await;
    assert_eq!(swapped.status, 404);

    // The ledger says why each was left out.
    let ledger = m
        .list_campaign_recipients(ListCampaignRecipientsRequest {
            parent: first.name.clone(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("ListCampaignRecipients")
        .into_inner()
        .recipients;
    let suppressed: Vec<&str> = ledger
        .iter()
        .filter(|r| r.state() == RecipientState::Suppressed)
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(suppressed.len(), 2);
    assert!(
        suppressed.contains(&"email consent withdrawn"),
        "{suppressed:?}"
    );
    assert!(
        suppressed.contains(&"another recipient has this address"),
        "{suppressed:?}"
    );

    // Ada's mail client unsubscribes in one click (RFC 8058); contacts
    // records it. The page asks first when a person opens the link.
    let page = http("GET", &unsubscribe_url, "").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    let done = http("POST", &unsubscribe_url, "List-Unsubscribe=One-Click").await;
    assert_eq!(done.status, 200, "{}", done.body);
    let holder = if subject == "Hello Ada" { &ada } else { &eve };
    let again = suite
        .anonymous()
        .unsubscribe(UnsubscribeRequest { token })
        .await
        .expect("unsubscribing again changes nothing")
        .into_inner();
    assert_eq!(&again.contact, holder);
    let ada_now = suite
        .contacts(TENANT, ADMIN)
        .get_contact(GetContactRequest {
            name: holder.clone(),
        })
        .await
        .expect("GetContact")
        .into_inner();
    assert!(
        ada_now
            .consents
            .iter()
            .any(|c| c.channel == ConsentChannel::Email as i32
                && c.status == ConsentStatus::Withdrawn as i32),
        "{:?}",
        ada_now.consents
    );

    // Dan's address bounces for good, as the relay reports (twice: once counts).
    let dan_row = ledger
        .iter()
        .find(|r| r.contact == dan)
        .expect("Dan's ledger row");
    for _ in 0..2 {
        let bounced = m
            .record_delivery_problem(RecordDeliveryProblemRequest {
                message_id: dan_row.message_id.clone(),
                problem: DeliveryProblem::HardBounce as i32,
                reason: "550 5.1.1 no such user".into(),
            })
            .await
            .expect("RecordDeliveryProblem")
            .into_inner();
        assert!(bounced.suppressed);
    }
    let counts = m
        .get_campaign(GetCampaignRequest {
            name: first.name.clone(),
        })
        .await
        .expect("GetCampaign")
        .into_inner()
        .counts
        .expect("counts");
    assert_eq!(
        (
            counts.unique_opens,
            counts.opens,
            counts.unique_clicks,
            counts.clicks,
            counts.unsubscribes,
            counts.bounces
        ),
        (1, 1, 1, 1, 1, 1),
        "{counts:?}"
    );

    // The next campaign skips Ada's address (on her record whose consent is
    // withdrawn, and on the other, whose address is suppressed) and Dan's.
    let second = campaign(&mut m, &template, audience, 100).await;
    let second = sent(&mut m, &second.name).await;
    assert_eq!(second.counts.expect("counts").sent, 1);
    let by_address = received(&suite.smtp);
    assert_eq!(
        by_address.get("ada@example.com"),
        Some(&1),
        "{by_address:?}"
    );
    assert_eq!(
        by_address.get("dan@example.com"),
        Some(&1),
        "{by_address:?}"
    );
    assert_eq!(
        by_address.get("fay@example.com"),
        Some(&2),
        "{by_address:?}"
    );

    let events: Vec<String> = suite
        .marketing_events()
        .await
        .into_iter()
        .map(|e| e.r#type)
        .collect();
    let count = |kind: &str| {
        events
            .iter()
            .filter(|e| *e == &format!("crm.marketing.v1.{kind}"))
            .count()
    };
    assert_eq!(
        (
            count("CampaignStarted"),
            count("CampaignSent"),
            count("EmailSent"),
            count("ContactUnsubscribed"),
            count("EmailOpened"),
            count("EmailClicked"),
            count("EmailBounced")
        ),
        (2, 2, 4, 1, 1, 1, 1),
        "{events:?}"
    );
}

db_test!(a_sender_killed_mid_campaign_sends_nobody_twice, kill_on);
async fn kill_on(backend: Backend) {
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    for i in 0..20 {
        suite
            .contact(
                &format!("Reader{i}"),
                &format!("reader{i}@example.com"),
                &["bulk"],
                false,
            )
            .await;
    }
    let mut m = suite.marketing(TENANT, MARKETER);
    let bulk = segment(&mut m, r#"tags:"bulk""#).await;
    let template = template(&mut m).await;
    let audience = Audience {
        segments: vec![bulk],
        ..Default::default()
    };
    // Five a second: the kill lands mid-campaign.
    let c = campaign(&mut m, &template, audience, 5).await;
    eventually_within(60, "some messages go out", async || {
        suite.smtp.messages().len() >= 4
    })
    .await;
    suite.marketing.kill();
    let at_kill = suite.smtp.messages().len();
    assert!(at_kill < 20, "the kill came too late to prove anything");
    suite.marketing.restart().await;
    let mut m = suite.marketing(TENANT, MARKETER);
    let done = sent(&mut m, &c.name).await;
    let counts = done.counts.expect("counts");
    assert_eq!(counts.recipients, 20);
    assert_eq!(counts.sent + counts.uncertain, 20, "{counts:?}");
    let by_address = received(&suite.smtp);
    assert!(
        by_address.values().all(|n| *n == 1),
        "somebody got the campaign twice: {by_address:?}"
    );
    // Everyone sent got it; an uncertain one may or may not have.
    let delivered = by_address.len() as i32;
    assert!(
        (counts.sent..=counts.sent + counts.uncertain).contains(&delivered),
        "{delivered} delivered for {counts:?}"
    );
}
