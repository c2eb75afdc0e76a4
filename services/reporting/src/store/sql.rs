//! A small builder for the read model's hand-written statements (upserts
//! that add to a total, sums grouped by day), with `$n` placeholders, which
//! SQLite and PostgreSQL both read.

use sea_orm::{DbBackend, Statement, Value};

/// A statement being built.
pub struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    /// Starts with `text` (which holds no placeholders).
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            values: Vec::new(),
        }
    }

    /// Appends `text`, then a placeholder for `value`.
    pub fn bind(mut self, text: &str, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self.text.push_str(text);
        self.text.push_str(&format!("${}", self.values.len()));
        self
    }

    /// Appends `text` as it is.
    pub fn push(mut self, text: &str) -> Self {
        self.text.push_str(text);
        self
    }

    /// Appends `AND column = $n` when `value` is not empty.
    pub fn and_eq(self, column: &str, value: &str) -> Self {
        if value.is_empty() {
            return self;
        }
        self.bind(&format!(" AND {column} = "), value.to_owned())
    }

    /// Appends `AND column IN ($n, ...)` when `values` is not empty.
    pub fn and_in(mut self, column: &str, values: &[String]) -> Self {
        if values.is_empty() {
            return self;
        }
        self.text.push_str(&format!(" AND {column} IN ("));
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.values.push(value.clone().into());
            self.text.push_str(&format!("${}", self.values.len()));
        }
        self.text.push(')');
        self
    }

    /// The statement for `backend`.
    pub fn build(self, backend: DbBackend) -> Statement {
        Statement::from_sql_and_values(backend, self.text, self.values)
    }
}
