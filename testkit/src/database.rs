//! Throwaway databases for tests: a fresh SQLite file, or a fresh PostgreSQL
//! database on the server at `CRM_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards.
//!
//! Without a PostgreSQL server the PostgreSQL variant of a test is skipped with
//! a message, except under CI (`CI=true`), where it fails: CI must prove both.

use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A database on the local PostgreSQL server.
    Postgres,
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL services connect with.
    pub url: String,
    /// The backend.
    pub backend: Backend,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Folder(std::path::PathBuf),
    Database { admin_url: String, name: String },
}

fn admin_url() -> String {
    std::env::var("CRM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestDatabase {
    /// Makes a fresh database, or `None` when PostgreSQL is asked for, none
    /// answers, and this is not CI.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let folder = std::env::temp_dir().join(format!("crm-test-{}", Uuid::now_v7()));
                std::fs::create_dir_all(&folder).ok()?;
                Some(Self {
                    url: format!("sqlite://{}?mode=rwc", folder.join("test.db").display()),
                    backend,
                    cleanup: Cleanup::Folder(folder),
                })
            }
            Backend::Postgres => Self::create_postgres().await,
        }
    }

    async fn create_postgres() -> Option<Self> {
        let admin_url = admin_url();
        let admin = match Database::connect(&admin_url).await {
            Ok(admin) => admin,
            Err(error) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!("CI=true but PostgreSQL at {admin_url} does not answer: {error}")
            }
            Err(error) => {
                eprintln!("skipping the PostgreSQL variant: {admin_url} does not answer: {error}");
                return None;
            }
        };
        let name = format!("crm_test_{}", Uuid::now_v7().simple());
        if let Err(error) = admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
        {
            panic!("cannot create test database {name}: {error}");
        }
        let _ = admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Some(Self {
            url: format!("{base}/{name}"),
            backend: Backend::Postgres,
            cleanup: Cleanup::Database { admin_url, name },
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Folder(folder) => {
                let _ = std::fs::remove_dir_all(folder);
            }
            Cleanup::Database { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime, which cannot block on
                // async work: drop the database from a thread of its own.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(runtime) = runtime {
                        runtime.block_on(async {
                            if let Ok(admin) = Database::connect(&admin_url).await {
                                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                                let _ = admin.execute_unprepared(&sql).await;
                                let _ = admin.close().await;
                            }
                        });
                    }
                });
                let _ = dropped.join();
            }
        }
    }
}

/// Declares a test that runs `$body(Backend)` once on SQLite and once on
/// PostgreSQL: `db_test!(creates_a_contact, creates_a_contact_on);`.
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::Backend::Postgres).await
            }
        }
    };
}
