//! `crmctl events tail`: one service's event feed, as it commits.

use anyhow::Context;
use crm_proto::events::{
    Event, StreamEventsRequest, event_feed_service_client::EventFeedServiceClient,
};
use serde_json::json;
use tonic::metadata::AsciiMetadataValue;

use crate::{
    Output,
    connect::Target,
    exit::{ExitCode, usage},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service whose feed to follow, as the gateway names its upstream
    /// (contacts, sales, ...).
    #[arg(long, short = 's')]
    service: String,
    /// Only events of these types; the package may be left out
    /// (`ContactCreated` for `crm.contacts.v1.ContactCreated`). Repeat or comma-separate.
    #[arg(long = "type", short = 't', value_delimiter = ',')]
    types: Vec<String>,
    /// Start after this sequence; 0 starts at the beginning of the feed.
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// Stop after the events already committed instead of waiting for more.
    #[arg(long)]
    no_follow: bool,
    /// Stop after this many events.
    #[arg(long)]
    max: Option<u32>,
}

pub async fn tail(target: &Target, args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    let Ok(upstream) = AsciiMetadataValue::try_from(args.service.as_str()) else {
        usage!("--service {:?} is not a service name", args.service);
    };
    let types = args
        .types
        .iter()
        .map(|t| qualified_type(&args.service, t))
        .collect();
    let mut request = tonic::Request::new(StreamEventsRequest {
        after_sequence: args.after,
        follow: !args.no_follow,
        types,
        max_events: args.max.map_or(0, |max| max.min(i32::MAX as u32) as i32),
    });
    request.metadata_mut().insert("x-crm-upstream", upstream);
    let mut feed = EventFeedServiceClient::new(target.authorized().await?);
    let mut events = feed
        .stream_events(request)
        .await
        .with_context(|| format!("opening the {} feed", args.service))?
        .into_inner();
    while let Some(message) = events.message().await.context("reading the feed")? {
        let Some(event) = message.event else { continue };
        match output {
            Output::Json => println!("{}", event_json(&event)),
            Output::Text => println!("{}", event_line(&event)),
        }
    }
    Ok(ExitCode::Done)
}

/// `ContactCreated` on the contacts feed is `crm.contacts.v1.ContactCreated`.
fn qualified_type(service: &str, name: &str) -> String {
    if name.contains('.') {
        name.to_owned()
    } else {
        format!("crm.{service}.v1.{name}")
    }
}

fn time(event: &Event) -> String {
    event
        .time
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// One line for people: sequence, time, type, subject, actor.
fn event_line(event: &Event) -> String {
    format!(
        "{:>8}  {}  {}  {}  by {}",
        event.sequence,
        time(event),
        event.r#type,
        event.subject,
        if event.actor.is_empty() {
            "-"
        } else {
            &event.actor
        }
    )
}

/// The event as JSON, its payload decoded.
fn event_json(event: &Event) -> serde_json::Value {
    let payload = event
        .payload
        .as_ref()
        .map(|any| crm_proto::json::any_to_json(any).unwrap_or(serde_json::Value::Null));
    json!({
        "sequence": event.sequence,
        "id": event.id,
        "type": event.r#type,
        "source": event.source,
        "subject": event.subject,
        "tenant": event.tenant,
        "time": time(event),
        "actor": event.actor,
        "payload": payload,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_type_names_take_the_service_package() {
        assert_eq!(
            super::qualified_type("contacts", "ContactCreated"),
            "crm.contacts.v1.ContactCreated"
        );
        assert_eq!(
            super::qualified_type("contacts", "crm.sales.v1.LeadCreated"),
            "crm.sales.v1.LeadCreated"
        );
    }
}
