//! Statement counts per call (`x-crm-db-statements`), for the tests that
//! check a call's statements do not grow with the data (no N+1 queries).

use crm_shared::telemetry::COUNT_STATEMENTS;
use tonic::{Request, Response, Status};

/// `message` as a request that asks for its statement count.
pub fn counted<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        COUNT_STATEMENTS,
        "1".parse().expect("an ASCII header value"),
    );
    request
}

/// The statement count `response` reports; panics (naming `call`) on an
/// error or a missing count.
pub fn statement_count<T>(response: &Result<Response<T>, Status>, call: &str) -> u32 {
    let response = response
        .as_ref()
        .unwrap_or_else(|status| panic!("{call}: {status:?}"));
    response
        .metadata()
        .get(COUNT_STATEMENTS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{call} reports no statement count"))
}
