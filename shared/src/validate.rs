//! Field checks shared by every resource: collected, not short-circuited, so
//! a client learns about every bad field at once. Shared by every service.

use crate::error::{ApiError, FieldViolation};

/// The longest single-line text field.
pub const MAX_SHORT: usize = 255;
/// The longest multi-line text field (notes, bodies).
pub const MAX_LONG: usize = 100_000;
/// The most tags on one resource.
pub const MAX_TAGS: usize = 50;

/// Collects field violations.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Records that `field` is wrong.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Checks a text field's length (in characters) and that it has no control characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        let length = value.chars().count();
        if length > max {
            self.add(field, format!("at most {max} characters, got {length}"));
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            self.add(field, "must not contain control characters");
        }
    }

    /// Checks tags: 1 to 64 characters each, at most [`MAX_TAGS`].
    pub fn tags(&mut self, field: &str, tags: &[String]) {
        if tags.len() > MAX_TAGS {
            self.add(field, format!("at most {MAX_TAGS} tags"));
        }
        for (i, tag) in tags.iter().enumerate() {
            if tag.trim().is_empty() || tag.chars().count() > 64 {
                self.add(format!("{field}[{i}]"), "a tag has 1 to 64 characters");
            }
        }
    }

    /// Checks custom field keys: 1 to 64 of letters, digits and underscores; at most 100 fields.
    pub fn custom_fields(
        &mut self,
        field: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) {
        if fields.len() > 100 {
            self.add(field, "at most 100 custom fields");
        }
        for key in fields.keys() {
            let ok = !key.is_empty()
                && key.len() <= 64
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                self.add(
                    format!("{field}.{key}"),
                    "keys are 1 to 64 letters, digits or underscores",
                );
            }
        }
        if serde_json::to_string(fields).map_or(0, |s| s.len()) > 64 * 1024 {
            self.add(field, "at most 64 KiB of custom fields");
        }
    }

    /// Checks a resource-name reference when set.
    pub fn reference(&mut self, field: &str, value: &str, collection: &str) {
        if value.is_empty() {
            return;
        }
        if let Err(ApiError::InvalidArgument(violations)) =
            crate::convert::parse_name(value, collection, field)
        {
            self.0.extend(violations);
        }
    }

    /// Ok when nothing was recorded; INVALID_ARGUMENT with every violation otherwise.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidArgument(self.0))
        }
    }
}

/// Trims and drops empty and repeated tags, keeping the first spelling.
pub fn normalize_tags(tags: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    tags.iter_mut().for_each(|tag| *tag = tag.trim().to_owned());
    tags.retain(|tag| !tag.is_empty() && seen.insert(tag.to_lowercase()));
}

/// Checks an update mask against the writable fields of a resource: `*` is
/// every one of them; an empty mask is INVALID_ARGUMENT (AIP-134 allows it to
/// mean "the fields set", but proto3 cannot tell an empty field from an unset one).
pub fn update_paths<'a>(
    paths: &'a [String],
    writable: &'static [&'static str],
) -> Result<Vec<&'a str>, ApiError> {
    if paths.is_empty() {
        return Err(ApiError::invalid(
            "update_mask",
            "name the fields to update, or \"*\"",
        ));
    }
    if paths.iter().any(|p| p == "*") {
        return Ok(writable.to_vec());
    }
    let mut violations = Violations::default();
    for path in paths {
        if !writable.contains(&path.as_str()) {
            violations.add(
                "update_mask",
                format!(
                    "{path:?} is not a writable field; writable: {}",
                    writable.join(", ")
                ),
            );
        }
    }
    violations.finish()?;
    Ok(paths.iter().map(String::as_str).collect())
}

/// The comparison key of an email address: trimmed and lower-cased.
pub fn email_key(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Whether `address` is a plausible email address: one "@", a non-empty
/// local part, a domain with a dot and no empty labels, no spaces.
pub fn is_email(address: &str) -> bool {
    if address.len() > 254 || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// The comparison key of a phone number: a leading "+" (for "+" or "00")
/// and the digits; `None` when it is not a phone number (7 to 15 digits,
/// only digits, spaces, ".", "-", "(", ")" and a leading "+").
pub fn phone_key(number: &str) -> Option<String> {
    let trimmed = number.trim();
    let (international, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => match trimmed.strip_prefix("00") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        },
    };
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '(' | ')'))
    {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if !(7..=15).contains(&digits.len()) {
        return None;
    }
    Some(if international {
        format!("+{digits}")
    } else {
        digits
    })
}
