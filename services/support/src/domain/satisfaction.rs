//! Satisfaction surveys: one per ticket, made when it is first solved, and
//! answered by the requester with a signed token that expires
//! ([`super::token`]), so nobody needs an account to say how it went.

use chrono::{DateTime, Utc};
use crm_shared::{error::ApiError, validate::Violations};
use uuid::Uuid;

/// The longest comment with a rating.
const MAX_COMMENT: usize = 10_000;

/// A ticket's survey.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    /// The ticket's id.
    pub ticket: Uuid,
    /// The agent rated (the assignee when solved).
    pub assignee: String,
    /// The queue rated.
    pub queue: String,
    /// 1-5 once answered.
    pub rating: Option<i32>,
    /// The requester's words.
    pub comment: String,
    /// Made (first solved).
    pub create_time: DateTime<Utc>,
    /// The token's end.
    pub expire_time: DateTime<Utc>,
    /// Answered.
    pub submit_time: Option<DateTime<Utc>>,
}

impl Survey {
    /// `tickets/{id}/satisfaction`.
    pub fn name(&self) -> String {
        format!("tickets/{}/satisfaction", self.ticket)
    }
}

/// Checks an answer: INVALID_ARGUMENT naming `rating` or `comment`.
pub fn check_answer(rating: i32, comment: &str) -> Result<(), ApiError> {
    let mut v = Violations::default();
    if !(1..=5).contains(&rating) {
        v.add("rating", "1 to 5");
    }
    v.text("comment", comment, MAX_COMMENT);
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_one_to_five() {
        assert!(check_answer(5, "great").is_ok());
        for bad in [0, 6, -1] {
            let Err(ApiError::InvalidArgument(v)) = check_answer(bad, "") else {
                panic!("{bad} accepted");
            };
            assert_eq!(v[0].field, "rating");
        }
    }
}
