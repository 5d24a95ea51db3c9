//! The reviewer console in real browsers: a reviewer signs in with Chromium (Debian's, through
//! chromedriver), opens the case, sees the card and its NIK, claims it, corrects a field and
//! approves; a second reviewer, in Firefox (Debian's firefox-esr, through geckodriver), sees
//! the same card, cannot act while it is claimed, and then confirms the second review; neither
//! page asks another host for anything.

use filot::{http::auth::Role, kyc::workflow::FourEyes};
use serde_json::Value;

use crate::{
    helpers::{TestApp, spawn_app_with},
    support::webdriver::{Browser, Driver, Engine},
};

/// Opens the console in `browser` signed in with `token`, and the case `id` from the queue.
async fn sign_in_and_open(app: &TestApp, browser: &Browser, token: &str, id: &str, keyboard: bool) {
    browser.goto(&format!("{}/console", app.base)).await;
    // The token stays for the tab's session: sign in only the first time.
    let signed_in = browser
        .run("return !!sessionStorage.getItem('filot.console.token');")
        .await;
    if signed_in != Value::Bool(true) {
        let field = browser.testid("token").await;
        browser.type_text(&field, token).await;
        browser.click(&browser.testid("sign-in").await).await;
    }
    let row = format!("[data-testid=\"queue-row\"][data-id=\"{id}\"]");
    browser.find(&row).await;
    if keyboard {
        // j / k move through the queue, Enter opens the selected case.
        browser.keys("jk\u{E007}").await;
    } else {
        // A cell of the row (geckodriver cannot scroll a bare `<tr>` into view to click it).
        browser
            .click(&browser.find(&format!("{row} td")).await)
            .await;
    }
    browser.testid("card-image").await;
}

/// The card image is loaded and laid out, with the lines the model read drawn over it.
async fn card_shown(browser: &Browser) {
    browser
        .until(
            "the card image loaded",
            "const i = document.querySelector('[data-testid=card-image]'); \
             return i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0;",
        )
        .await;
    browser
        .until(
            "the line boxes are drawn",
            "return document.querySelectorAll('#boxes polygon').length > 5;",
        )
        .await;
}

async fn value(browser: &Browser, testid: &str) -> String {
    let e = browser.testid(testid).await;
    browser
        .property(&e, "value")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn text(browser: &Browser, testid: &str) -> String {
    let e = browser.testid(testid).await;
    browser
        .property(&e, "textContent")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reviewers_work_a_case_through_the_console_in_a_real_browser() {
    // A real reading of a KTP and an NPWP of two different people: the model reads both,
    // the cross-checks send the case to review (never rejected on its own here).
    let app = spawn_app_with(|s| {
        s.workflow.four_eyes = FourEyes::IdentityCorrections;
        s.workflow.reject_below = 0;
        s.ocr.devices = vec!["cpu".into()];
    })
    .await;
    let truth: Value = serde_json::from_slice(&crate::helpers::fixture("ktp_003.json")).unwrap();
    // Another account used this NIK first.
    let bob = app.token("bob", Role::User);
    let bobs_card = app.upload_id(&bob, "KTP", "ktp_003.jpg").await;
    let bobs_case = app.start_verification(&bob, &bobs_card, None).await;
    app.wait_for(&bob, &format!("/v1/verifications/{bobs_case}"), 300, |v| {
        v["state"] != "awaiting_documents"
    })
    .await;
    let alice = app.token("alice", Role::User);
    let ktp = app.upload_id(&alice, "KTP", "ktp_003.jpg").await;
    let npwp = app.upload_id(&alice, "NPWP", "npwp_000.jpg").await;
    let id = app.start_verification(&alice, &ktp, Some(&npwp)).await;
    app.wait_for(&alice, &format!("/v1/verifications/{id}"), 300, |v| {
        v["state"] == "pending_manual_review"
    })
    .await;
    let (rita, sam) = (
        app.token("rita", Role::Reviewer),
        app.token("sam", Role::Reviewer),
    );
    let (chromium, firefox) = (
        Driver::start(Engine::Chromium).await,
        Driver::start(Engine::Firefox).await,
    );

    // The page is locked down: everything from this origin.
    let page = app
        .client
        .get(format!("{}/console", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");

    // Rita signs in, opens the case, sees the card and the NIK, and claims it.
    let a = chromium.browser().await;
    sign_in_and_open(&app, &a, &rita, &id, false).await;
    card_shown(&a).await;
    assert_eq!(value(&a, "field-nik").await, truth["nik"]);
    // The NIK another account used first is said in words, with that case a click away.
    a.until(
        "the reused NIK is shown",
        "return document.getElementById('issues').textContent.includes('Another account used this NIK first.');",
    )
    .await;
    let other = a.testid("collision").await;
    assert_eq!(
        a.attribute(&other, "data-id").await,
        Value::from(bobs_case.as_str())
    );
    a.click(&a.testid("claim").await).await;
    a.until(
        "the claim shows",
        "return document.querySelector('[data-testid=claim-status]').textContent.includes('you');",
    )
    .await;

    // Sam, in Firefox, sees the same card and who holds it, and cannot decide it.
    let b = firefox.browser().await;
    sign_in_and_open(&app, &b, &sam, &id, true).await;
    card_shown(&b).await;
    assert_eq!(value(&b, "field-nik").await, truth["nik"]);
    assert!(text(&b, "claim-status").await.contains("rita"));
    let approve = b.testid("approve").await;
    assert_eq!(b.property(&approve, "disabled").await, Value::Bool(true));
    let resp = app
        .signal(
            &sam,
            &id,
            "review-decision",
            serde_json::json!({ "signal_id": "sam-1", "decision": "approve", "reason": "looks fine" }),
        )
        .await;
    assert_eq!(resp.status(), 409);

    // Rita corrects the name and approves (a double click sends one decision); the
    // correction of an identity field waits for a second reviewer.
    let name = a.testid("field-name").await;
    a.clear(&name).await;
    a.type_text(&name, "WULAN SAPUTRI").await;
    let reason = a.testid("reason").await;
    a.type_text(&reason, "name misread; checked against the photo")
        .await;
    a.double_click(&a.testid("approve").await).await;
    a.until(
        "the decision was sent",
        "return document.querySelector('[data-testid=message]').textContent.startsWith('Sent');",
    )
    .await;
    let v = app.get(&rita, &format!("/v1/verifications/{id}")).await;
    let v: Value = v.json().await.unwrap();
    assert_eq!(v["state"], "awaiting_second_review", "{v}");
    a.run("window.scrollTo(0, 0); return true;").await;
    std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/docs")).unwrap();
    let shot = a.screenshot().await;
    assert!(shot.starts_with(b"\x89PNG"));
    std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/docs/console.png"),
        shot,
    )
    .unwrap();

    // Sam opens it again, claims it and confirms.
    sign_in_and_open(&app, &b, &sam, &id, false).await;
    b.click(&b.testid("claim").await).await;
    b.until(
        "sam holds it",
        "return document.querySelector('[data-testid=claim-status]').textContent.includes('you');",
    )
    .await;
    let reason = b.testid("reason").await;
    b.type_text(&reason, "second look: agreed").await;
    b.click(&b.testid("confirm-second-review").await).await;
    b.until(
        "the second review was sent",
        "return document.querySelector('[data-testid=message]').textContent.startsWith('Second review sent');",
    )
    .await;
    a.assert_only_own_origin().await;
    b.assert_only_own_origin().await;
    // A token that no longer works is said in words, and the page asks to sign in again.
    a.run("sessionStorage.setItem('filot.console.token', 'x.e30.x'); return true;")
        .await;
    a.goto(&format!("{}/console", app.base)).await;
    a.until(
        "an expired sign-in is said in words",
        "return document.querySelector('[data-testid=who]').textContent.includes('expired');",
    )
    .await;
    a.testid("token").await;
    a.close().await;
    b.close().await;

    let v: Value = app
        .get(&rita, &format!("/v1/verifications/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], "manually_approved", "{v}");
    assert_eq!(v["corrected_fields"]["name"], "WULAN SAPUTRI");
    let events: Value = app
        .get(&rita, &format!("/v1/verifications/{id}/events"))
        .await
        .json()
        .await
        .unwrap();
    let by = |kind: &str| -> Vec<String> {
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["actor"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        by("review_proposed"),
        ["rita"],
        "one decision for two clicks"
    );
    assert_eq!(by("second_reviewed"), ["sam"]);
    assert_eq!(by("claimed"), ["rita", "sam"]);
}
