//! The reporting rules, free of SQL and protobuf: periods and their
//! buckets, the facts each resource contributes to the daily aggregates,
//! and the KPIs computed from them.

pub mod facts;
pub mod kpi;
pub mod model;
pub mod period;
pub mod report;
