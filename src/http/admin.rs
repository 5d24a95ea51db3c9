//! Operators' endpoints: the outbox's dead letters and their retry; the cluster's nodes; how
//! the challenger OCR model compares with the champion.

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Utc};
use poem_openapi::{
    Enum, Object,
    param::{Path, Query},
    payload::Json,
};

use super::{
    ApiTags, AppState,
    auth::{BearerAuth, Role},
    errors::ApiError,
    ids::PathId,
    paging::{self, millis},
};
use crate::{
    kyc::OutboxId,
    store::{
        comparisons,
        outbox::{self, OutboxRow, OutboxState},
    },
};

pub struct AdminApi {
    pub state: Arc<AppState>,
}

/// One outbox row (its payload, which carries personal data, is never shown).
#[derive(Debug, Object)]
pub struct OutboxEntry {
    /// Also the `Idempotency-Key` BULI2 receives.
    pub id: String,
    pub verification_id: String,
    /// `buli2_decision` or `webhook`.
    pub kind: String,
    /// `pending`, `sent` or `dead`.
    pub state: String,
    /// HTTP calls made so far.
    pub attempts: i64,
    /// Failed delivery rounds.
    pub rounds: i64,
    pub next_attempt_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which outbox rows to list.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum OutboxStateParam {
    Dead,
    Pending,
    Sent,
}

impl From<OutboxStateParam> for OutboxState {
    fn from(p: OutboxStateParam) -> Self {
        match p {
            OutboxStateParam::Dead => OutboxState::Dead,
            OutboxStateParam::Pending => OutboxState::Pending,
            OutboxStateParam::Sent => OutboxState::Sent,
        }
    }
}

#[derive(Debug, Object)]
pub struct OutboxPage {
    pub items: Vec<OutboxEntry>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

fn entry(r: OutboxRow) -> OutboxEntry {
    OutboxEntry {
        id: r.id,
        verification_id: r.verification_id,
        kind: r.kind.as_str().into(),
        state: r.state.as_str().into(),
        attempts: r.attempts,
        rounds: r.rounds,
        next_attempt_at: millis(r.next_attempt_at),
        last_error: r.last_error,
        created_at: millis(r.created_at),
        updated_at: millis(r.updated_at),
    }
}

/// One node of the cluster, as this node sees it.
#[derive(Debug, Object)]
pub struct ClusterNode {
    /// `name@host`.
    pub name: String,
    /// `api`, `ocr`, `outbox`.
    pub roles: Vec<String>,
    /// Its cluster address (`host:port`), empty for a node outside a cluster.
    pub address: String,
    /// `up` or `down` (its session closed, or no heartbeat answer within
    /// `cluster.heartbeat_deadline`).
    pub state: String,
    /// OCR devices it serves other nodes with.
    pub devices: Vec<String>,
    /// Cards its OCR server is reading now (at its last heartbeat).
    pub in_flight: u32,
    /// Cards its OCR server has read since it started.
    pub processed: u64,
    /// Its last heartbeat answer (now, for this node).
    pub last_seen: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct ClusterView {
    /// This node first, then its peers by name.
    pub nodes: Vec<ClusterNode>,
}

/// One field, over the documents both engines read.
#[derive(Debug, Object)]
pub struct FieldAgreement {
    /// Documents where both engines read the same value (compared trimmed, spaces
    /// collapsed, upper case).
    pub agree: i64,
    /// Documents where they differ, or only one of them read the field.
    pub disagree: i64,
    /// Documents where a reviewer corrected this field (human ground truth)…
    pub reviewed: i64,
    /// …and had read it as the reviewer set it: the champion…
    pub champion_right: i64,
    /// …and the challenger.
    pub challenger_right: i64,
}

/// Mean time per compared document, in milliseconds (absent until one is compared).
#[derive(Debug, Object)]
pub struct ComparedLatency {
    #[oai(skip_serializing_if_is_none)]
    pub champion: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub challenger: Option<i64>,
}

/// The challenger model against the champion, on live traffic.
#[derive(Debug, Object)]
pub struct OcrComparison {
    /// The configured challenger (its fingerprint's first 16 hex digits): every count is
    /// this challenger's; a change of its parameters or weights starts again from zero.
    pub challenger_engine: String,
    /// `ocr.challenger.share_percent`: the share of newly read documents sampled (0: none).
    pub share_percent: u8,
    /// Documents both engines have read.
    pub documents_compared: i64,
    /// Sampled documents waiting for the challenger (it reads only while the champion has
    /// nothing waiting).
    pub documents_pending: i64,
    /// Per field either engine read.
    pub fields: BTreeMap<String, FieldAgreement>,
    pub latency_ms: ComparedLatency,
}

#[poem_openapi::OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// Challenger against champion
    ///
    /// How the challenger OCR model (`ocr.challenger`) compares with the champion on the
    /// documents sampled for it: per field, agreement and, where a reviewer corrected the
    /// field, which engine had read it right; both engines' mean latency. Counts only, never
    /// a value. Admins only.
    #[oai(
        path = "/v1/admin/ocr/comparison",
        method = "get",
        operation_id = "ocrComparison"
    )]
    async fn ocr_comparison(&self, auth: BearerAuth) -> Result<Json<OcrComparison>, ApiError> {
        auth.0.require(&[Role::Admin])?;
        let engine = &self.state.challenger_engine;
        let summary = comparisons::summary(&self.state.db, engine).await?;
        let fields = summary
            .fields
            .into_iter()
            .map(|(name, c)| {
                let counts = FieldAgreement {
                    agree: c.agree,
                    disagree: c.disagree,
                    reviewed: c.reviewed,
                    champion_right: c.champion_right,
                    challenger_right: c.challenger_right,
                };
                (name, counts)
            })
            .collect();
        Ok(Json(OcrComparison {
            challenger_engine: engine.chars().take(16).collect(),
            share_percent: self.state.settings.ocr.challenger.share_percent,
            documents_compared: summary.documents_compared,
            documents_pending: summary.documents_pending,
            fields,
            latency_ms: ComparedLatency {
                champion: summary.champion_ms,
                challenger: summary.challenger_ms,
            },
        }))
    }

    /// The cluster's nodes
    ///
    /// This node and every peer it has met: roles, address, up or down, OCR devices and
    /// load, last heartbeat. A single node lists itself. Admins only.
    #[oai(path = "/v1/admin/cluster", method = "get", operation_id = "cluster")]
    async fn cluster(&self, auth: BearerAuth) -> Result<Json<ClusterView>, ApiError> {
        auth.0.require(&[Role::Admin])?;
        let settings = &self.state.settings;
        let Some(roster) = &self.state.cluster else {
            return Ok(Json(ClusterView {
                nodes: vec![ClusterNode {
                    name: settings.node.name.clone(),
                    roles: settings.node.roles.clone(),
                    address: String::new(),
                    state: "up".into(),
                    devices: Vec::new(),
                    in_flight: 0,
                    processed: 0,
                    last_seen: Utc::now(),
                }],
            }));
        };
        let pong = roster.load.pong();
        let mut nodes = vec![ClusterNode {
            name: roster.me.name.clone(),
            roles: roster.me.roles.clone(),
            address: roster.address.clone(),
            state: "up".into(),
            devices: roster.me.devices.clone(),
            in_flight: pong.in_flight,
            processed: pong.processed,
            last_seen: Utc::now(),
        }];
        nodes.extend(roster.peers().into_iter().map(|p| ClusterNode {
            name: p.hello.name,
            roles: p.hello.roles,
            address: p.address,
            state: p.state.as_str().into(),
            devices: p.hello.devices,
            in_flight: p.in_flight,
            processed: p.processed,
            last_seen: p.last_seen.into(),
        }));
        Ok(Json(ClusterView { nodes }))
    }

    /// List outbox rows
    ///
    /// Deliveries in `state` (default `dead`: dead letters), oldest first. Admins only.
    #[oai(path = "/v1/admin/outbox", method = "get", operation_id = "listOutbox")]
    async fn list(
        &self,
        auth: BearerAuth,
        /// `dead` (default), `pending` or `sent`.
        state: Query<Option<OutboxStateParam>>,
        /// Page size (1 to `limits.max_page_size`, default 20).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<OutboxPage>, ApiError> {
        auth.0.require(&[Role::Admin])?;
        let wanted = state.0.map_or(OutboxState::Dead, OutboxState::from);
        let limit = paging::limit(limit.0, self.state.settings.limits.max_page_size)?;
        let cursor = paging::decode(cursor.0.as_deref())?;
        let page = outbox::list(&self.state.db, wanted, cursor, limit).await?;
        Ok(Json(OutboxPage {
            items: page.items.into_iter().map(entry).collect(),
            next_cursor: paging::next(page.next),
        }))
    }

    /// Retry a dead letter
    ///
    /// Puts a dead-lettered delivery back in the queue, due now, with fresh rounds. 409
    /// `outbox_not_dead` when the row is not dead. Admins only.
    #[oai(
        path = "/v1/admin/outbox/:id/retry",
        method = "post",
        operation_id = "retryOutbox"
    )]
    async fn retry(
        &self,
        auth: BearerAuth,
        id: Path<PathId<OutboxId>>,
    ) -> Result<Json<OutboxEntry>, ApiError> {
        auth.0.require(&[Role::Admin])?;
        let db = &self.state.db;
        let id = id.0.0.to_string();
        if outbox::get(db, &id).await?.is_none() {
            return Err(ApiError::NotFound);
        }
        if !outbox::requeue(db, &id, self.state.clock.now_millis()).await? {
            return Err(ApiError::Conflict {
                code: "outbox_not_dead",
                message: "only a dead-lettered delivery can be retried".into(),
            });
        }
        tracing::info!(outbox_id = %id, admin = %auth.0.id, "dead letter re-queued");
        let row = outbox::get(db, &id).await?.ok_or(ApiError::NotFound)?;
        Ok(Json(entry(row)))
    }
}
