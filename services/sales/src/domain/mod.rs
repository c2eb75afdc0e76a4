//! The sales rules, free of SQL and protobuf: what a valid lead, rule,
//! pipeline, opportunity, product and task is; how leads are assigned and
//! scored; how forecasts and pipeline analyses are computed.

pub mod analysis;
pub mod assignment;
pub mod conversion;
pub mod erasure;
pub mod lead;
pub mod opportunity;
pub mod pipeline;
pub mod product;
pub mod scoring;
pub mod task;
