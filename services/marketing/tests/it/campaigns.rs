//! Campaigns sent for real: exactly the consenting audience gets a
//! personalised message with working unsubscribe headers; an unsubscribe
//! reaches contacts and the next campaign; a sender killed mid-campaign
//! and restarted sends nobody the campaign twice.

use std::collections::HashMap;

use crm_proto::{
    contacts::{Channel as ConsentChannel, ConsentStatus, GetContactRequest},
    marketing::{
        AddListMembersRequest, Audience, Campaign, CampaignState, CreateCampaignRequest,
        CreateMailingListRequest, CreateSegmentRequest, CreateTemplateRequest, GetCampaignRequest,
        ListCampaignRecipientsRequest, MailingList, RecipientState, ScheduleCampaignRequest,
        Segment, Template, UnsubscribeRequest,
    },
};

use crate::harness::*;

async fn segment(m: &mut Marketing, filter: &str) -> String {
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

async fn template(m: &mut Marketing) -> String {
    m.create_template(CreateTemplateRequest {
        template: Some(Template {
            display_name: "Launch".into(),
            subject: r#"Hello {{ contact.given_name | default("there") }}"#.into(),
            html_body: r#"<p>Hi {{ contact.given_name | default("there") }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>"#.into(),
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
                from_name: "Acme".into(),
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

async fn sent(m: &mut Marketing, name: &str) -> Campaign {
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
fn received(smtp: &LocalSmtp) -> HashMap<String, usize> {
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
    let token = link
        .trim_start_matches("<https://acme.example/unsubscribe?token=")
        .trim_end_matches('>')
        .to_owned();
    assert_ne!(
        token, link,
        "the link is the configured page with a token: {link}"
    );

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

    // Ada unsubscribes with no account: contacts records it.
    let unsubscribed = suite
        .anonymous()
        .unsubscribe(UnsubscribeRequest {
            token: token.clone(),
        })
        .await
        .expect("Unsubscribe")
        .into_inner();
    let holder = if subject == "Hello Ada" { &ada } else { &eve };
    assert_eq!(&unsubscribed.contact, holder);
    suite
        .anonymous()
        .unsubscribe(UnsubscribeRequest { token })
        .await
        .expect("unsubscribing again changes nothing");
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

    // The next campaign skips her address: on her record whose consent is
    // withdrawn, and on the other, whose address is suppressed.
    let second = campaign(&mut m, &template, audience, 100).await;
    let second = sent(&mut m, &second.name).await;
    assert_eq!(second.counts.expect("counts").sent, 2);
    let by_address = received(&suite.smtp);
    assert_eq!(
        by_address.get("ada@example.com"),
        Some(&1),
        "{by_address:?}"
    );
    assert_eq!(
        by_address.get("dan@example.com"),
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
            count("ContactUnsubscribed")
        ),
        (2, 2, 5, 1),
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
