//! A fresh, empty database on the test Postgres server that `scripts/test.sh` (and `.ci/run`)
//! start and name in `FILOT_TEST_POSTGRES_URL`. Without it, `None`: the caller says what it
//! skipped.

use std::time::Duration;

/// The URL of a new database named `{prefix}_{random}`, or `None` when no server is configured.
pub async fn fresh_database(prefix: &str) -> Option<String> {
    let admin_url = std::env::var("FILOT_TEST_POSTGRES_URL").ok()?;
    let admin = filot::store::Db::connect(&admin_url, 1, Duration::from_secs(10))
        .await
        .expect("test Postgres reachable");
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .unwrap();
    admin.close().await;
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("URL with a database path");
    Some(format!("{base}/{name}"))
}
