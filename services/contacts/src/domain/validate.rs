//! Field checks: the shared ones, and the limits only contacts have.

pub use crm_shared::validate::{
    MAX_LONG, MAX_SHORT, MAX_TAGS, Violations, normalize_tags, update_paths,
};

/// The most emails or phones on one contact.
pub const MAX_CONTACT_POINTS: usize = 20;
