//! Conversions every service's API layer needs between protobuf well-known
//! types and plain Rust values, and resource-name parsing.

use chrono::{DateTime, Utc};
use prost_types::{ListValue, Struct, Timestamp, Value, value::Kind};
use serde_json::{Map, Number};
use uuid::Uuid;

use crate::error::ApiError;

/// A chrono time as a protobuf Timestamp.
pub fn to_timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// A protobuf Timestamp as a chrono time; out of range is INVALID_ARGUMENT on `field`.
pub fn from_timestamp(timestamp: &Timestamp, field: &str) -> Result<DateTime<Utc>, ApiError> {
    u32::try_from(timestamp.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(timestamp.seconds, nanos))
        .ok_or_else(|| ApiError::invalid(field, "timestamp out of range"))
}

/// The UUID in a resource name `"{collection}/{uuid}"`; anything else is
/// INVALID_ARGUMENT on `field`.
pub fn parse_name(name: &str, collection: &str, field: &str) -> Result<Uuid, ApiError> {
    let id = name
        .strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("must be a resource name \"{collection}/{{id}}\""),
            )
        })?;
    Uuid::parse_str(id)
        .map_err(|_| ApiError::invalid(field, format!("\"{id}\" is not a valid resource id")))
}

/// The resource name of `id` in `collection`.
pub fn name_of(collection: &str, id: Uuid) -> String {
    format!("{collection}/{id}")
}

/// A protobuf Struct as a JSON object.
pub fn struct_to_json(value: &Struct) -> Map<String, serde_json::Value> {
    value
        .fields
        .iter()
        .map(|(key, value)| (key.clone(), value_to_json(value)))
        .collect()
}

fn value_to_json(value: &Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s)),
    }
}

/// A JSON object as a protobuf Struct.
pub fn json_to_struct(map: &Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(key, value)| (key.clone(), json_to_value(value)))
            .collect(),
    }
}

/// A JSON value as a protobuf Value.
pub fn json_to_value(value: &serde_json::Value) -> Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    Value { kind: Some(kind) }
}

/// `message` packed into a `google.protobuf.Any` (event payloads).
pub fn to_any<M: prost::Name>(message: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// The etag of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The version an etag names; empty means none; anything else malformed is
/// INVALID_ARGUMENT on `field`.
pub fn parse_etag(etag: &str, field: &str) -> Result<Option<i64>, ApiError> {
    if etag.is_empty() {
        return Ok(None);
    }
    etag.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| ApiError::invalid(field, "not an etag this service issued"))
}

/// A message field that must be set: INVALID_ARGUMENT naming it otherwise.
pub fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid(field, "required"))
}

/// The stored name of an enum value, from its table of (value, name) pairs;
/// empty for a value the table lacks.
pub fn stored<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map_or("", |(_, name)| name)
}

/// The value a stored name stands for.
pub fn parse_stored<T: Copy>(table: &[(T, &'static str)], name: &str) -> Option<T> {
    table.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_parse_only_in_their_collection() {
        let id = Uuid::now_v7();
        assert_eq!(
            parse_name(&name_of("contacts", id), "contacts", "name").unwrap(),
            id
        );
        assert!(parse_name(&name_of("companies", id), "contacts", "name").is_err());
        assert!(parse_name("contacts/not-a-uuid", "contacts", "name").is_err());
        assert!(parse_name("", "contacts", "name").is_err());
    }

    #[test]
    fn enum_values_and_their_stored_names_map_both_ways() {
        const TABLE: &[(u8, &str)] = &[(1, "ONE"), (2, "TWO")];
        assert_eq!(stored(TABLE, 2), "TWO");
        assert_eq!(stored(TABLE, 3), "");
        assert_eq!(parse_stored(TABLE, "ONE"), Some(1));
        assert_eq!(parse_stored(TABLE, "one"), None);
    }

    #[test]
    fn structs_round_trip_through_json() {
        let json = serde_json::json!({"tier": "gold", "seats": 12.0, "flags": [true, null]});
        let map = json.as_object().unwrap();
        assert_eq!(&struct_to_json(&json_to_struct(map)), map);
    }

    #[test]
    fn timestamps_round_trip_and_reject_bad_nanos() {
        let now = Utc::now();
        assert_eq!(from_timestamp(&to_timestamp(now), "t").unwrap(), now);
        let bad = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(from_timestamp(&bad, "t").is_err());
    }
}
