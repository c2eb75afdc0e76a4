//! The contacts service: people, companies and the interaction timeline.
//!
//! Reads top-down: [`build`] wires the layers on the shared service kit;
//! `api/` turns protobuf into domain values and back; `domain/` holds the
//! rules; `store/` the SeaORM queries, always scoped by tenant; `migration/`
//! the schema.

mod api;
mod domain;
mod migration;
mod store;

use crm_proto::contacts::contacts_service_server::ContactsServiceServer;
use crm_shared::{
    config::Settings,
    filter::ListSchema,
    kit::{KitError, ServiceInfo, ServiceKit},
};

pub use api::ROLE_RULES;
pub use migration::Migrator;
/// SearchContacts' statement, which its benchmark also runs by hand.
pub use store::search_statement;

/// The filter and order_by grammar of every list this service serves.
pub const LIST_SCHEMAS: &[ListSchema] = &[
    ListSchema {
        resource: "contacts",
        filter: &store::CONTACT_FILTER,
        order_by: store::CONTACT_ORDER,
    },
    ListSchema {
        resource: "companies",
        filter: &store::COMPANY_FILTER,
        order_by: store::COMPANY_ORDER,
    },
    ListSchema {
        resource: "activities",
        filter: &store::ACTIVITY_FILTER,
        order_by: store::ACTIVITY_ORDER,
    },
];

/// The service's name, package and default port.
pub static SERVICE: ServiceInfo = ServiceInfo {
    name: "contacts",
    package: "crm.contacts.v1",
    default_port: 50061,
};
/// The largest request message accepted, 4 MiB.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The contacts service, bound and connected, ready to run.
pub async fn build(settings: Settings) -> Result<ServiceKit<Migrator>, KitError> {
    let mut kit = ServiceKit::build(&SERVICE, settings).await?;
    let store = store::Store::new(kit.resources(), api::payloads());
    let contacts = api::ContactsApi::new(store, kit.page_tokens());
    kit.add_service(
        ContactsServiceServer::new(contacts).max_decoding_message_size(MAX_MESSAGE_BYTES),
        api::ROLE_RULES,
    )
    .await;
    Ok(kit)
}
