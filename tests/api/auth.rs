use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use filot::http::auth::Role;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

fn claims(sub: &str, exp_offset: i64) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "role": "user", "iss": "filot", "aud": "filot", "iat": now, "exp": now + exp_offset, "jti": "t"})
}

#[tokio::test]
async fn audience_not_before_and_lifetime_are_enforced() {
    let app = spawn_app().await;
    let secret = filot::secrets::jwt_secret(&app.state.settings).unwrap();
    let sign = |c: &serde_json::Value| {
        jsonwebtoken::encode(&Header::default(), c, &EncodingKey::from_secret(&secret)).unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let good = claims("alice", 600);
    assert_eq!(app.get(&sign(&good), "/v1/documents").await.status(), 200);
    let with = |key: &str, value: serde_json::Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let mut no_aud = good.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut no_iat = good.clone();
    no_iat.as_object_mut().unwrap().remove("iat");
    for (what, c) in [
        ("another audience", with("aud", json!("buli2"))),
        ("no audience", no_aud),
        ("not valid yet", with("nbf", json!(now + 3_600))),
        // Signed correctly, but claims to live for a year (default maximum: a day).
        (
            "too long a lifetime",
            with("exp", json!(now + 365 * 86_400)),
        ),
        ("issued in the future", with("iat", json!(now + 3_600))),
        ("no iat", no_iat),
    ] {
        let resp = app.get(&sign(&c), "/v1/documents").await;
        assert_eq!(resp.status(), 401, "{what}");
        assert_error(resp, 401, "unauthorized").await;
    }
    // Minting refuses what verification would refuse.
    assert!(
        app.state
            .auth
            .mint(
                "alice",
                Role::User,
                std::time::Duration::from_secs(400 * 86_400)
            )
            .is_err()
    );
}

#[tokio::test]
async fn missing_expired_tampered_wrong_key_and_alg_none_tokens_get_401() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/v1/documents"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "unauthorized").await;

    let secret = filot::secrets::jwt_secret(&app.state.settings).unwrap();
    let expired = jsonwebtoken::encode(
        &Header::default(),
        &claims("alice", -3600),
        &EncodingKey::from_secret(&secret),
    )
    .unwrap();
    let wrong_key = jsonwebtoken::encode(
        &Header::default(),
        &claims("alice", 3600),
        &EncodingKey::from_secret(b"another-secret-of-enough-length-0123456789"),
    )
    .unwrap();
    let good = app.token("alice", Role::User);
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(
            &json!({"sub": "mallory", "role": "admin", "iss": "filot", "exp": 9999999999i64}),
        )
        .unwrap(),
    );
    let tampered = parts.join(".");
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("alice", 3600)).unwrap());
    let alg_none = format!("{none_header}.{none_body}.");

    for (what, token) in [
        ("expired", expired),
        ("wrong key", wrong_key),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("garbage", "not.a.jwt".into()),
    ] {
        let resp = app.get(&token, "/v1/documents").await;
        assert_eq!(resp.status(), 401, "{what}");
        assert_error(resp, 401, "unauthorized").await;
    }
    assert_eq!(app.get(&good, "/v1/documents").await.status(), 200);
}

#[tokio::test]
async fn wrong_role_gets_403_and_others_documents_404() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let bob = app.token("bob", Role::User);
    let reviewer = app.token("rita", Role::Reviewer);
    let admin = app.token("adam", Role::Admin);

    // Reviewers do not upload.
    let resp = app
        .upload(
            &reviewer,
            "KTP",
            crate::helpers::fixture("ktp_003.jpg"),
            "k.jpg",
            None,
        )
        .await;
    assert_error(resp, 403, "forbidden").await;

    let id = app.upload_ktp(&alice).await;
    let path = format!("/v1/documents/{id}");
    for token in [&bob] {
        assert_error(app.get(token, &path).await, 404, "not_found").await;
        assert_error(
            app.get(token, &format!("{path}/file")).await,
            404,
            "not_found",
        )
        .await;
        let del = app.delete(token, &path).await;
        assert_error(del, 404, "not_found").await;
    }
    // A nonexistent id looks exactly like someone else's.
    let missing = format!("/v1/documents/{}", uuid::Uuid::now_v7());
    assert_error(app.get(&bob, &missing).await, 404, "not_found").await;
    // So does an id that is not one at all, whatever the route.
    let unhyphenated = id.replace('-', "");
    for path in [
        "/v1/documents/not-an-id".to_string(),
        format!("/v1/documents/{unhyphenated}/file"),
        "/v1/verifications/42".to_string(),
        "/v1/verifications/x/events".to_string(),
    ] {
        assert_error(app.get(&admin, &path).await, 404, "not_found").await;
    }
    for token in [&alice, &reviewer, &admin] {
        assert_eq!(app.get(token, &path).await.status(), 200);
        assert_eq!(app.get(token, &format!("{path}/file")).await.status(), 200);
    }
    // Reviewers read but do not erase.
    let del = app.delete(&reviewer, &path).await;
    assert_error(del, 403, "forbidden").await;
}

#[tokio::test]
async fn repeated_auth_failures_from_one_address_get_429_with_retry_after() {
    let app = spawn_app_with(|s| s.limits.auth_failures_per_ip_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(
            app.get("bad.token.here", "/v1/documents").await.status(),
            401
        );
    }
    let resp = app.get("bad.token.here", "/v1/documents").await;
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
    assert_error(resp, 429, "rate_limited").await;
}

#[tokio::test]
async fn per_user_request_limit_gets_429() {
    let app = spawn_app_with(|s| s.limits.requests_per_user_per_minute = 2).await;
    let alice = app.token("alice", Role::User);
    assert_eq!(app.get(&alice, "/v1/documents").await.status(), 200);
    assert_eq!(app.get(&alice, "/v1/documents").await.status(), 200);
    assert_error(app.get(&alice, "/v1/documents").await, 429, "rate_limited").await;
    // Another user is not affected.
    let bob = app.token("bob", Role::User);
    assert_eq!(app.get(&bob, "/v1/documents").await.status(), 200);
}

#[tokio::test]
async fn rs256_mode_accepts_its_keys_and_refuses_hs256() {
    use aws_lc_rs::{
        encoding::AsDer,
        rsa::{KeyPair, KeySize},
        signature::KeyPair as _,
    };
    let keys = tempfile::tempdir().unwrap();
    let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let pem = |label: &str, der: &[u8]| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let body: Vec<String> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            body.join("\n")
        )
    };
    let private = pair.as_der().unwrap();
    let public = pair.public_key().as_der().unwrap();
    let priv_path = keys.path().join("jwt.pem");
    let pub_path = keys.path().join("jwt.pub.pem");
    std::fs::write(&priv_path, pem("PRIVATE KEY", private.as_ref())).unwrap();
    std::fs::write(&pub_path, pem("PUBLIC KEY", public.as_ref())).unwrap();

    let app = spawn_app_with(|s| {
        s.auth.jwt_public_key_file = Some(pub_path.clone());
        s.auth.jwt_private_key_file = Some(priv_path.clone());
    })
    .await;
    let rs = app.token("alice", Role::User);
    assert_eq!(app.get(&rs, "/v1/documents").await.status(), 200);
    // An HS256 token signed with the public key's bytes (algorithm confusion) is refused.
    let confused = jsonwebtoken::encode(
        &Header::default(),
        &claims("alice", 3600),
        &EncodingKey::from_secret(&std::fs::read(&pub_path).unwrap()),
    )
    .unwrap();
    assert_error(
        app.get(&confused, "/v1/documents").await,
        401,
        "unauthorized",
    )
    .await;
}
