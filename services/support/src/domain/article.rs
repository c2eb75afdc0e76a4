//! Knowledge-base articles: what a valid one is, how its state moves, when
//! its content makes a new version, and who may see it.
//!
//! The life of an article: DRAFT while it is written (only editors see it),
//! PUBLISHED when everyone in the tenant may read it and search finds it,
//! ARCHIVED when it is retired (still readable, never found). A published or
//! archived article is published again by PublishArticle; any article is
//! archived by ArchiveArticle.

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    validate::{MAX_LONG, MAX_SHORT, Violations, normalize_tags},
};
use uuid::Uuid;

/// Where an article is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArticleState {
    /// Being written; editors only.
    Draft,
    /// Live: read by everyone, found by search.
    Published,
    /// Retired: readable, never found.
    Archived,
}

/// Every state with its stored (and filter) name.
pub const ARTICLE_STATES: &[(ArticleState, &str)] = &[
    (ArticleState::Draft, "DRAFT"),
    (ArticleState::Published, "PUBLISHED"),
    (ArticleState::Archived, "ARCHIVED"),
];

/// The fields a caller writes: an article's content.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleDraft {
    /// The title.
    pub title: String,
    /// Markdown.
    pub body: String,
    /// A canonical BCP 47 tag.
    pub locale: String,
    /// For browsing.
    pub category: String,
    /// Labels.
    pub tags: Vec<String>,
}

/// The fields UpdateArticle may change; each is content, so changing any
/// makes a new version.
pub const ARTICLE_FIELDS: &[&str] = &["title", "body", "locale", "category", "tags"];

impl ArticleDraft {
    /// Trims, brings the locale to its canonical case, and checks every
    /// field; `prefix` names the message in violations.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.title = self.title.trim().to_owned();
        self.category = self.category.trim().to_owned();
        normalize_tags(&mut self.tags);
        let mut v = Violations::default();
        if self.title.is_empty() {
            v.add(format!("{prefix}.title"), "required");
        }
        v.text(&format!("{prefix}.title"), &self.title, MAX_SHORT);
        v.text(&format!("{prefix}.body"), &self.body, MAX_LONG);
        v.text(&format!("{prefix}.category"), &self.category, MAX_SHORT);
        v.tags(&format!("{prefix}.tags"), &self.tags);
        match canonical_locale(&self.locale) {
            Some(locale) => self.locale = locale,
            None if self.locale.trim().is_empty() => {
                v.add(
                    format!("{prefix}.locale"),
                    "required: a BCP 47 tag such as en or de-CH",
                );
            }
            None => v.add(
                format!("{prefix}.locale"),
                format!(
                    "{:?} is not a BCP 47 tag such as en, de-CH or zh-Hant-TW",
                    self.locale
                ),
            ),
        }
        v.finish()
    }

    /// Copies the fields named in `paths` from `from`.
    pub fn apply(&mut self, paths: &[&str], from: &ArticleDraft) {
        for path in paths {
            match *path {
                "title" => self.title = from.title.clone(),
                "body" => self.body = from.body.clone(),
                "locale" => self.locale = from.locale.clone(),
                "category" => self.category = from.category.clone(),
                "tags" => self.tags = from.tags.clone(),
                _ => {}
            }
        }
    }
}

/// A stored article.
#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    /// The id.
    pub id: Uuid,
    /// The content.
    pub draft: ArticleDraft,
    /// Where it stands.
    pub state: ArticleState,
    /// The content version, from 1.
    pub content_version: i64,
    /// Votes that it helped.
    pub helpful_count: i64,
    /// Votes that it did not.
    pub not_helpful_count: i64,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Changed.
    pub update_time: DateTime<Utc>,
    /// Last published.
    pub publish_time: Option<DateTime<Utc>>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// The row version the etag carries.
    pub version: i64,
}

/// What a change did to an article, which names its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArticleChange {
    /// Its content changed: a new version.
    Updated,
    /// It was published.
    Published,
    /// It was archived.
    Archived,
    /// It was soft-deleted.
    Deleted,
    /// It was restored.
    Undeleted,
}

impl ArticleChange {
    /// The event this change is announced as.
    pub fn event(self) -> &'static str {
        match self {
            Self::Updated => "ArticleUpdated",
            Self::Published => "ArticlePublished",
            Self::Archived => "ArticleArchived",
            Self::Deleted => "ArticleDeleted",
            Self::Undeleted => "ArticleUndeleted",
        }
    }
}

impl Article {
    /// A new article, version 1, DRAFT unless `state` says PUBLISHED; an
    /// archived article cannot be created (INVALID_ARGUMENT on `field`).
    pub fn new(
        draft: ArticleDraft,
        state: ArticleState,
        now: DateTime<Utc>,
        field: &str,
    ) -> Result<Self, ApiError> {
        if state == ArticleState::Archived {
            return Err(ApiError::invalid(
                field,
                "a new article is DRAFT or PUBLISHED",
            ));
        }
        Ok(Self {
            id: Uuid::now_v7(),
            draft,
            state,
            content_version: 1,
            helpful_count: 0,
            not_helpful_count: 0,
            create_time: now,
            update_time: now,
            publish_time: (state == ArticleState::Published).then_some(now),
            delete_time: None,
            version: 1,
        })
    }

    /// `articles/{id}`.
    pub fn name(&self) -> String {
        format!("articles/{}", self.id)
    }

    /// Whether a caller sees it: editors see every article, anyone else
    /// all but drafts.
    pub fn visible_to(&self, sees_drafts: bool) -> bool {
        sees_drafts || self.state != ArticleState::Draft
    }

    fn live(&self) -> Result<(), ApiError> {
        match self.delete_time {
            Some(_) => Err(ApiError::NotFound(self.name())),
            None => Ok(()),
        }
    }

    /// Applies an update: the fields in `paths` from `changes`, checked.
    /// A change of content is a new version; no change is `None`.
    pub fn revise(
        &mut self,
        paths: &[&str],
        changes: &ArticleDraft,
        prefix: &str,
    ) -> Result<Option<ArticleChange>, ApiError> {
        self.live()?;
        let before = self.draft.clone();
        self.draft.apply(paths, changes);
        self.draft.normalize_and_check(prefix)?;
        if self.draft == before {
            return Ok(None);
        }
        self.content_version += 1;
        Ok(Some(ArticleChange::Updated))
    }

    /// Publishes it (again, when archived); a published article is left as it is.
    pub fn publish(&mut self, now: DateTime<Utc>) -> Result<Option<ArticleChange>, ApiError> {
        self.live()?;
        if self.state == ArticleState::Published {
            return Ok(None);
        }
        self.state = ArticleState::Published;
        self.publish_time = Some(now);
        Ok(Some(ArticleChange::Published))
    }

    /// Archives it; an archived article is left as it is.
    pub fn archive(&mut self) -> Result<Option<ArticleChange>, ApiError> {
        self.live()?;
        if self.state == ArticleState::Archived {
            return Ok(None);
        }
        self.state = ArticleState::Archived;
        Ok(Some(ArticleChange::Archived))
    }

    /// Soft-deletes it; a deleted article is left as it is.
    pub fn delete(&mut self, now: DateTime<Utc>) -> Option<ArticleChange> {
        if self.delete_time.is_some() {
            return None;
        }
        self.delete_time = Some(now);
        Some(ArticleChange::Deleted)
    }

    /// Restores it; a live article is left as it is.
    pub fn undelete(&mut self) -> Option<ArticleChange> {
        self.delete_time.take().map(|_| ArticleChange::Undeleted)
    }

    /// Whether it may be voted on or linked to a ticket: only a live,
    /// published article (FAILED_PRECONDITION otherwise).
    pub fn check_published(&self, doing: &str) -> Result<(), ApiError> {
        self.live()?;
        if self.state != ArticleState::Published {
            return Err(ApiError::FailedPrecondition(format!(
                "{} is not published: only a published article can be {doing}",
                self.name()
            )));
        }
        Ok(())
    }
}

/// One kept version of an article's content.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleVersion {
    /// The article's id.
    pub article: Uuid,
    /// The content version.
    pub number: i64,
    /// The content then.
    pub draft: ArticleDraft,
    /// Who wrote it.
    pub author: String,
    /// When.
    pub create_time: DateTime<Utc>,
}

impl ArticleVersion {
    /// The version an article's content is now.
    pub fn of(article: &Article, author: &str) -> Self {
        Self {
            article: article.id,
            number: article.content_version,
            draft: article.draft.clone(),
            author: author.to_owned(),
            create_time: article.update_time,
        }
    }

    /// `articles/{id}/versions/{number}`.
    pub fn name(&self) -> String {
        format!("articles/{}/versions/{}", self.article, self.number)
    }
}

/// An article linked to a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleLink {
    /// The ticket's id.
    pub ticket: Uuid,
    /// The article's id.
    pub article: Uuid,
    /// The article's title now.
    pub article_title: String,
    /// Who linked it.
    pub linked_by: String,
    /// When.
    pub create_time: DateTime<Utc>,
}

impl ArticleLink {
    /// `tickets/{id}/articleLinks/{article id}`.
    pub fn name(&self) -> String {
        format!("tickets/{}/articleLinks/{}", self.ticket, self.article)
    }
}

/// The canonical form of a BCP 47 language tag (RFC 5646, without
/// extensions and private use): language lower-case, script title-case,
/// region upper-case, variants lower-case; "_" is read as "-". `None` when
/// it is not one.
pub fn canonical_locale(tag: &str) -> Option<String> {
    let tag = tag.trim();
    if tag.is_empty() || tag.len() > 35 {
        return None;
    }
    let mut parts = tag.split(['-', '_']);
    let language = parts.next()?;
    if !(2..=3).contains(&language.len()) || !language.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let mut out = vec![language.to_ascii_lowercase()];
    // 0: script may follow; 1: region may follow; 2: only variants.
    let mut stage = 0;
    for part in parts {
        let alpha = part.chars().all(|c| c.is_ascii_alphabetic());
        let alnum = part.chars().all(|c| c.is_ascii_alphanumeric());
        let digits = part.chars().all(|c| c.is_ascii_digit());
        if stage == 0 && part.len() == 4 && alpha {
            let mut script = part.to_ascii_lowercase();
            script[..1].make_ascii_uppercase();
            out.push(script);
            stage = 1;
        } else if stage <= 1 && ((part.len() == 2 && alpha) || (part.len() == 3 && digits)) {
            out.push(part.to_ascii_uppercase());
            stage = 2;
        } else if alnum
            && ((5..=8).contains(&part.len())
                || (part.len() == 4 && part.starts_with(|c: char| c.is_ascii_digit())))
        {
            out.push(part.to_ascii_lowercase());
            stage = 2;
        } else {
            return None;
        }
    }
    Some(out.join("-"))
}

/// Whether an article in `locale` is in the language a caller asked for:
/// "de" takes "de" and "de-CH", "de-CH" only "de-CH". Both canonical.
pub fn locale_matches(asked: &str, locale: &str) -> bool {
    locale == asked
        || locale
            .strip_prefix(asked)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// The PostgreSQL text-search configuration for a canonical locale: its
/// language's stemmer where PostgreSQL has the ones we picked, else `simple`
/// (words as written, lower-cased).
pub fn search_config(locale: &str) -> &'static str {
    match locale.split('-').next().unwrap_or_default() {
        "en" => "english",
        "de" => "german",
        "fr" => "french",
        "es" => "spanish",
        _ => "simple",
    }
}

/// Every configuration [`search_config`] answers.
pub const SEARCH_CONFIGS: &[&str] = &["english", "german", "french", "spanish", "simple"];

/// The longest search query.
const MAX_QUERY: usize = 1000;
/// The most words and phrases one query may hold.
const MAX_TERMS: usize = 32;
/// The most words of a ticket a suggestion looks for.
pub const MAX_SUGGESTION_TERMS: usize = 12;

/// A word or a phrase to look for: its text, without quotes, holding at
/// least one letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term(String);

impl Term {
    fn new(text: &str) -> Option<Self> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let text = words.join(" ").replace('"', " ");
        text.chars()
            .any(char::is_alphanumeric)
            .then(|| Self(text.trim().to_owned()))
    }

    /// The text, never holding a double quote.
    pub fn text(&self) -> &str {
        &self.0
    }
}

/// One condition of a query; a query holds all of its clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// Any of these terms.
    Any(Vec<Term>),
    /// Not this term.
    Not(Term),
}

/// A search, read the way a web search box reads: words all match,
/// "quoted phrases" match as written, `or` between two terms takes either,
/// `-word` excludes. The store renders it for its database; nothing of the
/// caller's text reaches a database's query syntax unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The conditions, all of which must hold.
    pub clauses: Vec<Clause>,
}

impl SearchQuery {
    /// Reads a caller's query; INVALID_ARGUMENT on `field` when it is empty,
    /// too long, or holds nothing to look for (only excluded words).
    pub fn parse(text: &str, field: &str) -> Result<Self, ApiError> {
        if text.chars().count() > MAX_QUERY {
            return Err(ApiError::invalid(
                field,
                format!("at most {MAX_QUERY} characters"),
            ));
        }
        if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
            return Err(ApiError::invalid(
                field,
                "must not contain control characters",
            ));
        }
        let mut clauses: Vec<Clause> = Vec::new();
        let mut join_next = false;
        let mut terms = 0;
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let negated = rest.starts_with('-');
            if negated {
                rest = &rest[1..];
            }
            let (raw, quoted, after) = if let Some(inner) = rest.strip_prefix('"') {
                let end = inner.find('"').unwrap_or(inner.len());
                (&inner[..end], true, inner.get(end + 1..).unwrap_or(""))
            } else {
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '"')
                    .unwrap_or(rest.len());
                (&rest[..end], false, &rest[end..])
            };
            rest = after.trim_start();
            if !quoted && !negated && raw.eq_ignore_ascii_case("or") {
                join_next = matches!(clauses.last(), Some(Clause::Any(_)));
                continue;
            }
            let Some(term) = Term::new(raw) else {
                continue;
            };
            terms += 1;
            if terms > MAX_TERMS {
                return Err(ApiError::invalid(
                    field,
                    format!("at most {MAX_TERMS} words and phrases"),
                ));
            }
            match (negated, join_next, clauses.last_mut()) {
                (true, _, _) => clauses.push(Clause::Not(term)),
                (false, true, Some(Clause::Any(any))) => any.push(term),
                (false, _, _) => clauses.push(Clause::Any(vec![term])),
            }
            join_next = false;
        }
        if !clauses.iter().any(|c| matches!(c, Clause::Any(_))) {
            return Err(ApiError::invalid(
                field,
                if text.trim().is_empty() {
                    "required: the words to look for"
                } else {
                    "holds no word to look for"
                },
            ));
        }
        Ok(Self { clauses })
    }

    /// A query for any of `terms` (at least one).
    pub fn any_of(terms: Vec<String>) -> Option<Self> {
        let terms: Vec<Term> = terms.iter().filter_map(|t| Term::new(t)).collect();
        (!terms.is_empty()).then(|| Self {
            clauses: vec![Clause::Any(terms)],
        })
    }
}

/// Words too common to say what a ticket is about (English, German, French
/// and Spanish function words, and a support mail's greetings).
#[rustfmt::skip]
const STOP_WORDS: &[&str] = &[
    "about", "above", "after", "again", "against", "all", "also", "and", "any", "are", "aren",
    "because", "been", "before", "being", "below", "between", "both", "but", "can", "cannot",
    "could", "did", "does", "doing", "don", "down", "during", "each", "even", "few", "for", "from",
    "further", "get", "gets", "got", "had", "has", "have", "having", "her", "here", "hers",
    "herself", "him", "himself", "his", "how", "into", "its", "itself", "just", "let", "like",
    "more", "most", "much", "must", "myself", "need", "not", "now", "off", "once", "only", "other",
    "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "some", "still",
    "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there",
    "these", "they", "this", "those", "through", "too", "under", "until", "very", "want", "was",
    "way", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "within", "without", "would", "yet", "you", "your", "yours", "yourself", "yourselves", "hello",
    "dear", "thanks", "thank", "please", "regards", "best", "kind", "cheers", "team", "know",
    "tried", "try", "trying", "able", "since", "one", "der", "die", "das", "und", "ist", "nicht",
    "ein", "eine", "einen", "mit", "von", "den", "dem", "des", "für", "auf", "ich", "wir", "sie",
    "ihr", "bitte", "danke", "hallo", "les", "une", "est", "pas", "pour", "que", "qui", "dans",
    "sur", "avec", "nous", "vous", "merci", "bonjour", "los", "las", "una", "por", "para", "con",
    "del", "hola", "gracias",
];

/// The words of a ticket worth looking for: its subject's, then its
/// description's most frequent, lower-cased, without stop words, numbers
/// and words under three letters; at most [`MAX_SUGGESTION_TERMS`].
pub fn suggestion_terms(subject: &str, description: &str) -> Vec<String> {
    let significant = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .map(str::to_lowercase)
            .filter(|w| {
                w.chars().count() >= 3
                    && !w.chars().all(|c| c.is_ascii_digit())
                    && !STOP_WORDS.contains(&w.as_str())
            })
            .collect()
    };
    let mut terms: Vec<String> = Vec::new();
    for word in significant(subject) {
        if !terms.contains(&word) {
            terms.push(word);
        }
    }
    let mut counted: Vec<(String, usize)> = Vec::new();
    for word in significant(description) {
        match counted.iter_mut().find(|(w, _)| *w == word) {
            Some((_, n)) => *n += 1,
            None => counted.push((word, 1)),
        }
    }
    // Stable: equally frequent words keep the order they came in.
    counted.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (word, _) in counted {
        if !terms.contains(&word) {
            terms.push(word);
        }
    }
    terms.truncate(MAX_SUGGESTION_TERMS);
    terms
}

/// Marks the start of a matched word in a snippet the store returns.
pub const MATCH_START: char = '\u{2}';
/// Marks its end. Neither marker can occur in an article (no control
/// characters are accepted), so they cannot be forged by its text.
pub const MATCH_END: char = '\u{3}';

/// A snippet with marked matches as HTML: the text escaped, each match
/// inside `<mark>`, and runs of white space (line breaks) as one space.
pub fn snippet_html(marked: &str) -> String {
    let mut out = String::with_capacity(marked.len() + 32);
    let mut space = false;
    for c in marked.trim().chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        match c {
            MATCH_START => out.push_str("<mark>"),
            MATCH_END => out.push_str("</mark>"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(query: &SearchQuery) -> Vec<String> {
        query
            .clauses
            .iter()
            .map(|c| match c {
                Clause::Any(terms) => terms
                    .iter()
                    .map(|t| t.text().to_owned())
                    .collect::<Vec<_>>()
                    .join("|"),
                Clause::Not(term) => format!("-{}", term.text()),
            })
            .collect()
    }

    #[test]
    fn queries_read_like_a_web_search_box() {
        let q = SearchQuery::parse(r#"refund "credit card" or paypal -crypto"#, "query").unwrap();
        assert_eq!(texts(&q), ["refund", "credit card|paypal", "-crypto"]);
        // FTS syntax is just text: quotes, stars, NEAR, column filters.
        let q = SearchQuery::parse(r#"title:x* NEAR(a b) "unclosed"#, "query").unwrap();
        assert_eq!(texts(&q), ["title:x*", "NEAR(a", "b)", "unclosed"]);
        let q = SearchQuery::parse(r#"a"b" or"#, "query").unwrap();
        assert_eq!(texts(&q), ["a", "b"]);
    }

    #[test]
    fn a_query_needs_a_word_to_look_for() {
        for bad in ["", "   ", "-only", "!!! ???", "or", "\"\""] {
            let err = SearchQuery::parse(bad, "query").unwrap_err();
            assert!(
                matches!(err, ApiError::InvalidArgument(ref v) if v[0].field == "query"),
                "{bad:?}"
            );
        }
        assert!(SearchQuery::parse(&"word ".repeat(33), "query").is_err());
        assert!(SearchQuery::parse(&"x".repeat(1001), "query").is_err());
    }

    #[test]
    fn locales_are_bcp47_in_canonical_case() {
        for (given, canonical) in [
            ("en", "en"),
            ("DE-ch", "de-CH"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("es-419", "es-419"),
            ("sl-rozaj-biske", "sl-rozaj-biske"),
            ("de_DE", "de-DE"),
            ("de-CH-1996", "de-CH-1996"),
        ] {
            assert_eq!(
                canonical_locale(given).as_deref(),
                Some(canonical),
                "{given}"
            );
        }
        for bad in [
            "",
            "e",
            "english",
            "en-",
            "en-US-",
            "12",
            "en-toolongvariant",
            "en US",
        ] {
            assert_eq!(canonical_locale(bad), None, "{bad}");
        }
        assert!(locale_matches("de", "de-CH"));
        assert!(locale_matches("de-CH", "de-CH"));
        assert!(!locale_matches("de", "dek"));
        assert!(!locale_matches("de-CH", "de"));
        assert_eq!(search_config("de-CH"), "german");
        assert_eq!(search_config("pt-BR"), "simple");
    }

    #[test]
    fn suggestions_look_for_the_significant_words_subject_first() {
        let terms = suggestion_terms(
            "Refund for order 1234",
            "Hello, I was charged twice. Please refund the second charge; the charge was on my card. Thanks!",
        );
        assert_eq!(
            terms,
            [
                "refund", "order", "charge", "charged", "twice", "second", "card"
            ]
        );
        let many = (0..30)
            .map(|i| format!("word{i}x"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(suggestion_terms(&many, "").len(), MAX_SUGGESTION_TERMS);
        assert!(suggestion_terms("Hi", "the and of 42").is_empty());
    }

    #[test]
    fn snippets_are_escaped_html_with_marked_matches() {
        let marked = format!("a <b>\n\n & {MATCH_START}refund{MATCH_END} \"now\"");
        assert_eq!(
            snippet_html(&marked),
            "a &lt;b&gt; &amp; <mark>refund</mark> &quot;now&quot;"
        );
    }

    #[test]
    fn content_changes_make_versions_and_states_move() {
        let draft = ArticleDraft {
            title: "Refunds".into(),
            body: "How".into(),
            locale: "en".into(),
            category: String::new(),
            tags: vec![],
        };
        let now = Utc::now();
        assert!(Article::new(draft.clone(), ArticleState::Archived, now, "article.state").is_err());
        let mut a = Article::new(draft.clone(), ArticleState::Draft, now, "article.state").unwrap();
        assert!(!a.visible_to(false));
        assert_eq!(a.revise(&["title"], &draft, "article").unwrap(), None);
        let changed = ArticleDraft {
            title: "Refunds, fast".into(),
            ..draft.clone()
        };
        assert_eq!(
            a.revise(&["title"], &changed, "article").unwrap(),
            Some(ArticleChange::Updated)
        );
        assert_eq!(a.content_version, 2);
        assert!(a.check_published("voted on").is_err());
        assert_eq!(a.publish(now).unwrap(), Some(ArticleChange::Published));
        assert_eq!(a.publish(now).unwrap(), None);
        assert!(a.check_published("voted on").is_ok());
        assert_eq!(a.archive().unwrap(), Some(ArticleChange::Archived));
        assert!(a.visible_to(false));
        assert_eq!(a.delete(now), Some(ArticleChange::Deleted));
        assert!(matches!(a.publish(now), Err(ApiError::NotFound(_))));
        assert_eq!(a.undelete(), Some(ArticleChange::Undeleted));
    }
}
