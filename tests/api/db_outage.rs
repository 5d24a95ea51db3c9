//! The database goes away under a running FiLot and comes back: requests fail cleanly (503
//! with a code, the one error shape) while it is down, and FiLot recovers on its own — no
//! restart, nothing that was accepted forgotten. Runs when `scripts/test.sh` provides a
//! throwaway Postgres with its control script (FILOT_TEST_POSTGRES_URL/_CTL).

use std::{process::Command, time::Duration};

use filot::http::auth::Role;

use crate::helpers::{assert_error, fixture, spawn_app_with};

fn pg_ctl(ctl: &str, action: &str) {
    let status = Command::new(ctl)
        .arg(action)
        .status()
        .expect("run the Postgres control script");
    assert!(status.success(), "postgres {action}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_gives_503_then_recovers_without_restarting_filot() {
    let Ok(ctl) = std::env::var("FILOT_TEST_POSTGRES_CTL") else {
        eprintln!("no throwaway Postgres (run scripts/test.sh): outage test skipped");
        return;
    };
    let url = crate::support::postgres::fresh_database("filot_outage")
        .await
        .expect("FILOT_TEST_POSTGRES_URL is set beside FILOT_TEST_POSTGRES_CTL");

    let app = spawn_app_with(|s| {
        s.database_url = filot::config::DatabaseUrl::new(url.clone());
        s.database.acquire_timeout = Duration::from_millis(1_000);
    })
    .await;
    let alice = app.token("alice", Role::User);
    let before = app.upload_id(&alice, "KTP", "ktp_003.jpg").await;

    pg_ctl(&ctl, "stop");
    let down = async {
        assert_error(app.get(&alice, "/v1/documents").await, 503, "unavailable").await;
        assert_error(app.get(&alice, "/health/ready").await, 503, "not_ready").await;
        let resp = app
            .upload(&alice, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
            .await;
        assert_eq!(
            resp.status(),
            503,
            "an upload that cannot be stored is not accepted"
        );
        assert!(
            app.get(&alice, "/health/live").await.status().is_success(),
            "the process lives"
        );
    };
    // Whatever happens above (a failed assertion included), the database comes back for the
    // tests that follow.
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(down)),
    )
    .await;
    pg_ctl(&ctl, "start");
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("no answers within 60 s while the database was down"),
    }

    let page = app
        .wait_for(&alice, "/v1/documents", 30, |p| p["items"].is_array())
        .await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [before.as_str()],
        "the accepted upload is still there, nothing else"
    );
    let after = app.upload_id(&alice, "KTP", "ktp_003.jpg").await;
    assert_ne!(after, before);
    assert!(app.get(&alice, "/health/ready").await.status().is_success());
}
