//! The sales service: leads to revenue.
//!
//! Reads top-down: [`build`] wires the layers on the shared service kit;
//! `api/` turns protobuf into domain values and back; `domain/` holds the
//! rules (validation, assignment, scoring, forecasts); `store/` the SeaORM
//! queries, always scoped by tenant; `migration/` the schema. `contacts` is
//! the client of the contacts service; `consumer` what its feed asks of sales.

mod api;
mod consumer;
mod contacts;
mod domain;
mod migration;
mod store;

use std::sync::Arc;

use crm_proto::sales::sales_service_server::SalesServiceServer;
use crm_shared::{
    config::Settings,
    filter::ListSchema,
    kit::{KitError, ServiceInfo, ServiceKit},
};

pub use api::ROLE_RULES;
pub use migration::Migrator;

/// The filter and order_by grammar of every list this service serves (rule
/// filters are lead filters).
pub const LIST_SCHEMAS: &[ListSchema] = &[
    ListSchema {
        resource: "leads",
        filter: &store::LEAD_FILTER,
        order_by: store::LEAD_ORDER,
    },
    ListSchema {
        resource: "opportunities",
        filter: &store::OPPORTUNITY_FILTER,
        order_by: store::OPPORTUNITY_ORDER,
    },
    ListSchema {
        resource: "products",
        filter: &store::PRODUCT_FILTER,
        order_by: store::PRODUCT_ORDER,
    },
    ListSchema {
        resource: "tasks",
        filter: &store::TASK_FILTER,
        order_by: store::TASK_ORDER,
    },
];

/// The service's name, package and default port.
pub static SERVICE: ServiceInfo = ServiceInfo {
    name: "sales",
    package: "crm.sales.v1",
    default_port: 50062,
};
/// The largest request message accepted, 4 MiB.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The sales service, bound and connected, ready to run: its API, and the
/// contacts feed followed (merges and erasures reach sales).
pub async fn build(settings: Settings) -> Result<ServiceKit<Migrator>, KitError> {
    let mut kit = ServiceKit::build(&SERVICE, settings).await?;
    let store = store::Store::new(kit.resources(), Arc::new(api::ProtoPayloads));
    let sales = api::SalesApi::new(
        store.clone(),
        contacts::Contacts::new(kit.peer(consumer::SOURCE)?),
        kit.page_tokens(),
    );
    kit.add_service(
        SalesServiceServer::new(sales).max_decoding_message_size(MAX_MESSAGE_BYTES),
        api::ROLE_RULES,
    )
    .await;
    kit.follow(
        consumer::SOURCE,
        Arc::new(consumer::ContactsFeed::new(store)),
    )?;
    Ok(kit)
}
