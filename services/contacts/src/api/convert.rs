//! Protobuf messages <-> domain values. Reading a request checks what only
//! the wire can get wrong (unknown enum numbers, timestamps out of range);
//! the domain checks the rest.

use crm_proto::{common as pb_common, contacts as pb};
use crm_shared::{
    convert::{from_timestamp, json_to_struct, struct_to_json, to_timestamp},
    error::ApiError,
};

use crate::domain::{
    Activity, ActivityDraft, ActivityKind, Channel, Company, CompanyDraft, Consent, ConsentStatus,
    Contact, ContactDraft, Email, Erasure, LifecycleStage, Money, Phone, PostalAddress,
};

use crm_shared::convert::to_any;
pub use crm_shared::convert::{etag, parse_etag};

fn address_from(address: Option<pb_common::PostalAddress>) -> Option<PostalAddress> {
    address.map(|a| PostalAddress {
        address_lines: a.address_lines,
        locality: a.locality,
        administrative_area: a.administrative_area,
        postal_code: a.postal_code,
        region_code: a.region_code,
    })
}

fn address_to(address: &Option<PostalAddress>) -> Option<pb_common::PostalAddress> {
    address.as_ref().map(|a| pb_common::PostalAddress {
        address_lines: a.address_lines.clone(),
        locality: a.locality.clone(),
        administrative_area: a.administrative_area.clone(),
        postal_code: a.postal_code.clone(),
        region_code: a.region_code.clone(),
    })
}

fn lifecycle_from(value: i32, field: &str) -> Result<Option<LifecycleStage>, ApiError> {
    use pb::LifecycleStage as P;
    let stage = match P::try_from(value)
        .map_err(|_| ApiError::invalid(field, format!("unknown lifecycle stage {value}")))?
    {
        P::Unspecified => return Ok(None),
        P::Subscriber => LifecycleStage::Subscriber,
        P::Lead => LifecycleStage::Lead,
        P::MarketingQualified => LifecycleStage::MarketingQualified,
        P::SalesQualified => LifecycleStage::SalesQualified,
        P::Opportunity => LifecycleStage::Opportunity,
        P::Customer => LifecycleStage::Customer,
        P::Evangelist => LifecycleStage::Evangelist,
        P::Other => LifecycleStage::Other,
    };
    Ok(Some(stage))
}

fn lifecycle_to(stage: Option<LifecycleStage>) -> i32 {
    use pb::LifecycleStage as P;
    let value = match stage {
        None => P::Unspecified,
        Some(LifecycleStage::Subscriber) => P::Subscriber,
        Some(LifecycleStage::Lead) => P::Lead,
        Some(LifecycleStage::MarketingQualified) => P::MarketingQualified,
        Some(LifecycleStage::SalesQualified) => P::SalesQualified,
        Some(LifecycleStage::Opportunity) => P::Opportunity,
        Some(LifecycleStage::Customer) => P::Customer,
        Some(LifecycleStage::Evangelist) => P::Evangelist,
        Some(LifecycleStage::Other) => P::Other,
    };
    value as i32
}

fn consent_from(consent: pb::Consent, field: &str) -> Result<Consent, ApiError> {
    let channel = match pb::Channel::try_from(consent.channel) {
        Ok(pb::Channel::Email) => Channel::Email,
        Ok(pb::Channel::Sms) => Channel::Sms,
        Ok(pb::Channel::Phone) => Channel::Phone,
        _ => {
            return Err(ApiError::invalid(
                format!("{field}.channel"),
                "EMAIL, SMS or PHONE",
            ));
        }
    };
    let status = match pb::ConsentStatus::try_from(consent.status) {
        Ok(pb::ConsentStatus::Granted) => ConsentStatus::Granted,
        Ok(pb::ConsentStatus::Withdrawn) => ConsentStatus::Withdrawn,
        _ => {
            return Err(ApiError::invalid(
                format!("{field}.status"),
                "GRANTED or WITHDRAWN",
            ));
        }
    };
    let update_time = match &consent.update_time {
        Some(time) => from_timestamp(time, &format!("{field}.update_time"))?,
        None => chrono::Utc::now(),
    };
    Ok(Consent {
        channel,
        status,
        update_time,
        source: consent.source,
    })
}

fn consent_to(consent: &Consent) -> pb::Consent {
    pb::Consent {
        channel: match consent.channel {
            Channel::Email => pb::Channel::Email,
            Channel::Sms => pb::Channel::Sms,
            Channel::Phone => pb::Channel::Phone,
        } as i32,
        status: match consent.status {
            ConsentStatus::Granted => pb::ConsentStatus::Granted,
            ConsentStatus::Withdrawn => pb::ConsentStatus::Withdrawn,
        } as i32,
        update_time: Some(to_timestamp(consent.update_time)),
        source: consent.source.clone(),
    }
}

/// The writable fields of a request's contact; `prefix` names it in errors.
pub fn contact_draft(contact: pb::Contact, prefix: &str) -> Result<ContactDraft, ApiError> {
    let consents = contact
        .consents
        .into_iter()
        .enumerate()
        .map(|(i, c)| consent_from(c, &format!("{prefix}.consents[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(ContactDraft {
        given_name: contact.given_name,
        family_name: contact.family_name,
        display_name: contact.display_name,
        emails: contact
            .emails
            .into_iter()
            .map(|e| Email {
                address: e.address,
                label: e.label,
                primary: e.primary,
            })
            .collect(),
        phones: contact
            .phones
            .into_iter()
            .map(|p| Phone {
                number: p.number,
                normalized: String::new(),
                label: p.label,
                primary: p.primary,
            })
            .collect(),
        company: contact.company,
        job_title: contact.job_title,
        address: address_from(contact.address),
        lifecycle_stage: lifecycle_from(
            contact.lifecycle_stage,
            &format!("{prefix}.lifecycle_stage"),
        )?,
        owner: contact.owner,
        source: contact.source,
        tags: contact.tags,
        custom_fields: contact
            .custom_fields
            .as_ref()
            .map(struct_to_json)
            .unwrap_or_default(),
        consents,
    })
}

/// A contact as the API shows it.
pub fn contact_message(contact: &Contact) -> pb::Contact {
    let d = &contact.draft;
    pb::Contact {
        name: contact.name(),
        given_name: d.given_name.clone(),
        family_name: d.family_name.clone(),
        display_name: d.display_name.clone(),
        emails: d
            .emails
            .iter()
            .map(|e| pb::EmailAddress {
                address: e.address.clone(),
                label: e.label.clone(),
                primary: e.primary,
            })
            .collect(),
        phones: d
            .phones
            .iter()
            .map(|p| pb::PhoneNumber {
                number: p.number.clone(),
                label: p.label.clone(),
                primary: p.primary,
                normalized_number: p.normalized.clone(),
            })
            .collect(),
        company: d.company.clone(),
        job_title: d.job_title.clone(),
        address: address_to(&d.address),
        lifecycle_stage: lifecycle_to(d.lifecycle_stage),
        owner: d.owner.clone(),
        source: d.source.clone(),
        tags: d.tags.clone(),
        custom_fields: (!d.custom_fields.is_empty()).then(|| json_to_struct(&d.custom_fields)),
        consents: d.consents.iter().map(consent_to).collect(),
        create_time: Some(to_timestamp(contact.create_time)),
        update_time: Some(to_timestamp(contact.update_time)),
        delete_time: contact.delete_time.map(to_timestamp),
        etag: etag(contact.version),
        merged_into: contact.merged_into.clone().unwrap_or_default(),
    }
}

/// The writable fields of a request's company.
pub fn company_draft(company: pb::Company) -> CompanyDraft {
    CompanyDraft {
        display_name: company.display_name,
        domain: company.domain,
        industry: company.industry,
        employee_count: i64::from(company.employee_count),
        annual_revenue: company.annual_revenue.map(|m| Money {
            currency_code: m.currency_code,
            units: m.units,
            nanos: m.nanos,
        }),
        address: address_from(company.address),
        tags: company.tags,
        custom_fields: company
            .custom_fields
            .as_ref()
            .map(struct_to_json)
            .unwrap_or_default(),
        owner: company.owner,
        tier: company.tier,
    }
}

/// A company as the API shows it.
pub fn company_message(company: &Company) -> pb::Company {
    let d = &company.draft;
    pb::Company {
        name: company.name(),
        display_name: d.display_name.clone(),
        domain: d.domain.clone(),
        industry: d.industry.clone(),
        employee_count: i32::try_from(d.employee_count).unwrap_or(i32::MAX),
        annual_revenue: d.annual_revenue.as_ref().map(|m| pb_common::Money {
            currency_code: m.currency_code.clone(),
            units: m.units,
            nanos: m.nanos,
        }),
        address: address_to(&d.address),
        tags: d.tags.clone(),
        custom_fields: (!d.custom_fields.is_empty()).then(|| json_to_struct(&d.custom_fields)),
        create_time: Some(to_timestamp(company.create_time)),
        update_time: Some(to_timestamp(company.update_time)),
        delete_time: company.delete_time.map(to_timestamp),
        etag: etag(company.version),
        tier: d.tier.clone(),
        owner: d.owner.clone(),
    }
}

/// The writable fields of a request's activity.
pub fn activity_draft(activity: pb::Activity, prefix: &str) -> Result<ActivityDraft, ApiError> {
    use pb::ActivityKind as P;
    let kind = match P::try_from(activity.kind) {
        Ok(P::Unspecified) => None,
        Ok(P::Note) => Some(ActivityKind::Note),
        Ok(P::Call) => Some(ActivityKind::Call),
        Ok(P::Email) => Some(ActivityKind::Email),
        Ok(P::Meeting) => Some(ActivityKind::Meeting),
        Ok(P::System) => Some(ActivityKind::System),
        Err(_) => {
            return Err(ApiError::invalid(
                format!("{prefix}.kind"),
                format!("unknown activity kind {}", activity.kind),
            ));
        }
    };
    let occur_time = activity
        .occur_time
        .as_ref()
        .map(|t| from_timestamp(t, &format!("{prefix}.occur_time")))
        .transpose()?;
    Ok(ActivityDraft {
        kind,
        subject: activity.subject,
        body: activity.body,
        occur_time,
        actor: activity.actor,
        contact: activity.contact,
        company: activity.company,
        related_resource: activity.related_resource,
    })
}

/// An activity as the API shows it.
pub fn activity_message(activity: &Activity) -> pb::Activity {
    use pb::ActivityKind as P;
    let d = &activity.draft;
    pb::Activity {
        name: activity.name(),
        kind: match d.kind {
            None => P::Unspecified,
            Some(ActivityKind::Note) => P::Note,
            Some(ActivityKind::Call) => P::Call,
            Some(ActivityKind::Email) => P::Email,
            Some(ActivityKind::Meeting) => P::Meeting,
            Some(ActivityKind::System) => P::System,
        } as i32,
        subject: d.subject.clone(),
        body: d.body.clone(),
        occur_time: d.occur_time.map(to_timestamp),
        actor: d.actor.clone(),
        contact: d.contact.clone(),
        company: d.company.clone(),
        related_resource: d.related_resource.clone(),
        create_time: Some(to_timestamp(activity.create_time)),
        update_time: Some(to_timestamp(activity.update_time)),
        delete_time: activity.delete_time.map(to_timestamp),
        etag: etag(activity.version),
    }
}

/// Encodes event payloads as the API's messages.
pub struct ProtoPayloads;

impl crate::store::EventPayloads for ProtoPayloads {
    fn contact(&self, contact: &Contact) -> prost_types::Any {
        to_any(&contact_message(contact))
    }
    fn company(&self, company: &Company) -> prost_types::Any {
        to_any(&company_message(company))
    }
    fn activity(&self, activity: &Activity) -> prost_types::Any {
        to_any(&activity_message(activity))
    }
    fn merged(&self, survivor: &str, merged: &[String]) -> prost_types::Any {
        to_any(&pb::ContactMerged {
            survivor: survivor.to_owned(),
            merged: merged.to_vec(),
        })
    }
    fn erased(&self, erasure: &Erasure) -> prost_types::Any {
        to_any(&pb::ContactErased {
            contact: erasure.contact.clone(),
            merged: erasure.merged.clone(),
            email_fingerprints: erasure.email_fingerprints.clone(),
            phone_fingerprints: erasure.phone_fingerprints.clone(),
        })
    }
}
