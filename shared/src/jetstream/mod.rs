//! The outbox on NATS JetStream, for a suite whose tenants outgrow the
//! built-in feed (`CRM_EVENTS__NATS_URL` set; unset, nothing here runs).
//!
//! - Each producing service runs a [`relay`] on one replica that publishes its
//!   committed outbox events, in sequence order, to its own stream
//!   (`CRM_<SERVICE>`, subjects `crm.<service>.<tenant>.<event type>`).
//! - Each consuming service reads those streams with the partitioned
//!   consumer (`consumer::partitioned`): events are split by tenant into
//!   `partitions`, each partition is applied by one replica at a time, in
//!   order, exactly once (the cursor moves in the effect's transaction, as
//!   with the built-in feed).
//!
//! The server this targets is 2.9 (Debian's), which has no subject
//! transforms, so the partition is computed by the clients from the tenant
//! token: FNV-1a (32 bit) modulo the partition count, the hash of the
//! server's own `partition()` transform, so a 2.10 stream transform could
//! take the job over with the same assignment.

pub mod relay;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use serde::Deserialize;

/// The `[events]` section: where events travel between services.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EventsSettings {
    /// `nats://host:4222`: publish the outbox to JetStream and consume other
    /// services' events from it. Unset: the built-in `StreamEvents` feed.
    pub nats_url: Option<String>,
    /// How many partitions each consumer splits a source's tenants into: the
    /// most replicas that can share one source's work. Keep it fixed once
    /// consumers have run (each partition keeps its own position).
    pub partitions: u32,
    /// Copies of each stream in a JetStream cluster (1 or 3 usually).
    pub stream_replicas: usize,
    /// How long a stream keeps events, in days; bounds how long a consumer
    /// may be away and how long an erased person's events stay in it.
    pub stream_max_age_days: u64,
    /// The most bytes a stream keeps (-1: no limit but the age).
    pub stream_max_bytes: i64,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            nats_url: None,
            partitions: 12,
            stream_replicas: 1,
            stream_max_age_days: 7,
            stream_max_bytes: -1,
        }
    }
}

/// Why JetStream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    /// The settings are unusable.
    #[error("events.{field}: {reason}")]
    Settings {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A JetStream call failed (the server is down, the stream missing, a
    /// publish refused).
    #[error("jetstream: {0}")]
    Call(String),
}

impl JetStreamError {
    pub(crate) fn call(error: impl std::fmt::Display) -> Self {
        Self::Call(error.to_string())
    }
}

/// A connection to NATS shared by a process's relay and consumers. It
/// reconnects by itself; [`Transport::connected`] says whether it is up now.
#[derive(Clone)]
pub struct Transport {
    client: async_nats::Client,
    context: jetstream::Context,
    settings: EventsSettings,
}

impl Transport {
    /// Connects to `settings.nats_url` (retrying in the background when the
    /// server does not answer yet, so a service starts without NATS).
    pub async fn connect(settings: &EventsSettings) -> Result<Self, JetStreamError> {
        let url = settings
            .nats_url
            .clone()
            .ok_or_else(|| JetStreamError::Settings {
                field: "nats_url",
                reason: "not set".into(),
            })?;
        if !(1..=1024).contains(&settings.partitions) {
            return Err(JetStreamError::Settings {
                field: "partitions",
                reason: "must be between 1 and 1024".into(),
            });
        }
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url.as_str())
            .await
            .map_err(|error| JetStreamError::Settings {
                field: "nats_url",
                reason: error.to_string(),
            })?;
        let context = jetstream::new(client.clone());
        Ok(Self {
            client,
            context,
            settings: settings.clone(),
        })
    }

    /// Whether the connection to NATS is up.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// How many times the connection was made (the first and each
    /// reconnect): what a reader compares to notice a reconnect.
    pub fn connects(&self) -> u64 {
        self.client
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The JetStream API.
    pub fn context(&self) -> &jetstream::Context {
        &self.context
    }

    /// The partition count consumers use.
    pub fn partitions(&self) -> u32 {
        self.settings.partitions
    }

    /// The stream of `service`'s events, created (or its limits updated) to
    /// match the settings.
    pub async fn ensure_stream(&self, service: &str) -> Result<stream::Stream, JetStreamError> {
        let config = stream::Config {
            name: stream_name(service),
            subjects: vec![format!("crm.{service}.>")],
            storage: stream::StorageType::File,
            num_replicas: self.settings.stream_replicas.max(1),
            max_age: Duration::from_secs(self.settings.stream_max_age_days.max(1) * 24 * 3600),
            max_bytes: self.settings.stream_max_bytes,
            // Publishes carry the event id as Nats-Msg-Id; a retry within this
            // window is dropped by the server.
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        match self.context.get_stream(&config.name).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(JetStreamError::call)?;
                let current = &info.config;
                if current.max_age != config.max_age
                    || current.max_bytes != config.max_bytes
                    || current.num_replicas != config.num_replicas
                {
                    self.context
                        .update_stream(&config)
                        .await
                        .map_err(JetStreamError::call)?;
                }
                Ok(existing)
            }
            Err(_) => self
                .context
                .get_or_create_stream(config)
                .await
                .map_err(JetStreamError::call),
        }
    }

    /// The stream of `service`'s events, which its relay creates.
    pub async fn stream(&self, service: &str) -> Result<stream::Stream, JetStreamError> {
        self.context
            .get_stream(stream_name(service))
            .await
            .map_err(JetStreamError::call)
    }
}

/// "CRM_CONTACTS".
pub fn stream_name(service: &str) -> String {
    format!("CRM_{}", service.to_uppercase())
}

/// The header carrying the event's outbox sequence at its source.
pub const SEQUENCE_HEADER: &str = "Crm-Sequence";

/// `crm.<service>.<tenant token>.<event name>` for an event of full type
/// `event_type` ("crm.contacts.v1.ContactCreated" -> "ContactCreated").
pub fn subject(service: &str, tenant: &str, event_type: &str) -> String {
    let name = event_type.rsplit('.').next().unwrap_or(event_type);
    format!(
        "crm.{service}.{}.{}",
        subject_token(tenant),
        subject_token(name)
    )
}

/// `value` as one subject token: letters, digits, `-` and `_` as they are,
/// every other byte as `%XX`, so no tenant id can add a token or a wildcard.
pub fn subject_token(value: &str) -> String {
    let mut token = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            token.push(byte as char);
        } else {
            token.push_str(&format!("%{byte:02X}"));
        }
    }
    if token.is_empty() {
        token.push_str("%00");
    }
    token
}

/// The tenant token of a subject made by [`subject`].
pub fn tenant_token(subject: &str) -> Option<&str> {
    subject.split('.').nth(2)
}

/// The partition of a tenant token among `partitions`: FNV-1a 32 of the
/// token, the hash NATS's `partition()` transform uses.
pub fn partition(tenant_token: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in tenant_token.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// The partition of the tenant `tenant` (not yet a token).
pub fn tenant_partition(tenant: &str, partitions: u32) -> u32 {
    partition(&subject_token(tenant), partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_have_four_tokens_whatever_the_tenant() {
        assert_eq!(
            subject("contacts", "acme", "crm.contacts.v1.ContactCreated"),
            "crm.contacts.acme.ContactCreated"
        );
        let odd = subject("sales", "a.b *>c%", "crm.sales.v1.LeadCreated");
        assert_eq!(odd, "crm.sales.a%2Eb%20%2A%3Ec%25.LeadCreated");
        assert_eq!(odd.split('.').count(), 4);
        assert_eq!(tenant_token(&odd), Some("a%2Eb%20%2A%3Ec%25"));
        assert_eq!(subject_token(""), "%00");
    }

    #[test]
    fn partitions_are_fnv1a_of_the_token() {
        // FNV-1a 32 of "a" is 0xe40c292c (the published test vector).
        assert_eq!(partition("a", 1 << 31), 0xe40c_292c % (1 << 31));
        assert_eq!(partition("", 7), 0x811c_9dc5 % 7);
        // Tenants spread over the partitions.
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..200 {
            seen.insert(tenant_partition(&format!("tenant-{n}"), 12));
        }
        assert_eq!(seen.len(), 12);
    }
}
