//! The read-side custom methods: search, duplicate detection and the
//! data-subject export.

use std::collections::{BTreeMap, HashSet};

use crm_proto::contacts as pb;
use crm_shared::{convert::parse_name, db::Tenant, error::ApiError};
use uuid::Uuid;

use super::convert::{activity_message, contact_message};
use crate::domain::{
    duplicates::{NAME_SIMILARITY_THRESHOLD, Reason, name_similarity, score},
    text::query_words,
};
use crate::store::Store;

/// Above this many contacts in one company, similar names are not compared
/// (the comparison is quadratic); emails and phones still are.
const MAX_COMPANY_GROUP: usize = 2000;

/// SearchContacts: every match ranked in the database, the best page.
pub async fn search(
    store: &Store,
    tenant: &Tenant,
    query: &str,
    page_size: i32,
) -> Result<pb::SearchContactsResponse, ApiError> {
    let limit = crm_shared::paging::page_size(page_size, 20, 100, "page_size")?;
    if query.chars().count() > 200 {
        return Err(ApiError::invalid("query", "at most 200 characters"));
    }
    let words = query_words(query);
    if words.is_empty() {
        return Err(ApiError::invalid(
            "query",
            "give at least one word to search for",
        ));
    }
    // Points per word are 1 to 3 (see `store::search`): scores are 0..1.
    let most = 3.0 * words.len() as f64;
    let found = store.search_contacts(tenant, &words, limit).await?;
    Ok(pb::SearchContactsResponse {
        results: found
            .into_iter()
            .map(|(contact, points)| pb::SearchContactsResult {
                contact: Some(contact_message(&contact)),
                score: points as f64 / most,
            })
            .collect(),
    })
}

/// FindDuplicates: shared email and phone keys, and similar names within a company.
pub async fn find_duplicates(
    store: &Store,
    tenant: &Tenant,
    request: pb::FindDuplicatesRequest,
) -> Result<pb::FindDuplicatesResponse, ApiError> {
    let only = if request.contact.is_empty() {
        None
    } else {
        Some(parse_name(&request.contact, "contacts", "contact")?)
    };
    // One contact's duplicates are looked for by blocking keys: its email
    // and phone keys, and its company for similar names; never the tenant.
    let company = match only {
        Some(id) => Some(store.get_contact(tenant, id).await?.draft.company),
        None => None,
    };
    if !(0.0..=1.0).contains(&request.min_score) {
        return Err(ApiError::invalid("min_score", "between 0 and 1"));
    }
    let min_score = if request.min_score == 0.0 {
        0.5
    } else {
        request.min_score
    };
    let limit = crm_shared::paging::page_size(request.page_size, 100, 1000, "page_size")? as usize;

    // (older id, newer id) -> (reasons, name similarity); UUIDv7 ids sort by age.
    let mut pairs: BTreeMap<(String, String), (HashSet<Reason>, f64)> = BTreeMap::new();
    let mut add = |a: &str, b: &str, reason: Reason, similarity: f64| {
        let key = if a < b {
            (a.to_owned(), b.to_owned())
        } else {
            (b.to_owned(), a.to_owned())
        };
        let entry = pairs.entry(key).or_insert_with(|| (HashSet::new(), 0.0));
        entry.0.insert(reason);
        entry.1 = entry.1.max(similarity);
    };
    for (kind, members) in store.shared_keys(tenant, only).await? {
        let reason = if kind == "email" {
            Reason::SameEmail
        } else {
            Reason::SamePhone
        };
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                add(a, b, reason, 0.0);
            }
        }
    }
    let only_id = only.map(|id| id.to_string());
    let people = match company.as_deref() {
        Some("") => Vec::new(),
        company => store.contacts_with_company(tenant, company).await?,
    };
    for group in people.chunk_by(|a, b| a.1 == b.1) {
        if group.len() > MAX_COMPANY_GROUP {
            continue;
        }
        for (i, (a, _, a_name)) in group.iter().enumerate() {
            // One contact's pairs need only its own comparisons.
            if only_id.as_ref().is_some_and(|id| id != a) {
                continue;
            }
            let others = if only_id.is_some() {
                group
            } else {
                &group[i + 1..]
            };
            for (b, _, b_name) in others.iter().filter(|(b, _, _)| b != a) {
                let similarity = name_similarity(a_name, b_name);
                if similarity >= NAME_SIMILARITY_THRESHOLD {
                    add(a, b, Reason::SimilarNameSameCompany, similarity);
                }
            }
        }
    }
    let mut found: Vec<pb::DuplicatePair> = pairs
        .into_iter()
        .filter(|((a, b), _)| only_id.as_ref().is_none_or(|id| a == id || b == id))
        .filter_map(|((a, b), (reasons, similarity))| {
            let mut reasons: Vec<Reason> = reasons.into_iter().collect();
            reasons.sort();
            let score = score(&reasons, similarity);
            (score >= min_score).then(|| pb::DuplicatePair {
                contact: format!("contacts/{a}"),
                duplicate: format!("contacts/{b}"),
                score,
                reasons: reasons
                    .iter()
                    .map(|r| match r {
                        Reason::SameEmail => pb::DuplicateReason::SameEmail,
                        Reason::SamePhone => pb::DuplicateReason::SamePhone,
                        Reason::SimilarNameSameCompany => {
                            pb::DuplicateReason::SimilarNameSameCompany
                        }
                    } as i32)
                    .collect(),
            })
        })
        .collect();
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.contact.cmp(&b.contact))
    });
    found.truncate(limit);
    Ok(pb::FindDuplicatesResponse { pairs: found })
}

/// ExportContactData: the contact and its activities as one JSON document.
pub async fn export_person(
    store: &Store,
    tenant: &Tenant,
    id: Uuid,
) -> Result<pb::ExportContactDataResponse, ApiError> {
    let contact = store.get_contact(tenant, id).await?;
    let activities = store.activities_of_contact(tenant, &contact.name()).await?;
    let document = serde_json::json!({
        "subject": contact.name(),
        "exported_at": chrono::Utc::now().to_rfc3339(),
        "contact": {
            "name": contact.name(),
            "fields": contact.draft,
            "create_time": contact.create_time.to_rfc3339(),
            "update_time": contact.update_time.to_rfc3339(),
            "delete_time": contact.delete_time.map(|t| t.to_rfc3339()),
            "merged_into": contact.merged_into,
        },
        "activities": activities.iter().map(|a| {
            let message = activity_message(a);
            serde_json::json!({
                "name": message.name,
                "kind": crate::domain::ActivityKind::ALL.iter().find(|(k, _)| Some(*k) == a.draft.kind).map(|(_, n)| *n),
                "subject": message.subject,
                "body": message.body,
                "occur_time": a.draft.occur_time.map(|t| t.to_rfc3339()),
                "actor": message.actor,
                "company": message.company,
            })
        }).collect::<Vec<_>>(),
    });
    Ok(pb::ExportContactDataResponse {
        json: serde_json::to_string_pretty(&document)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    })
}
