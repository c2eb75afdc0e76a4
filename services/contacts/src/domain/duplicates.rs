//! Duplicate scoring: each kind of evidence has a weight, and evidence
//! combines as independent signals do, 1 - Π(1 - wᵢ), so two weak reasons
//! together outrank either alone and nothing reaches 1.

use super::text::fold;

/// Why two contacts look alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A shared email address.
    SameEmail,
    /// A shared phone number.
    SamePhone,
    /// Similar names at the same company.
    SimilarNameSameCompany,
}

/// How similar two names must be (Jaro-Winkler on folded names) to count.
pub const NAME_SIMILARITY_THRESHOLD: f64 = 0.88;

/// The score of a pair with these reasons; `name_similarity` is used for
/// the name reason.
pub fn score(reasons: &[Reason], name_similarity: f64) -> f64 {
    let miss: f64 = reasons
        .iter()
        .map(|reason| match reason {
            Reason::SameEmail => 0.9,
            Reason::SamePhone => 0.7,
            Reason::SimilarNameSameCompany => 0.6 * name_similarity,
        })
        .map(|weight| 1.0 - weight)
        .product();
    1.0 - miss
}

/// Jaro-Winkler similarity of two display names, case- and accent-folded.
pub fn name_similarity(a: &str, b: &str) -> f64 {
    strsim::jaro_winkler(&fold(a), &fold(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_evidence_scores_higher() {
        let email = score(&[Reason::SameEmail], 0.0);
        let both = score(&[Reason::SameEmail, Reason::SamePhone], 0.0);
        assert!(both > email && both < 1.0);
        assert!(score(&[Reason::SimilarNameSameCompany], 0.95) < email);
    }

    #[test]
    fn names_compare_without_case_and_accents() {
        assert!(name_similarity("José Müller", "jose muller") > 0.99);
        assert!(name_similarity("Jon Smith", "John Smith") > NAME_SIMILARITY_THRESHOLD);
        assert!(name_similarity("Ada Lovelace", "Grace Hopper") < NAME_SIMILARITY_THRESHOLD);
    }
}
