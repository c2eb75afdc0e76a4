//! Contacts as flat records (CSV rows) and back. The columns `export contacts`
//! writes are the ones `import contacts` reads without a mapping, so an
//! export imports as it is.
//!
//! A row becomes the proto JSON of a `Contact`, which the descriptor-driven
//! decoder in `crm_proto::json` turns into the message: enums, nested
//! messages and custom fields are checked there, once.

use std::collections::BTreeMap;

use crm_proto::contacts::Contact;
use serde_json::{Map, Value, json};

/// Separates the values of a multi-valued cell (emails, phones, tags, address lines).
pub const LIST_SEPARATOR: char = ';';

/// The columns of an export, in order; all but the output-only ones import.
pub const COLUMNS: &[&str] = &[
    "name",
    "given_name",
    "family_name",
    "display_name",
    "emails",
    "phones",
    "company",
    "job_title",
    "lifecycle_stage",
    "owner",
    "source",
    "tags",
    "address_lines",
    "locality",
    "administrative_area",
    "postal_code",
    "region_code",
    "custom_fields",
    "create_time",
    "update_time",
];

/// Output-only columns: written by an export, never sent back.
const OUTPUT_ONLY: &[&str] = &["name", "create_time", "update_time"];

/// What a column of the input becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One of [`COLUMNS`] that imports.
    Field(&'static str),
    /// A custom field of that key (`custom.<key>` in a mapping).
    Custom(String),
}

/// Which input column feeds which target; several columns may feed a list
/// (two email columns, say).
#[derive(Debug, Default)]
pub struct Mapping {
    columns: Vec<(usize, Target)>,
    /// Headers that feed nothing, to tell the operator.
    pub ignored: Vec<String>,
}

impl Mapping {
    /// Maps `headers` by their names (case, spaces and underscores aside,
    /// with common aliases such as "First Name" or "E-mail"), with
    /// `overrides` ("target=Column") first. An override naming an unknown
    /// target or a missing column is an error.
    pub fn new(headers: &[String], overrides: &[String]) -> Result<Self, String> {
        let mut mapping = Self::default();
        let mut taken = vec![false; headers.len()];
        for spec in overrides {
            let Some((target, column)) = spec.split_once('=') else {
                return Err(format!("--map {spec:?}: write it as target=Column"));
            };
            let target = parse_target(target.trim()).ok_or_else(|| {
                format!("--map {spec:?}: {:?} is not a contact field", target.trim())
            })?;
            let index = headers
                .iter()
                .position(|h| h == column.trim())
                .ok_or_else(|| {
                    format!("--map {spec:?}: the file has no column {:?}", column.trim())
                })?;
            taken[index] = true;
            mapping.columns.push((index, target));
        }
        for (index, header) in headers.iter().enumerate() {
            // An export's output-only columns are expected, and not sent.
            if taken[index] || OUTPUT_ONLY.contains(&header.as_str()) {
                continue;
            }
            match guess_target(header) {
                Some(target) => mapping.columns.push((index, target)),
                None => mapping.ignored.push(header.clone()),
            }
        }
        Ok(mapping)
    }

    /// The contact a row describes, or why it cannot be one (naming the column).
    pub fn contact(&self, row: &[String], headers: &[String]) -> Result<Contact, String> {
        let mut contact = Map::new();
        let mut address = Map::new();
        let mut custom = Map::new();
        for (index, target) in &self.columns {
            let cell = row.get(*index).map(|c| c.trim()).unwrap_or_default();
            if cell.is_empty() {
                continue;
            }
            let column = &headers[*index];
            match target {
                Target::Custom(key) => {
                    custom.insert(key.clone(), Value::String(cell.to_owned()));
                }
                Target::Field("custom_fields") => {
                    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(cell) else {
                        return Err(format!("{column}: custom_fields must be a JSON object"));
                    };
                    custom.extend(fields);
                }
                Target::Field(field @ ("emails" | "phones")) => {
                    let key = if *field == "emails" {
                        "address"
                    } else {
                        "number"
                    };
                    push_all(&mut contact, field, list(cell).map(|v| json!({ key: v })));
                }
                Target::Field(field @ "tags") => {
                    push_all(&mut contact, field, list(cell).map(Value::from));
                }
                Target::Field(field @ "address_lines") => {
                    push_all(&mut address, field, list(cell).map(Value::from));
                }
                Target::Field(
                    field @ ("locality" | "administrative_area" | "postal_code" | "region_code"),
                ) => {
                    address.insert((*field).to_owned(), Value::from(cell));
                }
                Target::Field("lifecycle_stage") => {
                    contact.insert("lifecycle_stage".into(), Value::from(lifecycle_stage(cell)));
                }
                Target::Field(field) => {
                    contact.insert((*field).to_owned(), Value::from(cell));
                }
            }
        }
        if !address.is_empty() {
            contact.insert("address".into(), Value::Object(address));
        }
        if !custom.is_empty() {
            contact.insert("custom_fields".into(), Value::Object(custom));
        }
        crm_proto::json::from_json(Value::Object(contact)).map_err(|error| error.to_string())
    }
}

/// A contact as read from JSON Lines: its proto JSON, the output-only fields
/// of an export left out.
pub fn contact_from_json(mut value: Value) -> Result<Contact, String> {
    if let Value::Object(fields) = &mut value {
        for field in [
            "name",
            "create_time",
            "update_time",
            "delete_time",
            "etag",
            "merged_into",
        ] {
            fields.remove(field);
        }
    }
    crm_proto::json::from_json(value).map_err(|error| error.to_string())
}

/// The row of [`COLUMNS`] for a contact.
pub fn row(contact: &Contact) -> Vec<String> {
    let json = crm_proto::json::to_json(contact);
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let joined = |values: Option<&Value>, key: Option<&str>| -> String {
        let values = values
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        values
            .iter()
            .map(|v| text(key.map_or(v, |k| &v[k])))
            .collect::<Vec<_>>()
            .join(&LIST_SEPARATOR.to_string())
    };
    let address = &json["address"];
    COLUMNS
        .iter()
        .map(|column| match *column {
            "emails" => joined(json.get("emails"), Some("address")),
            "phones" => joined(json.get("phones"), Some("number")),
            "tags" => joined(json.get("tags"), None),
            "address_lines" => joined(address.get("address_lines"), None),
            "locality" | "administrative_area" | "postal_code" | "region_code" => {
                text(&address[*column])
            }
            "lifecycle_stage" => text(&json["lifecycle_stage"])
                .trim_start_matches("LIFECYCLE_STAGE_")
                .to_lowercase(),
            "custom_fields" => match json.get("custom_fields") {
                Some(Value::Object(fields)) if !fields.is_empty() => {
                    Value::Object(fields.clone()).to_string()
                }
                _ => String::new(),
            },
            field => text(&json[field]),
        })
        .collect()
}

fn list(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(LIST_SEPARATOR)
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn push_all(object: &mut Map<String, Value>, field: &str, values: impl Iterator<Item = Value>) {
    let entry = object
        .entry(field.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = entry {
        items.extend(values);
    }
}

/// `customer`, `Sales qualified` or `LIFECYCLE_STAGE_CUSTOMER` alike.
fn lifecycle_stage(cell: &str) -> String {
    let upper = cell.trim().to_uppercase().replace([' ', '-'], "_");
    if upper.starts_with("LIFECYCLE_STAGE_") {
        upper
    } else {
        format!("LIFECYCLE_STAGE_{upper}")
    }
}

/// A mapping target by name: a column of [`COLUMNS`] that imports, or `custom.<key>`.
fn parse_target(name: &str) -> Option<Target> {
    if let Some(key) = name.strip_prefix("custom.") {
        return (!key.is_empty()).then(|| Target::Custom(key.to_owned()));
    }
    COLUMNS
        .iter()
        .find(|column| **column == name && !OUTPUT_ONLY.contains(column))
        .map(|column| Target::Field(column))
}

/// The target a header most likely means, by its letters and digits alone.
fn guess_target(header: &str) -> Option<Target> {
    let key: String = header
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    let aliases: BTreeMap<&str, &'static str> = [
        ("givenname", "given_name"),
        ("firstname", "given_name"),
        ("first", "given_name"),
        ("familyname", "family_name"),
        ("lastname", "family_name"),
        ("surname", "family_name"),
        ("last", "family_name"),
        ("displayname", "display_name"),
        ("fullname", "display_name"),
        ("emails", "emails"),
        ("email", "emails"),
        ("emailaddress", "emails"),
        ("phones", "phones"),
        ("phone", "phones"),
        ("phonenumber", "phones"),
        ("mobile", "phones"),
        ("company", "company"),
        ("jobtitle", "job_title"),
        ("title", "job_title"),
        ("lifecyclestage", "lifecycle_stage"),
        ("stage", "lifecycle_stage"),
        ("owner", "owner"),
        ("source", "source"),
        ("tags", "tags"),
        ("addresslines", "address_lines"),
        ("street", "address_lines"),
        ("locality", "locality"),
        ("city", "locality"),
        ("administrativearea", "administrative_area"),
        ("state", "administrative_area"),
        ("postalcode", "postal_code"),
        ("zip", "postal_code"),
        ("regioncode", "region_code"),
        ("country", "region_code"),
        ("customfields", "custom_fields"),
    ]
    .into_iter()
    .collect();
    aliases.get(key.as_str()).map(|field| Target::Field(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn common_headers_map_without_help() {
        let headers = strings(&[
            "First Name",
            "Last Name",
            "E-mail",
            "Work Phone",
            "City",
            "Notes",
        ]);
        let mapping = Mapping::new(&headers, &strings(&["phones=Work Phone"])).unwrap();
        assert_eq!(mapping.ignored, vec!["Notes".to_owned()]);
        let row = strings(&[
            "Ada",
            "Lovelace",
            "ada@example.com; a@example.org",
            "+44 20 7946 0000",
            "London",
            "x",
        ]);
        let contact = mapping.contact(&row, &headers).unwrap();
        assert_eq!(contact.given_name, "Ada");
        assert_eq!(contact.family_name, "Lovelace");
        assert_eq!(contact.emails.len(), 2);
        assert_eq!(contact.emails[1].address, "a@example.org");
        assert_eq!(contact.phones[0].number, "+44 20 7946 0000");
        assert_eq!(contact.address.unwrap().locality, "London");
    }

    #[test]
    fn an_export_row_imports_as_the_same_contact() {
        let headers = strings(COLUMNS);
        let mapping = Mapping::new(&headers, &[]).unwrap();
        assert!(mapping.ignored.is_empty(), "{:?}", mapping.ignored);
        let original = contact_from_json(json!({
            "name": "contacts/1", "given_name": "Ada", "emails": [{"address": "ada@example.com"}],
            "tags": ["vip", "uk"], "lifecycle_stage": "LIFECYCLE_STAGE_CUSTOMER",
            "address": {"address_lines": ["12 St James's Square"], "region_code": "GB"},
            "custom_fields": {"tier": "gold"}
        }))
        .unwrap();
        let back = mapping.contact(&row(&original), &headers).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn a_bad_cell_or_mapping_is_named() {
        let headers = strings(&["stage"]);
        let mapping = Mapping::new(&headers, &[]).unwrap();
        let error = mapping
            .contact(&strings(&["sort of"]), &headers)
            .unwrap_err();
        assert!(error.contains("SORT_OF"), "{error}");
        let error = Mapping::new(&headers, &strings(&["shoe_size=stage"])).unwrap_err();
        assert!(
            error.contains("\"shoe_size\" is not a contact field"),
            "{error}"
        );
        let error = Mapping::new(&headers, &strings(&["tags=Labels"])).unwrap_err();
        assert!(error.contains("no column \"Labels\""), "{error}");
    }
}
