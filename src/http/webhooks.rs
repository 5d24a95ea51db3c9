//! Status webhooks: a client registers a URL and is told, signed, about every state change of
//! its own verifications. Deliveries go through the same outbox as BULI2's decisions (stable
//! delivery ids, retries, dead letters) and are signed like them, under `X-Filot-Timestamp` and
//! `X-Filot-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>.<raw body>")>`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object, param::Path, payload::Json, types::Example};
use uuid::Uuid;

use super::{
    ApiTags, AppState,
    auth::{BearerAuth, Role},
    errors::ApiError,
    ids::PathId,
    paging::millis,
    text::Text,
};
use crate::{
    buli2::egress::{self, Refusal},
    config::OutboxSettings,
    kyc::WebhookId,
    store::webhooks::{self, Webhook},
};

pub struct WebhooksApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct RegisterWebhook {
    /// `https://…` (or `http://`) endpoint that accepts JSON POSTs, at a public address.
    #[oai(validator(max_length = 2000, pattern = r"^https?://"))]
    pub url: Text,
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

/// A client's URL, checked as [`egress`] says: 422 `webhook_url_forbidden` for any address
/// FiLot must not call, `validation_failed` for a URL that is not one.
async fn check_url(raw: &str, settings: &OutboxSettings) -> Result<String, ApiError> {
    let timeout = settings.webhook_resolve_timeout;
    match egress::check_url_resolved(raw, settings.webhook_allow_private, timeout).await {
        Ok(url) => Ok(url.to_string()),
        Err(e @ Refusal::Forbidden) => Err(ApiError::Unprocessable {
            code: "webhook_url_forbidden",
            field: Some("url".into()),
            message: e.to_string(),
        }),
        Err(e) => Err(ApiError::invalid("url", e.to_string())),
    }
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
        let url = check_url(&body.url, settings).await?;
        let db = &self.state.db;
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
        webhooks::insert(db, &hook, settings.max_webhooks_per_user).await?;
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
    async fn delete(
        &self,
        auth: BearerAuth,
        id: Path<PathId<WebhookId>>,
    ) -> Result<DeleteResponse, ApiError> {
        auth.0.require(&[Role::User])?;
        if webhooks::deactivate(&self.state.db, &id.0.0.to_string(), &auth.0.id).await? {
            Ok(DeleteResponse::Deleted)
        } else {
            Err(ApiError::NotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registration_refuses_internal_urls_with_their_own_code() {
        let strict = OutboxSettings::default();
        assert!(
            check_url("https://lender.example/hooks", &strict)
                .await
                .is_ok()
        );
        let err = check_url("http://[::ffff:a9fe:a9fe]/", &strict)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "webhook_url_forbidden");
        let err = check_url("ftp://lender.example/", &strict)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "validation_failed");
        let open = OutboxSettings {
            webhook_allow_private: true,
            ..Default::default()
        };
        assert!(check_url("http://127.0.0.1:9/hook", &open).await.is_ok());
    }
}
