//! The rules of contacts, companies and activities: what a valid value is,
//! how an update applies, how duplicates score and how a merge combines.
//! No SQL and no protobuf here.

pub mod activity;
pub mod company;
pub mod contact;
pub mod duplicates;
pub mod erasure;
pub mod text;
pub mod validate;

pub use activity::{Activity, ActivityDraft, ActivityKind};
pub use company::{Company, CompanyDraft, Money};
pub use contact::{
    Channel, Consent, ConsentStatus, Contact, ContactDraft, Email, LifecycleStage, Phone,
    PostalAddress,
};
pub use erasure::Erasure;
