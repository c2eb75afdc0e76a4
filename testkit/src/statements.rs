//! Statement counts per call (`x-crm-db-statements`), for the tests that
//! check a call's statements do not grow with the data (no N+1 queries).

use std::collections::BTreeMap;

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

/// Asserts each call made as many statements with more data (`large`) as
/// with less (`small`; `sizes` says how much each was), and at least one
/// (none means the count is not wired).
pub fn assert_unchanged(
    small: &BTreeMap<&'static str, u32>,
    large: &BTreeMap<&'static str, u32>,
    sizes: &str,
) {
    assert_eq!(small, large, "statements per call {sizes}");
    for (call, count) in small {
        assert!(*count > 0, "{call} made no statement: is the count wired?");
    }
}
