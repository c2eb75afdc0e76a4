//! Pipelines: ordered stages, each with a win probability and a kind.

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    validate::{MAX_SHORT, Violations},
};
use uuid::Uuid;

/// What a stage means for a deal in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StageKind {
    /// Being worked.
    Open,
    /// Won.
    Won,
    /// Lost.
    Lost,
}

/// One stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    /// Its id within the pipeline.
    pub id: Uuid,
    /// A name for people.
    pub display_name: String,
    /// Chance of winning, 0 to 1.
    pub probability: f64,
    /// Open, won or lost.
    pub kind: StageKind,
}

/// A pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The id.
    pub id: Uuid,
    /// A name for people.
    pub display_name: String,
    /// In order.
    pub stages: Vec<Stage>,
    /// Where opportunities without a pipeline go.
    pub is_default: bool,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// Version.
    pub version: i64,
}

impl Pipeline {
    /// `pipelines/{id}`.
    pub fn name(&self) -> String {
        format!("pipelines/{}", self.id)
    }

    /// `pipelines/{id}/stages/{stage}`.
    pub fn stage_name(&self, stage: &Stage) -> String {
        format!("pipelines/{}/stages/{}", self.id, stage.id)
    }

    /// The stage a resource name points at, with its position.
    pub fn stage(&self, name: &str) -> Option<(usize, &Stage)> {
        let id = name.strip_prefix(&format!("{}/stages/", self.name()))?;
        self.stages
            .iter()
            .enumerate()
            .find(|(_, s)| s.id.to_string() == id)
    }

    /// Where new deals start: the first open stage.
    pub fn first_stage(&self) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.kind == StageKind::Open)
            .unwrap_or(&self.stages[0])
    }

    /// The pipeline every tenant gets on first use.
    pub fn standard(id: Uuid, now: DateTime<Utc>) -> Self {
        let stage = |name: &str, probability: f64, kind: StageKind| Stage {
            id: Uuid::now_v7(),
            display_name: name.to_owned(),
            probability,
            kind,
        };
        Self {
            id,
            display_name: "Sales".into(),
            stages: vec![
                stage("Prospecting", 0.1, StageKind::Open),
                stage("Qualification", 0.25, StageKind::Open),
                stage("Proposal", 0.5, StageKind::Open),
                stage("Negotiation", 0.75, StageKind::Open),
                stage("Closed won", 1.0, StageKind::Won),
                stage("Closed lost", 0.0, StageKind::Lost),
            ],
            is_default: true,
            create_time: now,
            delete_time: None,
            version: 1,
        }
    }
}

/// Checks a new pipeline's name and stages.
pub fn check(display_name: &str, stages: &[Stage], prefix: &str) -> Result<(), ApiError> {
    let mut v = Violations::default();
    v.text(&format!("{prefix}.display_name"), display_name, MAX_SHORT);
    if display_name.trim().is_empty() {
        v.add(format!("{prefix}.display_name"), "required");
    }
    if stages.is_empty() || stages.len() > 50 {
        v.add(format!("{prefix}.stages"), "1 to 50 stages");
    }
    for (i, stage) in stages.iter().enumerate() {
        let field = format!("{prefix}.stages[{i}]");
        if stage.display_name.trim().is_empty() {
            v.add(format!("{field}.display_name"), "required");
        }
        v.text(
            &format!("{field}.display_name"),
            &stage.display_name,
            MAX_SHORT,
        );
        if !(0.0..=1.0).contains(&stage.probability) || stage.probability.is_nan() {
            v.add(format!("{field}.probability"), "between 0 and 1");
        }
    }
    if !stages.iter().any(|s| s.kind == StageKind::Open) {
        v.add(format!("{prefix}.stages"), "at least one OPEN stage");
    }
    if !stages.iter().any(|s| s.kind == StageKind::Won) {
        v.add(format!("{prefix}.stages"), "at least one WON stage");
    }
    v.finish()
}
