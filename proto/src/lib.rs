//! Rust types and tonic stubs for every package under `proto/`, compiled once
//! for the whole suite, and the descriptor set that server reflection serves.

pub mod codec;
pub mod json;

/// The encoded `FileDescriptorSet` of every suite proto and everything it imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/crm_descriptor.bin"));

pub mod crm {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("crm.common.v1");
        }
    }
    pub mod events {
        pub mod v1 {
            tonic::include_proto!("crm.events.v1");
        }
    }
    pub mod audit {
        pub mod v1 {
            tonic::include_proto!("crm.audit.v1");
        }
    }
    pub mod contacts {
        pub mod v1 {
            tonic::include_proto!("crm.contacts.v1");
        }
    }
    pub mod sales {
        pub mod v1 {
            tonic::include_proto!("crm.sales.v1");
        }
    }
    pub mod support {
        pub mod v1 {
            tonic::include_proto!("crm.support.v1");
        }
    }
    pub mod marketing {
        pub mod v1 {
            tonic::include_proto!("crm.marketing.v1");
        }
    }
    pub mod reporting {
        pub mod v1 {
            tonic::include_proto!("crm.reporting.v1");
        }
    }
    pub mod gateway {
        pub mod v1 {
            tonic::include_proto!("crm.gateway.v1");
        }
    }
}

pub use crm::audit::v1 as audit;
pub use crm::common::v1 as common;
pub use crm::contacts::v1 as contacts;
pub use crm::events::v1 as events;
pub use crm::gateway::v1 as gateway;
pub use crm::marketing::v1 as marketing;
pub use crm::reporting::v1 as reporting;
pub use crm::sales::v1 as sales;
pub use crm::support::v1 as support;
