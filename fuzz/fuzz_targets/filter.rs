//! AIP-160 filters and AIP-132 order_by, as any client may send them: parsing
//! must answer a condition or an error, never panic, and every condition must
//! render as SQL for both backends.
#![no_main]

use crm_shared::filter::{
    FieldKind, FilterField, FilterSchema, KeyTable, parse_filter, parse_order_by,
};
use libfuzzer_sys::fuzz_target;
use sea_orm::sea_query::{Alias, Asterisk, PostgresQueryBuilder, Query, SqliteQueryBuilder};

/// One field of every kind a service's schema can have.
const SCHEMA: FilterSchema = FilterSchema {
    fields: &[
        FilterField::text("display_name"),
        FilterField::new(
            "lifecycle_stage",
            FieldKind::Enum(&[("LEAD", "lead"), ("CUSTOMER", "customer")]),
        ),
        FilterField::new("create_time", FieldKind::Timestamp),
        FilterField::new("employee_count", FieldKind::Integer),
        FilterField::new("converted", FieldKind::Bool),
        FilterField::new("tags", FieldKind::JsonStringArray),
        FilterField {
            name: "email",
            column: "id",
            kind: FieldKind::AnyKey(KeyTable {
                owner_table: "contacts",
                table: "contact_keys",
                owner: "contact_id",
                kind: "email",
                key: |value| value.trim().to_lowercase(),
            }),
        },
    ],
};

const ORDER: &[(&str, &str)] = &[
    ("display_name", "display_name"),
    ("create_time", "create_time"),
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(condition) = parse_filter(&SCHEMA, &text) {
        let mut query = Query::select();
        query
            .column(Asterisk)
            .from(Alias::new("contacts"))
            .cond_where(condition);
        let _ = query.to_string(PostgresQueryBuilder);
        let _ = query.to_string(SqliteQueryBuilder);
    }
    let _ = parse_order_by(ORDER, &text);
});
