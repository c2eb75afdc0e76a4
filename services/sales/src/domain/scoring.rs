//! Explainable lead scores: the points of the tenant's scoring rules a lead
//! matches, plus what a logistic regression learned from the tenant's own
//! closed leads (converted = 1, disqualified = 0) says about it. Every point
//! comes with the factor that produced it.

use super::lead::{LeadDraft, SOURCES, stored};

/// One reason for a score.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScoreFactor {
    /// What counted.
    pub label: String,
    /// Points it added.
    pub points: i32,
}

/// Points per unit of log-odds when the model's view becomes score points.
const POINTS_PER_LOG_ODD: f64 = 10.0;
/// The fewest closed leads of each outcome before a model is trusted.
pub const MIN_EXAMPLES_PER_CLASS: usize = 5;

/// The features of a lead the model sees, with a label for each.
pub fn features(lead: &LeadDraft) -> Vec<(String, f64)> {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let mut out = vec![
        ("has an email".to_owned(), flag(!lead.email.is_empty())),
        ("has a phone".to_owned(), flag(!lead.phone.is_empty())),
        (
            "has a company".to_owned(),
            flag(!lead.company_name.is_empty()),
        ),
        ("has a title".to_owned(), flag(!lead.title.is_empty())),
        (
            "company size".to_owned(),
            // Log scale: 10 -> 0.23, 1,000 -> 0.69, 100,000 -> 1.15.
            ((1.0 + lead.employee_count.max(0) as f64).ln() / 10.0),
        ),
    ];
    let source = stored(SOURCES, lead.source);
    for (_, name) in SOURCES {
        out.push((
            format!("source is {}", name.to_lowercase().replace('_', " ")),
            flag(*name == source),
        ));
    }
    out
}

/// A logistic regression over [`features`].
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The intercept.
    pub bias: f64,
    /// One weight per feature.
    pub weights: Vec<f64>,
}

impl Model {
    /// Learns from `(lead, converted)` examples, or `None` with fewer than
    /// [`MIN_EXAMPLES_PER_CLASS`] of either outcome. Full-batch gradient
    /// descent with a little L2 regularisation: deterministic, and plenty for
    /// a dozen features.
    pub fn train(examples: &[(LeadDraft, bool)]) -> Option<Self> {
        let positives = examples.iter().filter(|(_, y)| *y).count();
        if positives < MIN_EXAMPLES_PER_CLASS || examples.len() - positives < MIN_EXAMPLES_PER_CLASS
        {
            return None;
        }
        let rows: Vec<(Vec<f64>, f64)> = examples
            .iter()
            .map(|(lead, y)| {
                let x = features(lead).into_iter().map(|(_, v)| v).collect();
                (x, if *y { 1.0 } else { 0.0 })
            })
            .collect();
        let n = rows.len() as f64;
        let width = rows[0].0.len();
        let mut model = Self {
            bias: 0.0,
            weights: vec![0.0; width],
        };
        let (rate, l2) = (0.5, 0.01);
        for _ in 0..2000 {
            let mut grad_bias = 0.0;
            let mut grad = vec![0.0; width];
            for (x, y) in &rows {
                let error = model.probability_of(x) - y;
                grad_bias += error;
                for (g, xi) in grad.iter_mut().zip(x) {
                    *g += error * xi;
                }
            }
            model.bias -= rate * grad_bias / n;
            for (w, g) in model.weights.iter_mut().zip(&grad) {
                *w -= rate * (g / n + l2 * *w);
            }
        }
        Some(model)
    }

    fn probability_of(&self, x: &[f64]) -> f64 {
        let z = self.bias + self.weights.iter().zip(x).map(|(w, x)| w * x).sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }

    /// The chance `lead` converts, by the model.
    pub fn probability(&self, lead: &LeadDraft) -> f64 {
        let x: Vec<f64> = features(lead).into_iter().map(|(_, v)| v).collect();
        self.probability_of(&x)
    }

    /// The model's factors for `lead`: each feature's contribution to the
    /// log-odds, in points, leaving out those under one point.
    pub fn factors(&self, lead: &LeadDraft) -> Vec<ScoreFactor> {
        let mut out = vec![ScoreFactor {
            label: format!(
                "model: {:.0}% likely to convert",
                self.probability(lead) * 100.0
            ),
            points: 0,
        }];
        for ((label, x), w) in features(lead).into_iter().zip(&self.weights) {
            let points = (w * x * POINTS_PER_LOG_ODD).round() as i32;
            if points != 0 {
                out.push(ScoreFactor {
                    label: format!("model: {label}"),
                    points,
                });
            }
        }
        out
    }
}

/// A score from rule factors and model factors: their sum, and all of them.
pub fn score(
    rule_factors: Vec<ScoreFactor>,
    model: Option<&Model>,
    lead: &LeadDraft,
) -> (i32, Vec<ScoreFactor>) {
    let mut factors = rule_factors;
    if let Some(model) = model {
        factors.extend(model.factors(lead));
    }
    let total = factors.iter().map(|f| f.points).sum();
    (total, factors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lead::{LeadSource, LeadStatus};

    fn lead(source: LeadSource, phone: bool) -> LeadDraft {
        LeadDraft {
            given_name: "A".into(),
            family_name: String::new(),
            email: "a@example.com".into(),
            phone: if phone {
                "+44 20 7946 0000".into()
            } else {
                String::new()
            },
            company_name: String::new(),
            title: String::new(),
            country: String::new(),
            employee_count: 0,
            source,
            campaign: String::new(),
            status: LeadStatus::New,
            disqualify_reason: String::new(),
        }
    }

    #[test]
    fn the_model_learns_what_converts_and_says_why() {
        // Referrals with a phone convert; web-form leads without one do not.
        let mut examples = Vec::new();
        for _ in 0..10 {
            examples.push((lead(LeadSource::Referral, true), true));
            examples.push((lead(LeadSource::WebForm, false), false));
        }
        let model = Model::train(&examples).expect("enough examples");
        let good = model.probability(&lead(LeadSource::Referral, true));
        let poor = model.probability(&lead(LeadSource::WebForm, false));
        assert!(good > 0.8 && poor < 0.2, "{good} {poor}");
        let (points, factors) = score(vec![], Some(&model), &lead(LeadSource::Referral, true));
        assert!(points > 0, "{factors:?}");
        assert!(
            factors
                .iter()
                .any(|f| f.label == "model: source is referral" && f.points > 0),
            "{factors:?}"
        );
    }

    #[test]
    fn no_model_without_both_outcomes() {
        let examples: Vec<_> = (0..20)
            .map(|_| (lead(LeadSource::Referral, true), true))
            .collect();
        assert!(Model::train(&examples).is_none());
    }

    #[test]
    fn the_score_is_the_sum_of_its_factors() {
        let rules = vec![
            ScoreFactor {
                label: "rule: big".into(),
                points: 30,
            },
            ScoreFactor {
                label: "rule: no phone".into(),
                points: -5,
            },
        ];
        let (points, factors) = score(rules, None, &lead(LeadSource::Event, false));
        assert_eq!(points, 25);
        assert_eq!(factors.len(), 2);
    }
}
