//! Database access every service shares: connect by URL (`sqlite://` or
//! `postgres://`), run a service's migrations, begin write transactions, and
//! scope every query by tenant.

use std::{path::Path, sync::Arc, time::Duration};

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, QueryTrait, Select, Statement,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Mutex, OwnedMutexGuard};

pub mod nodelay;

/// The tenant every query of one request is scoped to; only made from a
/// verified principal (or a consumed event's envelope).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(String);

impl Tenant {
    /// The tenant with this id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The tenant id as stored in every row.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&crate::auth::Principal> for Tenant {
    fn from(principal: &crate::auth::Principal) -> Self {
        Self(principal.tenant.clone())
    }
}

/// An entity whose rows each belong to one tenant.
pub trait TenantScoped: EntityTrait {
    /// The column holding the tenant id.
    const TENANT: Self::Column;

    /// `SELECT ... WHERE tenant = ?`: the only way stores start a query, so an
    /// unscoped read has to be written on purpose.
    fn find_in(tenant: &Tenant) -> Select<Self> {
        Self::find().filter(Self::TENANT.eq(tenant.as_str()))
    }
}

/// A connection pool plus what it takes to write safely on either backend.
#[derive(Debug, Clone)]
pub struct Database {
    /// The pool.
    pub conn: DatabaseConnection,
    /// SQLite allows one writer at a time and fails, rather than waits, when a
    /// read transaction tries to become a write one; serialising this
    /// process's write transactions up front avoids that. PostgreSQL needs none.
    write_lock: Option<Arc<Mutex<()>>>,
}

/// A write transaction; commit it or drop it to roll back.
pub struct WriteTxn {
    /// The open transaction.
    pub txn: DatabaseTransaction,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Rolls the transaction back and gives its connection back to the pool.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }

    /// Makes the write transactions that call this with the same `key` run
    /// one after another from here to their commit, in every replica: for a
    /// read-then-write that must see the others' writes (an import's
    /// duplicate check). On PostgreSQL a transaction-scoped advisory lock;
    /// SQLite's writes are one at a time already.
    pub async fn serialize_on(&self, key: &str) -> Result<(), DbErr> {
        if self.txn.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        self.txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                [key.into()],
            ))
            .await?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl Database {
    /// Connects to `url` with at most `max_connections` pooled connections;
    /// for SQLite, creates the file (and its folder) when missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbErr> {
        let folder = sqlite_path(url)
            .and_then(|path| Path::new(path).parent())
            .filter(|dir| !dir.as_os_str().is_empty());
        if let Some(dir) = folder {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(max_connections)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false)
            .map_sqlx_postgres_pool_opts(|pool| {
                pool.after_connect(|conn, _| {
                    Box::pin(async move {
                        nodelay::set(conn).await?;
                        // No JIT compilation: PostgreSQL compiles a statement
                        // whose estimated cost passes `jit_above_cost`, and the
                        // estimate counts branches that never run. A search
                        // answered in 1 ms from its token table spent 59 ms
                        // compiling its gated-off ranking. These services run
                        // short statements, where compiling never pays. Set
                        // here, not as a startup option, which PgBouncer refuses.
                        sea_orm::sqlx::query("SET jit = off").execute(conn).await?;
                        Ok(())
                    })
                })
            })
            .map_sqlx_sqlite_opts(|opts| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                // WAL + NORMAL keeps every commit across a killed process (not
                // across a power cut), which is the promise the embedded mode makes.
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(15))
                    .foreign_keys(true)
                    .create_if_missing(true)
            });
        let mut conn = sea_orm::Database::connect(options).await?;
        conn.set_metric_callback(|_| statements::count_one());
        let write_lock =
            (conn.get_database_backend() == DbBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Ok(Self { conn, write_lock })
    }

    /// Connects to `url`, applies every pending migration of `M` and returns
    /// (the `migrate` command: a Kubernetes init container or Job).
    pub async fn migrate_only<M: MigratorTrait>(url: &str) -> Result<(), DbErr> {
        Self::connect(url, 2).await?.migrate::<M>().await?;
        tracing::info!("migrations applied");
        Ok(())
    }

    /// Applies every pending migration of `M`. On PostgreSQL they run in one
    /// transaction under an advisory lock, so replicas (or init containers)
    /// starting together migrate one at a time and a failed step leaves nothing.
    /// The lock is keyed by the database's name: advisory locks are
    /// server-wide, and services with databases on one server must not wait
    /// for each other.
    pub async fn migrate<M: MigratorTrait>(&self) -> Result<(), DbErr> {
        if self.backend() != DbBackend::Postgres {
            return M::up(&self.conn, None).await;
        }
        let txn = self.conn.begin().await?;
        txn.execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(7461626, hashtext(current_database()))",
        ))
        .await?;
        M::up(&txn, None).await?;
        txn.commit().await
    }

    /// Which SQL dialect this is.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Begins a transaction that will write.
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        Ok(WriteTxn {
            txn: self.conn.begin().await?,
            _guard: guard,
        })
    }
}

/// Inserts rows with multi-row statements of at most `per_statement` rows
/// each, moving (not cloning) them; SQLite takes at most 32,766 bound values
/// per statement, so `per_statement` times the columns must stay below that.
pub async fn insert_in_batches<A, C>(
    conn: &C,
    rows: Vec<A>,
    per_statement: usize,
) -> Result<(), DbErr>
where
    A: ActiveModelTrait,
    C: ConnectionTrait,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<A> = rows.by_ref().take(per_statement).collect();
        A::Entity::insert_many(batch)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// [`insert_in_batches`]' statements, built for [`execute_together`]
/// rather than run.
pub fn insert_statements<A: ActiveModelTrait>(
    backend: DbBackend,
    rows: Vec<A>,
    per_statement: usize,
) -> Vec<Statement> {
    let mut rows = rows.into_iter().peekable();
    let mut statements = Vec::new();
    while rows.peek().is_some() {
        let batch: Vec<A> = rows.by_ref().take(per_statement).collect();
        statements.push(A::Entity::insert_many(batch).build(backend));
    }
    statements
}

/// The most bound values [`execute_together`] puts in one call (one
/// PostgreSQL statement takes at most 65,535). Joining saves round trips, which
/// is what small writes cost; a bulk write's statements are large enough
/// that a round trip more is nothing, and joined into a text that differs
/// from batch to batch each would be parsed and planned afresh (and kept
/// in the connection's statement cache).
const JOINED_VALUES: usize = 2_048;

/// Runs `statements` (writes that do not read one another's rows), in the
/// caller's transaction, in as few round trips as the backend allows. On
/// PostgreSQL small ones become one statement, each a data-modifying
/// `WITH` part, so a create's rows, audit entry and event cost one round
/// trip instead of one each; the parts see the same snapshot, so a part
/// must not depend on another's rows (it cannot see them). On SQLite they
/// go to sqlx's database thread as one call of several statements (sqlx
/// binds their `?` placeholders in turn), saving a hop each. A statement
/// with more than [`JOINED_VALUES`] values runs alone, as does any SQLite
/// statement with numbered placeholders (their numbers would be wrong), after
/// the joined ones: the statements are independent, so order does not
/// matter. Statements are expected as sea-query writes them, values bound:
/// placeholders are found outside `'...'` and `"..."`, not inside
/// dollar-quoted strings, `E'...'` escapes or comments.
pub async fn execute_together<C: ConnectionTrait>(
    conn: &C,
    statements: Vec<Statement>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let (joinable, alone): (Vec<_>, Vec<_>) = statements
        .into_iter()
        .partition(|s| backend == DbBackend::Postgres || !has_numbered_placeholder(&s.sql));
    for group in groups_within(joinable, JOINED_VALUES) {
        conn.execute_raw(combined(backend, group)).await?;
    }
    for statement in alone {
        conn.execute_raw(statement).await?;
    }
    Ok(())
}

/// `statements` in order, in groups of at most `max_values` bound values
/// (a statement over the limit alone in its group, to fail as it would).
fn groups_within(statements: Vec<Statement>, max_values: usize) -> Vec<Vec<Statement>> {
    let mut groups: Vec<Vec<Statement>> = Vec::new();
    let mut values_in_last = 0;
    for statement in statements {
        let values = statement.values.as_ref().map_or(0, |v| v.0.len());
        match groups.last_mut() {
            Some(last) if values_in_last + values <= max_values => {
                last.push(statement);
                values_in_last += values;
            }
            _ => {
                groups.push(vec![statement]);
                values_in_last = values;
            }
        }
    }
    groups
}

/// One call running every one of `group`: on PostgreSQL one statement,
/// each a `WITH` part with its placeholders renumbered after those of the
/// parts before it; on SQLite the statements one after another.
fn combined(backend: DbBackend, mut group: Vec<Statement>) -> Statement {
    if group.len() == 1 {
        return group.remove(0);
    }
    let mut parts = Vec::with_capacity(group.len());
    let mut values = Vec::new();
    for (i, statement) in group.into_iter().enumerate() {
        parts.push(match backend {
            DbBackend::Postgres => {
                format!("part{i} AS ({})", renumbered(&statement.sql, values.len()))
            }
            _ => statement.sql,
        });
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
    let sql = match backend {
        DbBackend::Postgres => format!("WITH {} SELECT 1", parts.join(", ")),
        _ => parts.join(";\n"),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Whether `sql` has a placeholder naming its value's number (`$1`, `?1`)
/// outside quotes.
fn has_numbered_placeholder(sql: &str) -> bool {
    ['$', '?']
        .into_iter()
        .any(|sigil| renumbered_with(sql, sigil, 1) != sql)
}

/// `sql` with each placeholder `$n` made `$(n + offset)`; quoted strings
/// and identifiers are left as they are.
fn renumbered(sql: &str, offset: usize) -> String {
    renumbered_with(sql, '$', offset)
}

/// [`renumbered`] for placeholders written `{sigil}n`.
fn renumbered_with(sql: &str, sigil: char, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        out.push(c);
        match quote {
            // A doubled quote inside a quoted run closes and reopens it: same result.
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == sigil && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut number = 0usize;
                while let Some(digit) = chars.peek().and_then(|d| d.to_digit(10)) {
                    number = number * 10 + digit as usize;
                    chars.next();
                }
                out.push_str(&(number + offset).to_string());
            }
            None => {}
        }
    }
    out
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, Statement};

    use super::{combined, groups_within, has_numbered_placeholder, renumbered, sqlite_path};

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        assert_eq!(
            renumbered("INSERT INTO t (a, b) VALUES ($1, $2)", 10),
            "INSERT INTO t (a, b) VALUES ($11, $12)"
        );
        assert_eq!(
            renumbered("SELECT '$1', \"$2\", 'it''s $3', $3", 4),
            "SELECT '$1', \"$2\", 'it''s $3', $7"
        );
        assert_eq!(renumbered("SELECT $10 + $9", 1), "SELECT $11 + $10");
        assert!(has_numbered_placeholder("SELECT ?1") && has_numbered_placeholder("SELECT $2"));
        assert!(!has_numbered_placeholder("SELECT ?, '$1', \"?2\""));
    }

    #[test]
    fn statements_are_combined_within_the_value_limit() {
        let insert = |n: i32| {
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO t (a, b) VALUES ($1, $2)",
                [n.into(), (n + 1).into()],
            )
        };
        let groups = groups_within(vec![insert(1), insert(3), insert(5)], 4);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
        let one = combined(
            DbBackend::Postgres,
            groups.into_iter().next().expect("a group"),
        );
        assert_eq!(
            one.sql,
            "WITH part0 AS (INSERT INTO t (a, b) VALUES ($1, $2)), \
             part1 AS (INSERT INTO t (a, b) VALUES ($3, $4)) SELECT 1"
        );
        assert_eq!(one.values.expect("values").0.len(), 4);
    }

    #[test]
    fn sqlite_paths_are_read_from_urls() {
        assert_eq!(
            sqlite_path("sqlite://data/contacts.db?mode=rwc"),
            Some("data/contacts.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://localhost/crm"), None);
    }
}

/// Counting the statements one call makes, so N+1 queries show: the
/// connection counts each statement into the counter of the task running
/// [`statements::counted`] (the RPC layer wraps every call in one), if any.
pub mod statements {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    tokio::task_local! {
        static COUNTER: Arc<AtomicU32>;
    }

    /// Counts one statement for the current task's call, if it is counted.
    pub(super) fn count_one() {
        let _ = COUNTER.try_with(|counter| counter.fetch_add(1, Ordering::Relaxed));
    }

    /// Makes the future `start` returns and awaits it, counting the
    /// statements made in its task (and in tasks spawned through
    /// [`carried`]); returns its output and the count.
    pub async fn counted<F: Future>(start: impl FnOnce() -> F) -> (F::Output, u32) {
        let counter = Arc::new(AtomicU32::new(0));
        let output = COUNTER
            .scope(counter.clone(), async { start().await })
            .await;
        (output, counter.load(Ordering::Relaxed))
    }

    /// `future` counting into the current call's counter, if any: for a
    /// future about to be spawned on behalf of the call.
    pub fn carried<F: Future>(future: F) -> impl Future<Output = F::Output> {
        let counter = COUNTER.try_with(Arc::clone).ok();
        async move {
            match counter {
                Some(counter) => COUNTER.scope(counter, future).await,
                None => future.await,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use sea_orm::{ConnectionTrait, DbBackend, Statement};

        use super::*;
        use crate::db::Database;

        #[tokio::test]
        async fn each_statement_of_a_call_is_counted_and_only_its_own() {
            let dir = std::env::temp_dir().join(format!("statements-{}", std::process::id()));
            let url = format!("sqlite://{}/db.sqlite?mode=rwc", dir.display());
            let db = Database::connect(&url, 2).await.expect("connect");
            let select = || Statement::from_string(DbBackend::Sqlite, "SELECT 1");
            let ((), three) = counted(|| async {
                for _ in 0..3 {
                    db.conn.execute_raw(select()).await.expect("select");
                }
            })
            .await;
            assert_eq!(three, 3);
            // Outside a counted call nothing is counted, and nothing leaks in.
            db.conn.execute_raw(select()).await.expect("select");
            let ((), none) = counted(|| async {}).await;
            assert_eq!(none, 0);
            let ((), in_txn) = counted(|| async {
                let txn = db.begin_write().await.expect("begin");
                txn.execute_raw(select()).await.expect("select");
                txn.commit().await.expect("commit");
            })
            .await;
            assert_eq!(in_txn, 1, "statements in a transaction count too");
            let db = std::sync::Arc::new(db);
            let ((), spawned) = counted(|| {
                let db = db.clone();
                let task = tokio::spawn(carried(async move {
                    db.conn.execute_raw(select()).await.expect("select");
                }));
                async move { task.await.expect("task") }
            })
            .await;
            assert_eq!(spawned, 1, "a task spawned for the call counts for it");
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
