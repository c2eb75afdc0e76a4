//! Email template rules for the marketing service.
//!
//! A template is a subject, an HTML body and a text body, each written in the
//! minijinja (Jinja2) language. This module checks a draft when it is saved
//! ([`TemplateDraft::normalize_and_check`]) and renders it for one recipient
//! when a campaign is sent ([`TemplateDraft::compile`] then
//! [`CompiledTemplate::render`], or the one-shot [`render`]).
//!
//! Pure domain code: no SQL, no protobuf, no I/O.
//!
//! # The template language's contract: known variables
//!
//! A template may name only these variables (see [`KNOWN_VARIABLES`]):
//!
//! | variable | value |
//! | --- | --- |
//! | `contact.given_name` | the contact's given name |
//! | `contact.family_name` | the contact's family name |
//! | `contact.display_name` | the contact's display name |
//! | `contact.email` | the contact's email address |
//! | `contact.job_title` | the contact's job title |
//! | `contact.lifecycle_stage` | the contact's lifecycle stage |
//! | `contact.company` | the display name of the contact's company |
//! | `contact.custom.<any key>` | the contact's custom field `<key>`; any key is allowed because custom fields are defined per tenant |
//! | `campaign.name` | the campaign's name |
//! | `unsubscribe_url` | the recipient's unsubscribe link |
//!
//! `contact`, `contact.custom` and `campaign` may also be used whole (for
//! example `{% for key, value in contact.custom|items %}`), and minijinja's
//! built-in globals (`range`, `namespace`, ...), filters and tests, loop
//! variables and `{% set %}` variables are allowed as usual.
//!
//! A field the contact has no value for (an empty string, or a custom field
//! that is missing, empty or null) is *undefined* when rendering: it prints
//! as nothing, so `{{ contact.given_name | default("there") }}` is the way to
//! write a fallback. Looking up an attribute of an undefined value is also
//! undefined rather than an error, so `{{ contact.custom.address.city }}`
//! prints nothing for a contact without an `address`.

use crm_shared::{
    error::ApiError,
    validate::{MAX_LONG, MAX_SHORT, Violations},
};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// Every variable a template may name, besides `contact.custom.<any key>`
/// (see the module documentation for what each one holds).
pub const KNOWN_VARIABLES: &[&str] = &[
    "contact.given_name",
    "contact.family_name",
    "contact.display_name",
    "contact.email",
    "contact.job_title",
    "contact.lifecycle_stage",
    "contact.company",
    "campaign.name",
    "unsubscribe_url",
];

/// Names under this prefix are the contact's custom fields; their keys are
/// defined per tenant, so any key is accepted.
const CUSTOM_FIELDS: &str = "contact.custom";

/// Longest subject in characters: RFC 5322 limits a header line to 998.
pub const MAX_SUBJECT: usize = 998;

/// Instructions one field's render may execute. Templates are written by
/// tenants, so a runaway loop must end in an error instead of holding a send
/// worker; a long, loop-heavy email uses a small fraction of this.
const RENDER_FUEL: u64 = 500_000;

// Template names inside the environment; the error messages use them too,
// so they match the draft's field names.
const SUBJECT: &str = "subject";
const HTML_BODY: &str = "html_body";
const TEXT_BODY: &str = "text_body";

/// A template as the user writes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateDraft {
    pub display_name: String,
    pub subject: String,
    pub html_body: String,
    pub text_body: String,
}

/// What a template is rendered for: one contact. Empty strings mean "no
/// value" and are undefined in the template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recipient {
    pub given_name: String,
    pub family_name: String,
    pub display_name: String,
    pub email: String,
    pub job_title: String,
    pub lifecycle_stage: String,
    /// The display name of the contact's company.
    pub company: String,
    pub custom: serde_json::Map<String, serde_json::Value>,
}

/// A template rendered for one recipient.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// One line, trimmed.
    pub subject: String,
    /// HTML-escaped values; empty if the template has no HTML body.
    pub html_body: String,
    /// Raw values; empty if the template has no text body.
    pub text_body: String,
}

/// A template parsed once, to render for many recipients.
#[derive(Debug, Clone)]
pub struct CompiledTemplate {
    env: Environment<'static>,
}

impl TemplateDraft {
    /// Trims the single-line fields and checks the whole draft, reporting
    /// every problem at once as `InvalidArgument` on `{prefix}.<field>`.
    ///
    /// Beyond lengths and required fields, each of subject, html_body and
    /// text_body must parse as a template and name only known variables
    /// (module documentation), so that a send never meets a typo.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.display_name = self.display_name.trim().to_owned();
        self.subject = self.subject.trim().to_owned();

        let field = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            }
        };
        let mut violations = Violations::default();

        if self.display_name.is_empty() {
            violations.add(field("display_name"), "is required");
        } else {
            violations.text(&field("display_name"), &self.display_name, MAX_SHORT);
        }

        if self.subject.is_empty() {
            violations.add(field(SUBJECT), "is required");
        } else {
            violations.text(&field(SUBJECT), &self.subject, MAX_SUBJECT);
            if self.subject.contains(['\r', '\n']) {
                violations.add(field(SUBJECT), "must be a single line");
            }
        }

        if self.html_body.is_empty() && self.text_body.is_empty() {
            violations.add(field(TEXT_BODY), "html_body or text_body is required");
        }
        violations.text(&field(HTML_BODY), &self.html_body, MAX_LONG);
        violations.text(&field(TEXT_BODY), &self.text_body, MAX_LONG);

        let env = environment();
        for (name, source, max) in [
            (SUBJECT, &self.subject, MAX_SUBJECT),
            (HTML_BODY, &self.html_body, MAX_LONG),
            (TEXT_BODY, &self.text_body, MAX_LONG),
        ] {
            // An over-long field is already reported; parsing it is wasted work.
            if source.chars().count() <= max {
                check_template(&env, name, source, &field(name), &mut violations);
            }
        }

        violations.finish()
    }

    /// Parses the three templates once, for rendering many recipients.
    ///
    /// Meant for a stored draft, which passed [`Self::normalize_and_check`];
    /// if it does not parse anyway, that is the template's fault, found at
    /// send time: `FailedPrecondition` naming the field.
    pub fn compile(&self) -> Result<CompiledTemplate, ApiError> {
        let mut env = environment();
        for (name, source) in [
            (SUBJECT, &self.subject),
            (HTML_BODY, &self.html_body),
            (TEXT_BODY, &self.text_body),
        ] {
            env.add_template_owned(name, source.clone())
                .map_err(|err| {
                    ApiError::FailedPrecondition(format!(
                        "template {name} does not parse: {}",
                        describe(&err)
                    ))
                })?;
        }
        Ok(CompiledTemplate { env })
    }
}

impl CompiledTemplate {
    /// Renders subject, HTML body and text body for one recipient.
    ///
    /// A render error (for example a filter applied to a value of the wrong
    /// type, or a runaway loop) is the template's fault, found at send time:
    /// `FailedPrecondition` naming the field and the error.
    pub fn render(
        &self,
        recipient: &Recipient,
        campaign_name: &str,
        unsubscribe_url: &str,
    ) -> Result<Rendered, ApiError> {
        let context = context(recipient, campaign_name, unsubscribe_url);
        Ok(Rendered {
            subject: one_line(&self.render_field(SUBJECT, &context)?),
            html_body: self.render_field(HTML_BODY, &context)?,
            text_body: self.render_field(TEXT_BODY, &context)?,
        })
    }

    fn render_field(&self, name: &str, context: &Value) -> Result<String, ApiError> {
        let template = self.env.get_template(name).map_err(|err| {
            // `compile` adds all three templates, so this is a bug here.
            ApiError::Internal(format!("template {name} missing: {err}"))
        })?;
        template.render(context).map_err(|err| {
            ApiError::FailedPrecondition(format!(
                "template {name} could not be rendered: {}",
                describe(&err)
            ))
        })
    }
}

/// Renders a draft for one recipient. Parses the draft on every call: to send
/// to many recipients, [`TemplateDraft::compile`] once and render that.
pub fn render(
    draft: &TemplateDraft,
    recipient: &Recipient,
    campaign_name: &str,
    unsubscribe_url: &str,
) -> Result<Rendered, ApiError> {
    draft
        .compile()?
        .render(recipient, campaign_name, unsubscribe_url)
}

/// The one configuration used both to check and to render, so that what
/// passes the check parses the same way at send time.
fn environment<'source>() -> Environment<'source> {
    let mut env = Environment::new();
    // Not strict: a contact without a value must render (as nothing, or as a
    // `default(...)`), and unknown names were already refused at save time.
    // Chainable rather than plain lenient so that a missing nested custom
    // value (`contact.custom.address.city`) is undefined, not an error that
    // would fail the send for that contact.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // Only the HTML body is HTML; subject and text body take values raw.
    env.set_auto_escape_callback(|name| {
        if name == HTML_BODY {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // The body is sent as written, final newline included.
    env.set_keep_trailing_newline(true);
    env.set_fuel(Some(RENDER_FUEL));
    env
}

/// Adds a violation on `field` for a syntax error, or for each unknown name.
fn check_template(
    env: &Environment<'_>,
    name: &str,
    source: &str,
    field: &str,
    violations: &mut Violations,
) {
    let template = match env.template_from_named_str(name, source) {
        Ok(template) => template,
        Err(err) => {
            violations.add(field, describe(&err));
            return;
        }
    };
    let mut unknown: Vec<String> = template
        .undeclared_variables(true)
        .into_iter()
        .filter(|variable| !is_known(env, variable))
        .collect();
    // The set's order is random; a stable order keeps messages reproducible.
    unknown.sort();
    for variable in unknown {
        violations.add(field, format!("unknown variable \"{variable}\""));
    }
}

/// Whether a template may name `variable`, a dotted path such as
/// `contact.given_name` as reported by `undeclared_variables(true)`.
fn is_known(env: &Environment<'_>, variable: &str) -> bool {
    let is_prefix_of = |known: &str| {
        known
            .strip_prefix(variable)
            .is_some_and(|rest| rest.starts_with('.'))
    };
    let root = variable.split('.').next().unwrap_or(variable);
    KNOWN_VARIABLES.contains(&variable)
        // `contact`, `campaign`: the parents of known variables.
        || KNOWN_VARIABLES.iter().any(|known| is_prefix_of(known))
        || variable == CUSTOM_FIELDS
        || variable
            .strip_prefix(CUSTOM_FIELDS)
            .is_some_and(|rest| rest.starts_with('.'))
        // `range`, `namespace`, ...: minijinja's globals.
        || env.globals().any(|(global, _)| global == root)
}

/// The render context for one recipient. Empty values are left out so they
/// are undefined and `default(...)` applies.
fn context(recipient: &Recipient, campaign_name: &str, unsubscribe_url: &str) -> Value {
    let contact_fields = [
        ("given_name", &recipient.given_name),
        ("family_name", &recipient.family_name),
        ("display_name", &recipient.display_name),
        ("email", &recipient.email),
        ("job_title", &recipient.job_title),
        ("lifecycle_stage", &recipient.lifecycle_stage),
        ("company", &recipient.company),
    ];
    let custom = Value::from_iter(
        recipient
            .custom
            .iter()
            .filter(|(_, value)| !matches!(value, serde_json::Value::Null))
            .filter(|(_, value)| value.as_str() != Some(""))
            .map(|(key, value)| (key.as_str(), Value::from_serialize(value))),
    );
    // `custom` is always present, even empty, so it can be iterated.
    let contact = Value::from_iter(
        contact_fields
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| (key, Value::from(value.as_str())))
            .chain([("custom", custom)]),
    );
    let campaign = Value::from_iter(
        [("name", campaign_name)]
            .into_iter()
            .filter(|(_, value)| !value.is_empty()),
    );
    Value::from_iter(
        [("contact", contact), ("campaign", campaign)]
            .into_iter()
            .chain(
                Some(("unsubscribe_url", Value::from(unsubscribe_url)))
                    .filter(|_| !unsubscribe_url.is_empty()),
            ),
    )
}

/// A subject header is one line: each run of line breaks (and the spaces
/// around it) becomes one space, and the ends are trimmed.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// "syntax error on line 2: unexpected end of input": the error's kind,
/// line and detail, without minijinja's template-name suffix.
fn describe(err: &minijinja::Error) -> String {
    let mut text = err.kind().to_string();
    if let Some(line) = err.line() {
        text.push_str(&format!(" on line {line}"));
    }
    if let Some(detail) = err.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_shared::error::FieldViolation;
    use serde_json::json;

    fn draft(subject: &str, html_body: &str, text_body: &str) -> TemplateDraft {
        TemplateDraft {
            display_name: "Welcome".into(),
            subject: subject.into(),
            html_body: html_body.into(),
            text_body: text_body.into(),
        }
    }

    fn violations(mut draft: TemplateDraft) -> Vec<FieldViolation> {
        match draft.normalize_and_check("template") {
            Err(ApiError::InvalidArgument(violations)) => violations,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    fn has(violations: &[FieldViolation], field: &str, needle: &str) -> bool {
        violations
            .iter()
            .any(|v| v.field == field && v.description.contains(needle))
    }

    fn ada() -> Recipient {
        Recipient {
            given_name: "Ada".into(),
            email: "ada@example.com".into(),
            ..Recipient::default()
        }
    }

    fn render_one(draft: &TemplateDraft, recipient: &Recipient) -> Rendered {
        render(draft, recipient, "Spring", "https://u.example/x").unwrap()
    }

    #[test]
    fn valid_draft_passes_and_is_trimmed() {
        let mut d = draft("  Hi {{ contact.given_name }}  ", "<p>Hi</p>", "");
        d.display_name = "  Welcome  ".into();
        d.normalize_and_check("template").unwrap();
        assert_eq!(d.display_name, "Welcome");
        assert_eq!(d.subject, "Hi {{ contact.given_name }}");
    }

    #[test]
    fn every_known_variable_is_accepted() {
        let mut body: String = KNOWN_VARIABLES
            .iter()
            .map(|v| format!("{{{{ {v} }}}}\n"))
            .collect();
        body.push_str("{{ contact.custom.shoe_size }}{{ contact.custom.address.city }}");
        body.push_str("{{ contact }}{{ contact.custom }}{{ campaign }}");
        draft("Hi", &body, &body)
            .normalize_and_check("template")
            .unwrap();
    }

    #[test]
    fn unknown_variable_is_named_with_its_field() {
        let v = violations(draft(
            "Hi {{ contact.shoe_size }}",
            "{{ unsubscribe_link }}",
            "{{ contact.given_name.first }}",
        ));
        assert!(has(
            &v,
            "template.subject",
            "unknown variable \"contact.shoe_size\""
        ));
        assert!(has(
            &v,
            "template.html_body",
            "unknown variable \"unsubscribe_link\""
        ));
        assert!(has(
            &v,
            "template.text_body",
            "unknown variable \"contact.given_name.first\""
        ));
        assert_eq!(v.len(), 3, "{v:?}");
    }

    #[test]
    fn each_unknown_variable_gets_its_own_violation() {
        let v = violations(draft("Hi", "{{ a }}{{ b.c }}", ""));
        assert_eq!(
            v,
            vec![
                FieldViolation::new("template.html_body", "unknown variable \"a\""),
                FieldViolation::new("template.html_body", "unknown variable \"b.c\""),
            ]
        );
    }

    #[test]
    fn syntax_error_is_named_with_its_field_and_line() {
        let v = violations(draft("Hi", "<p>\n\n{{ contact.given_name </p>", "{% if %}"));
        let html = v.iter().find(|v| v.field == "template.html_body").unwrap();
        assert!(
            html.description.starts_with("syntax error on line 3: "),
            "{html:?}"
        );
        assert!(has(&v, "template.text_body", "syntax error on line 1"));
    }

    #[test]
    fn missing_bodies_are_reported_on_text_body() {
        let v = violations(draft("Hi", "", ""));
        assert_eq!(
            v,
            vec![FieldViolation::new(
                "template.text_body",
                "html_body or text_body is required"
            )]
        );
    }

    #[test]
    fn either_body_alone_is_enough() {
        draft("Hi", "<p>x</p>", "")
            .normalize_and_check("t")
            .unwrap();
        draft("Hi", "", "x").normalize_and_check("t").unwrap();
    }

    #[test]
    fn all_violations_are_collected() {
        let mut d = draft(" Hi\nthere ", "{{ nope }}", "{{ x");
        d.display_name = "   ".into();
        let v = violations(d);
        assert!(has(&v, "template.display_name", "is required"));
        assert!(has(&v, "template.subject", "single line"));
        assert!(has(&v, "template.html_body", "unknown variable \"nope\""));
        assert!(has(&v, "template.text_body", "syntax error"));
    }

    #[test]
    fn subject_is_required_and_limited() {
        let v = violations(draft("  ", "x", ""));
        assert!(has(&v, "template.subject", "is required"));
        let v = violations(draft(&"s".repeat(MAX_SUBJECT + 1), "x", ""));
        assert!(has(&v, "template.subject", "at most 998"));
        draft(&"s".repeat(MAX_SUBJECT), "x", "")
            .normalize_and_check("template")
            .unwrap();
    }

    #[test]
    fn bodies_are_limited() {
        let v = violations(draft("Hi", &"x".repeat(MAX_LONG + 1), "ok"));
        assert!(has(&v, "template.html_body", "at most"));
    }

    #[test]
    fn loops_sets_and_globals_are_accepted() {
        let body = "{% for item in contact.custom.items %}{{ loop.index }}: {{ item }}{% endfor %}\
                    {% set greeting = contact.given_name | default('there') %}{{ greeting }}\
                    {% for key, value in contact.custom | items %}{{ key }}={{ value }}{% endfor %}\
                    {% for i in range(3) %}{{ i }}{% endfor %}\
                    {% set ns = namespace(n=0) %}{% set ns.n = 1 %}{{ ns.n }}";
        let mut d = draft("Hi", body, body);
        d.normalize_and_check("template").unwrap();

        let mut recipient = ada();
        recipient.custom.insert("items".into(), json!(["a", "b"]));
        let out = render_one(&d, &recipient);
        assert!(
            out.text_body.starts_with("1: a2: bAda"),
            "{}",
            out.text_body
        );
        assert!(out.text_body.ends_with("0121"), "{}", out.text_body);
    }

    #[test]
    fn default_filter_gives_fallback_for_empty_field() {
        let d = draft("Hi {{ contact.given_name | default(\"there\") }}", "", "x");
        let out = render_one(&d, &Recipient::default());
        assert_eq!(out.subject, "Hi there");
        assert_eq!(render_one(&d, &ada()).subject, "Hi Ada");
    }

    #[test]
    fn default_filter_gives_fallback_for_missing_or_empty_custom_field() {
        let d = draft(
            "x",
            "",
            "{{ contact.custom.tier | default('basic') }} {{ contact.custom.city | default('?') }} {{ contact.custom.zip | default('-') }}",
        );
        let mut recipient = ada();
        recipient.custom.insert("city".into(), json!(""));
        recipient.custom.insert("zip".into(), json!(null));
        assert_eq!(render_one(&d, &recipient).text_body, "basic ? -");
    }

    #[test]
    fn empty_field_renders_empty() {
        let d = draft(
            "Hi {{ contact.given_name }}!",
            "",
            "[{{ contact.company }}][{{ contact.custom.address.city }}]",
        );
        let out = render_one(&d, &Recipient::default());
        assert_eq!(out.subject, "Hi !");
        assert_eq!(out.text_body, "[][]");
        assert_eq!(out.html_body, "");
    }

    #[test]
    fn html_body_is_escaped_text_and_subject_are_raw() {
        let d = draft(
            "Hi {{ contact.given_name }}",
            "<p>Hi {{ contact.given_name }}</p>",
            "Hi {{ contact.given_name }}",
        );
        let recipient = Recipient {
            given_name: "<b>Ada</b>".into(),
            ..Recipient::default()
        };
        let out = render_one(&d, &recipient);
        assert_eq!(out.html_body, "<p>Hi &lt;b&gt;Ada&lt;&#x2f;b&gt;</p>");
        assert_eq!(out.text_body, "Hi <b>Ada</b>");
        assert_eq!(out.subject, "Hi <b>Ada</b>");
    }

    #[test]
    fn subject_newlines_are_flattened() {
        let d = draft("Hi {{ contact.custom.note }}", "", "x");
        let mut recipient = ada();
        recipient
            .custom
            .insert("note".into(), json!("line one\r\n  line two\nthree\r\n"));
        assert_eq!(
            render_one(&d, &recipient).subject,
            "Hi line one line two three"
        );
    }

    #[test]
    fn custom_fields_render_strings_and_numbers() {
        let d = draft(
            "{{ contact.custom.plan }}",
            "",
            "{{ contact.custom.plan }} {{ contact.custom.seats }} {{ contact.custom.seats + 1 }} {{ contact.custom.score }}",
        );
        let mut recipient = ada();
        recipient.custom.insert("plan".into(), json!("Pro"));
        recipient.custom.insert("seats".into(), json!(12));
        recipient.custom.insert("score".into(), json!(4.5));
        let out = render_one(&d, &recipient);
        assert_eq!(out.subject, "Pro");
        assert_eq!(out.text_body, "Pro 12 13 4.5");
    }

    #[test]
    fn campaign_and_unsubscribe_render() {
        let d = draft(
            "{{ campaign.name }}",
            "<a href=\"{{ unsubscribe_url }}\">x</a>",
            "{{ unsubscribe_url }} {{ contact.email }}",
        );
        let out = render_one(&d, &ada());
        assert_eq!(out.subject, "Spring");
        assert_eq!(out.text_body, "https://u.example/x ada@example.com");
        assert!(out.html_body.contains("https:&#x2f;&#x2f;u.example&#x2f;x"));
    }

    #[test]
    fn trailing_newline_of_body_is_kept() {
        let d = draft("x", "", "Bye {{ contact.given_name }}\n");
        assert_eq!(render_one(&d, &ada()).text_body, "Bye Ada\n");
    }

    #[test]
    fn runtime_error_is_failed_precondition_naming_field() {
        let d = draft("Hi", "", "{{ contact.custom.plan + 1 }}");
        let mut recipient = ada();
        recipient.custom.insert("plan".into(), json!("Pro"));
        match render(&d, &recipient, "c", "u") {
            Err(ApiError::FailedPrecondition(message)) => {
                assert!(message.contains("text_body"), "{message}");
                assert!(message.contains("invalid operation"), "{message}");
            }
            other => panic!("expected FailedPrecondition, got {other:?}"),
        }
    }

    #[test]
    fn runaway_loop_is_failed_precondition() {
        let body = "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}";
        let mut d = draft("Hi", body, "");
        d.normalize_and_check("template").unwrap();
        match render(&d, &ada(), "c", "u") {
            Err(ApiError::FailedPrecondition(message)) => {
                assert!(message.contains("html_body"), "{message}");
                assert!(message.contains("fuel"), "{message}");
            }
            other => panic!("expected FailedPrecondition, got {other:?}"),
        }
    }

    #[test]
    fn compiled_template_renders_many_recipients_alike() {
        let d = draft("Hi {{ contact.given_name }}", "", "{{ contact.email }}");
        let compiled = d.compile().unwrap();
        for name in ["Ada", "Grace"] {
            let recipient = Recipient {
                given_name: name.into(),
                ..Recipient::default()
            };
            assert_eq!(
                compiled.render(&recipient, "c", "u").unwrap(),
                render(&d, &recipient, "c", "u").unwrap()
            );
        }
    }

    #[test]
    fn compile_of_broken_template_is_failed_precondition() {
        match draft("{{ x", "", "y").compile() {
            Err(ApiError::FailedPrecondition(message)) => {
                assert!(message.contains("subject"), "{message}")
            }
            other => panic!("expected FailedPrecondition, got {other:?}"),
        }
    }

    #[test]
    fn compiled_template_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CompiledTemplate>();
    }
}

/// The fields UpdateTemplate may change.
pub const TEMPLATE_FIELDS: &[&str] = &["display_name", "subject", "html_body", "text_body"];

impl TemplateDraft {
    /// Copies the fields named in `paths` from `patch`.
    pub fn apply(&mut self, paths: &[&str], patch: &TemplateDraft) {
        for path in paths {
            match *path {
                "display_name" => self.display_name.clone_from(&patch.display_name),
                "subject" => self.subject.clone_from(&patch.subject),
                "html_body" => self.html_body.clone_from(&patch.html_body),
                "text_body" => self.text_body.clone_from(&patch.text_body),
                _ => {}
            }
        }
    }
}

/// A stored template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its fields.
    pub draft: TemplateDraft,
    /// Created.
    pub create_time: chrono::DateTime<chrono::Utc>,
    /// Last changed.
    pub update_time: chrono::DateTime<chrono::Utc>,
    /// Deleted.
    pub delete_time: Option<chrono::DateTime<chrono::Utc>>,
    /// The row's version.
    pub version: i64,
}

impl Template {
    /// `templates/{id}`.
    pub fn name(&self) -> String {
        format!("templates/{}", self.id)
    }
}
