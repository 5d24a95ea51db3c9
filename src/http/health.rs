//! `/health/live` (the process answers) and `/health/ready` (its dependencies answer).

use std::{sync::Arc, time::Duration};

use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::{ApiTags, AppState, errors::ApiError};

pub struct HealthApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
pub struct HealthStatus {
    /// `ok` (liveness), `ready`, or `degraded`: the API serves (uploads are accepted) but
    /// processing waits, for the reason the checks give.
    pub status: String,
    /// What was checked, each `name: ok` or `name: what is wrong`. (A database or actor tree
    /// that fails answers 503 instead.)
    pub checks: Vec<String>,
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    #[oai(status = 200)]
    Ok(Json<HealthStatus>),
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process is up
    #[oai(path = "/health/live", method = "get", operation_id = "live")]
    async fn live(&self) -> HealthResponse {
        HealthResponse::Ok(Json(HealthStatus {
            status: "ok".into(),
            checks: vec![],
        }))
    }

    /// Readiness: the database answers and the actor tree runs
    ///
    /// 503 `not_ready` with the failing dependency named in the message. Redis (when
    /// configured) and the OCR pool are checked too: while either is down the node still
    /// accepts uploads, so it answers 200 `degraded` and says why processing waits.
    #[oai(path = "/health/ready", method = "get", operation_id = "ready")]
    async fn ready(&self) -> Result<HealthResponse, ApiError> {
        let not_ready = |message: &str| ApiError::Unavailable {
            code: "not_ready",
            message: message.to_string(),
        };
        match tokio::time::timeout(PROBE_TIMEOUT, self.state.db.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: database check failed");
                return Err(not_ready("database: unavailable"));
            }
            Err(_) => return Err(not_ready("database: no answer within 2 s")),
        }
        if self.state.documents.stats().await.is_none() {
            return Err(not_ready("actors: document supervisor is not running"));
        }
        let mut checks = vec!["database: ok".to_string(), "actors: ok".to_string()];
        let mut degraded = false;
        if let Some(redis) = &self.state.redis {
            match tokio::time::timeout(PROBE_TIMEOUT, redis.ping()).await {
                Ok(Ok(())) => checks.push("redis: ok".into()),
                _ => {
                    degraded = true;
                    checks.push(
                        "redis: unavailable; processing is paused (uploads are still accepted)"
                            .into(),
                    );
                }
            }
        }
        let settings = &self.state.settings;
        let local =
            settings.node.roles.iter().any(|r| r == "ocr") && !settings.ocr.devices.is_empty();
        let remote = self.state.cluster.as_ref().map(|roster| {
            roster
                .peers()
                .iter()
                .any(|p| p.state == crate::cluster::PeerState::Up && p.hello.capacity > 0)
        });
        if local || remote.is_some() {
            if !self.state.ocr_pool.read().is_ok_and(|p| p.is_some()) {
                degraded = true;
                checks.push("ocr: stopped after repeated failures; uploads wait queued".into());
            } else if !local && remote == Some(false) {
                degraded = true;
                checks.push("ocr: no OCR capacity (no OCR node is up); uploads wait queued".into());
            } else {
                checks.push("ocr: ok".into());
            }
        }
        Ok(HealthResponse::Ok(Json(HealthStatus {
            status: if degraded { "degraded" } else { "ready" }.into(),
            checks,
        })))
    }
}
