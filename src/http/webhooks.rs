//! Status webhooks: a client registers a URL and is told, signed, about every state change of
//! its own verifications. Deliveries go through the same outbox as BULI2's decisions (stable
//! delivery ids, retries, dead letters) and are signed like them, under `X-Filot-Timestamp` and
//! `X-Filot-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>.<raw body>")>`.

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object, param::Path, payload::Json, types::Example};
use uuid::Uuid;

use super::{
    ApiTags, AppState,
    auth::{BearerAuth, Role},
    errors::ApiError,
    paging::millis,
};
use crate::store::webhooks::{self, Webhook};

pub struct WebhooksApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct RegisterWebhook {
    /// `https://…` (or `http://`) endpoint that accepts JSON POSTs.
    pub url: String,
}

impl Example for RegisterWebhook {
    fn example() -> Self {
        Self {
            url: "https://lender.example/hooks/filot".into(),
        }
    }
}

/// A registered webhook. `secret` is present only in the answer to its registration.
#[derive(Debug, Object)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    /// The HMAC secret to verify deliveries with. Shown once: store it now.
    #[oai(skip_serializing_if_is_none)]
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// Registered; every state change of your verifications will be POSTed to it.
    #[oai(status = 201)]
    Created(Json<WebhookView>),
}

#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// Deactivated: no new deliveries.
    #[oai(status = 204)]
    Deleted,
}

fn view(w: Webhook, secret: Option<String>) -> WebhookView {
    WebhookView {
        id: w.id,
        url: w.url,
        secret,
        created_at: millis(w.created_at),
    }
}

/// An address a client must not make FiLot call (unless explicitly allowed).
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

fn check_url(raw: &str, allow_private: bool) -> Result<String, ApiError> {
    let bad = |m: &str| ApiError::invalid("url", m.to_string());
    if raw.len() > 2000 {
        return Err(bad("must be at most 2000 characters"));
    }
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| bad("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    let host = url.host_str().ok_or_else(|| bad("needs a host"))?;
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    let internal = host.eq_ignore_ascii_case("localhost") || literal.is_some_and(private);
    if internal && !allow_private {
        return Err(bad("must not point at a loopback or private address"));
    }
    Ok(url.to_string())
}

#[poem_openapi::OpenApi(tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Register a status webhook
    ///
    /// Every state change of your verifications (`awaiting_documents` → … → final) is POSTed
    /// to `url` as `{delivery_id, type, verification_id, state, previous_state, …}`, signed with
    /// the returned secret (`X-Filot-Timestamp`, `X-Filot-Signature`), with `Idempotency-Key`
    /// = `delivery_id`, retried with back-off and dead-lettered like BULI2 deliveries.
    #[oai(
        path = "/v1/webhooks",
        method = "post",
        operation_id = "registerWebhook"
    )]
    async fn register(
        &self,
        auth: BearerAuth,
        body: Json<RegisterWebhook>,
    ) -> Result<RegisterResponse, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::User])?;
        let settings = &self.state.settings.outbox;
        let url = check_url(&body.url, settings.webhook_allow_private)?;
        let db = &self.state.db;
        if webhooks::active_for(db, &subject.id).await?.len()
            >= settings.max_webhooks_per_user as usize
        {
            return Err(ApiError::Conflict {
                code: "too_many_webhooks",
                message: format!(
                    "at most {} active webhooks per user; delete one first",
                    settings.max_webhooks_per_user
                ),
            });
        }
        let id = Uuid::now_v7().to_string();
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| ApiError::Internal)?;
        let secret = format!("whsec_{}", hex::encode(raw));
        let sealed = self
            .state
            .blobs
            .seal_text(&id, &secret)
            .map_err(|_| ApiError::Internal)?;
        let hook = Webhook {
            id,
            owner: subject.id.clone(),
            url,
            secret: sealed,
            active: true,
            created_at: self.state.clock.now_millis(),
        };
        webhooks::insert(db, &hook).await?;
        tracing::info!(webhook_id = %hook.id, "webhook registered");
        Ok(RegisterResponse::Created(Json(view(hook, Some(secret)))))
    }

    /// List your webhooks
    #[oai(path = "/v1/webhooks", method = "get", operation_id = "listWebhooks")]
    async fn list(&self, auth: BearerAuth) -> Result<Json<Vec<WebhookView>>, ApiError> {
        auth.0.require(&[Role::User])?;
        let hooks = webhooks::active_for(&self.state.db, &auth.0.id).await?;
        Ok(Json(hooks.into_iter().map(|h| view(h, None)).collect()))
    }

    /// Delete a webhook
    ///
    /// No new deliveries are queued for it; someone else's webhook answers 404.
    #[oai(
        path = "/v1/webhooks/:id",
        method = "delete",
        operation_id = "deleteWebhook"
    )]
    async fn delete(&self, auth: BearerAuth, id: Path<String>) -> Result<DeleteResponse, ApiError> {
        auth.0.require(&[Role::User])?;
        if webhooks::deactivate(&self.state.db, &id.0, &auth.0.id).await? {
            Ok(DeleteResponse::Deleted)
        } else {
            Err(ApiError::NotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_checked() {
        assert!(check_url("https://lender.example/hooks", false).is_ok());
        assert!(check_url("ftp://lender.example/hooks", false).is_err());
        assert!(check_url("https://user:pw@lender.example/", false).is_err());
        for internal in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://10.1.2.3/x",
            "http://192.168.1.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x",
            "http://[fd00::1]/x",
        ] {
            assert!(check_url(internal, false).is_err(), "{internal}");
            assert!(check_url(internal, true).is_ok(), "{internal}");
        }
    }
}
