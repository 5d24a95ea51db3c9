//! Swagger UI in real browsers, Chromium and Firefox: the page lists every operation of the
//! served spec, a person authorizes with a bearer token and runs a request from the page and
//! sees the answer, and nothing is fetched from another host (the page's CSP forbids it too).

use filot::http::auth::Role;
use serde_json::Value;

use crate::{
    helpers::spawn_app,
    support::webdriver::{Driver, Engine},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_lists_the_api_and_runs_an_authorized_request_in_real_browsers() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let document = app.upload_ktp(&alice).await;
    let spec = app.spec().await;
    let operations: usize = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert!(operations > 20, "{operations}");

    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    let csp = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("connect-src 'self'"), "{csp}");

    for engine in [Engine::Chromium, Engine::Firefox] {
        let driver = Driver::start(engine).await;
        let b = driver.browser().await;
        b.goto(&app.url("/docs")).await;
        b.until(
            "every operation is listed",
            &format!("return document.querySelectorAll('.opblock').length === {operations};"),
        )
        .await;

        // Authorize with a bearer token, as the description says.
        b.click(&b.find(".btn.authorize").await).await;
        b.type_text(&b.find("#auth-bearer-value").await, &alice)
            .await;
        b.click(&b.find(".auth-btn-wrapper .authorize").await).await;
        b.click(&b.find(".auth-btn-wrapper .btn-done").await).await;

        // Try out "list my documents" and see alice's document in the answer.
        let op = "#operations-Documents-listDocuments";
        b.click(&b.find(&format!("{op} .opblock-summary-control")).await)
            .await;
        b.click(&b.find(&format!("{op} .try-out__btn")).await).await;
        b.click(&b.find(&format!("{op} .execute")).await).await;
        let answer = format!("document.querySelector('{op} .live-responses-table')");
        b.until(
            &format!("{engine:?}: the request ran and answered 200"),
            &format!(
                "const t = {answer}; return !!t && \
                 t.querySelector('tr.response .response-col_status').textContent.trim() === '200';"
            ),
        )
        .await;
        let body = b.run(&format!("return {answer}.textContent;")).await;
        assert!(
            body.as_str().unwrap_or_default().contains(&document),
            "{engine:?}: {body}"
        );
        assert_eq!(
            b.run("return document.querySelectorAll('.errors-wrapper').length;")
                .await,
            Value::from(0),
            "{engine:?}: the spec has no errors Swagger UI reports"
        );
        b.assert_only_own_origin().await;
        b.close().await;
    }
}
