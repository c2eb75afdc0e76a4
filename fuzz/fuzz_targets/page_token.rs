//! Page tokens come back from clients, who may alter them: decoding any
//! string must answer an offset or INVALID_ARGUMENT, never panic, and only
//! a token this key made for this query may decode.
#![no_main]

use crm_shared::paging::PageTokens;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tokens = PageTokens::new("fuzz-secret");
    let text = String::from_utf8_lossy(data);
    let (query, token) = text.split_once('\n').unwrap_or(("query", &text));
    if let Ok(offset) = tokens.decode(token, query, "page_token") {
        // Only the empty token or one made by `encode` decodes.
        assert!(token.is_empty() || tokens.encode(query, offset) == token);
    }
    let offset = data
        .iter()
        .fold(0u64, |n, b| n.wrapping_mul(31).wrapping_add(u64::from(*b)));
    let made = tokens.encode(query, offset);
    assert_eq!(tokens.decode(&made, query, "page_token").ok(), Some(offset));
});
