use filot::http::auth::Role;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn every_error_has_the_one_shape() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    assert_error(app.get(&alice, "/no/such/route").await, 404, "not_found").await;
    let resp = app
        .client
        .put(app.url("/v1/documents"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["allow"],
        "GET, HEAD, POST",
        "RFC 9110: a 405 says what is allowed"
    );
    assert_error(resp, 405, "method_not_allowed").await;
    let resp = app
        .client
        .post(app.url("/v1/documents/0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b/file"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    assert_error(resp, 405, "method_not_allowed").await;
    let resp = app
        .client
        .get(app.url("/__test/panic"))
        .send()
        .await
        .unwrap();
    let body = assert_error(resp, 500, "internal").await;
    assert_eq!(body["message"], "internal error");
}

#[tokio::test]
async fn correlation_ids_are_echoed_when_sane_and_replaced_otherwise() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/health/live"))
        .header("x-correlation-id", "abc-12345678")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-correlation-id"], "abc-12345678");
    for bad in ["3201234567890001", "has spaces in it", "x"] {
        let resp = app
            .client
            .get(app.url("/nope"))
            .header("x-correlation-id", bad)
            .send()
            .await
            .unwrap();
        let echoed = resp.headers()["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert_ne!(echoed, bad);
        let body = assert_error(resp, 404, "not_found").await;
        assert_eq!(body["correlation_id"], echoed.as_str());
    }
}

#[tokio::test]
async fn readiness_reports_a_database_outage_with_503() {
    let app = spawn_app().await;
    assert_eq!(
        app.client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.state.db.close().await;
    let resp = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    let body = assert_error(resp, 503, "not_ready").await;
    assert!(body["message"].as_str().unwrap().contains("database"));
    assert_eq!(
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Requests that need the database fail cleanly too.
    let alice = app.token("alice", Role::User);
    assert_error(app.get(&alice, "/v1/documents").await, 503, "unavailable").await;
}

#[tokio::test]
async fn swagger_ui_and_spec_are_served() {
    let app = spawn_app().await;
    let spec = app.spec().await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/documents",
        "/v1/documents/{id}",
        "/v1/documents/{id}/file",
        "/health/ready",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the spec"
        );
    }
    let ui = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn the_spec_says_what_the_service_enforces() {
    let app = spawn_app().await;
    let spec = app.spec().await;
    let params = spec["paths"]["/v1/reviews"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let param = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    let limit = param("limit");
    let schema = |p: &serde_json::Value| {
        // An optional parameter's schema may be wrapped.
        p["schema"].clone()
    };
    assert_eq!(schema(&limit)["minimum"], 1);
    assert_eq!(schema(&limit)["maximum"], 100);
    assert!(schema(&param("cursor"))["pattern"].is_string());
    let states = spec.to_string();
    assert!(
        states.contains("awaiting_second_review"),
        "the new state is documented"
    );
    assert!(spec["paths"]["/v1/verifications/{id}/signals/second-review"]["post"].is_object());
    let form = &spec["paths"]["/v1/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
        ["schema"];
    assert_eq!(form["additionalProperties"], false);
    let links = &spec["paths"]["/v1/documents"]["post"]["responses"]["202"]["links"];
    assert_eq!(links["GetDocument"]["operationId"], "getDocument");
    let links = &spec["paths"]["/v1/verifications"]["post"]["responses"]["202"]["links"];
    assert_eq!(
        links["SignalSecondReview"]["operationId"],
        "signalSecondReview"
    );
    for code in [
        "self_review_forbidden",
        "four_eyes_required",
        "verification_active",
        "webhook_url_forbidden",
        "too_many_uploads",
    ] {
        assert!(states.contains(code), "{code} is documented");
    }
    // What the spec allows, the service takes: the largest page, any cursor of the pattern.
    let rita = app.token("rita", Role::Reviewer);
    let resp = app
        .get(
            &rita,
            &format!("/v1/reviews?limit=100&cursor={}", "A".repeat(32)),
        )
        .await;
    assert_eq!(resp.status(), 200);
}
