//! The marketing rules, free of SQL and protobuf: what a valid segment,
//! list, template and campaign is; how a campaign moves from draft to sent;
//! how a template is checked and rendered; who of an audience may be sent to.

pub mod ab_test;
pub mod audience;
pub mod campaign;
pub mod journey;
pub mod template;
pub mod tracking;
