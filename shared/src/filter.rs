//! List filtering and ordering for `List*` RPCs.
//!
//! [`parse_filter`] understands a subset of [AIP-160](https://google.aip.dev/160) and turns it
//! into a SeaORM [`Condition`] over an allow-list of fields ([`FilterSchema`]);
//! [`parse_order_by`] understands [AIP-132](https://google.aip.dev/132) `order_by`. Clients only
//! ever name public field names; columns come from the schema, so a filter can never reach a
//! column that the resource did not opt into. Every value is bound as a parameter.
//!
//! Grammar (note that `OR` binds tighter than `AND` and juxtaposition, as AIP-160 specifies):
//!
//! ```text
//! expression  := sequence { "AND" sequence }
//! sequence    := factor { factor }               -- juxtaposition means AND
//! factor      := term { "OR" term }
//! term        := [ "NOT" | "-" ] simple
//! simple      := restriction | "(" expression ")"
//! restriction := field ( "=" | "!=" | "<" | "<=" | ">" | ">=" | ":" ) value
//! value       := "double quoted" | 'single quoted' | bare   -- bare: [A-Za-z0-9_.*+-]+
//! ```

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{Condition, Order, Value};

/// Longest filter (in characters) we agree to parse.
const MAX_FILTER_CHARS: usize = 4000;
/// Deepest parenthesis nesting we agree to parse; bounds the parser's recursion.
const MAX_DEPTH: usize = 32;
/// Most restrictions one filter may hold; bounds the size of the generated SQL.
const MAX_RESTRICTIONS: usize = 100;
/// The escape character used in every LIKE pattern we build.
const LIKE_ESCAPE: char = '\\';

/// How a filterable field is stored and compared.
#[derive(Debug, Clone, Copy)]
pub enum FieldKind {
    /// A text column. Ops: `= != < <= > >=` (case-sensitive, on the stored value) and `:`
    /// (case-insensitive substring). A trailing `*` in the value with `=` means prefix match.
    Text,
    /// An enum stored as text; the pairs are (public name as clients write it, stored value).
    /// Only `=` and `!=`; the public name is matched case-insensitively.
    Enum(&'static [(&'static str, &'static str)]),
    /// A timestamp column (`DateTime<Utc>`). The value must be a quoted RFC 3339 string.
    /// Ops: `= != < <= > >=`.
    Timestamp,
    /// An integer column (`i64`). The value must be an integer literal. Ops: `= != < <= > >=`.
    Integer,
    /// A boolean column. The value is `true` or `false`. Ops: `=` and `!=`.
    Bool,
    /// A text column holding a JSON array of strings (e.g. tags stored as `["vip","beta"]`).
    /// Only `:` (has): matches rows whose array contains exactly that string.
    JsonStringArray,
    /// Many values per row, one row each in a table of keys (a contact's email addresses in
    /// `contact_keys`); the field's `column` is the filtered table's id, which the keys name.
    /// A row matches when ANY of its keys does. Ops: `=` (a trailing `*` means prefix), `:`
    /// (substring) and `!=` (none of its keys equals the value). The value is first brought
    /// to the keys' form ([`KeyTable::key`]), so `=` ignores case when the keys do.
    AnyKey(KeyTable),
}

/// A table of keys: one row per value of a many-valued field, with `tenant`, `kind` and
/// `value` columns and a column naming the row that holds the value.
#[derive(Debug, Clone, Copy)]
pub struct KeyTable {
    /// The filtered table, whose rows hold the values ("contacts").
    pub owner_table: &'static str,
    /// The table of keys ("contact_keys").
    pub table: &'static str,
    /// The key table's column holding the owning row's id ("contact_id").
    pub owner: &'static str,
    /// The `kind` of key the field stands for ("email").
    pub kind: &'static str,
    /// A value as stored in `value` (an email address trimmed and lower-cased).
    pub key: fn(&str) -> String,
}

/// One field a filter may name: its public name, its column and how it compares.
#[derive(Debug, Clone, Copy)]
pub struct FilterField {
    /// The name clients write in the filter.
    pub name: &'static str,
    /// The column the name maps to.
    pub column: &'static str,
    /// How the column is stored and compared.
    pub kind: FieldKind,
}

impl FilterField {
    /// A field stored in a column of the same name.
    pub const fn new(name: &'static str, kind: FieldKind) -> Self {
        Self {
            name,
            column: name,
            kind,
        }
    }

    /// A text field stored in a column of the same name.
    pub const fn text(name: &'static str) -> Self {
        Self::new(name, FieldKind::Text)
    }
}

/// The fields of one resource that a filter may name.
#[derive(Debug, Clone, Copy)]
pub struct FilterSchema {
    /// The allow-list; any other name in a filter is an error.
    pub fields: &'static [FilterField],
}

/// What one List method accepts: the fields its `filter` and its `order_by`
/// may name. Each service lists its own (`LIST_SCHEMAS`), so the fuzz
/// targets parse against every real one.
#[derive(Debug, Clone, Copy)]
pub struct ListSchema {
    /// The listed resource's collection ("contacts").
    pub resource: &'static str,
    /// Its filter fields.
    pub filter: &'static FilterSchema,
    /// Its `order_by` fields with their columns.
    pub order_by: &'static [(&'static str, &'static str)],
}

/// Why a filter or `order_by` was rejected; the message is meant for the API client.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{message}")]
pub struct FilterError {
    /// Human-readable reason naming the offending position or field.
    pub message: String,
}

impl FilterError {
    /// Wraps a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Parses `filter` into a condition over the columns of `schema`.
///
/// An empty (or all-blank) filter gives an empty `Condition::all()`, which matches everything.
///
/// # Errors
///
/// A [`FilterError`] naming the position or field for syntax errors, unknown fields, operators
/// the field's kind does not support, values of the wrong type, and filters over the limits
/// (4000 characters, 32 levels of parentheses, 100 restrictions).
pub fn parse_filter(schema: &FilterSchema, filter: &str) -> Result<Condition, FilterError> {
    let chars = filter.chars().count();
    if chars > MAX_FILTER_CHARS {
        return Err(FilterError::new(format!(
            "filter is longer than {MAX_FILTER_CHARS} characters"
        )));
    }
    let tokens = tokenize(filter)?;
    if tokens.is_empty() {
        return Ok(Condition::all());
    }
    let mut parser = Parser {
        schema,
        tokens,
        next: 0,
        end: chars + 1,
        depth: 0,
        restrictions: 0,
    };
    let condition = parser.expression()?;
    match parser.peek() {
        None => Ok(condition),
        Some(token) => Err(FilterError::new(format!(
            "unexpected {} at position {}",
            token.kind.describe(),
            token.pos
        ))),
    }
}

/// Parses an AIP-132 `order_by` ("create_time desc, display_name") against `allowed`
/// (public name, column) pairs.
///
/// Returns (column, direction) pairs in the order given; empty input gives an empty list.
///
/// # Errors
///
/// A [`FilterError`] for an unknown or repeated field, a direction other than `asc`/`desc`
/// (any case), an empty item or any extra word.
pub fn parse_order_by(
    allowed: &[(&'static str, &'static str)],
    order_by: &str,
) -> Result<Vec<(&'static str, Order)>, FilterError> {
    if order_by.chars().count() > MAX_FILTER_CHARS {
        return Err(FilterError::new(format!(
            "order_by is longer than {MAX_FILTER_CHARS} characters"
        )));
    }
    if order_by.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut seen: Vec<&'static str> = Vec::new();
    let mut out = Vec::new();
    for item in order_by.split(',') {
        let (name, column, order) = order_item(allowed, item)?;
        if seen.contains(&name) {
            return Err(FilterError::new(format!(
                "order_by names field \"{name}\" more than once"
            )));
        }
        seen.push(name);
        out.push((column, order));
    }
    Ok(out)
}

/// Parses one comma-separated `order_by` item into (public name, column, direction).
fn order_item(
    allowed: &[(&'static str, &'static str)],
    item: &str,
) -> Result<(&'static str, &'static str, Order), FilterError> {
    let mut words = item.split_whitespace();
    let Some(field) = words.next() else {
        return Err(FilterError::new("order_by has an empty item"));
    };
    let Some(&(name, column)) = allowed.iter().find(|(name, _)| *name == field) else {
        let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
        return Err(FilterError::new(format!(
            "unknown order_by field \"{field}\"; allowed: {}",
            names.join(", ")
        )));
    };
    let order = match words.next() {
        None => Order::Asc,
        Some(dir) if dir.eq_ignore_ascii_case("asc") => Order::Asc,
        Some(dir) if dir.eq_ignore_ascii_case("desc") => Order::Desc,
        Some(dir) => {
            return Err(FilterError::new(format!(
                "order_by direction \"{dir}\" after \"{field}\" must be asc or desc"
            )));
        }
    };
    if let Some(extra) = words.next() {
        return Err(FilterError::new(format!(
            "unexpected \"{extra}\" in order_by item \"{}\"; separate items with commas",
            item.trim()
        )));
    }
    Ok((name, column, order))
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

/// A comparison operator other than `:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A restriction operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Cmp(Cmp),
    /// `:`, the AIP-160 "has" operator.
    Has,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Cmp(Cmp::Eq) => "=",
            Op::Cmp(Cmp::Ne) => "!=",
            Op::Cmp(Cmp::Lt) => "<",
            Op::Cmp(Cmp::Le) => "<=",
            Op::Cmp(Cmp::Gt) => ">",
            Op::Cmp(Cmp::Ge) => ">=",
            Op::Has => ":",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    LParen,
    RParen,
    And,
    Or,
    Not,
    /// A `-` that negates the following term (not one that starts a value such as `-5`).
    Minus,
    Op(Op),
    /// A bare word: a field name or an unquoted value.
    Word(String),
    /// A quoted string, escapes already resolved.
    Quoted(String),
}

impl TokenKind {
    /// How the token is named in error messages.
    fn describe(&self) -> String {
        match self {
            TokenKind::LParen => "\"(\"".to_owned(),
            TokenKind::RParen => "\")\"".to_owned(),
            TokenKind::And => "\"AND\"".to_owned(),
            TokenKind::Or => "\"OR\"".to_owned(),
            TokenKind::Not => "\"NOT\"".to_owned(),
            TokenKind::Minus => "\"-\"".to_owned(),
            TokenKind::Op(op) => format!("\"{}\"", op.as_str()),
            TokenKind::Word(word) => format!("\"{word}\""),
            TokenKind::Quoted(text) => format!("{text:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    kind: TokenKind,
    /// 1-based character position of the token's first character.
    pos: usize,
}

/// Characters allowed in an unquoted word.
fn is_bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '+' | '-')
}

/// Splits a filter into tokens.
fn tokenize(filter: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = filter.chars().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (kind, next) = match c {
            '(' => (TokenKind::LParen, i + 1),
            ')' => (TokenKind::RParen, i + 1),
            '"' | '\'' => quoted(&chars, i)?,
            '=' | '!' | '<' | '>' | ':' => operator(&chars, i)?,
            // A `-` negates unless it starts the value right after an operator (`a = -5`).
            '-' if !follows_operator(&tokens) => (TokenKind::Minus, i + 1),
            c if is_bare_char(c) => word(&chars, i),
            c => {
                let hint = if c.is_ascii() {
                    ""
                } else {
                    "; put values that contain it in quotes"
                };
                return Err(FilterError::new(format!(
                    "unexpected character {c:?} at position {pos}{hint}"
                )));
            }
        };
        tokens.push(Token { kind, pos });
        i = next;
    }
    Ok(tokens)
}

/// Whether the last token is a comparison operator, i.e. the next one is a value.
fn follows_operator(tokens: &[Token]) -> bool {
    tokens
        .last()
        .is_some_and(|token| matches!(token.kind, TokenKind::Op(_)))
}

/// Lexes the comparison operator starting at `chars[start]`.
fn operator(chars: &[char], start: usize) -> Result<(TokenKind, usize), FilterError> {
    let followed_by_eq = chars.get(start + 1) == Some(&'=');
    let (op, len) = match (chars[start], followed_by_eq) {
        ('=', _) => (Op::Cmp(Cmp::Eq), 1),
        ('!', true) => (Op::Cmp(Cmp::Ne), 2),
        ('<', true) => (Op::Cmp(Cmp::Le), 2),
        ('<', false) => (Op::Cmp(Cmp::Lt), 1),
        ('>', true) => (Op::Cmp(Cmp::Ge), 2),
        ('>', false) => (Op::Cmp(Cmp::Gt), 1),
        (':', _) => (Op::Has, 1),
        _ => {
            return Err(FilterError::new(format!(
                "expected \"!=\" at position {}",
                start + 1
            )));
        }
    };
    Ok((TokenKind::Op(op), start + len))
}

/// Lexes the bare word starting at `chars[start]`; keywords are recognised in upper case only.
fn word(chars: &[char], start: usize) -> (TokenKind, usize) {
    let end = chars[start..]
        .iter()
        .position(|c| !is_bare_char(*c))
        .map_or(chars.len(), |len| start + len);
    let text: String = chars[start..end].iter().collect();
    let kind = match text.as_str() {
        "AND" => TokenKind::And,
        "OR" => TokenKind::Or,
        "NOT" => TokenKind::Not,
        _ => TokenKind::Word(text),
    };
    (kind, end)
}

/// Lexes the quoted string whose opening quote is `chars[start]`.
fn quoted(chars: &[char], start: usize) -> Result<(TokenKind, usize), FilterError> {
    let quote = chars[start];
    let mut text = String::new();
    let mut i = start + 1;
    while let Some(&c) = chars.get(i) {
        if c == quote {
            return Ok((TokenKind::Quoted(text), i + 1));
        }
        if c == '\\' {
            match chars.get(i + 1) {
                Some(&escaped @ ('"' | '\'' | '\\')) => text.push(escaped),
                Some(&other) => {
                    return Err(FilterError::new(format!(
                        "unsupported escape \"\\{other}\" at position {}; \
                         only \\\", \\' and \\\\ are allowed",
                        i + 1
                    )));
                }
                None => break,
            }
            i += 2;
        } else {
            text.push(c);
            i += 1;
        }
    }
    Err(FilterError::new(format!(
        "unterminated string starting at position {}",
        start + 1
    )))
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// A value as written in the filter.
struct Literal {
    text: String,
    quoted: bool,
}

/// Recursive-descent parser over the token list; builds the condition as it goes.
struct Parser<'s> {
    schema: &'s FilterSchema,
    tokens: Vec<Token>,
    /// Index of the next unconsumed token.
    next: usize,
    /// Position reported for "end of filter".
    end: usize,
    /// Current parenthesis nesting.
    depth: usize,
    /// Restrictions parsed so far.
    restrictions: usize,
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    /// Consumes the next token if it is `kind`.
    fn eat(&mut self, kind: &TokenKind) -> bool {
        let matched = self.peek().is_some_and(|token| token.kind == *kind);
        if matched {
            self.next += 1;
        }
        matched
    }

    /// Position of the next token, or of the end of the filter.
    fn here(&self) -> usize {
        self.peek().map_or(self.end, |token| token.pos)
    }

    /// Names the next token for error messages.
    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "end of filter".to_owned(), |token| token.kind.describe())
    }

    /// expression := sequence { AND sequence }
    fn expression(&mut self) -> Result<Condition, FilterError> {
        let mut parts = vec![self.sequence()?];
        while self.eat(&TokenKind::And) {
            parts.push(self.sequence()?);
        }
        Ok(combine(Condition::all(), parts))
    }

    /// sequence := factor { factor }, juxtaposed factors being ANDed.
    fn sequence(&mut self) -> Result<Condition, FilterError> {
        let mut parts = vec![self.factor()?];
        while self.peek().is_some_and(|token| starts_term(&token.kind)) {
            parts.push(self.factor()?);
        }
        Ok(combine(Condition::all(), parts))
    }

    /// factor := term { OR term }
    fn factor(&mut self) -> Result<Condition, FilterError> {
        let mut parts = vec![self.term()?];
        while self.eat(&TokenKind::Or) {
            parts.push(self.term()?);
        }
        Ok(combine(Condition::any(), parts))
    }

    /// term := [NOT | -] simple
    fn term(&mut self) -> Result<Condition, FilterError> {
        let negated = self.eat(&TokenKind::Not) || self.eat(&TokenKind::Minus);
        let simple = self.simple()?;
        Ok(if negated { simple.not() } else { simple })
    }

    /// simple := restriction | ( expression )
    fn simple(&mut self) -> Result<Condition, FilterError> {
        let open = self.here();
        if !self.eat(&TokenKind::LParen) {
            return self.restriction();
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::new(format!(
                "filter nests parentheses deeper than {MAX_DEPTH} levels"
            )));
        }
        let inner = self.expression()?;
        if !self.eat(&TokenKind::RParen) {
            return Err(FilterError::new(format!(
                "expected \")\" at position {} to close \"(\" at position {open}, found {}",
                self.here(),
                self.found()
            )));
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// restriction := field op value
    fn restriction(&mut self) -> Result<Condition, FilterError> {
        let start = self.here();
        let field_name = match self.peek().map(|token| &token.kind) {
            Some(TokenKind::Word(word)) => word.clone(),
            Some(TokenKind::Quoted(_)) => return Err(self.global_restriction(start)),
            _ => {
                return Err(FilterError::new(format!(
                    "expected a restriction at position {start}, found {}",
                    self.found()
                )));
            }
        };
        let op = match self.tokens.get(self.next + 1).map(|token| &token.kind) {
            Some(TokenKind::Op(op)) => *op,
            _ => return Err(self.global_restriction(start)),
        };
        self.next += 2;
        self.restrictions += 1;
        if self.restrictions > MAX_RESTRICTIONS {
            return Err(FilterError::new(format!(
                "filter has more than {MAX_RESTRICTIONS} restrictions"
            )));
        }
        let field = self.field(&field_name)?;
        let value = self.value(op)?;
        Ok(restriction(field, op, &value)?.into())
    }

    /// The error for a bare value without field and operator (an AIP-160 global restriction).
    fn global_restriction(&self, start: usize) -> FilterError {
        FilterError::new(format!(
            "a restriction needs a field and an operator, found {} at position {start}",
            self.found()
        ))
    }

    /// Looks a field up in the schema.
    fn field(&self, name: &str) -> Result<&'s FilterField, FilterError> {
        self.schema
            .fields
            .iter()
            .find(|field| field.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.schema.fields.iter().map(|f| f.name).collect();
                FilterError::new(format!(
                    "unknown field \"{name}\"; allowed: {}",
                    names.join(", ")
                ))
            })
    }

    /// Consumes the value that follows `op`.
    fn value(&mut self, op: Op) -> Result<Literal, FilterError> {
        let literal = match self.peek().map(|token| &token.kind) {
            Some(TokenKind::Word(text)) => Literal {
                text: text.clone(),
                quoted: false,
            },
            Some(TokenKind::Quoted(text)) => Literal {
                text: text.clone(),
                quoted: true,
            },
            _ => {
                return Err(FilterError::new(format!(
                    "expected a value after \"{}\" at position {}",
                    op.as_str(),
                    self.here()
                )));
            }
        };
        self.next += 1;
        Ok(literal)
    }
}

/// Whether a token can begin a term, i.e. continue a juxtaposed sequence.
fn starts_term(kind: &TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::LParen
            | TokenKind::Not
            | TokenKind::Minus
            | TokenKind::Word(_)
            | TokenKind::Quoted(_)
    )
}

/// Joins `parts` under `group`; a single part stands alone so the SQL has no needless nesting.
fn combine(group: Condition, mut parts: Vec<Condition>) -> Condition {
    if parts.len() == 1
        && let Some(only) = parts.pop()
    {
        return only;
    }
    parts.into_iter().fold(group, Condition::add)
}

// ---------------------------------------------------------------------------------------------
// Restrictions → SQL
// ---------------------------------------------------------------------------------------------

const ALL_CMPS: &[Op] = &[
    Op::Cmp(Cmp::Eq),
    Op::Cmp(Cmp::Ne),
    Op::Cmp(Cmp::Lt),
    Op::Cmp(Cmp::Le),
    Op::Cmp(Cmp::Gt),
    Op::Cmp(Cmp::Ge),
];
const EQUALITY: &[Op] = &[Op::Cmp(Cmp::Eq), Op::Cmp(Cmp::Ne)];
const HAS: &[Op] = &[Op::Has];
const ANY_KEY: &[Op] = &[Op::Cmp(Cmp::Eq), Op::Cmp(Cmp::Ne), Op::Has];

/// Translates one type-checked restriction into an expression on the field's column.
fn restriction(field: &FilterField, op: Op, value: &Literal) -> Result<Expr, FilterError> {
    let column = field.column;
    match field.kind {
        FieldKind::Text => Ok(text(column, op, &value.text)),
        FieldKind::Enum(pairs) => {
            let cmp = require_cmp(field, op, EQUALITY)?;
            Ok(compare(column, cmp, enum_value(field, pairs, &value.text)?))
        }
        FieldKind::Timestamp => {
            let cmp = require_cmp(field, op, ALL_CMPS)?;
            Ok(compare(column, cmp, timestamp(field, value)?))
        }
        FieldKind::Integer => {
            let cmp = require_cmp(field, op, ALL_CMPS)?;
            Ok(compare(column, cmp, integer(field, &value.text)?))
        }
        FieldKind::Bool => {
            let cmp = require_cmp(field, op, EQUALITY)?;
            Ok(compare(column, cmp, boolean(field, &value.text)?))
        }
        FieldKind::JsonStringArray => {
            require_op(field, op, HAS)?;
            Ok(json_array_has(column, &value.text))
        }
        FieldKind::AnyKey(keys) => {
            require_op(field, op, ANY_KEY)?;
            Ok(any_key(column, &keys, op, &value.text))
        }
    }
}

/// Rejects `op` unless it is in `allowed`.
fn require_op(field: &FilterField, op: Op, allowed: &[Op]) -> Result<(), FilterError> {
    if allowed.contains(&op) {
        return Ok(());
    }
    let names: Vec<String> = allowed
        .iter()
        .map(|op| format!("\"{}\"", op.as_str()))
        .collect();
    Err(FilterError::new(format!(
        "{} supports only {}",
        field.name,
        names.join(", ")
    )))
}

/// Like [`require_op`] for kinds whose allowed operators are all comparisons.
fn require_cmp(field: &FilterField, op: Op, allowed: &[Op]) -> Result<Cmp, FilterError> {
    require_op(field, op, allowed)?;
    match op {
        Op::Cmp(cmp) => Ok(cmp),
        Op::Has => Err(FilterError::new(format!(
            "{} does not support \":\"",
            field.name
        ))),
    }
}

/// `column <cmp> value`.
fn compare(column: &'static str, cmp: Cmp, value: impl Into<Expr>) -> Expr {
    let col = Expr::col(column);
    match cmp {
        Cmp::Eq => col.eq(value),
        Cmp::Ne => col.ne(value),
        Cmp::Lt => col.lt(value),
        Cmp::Le => col.lte(value),
        Cmp::Gt => col.gt(value),
        Cmp::Ge => col.gte(value),
    }
}

/// Text: comparisons on the stored value, `= "abc*"` as a prefix match, `:` as a
/// case-insensitive substring match.
///
/// For `:` both sides are lowercased; PostgreSQL's LOWER folds all of Unicode but SQLite's only
/// ASCII, so on SQLite a non-ASCII letter matches only when it has the same case as stored.
fn text(column: &'static str, op: Op, value: &str) -> Expr {
    match op {
        Op::Cmp(Cmp::Eq) => match value.strip_suffix('*') {
            Some(prefix) => text_prefix(column, prefix),
            None => compare(column, Cmp::Eq, value),
        },
        Op::Cmp(cmp) => compare(column, cmp, value),
        Op::Has => {
            let pattern = format!("%{}%", escape_like(&value.to_lowercase()));
            Func::lower(Expr::col(column)).like(like(pattern))
        }
    }
}

/// `column LIKE 'prefix%'`, kept case-sensitive everywhere.
///
/// SQLite's LIKE ignores ASCII case while PostgreSQL's does not, so the LIKE (which PostgreSQL
/// can serve from an index) is paired with an exact `SUBSTR` comparison that behaves the same on
/// both. The length is bound as an `i32` because PostgreSQL has no `substr(text, int, bigint)`.
fn text_prefix(column: &'static str, prefix: &str) -> Expr {
    let pattern = format!("{}%", escape_like(prefix));
    let len = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
    let head = Func::cust("SUBSTR").arg(Expr::col(column)).arg(1).arg(len);
    Expr::col(column).like(like(pattern)).and(head.eq(prefix))
}

/// Maps an enum's public name (any case) to its stored value.
fn enum_value(
    field: &FilterField,
    pairs: &[(&'static str, &'static str)],
    value: &str,
) -> Result<&'static str, FilterError> {
    pairs
        .iter()
        .find(|(public, _)| public.eq_ignore_ascii_case(value))
        .map(|(_, stored)| *stored)
        .ok_or_else(|| {
            let names: Vec<&str> = pairs.iter().map(|(public, _)| *public).collect();
            FilterError::new(format!(
                "{}: unknown value \"{value}\"; allowed: {}",
                field.name,
                names.join(", ")
            ))
        })
}

/// Parses a quoted RFC 3339 timestamp.
fn timestamp(field: &FilterField, value: &Literal) -> Result<Value, FilterError> {
    // Bare words cannot hold the `:` of a time, so an unquoted value can only be a bare date or
    // a fragment; say how to write it rather than failing on the lexer's next token.
    if !value.quoted {
        return Err(FilterError::new(format!(
            "{}: timestamps must be quoted RFC 3339 strings, e.g. \"2024-01-31T00:00:00Z\"",
            field.name
        )));
    }
    let parsed = DateTime::parse_from_rfc3339(&value.text).map_err(|_| {
        FilterError::new(format!(
            "{}: \"{}\" is not an RFC 3339 timestamp",
            field.name, value.text
        ))
    })?;
    Ok(Value::ChronoDateTimeUtc(Some(parsed.with_timezone(&Utc))))
}

fn integer(field: &FilterField, value: &str) -> Result<Value, FilterError> {
    let parsed = value
        .parse::<i64>()
        .map_err(|_| FilterError::new(format!("{}: \"{value}\" is not an integer", field.name)))?;
    Ok(Value::BigInt(Some(parsed)))
}

fn boolean(field: &FilterField, value: &str) -> Result<Value, FilterError> {
    let parsed = match value {
        "true" => true,
        "false" => false,
        _ => {
            return Err(FilterError::new(format!(
                "{}: \"{value}\" is not a boolean; use true or false",
                field.name
            )));
        }
    };
    Ok(Value::Bool(Some(parsed)))
}

/// Rows whose JSON string array in `column` contains exactly `value`.
///
/// Plain text matching keeps this identical on SQLite and PostgreSQL: the element is searched
/// for with its JSON quotes, encoded the way serde_json writes it. The LIKE alone would ignore
/// ASCII case on SQLite, so a case-sensitive `REPLACE(col, needle, '') <> col` test is added.
///
/// Known gap of plain text matching: an element that itself ends in `"value` (stored as
/// `\"value`) also matches `value`; tags are not expected to contain quotes.
fn json_array_has(column: &'static str, value: &str) -> Expr {
    let needle = format!("\"{}\"", json_escape(value));
    let pattern = format!("%{}%", escape_like(&needle));
    let stripped = Func::cust("REPLACE")
        .arg(Expr::col(column))
        .arg(needle)
        .arg("");
    Expr::col(column)
        .like(like(pattern))
        .and(stripped.ne(Expr::col(column)))
}

/// Rows of `keys.owner_table` (id column `id`) with a key of `keys.kind` matching `value`.
///
/// A correlated `EXISTS` naming the tenant, so the key table's index that starts with the
/// tenant and the value serves it (PostgreSQL turns it into a semi-join). `!=` is `NOT EXISTS`
/// of `=`: "no address is x", not "some address is not x", which nearly every row would match.
fn any_key(id: &'static str, keys: &KeyTable, op: Op, value: &str) -> Expr {
    let key_column = |name: &'static str| Expr::col((Alias::new(keys.table), Alias::new(name)));
    let owner_column = |name: &'static str| (Alias::new(keys.owner_table), Alias::new(name));
    let (matching, negated) = match op {
        Op::Cmp(Cmp::Ne) => (Op::Cmp(Cmp::Eq), true),
        other => (other, false),
    };
    let found = Query::select()
        .expr(Expr::val(1))
        .from(Alias::new(keys.table))
        .and_where(key_column("tenant").equals(owner_column("tenant")))
        .and_where(key_column(keys.owner).equals(owner_column(id)))
        .and_where(key_column("kind").eq(keys.kind))
        // Unqualified: inside the subquery `value` can only be the key table's column.
        .and_where(text("value", matching, &(keys.key)(value)))
        .to_owned();
    if negated {
        Expr::not_exists(found)
    } else {
        Expr::exists(found)
    }
}

/// A LIKE pattern using our escape character.
/// `column LIKE '%text%'`, with the text's LIKE metacharacters escaped, for
/// substring searches outside filters (the column holds already-folded text).
pub fn contains(column: &'static str, text: &str) -> Expr {
    Expr::col(column).like(like(format!("%{}%", escape_like(text))))
}

fn like(pattern: String) -> LikeExpr {
    LikeExpr::new(pattern).escape(LIKE_ESCAPE)
}

/// Escapes LIKE metacharacters so `value` matches literally.
fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            out.push(LIKE_ESCAPE);
        }
        out.push(c);
    }
    out
}

/// Escapes `value` as the body of a JSON string exactly as serde_json does, so the text matches
/// what was stored.
fn json_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            // Writing to a String cannot fail.
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{
        Alias, Asterisk, PostgresQueryBuilder, Query, QueryBuilder, SqliteQueryBuilder,
    };

    const STAGES: &[(&str, &str)] = &[
        ("SUBSCRIBER", "subscriber"),
        ("LEAD", "lead"),
        ("CUSTOMER", "customer"),
    ];

    const SCHEMA: FilterSchema = FilterSchema {
        fields: &[
            FilterField {
                name: "display_name",
                column: "display_name",
                kind: FieldKind::Text,
            },
            FilterField {
                name: "email",
                column: "email_address",
                kind: FieldKind::Text,
            },
            FilterField {
                name: "lifecycle_stage",
                column: "stage",
                kind: FieldKind::Enum(STAGES),
            },
            FilterField {
                name: "create_time",
                column: "created_at",
                kind: FieldKind::Timestamp,
            },
            FilterField {
                name: "score",
                column: "score",
                kind: FieldKind::Integer,
            },
            FilterField {
                name: "archived",
                column: "archived",
                kind: FieldKind::Bool,
            },
            FilterField {
                name: "tags",
                column: "tags",
                kind: FieldKind::JsonStringArray,
            },
        ],
    };

    const ORDER: &[(&str, &str)] = &[
        ("create_time", "created_at"),
        ("display_name", "display_name"),
        ("score", "score"),
    ];

    fn render(builder: impl QueryBuilder, cond: Condition) -> String {
        Query::select()
            .column(Asterisk)
            .from(Alias::new("t"))
            .cond_where(cond)
            .to_string(builder)
    }

    /// The WHERE clause (without "WHERE ") the filter renders to on SQLite.
    fn sql(filter: &str) -> String {
        let cond = parse_filter(&SCHEMA, filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let full = render(SqliteQueryBuilder, cond);
        full.strip_prefix(r#"SELECT * FROM "t" WHERE "#)
            .unwrap_or_else(|| panic!("no WHERE in {full}"))
            .to_owned()
    }

    fn pg(filter: &str) -> String {
        let cond = parse_filter(&SCHEMA, filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        render(PostgresQueryBuilder, cond)
    }

    fn err(filter: &str) -> String {
        match parse_filter(&SCHEMA, filter) {
            Ok(cond) => panic!("{filter} parsed to {}", render(SqliteQueryBuilder, cond)),
            Err(e) => e.message,
        }
    }

    fn order_err(order_by: &str) -> String {
        match parse_order_by(ORDER, order_by) {
            Ok(items) => panic!("{order_by} parsed to {items:?}"),
            Err(e) => e.message,
        }
    }

    // --- structure -------------------------------------------------------------------------

    #[test]
    fn empty_filter_matches_everything() {
        for filter in ["", "   ", "\n\t"] {
            let cond = parse_filter(&SCHEMA, filter).unwrap();
            assert!(cond.is_empty());
            // sea-query renders an empty `Condition::all()` as a constant rather than dropping it.
            assert_eq!(
                render(SqliteQueryBuilder, cond),
                r#"SELECT * FROM "t" WHERE TRUE"#
            );
        }
    }

    #[test]
    fn single_restriction() {
        assert_eq!(sql("score = 5"), r#""score" = 5"#);
        assert_eq!(sql("score=5"), r#""score" = 5"#);
    }

    #[test]
    fn or_binds_tighter_than_and() {
        assert_eq!(
            sql("score = 1 AND score = 2 OR score = 3"),
            r#""score" = 1 AND ("score" = 2 OR "score" = 3)"#
        );
        assert_eq!(
            sql("score = 1 OR score = 2 AND score = 3"),
            r#"("score" = 1 OR "score" = 2) AND "score" = 3"#
        );
    }

    #[test]
    fn juxtaposition_is_and_and_or_binds_tighter() {
        assert_eq!(
            sql("score = 1 score = 2 OR score = 3"),
            r#""score" = 1 AND ("score" = 2 OR "score" = 3)"#
        );
        assert_eq!(
            sql("score = 1 score = 2 AND score = 3"),
            r#""score" = 1 AND "score" = 2 AND "score" = 3"#
        );
    }

    #[test]
    fn parentheses_override_precedence() {
        assert_eq!(
            sql("(score = 1 AND score = 2) OR score = 3"),
            r#"("score" = 1 AND "score" = 2) OR "score" = 3"#
        );
        assert_eq!(sql("((score = 1))"), r#""score" = 1"#);
    }

    #[test]
    fn not_and_minus_negate_a_term() {
        assert_eq!(sql("NOT score = 1"), r#"NOT "score" = 1"#);
        assert_eq!(sql("-score = 1"), r#"NOT "score" = 1"#);
        assert_eq!(
            sql("NOT (score = 1 OR score = 2)"),
            r#"NOT ("score" = 1 OR "score" = 2)"#
        );
        assert_eq!(
            sql("-(score = 1 OR score = 2)"),
            r#"NOT ("score" = 1 OR "score" = 2)"#
        );
        // NOT applies to one term only, not to the rest of the OR.
        assert_eq!(
            sql("NOT score = 1 OR score = 2"),
            r#"(NOT "score" = 1) OR "score" = 2"#
        );
        assert_eq!(
            sql("score = 1 -score = 2"),
            r#""score" = 1 AND (NOT "score" = 2)"#
        );
    }

    #[test]
    fn minus_after_operator_is_part_of_the_value() {
        assert_eq!(sql("score = -5"), r#""score" = -5"#);
        assert_eq!(
            sql("score=-5 -score=-6"),
            r#""score" = -5 AND (NOT "score" = -6)"#
        );
    }

    #[test]
    fn keywords_are_upper_case_only() {
        assert_eq!(
            err("score = 1 and score = 2"),
            r#"a restriction needs a field and an operator, found "and" at position 11"#
        );
        assert_eq!(sql("display_name = or"), r#""display_name" = 'or'"#);
    }

    // --- text ------------------------------------------------------------------------------

    #[test]
    fn text_comparisons() {
        assert_eq!(sql("email = \"a@b.c\""), r#""email_address" = 'a@b.c'"#);
        assert_eq!(sql("display_name != Bob"), r#""display_name" <> 'Bob'"#);
        assert_eq!(sql("display_name < b"), r#""display_name" < 'b'"#);
        assert_eq!(sql("display_name <= b"), r#""display_name" <= 'b'"#);
        assert_eq!(sql("display_name > b"), r#""display_name" > 'b'"#);
        assert_eq!(sql("display_name >= b"), r#""display_name" >= 'b'"#);
    }

    #[test]
    fn text_has_is_case_insensitive_substring() {
        assert_eq!(
            sql("display_name:Ann"),
            r#"LOWER("display_name") LIKE '%ann%' ESCAPE '\'"#
        );
        assert_eq!(
            sql(r#"display_name : "50%_off\\""#),
            r#"LOWER("display_name") LIKE '%50\%\_off\\%' ESCAPE '\'"#
        );
    }

    #[test]
    fn text_trailing_star_is_prefix_match() {
        assert_eq!(
            sql(r#"display_name = "An_*""#),
            r#""display_name" LIKE 'An\_%' ESCAPE '\' AND SUBSTR("display_name", 1, 3) = 'An_'"#
        );
        assert_eq!(
            sql("display_name = An*"),
            r#""display_name" LIKE 'An%' ESCAPE '\' AND SUBSTR("display_name", 1, 2) = 'An'"#
        );
        // Only `=` treats `*` as a wildcard.
        assert_eq!(sql("display_name != An*"), r#""display_name" <> 'An*'"#);
    }

    #[test]
    fn quoted_strings_and_escapes() {
        assert_eq!(
            sql(r#"display_name = 'O\'Neil'"#),
            r#""display_name" = 'O''Neil'"#
        );
        assert_eq!(
            sql(r#"display_name = "say \"hi\"""#),
            r#""display_name" = 'say "hi"'"#
        );
        assert_eq!(
            sql(r#"display_name = "a AND b""#),
            r#""display_name" = 'a AND b'"#
        );
        assert_eq!(sql(r#"display_name = """#), r#""display_name" = ''"#);
        assert_eq!(
            sql(r#"display_name = "José""#),
            r#""display_name" = 'José'"#
        );
    }

    // --- enum ------------------------------------------------------------------------------

    #[test]
    fn enum_maps_public_names_case_insensitively() {
        assert_eq!(sql("lifecycle_stage = LEAD"), r#""stage" = 'lead'"#);
        assert_eq!(
            sql("lifecycle_stage = \"customer\""),
            r#""stage" = 'customer'"#
        );
        assert_eq!(
            sql("lifecycle_stage != Subscriber"),
            r#""stage" <> 'subscriber'"#
        );
    }

    #[test]
    fn enum_errors() {
        assert_eq!(
            err("lifecycle_stage = FOO"),
            r#"lifecycle_stage: unknown value "FOO"; allowed: SUBSCRIBER, LEAD, CUSTOMER"#
        );
        assert_eq!(
            err("lifecycle_stage > LEAD"),
            r#"lifecycle_stage supports only "=", "!=""#
        );
        assert_eq!(
            err("lifecycle_stage : LEAD"),
            r#"lifecycle_stage supports only "=", "!=""#
        );
    }

    // --- timestamp -------------------------------------------------------------------------

    #[test]
    fn timestamps_are_bound_as_utc() {
        assert_eq!(
            sql(r#"create_time >= "2024-01-31T10:00:00+02:00""#),
            r#""created_at" >= '2024-01-31 08:00:00.000000 +00:00'"#
        );
        let cond = parse_filter(&SCHEMA, r#"create_time < "2024-01-31T08:00:00Z""#).unwrap();
        let (_, values) = Query::select()
            .column(Asterisk)
            .from(Alias::new("t"))
            .cond_where(cond)
            .build(SqliteQueryBuilder);
        let expected = DateTime::parse_from_rfc3339("2024-01-31T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(values.0, vec![Value::ChronoDateTimeUtc(Some(expected))]);
        for op in ["=", "!=", "<", "<=", ">", ">="] {
            parse_filter(&SCHEMA, &format!("create_time {op} '2024-01-31T08:00:00Z'")).unwrap();
        }
    }

    #[test]
    fn timestamp_errors() {
        assert_eq!(
            err(r#"create_time > "yesterday""#),
            r#"create_time: "yesterday" is not an RFC 3339 timestamp"#
        );
        assert_eq!(
            err("create_time > 2024-01-01"),
            r#"create_time: timestamps must be quoted RFC 3339 strings, e.g. "2024-01-31T00:00:00Z""#
        );
        assert_eq!(
            err("create_time > 2024-01-01T00:00:00Z"),
            r#"create_time: timestamps must be quoted RFC 3339 strings, e.g. "2024-01-31T00:00:00Z""#
        );
        assert_eq!(
            err(r#"create_time : "2024-01-01T00:00:00Z""#),
            r#"create_time supports only "=", "!=", "<", "<=", ">", ">=""#
        );
    }

    // --- integer ---------------------------------------------------------------------------

    #[test]
    fn integer_comparisons() {
        assert_eq!(sql("score != 3"), r#""score" <> 3"#);
        assert_eq!(sql("score < 3"), r#""score" < 3"#);
        assert_eq!(sql("score <= 3"), r#""score" <= 3"#);
        assert_eq!(sql("score > +3"), r#""score" > 3"#);
        assert_eq!(sql("score >= \"3\""), r#""score" >= 3"#);
        assert_eq!(
            sql("score = 9223372036854775807"),
            r#""score" = 9223372036854775807"#
        );
    }

    #[test]
    fn integer_errors() {
        assert_eq!(err("score = 1.5"), r#"score: "1.5" is not an integer"#);
        assert_eq!(err("score = abc"), r#"score: "abc" is not an integer"#);
        assert_eq!(
            err("score = 9223372036854775808"),
            r#"score: "9223372036854775808" is not an integer"#
        );
        assert_eq!(
            err("score : 1"),
            r#"score supports only "=", "!=", "<", "<=", ">", ">=""#
        );
    }

    // --- bool ------------------------------------------------------------------------------

    #[test]
    fn bool_comparisons() {
        assert_eq!(sql("archived = true"), r#""archived" = TRUE"#);
        assert_eq!(sql("archived != false"), r#""archived" <> FALSE"#);
    }

    #[test]
    fn bool_errors() {
        assert_eq!(
            err("archived = yes"),
            r#"archived: "yes" is not a boolean; use true or false"#
        );
        assert_eq!(
            err("archived < true"),
            r#"archived supports only "=", "!=""#
        );
        assert_eq!(
            err("archived : true"),
            r#"archived supports only "=", "!=""#
        );
    }

    // --- JSON string array -----------------------------------------------------------------

    #[test]
    fn json_array_has_matches_whole_quoted_element() {
        assert_eq!(
            sql("tags:vip"),
            r#""tags" LIKE '%"vip"%' ESCAPE '\' AND REPLACE("tags", '"vip"', '') <> "tags""#
        );
        assert_eq!(
            sql(r#"tags:"a\"b_%""#),
            r#""tags" LIKE '%"a\\"b\_\%"%' ESCAPE '\' AND REPLACE("tags", '"a\"b_%"', '') <> "tags""#
        );
    }

    #[test]
    fn json_escape_matches_serde_json() {
        assert_eq!(json_escape("plain"), "plain");
        assert_eq!(json_escape("a\"b\\c"), r#"a\"b\\c"#);
        assert_eq!(json_escape("\n\r\t\u{8}\u{c}"), r"\n\r\t\b\f");
        assert_eq!(json_escape("\u{1}\u{1f}"), r"\u0001\u001f");
        assert_eq!(json_escape("é/"), "é/");
    }

    #[test]
    fn json_array_errors() {
        assert_eq!(err("tags = vip"), r#"tags supports only ":""#);
        assert_eq!(err("tags != vip"), r#"tags supports only ":""#);
    }

    // --- keys in another table ---------------------------------------------------------------

    const KEYED: FilterSchema = FilterSchema {
        fields: &[FilterField {
            name: "email",
            column: "id",
            kind: FieldKind::AnyKey(KeyTable {
                owner_table: "t",
                table: "keys",
                owner: "owner_id",
                kind: "email",
                key: crate::validate::email_key,
            }),
        }],
    };

    fn keyed(filter: &str) -> Result<String, String> {
        parse_filter(&KEYED, filter)
            .map(|cond| render(SqliteQueryBuilder, cond))
            .map_err(|e| e.message)
    }

    #[test]
    fn any_key_looks_in_the_key_table_of_the_same_tenant() {
        let found = r#"SELECT 1 FROM "keys" WHERE "keys"."tenant" = "t"."tenant" AND "keys"."owner_id" = "t"."id" AND "keys"."kind" = 'email' AND "#;
        assert_eq!(
            keyed(r#"email = " B@X.example ""#),
            Ok(format!(
                r#"SELECT * FROM "t" WHERE EXISTS({found}"value" = 'b@x.example')"#
            ))
        );
        assert_eq!(
            keyed(r#"email != "B@X.example""#),
            Ok(format!(
                r#"SELECT * FROM "t" WHERE NOT EXISTS({found}"value" = 'b@x.example')"#
            ))
        );
        assert_eq!(
            keyed("email:X.Example"),
            Ok(format!(
                r#"SELECT * FROM "t" WHERE EXISTS({found}LOWER("value") LIKE '%x.example%' ESCAPE '\')"#
            ))
        );
        assert_eq!(
            keyed(r#"email < "b""#),
            Err(r#"email supports only "=", "!=", ":""#.to_owned())
        );
    }

    /// The key table's rows against a real SQLite: any key of a row matches, whatever
    /// the case of the value, and a key of another tenant never does.
    #[tokio::test]
    async fn any_key_semantics() {
        use sea_orm::{ConnectionTrait, Database};

        let db = Database::connect("sqlite::memory:").await.unwrap();
        for statement in [
            "CREATE TABLE t (id TEXT PRIMARY KEY, tenant TEXT)",
            "CREATE TABLE keys (tenant TEXT, kind TEXT, value TEXT, owner_id TEXT)",
            "INSERT INTO t VALUES ('1', 'acme'), ('2', 'acme'), ('3', 'acme'), ('4', 'globex')",
            "INSERT INTO keys VALUES ('acme', 'email', 'a@x.example', '1'), \
             ('acme', 'email', 'b@x.example', '1'), ('acme', 'email', 'c@y.example', '2'), \
             ('acme', 'phone', 'b@x.example', '3'), ('acme', 'email', 'b@x.example', '4')",
        ] {
            db.execute_unprepared(statement).await.unwrap();
        }
        let cases: &[(&str, &[&str])] = &[
            (r#"email = "b@x.example""#, &["1"]),
            (r#"email = "B@X.Example""#, &["1"]),
            (r#"email = "c@*""#, &["2"]),
            ("email:x.example", &["1"]),
            (r#"email != "b@x.example""#, &["2", "3"]),
            (r#"email = "z@x.example""#, &[]),
        ];
        for (filter, want) in cases {
            let select = Query::select()
                .column("id")
                .from(Alias::new("t"))
                .and_where(Expr::col("tenant").eq("acme"))
                .cond_where(parse_filter(&KEYED, filter).unwrap())
                .order_by("id", Order::Asc)
                .to_owned();
            let rows = db.query_all(&select).await.unwrap();
            let got: Vec<String> = rows.iter().map(|r| r.try_get("", "id").unwrap()).collect();
            assert_eq!(got, *want, "{filter}");
        }
    }

    // --- PostgreSQL rendering --------------------------------------------------------------

    #[test]
    fn postgres_rendering() {
        assert_eq!(
            pg("display_name:ann OR tags:vip"),
            r#"SELECT * FROM "t" WHERE LOWER("display_name") LIKE '%ann%' ESCAPE E'\\' OR ("tags" LIKE '%"vip"%' ESCAPE E'\\' AND REPLACE("tags", '"vip"', '') <> "tags")"#
        );
        assert_eq!(
            pg(r#"-archived = true lifecycle_stage = lead"#),
            r#"SELECT * FROM "t" WHERE (NOT "archived" = TRUE) AND "stage" = 'lead'"#
        );
    }

    // --- against a real SQLite ------------------------------------------------------------

    /// Runs filters against an in-memory SQLite, where LIKE ignores ASCII case: the SQL text
    /// alone cannot show that prefix and tag matches stay case-sensitive and escapes hold.
    #[tokio::test]
    async fn sqlite_semantics() {
        use sea_orm::{ConnectionTrait, Database};

        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared(
            "CREATE TABLE t (id BIGINT PRIMARY KEY, display_name TEXT, created_at TEXT, tags TEXT)",
        )
        .await
        .unwrap();
        let rows = [
            (1, "Ann Smith", "2024-01-01T00:00:00Z", r#"["vip","beta"]"#),
            (2, "anna_b", "2024-06-01T12:00:00.5Z", r#"["VIP"]"#),
            (
                3,
                "Bob 50%",
                "2024-06-01T12:00:00Z",
                r#"["x_y","a\\b","q\"t","50%"]"#,
            ),
            (4, "ANNE", "2025-01-01T00:00:00Z", "[]"),
        ];
        for (id, name, created, tags) in rows {
            let created = DateTime::parse_from_rfc3339(created)
                .unwrap()
                .with_timezone(&Utc);
            let insert = Query::insert()
                .into_table(Alias::new("t"))
                .columns(["id", "display_name", "created_at", "tags"])
                .values_panic([id.into(), name.into(), created.into(), tags.into()])
                .to_owned();
            db.execute(&insert).await.unwrap();
        }
        let cases: &[(&str, &[i64])] = &[
            ("display_name:ann", &[1, 2, 4]),
            ("display_name = An*", &[1]),
            ("display_name = ann*", &[2]),
            (r#"display_name = "ann_*""#, &[]),
            (r#"display_name:"%""#, &[3]),
            (r#"display_name:"_""#, &[2]),
            (r#"create_time > "2024-06-01T12:00:00Z""#, &[2, 4]),
            (r#"create_time = "2024-06-01T14:00:00.5+02:00""#, &[2]),
            ("tags:vip", &[1]),
            ("tags:VIP", &[2]),
            ("tags:vi", &[]),
            (r#"tags:"x_y""#, &[3]),
            (r#"tags:"x-y""#, &[]),
            (r#"tags:"a\\b""#, &[3]),
            (r#"tags:"q\"t""#, &[3]),
            (r#"tags:"50%""#, &[3]),
            ("NOT tags:vip", &[2, 3, 4]),
        ];
        for (filter, want) in cases {
            let select = Query::select()
                .column("id")
                .from(Alias::new("t"))
                .cond_where(parse_filter(&SCHEMA, filter).unwrap())
                .order_by("id", Order::Asc)
                .to_owned();
            let rows = db.query_all(&select).await.unwrap();
            let got: Vec<i64> = rows.iter().map(|r| r.try_get("", "id").unwrap()).collect();
            assert_eq!(got, *want, "{filter}");
        }
    }

    // --- syntax errors ---------------------------------------------------------------------

    #[test]
    fn global_restrictions_are_rejected() {
        assert_eq!(
            err("vip"),
            r#"a restriction needs a field and an operator, found "vip" at position 1"#
        );
        assert_eq!(
            err(r#"score = 1 "vip""#),
            r#"a restriction needs a field and an operator, found "vip" at position 11"#
        );
        assert_eq!(
            err("score = 1 OR vip"),
            r#"a restriction needs a field and an operator, found "vip" at position 14"#
        );
    }

    #[test]
    fn missing_value() {
        assert_eq!(
            err("create_time ="),
            r#"expected a value after "=" at position 14"#
        );
        assert_eq!(
            err("score = )"),
            r#"expected a value after "=" at position 9"#
        );
        assert_eq!(
            err("score = AND"),
            r#"expected a value after "=" at position 9"#
        );
        assert_eq!(
            err("score = = 1"),
            r#"expected a value after "=" at position 9"#
        );
    }

    #[test]
    fn missing_restriction() {
        assert_eq!(
            err("score = 1 AND"),
            "expected a restriction at position 14, found end of filter"
        );
        assert_eq!(
            err("score = 1 OR OR score = 2"),
            r#"expected a restriction at position 14, found "OR""#
        );
        assert_eq!(
            err("AND score = 1"),
            r#"expected a restriction at position 1, found "AND""#
        );
        assert_eq!(
            err("()"),
            r#"expected a restriction at position 2, found ")""#
        );
        assert_eq!(
            err("NOT NOT score = 1"),
            r#"expected a restriction at position 5, found "NOT""#
        );
        assert_eq!(
            err("-"),
            "expected a restriction at position 2, found end of filter"
        );
        assert_eq!(
            err("= 1"),
            r#"expected a restriction at position 1, found "=""#
        );
    }

    #[test]
    fn unbalanced_parentheses() {
        assert_eq!(
            err("(score = 1"),
            r#"expected ")" at position 11 to close "(" at position 1, found end of filter"#
        );
        assert_eq!(err("score = 1)"), r#"unexpected ")" at position 10"#);
        assert_eq!(
            err("(score = 1 archived"),
            r#"a restriction needs a field and an operator, found "archived" at position 12"#
        );
    }

    #[test]
    fn unknown_field() {
        assert_eq!(
            err("foo = 1"),
            r#"unknown field "foo"; allowed: display_name, email, lifecycle_stage, create_time, score, archived, tags"#
        );
        // The column name is not a public name.
        assert!(err("email_address = x").starts_with(r#"unknown field "email_address""#));
    }

    #[test]
    fn lexer_errors() {
        assert_eq!(err("score ! 1"), r#"expected "!=" at position 7"#);
        assert_eq!(
            err("score = 1 & score = 2"),
            "unexpected character '&' at position 11"
        );
        assert_eq!(
            err("display_name = José"),
            "unexpected character 'é' at position 19; put values that contain it in quotes"
        );
        assert_eq!(
            err(r#"display_name = "abc"#),
            "unterminated string starting at position 16"
        );
        assert_eq!(
            err(r#"display_name = "abc\"#),
            "unterminated string starting at position 16"
        );
        assert_eq!(
            err(r#"display_name = "a\nb""#),
            r#"unsupported escape "\n" at position 18; only \", \' and \\ are allowed"#
        );
        assert_eq!(err("display_name:a:b"), r#"unexpected ":" at position 15"#);
    }

    #[test]
    fn limits() {
        let long = format!("display_name = \"{}\"", "x".repeat(MAX_FILTER_CHARS));
        assert_eq!(err(&long), "filter is longer than 4000 characters");

        let at_limit = format!("{}score = 1{}", "(".repeat(32), ")".repeat(32));
        assert_eq!(sql(&at_limit), r#""score" = 1"#);
        let too_deep = format!("{}score = 1{}", "(".repeat(33), ")".repeat(33));
        assert_eq!(
            err(&too_deep),
            "filter nests parentheses deeper than 32 levels"
        );

        let hundred = vec!["score = 1"; 100].join(" AND ");
        parse_filter(&SCHEMA, &hundred).unwrap();
        let too_many = vec!["score = 1"; 101].join(" ");
        assert_eq!(err(&too_many), "filter has more than 100 restrictions");
    }

    #[test]
    fn error_displays_its_message() {
        let e = parse_filter(&SCHEMA, "foo = 1").unwrap_err();
        assert_eq!(e.to_string(), e.message);
    }

    // --- order_by --------------------------------------------------------------------------

    #[test]
    fn order_by_parses_fields_and_directions() {
        assert_eq!(parse_order_by(ORDER, "").unwrap(), vec![]);
        assert_eq!(parse_order_by(ORDER, "  ").unwrap(), vec![]);
        assert_eq!(
            parse_order_by(ORDER, "create_time desc, display_name").unwrap(),
            vec![("created_at", Order::Desc), ("display_name", Order::Asc)]
        );
        assert_eq!(
            parse_order_by(ORDER, " score ASC ,create_time DeSc ").unwrap(),
            vec![("score", Order::Asc), ("created_at", Order::Desc)]
        );
    }

    #[test]
    fn order_by_errors() {
        assert_eq!(
            order_err("foo"),
            r#"unknown order_by field "foo"; allowed: create_time, display_name, score"#
        );
        assert_eq!(
            order_err("created_at"),
            r#"unknown order_by field "created_at"; allowed: create_time, display_name, score"#
        );
        assert_eq!(
            order_err("score, score desc"),
            r#"order_by names field "score" more than once"#
        );
        assert_eq!(
            order_err("score descending"),
            r#"order_by direction "descending" after "score" must be asc or desc"#
        );
        assert_eq!(
            order_err("score desc display_name"),
            r#"unexpected "display_name" in order_by item "score desc display_name"; separate items with commas"#
        );
        assert_eq!(order_err("score,"), "order_by has an empty item");
        assert_eq!(order_err(",score"), "order_by has an empty item");
        assert_eq!(
            order_err(&"x".repeat(MAX_FILTER_CHARS + 1)),
            "order_by is longer than 4000 characters"
        );
    }
}
