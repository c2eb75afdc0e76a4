//! AIP-160 filters and AIP-132 order_by, as any client may send them, against
//! the grammar of every real List method of every service (so a new list or
//! field is fuzzed by construction): parsing must answer a condition or an
//! error, never panic, and every condition must render as SQL for both
//! backends.
#![no_main]

use crm_shared::filter::{ListSchema, parse_filter, parse_order_by};
use libfuzzer_sys::fuzz_target;
use sea_orm::sea_query::{Alias, Asterisk, PostgresQueryBuilder, Query, SqliteQueryBuilder};

fn every_list() -> impl Iterator<Item = &'static ListSchema> {
    crm_contacts::LIST_SCHEMAS
        .iter()
        .chain(crm_sales::LIST_SCHEMAS)
        .chain(crm_marketing::LIST_SCHEMAS)
        .chain(crm_support::LIST_SCHEMAS)
        .chain([&crm_shared::audit::LIST_SCHEMA])
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for list in every_list() {
        if let Ok(condition) = parse_filter(list.filter, &text) {
            let mut query = Query::select();
            query
                .column(Asterisk)
                .from(Alias::new(list.resource))
                .cond_where(condition);
            let _ = query.to_string(PostgresQueryBuilder);
            let _ = query.to_string(SqliteQueryBuilder);
        }
        let _ = parse_order_by(list.order_by, &text);
    }
});
