//! `/health/live` (the process answers) and `/health/ready` (its dependencies answer).

use std::{sync::Arc, time::Duration};

use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::{ApiTags, AppState, errors::ApiError};

pub struct HealthApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
pub struct HealthStatus {
    /// `ok` or `ready`.
    pub status: String,
    /// What was checked, each `ok` (failures answer 503 instead).
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
    /// 503 `not_ready` with the failing dependency named in the message.
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
        Ok(HealthResponse::Ok(Json(HealthStatus {
            status: "ready".into(),
            checks: vec!["database: ok".into(), "actors: ok".into()],
        })))
    }
}
