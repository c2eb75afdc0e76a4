//! Lead queries: capture with duplicate checks, assignment and scoring,
//! updates, conversion, rescoring.

use crm_shared::idempotency::IdempotencyKey;
use crm_shared::store::Page;
use std::collections::{HashMap, HashSet};

use chrono::Utc;
use crm_shared::{
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema, parse_filter},
    store::{Claim, ListQuery, check_version},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, ValidatedUpdateOne,
    sea_query::{CaseStatement, Expr},
};
use uuid::Uuid;

use super::{
    Store,
    entities::{assignment_rule, from_json, lead, opportunity, scoring_rule, to_json},
};
use crate::domain::{
    assignment::{Rule, Strategy},
    conversion::ConvertedTo,
    lead::{Lead, LeadDraft, LeadStatus, SOURCES, STATUSES, parse_stored, stored},
    opportunity::Opportunity,
    scoring::{Model, ScoreFactor, score},
};

const SOURCE_VALUES: &[(&str, &str)] = &[
    ("WEB_FORM", "WEB_FORM"),
    ("IMPORT", "IMPORT"),
    ("EVENT", "EVENT"),
    ("REFERRAL", "REFERRAL"),
    ("CAMPAIGN", "CAMPAIGN"),
    ("OTHER", "OTHER"),
];
const STATUS_VALUES: &[(&str, &str)] = &[
    ("NEW", "NEW"),
    ("CONTACTED", "CONTACTED"),
    ("QUALIFIED", "QUALIFIED"),
    ("DISQUALIFIED", "DISQUALIFIED"),
    ("CONVERTED", "CONVERTED"),
];

/// The fields a lead filter (and an assignment or scoring rule) may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField::text("given_name"),
        FilterField::text("family_name"),
        FilterField::text("email"),
        FilterField::text("phone"),
        FilterField::text("company_name"),
        FilterField::text("title"),
        FilterField::text("country"),
        FilterField {
            name: "employee_count",
            column: "employee_count",
            kind: FieldKind::Integer,
        },
        FilterField {
            name: "source",
            column: "source",
            kind: FieldKind::Enum(SOURCE_VALUES),
        },
        FilterField::text("campaign"),
        FilterField {
            name: "status",
            column: "status",
            kind: FieldKind::Enum(STATUS_VALUES),
        },
        FilterField::text("owner"),
        FilterField {
            name: "score",
            column: "score",
            kind: FieldKind::Integer,
        },
        FilterField::text("converted_contact"),
        FilterField {
            name: "create_time",
            column: "create_time",
            kind: FieldKind::Timestamp,
        },
    ],
};

/// The fields a lead list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] = &[
    ("create_time", "create_time"),
    ("score", "score"),
    ("family_name", "family_name"),
    ("company_name", "company_name"),
    ("employee_count", "employee_count"),
];

/// The statuses of a lead still in play.
const OPEN_STATUSES: [&str; 3] = ["NEW", "CONTACTED", "QUALIFIED"];

impl TryFrom<lead::Model> for Lead {
    type Error = ApiError;

    fn try_from(row: lead::Model) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::Internal(format!("stored lead has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| bad("id"))?,
            draft: LeadDraft {
                given_name: row.given_name,
                family_name: row.family_name,
                email: row.email,
                phone: row.phone,
                company_name: row.company_name,
                title: row.title,
                country: row.country,
                employee_count: row.employee_count,
                source: parse_stored(SOURCES, &row.source).ok_or_else(|| bad("source"))?,
                campaign: row.campaign,
                status: parse_stored(STATUSES, &row.status).ok_or_else(|| bad("status"))?,
                disqualify_reason: row.disqualify_reason,
            },
            owner: row.owner,
            assignment_reason: row.assignment_reason,
            score: row.score,
            score_factors: from_json(&row.score_factors, "score factors")?,
            possible_duplicates: from_json(&row.possible_duplicates, "duplicates")?,
            converted_contact: row.converted_contact,
            converted_company: row.converted_company,
            converted_contact_reused: row.converted_contact_reused,
            converted_opportunity: row.converted_opportunity,
            convert_time: row.convert_time,
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn lead_row(tenant: &Tenant, lead: &Lead) -> lead::ActiveModel {
    let d = &lead.draft;
    lead::Model {
        id: lead.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        given_name: d.given_name.clone(),
        family_name: d.family_name.clone(),
        email: d.email.clone(),
        phone: d.phone.clone(),
        company_name: d.company_name.clone(),
        title: d.title.clone(),
        country: d.country.clone(),
        employee_count: d.employee_count,
        source: stored(SOURCES, d.source).to_owned(),
        campaign: d.campaign.clone(),
        status: stored(STATUSES, d.status).to_owned(),
        disqualify_reason: d.disqualify_reason.clone(),
        owner: lead.owner.clone(),
        assignment_reason: lead.assignment_reason.clone(),
        score: lead.score,
        score_factors: to_json(&lead.score_factors),
        possible_duplicates: to_json(&lead.possible_duplicates),
        converted_contact: lead.converted_contact.clone(),
        converted_company: lead.converted_company.clone(),
        converted_contact_reused: lead.converted_contact_reused,
        converted_opportunity: lead.converted_opportunity.clone(),
        convert_time: lead.convert_time,
        create_time: lead.create_time,
        update_time: lead.update_time,
        delete_time: lead.delete_time,
        version: lead.version,
    }
    .into_active_model()
    .reset_all()
}

/// The condition of a rule's filter; rules were checked when written.
fn rule_condition(filter: &str) -> Result<Condition, ApiError> {
    parse_filter(&FILTER, filter)
        .map_err(|e| ApiError::Internal(format!("a stored rule filter does not parse: {e}")))
}

/// Which of `conditions` each of the stored leads `ids` meets, in order:
/// one statement for any number of rules (a `CASE` per condition), so a
/// capture costs the same however many rules the tenant writes.
async fn conditions_met<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    ids: &[String],
    conditions: Vec<Condition>,
) -> Result<HashMap<String, Vec<bool>>, ApiError> {
    if conditions.is_empty() || ids.is_empty() {
        return Ok(HashMap::new());
    }
    let count = conditions.len();
    let mut select = lead::Entity::find_in(tenant)
        .select_only()
        .column(lead::Column::Id)
        .filter(lead::Column::Id.is_in(ids.to_vec()));
    for (index, condition) in conditions.into_iter().enumerate() {
        let met: Expr = CaseStatement::new().case(condition, 1).finally(0).into();
        select = select.column_as(met, format!("met_{index}"));
    }
    let rows = conn
        .query_all_raw(select.build(conn.get_database_backend()))
        .await?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get_by_index(0)?;
            let met = (1..=count)
                .map(|i| row.try_get_by_index::<i32>(i).map(|v| v != 0))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((id, met))
        })
        .collect()
}

impl Store {
    pub(super) async fn load_lead<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Lead, ApiError> {
        self.base
            .find::<lead::Entity>(conn, tenant, id, &format!("leads/{id}"))
            .await?
            .try_into()
    }

    /// A lead, deleted or not.
    pub async fn get_lead(&self, tenant: &Tenant, id: Uuid) -> Result<Lead, ApiError> {
        self.load_lead(&self.db.conn, tenant, id).await
    }

    /// One page of leads.
    pub async fn list_leads(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Lead>, ApiError> {
        self.base
            .list_page::<lead::Entity, Lead>(tenant, query)
            .await
    }

    /// Captures a lead: `contact_matches` are the contacts with its email
    /// (looked up by the caller through the contacts service); open leads with
    /// its email are found here. Then it is assigned and scored.
    pub async fn create_lead(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: LeadDraft,
        request_id: Option<IdempotencyKey>,
        contact_matches: Vec<String>,
    ) -> Result<Lead, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateLead", request_id.as_ref())
            .await?
        {
            return self.get_lead(tenant, super::id_of(&existing)).await;
        }
        let model = self.conversion_model(tenant).await?;
        let now = Utc::now();
        let mut lead = Lead {
            id: Uuid::now_v7(),
            draft,
            owner: String::new(),
            assignment_reason: String::new(),
            score: 0,
            score_factors: vec![],
            possible_duplicates: vec![],
            converted_contact: String::new(),
            converted_company: String::new(),
            converted_contact_reused: false,
            converted_opportunity: String::new(),
            convert_time: None,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        let txn = self.db.begin_write().await?;
        if !lead.draft.email.is_empty() {
            let twins = lead::Entity::find_in(tenant)
                .filter(lead::Column::Email.eq(&lead.draft.email))
                .filter(lead::Column::Status.is_in(OPEN_STATUSES))
                .filter(lead::Column::DeleteTime.is_null())
                .order_by_asc(lead::Column::CreateTime)
                .limit(20)
                .all(&*txn)
                .await?;
            lead.possible_duplicates = twins
                .into_iter()
                .map(|t| format!("leads/{}", t.id))
                .collect();
        }
        lead.possible_duplicates.extend(contact_matches);
        lead::Entity::insert(lead_row(tenant, &lead))
            .exec(&*txn)
            .await?;
        let rule_factors = self.rule_factors(&*txn, tenant, &[lead.id]).await?;
        let (points, factors) = score(
            rule_factors.get(&lead.id).cloned().unwrap_or_default(),
            model.as_ref(),
            &lead.draft,
        );
        lead.score = points;
        lead.score_factors = factors;
        let name = lead.name();
        let txn = match self
            .base
            .claim(txn, tenant, "CreateLead", request_id.as_ref(), &name)
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => {
                return self.get_lead(tenant, super::id_of(&existing)).await;
            }
        };
        // Last before the one statement of writes and the commit: taking a
        // turn locks the rule's row until commit, and every capture the
        // rule matches waits for it.
        if let Some((owner, reason)) = self.assign(&*txn, tenant, lead.id).await? {
            lead.owner = owner;
            lead.assignment_reason = reason;
        } else {
            lead.owner = actor.to_owned();
            lead.assignment_reason = "no assignment rule matched: the creator".into();
        }
        // The owner and score go with the audit entry and the event: one
        // statement on PostgreSQL.
        let scored = ValidatedUpdateOne::try_from(lead::Entity::update(lead_row(tenant, &lead)))?
            .build(txn.get_database_backend());
        let event = self.event("LeadCreated", name, self.payloads.lead(&lead), actor);
        self.base
            .commit_with(txn, tenant, vec![scored], vec![event])
            .await?;
        Ok(lead)
    }

    /// The owner the first matching assignment rule picks, and why; the
    /// rule's round-robin position moves on.
    async fn assign<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: &Tenant,
        lead_id: Uuid,
    ) -> Result<Option<(String, String)>, ApiError> {
        let rules: Vec<Rule> = assignment_rule::Entity::find_in(tenant)
            .filter(assignment_rule::Column::DeleteTime.is_null())
            .order_by_asc(assignment_rule::Column::Priority)
            .order_by_asc(assignment_rule::Column::CreateTime)
            .all(conn)
            .await?
            .into_iter()
            .map(Rule::try_from)
            .collect::<Result<_, _>>()?;
        let conditions = rules
            .iter()
            .map(|rule| rule_condition(&rule.draft.filter))
            .collect::<Result<Vec<_>, _>>()?;
        let id = lead_id.to_string();
        let met = conditions_met(conn, tenant, std::slice::from_ref(&id), conditions)
            .await?
            .remove(&id)
            .unwrap_or_default();
        // The first rule, by priority, the lead meets.
        if let Some((mut rule, _)) = rules.into_iter().zip(met).find(|(_, met)| *met) {
            // The turn locks the rule's row until commit: a concurrent
            // capture of this rule waits here, then counts the open leads
            // with the one before it committed (least loaded stays even).
            rule.assigned = self.take_turn(conn, tenant, rule.id).await? - 1;
            let loads = match rule.draft.strategy {
                Strategy::LeastLoaded => {
                    self.open_leads_of(conn, tenant, &rule.draft.members)
                        .await?
                }
                Strategy::RoundRobin => HashMap::new(),
            };
            let owner = rule.pick(&loads);
            return Ok(Some((owner, rule.reason())));
        }
        Ok(None)
    }

    /// Moves a rule's round-robin position on and returns it, in one
    /// statement. It stays in the lead's transaction: taken on a connection
    /// of its own it would not hold the rule's row, but concurrent captures
    /// holding every pooled connection would each wait for one more (the
    /// benchmark saw the pool time out at 32 callers).
    async fn take_turn<C: ConnectionTrait>(
        &self,
        txn: &C,
        tenant: &Tenant,
        rule: Uuid,
    ) -> Result<i64, ApiError> {
        let updated = assignment_rule::Entity::update_many()
            .col_expr(
                assignment_rule::Column::Assigned,
                sea_orm::sea_query::ExprTrait::add(
                    sea_orm::sea_query::Expr::col(assignment_rule::Column::Assigned),
                    1,
                ),
            )
            .filter(assignment_rule::Column::Tenant.eq(tenant.as_str()))
            .filter(assignment_rule::Column::Id.eq(rule.to_string()))
            .exec_with_returning(txn)
            .await?;
        updated
            .first()
            .map(|row| row.assigned)
            .ok_or_else(|| ApiError::NotFound(format!("assignmentRules/{rule}")))
    }

    /// How many open leads each of `owners` has, in one query.
    async fn open_leads_of<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: &Tenant,
        owners: &[String],
    ) -> Result<HashMap<String, u64>, ApiError> {
        let counts: Vec<(String, i64)> = lead::Entity::find_in(tenant)
            .select_only()
            .column(lead::Column::Owner)
            .column_as(lead::Column::Id.count(), "open")
            .filter(lead::Column::Owner.is_in(owners.to_vec()))
            .filter(lead::Column::Status.is_in(OPEN_STATUSES))
            .filter(lead::Column::DeleteTime.is_null())
            .group_by(lead::Column::Owner)
            .into_tuple()
            .all(conn)
            .await?;
        Ok(counts
            .into_iter()
            .map(|(owner, open)| (owner, u64::try_from(open).unwrap_or(0)))
            .collect())
    }

    /// The scoring-rule factors of each of `leads`: every rule checked in one
    /// statement.
    async fn rule_factors<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: &Tenant,
        leads: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<ScoreFactor>>, ApiError> {
        let rules = scoring_rule::Entity::find_in(tenant)
            .filter(scoring_rule::Column::DeleteTime.is_null())
            .order_by_asc(scoring_rule::Column::CreateTime)
            .all(conn)
            .await?;
        let ids: Vec<String> = leads.iter().map(Uuid::to_string).collect();
        let conditions = rules
            .iter()
            .map(|rule| rule_condition(&rule.filter))
            .collect::<Result<Vec<_>, _>>()?;
        let mut factors: HashMap<Uuid, Vec<ScoreFactor>> = HashMap::new();
        for (id, met) in conditions_met(conn, tenant, &ids, conditions).await? {
            let lead_factors = factors.entry(id.parse().unwrap_or_default()).or_default();
            for (rule, _) in rules.iter().zip(met).filter(|(_, met)| *met) {
                lead_factors.push(ScoreFactor {
                    label: format!("rule: {}", rule.display_name),
                    points: rule.points,
                });
            }
        }
        Ok(factors)
    }

    /// The tenant's conversion model, trained on its closed leads when the
    /// cached one is missing or old.
    async fn conversion_model(&self, tenant: &Tenant) -> Result<Option<Model>, ApiError> {
        if let Some(model) = self.cached_model(tenant) {
            return Ok(model);
        }
        let (model, _) = self.train_model(tenant).await?;
        Ok(model)
    }

    async fn train_model(&self, tenant: &Tenant) -> Result<(Option<Model>, usize), ApiError> {
        let rows = lead::Entity::find_in(tenant)
            .filter(lead::Column::Status.is_in(["CONVERTED", "DISQUALIFIED"]))
            .filter(lead::Column::DeleteTime.is_null())
            .order_by_desc(lead::Column::CreateTime)
            .limit(20_000)
            .all(&self.db.conn)
            .await?;
        let examples: Vec<(LeadDraft, bool)> = rows
            .into_iter()
            .map(|row| {
                let converted = row.status == "CONVERTED";
                Lead::try_from(row).map(|lead| (lead.draft, converted))
            })
            .collect::<Result<_, _>>()?;
        let model = Model::train(&examples);
        self.cache_model(tenant, model.clone());
        Ok((model, examples.len()))
    }

    /// Retrains the model and rescores every open lead: (rescored, trained, examples).
    pub async fn rescore_all(&self, tenant: &Tenant) -> Result<(u64, bool, usize), ApiError> {
        let (model, examples) = self.train_model(tenant).await?;
        let mut rescored = 0;
        let mut after = String::new();
        loop {
            let page = lead::Entity::find_in(tenant)
                .filter(lead::Column::Status.is_in(OPEN_STATUSES))
                .filter(lead::Column::DeleteTime.is_null())
                .filter(lead::Column::Id.gt(after.clone()))
                .order_by_asc(lead::Column::Id)
                .limit(500)
                .all(&self.db.conn)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            let leads: Vec<Lead> = page
                .into_iter()
                .map(Lead::try_from)
                .collect::<Result<_, _>>()?;
            let txn = self.db.begin_write().await?;
            let ids: Vec<Uuid> = leads.iter().map(|l| l.id).collect();
            let mut rule_factors = self.rule_factors(&*txn, tenant, &ids).await?;
            let mut rescored_leads = Vec::with_capacity(leads.len());
            for mut lead in leads {
                let (points, factors) = score(
                    rule_factors.remove(&lead.id).unwrap_or_default(),
                    model.as_ref(),
                    &lead.draft,
                );
                // Scores are derived data: no version bump, no event.
                lead::Entity::update_many()
                    .col_expr(lead::Column::Score, sea_orm::sea_query::Expr::value(points))
                    .col_expr(
                        lead::Column::ScoreFactors,
                        sea_orm::sea_query::Expr::value(to_json(&factors)),
                    )
                    .filter(lead::Column::Tenant.eq(tenant.as_str()))
                    .filter(lead::Column::Id.eq(lead.id.to_string()))
                    .exec(&*txn)
                    .await?;
                rescored += 1;
                (lead.score, lead.score_factors) = (points, factors);
                rescored_leads.push((lead.name(), self.payloads.lead(&lead)));
            }
            // No entry (derived data), but the audit log's copy follows, so
            // the next change is not blamed for the new score.
            crm_shared::audit::refresh(&*txn, tenant, rescored_leads).await?;
            txn.commit().await?;
        }
        Ok((rescored, model.is_some(), examples))
    }

    /// Rewrites a lead's changeable fields (checked against `expected_version`).
    pub async fn update_lead(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        change: impl FnOnce(&mut Lead) -> Result<(), ApiError>,
        event: &'static str,
    ) -> Result<Lead, ApiError> {
        let model = self.conversion_model(tenant).await?;
        let txn = self.db.begin_write().await?;
        let mut lead = self.load_lead(&*txn, tenant, id).await?;
        if lead.delete_time.is_some() && !matches!(event, "LeadDeleted" | "LeadUndeleted") {
            return Err(ApiError::NotFound(lead.name()));
        }
        check_version(&lead.name(), expected_version, lead.version)?;
        lead.check_writable()?;
        let stored_version = lead.version;
        change(&mut lead)?;
        lead.version += 1;
        lead.update_time = Utc::now();
        self.base
            .save_versioned::<lead::Entity>(
                &txn,
                tenant,
                &lead.name(),
                id,
                stored_version,
                lead_row(tenant, &lead),
            )
            .await?;
        if lead.delete_time.is_none() {
            // Rules match against the saved row, so score after saving.
            let rule_factors = self.rule_factors(&*txn, tenant, &[lead.id]).await?;
            let (points, factors) = score(
                rule_factors.get(&lead.id).cloned().unwrap_or_default(),
                model.as_ref(),
                &lead.draft,
            );
            lead.score = points;
            lead.score_factors = factors;
            lead::Entity::update(lead_row(tenant, &lead))
                .exec(&*txn)
                .await?;
        }
        let event = self.event(event, lead.name(), self.payloads.lead(&lead), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(lead)
    }

    /// Marks a lead converted, with the opportunity made for it if any, in
    /// one transaction; a lead converted already is returned as it is (the
    /// first conversion's result).
    pub async fn mark_converted(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        to: ConvertedTo,
        opportunity: Option<Opportunity>,
    ) -> Result<(Lead, Option<Opportunity>), ApiError> {
        let txn = self.db.begin_write().await?;
        let mut lead = self.load_lead(&*txn, tenant, id).await?;
        if lead.draft.status == LeadStatus::Converted {
            drop(txn);
            let existing = self.converted_opportunity(tenant, &lead).await?;
            return Ok((lead, existing));
        }
        if lead.delete_time.is_some() {
            return Err(ApiError::NotFound(lead.name()));
        }
        let stored_version = lead.version;
        let mut events = Vec::new();
        if let Some(opportunity) = &opportunity {
            self.insert_opportunity(&txn, tenant, opportunity).await?;
            events.push(self.event(
                "OpportunityCreated",
                opportunity.name(),
                self.payloads.opportunity(opportunity),
                actor,
            ));
        }
        lead.convert(to, opportunity.as_ref().map(Opportunity::name), Utc::now());
        lead.version += 1;
        self.base
            .save_versioned::<lead::Entity>(
                &txn,
                tenant,
                &lead.name(),
                id,
                stored_version,
                lead_row(tenant, &lead),
            )
            .await?;
        events.insert(
            0,
            self.event(
                "LeadConverted",
                lead.name(),
                self.payloads.lead_converted(&lead),
                actor,
            ),
        );
        self.base.commit(txn, tenant, events).await?;
        Ok((lead, opportunity))
    }

    /// The opportunity a converted lead produced, if any.
    pub async fn converted_opportunity(
        &self,
        tenant: &Tenant,
        lead: &Lead,
    ) -> Result<Option<Opportunity>, ApiError> {
        let Some(id) = lead.converted_opportunity.strip_prefix("opportunities/") else {
            return Ok(None);
        };
        let row = opportunity::Entity::find_in(tenant)
            .filter(opportunity::Column::Id.eq(id))
            .one(&self.db.conn)
            .await?;
        row.map(Opportunity::try_from).transpose()
    }

    /// The open leads' names among `names` (for task links).
    pub async fn live_leads(
        &self,
        tenant: &Tenant,
        names: &[String],
    ) -> Result<HashSet<String>, ApiError> {
        let ids: Vec<&str> = names
            .iter()
            .filter_map(|n| n.strip_prefix("leads/"))
            .collect();
        let rows: Vec<String> = lead::Entity::find_in(tenant)
            .select_only()
            .column(lead::Column::Id)
            .filter(lead::Column::Id.is_in(ids))
            .filter(lead::Column::DeleteTime.is_null())
            .into_tuple()
            .all(&self.db.conn)
            .await?;
        Ok(rows.into_iter().map(|id| format!("leads/{id}")).collect())
    }

    /// Writes a lead row in `txn` as it is (used by the feed).
    /// Writes `lead` over the stored row only if it is still at
    /// `stored_version` (ABORTED otherwise), so an effect of another
    /// service's event never undoes a concurrent user change.
    pub(super) async fn overwrite_lead(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        lead: &Lead,
        stored_version: i64,
    ) -> Result<(), ApiError> {
        self.base
            .save_versioned::<lead::Entity>(
                txn,
                tenant,
                &lead.name(),
                lead.id,
                stored_version,
                lead_row(tenant, lead),
            )
            .await
    }
}
