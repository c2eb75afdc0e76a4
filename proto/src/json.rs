//! Proto JSON (with proto field names, as `grpcurl` and the API guide write
//! them) for every message of the suite, by reflection over the descriptor
//! set compiled in beside the generated code.

use std::sync::LazyLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use serde_json::Value;

/// Every message of the suite. The descriptor set is compiled in by this
/// crate's build script from the same protos as the generated code, so it
/// cannot fail to decode at run time.
pub static MESSAGES: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set compiled into crm-proto decodes")
});

/// Why a JSON value is not the message it should be.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The message type is not one of the suite's.
    #[error("{0} is not a message of the suite")]
    UnknownType(String),
    /// The value is not proto JSON of the type.
    #[error("{0}")]
    Invalid(String),
}

/// The proto JSON of an encoded message of type `type_name` (fully
/// qualified, for example `crm.contacts.v1.Contact`).
pub fn encoded_to_json(type_name: &str, bytes: &[u8]) -> Result<Value, JsonError> {
    let descriptor = MESSAGES
        .get_message_by_name(type_name)
        .ok_or_else(|| JsonError::UnknownType(type_name.to_owned()))?;
    let message = DynamicMessage::decode(descriptor, bytes)
        .map_err(|error| JsonError::Invalid(error.to_string()))?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|error| JsonError::Invalid(error.to_string()))
}

/// The proto JSON of a message.
pub fn to_json<M: Message + prost::Name>(message: &M) -> Value {
    // Cannot fail: the message is one of the suite's and encodes to itself.
    encoded_to_json(&M::full_name(), &message.encode_to_vec())
        .expect("a generated message of the suite converts to JSON")
}

/// The proto JSON of what an `Any` holds.
pub fn any_to_json(any: &prost_types::Any) -> Result<Value, JsonError> {
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    encoded_to_json(type_name, &any.value)
}

/// A message from its proto JSON (proto or JSON field names; unknown fields
/// are an error, so a misspelt field is not silently dropped).
pub fn from_json<M: Message + prost::Name + Default>(value: Value) -> Result<M, JsonError> {
    let name = M::full_name();
    let descriptor = MESSAGES
        .get_message_by_name(&name)
        .ok_or_else(|| JsonError::UnknownType(name.clone()))?;
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let message = DynamicMessage::deserialize_with_options(descriptor, value, &options)
        .map_err(|error| JsonError::Invalid(error.to_string()))?;
    M::decode(message.encode_to_vec().as_slice())
        .map_err(|error| JsonError::Invalid(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::{Contact, EmailAddress};

    #[test]
    fn a_contact_goes_to_json_and_back() {
        let contact = Contact {
            given_name: "Ada".into(),
            emails: vec![EmailAddress {
                address: "ada@example.com".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = to_json(&contact);
        assert_eq!(json["given_name"], "Ada");
        assert_eq!(json["emails"][0]["address"], "ada@example.com");
        assert_eq!(from_json::<Contact>(json).unwrap(), contact);
    }

    #[test]
    fn a_misspelt_field_is_an_error_naming_it() {
        let error = from_json::<Contact>(serde_json::json!({"given_nme": "Ada"})).unwrap_err();
        assert!(error.to_string().contains("given_nme"), "{error}");
    }
}
