//! Exit codes a script can rely on, decided in one place from what went wrong.

use tonic::Code;

/// How `crmctl` ends. The numbers are part of its interface (see `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Done.
    Done = 0,
    /// Failed for a reason not listed below.
    Failed = 1,
    /// Bad usage or an unreadable input (clap also exits 2 on bad flags).
    Usage = 2,
    /// Done in part: rows rejected, a service not serving, or an erasure
    /// some service has not confirmed yet.
    Partly = 3,
    /// The gateway or a service behind it is unavailable (or too slow).
    Unavailable = 4,
    /// Not authenticated, or the token's roles do not allow it.
    Denied = 5,
    /// What was named does not exist.
    NotFound = 6,
    /// The server refused the request as invalid.
    Invalid = 7,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// A mistake in how crmctl was called or in its input: exit 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Fails with a [`Usage`] error.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::exit::Usage(format!($($arg)*))))
    };
}
pub(crate) use usage;

/// The error for people: each context, and a gRPC status as its code, its
/// message and the fields a bad request names.
pub fn describe(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(|cause| match cause.downcast_ref::<tonic::Status>() {
            Some(status) => describe_status(status),
            None => cause.to_string(),
        })
        .collect::<Vec<_>>()
        .join(": ")
}

fn describe_status(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let code = format!("{:?}", status.code());
    let mut text = format!("{} ({code})", status.message());
    if let Some(bad_request) = status.get_details_bad_request() {
        for violation in bad_request.field_violations {
            let line = format!("{}: {}", violation.field, violation.description);
            // Most messages already say it; repeat only what they leave out.
            if !status.message().contains(&line) {
                text.push_str(&format!("\n  {line}"));
            }
        }
    }
    text
}

impl ExitCode {
    /// The exit code for an error: from the gRPC status or transport error
    /// somewhere in its chain, or [`Usage`].
    pub fn of(error: &anyhow::Error) -> Self {
        for cause in error.chain() {
            if cause.downcast_ref::<Usage>().is_some() {
                return Self::Usage;
            }
            if let Some(status) = cause.downcast_ref::<tonic::Status>() {
                return Self::of_code(status.code());
            }
            if cause.downcast_ref::<tonic::transport::Error>().is_some() {
                return Self::Unavailable;
            }
        }
        Self::Failed
    }

    fn of_code(code: Code) -> Self {
        match code {
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                Self::Unavailable
            }
            Code::Unauthenticated | Code::PermissionDenied => Self::Denied,
            Code::NotFound => Self::NotFound,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => Self::Invalid,
            _ => Self::Failed,
        }
    }
}
