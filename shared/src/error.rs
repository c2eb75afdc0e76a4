//! The one mapping from what went wrong to the `tonic::Status` a client sees,
//! with google.rpc error details: `ErrorInfo` always, `BadRequest` field
//! violations for INVALID_ARGUMENT, `RetryInfo` for RESOURCE_EXHAUSTED and
//! UNAVAILABLE (AIP-193). Database messages never reach a client.

use std::{collections::HashMap, sync::OnceLock, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of this process, for example "contacts.crm".
static DOMAIN: OnceLock<String> = OnceLock::new();

/// Sets the `ErrorInfo.domain` for this process; the first call wins.
pub fn set_domain(domain: &str) {
    let _ = DOMAIN.set(domain.to_owned());
}

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field path, for example "contact.emails[0].address".
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Every way a request can fail, as the API reports it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; each violation names a field.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The resource does not exist in the caller's tenant.
    #[error("{0} not found")]
    NotFound(String),
    /// A resource with the same identity exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The etag is stale, or a concurrent change won.
    #[error("{0}")]
    Aborted(String),
    /// The resource is not in a state that allows this.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller's roles do not allow this.
    #[error("{0}")]
    PermissionDenied(String),
    /// No valid identity.
    #[error("{0}")]
    Unauthenticated(String),
    /// A limit was hit; come back after `retry_after`.
    #[error("{message}")]
    ResourceExhausted {
        /// What limit.
        message: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// A dependency (the database, another service) is down; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug. The detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// An INVALID_ARGUMENT naming one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// The canonical code.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::Aborted(_) => Code::Aborted,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// The UPPER_SNAKE `ErrorInfo.reason`.
    fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "INVALID_FIELD",
            Self::NotFound(_) => "RESOURCE_NOT_FOUND",
            Self::AlreadyExists(_) => "RESOURCE_EXISTS",
            Self::Aborted(_) => "CONCURRENT_MODIFICATION",
            Self::FailedPrecondition(_) => "FAILED_PRECONDITION",
            Self::PermissionDenied(_) => "ROLE_NOT_ALLOWED",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::ResourceExhausted { .. } => "RATE_LIMITED",
            Self::Unavailable(_) => "DEPENDENCY_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let domain = DOMAIN.get().map(String::as_str).unwrap_or("crm");
        let mut metadata = HashMap::new();
        let mut details = ErrorDetails::new();
        let message = match &error {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        match &error {
            ApiError::InvalidArgument(violations) => {
                for v in violations {
                    details.add_bad_request_violation(&v.field, &v.description);
                }
            }
            ApiError::NotFound(resource) => {
                metadata.insert("resource".to_owned(), resource.clone());
            }
            ApiError::ResourceExhausted { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
            }
            ApiError::Unavailable(_) => {
                details.set_retry_info(Some(Duration::from_secs(1)));
            }
            _ => {}
        }
        details.set_error_info(error.reason(), domain, metadata);
        Status::with_error_details(error.code(), message, details)
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        use sea_orm::{DbErr, RuntimeErr, SqlErr};
        if let Some(SqlErr::UniqueConstraintViolation(_)) = error.sql_err() {
            return ApiError::AlreadyExists("a resource with the same unique key exists".into());
        }
        let unavailable = |why: &str| {
            tracing::warn!(%error, "database unavailable");
            ApiError::Unavailable(format!("the database {why}; retry later"))
        };
        match &error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => unavailable("is unavailable"),
            DbErr::Exec(RuntimeErr::SqlxError(sqlx))
            | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => match classify(sqlx) {
                DatabaseFault::Down => unavailable("is unavailable"),
                DatabaseFault::Full => unavailable("is out of space"),
                DatabaseFault::ReadOnly => unavailable("is read-only"),
                DatabaseFault::Conflict => {
                    ApiError::Aborted("a concurrent change conflicted; retry".into())
                }
                DatabaseFault::Other => ApiError::Internal(error.to_string()),
            },
            _ => ApiError::Internal(error.to_string()),
        }
    }
}

/// What a database error means for the caller.
#[derive(Debug, PartialEq, Eq)]
enum DatabaseFault {
    /// The connection is gone or the server is shutting down or starting:
    /// the same call will work once it is back.
    Down,
    /// No space left.
    Full,
    /// The database accepts no writes (a read-only file or a standby).
    ReadOnly,
    /// A serialization failure or deadlock: retrying the call is the answer.
    Conflict,
    /// A bug or a constraint: nothing a retry fixes.
    Other,
}

fn classify(error: &sea_orm::sqlx::Error) -> DatabaseFault {
    use sea_orm::sqlx::Error as Sqlx;
    match error {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed
        | Sqlx::Protocol(_) => DatabaseFault::Down,
        Sqlx::Database(database) => {
            let postgres = database
                .try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>()
                .is_some();
            classify_code(&database.code().unwrap_or_default(), postgres)
        }
        _ => DatabaseFault::Other,
    }
}

/// PostgreSQL SQLSTATEs, or SQLite result codes (primary code in the low byte).
fn classify_code(code: &str, postgres: bool) -> DatabaseFault {
    if !postgres {
        return match code.parse::<i32>().unwrap_or_default() & 0xff {
            // SQLITE_BUSY, SQLITE_LOCKED: another writer held on too long.
            5 | 6 => DatabaseFault::Down,
            8 => DatabaseFault::ReadOnly,
            13 => DatabaseFault::Full,
            // SQLITE_IOERR, SQLITE_CANTOPEN
            10 | 14 => DatabaseFault::Down,
            _ => DatabaseFault::Other,
        };
    }
    match code {
        // connection exceptions; admin shutdown, crash shutdown, cannot connect now
        c if c.starts_with("08") => DatabaseFault::Down,
        "57P01" | "57P02" | "57P03" => DatabaseFault::Down,
        "53100" => DatabaseFault::Full,
        c if c.starts_with("53") => DatabaseFault::Down,
        "25006" => DatabaseFault::ReadOnly,
        "40001" | "40P01" => DatabaseFault::Conflict,
        _ => DatabaseFault::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations_and_error_info() {
        let status = Status::from(ApiError::invalid(
            "contact.emails[0].address",
            "not an email",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violations = &details.bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "contact.emails[0].address");
        assert_eq!(details.error_info().unwrap().reason, "INVALID_FIELD");
    }

    #[test]
    fn database_faults_are_told_apart_by_their_codes() {
        for (code, postgres, fault) in [
            ("57P01", true, DatabaseFault::Down),
            ("08006", true, DatabaseFault::Down),
            ("53100", true, DatabaseFault::Full),
            ("25006", true, DatabaseFault::ReadOnly),
            ("40001", true, DatabaseFault::Conflict),
            ("23505", true, DatabaseFault::Other),
            ("5", false, DatabaseFault::Down),
            ("13", false, DatabaseFault::Full),
            ("8", false, DatabaseFault::ReadOnly),
            ("1032", false, DatabaseFault::ReadOnly),
            ("2067", false, DatabaseFault::Other),
        ] {
            assert_eq!(classify_code(code, postgres), fault, "{code}");
        }
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let status = Status::from(ApiError::Internal("syntax error at SELECT".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("SELECT"));
    }

    #[test]
    fn resource_exhausted_says_when_to_retry() {
        let status = Status::from(ApiError::ResourceExhausted {
            message: "slow down".into(),
            retry_after: Duration::from_secs(3),
        });
        let retry = status.get_error_details().retry_info().cloned().unwrap();
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(3)));
    }
}
